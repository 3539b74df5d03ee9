//! The pre-check of the objects around the tables: the extensions they need (failed
//! when the target cannot install one) and what happens to each view, function,
//! trigger, rule, policy and grant (failed for a conflict or a missing role or
//! function, warning for what is kept or not created). Decided with the run's own
//! [`crate::migration::objects::decide`].

use std::collections::{HashMap, HashSet};

use crate::migration::conn::{Session, connect};
use crate::migration::mapping::SourceTable;
use crate::migration::names::{display_ident, display_path};
use crate::migration::objects::{Decision, ExtensionNeed, ObjectKind, ObjectPlan, create, decide};
use crate::migration::precheck::{PrecheckItem, SourceFacts};
use crate::migration::{MigrationError, MigrationTask, Side};

/// Whether a target database can have an extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Availability {
    Installed,
    /// Its files are on the target server: the run creates it.
    Available,
    Missing,
}

/// The two items, when the task migrates the schema.
pub(crate) async fn check(
    task: &MigrationTask,
    source: &SourceFacts,
    admin: &Session,
) -> Vec<PrecheckItem> {
    if !task.spec.types.schema {
        return Vec::new();
    }
    let mut extensions = Vec::new();
    let mut found = Findings::default();
    let mut databases: Vec<&str> = Vec::new();
    for o in source.objects.values().flat_map(|p| &p.objects) {
        if !databases.contains(&o.target_db.as_str()) {
            databases.push(&o.target_db);
        }
    }
    for t in &source.tables {
        if !databases.contains(&t.mapping.target.database.as_str()) {
            databases.push(&t.mapping.target.database);
        }
    }
    for db in databases {
        let session = match connect(&task.target, Side::Target, db).await {
            Ok(s) => Some(s),
            Err(e) if e.code() == Some("3D000") => None,
            Err(e) => {
                found.failed.push(e.to_string());
                continue;
            }
        };
        let result = async {
            for (src_db, plan) in &source.objects {
                let goes_here = plan.objects.iter().any(|o| o.target_db == db)
                    || source.tables.iter().any(|t| {
                        &t.mapping.source.database == src_db && t.mapping.target.database == db
                    });
                if !goes_here {
                    continue;
                }
                for e in &plan.extensions {
                    let state = availability(session.as_ref(), admin, &e.name).await?;
                    extensions.push((e.clone(), db.to_string(), state));
                }
            }
            database(task, source, session.as_ref(), admin, db, &mut found).await
        };
        if let Err(e) = result.await {
            found
                .failed
                .push(format!("database {}: {e}", display_ident(db)));
        }
    }
    for plan in source.objects.values() {
        found.warnings.extend(plan.skipped.iter().cloned());
    }
    vec![extensions_item(&extensions), found.item()]
}

#[derive(Default)]
struct Findings {
    created: HashMap<ObjectKind, usize>,
    warnings: Vec<String>,
    failed: Vec<String>,
}

impl Findings {
    fn item(self) -> PrecheckItem {
        let mut kinds: Vec<(ObjectKind, usize)> = self.created.into_iter().collect();
        kinds.sort_by_key(|(k, _)| *k as u8);
        let created: Vec<String> = kinds
            .iter()
            .map(|(k, n)| format!("{n} {}", k.describe()))
            .collect();
        let created = if created.is_empty() {
            "nothing besides the tables".to_string()
        } else {
            created.join(", ")
        };
        if !self.failed.is_empty() {
            let mut all = self.failed;
            all.extend(self.warnings);
            return PrecheckItem::failed(
                "schema_objects",
                super::item::list(&all),
                "create the missing roles or functions in the target (or select their schemas), and move or drop what is in the way, or choose another --conflict mode; then run the pre-check again",
            );
        }
        if !self.warnings.is_empty() {
            return PrecheckItem::warning(
                "schema_objects",
                format!(
                    "to create: {created}; not created or kept: {}",
                    super::item::list(&self.warnings)
                ),
                "objects not created must be recreated by hand after the task, under the names the task gives their tables",
            );
        }
        PrecheckItem::passed("schema_objects", format!("to create: {created}"))
    }
}

