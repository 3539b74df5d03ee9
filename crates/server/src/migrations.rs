//! Data migration tasks: the persisted state machine around `lifeboat_migrate::migration`.
//!
//! ```text
//! not_started ─precheck─▶ prechecking ─▶ precheck_failed ─precheck─▶ ...
//!                                    └─▶ precheck_passed ─start─▶ migrating ─▶ completed
//!                                                                           ├─▶ failed
//!                                                                           └─▶ cancelled
//! ```
//!
//! A task is one JSON document in the metadata store, its passwords sealed with the
//! server's key. `start` refuses unless the last pre-check passed on the task as it is
//! now (a fingerprint of everything the pre-check looked at). While migrating, each
//! finished table is recorded, so a server restart resumes the task and skips them
//! (the target's own journal guarantees each table is whole or untouched). The
//! whitelist entries a task adds for its worker are removed when it ends or is deleted.

use std::collections::HashSet;
use std::time::Duration;

use chrono::{DateTime, Utc};
use lifeboat_domain::{InstanceId, InstanceKind, InstanceStatus, WhitelistEntry};
use lifeboat_migrate::migration::{
    self, CancellationToken, ConflictMode, MigrationReport, MigrationSpec, MigrationTask,
    MigrationTypes, ObjectMapping, PrecheckContext, PrecheckItem, PrecheckStatus, ProgressEvent,
    TableKey,
};
use lifeboat_store::{InstanceRecord, StoreError, StoredTask};
use rand::Rng;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::ApiError;
use crate::instances::{self, cluster_of, region_of};
use crate::state::SharedState;

/// A migration task as stored (secrets sealed) and, without them, as shown.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TaskDoc {
    pub id: String,
    pub name: String,
    pub source: Endpoint,
    pub target: Endpoint,
    /// `SRC[=DST]` as given.
    pub objects: Vec<String>,
    /// `schema`, `data` or both.
    pub types: Vec<String>,
    /// `error`, `skip-existing`, `overwrite` or `replace`.
    pub conflict: String,
    /// `not_started`, `prechecking`, `precheck_failed`, `precheck_passed`, `migrating`,
    /// `completed`, `failed` or `cancelled`.
    pub state: String,
    /// Whether the worker's address was added to both whitelists.
    pub authorized: bool,
    pub worker_address: String,
    /// The instances whose whitelist this task added the worker's address to.
    #[serde(default)]
    pub whitelist_added: Vec<String>,
    #[schema(value_type = Vec<Object>)]
    pub precheck: Vec<PrecheckItem>,
    /// What the last passed pre-check looked at; `start` compares it with now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub precheck_fingerprint: Option<String>,
    pub tables: Vec<TableProgress>,
    #[serde(default)]
    pub finished_tables: Vec<String>,
    /// The final report: each table's outcome, the foreign keys, the verification.
    #[schema(value_type = Option<Object>)]
    pub report: Option<serde_json::Value>,
    pub error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
}

impl TaskDoc {
    /// The task as the API shows it: without its sealed passwords and internal marks.
    pub fn public(mut self) -> Self {
        self.source.password_sealed.clear();
        self.target.password_sealed.clear();
        self.precheck_fingerprint = None;
        self
    }
}

/// One side of a task.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Endpoint {
    pub region: String,
    pub instance: String,
    pub account: String,
    /// Sealed with the server's key; stored, never shown (see [`TaskDoc::public`]).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub password_sealed: String,
}

/// Progress of one table.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct TableProgress {
    pub key: String,
    pub source: String,
    pub target: String,
    /// `pending`, `copying`, `building`, `done`, `skipped` (finished earlier).
    pub state: String,
    pub rows: u64,
    pub bytes: u64,
    pub estimated_rows: u64,
    pub estimated_bytes: u64,
    pub percent: f64,
    /// Seconds left at the current speed.
    pub eta_seconds: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started: Option<DateTime<Utc>>,
}

