//! The objects around the tables a user can lose with them: functions and procedures,
//! views and materialized views, triggers, rules, row-level security and its
//! policies, grants, and the extensions all of these need. Created only when the
//! task migrates the schema.
//!
//! # When
//! Extensions are created with the schemas, before any table (a column may have an
//! extension's type). Everything else is created after every table is done, in one
//! target transaction per target database, committed with the journal entry
//! `objects of <db>` ([`crate::migration::journal`]): a run resumed after that commit
//! reports what the first one created and creates nothing twice. Triggers therefore
//! exist only after the data copy (they do not fire for the copied rows), and
//! materialized views are refreshed over the migrated rows.
//!
//! # Renames
//! PostgreSQL's deparsers (`pg_get_viewdef`, `pg_get_functiondef`, `pg_get_ruledef`,
//! `pg_get_expr`) print the source names, and Lifeboat does not rewrite SQL text. A
//! definition naming a relation the task renames is therefore not created; the
//! pre-check and the report say which and why. Triggers are the exception: their
//! `ON table` clause is one Lifeboat rebuilds itself for the target name (see
//! [`tables`]), the rest of the definition names no table.
//!
//! # What exists
//! Nothing a user has is replaced: a function with the same signature, a view, a
//! trigger, rule or policy of the same name is kept as it is (a warning), except that
//! under conflict mode `error` a view or materialized view in the way is a conflict.
//!
//! # Layout
//! - this file: the plan ([`ObjectDef`]) and what happens to each object in a target
//!   database ([`decide`]);
//! - [`load`]: reading the plan from the source catalog (functions and views);
//!   [`tables`]: what belongs to the tables (triggers, rules, policies, grants);
//! - [`create`]: the target transaction and the extensions.

pub(crate) mod create;
pub(crate) mod load;
mod tables;

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use crate::migration::conn::Session;
use crate::migration::mapping::TableKey;
use crate::migration::{ConflictMode, MigrationError};

/// What kind of object an [`ObjectOutcome`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ObjectKind {
    Extension,
    Function,
    Procedure,
    View,
    MaterializedView,
    Trigger,
    Rule,
    RowSecurity,
    Policy,
    Grant,
    Inheritance,
    Owner,
    DefaultPrivileges,
}

impl ObjectKind {
    /// The kind in words, for messages.
    pub fn describe(self) -> &'static str {
        match self {
            Self::Extension => "extension",
            Self::Function => "function",
            Self::Procedure => "procedure",
            Self::View => "view",
            Self::MaterializedView => "materialized view",
            Self::Trigger => "trigger",
            Self::Rule => "rule",
            Self::RowSecurity => "row-level security",
            Self::Policy => "policy",
            Self::Grant => "grant",
            Self::Inheritance => "inheritance",
            Self::Owner => "owner",
            Self::DefaultPrivileges => "default privileges",
        }
    }
}

/// What the run did about one object of the migrated schemas and tables.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectOutcome {
    pub kind: ObjectKind,
    /// The object in the target, as a user writes it (`shop.public.v`, `trigger
    /// audit on shop.public.orders`).
    pub name: String,
    /// False when it was kept as the target had it, or not created (see `note`).
    pub created: bool,
    /// Why it was not created, or what else to know.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub note: String,
    /// True when an earlier run of the task created it and this one skipped it.
    #[serde(default)]
    pub resumed: bool,
}

/// Something the target must have for an object to be created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Requirement {
    /// One of the `*_EXISTS` statements, returning one boolean.
    pub sql: &'static str,
    pub arg: String,
    /// What is wrong when it is missing, naming it.
    pub missing: String,
    /// True when a missing requirement fails the task rather than skipping the object.
    pub fail: bool,
}

pub(crate) const RELATION_EXISTS: &str = "SELECT to_regclass($1) IS NOT NULL";
pub(crate) const FUNCTION_EXISTS: &str = "SELECT to_regprocedure($1) IS NOT NULL";
pub(crate) const ROLE_EXISTS: &str = "SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)";
/// The target account may act for the role: it is a superuser, or a member of the
/// role (what `ALTER DEFAULT PRIVILEGES FOR ROLE` asks).
pub(crate) const MAY_ACT_FOR: &str = "SELECT coalesce((SELECT rolsuper FROM pg_roles WHERE rolname = current_user), false) \
     OR EXISTS (SELECT 1 FROM pg_roles r WHERE r.rolname = $1 AND pg_has_role(current_user, r.oid, 'MEMBER'))";
