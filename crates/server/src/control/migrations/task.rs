//! A migration task as the metadata store keeps it ([`TaskRecord`]: its passwords
//! sealed, the fingerprint of its last passed pre-check), how it is created and
//! changed, and its view for the API, which has no field a secret could go in.

use chrono::{DateTime, Utc};
use lifeboat_api::migrations::{
    CreateTask, EndpointInput, EndpointView, PrecheckItemView, TableProgress, TaskView, UpdateTask,
};
use lifeboat_domain::{InstanceId, TaskState};
use lifeboat_migrate::migration::{
    ConflictMode, MigrationSpec, MigrationTypes, ObjectMapping, PrecheckItem,
};
use lifeboat_store::{InstanceRecord, StoreError, StoredTask};
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::control::registry::{instance, region_of};
use crate::control::{Error, ErrorCode, Result, Shared};

/// A migration task as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TaskRecord {
    pub id: String,
    pub name: String,
    pub source: Endpoint,
    pub target: Endpoint,
    /// `SRC[=DST]` as given.
    pub objects: Vec<String>,
    #[serde(with = "types_list")]
    pub types: MigrationTypes,
    pub conflict: ConflictMode,
    /// Under `repair`: delete the target rows whose key the source lacks.
    #[serde(default)]
    pub delete_rows_only_in_target: bool,
    pub state: TaskState,
    /// Whether the worker's address was added to both whitelists.
    pub authorized: bool,
    pub worker_address: String,
    /// The instances whose whitelist this task added the worker's address to.
    #[serde(default)]
    pub whitelist_added: Vec<String>,
    pub precheck: Vec<PrecheckItem>,
    /// What the last passed pre-check looked at; `start` compares it with now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub precheck_fingerprint: Option<String>,
    pub tables: Vec<TableProgress>,
    #[serde(default)]
    pub finished_tables: Vec<String>,
    /// The final report: each table's outcome, the foreign keys, the verification.
    pub report: Option<serde_json::Value>,
    pub error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
}

/// One side of a stored task.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Endpoint {
    pub region: String,
    pub instance: String,
    pub account: String,
    /// Sealed with the server's key (see [`crate::credentials::SecretBox`]).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub password_sealed: String,
}

/// Migration types as stored and shown: `["schema", "data"]`.
mod types_list {
    use lifeboat_migrate::migration::MigrationTypes;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &MigrationTypes, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(super::types_names(*t))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<MigrationTypes, D::Error> {
        let names = Vec::<String>::deserialize(d)?;
        names.join(",").parse().map_err(serde::de::Error::custom)
    }
}

/// `["schema", "data"]`, `["schema"]` or `["data"]`.
pub fn types_names(t: MigrationTypes) -> Vec<String> {
    let mut v = Vec::new();
    if t.schema {
        v.push("schema".to_string());
    }
    if t.data {
        v.push("data".to_string());
    }
    v
}

impl TaskRecord {
    /// The task as the API shows it.
    pub fn view(&self) -> TaskView {
        let side = |e: &Endpoint| EndpointView {
            region: e.region.clone(),
            instance: e.instance.clone(),
            account: e.account.clone(),
        };
        TaskView {
            id: self.id.clone(),
            name: self.name.clone(),
            source: side(&self.source),
            target: side(&self.target),
            objects: self.objects.clone(),
            types: types_names(self.types),
            conflict: self.conflict.to_string(),
            delete_rows_only_in_target: self.delete_rows_only_in_target,
            state: self.state,
            authorized: self.authorized,
            worker_address: self.worker_address.clone(),
            whitelist_added: self.whitelist_added.clone(),
            precheck: self
                .precheck
                .iter()
                .map(|i| PrecheckItemView {
                    id: i.id.clone(),
                    name: i.name.clone(),
                    status: i.status,
                    detail: i.detail.clone(),
                    advice: i.advice.clone(),
                })
                .collect(),
            tables: self.tables.clone(),
            finished_tables: self.finished_tables.clone(),
            report: self.report.clone(),
            error: self.error.clone(),
            created_at: self.created_at,
            started_at: self.started_at,
            finished_at: self.finished_at,
        }
    }

    /// What the migration library is asked to do; refuses an option the conflict
    /// mode does not use.
    pub fn spec(&self) -> Result<MigrationSpec> {
        if self.delete_rows_only_in_target && self.conflict != ConflictMode::Repair {
            return Err(Error::invalid(
                format!(
                    "deleting rows only in the target applies to conflict mode repair, not {}",
                    self.conflict
                ),
                "use --conflict repair, or leave --delete-rows-only-in-target out",
            ));
        }
        let objects = self
            .objects
            .iter()
            .map(|o| ObjectMapping::parse(o))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(MigrationSpec {
            task_id: self.id.clone(),
            objects,
            types: self.types,
            conflict: self.conflict,
            delete_rows_only_in_target: self.delete_rows_only_in_target,
            verify: true,
            parallelism: 2,
        })
    }
}