/// What `migration create` sends.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTask {
    pub name: Option<String>,
    pub source: EndpointInput,
    pub target: EndpointInput,
    /// `SRC[=DST]`. May be empty: the task is then a draft, authorized and completed
    /// later with [`UpdateTask`] (as the console's wizard does); its pre-check fails
    /// until it selects an object.
    #[serde(default)]
    pub objects: Vec<String>,
    /// `schema,data` (default), `schema` or `data`.
    pub types: Option<String>,
    pub conflict: Option<String>,
}

/// What `migration update` sends: the parts of a task that may change before it starts.
/// Fields left out keep their value.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateTask {
    pub objects: Option<Vec<String>>,
    /// `schema,data`, `schema` or `data`.
    pub types: Option<String>,
    pub conflict: Option<String>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EndpointInput {
    pub instance: String,
    /// Default: the instance's region.
    pub region: Option<String>,
    pub account: String,
    pub password: String,
}

impl From<migration::MigrationError> for ApiError {
    fn from(e: migration::MigrationError) -> Self {
        ApiError::bad_request(e.to_string(), e.hint())
    }
}

fn not_found(task: &str) -> ApiError {
    ApiError::not_found(
        format!("migration task {task} not found"),
        "run `lifeboat migration list` to see the tasks",
    )
}

pub fn load(state: &SharedState, task: &str) -> Result<TaskDoc, ApiError> {
    let stored = state
        .store
        .find_task(task)?
        .ok_or_else(|| not_found(task))?;
    serde_json::from_str(&stored.doc)
        .map_err(|e| ApiError::internal(format!("migration task {task} cannot be read: {e}")))
}

fn save(state: &SharedState, doc: &TaskDoc) -> Result<(), ApiError> {
    let json = serde_json::to_string(doc).map_err(|e| ApiError::internal(e.to_string()))?;
    state.store.update_task(&doc.id, &doc.state, &json)?;
    Ok(())
}

fn spec_of(doc: &TaskDoc) -> Result<MigrationSpec, ApiError> {
    let objects = doc
        .objects
        .iter()
        .map(|o| ObjectMapping::parse(o))
        .collect::<Result<Vec<_>, _>>()?;
    let types: MigrationTypes = doc.types.join(",").parse()?;
    let conflict: ConflictMode = doc.conflict.parse()?;
    Ok(MigrationSpec {
        task_id: doc.id.clone(),
        objects,
        types,
        conflict,
        verify: true,
        parallelism: 2,
    })
}

/// The instance of an endpoint, checked to be in the region named.
fn endpoint_instance(
    state: &SharedState,
    e: &Endpoint,
    which: &str,
) -> Result<InstanceRecord, ApiError> {
    let rec = instances::get(state, &e.instance).map_err(|err| err.on(which))?;
    if rec.region != e.region {
        return Err(ApiError::bad_request(
            format!(
                "{which} instance {} is in region '{}', not '{}'",
                rec.id, rec.region, e.region
            ),
            "give the instance's own region, or leave the region out",
        ));
    }
    Ok(rec)
}

/// The connection to one side, as the task's account, over TCP like any client.
fn config_of(
    state: &SharedState,
    e: &Endpoint,
    rec: &InstanceRecord,
) -> Result<tokio_postgres::Config, ApiError> {
    let password = state.secrets.open(&e.password_sealed).map_err(|why| {
        ApiError::internal(format!(
            "the stored password of {} cannot be opened ({why}); create the task again",
            e.instance
        ))
    })?;
    let address = region_of(state, &rec.region)?.address.clone();
    let mut c = tokio_postgres::Config::new();
    c.host(&address)
        .port(rec.port)
        .user(&e.account)
        .password(password)
        .dbname("postgres")
        .application_name("lifeboat migration")
        .connect_timeout(Duration::from_secs(10));
    Ok(c)
}

fn task_of(state: &SharedState, doc: &TaskDoc) -> Result<MigrationTask, ApiError> {
    let src = endpoint_instance(state, &doc.source, "source")?;
    let dst = endpoint_instance(state, &doc.target, "target")?;
    Ok(MigrationTask {
        spec: spec_of(doc)?,
        source: config_of(state, &doc.source, &src)?,
        target: config_of(state, &doc.target, &dst)?,
    })
}

