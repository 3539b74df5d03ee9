//! What the server repairs when it starts: interrupted creates and deletes, clusters
//! that stopped, directories nobody owns.

use lifeboat_domain::{InstanceId, InstanceKind, InstanceStatus, WhitelistEntry};
use lifeboat_postgres::ClusterStatus;
use lifeboat_postgres::accounts::scram_verifier;
use lifeboat_store::{NewInstance, Store};

use super::harness::*;

fn store(server: &TestServer) -> Store {
    Store::open(&server.data_dir.join("lifeboat.db")).expect("store")
}

#[tokio::test]
async fn a_cluster_that_stopped_while_the_server_was_down_is_started() {
    let mut server = TestServer::start();
    let inst = server.create_master("shop");
    let (id, port) = (id_of(&inst), port_of(&inst));
    server.kill();
    let cluster = server.cluster(&id, port);
    cluster.stop(lifeboat_postgres::StopMode::Fast).unwrap();
    assert_eq!(cluster.status().unwrap(), ClusterStatus::Stopped);

    server.spawn();
    // The pid file appears before the cluster accepts connections: wait for a login.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while let Err(e) = connect(port, "admin", PASSWORD).await {
        assert!(
            std::time::Instant::now() < deadline,
            "not running again: {e}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(cluster.status().unwrap(), ClusterStatus::Running);
    assert_eq!(server.json(&["instance", "show", &id])["status"], "running");
}

#[tokio::test]
async fn an_interrupted_create_is_finished() {
    let mut server = TestServer::start();
    server.kill();
    let (port, _) = port_range(1);
    // The state a crash right after the record was written leaves: `creating`, the
    // verifier kept, and half an instance directory.
    let id = InstanceId::generate();
    store(&server)
        .insert_instance(&NewInstance {
            id: id.clone(),
            name: "half".into(),
            kind: InstanceKind::Master,
            region: "local".into(),
            port,
            engine_version: "15".into(),
            master_id: None,
            expires_at: None,
            privileged_account: "owner".into(),
            pending_verifier: Some(scram_verifier(PASSWORD)),
            restore_target: None,
            restored_from: None,
            upgrade_to: None,
            management_role: None,
            external: None,
            whitelist: vec![WhitelistEntry::localhost()],
        })
        .unwrap();
    std::fs::create_dir_all(server.instance_dir(id.as_str()).join("data/base")).unwrap();
    // Another program took the record's port meanwhile (what made this test fail now
    // and then: the port was drawn outside the server's range, where the client side
    // of any connection could take it): the create moves to a free port of the region
    // and the record says which.
    let squatter = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();

    server.spawn();
    wait_for(&server, || {
        store(&server).instance(&id).map(|r| r.status).ok() == Some(InstanceStatus::Running)
    })
    .await;
    drop(squatter);
    let rec = store(&server).instance(&id).unwrap();
    assert_ne!(rec.port, port, "the instance cannot listen on a taken port");
    let cluster = server.cluster(id.as_str(), rec.port);
    assert_eq!(cluster.status().unwrap(), ClusterStatus::Running);
    connect(rec.port, "owner", PASSWORD)
        .await
        .expect("the privileged account exists");
    assert_eq!(
        rec.pending_verifier, None,
        "the verifier must be forgotten once used"
    );
}

#[tokio::test]
async fn an_interrupted_delete_is_finished_and_orphans_are_removed() {
    let mut server = TestServer::start();
    let deleting = server.create_master("deleting");
    let orphan = server.create_master("orphan");
    let kept = server.create_master("kept");
    server.kill();
    let st = store(&server);
    let deleting_id = InstanceId::parse(&id_of(&deleting)).unwrap();
    st.force_status(&deleting_id, InstanceStatus::Deleting, None)
        .unwrap();
    // An instance whose record is gone while its cluster still runs.
    st.delete_instance(&InstanceId::parse(&id_of(&orphan)).unwrap())
        .unwrap();
    drop(st);

    server.spawn();
    let gone = |v: &serde_json::Value| !server.instance_dir(&id_of(v)).exists();
    wait_for(&server, || gone(&deleting) && gone(&orphan)).await;
    assert!(
        connect(port_of(&deleting), "admin", PASSWORD)
            .await
            .is_err()
    );
    assert!(connect(port_of(&orphan), "admin", PASSWORD).await.is_err());
    connect(port_of(&kept), "admin", PASSWORD)
        .await
        .expect("untouched");
    assert_eq!(server.instance_dirs(), vec![id_of(&kept)]);
    let list = server.json(&["instance", "list"]);
    assert_eq!(list.as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn a_crash_during_create_leaves_a_running_instance_or_nothing() {
    let mut server = TestServer::start();
    let (url, token) = (server.url.clone(), server.token());
    let request = std::thread::spawn(move || {
        std::process::Command::new("curl")
            .args([
                "-s",
                "-m",
                "30",
                "-X",
                "POST",
                "-H",
                "Content-Type: application/json",
            ])
            .args(["-H", &format!("Authorization: Bearer {token}")])
            .args([
                "-d",
                &format!("{{\"name\":\"shop\",\"account\":\"admin\",\"password\":\"{PASSWORD}\"}}"),
            ])
            .arg(format!("{url}/api/v1/instances"))
            .output()
    });
    // initdb takes about a second: this lands in the middle of the create.
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    server.kill();
    let _ = request.join();
    server.spawn();

    // Settled: either nothing (no record, no directory) or one running instance
    // whose directory is the only one. Anything else past the deadline is a leak.
    wait_for(&server, || {
        let list = store(&server).list_instances(true).unwrap();
        let dirs = server.instance_dirs();
        match list.as_slice() {
            [] => dirs.is_empty(),
            [rec] => rec.status == InstanceStatus::Running && dirs == vec![rec.id.to_string()],
            _ => false,
        }
    })
    .await;
    let list = store(&server).list_instances(true).unwrap();
    let dirs = server.instance_dirs();
    match list.as_slice() {
        [] => assert!(dirs.is_empty(), "orphan directories left: {dirs:?}"),
        [rec] => {
            assert_eq!(dirs, vec![rec.id.to_string()]);
            connect(rec.port, "admin", PASSWORD)
                .await
                .expect("the finished instance works");
        }
        more => panic!("one create made {} instances", more.len()),
    }
}

#[tokio::test]
async fn a_master_with_a_temporary_instance_cannot_be_deleted() {
    let mut server = TestServer::start();
    let master = server.create_master("shop");
    let master_id = InstanceId::parse(&id_of(&master)).unwrap();
    server.kill();
    let temp_id = InstanceId::generate();
    let st = store(&server);
    st.insert_instance(&NewInstance {
        id: temp_id.clone(),
        name: "shop-temp".into(),
        kind: InstanceKind::Temporary,
        region: "local".into(),
        port: 1,
        engine_version: "15".into(),
        master_id: Some(master_id.clone()),
        expires_at: Some(chrono::Utc::now() + chrono::Duration::hours(48)),
        privileged_account: "admin".into(),
        pending_verifier: None,
        restore_target: None,
        restored_from: None,
        upgrade_to: None,
        management_role: None,
        external: None,
        whitelist: vec![],
    })
    .unwrap();
    // Stopped: the reconciler leaves it as it is.
    st.force_status(&temp_id, InstanceStatus::Stopped, None)
        .unwrap();
    drop(st);
    server.spawn();
    let err = server.fails(&["instance", "delete", master_id.as_str()]);
    assert!(
        err.contains(&format!("has the temporary instance {temp_id}")),
        "{err}"
    );
    assert!(
        err.contains(&format!("lifeboat temp delete {temp_id}")),
        "{err}"
    );
    connect(port_of(&master), "admin", PASSWORD)
        .await
        .expect("the master is untouched");
}

/// Polls `done` for up to 90 seconds; on timeout, fails with the server's log.
async fn wait_for(server: &TestServer, mut done: impl FnMut() -> bool) {
    server
        .wait_for("the server to reconcile", || done().then_some(()))
        .await;
}

#[tokio::test]
async fn a_master_whose_temporary_instance_was_released_can_be_deleted() {
    let mut server = TestServer::start();
    let master = server.create_master("shop");
    let master_id = InstanceId::parse(&id_of(&master)).unwrap();
    server.kill();
    let st = store(&server);
    let temp_id = InstanceId::generate();
    st.insert_instance(&NewInstance {
        id: temp_id.clone(),
        name: "shop-temp".into(),
        kind: InstanceKind::Temporary,
        region: "local".into(),
        port: 1,
        engine_version: "15".into(),
        master_id: Some(master_id.clone()),
        expires_at: None,
        privileged_account: "admin".into(),
        pending_verifier: None,
        restore_target: None,
        restored_from: None,
        upgrade_to: None,
        management_role: None,
        external: None,
        whitelist: vec![],
    })
    .unwrap();
    st.force_status(&temp_id, InstanceStatus::Released, None)
        .unwrap();
    drop(st);
    server.spawn();
    server.json(&["instance", "delete", master_id.as_str()]);
    assert!(store(&server).find_instance(&temp_id).unwrap().is_none());
}