fn not_found(task: &str) -> Error {
    Error::not_found(
        format!("migration task {task} not found"),
        "run `lifeboat migration list` to see the tasks",
    )
}

/// The task named by id or name.
pub fn load(state: &Shared, task: &str) -> Result<TaskRecord> {
    let stored = state
        .store
        .find_task(task)?
        .ok_or_else(|| not_found(task))?;
    parse(&stored)
}

fn parse(stored: &StoredTask) -> Result<TaskRecord> {
    serde_json::from_str(&stored.doc)
        .map_err(|e| Error::internal(format!("migration task {} cannot be read: {e}", stored.id)))
}

/// Every task, oldest first.
pub fn list(state: &Shared) -> Result<Vec<TaskRecord>> {
    state.store.list_tasks()?.iter().map(parse).collect()
}

/// Writes the task back; the store refuses a state its current one cannot become.
pub fn save(state: &Shared, doc: &TaskRecord) -> Result<()> {
    let json = serde_json::to_string(doc).map_err(|e| Error::internal(e.to_string()))?;
    state.store.update_task(&doc.id, doc.state, &json)?;
    Ok(())
}

/// The instance of an endpoint, checked to be in the region named.
pub fn endpoint_instance(state: &Shared, e: &Endpoint, which: &str) -> Result<InstanceRecord> {
    let rec = instance(state, &e.instance).map_err(|err| err.on(which))?;
    if rec.region != e.region {
        return Err(Error::invalid(
            format!(
                "{which} instance {} is in region '{}', not '{}'",
                rec.id, rec.region, e.region
            ),
            "give the instance's own region, or leave the region out",
        ));
    }
    Ok(rec)
}

fn parse_types(text: &str) -> Result<MigrationTypes> {
    let list: Vec<&str> = text.split(',').map(str::trim).collect();
    Ok(list.join(",").parse()?)
}