/// Records a new task after checking what can be checked without connecting.
pub async fn create(state: &SharedState, req: CreateTask) -> Result<TaskDoc, ApiError> {
    let id = format!("mt-{}", &InstanceId::generate().as_str()[3..]);
    let name = req.name.clone().unwrap_or_else(default_name);
    if name.is_empty() || name.len() > 64 || name.chars().any(|c| c.is_control()) {
        return Err(ApiError::bad_request(
            format!("invalid task name '{}'", name.escape_debug()),
            "use 1 to 64 printable characters",
        ));
    }
    lifeboat_domain::names::validate_password(&req.source.password)
        .map_err(|e| ApiError::from(e).on("source"))?;
    lifeboat_domain::names::validate_password(&req.target.password)
        .map_err(|e| ApiError::from(e).on("target"))?;
    let endpoint = |input: &EndpointInput, which: &str| -> Result<Endpoint, ApiError> {
        let rec = instances::get(state, &input.instance).map_err(|e| e.on(which))?;
        Ok(Endpoint {
            region: input.region.clone().unwrap_or(rec.region.clone()),
            instance: rec.id.to_string(),
            account: input.account.clone(),
            password_sealed: state.secrets.seal(&input.password),
        })
    };
    let source = endpoint(&req.source, "source")?;
    let target = endpoint(&req.target, "target")?;
    let src_rec = endpoint_instance(state, &source, "source")?;
    endpoint_instance(state, &target, "target")?;
    if source.instance == target.instance {
        return Err(ApiError::bad_request(
            "the source and the target are the same instance",
            "copy from the temporary instance into its master, or between two instances",
        ));
    }
    let worker_address = region_of(state, &src_rec.region)?.address.clone();
    let mut doc = TaskDoc {
        id: id.clone(),
        name: name.clone(),
        source,
        target,
        objects: req.objects.clone(),
        types: req
            .types
            .clone()
            .unwrap_or_else(|| "schema,data".into())
            .split(',')
            .map(|s| s.trim().to_string())
            .collect(),
        conflict: req.conflict.clone().unwrap_or_else(|| "error".into()),
        state: "not_started".into(),
        authorized: false,
        worker_address,
        whitelist_added: Vec::new(),
        precheck: Vec::new(),
        precheck_fingerprint: None,
        tables: Vec::new(),
        finished_tables: Vec::new(),
        report: None,
        error: None,
        created_at: Utc::now(),
        started_at: None,
        finished_at: None,
    };
    spec_of(&doc)?;
    doc.types = spec_of(&doc).map(|s| types_list(s.types))?;
    let json = serde_json::to_string(&doc).map_err(|e| ApiError::internal(e.to_string()))?;
    state
        .store
        .insert_task(&StoredTask {
            id: id.clone(),
            name,
            state: doc.state.clone(),
            source_id: doc.source.instance.clone(),
            target_id: doc.target.instance.clone(),
            created_at: doc.created_at.to_rfc3339(),
            doc: json,
        })
        .map_err(|e| match e {
            StoreError::Duplicate(what) => ApiError::conflict(
                "duplicate_name",
                format!("{what} already exists"),
                "choose another --name",
            ),
            other => other.into(),
        })?;
    Ok(doc)
}

/// Whether a task in this state may still change what it migrates.
pub fn editable(doc: &TaskDoc) -> bool {
    matches!(
        doc.state.as_str(),
        "not_started" | "precheck_failed" | "precheck_passed"
    )
}

