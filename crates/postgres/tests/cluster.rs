//! The driver against a real cluster: init, start, accounts, whitelist, stop.

// Tests and benchmarks may panic on what they set up themselves.
#![allow(clippy::unwrap_used)]

use lifeboat_postgres::accounts::{create_account, list_accounts, scram_verifier};
use lifeboat_postgres::testing::TestCluster;
use lifeboat_postgres::{ClusterStatus, StopMode};

#[tokio::test]
async fn cluster_runs_with_checksums_and_scram_accounts() {
    let tc = TestCluster::start();
    let client = tc.connect("postgres").await;
    let row = client.query_one("SHOW data_checksums", &[]).await.unwrap();
    assert_eq!(row.get::<_, String>(0), "on");

    create_account(&client, "admin", &scram_verifier("s3cret-pass"), true)
        .await
        .unwrap();
    let accounts = list_accounts(&client).await.unwrap();
    assert_eq!(accounts.len(), 1);
    assert_eq!(accounts[0].name, "admin");
    assert!(accounts[0].superuser);

    // The account logs in over TCP with its password, and not with another.
    let conn = |pw: &str| {
        format!(
            "host=127.0.0.1 port={} user=admin password={pw} dbname=postgres",
            tc.cluster.port
        )
    };
    let (c, conn_task) = tokio_postgres::connect(&conn("s3cret-pass"), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn_task);
    let one: i32 = c.query_one("SELECT 1", &[]).await.unwrap().get(0);
    assert_eq!(one, 1);
    let err = tokio_postgres::connect(&conn("wrong-pass"), tokio_postgres::NoTls)
        .await
        .err()
        .expect("wrong password refused");
    let msg = lifeboat_postgres::describe(&err);
    assert!(msg.contains("password authentication failed"), "{msg}");

    // The stored secret is a verifier, not the password.
    let stored: String = client
        .query_one(
            "SELECT rolpassword FROM pg_authid WHERE rolname = 'admin'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(stored.starts_with("SCRAM-SHA-256$"));

    tc.cluster.stop(StopMode::Fast).unwrap();
    assert_eq!(tc.cluster.status().unwrap(), ClusterStatus::Stopped);
}

#[tokio::test]
async fn taken_port_is_reported_before_starting() {
    let tc = TestCluster::start();
    tc.cluster.stop(StopMode::Fast).unwrap();
    let _holder = std::net::TcpListener::bind(("127.0.0.1", tc.cluster.port)).unwrap();
    let err = tc.cluster.start("127.0.0.1").unwrap_err();
    assert!(
        err.to_string().contains(&format!(
            "port {} on 127.0.0.1 is already in use",
            tc.cluster.port
        )),
        "{err}"
    );
}