/// Records a new task after checking what can be checked without connecting.
pub async fn create(state: &Shared, req: CreateTask) -> Result<TaskRecord> {
    let id = format!("mt-{}", &InstanceId::generate().as_str()[3..]);
    let name = req.name.clone().unwrap_or_else(default_name);
    if name.is_empty() || name.chars().count() > 64 || name.chars().any(|c| c.is_control()) {
        return Err(Error::invalid(
            format!("invalid task name '{}'", name.escape_debug()),
            "use 1 to 64 printable characters",
        ));
    }
    lifeboat_domain::names::validate_password(&req.source.password)
        .map_err(|e| Error::from(e).on("source"))?;
    lifeboat_domain::names::validate_password(&req.target.password)
        .map_err(|e| Error::from(e).on("target"))?;
    let endpoint = |input: &EndpointInput, which: &str| -> Result<Endpoint> {
        let rec = instance(state, &input.instance).map_err(|e| e.on(which))?;
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
        return Err(Error::invalid(
            "the source and the target are the same instance",
            "copy from the temporary instance into its master, or between two instances",
        ));
    }
    let worker_address = region_of(state, &src_rec.region)?.address.clone();
    let doc = TaskRecord {
        id: id.clone(),
        name: name.clone(),
        source,
        target,
        objects: req.objects.clone(),
        types: parse_types(req.types.as_deref().unwrap_or("schema,data"))?,
        conflict: req.conflict.as_deref().unwrap_or("error").trim().parse()?,
        delete_rows_only_in_target: req.delete_rows_only_in_target.unwrap_or(false),
        state: TaskState::NotStarted,
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
    doc.spec()?;
    let json = serde_json::to_string(&doc).map_err(|e| Error::internal(e.to_string()))?;
    state
        .store
        .insert_task(&StoredTask {
            id: id.clone(),
            name,
            state: doc.state,
            source_id: doc.source.instance.clone(),
            target_id: doc.target.instance.clone(),
            created_at: doc.created_at.to_rfc3339(),
            doc: json,
        })
        .map_err(|e| match e {
            StoreError::Duplicate(what) => Error::new(
                ErrorCode::DuplicateName,
                format!("{what} already exists"),
                "choose another --name",
            ),
            other => other.into(),
        })?;
    Ok(doc)
}

/// The refusal for a change to a task that has started.
pub fn not_editable(id: &str, state: TaskState) -> Error {
    Error::invalid_state(
        format!("task {id} is {state}: only a task that has not started can be changed"),
        "create a new task to migrate other objects",
    )
}

/// Changes the objects, migration types or conflict mode of a task that has not
/// started. Its pre-check is cleared: the task must pass it again before it starts.
pub fn update(state: &Shared, task: &str, req: UpdateTask) -> Result<TaskRecord> {
    let mut doc = load(state, task)?;
    if !doc.state.editable() {
        return Err(not_editable(&doc.id, doc.state));
    }
    if let Some(objects) = req.objects {
        doc.objects = objects
            .into_iter()
            .map(|o| o.trim().to_string())
            .filter(|o| !o.is_empty())
            .collect();
    }
    if let Some(types) = req.types {
        doc.types = parse_types(&types)?;
    }
    if let Some(conflict) = req.conflict {
        doc.conflict = conflict.trim().parse()?;
    }
    if let Some(delete) = req.delete_rows_only_in_target {
        doc.delete_rows_only_in_target = delete;
    }
    for (which, change, side) in [
        ("source", req.source, &mut doc.source),
        ("target", req.target, &mut doc.target),
    ] {
        let Some(change) = change else { continue };
        if let Some(account) = change.account {
            let account = account.trim().to_string();
            if account.is_empty() || account.len() > 63 || account.chars().any(char::is_control) {
                return Err(Error::invalid(
                    format!("invalid {which} account '{}'", account.escape_debug()),
                    "give the name of a database account of the instance",
                ));
            }
            side.account = account;
        }
        if let Some(password) = change.password {
            lifeboat_domain::names::validate_password(&password)
                .map_err(|e| Error::from(e).on(which))?;
            side.password_sealed = state.secrets.seal(&password);
        }
    }
    doc.spec()?;
    doc.state = TaskState::NotStarted;
    doc.precheck.clear();
    doc.precheck_fingerprint = None;
    save(state, &doc)?;
    Ok(doc)
}

/// A task between `pg-aaaaaa` and `pg-bbbbbb`, for tests.
#[cfg(test)]
pub fn sample(state: TaskState) -> TaskRecord {
    let side = |i: &str| Endpoint {
        region: "local".into(),
        instance: i.into(),
        account: "admin".into(),
        password_sealed: "c2VhbGVk".into(),
    };
    TaskRecord {
        id: "mt-abc123".into(),
        name: "restore-orders".into(),
        source: side("pg-aaaaaa"),
        target: side("pg-bbbbbb"),
        objects: vec!["shop.public.orders".into()],
        types: MigrationTypes::default(),
        conflict: ConflictMode::default(),
        delete_rows_only_in_target: false,
        state,
        authorized: true,
        worker_address: "127.0.0.1".into(),
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
    }
}

/// A generated, readable default task name.
pub fn default_name() -> String {
    let n: u16 = rand::thread_rng().gen_range(100..1000);
    format!("migration-{}-{n}", Utc::now().format("%Y%m%d"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_task_reads_back_and_its_view_holds_no_secret() {
        let stored = r#"{"id":"mt-abc123","name":"restore-orders",
            "source":{"region":"local","instance":"pg-aaaaaa","account":"admin","password_sealed":"c2VhbGVk"},
            "target":{"region":"local","instance":"pg-bbbbbb","account":"admin","password_sealed":"c2VhbGVk"},
            "objects":["shop.public.orders"],"types":["schema","data"],"conflict":"skip-existing",
            "state":"precheck_passed","authorized":true,"worker_address":"127.0.0.1",
            "whitelist_added":["pg-aaaaaa"],"precheck":[],"precheck_fingerprint":"f",
            "tables":[],"finished_tables":[],"report":null,"error":null,
            "created_at":"2026-11-24T00:00:00Z","started_at":null,"finished_at":null}"#;
        let doc: TaskRecord = serde_json::from_str(stored).unwrap();
        assert_eq!(doc.conflict, ConflictMode::SkipExisting);
        assert!(doc.types.schema && doc.types.data);
        assert_eq!(doc.state, TaskState::PrecheckPassed);
        let view = serde_json::to_string(&doc.view()).unwrap();
        assert!(
            !view.contains("c2VhbGVk") && !view.contains("sealed"),
            "{view}"
        );
        assert!(!view.contains("fingerprint"), "{view}");
        assert!(view.contains(r#""conflict":"skip-existing""#), "{view}");
        assert!(view.contains(r#""types":["schema","data"]"#), "{view}");
        // Written back the same way.
        let again = serde_json::to_value(&doc).unwrap();
        assert_eq!(again["types"], serde_json::json!(["schema", "data"]));
        assert_eq!(again["source"]["password_sealed"], "c2VhbGVk");
    }

    #[test]
    fn migration_types_are_read_from_the_request_text() {
        let t = parse_types("data").unwrap();
        assert!(t.data && !t.schema);
        let t = parse_types(" schema , data ").unwrap();
        assert!(t.data && t.schema);
        assert!(parse_types("schema,bogus").is_err());
    }
}