/// Changes the objects, migration types or conflict mode of a task that has not
/// started. Its pre-check is cleared: the task must pass it again before it starts.
pub fn update(state: &SharedState, task: &str, req: UpdateTask) -> Result<TaskDoc, ApiError> {
    let mut doc = load(state, task)?;
    if !editable(&doc) {
        return Err(ApiError::conflict(
            "invalid_state",
            format!(
                "task {} is {}: only a task that has not started can be changed",
                doc.id, doc.state
            ),
            "create a new task to migrate other objects",
        ));
    }
    if let Some(objects) = req.objects {
        doc.objects = objects
            .into_iter()
            .map(|o| o.trim().to_string())
            .filter(|o| !o.is_empty())
            .collect();
    }
    if let Some(types) = req.types {
        doc.types = types.split(',').map(|s| s.trim().to_string()).collect();
    }
    if let Some(conflict) = req.conflict {
        doc.conflict = conflict.trim().to_string();
    }
    doc.types = spec_of(&doc).map(|s| types_list(s.types))?;
    doc.state = "not_started".into();
    doc.precheck.clear();
    doc.precheck_fingerprint = None;
    save(state, &doc)?;
    Ok(doc)
}

fn types_list(t: MigrationTypes) -> Vec<String> {
    let mut v = Vec::new();
    if t.schema {
        v.push("schema".to_string());
    }
    if t.data {
        v.push("data".to_string());
    }
    v
}

/// The worker's address as a whitelist entry.
fn worker_entry(doc: &TaskDoc) -> Result<WhitelistEntry, ApiError> {
    Ok(WhitelistEntry::parse(&doc.worker_address)?)
}

/// Adds the worker's address to both whitelists (recording which entries it added).
pub async fn authorize(state: &SharedState, task: &str) -> Result<TaskDoc, ApiError> {
    let mut doc = load(state, task)?;
    let entry = worker_entry(&doc)?;
    for inst in [doc.source.instance.clone(), doc.target.instance.clone()] {
        let id = InstanceId::parse(&inst)?;
        let present = state
            .store
            .whitelist(&id)?
            .iter()
            .any(|w| w.entry.net().contains(&entry.net()));
        if !present {
            instances::change_whitelist(
                state.clone(),
                id,
                entry,
                true,
                &format!("migration:{}", doc.id),
            )
            .await?;
            if !doc.whitelist_added.contains(&inst) {
                doc.whitelist_added.push(inst);
            }
        }
    }
    doc.authorized = true;
    save(state, &doc)?;
    Ok(doc)
}

/// Removes the whitelist entries the task added.
async fn deauthorize(state: &SharedState, doc: &mut TaskDoc) {
    let Ok(entry) = worker_entry(doc) else { return };
    for inst in std::mem::take(&mut doc.whitelist_added) {
        if let Ok(id) = InstanceId::parse(&inst)
            && state.store.find_instance(&id).ok().flatten().is_some()
            && let Err(e) = instances::change_whitelist(state.clone(), id, entry, false, "").await
        {
            tracing::warn!(task = %doc.id, instance = %inst, error = %e.body.message, "cannot remove the task's whitelist entry");
        }
    }
    doc.authorized = false;
}

/// Everything the pre-check looked at, so `start` can tell whether it still holds.
fn fingerprint(state: &SharedState, doc: &TaskDoc) -> String {
    let whitelist_ok = whitelisted(state, doc);
    format!(
        "{}|{}|{}|{}|{}|{:?}|{}|{}|{}",
        doc.source.instance,
        doc.source.account,
        doc.target.instance,
        doc.target.account,
        doc.conflict,
        doc.objects,
        doc.types.join(","),
        doc.authorized,
        whitelist_ok
    )
}

fn whitelisted(state: &SharedState, doc: &TaskDoc) -> bool {
    let Ok(entry) = worker_entry(doc) else {
        return false;
    };
    [&doc.source.instance, &doc.target.instance]
        .iter()
        .all(|inst| {
            InstanceId::parse(inst)
                .ok()
                .and_then(|id| state.store.whitelist(&id).ok())
                .is_some_and(|list| list.iter().any(|w| w.entry.net().contains(&entry.net())))
        })
}