async fn database(
    task: &MigrationTask,
    source: &SourceFacts,
    s: Option<&Session>,
    admin: &Session,
    db: &str,
    found: &mut Findings,
) -> Result<(), MigrationError> {
    let tables: Vec<&SourceTable> = source
        .tables
        .iter()
        .filter(|t| t.mapping.target.database == db)
        .collect();
    let built: HashSet<_> =
        create::predicted_built(s, &tables, task.spec.conflict, &HashMap::new()).await?;
    for plan in source.objects.values() {
        if let Some(s) = s {
            missing_schemas(s, plan, db, found).await?;
        }
        let decisions = decide(s, admin, &plan.objects, db, task.spec.conflict, &built).await?;
        for (o, d) in plan.objects.iter().zip(decisions) {
            let what = format!("{} {}", o.kind.describe(), o.name);
            match d {
                Decision::Create => *found.created.entry(o.kind).or_default() += 1,
                Decision::Keep(note) | Decision::Skip(note) => found
                    .warnings
                    .push(format!("{what} is not created: {note}")),
                Decision::Fail(why) => found.failed.push(why),
                Decision::NotBuilt | Decision::Elsewhere => {}
            }
        }
    }
    Ok(())
}

/// The schemas the run would create for `plan` in the existing database `db`: each
/// needs CREATE on the database (in a database the task creates, the account owns it).
async fn missing_schemas(
    s: &Session,
    plan: &ObjectPlan,
    db: &str,
    found: &mut Findings,
) -> Result<(), MigrationError> {
    for (_, schema) in plan.schemas.iter().filter(|(d, _)| d == db) {
        let r = s
            .query_one(
                "looking for a schema the objects go to",
                "SELECT NOT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1) \
                        AND NOT has_database_privilege(current_database(), 'CREATE'), \
                        current_user::text",
                &[schema],
            )
            .await?;
        if r.get::<_, bool>(0) {
            found.failed.push(format!(
                "schema {} does not exist in the target and {} has no CREATE on database {} to create it",
                display_path(&[db, schema]),
                display_ident(r.get::<_, &str>(1)),
                display_ident(db)
            ));
        }
    }
    Ok(())
}

async fn availability(
    db: Option<&Session>,
    admin: &Session,
    name: &str,
) -> Result<Availability, MigrationError> {
    if let Some(s) = db {
        let installed: bool = s
            .query_one(
                "looking for an extension",
                "SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = $1)",
                &[&name],
            )
            .await?
            .get(0);
        if installed {
            return Ok(Availability::Installed);
        }
    }
    let available: bool = admin
        .query_one(
            "looking for an available extension",
            "SELECT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = $1)",
            &[&name],
        )
        .await?
        .get(0);
    Ok(if available {
        Availability::Available
    } else {
        Availability::Missing
    })
}

/// The extensions item: failed naming each extension the target cannot install and
/// what needs it, else passed naming those it has and those the run creates.
pub(crate) fn extensions_item(found: &[(ExtensionNeed, String, Availability)]) -> PrecheckItem {
    let mut missing = Vec::new();
    let mut fine = Vec::new();
    for (e, db, state) in found {
        let name = format!(
            "{} in database {}",
            display_ident(&e.name),
            display_ident(db)
        );
        match state {
            Availability::Missing => missing.push(format!(
                "extension {} is not available on the target (needed by {}); it is installed on the source",
                display_ident(&e.name),
                e.needed_by
            )),
            Availability::Installed => {}
            Availability::Available => fine.push(format!("{name} (created by the task)")),
        }
    }
    if !missing.is_empty() {
        return PrecheckItem::failed(
            "extensions",
            super::item::list(&missing),
            "install the extension's package on the target server (its control file must be in the target's extension directory), then run the pre-check again",
        );
    }
    if fine.is_empty() {
        return PrecheckItem::passed(
            "extensions",
            "the target has every extension the objects need",
        );
    }
    PrecheckItem::passed("extensions", super::item::list(&fine))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::migration::PrecheckStatus;

    #[test]
    fn a_missing_extension_fails_naming_what_needs_it() {
        let need = ExtensionNeed {
            name: "postgis".into(),
            schema: "public".into(),
            needed_by: "column geom of table public.places".into(),
        };
        let item = extensions_item(&[(need.clone(), "shop".into(), Availability::Missing)]);
        assert_eq!(item.status, PrecheckStatus::Failed);
        assert_eq!(
            item.detail,
            "extension postgis is not available on the target (needed by column geom of table public.places); it is installed on the source"
        );
        assert!(item.advice.contains("install the extension's package"));
        let item = extensions_item(&[(need, "shop".into(), Availability::Available)]);
        assert_eq!(item.status, PrecheckStatus::Passed);
        assert_eq!(
            item.detail,
            "postgis in database shop (created by the task)"
        );
    }
}