/// The target account may give objects to any role ($1 is unused): it is a
/// superuser. A member of the role could too, but only where the role may create in
/// the object's schema, which a new database or schema cannot tell before the run.
pub(crate) const MAY_GIVE_TO: &str = "SELECT coalesce((SELECT rolsuper FROM pg_roles WHERE rolname = current_user), false) \
     OR $1::text IS NULL";
pub(crate) const TRIGGER_EXISTS: &str = "SELECT EXISTS (SELECT 1 FROM pg_trigger \
     WHERE tgrelid = to_regclass($1) AND tgname = $2)";
pub(crate) const RULE_EXISTS: &str = "SELECT EXISTS (SELECT 1 FROM pg_rewrite \
     WHERE ev_class = to_regclass($1) AND rulename = $2)";
pub(crate) const INHERITS: &str = "SELECT EXISTS (SELECT 1 FROM pg_inherits \
     WHERE inhrelid = to_regclass($1) AND inhparent = to_regclass($2))";
/// The target has default privileges of role $1 in schema $2 for objects of kind $3
/// (`pg_default_acl.defaclobjtype`).
pub(crate) const DEFAULT_ACL_EXISTS: &str = "SELECT EXISTS (SELECT 1 FROM pg_default_acl d \
     WHERE d.defaclrole = (SELECT oid FROM pg_roles WHERE rolname = $1) \
       AND d.defaclnamespace = (SELECT oid FROM pg_namespace WHERE nspname = $2) \
       AND d.defaclobjtype::text = $3)";
/// The target has default privileges of role $1 outside any schema for objects of
/// kind $2.
pub(crate) const GLOBAL_DEFAULT_ACL_EXISTS: &str = "SELECT EXISTS (SELECT 1 FROM pg_default_acl d \
     WHERE d.defaclrole = (SELECT oid FROM pg_roles WHERE rolname = $1) \
       AND d.defaclnamespace = 0 AND d.defaclobjtype::text = $2)";
pub(crate) const POLICY_EXISTS: &str = "SELECT EXISTS (SELECT 1 FROM pg_policy \
     WHERE polrelid = to_regclass($1) AND polname = $2)";

/// One object the task creates in a target database, with what it needs there.
#[derive(Debug, Clone)]
pub(crate) struct ObjectDef {
    pub kind: ObjectKind,
    /// See [`ObjectOutcome::name`].
    pub name: String,
    pub target_db: String,
    /// The statements that create it, in order.
    pub statements: Vec<String>,
    /// Tells whether the target has it already: one of the `*_EXISTS` statements
    /// and its text arguments.
    pub exists: Option<(&'static str, Vec<String>)>,
    pub requires: Vec<Requirement>,
    /// Objects of the plan (indexes) that must be created first.
    pub needs: Vec<usize>,
    /// The migrated table it belongs to: created only when the task builds that
    /// table (objects of a table the target already had are the target's own).
    pub on_table: Option<TableKey>,
    /// A second migrated table it needs the task to build (an inheritance parent):
    /// without it, the object is skipped with a note.
    /// With the table's target name, for the note.
    pub with_table: Option<(TableKey, String)>,
    /// For a grant on a sequence a table owns: the target table (SQL) and the
    /// column whose sequence it is. The run names that sequence when it creates the
    /// table, so its name is looked up then (`pg_get_serial_sequence`) and takes the
    /// place of [`SEQUENCE`] in the statements.
    pub sequence_of: Option<(String, String)>,
}

/// Where the sequence's name goes in the statements of [`ObjectDef::sequence_of`].
pub(crate) const SEQUENCE: &str = "{sequence}";

/// Everything one source database brings.
#[derive(Debug, Clone, Default)]
pub(crate) struct ObjectPlan {
    /// In creation order (functions, views by dependency, then what belongs to the
    /// tables); [`ObjectDef::needs`] point backwards only.
    pub objects: Vec<ObjectDef>,
    /// Objects that are not created whatever the target holds, each with the reason.
    pub skipped: Vec<String>,
    pub extensions: Vec<ExtensionNeed>,
    /// The owners of the schemas the task selects whole, as (target database, target
    /// schema, role), for those the account reading the source does not own: a
    /// schema the run creates is created for that role when it can be
    /// ([`crate::migration::run`]).
    pub schema_owners: Vec<(String, String, String)>,
    /// The schemas the run creates when the target lacks them even if they hold no
    /// table, as (target database, target schema): those the task selects whole and
    /// those its views go to.
    pub schemas: Vec<(String, String)>,
}

/// An extension some migrated object needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ExtensionNeed {
    pub name: String,
    /// The schema it is installed in on the source.
    pub schema: String,
    /// The objects needing it, as `pg_describe_object` names them.
    pub needed_by: String,
}