/// Runs the pre-check and records its items; the task passes when none failed.
pub async fn precheck(state: &SharedState, task: &str) -> Result<TaskDoc, ApiError> {
    let mut doc = load(state, task)?;
    if matches!(doc.state.as_str(), "migrating" | "prechecking") {
        return Err(ApiError::conflict(
            "invalid_state",
            format!("task {} is {}", doc.id, doc.state),
            "wait for it to end",
        ));
    }
    if doc.state == "completed" {
        return Err(ApiError::conflict(
            "invalid_state",
            format!("task {} has completed", doc.id),
            "create a new task to migrate again",
        ));
    }
    doc.state = "prechecking".into();
    save(state, &doc)?;
    let items = run_precheck(state, &doc).await;
    let passed = items.iter().all(|i| i.status != PrecheckStatus::Failed);
    doc.precheck = items;
    doc.state = if passed {
        "precheck_passed"
    } else {
        "precheck_failed"
    }
    .into();
    doc.precheck_fingerprint = passed.then(|| fingerprint(state, &doc));
    save(state, &doc)?;
    Ok(doc)
}

async fn run_precheck(state: &SharedState, doc: &TaskDoc) -> Vec<PrecheckItem> {
    let whitelist = PrecheckItem::whitelist(
        whitelisted(state, doc),
        &doc.worker_address,
        &[&doc.source.instance, &doc.target.instance],
    );
    let task = match task_of(state, doc) {
        Ok(t) => t,
        Err(e) => {
            return vec![
                whitelist,
                PrecheckItem::failed("task", e.body.message, e.body.hint),
            ];
        }
    };
    let src = endpoint_instance(state, &doc.source, "source").ok();
    let dst = endpoint_instance(state, &doc.target, "target").ok();
    let mut items = Vec::new();
    for (rec, which) in [(&src, "source"), (&dst, "target")] {
        if let Some(r) = rec
            && r.status != InstanceStatus::Running
        {
            items.push(PrecheckItem::failed(
                &format!("{which}_running"),
                format!("the {which} instance {} is {}", r.id, r.status),
                format!(
                    "start it (lifeboat instance start {}) and run the pre-check again",
                    r.id
                ),
            ));
        }
    }
    let ctx = PrecheckContext {
        target_data_directory: dst
            .as_ref()
            .and_then(|r| cluster_of(state, r).ok())
            .map(|c| c.data_dir()),
        source_time_left: src
            .as_ref()
            .filter(|r| r.kind == InstanceKind::Temporary)
            .and_then(|r| r.expires_at)
            .map(|at| (at - Utc::now()).to_std().unwrap_or_default()),
        whitelist: Some(whitelist),
    };
    let mut found = migration::precheck(&task, &ctx).await;
    found.extend(items);
    found
}

/// Starts a task whose pre-check passed on the task as it is now.
pub async fn start(state: &SharedState, task: &str) -> Result<TaskDoc, ApiError> {
    let mut doc = load(state, task)?;
    if doc.state != "precheck_passed" {
        return Err(ApiError::conflict(
            "precheck_required",
            format!(
                "task {} is {}: it starts only after its pre-check passed",
                doc.id, doc.state
            ),
            format!(
                "run `lifeboat migration precheck {}`, fix what it reports, then start",
                doc.id
            ),
        ));
    }
    if doc.precheck_fingerprint.as_deref() != Some(fingerprint(state, &doc).as_str()) {
        doc.state = "not_started".into();
        save(state, &doc)?;
        return Err(ApiError::conflict(
            "precheck_stale",
            format!(
                "task {} changed since its pre-check passed (whitelist or authorization)",
                doc.id
            ),
            format!("run `lifeboat migration precheck {}` again", doc.id),
        ));
    }
    doc.state = "migrating".into();
    doc.started_at = Some(Utc::now());
    doc.error = None;
    save(state, &doc)?;
    spawn_runner(state, doc.id.clone());
    Ok(doc)
}

/// Runs (or resumes) a task in the background.
pub fn spawn_runner(state: &SharedState, id: String) {
    let cancel = CancellationToken::new();
    state
        .migration_cancels
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(id.clone(), cancel.clone());
    let state = state.clone();
    // The migration future is run on a thread of its own, like the diff: it holds
    // non-Send borrows across awaits.
    std::thread::spawn(move || {
        // A single-threaded runtime: the copy is one stream per table, and it halves
        // the system CPU of the process compared with a multi-threaded one.
        let runtime = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => {
                tracing::error!(error = %e, "cannot start a runtime for a migration task");
                return;
            }
        };
        runtime.block_on(run_task(&state, &id, &cancel));
        state
            .migration_cancels
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
    });
}

