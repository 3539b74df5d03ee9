//! Two real clusters (source and target), a task builder, and a run that records
//! every progress event.

use std::collections::HashSet;
use std::sync::Mutex;

use lifeboat_migrate::migration::{
    CancellationToken, ConflictMode, MigrationError, MigrationReport, MigrationSpec, MigrationTask,
    MigrationTypes, ObjectMapping, PrecheckContext, PrecheckItem, PrecheckStatus, ProgressEvent,
    TableKey, precheck, run,
};
use lifeboat_postgres::testing::TestCluster;
use tokio_postgres::Client;

/// A source and a target cluster, each with a database `shop`.
pub struct Pair {
    pub source: TestCluster,
    pub target: TestCluster,
    pub src: Client,
    pub dst: Client,
}

impl Pair {
    pub async fn start() -> Self {
        let (source, target) = (TestCluster::start(), TestCluster::start());
        for tc in [&source, &target] {
            tc.connect("postgres")
                .await
                .batch_execute("CREATE DATABASE shop")
                .await
                .expect("create database");
        }
        let src = source.connect("shop").await;
        let dst = target.connect("shop").await;
        Self {
            source,
            target,
            src,
            dst,
        }
    }

    /// Runs `sql` on both sides (the state before the incident).
    pub async fn both(&self, sql: &str) {
        self.src.batch_execute(sql).await.expect("source setup");
        self.dst.batch_execute(sql).await.expect("target setup");
    }

    pub async fn src(&self, sql: &str) {
        self.src.batch_execute(sql).await.expect("source change");
    }

    pub async fn dst(&self, sql: &str) {
        self.dst.batch_execute(sql).await.expect("target change");
    }

    /// A task over `objects` (CLI syntax) with the clusters' superuser configs.
    pub fn task(&self, objects: &[&str], conflict: ConflictMode) -> MigrationTask {
        let objects = objects
            .iter()
            .map(|o| ObjectMapping::parse(o).expect("object"))
            .collect();
        let mut spec = MigrationSpec::new("mt-test1", objects);
        spec.conflict = conflict;
        MigrationTask {
            spec,
            source: self.source.config("postgres"),
            target: self.target.config("postgres"),
        }
    }

    pub fn data_only(&self, objects: &[&str], conflict: ConflictMode) -> MigrationTask {
        let mut t = self.task(objects, conflict);
        t.spec.types = MigrationTypes {
            schema: false,
            data: true,
        };
        t
    }
}

/// One value of the first row of `sql`, as text.
pub async fn one(c: &Client, sql: &str) -> String {
    let row = c
        .query_one(sql, &[])
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    row.get::<_, Option<String>>(0).unwrap_or_default()
}

/// All values of the first column of `sql`, as text.
pub async fn column(c: &Client, sql: &str) -> Vec<String> {
    c.query(sql, &[])
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .iter()
        .map(|r| r.get::<_, Option<String>>(0).unwrap_or_default())
        .collect()
}

/// What a run reported.
pub struct Outcome {
    pub result: Result<MigrationReport, MigrationError>,
    pub events: Vec<ProgressEvent>,
}

impl Outcome {
    pub fn report(&self) -> &MigrationReport {
        match &self.result {
            Ok(r) => r,
            Err(e) => panic!("migration failed: {e} (hint: {})", e.hint()),
        }
    }

    /// Keys of the tables reported finished.
    pub fn finished(&self) -> HashSet<TableKey> {
        self.events
            .iter()
            .filter_map(|e| match e {
                ProgressEvent::TableFinished { outcome } => Some(outcome.key.clone()),
                _ => None,
            })
            .collect()
    }
}

/// Runs `task` to the end, skipping `finished`.
pub async fn migrate(task: &MigrationTask, finished: &HashSet<TableKey>) -> Outcome {
    migrate_until(task, finished, |_| false).await
}

/// Runs `task`, cancelling it as soon as `stop` returns true for an event.
pub async fn migrate_until(
    task: &MigrationTask,
    finished: &HashSet<TableKey>,
    stop: impl Fn(&ProgressEvent) -> bool + Send + Sync,
) -> Outcome {
    let events = Mutex::new(Vec::new());
    let cancel = CancellationToken::new();
    let progress = |e: ProgressEvent| {
        if stop(&e) {
            cancel.cancel();
        }
        events.lock().expect("events").push(e);
    };
    let result = run(task, finished, &progress, &cancel).await;
    Outcome {
        result,
        events: events.into_inner().expect("events"),
    }
}

/// The pre-check items of `task`.
pub async fn check(task: &MigrationTask) -> Vec<PrecheckItem> {
    precheck(task, &PrecheckContext::default()).await
}

/// The item `id`, which must be present.
#[track_caller]
pub fn item<'a>(items: &'a [PrecheckItem], id: &str) -> &'a PrecheckItem {
    items
        .iter()
        .find(|i| i.id == id)
        .unwrap_or_else(|| panic!("no item {id} in {items:#?}"))
}

#[track_caller]
pub fn assert_status(items: &[PrecheckItem], id: &str, status: PrecheckStatus) {
    let i = item(items, id);
    assert_eq!(i.status, status, "{i:#?}");
}

/// An order-independent fingerprint of a table's rows, for "unchanged" assertions.
pub async fn fingerprint(c: &Client, table: &str) -> String {
    one(
        c,
        &format!(
            "SELECT count(*) || ':' || coalesce(sum(hashtext(t::text)::int8), 0) FROM {table} t"
        ),
    )
    .await
}