/// What happens to one object in a target database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Decision {
    Create,
    /// It belongs to a table the task does not build: not the task's to create.
    NotBuilt,
    /// It goes into another target database.
    Elsewhere,
    /// The target has it; kept as it is.
    Keep(String),
    /// Not created: the reason.
    Skip(String),
    /// The task cannot run: the reason.
    Fail(String),
}

/// Decides about every object of a plan's `objects` that goes into `target_db` (the
/// others are [`Decision::Elsewhere`]). `db` is a session of that database when it
/// exists; `cluster` any session of the target, for roles. `built(key)` tells
/// `built` holds the tables the task builds.
pub(crate) async fn decide(
    db: Option<&Session>,
    cluster: &Session,
    objects: &[ObjectDef],
    target_db: &str,
    conflict: ConflictMode,
    built: &HashSet<TableKey>,
) -> Result<Vec<Decision>, MigrationError> {
    let mut out: Vec<Decision> = Vec::with_capacity(objects.len());
    for o in objects {
        if o.target_db != target_db {
            out.push(Decision::Elsewhere);
            continue;
        }
        if let Some(key) = &o.on_table
            && !built.contains(key)
        {
            out.push(Decision::NotBuilt);
            continue;
        }
        if let Some((key, name)) = &o.with_table
            && !built.contains(key)
        {
            out.push(Decision::Skip(format!(
                "the task does not build {name} (the target had it), and Lifeboat does not change a table it did not create; to make it anyway, run: {}",
                o.statements.join("; ")
            )));
            continue;
        }
        out.push(decide_one(db, cluster, o, conflict, &out, objects).await?);
    }
    Ok(out)
}

async fn decide_one(
    db: Option<&Session>,
    cluster: &Session,
    o: &ObjectDef,
    conflict: ConflictMode,
    before: &[Decision],
    objects: &[ObjectDef],
) -> Result<Decision, MigrationError> {
    for &i in &o.needs {
        if let (
            Some(Decision::Skip(_) | Decision::Fail(_) | Decision::NotBuilt | Decision::Elsewhere),
            Some(n),
        ) = (before.get(i), objects.get(i))
        {
            return Ok(Decision::Skip(format!(
                "needs {} {}, which is not created",
                n.kind.describe(),
                n.name
            )));
        }
    }
    if let (Some((sql, args)), Some(s)) = (&o.exists, db)
        && holds(s, sql, args).await?
    {
        let view = matches!(o.kind, ObjectKind::View | ObjectKind::MaterializedView);
        return Ok(if view && conflict == ConflictMode::Error {
            Decision::Fail(format!(
                "{} {} already exists in the target (conflict mode error)",
                o.kind.describe(),
                o.name
            ))
        } else {
            Decision::Keep("the target has it already; kept as it is".into())
        });
    }
    let mut skip = None;
    for r in &o.requires {
        // Roles belong to the cluster; everything else to the database, which a
        // task creating the database finds empty.
        let present = if [ROLE_EXISTS, MAY_GIVE_TO, MAY_ACT_FOR].contains(&r.sql) {
            holds(cluster, r.sql, std::slice::from_ref(&r.arg)).await?
        } else {
            match db {
                Some(s) => holds(s, r.sql, std::slice::from_ref(&r.arg)).await?,
                None => false,
            }
        };
        if present {
            continue;
        }
        if r.fail {
            return Ok(Decision::Fail(format!(
                "{} {}: {}",
                o.kind.describe(),
                o.name,
                r.missing
            )));
        }
        skip.get_or_insert_with(|| r.missing.clone());
    }
    Ok(match skip {
        Some(why) => Decision::Skip(why),
        None => Decision::Create,
    })
}

async fn holds(s: &Session, sql: &str, args: &[String]) -> Result<bool, MigrationError> {
    let params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = args
        .iter()
        .map(|a| a as &(dyn tokio_postgres::types::ToSql + Sync))
        .collect();
    Ok(
        s.query_one("looking for an object in the target", sql, &params)
            .await?
            .get(0),
    )
}