async fn run_task(state: &SharedState, id: &str, cancel: &CancellationToken) {
    let Ok(doc) = load(state, id) else { return };
    let task = match task_of(state, &doc) {
        Ok(t) => t,
        Err(e) => return finish(state, id, Err(e.body.message)).await,
    };
    let finished: HashSet<TableKey> = doc
        .finished_tables
        .iter()
        .map(|k| TableKey(k.clone()))
        .collect();
    let progress_state = state.clone();
    let progress_id = id.to_string();
    let last_saved = std::sync::Mutex::new(std::time::Instant::now() - Duration::from_secs(10));
    let on_event = move |event: ProgressEvent| {
        let Ok(mut doc) = load(&progress_state, &progress_id) else {
            return;
        };
        let important = apply_event(&mut doc, &event);
        let mut last = last_saved.lock().unwrap_or_else(|p| p.into_inner());
        if important || last.elapsed() >= Duration::from_millis(500) {
            *last = std::time::Instant::now();
            let _ = save(&progress_state, &doc);
        }
    };
    let result = migration::run(&task, &finished, &on_event, cancel).await;
    let outcome = match result {
        Ok(report) => Ok(report),
        Err(_) if cancel.is_cancelled() => Err("cancelled".to_string()),
        Err(e) => Err(format!("{e}; hint: {}", e.hint())),
    };
    finish(state, id, outcome).await;
}

/// Folds one progress event into the task; true when it must be saved at once.
fn apply_event(doc: &mut TaskDoc, event: &ProgressEvent) -> bool {
    let now = Utc::now();
    let table = |doc: &mut TaskDoc, key: &TableKey| -> Option<usize> {
        doc.tables.iter().position(|t| t.key == key.0)
    };
    match event {
        ProgressEvent::Planned { tables } => {
            doc.tables = tables
                .iter()
                .map(|p| TableProgress {
                    key: TableKey::of(&p.mapping.source).0,
                    source: p.mapping.source.to_string(),
                    target: p.mapping.target.to_string(),
                    state: if p.already_finished {
                        "skipped"
                    } else {
                        "pending"
                    }
                    .into(),
                    estimated_rows: p.estimated_rows,
                    estimated_bytes: p.estimated_bytes,
                    percent: if p.already_finished { 100.0 } else { 0.0 },
                    ..Default::default()
                })
                .collect();
            true
        }
        ProgressEvent::TableStarted { key, .. } => {
            if let Some(i) = table(doc, key) {
                doc.tables[i].state = "copying".into();
                doc.tables[i].started = Some(now);
            }
            true
        }
        ProgressEvent::TableCopying {
            key,
            rows,
            bytes,
            estimated_rows,
            estimated_bytes,
        } => {
            if let Some(i) = table(doc, key) {
                let t = &mut doc.tables[i];
                t.rows = *rows;
                t.bytes = *bytes;
                t.estimated_rows = (*estimated_rows).max(*rows);
                t.estimated_bytes = (*estimated_bytes).max(*bytes);
                t.percent = if t.estimated_bytes > 0 {
                    (t.bytes as f64 * 100.0 / t.estimated_bytes as f64).min(99.0)
                } else {
                    0.0
                };
                if let Some(started) = t.started {
                    let elapsed = (now - started).num_milliseconds().max(1) as f64 / 1000.0;
                    let speed = t.bytes as f64 / elapsed;
                    if speed > 0.0 {
                        t.eta_seconds =
                            Some((t.estimated_bytes.saturating_sub(t.bytes) as f64 / speed) as u64);
                    }
                }
            }
            false
        }
        ProgressEvent::TableBuilding { key } => {
            if let Some(i) = table(doc, key) {
                doc.tables[i].state = "building".into();
            }
            true
        }
        ProgressEvent::TableFinished { outcome } => {
            if let Some(i) = table(doc, &outcome.key) {
                let t = &mut doc.tables[i];
                t.state = "done".into();
                t.rows = outcome.rows_copied;
                t.bytes = outcome.bytes_copied;
                t.percent = 100.0;
                t.eta_seconds = Some(0);
            }
            if !doc.finished_tables.contains(&outcome.key.0) {
                doc.finished_tables.push(outcome.key.0.clone());
            }
            true
        }
        _ => false,
    }
}

async fn finish(state: &SharedState, id: &str, outcome: Result<MigrationReport, String>) {
    let Ok(mut doc) = load(state, id) else { return };
    match outcome {
        Ok(report) => {
            doc.state = if report.verified() {
                "completed"
            } else {
                "failed"
            }
            .into();
            if !report.verified() {
                doc.error = Some(
                    "the copied data does not match the source; see the verification in the report"
                        .into(),
                );
            }
            doc.report = serde_json::to_value(&report).ok();
        }
        Err(e) if e == "cancelled" => {
            doc.state = "cancelled".into();
            doc.error = Some(
                "cancelled by the user; each table is either fully migrated or as it was".into(),
            );
        }
        Err(e) => {
            doc.state = "failed".into();
            doc.error = Some(e);
        }
    }
    doc.finished_at = Some(Utc::now());
    deauthorize(state, &mut doc).await;
    if let Err(e) = save(state, &doc) {
        tracing::error!(task = id, error = %e.body.message, "cannot record the end of a migration task");
    }
    tracing::info!(task = id, state = %doc.state, "migration task ended");
}

pub fn cancel(state: &SharedState, task: &str) -> Result<TaskDoc, ApiError> {
    let doc = load(state, task)?;
    if doc.state != "migrating" {
        return Err(ApiError::conflict(
            "invalid_state",
            format!("task {} is {}, not migrating", doc.id, doc.state),
            "only a running task can be cancelled",
        ));
    }
    if let Some(token) = state
        .migration_cancels
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(&doc.id)
    {
        token.cancel();
    }
    Ok(doc)
}

/// Deletes a task that is not running, removing its whitelist entries.
pub async fn delete(state: &SharedState, task: &str) -> Result<(), ApiError> {
    let mut doc = load(state, task)?;
    if doc.state == "migrating" {
        return Err(ApiError::conflict(
            "invalid_state",
            format!("task {} is migrating", doc.id),
            format!("cancel it first: lifeboat migration cancel {}", doc.id),
        ));
    }
    deauthorize(state, &mut doc).await;
    // Forget the task's journal entries in the target's databases; a target that is
    // gone or unreachable has nothing to forget or keeps a few harmless rows.
    if let Ok(task) = task_of(state, &doc) {
        let databases: Vec<String> = task
            .spec
            .objects
            .iter()
            .map(|o| o.database().to_string())
            .collect();
        let target = task.target.clone();
        let id = doc.id.clone();
        let forgotten = tokio::task::spawn_blocking(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map(|rt| rt.block_on(migration::forget(&target, &databases, &id)))
        })
        .await;
        if !matches!(forgotten, Ok(Ok(Ok(())))) {
            tracing::warn!(task = %doc.id, "cannot remove the task's journal entries from the target");
        }
    }
    state.store.delete_task(&doc.id)?;
    Ok(())
}

/// At start: resume tasks that were migrating; a pre-check cut short starts over.
pub async fn resume(state: &SharedState) {
    let Ok(tasks) = state.store.list_tasks() else {
        return;
    };
    for t in tasks {
        match t.state.as_str() {
            "migrating" => {
                tracing::info!(task = %t.id, "resuming a migration task");
                spawn_runner(state, t.id.clone());
            }
            "prechecking" => {
                if let Ok(mut doc) = load(state, &t.id) {
                    doc.state = "not_started".into();
                    let _ = save(state, &doc);
                }
            }
            _ => {}
        }
    }
}

/// A generated, readable default task name.
pub fn default_name() -> String {
    let n: u16 = rand::thread_rng().gen_range(100..1000);
    format!("migration-{}-{n}", Utc::now().format("%Y%m%d"))
}
