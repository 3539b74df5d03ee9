//! Reading the objects of one source database into an [`ObjectPlan`], inside the run's
//! snapshot (or the pre-check's session).
//!
//! Which objects: the functions, procedures, views and materialized views of the
//! schemas the task selects whole (a view may also be named alone), and the
//! triggers, rules, row-level security, policies and grants of the selected tables.
//! Definitions come from PostgreSQL's deparsers, printed under the session's
//! `search_path = pg_catalog`, so every name in them is schema-qualified.

use std::collections::{HashMap, HashSet};

use crate::migration::MigrationError;
use crate::migration::conn::Session;
use crate::migration::mapping::{self, QualifiedTable, SourceTable};
use crate::migration::names::{display_ident, qualified, quote_ident, quote_literal};
use crate::migration::objects::tables;
use crate::migration::objects::{
    DEFAULT_ACL_EXISTS, ExtensionNeed, FUNCTION_EXISTS, GLOBAL_DEFAULT_ACL_EXISTS, MAY_ACT_FOR,
    ObjectDef, ObjectKind, ObjectPlan, RELATION_EXISTS, ROLE_EXISTS, Requirement,
};
use crate::migration::spec::ObjectMapping;

/// What the loader knows about names while it builds the plan.
pub(super) struct Names<'a> {
    pub(super) db: &'a str,
    pub(super) by_path: HashMap<Vec<&'a str>, &'a ObjectMapping>,
    /// Source and target of every migrated table and partition, by source oid.
    pub(super) migrated: HashMap<u32, (QualifiedTable, QualifiedTable)>,
    /// Source name of every relation a definition refers to.
    pub(super) relations: HashMap<u32, QualifiedTable>,
    /// Views of the plan by source oid: their index, or `None` when not created.
    pub(super) views: HashMap<u32, Option<usize>>,
    pub(super) view_targets: HashMap<u32, QualifiedTable>,
    /// Functions of the plan by oid: their index, or `None` when not created.
    pub(super) functions: HashMap<u32, Option<usize>>,
    /// The account the task creates objects with in the target: objects it owns
    /// on the source need no change of owner.
    pub(super) target_account: Option<&'a str>,
}

impl Names<'_> {
    /// Where the task puts `schema.name` of this database, if it selects it.
    pub(super) fn target(&self, schema: &str, name: &str) -> Option<QualifiedTable> {
        mapping::map_path(&[self.db, schema, name], &self.by_path)
    }

    /// What an object referring to the relations `refs` and calling `procs` needs in
    /// target database `db`, or why it cannot be created: a definition names the
    /// source's relations, so each must arrive (or be) in the target under that name.
    pub(super) fn references(
        &self,
        refs: &[u32],
        procs: &[(u32, String, bool)],
        db: &str,
    ) -> Result<(Vec<usize>, Vec<Requirement>), String> {
        let (mut needs, mut requires) = (Vec::new(), Vec::new());
        for oid in refs {
            let Some(source) = self.relations.get(oid) else {
                continue;
            };
            let moved = self
                .migrated
                .get(oid)
                .map(|(_, t)| t)
                .or_else(|| self.view_targets.get(oid));
            if let Some(t) = moved {
                if t.schema != source.schema || t.table != source.table || t.database != db {
                    return Err(format!(
                        "it refers to {source}, which the task migrates as {t}, and its definition names the source (Lifeboat does not rewrite SQL text)"
                    ));
                }
                match self.views.get(oid) {
                    Some(Some(i)) => needs.push(*i),
                    Some(None) => {
                        return Err(format!(
                            "it refers to the view {source}, which is not created"
                        ));
                    }
                    None => {}
                }
                continue;
            }
            requires.push(Requirement {
                sql: RELATION_EXISTS,
                arg: qualified(&source.schema, &source.table),
                missing: format!(
                    "it refers to {}.{}, which the target lacks and the task does not migrate",
                    display_ident(&source.schema),
                    display_ident(&source.table)
                ),
                fail: false,
            });
        }
        for (oid, signature, in_extension) in procs {
            match self.functions.get(oid) {
                Some(Some(i)) => needs.push(*i),
                Some(None) => {
                    return Err(format!("it calls {signature}, which is not created"));
                }
                None if *in_extension => {}
                None => requires.push(Requirement {
                    sql: FUNCTION_EXISTS,
                    arg: signature.clone(),
                    missing: format!(
                        "it calls {signature}, which the target lacks and the task does not migrate"
                    ),
                    fail: false,
                }),
            }
        }
        Ok((needs, requires))
    }
}

/// The plan of the source database of `s` for `tables` (its selected tables) and
/// `objects` (the task's objects in this database).
pub(crate) async fn load(
    s: &Session,
    tables: &[SourceTable],
    objects: &[&ObjectMapping],
    target_account: Option<&str>,
) -> Result<ObjectPlan, MigrationError> {
    let mut names = Names {
        db: &s.database,
        by_path: objects
            .iter()
            .map(|o| (o.source.iter().map(String::as_str).collect(), *o))
            .collect(),
        migrated: HashMap::new(),
        relations: HashMap::new(),
        views: HashMap::new(),
        view_targets: HashMap::new(),
        functions: HashMap::new(),
        target_account,
    };
    for t in tables {
        names
            .migrated
            .insert(t.oid, (t.mapping.source.clone(), t.mapping.target.clone()));
        for p in &t.partitions {
            names
                .migrated
                .insert(p.oid, (p.source.clone(), p.target.clone()));
        }
    }
    let mut plan = ObjectPlan::default();
    functions(s, &mut names, &mut plan).await?;
    views(s, &mut names, &mut plan).await?;
    tables::triggers(s, &names, tables, &mut plan).await?;
    tables::rules_and_policies(s, &mut names, tables, &mut plan).await?;
    let table_oids: Vec<u32> = tables.iter().map(|t| t.oid).collect();
    let owners = tables::owners(s, "pg_class", &table_oids, names.target_account).await?;
    for t in tables {
        let sql_name = qualified(&t.mapping.target.schema, &t.mapping.target.table);
        let label = t.mapping.target.to_string();
        let on = Some(t.mapping.key.clone());
        let mut acl = tables::grants(s, tables::RELATION_ACL, t.oid).await?;
        acl.extend(tables::grants(s, tables::COLUMN_ACL, t.oid).await?);
        plan.objects.extend(tables::grant_defs(
            &acl,
            ("TABLE", &sql_name, &label),
            &t.mapping.target.database,
            Vec::new(),
            on.clone(),
        ));
        plan.objects.extend(tables::sequence_grants(s, t).await?);
        if let Some(owner) = owners.get(&t.oid) {
            // Its sequences and indexes follow the table; its partitions are given
            // to the same owner (ALTER TABLE does not recurse into them).
            let partitions = if t.partitioned {
                let body = format!(
                    "DECLARE p regclass; BEGIN \
                     FOR p IN SELECT relid FROM pg_partition_tree({}::regclass) WHERE level > 0 LOOP \
                     EXECUTE format('ALTER TABLE %s OWNER TO %I', p, {}); END LOOP; END",
                    quote_literal(&sql_name),
                    quote_literal(owner)
                );
                // A dollar quote the names cannot end.
                let tag = (0..)
                    .map(|n| format!("$lb{n}$"))
                    .find(|t| !body.contains(t.as_str()))
                    .unwrap_or_default();
                vec![format!("DO {tag}{body}{tag}")]
            } else {
                Vec::new()
            };
            plan.objects.push(tables::owner_def(
                ("TABLE", &sql_name, &label),
                owner,
                &t.mapping.target.database,
                Vec::new(),
                on,
                partitions,
            ));
        }
    }
    inheritance(s, tables, &mut plan).await?;
    schemas(s, &names, &mut plan).await?;
    database_defaults(s, &names, &mut plan).await?;
    let mut oids: Vec<u32> = tables.iter().map(|t| t.oid).collect();
    oids.extend(names.views.keys());
    let procs: Vec<u32> = names
        .functions
        .iter()
        .filter(|(_, i)| i.is_some())
        .map(|(o, _)| *o)
        .collect();
    plan.extensions = extensions(s, &oids, &procs).await?;
    Ok(plan)
}

async fn functions(
    s: &Session,
    names: &mut Names<'_>,
    plan: &mut ObjectPlan,
) -> Result<(), MigrationError> {
    let rows = s
        .query(
            "reading the functions of the selected schemas",
            &format!(
                "SELECT p.oid, n.nspname::text, p.prokind::text, \
                        format('%I.%I(%s)', n.nspname, p.proname, oidvectortypes(p.proargtypes)), \
                        EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass \
                                AND d.objid = p.oid AND d.deptype = 'e'), \
                        CASE WHEN p.prokind IN ('f', 'p') THEN pg_get_functiondef(p.oid) END, \
                        obj_description(p.oid, 'pg_proc'), \
                        p.proacl IS NOT NULL AND NOT EXISTS (SELECT 1 FROM aclexplode(p.proacl) a \
                                WHERE a.grantee = 0 AND a.privilege_type = 'EXECUTE'), \
                        CASE WHEN pg_get_userbyid(p.proowner)::text IS DISTINCT FROM $1::text \
                             THEN pg_get_userbyid(p.proowner)::text END \
                 FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace \
                 WHERE {} ORDER BY p.oid",
                mapping::SKIPPED_SCHEMAS
            ),
            &[&names.target_account],
        )
        .await?;
    for r in rows {
        let (oid, schema, kind, signature): (u32, String, String, String) =
            (r.get(0), r.get(1), r.get(2), r.get(3));
        let Some(target) = names.target(&schema, "") else {
            continue;
        };
        if r.get::<_, bool>(4) {
            continue; // The extension brings it.
        }
        let label = format!("{}.{signature}", display_ident(&target.database));
        let def: Option<String> = r.get(5);
        let problem = match (kind.as_str(), def) {
            ("a" | "w", _) | (_, None) => Err(format!(
                "{} {label} is not migrated: aggregates and window functions are not; create it in the target by hand",
                if kind == "w" {
                    "window function"
                } else {
                    "aggregate"
                }
            )),
            _ if target.schema != schema => Err(format!(
                "function {label} is not created: the task migrates its schema as {}, and its definition names the source schema",
                display_ident(&target.schema)
            )),
            (_, Some(def)) => Ok(def),
        };
        let def = match problem {
            Ok(def) => def,
            Err(why) => {
                plan.skipped.push(why);
                names.functions.insert(oid, None);
                continue;
            }
        };
        // A body is text PostgreSQL does not track: a table it names and the task
        // renames is found by its name, and the function keeps using that name.
        let body = words(&def);
        let mut renamed: Vec<String> = names
            .migrated
            .values()
            .filter(|(s, t)| {
                (s.schema != t.schema || s.table != t.table)
                    && body.contains(&s.table.to_lowercase())
            })
            .map(|(s, t)| format!("{s} (migrated as {t})"))
            .collect();
        renamed.sort();
        if !renamed.is_empty() {
            plan.skipped.push(format!(
                "function {label} is created as the source has it, and its body names {}: it keeps using the source's name (Lifeboat does not rewrite SQL text); change it in the target if it must use the new one",
                renamed.join(", ")
            ));
        }
        let (kind, keyword) = if kind == "p" {
            (ObjectKind::Procedure, "PROCEDURE")
        } else {
            (ObjectKind::Function, "FUNCTION")
        };
        // The target was checked to lack this signature: a plain CREATE then fails
        // rather than replaces, should one appear in between.
        let create = match def.strip_prefix("CREATE OR REPLACE ") {
            Some(rest) => format!("CREATE {rest}"),
            None => def,
        };
        let mut statements = vec![create];
        if r.get::<_, bool>(7) {
            statements.push(format!(
                "REVOKE EXECUTE ON {keyword} {signature} FROM PUBLIC"
            ));
        }
        if let Some(comment) = r.get::<_, Option<String>>(6) {
            statements.push(format!(
                "COMMENT ON {keyword} {signature} IS {}",
                quote_literal(&comment)
            ));
        }
        let index = plan.objects.len();
        names.functions.insert(oid, Some(index));
        plan.objects.push(ObjectDef {
            kind,
            name: label.clone(),
            target_db: target.database.clone(),
            statements,
            exists: Some((FUNCTION_EXISTS, vec![signature.clone()])),
            requires: Vec::new(),
            needs: Vec::new(),
            on_table: None,
            with_table: None,
            sequence_of: None,
        });
        let acl = tables::grants(s, tables::FUNCTION_ACL, oid).await?;
        plan.objects.extend(tables::grant_defs(
            &acl,
            (keyword, &signature, &label),
            &target.database,
            vec![index],
            None,
        ));
        if let Some(owner) = r.get::<_, Option<String>>(8) {
            plan.objects.push(tables::owner_def(
                (keyword, &signature, &label),
                &owner,
                &target.database,
                vec![index],
                None,
                Vec::new(),
            ));
        }
    }
    Ok(())
}

/// The relations and functions the definitions of `oids` (views, rules or
/// policies, as catalog `class`) refer to, except `self_oid`'s own relation.
const REFERENCES: &str = "SELECT d.objid, \
        coalesce(array_agg(DISTINCT d.refobjid) FILTER (WHERE d.refclassid = 'pg_class'::regclass \
                 AND d.refobjid <> $3), '{}'), \
        coalesce(array_agg(DISTINCT d.refobjid) FILTER (WHERE d.refclassid = 'pg_proc'::regclass), '{}') \
     FROM pg_depend d WHERE d.classid = $1::text::regclass AND d.objid = ANY($2) GROUP BY d.objid";

type Refs = HashMap<u32, (Vec<u32>, Vec<(u32, String, bool)>)>;

/// See [`REFERENCES`]; also learns the names of the relations referred to.
pub(super) async fn references(
    s: &Session,
    names: &mut Names<'_>,
    class: &str,
    oids: &[u32],
    self_oid: u32,
) -> Result<Refs, MigrationError> {
    let rows = s
        .query(
            "reading what the definitions refer to",
            REFERENCES,
            &[&class, &oids, &self_oid],
        )
        .await?;
    let mut out = HashMap::new();
    let mut all: Vec<u32> = Vec::new();
    let mut procs: Vec<u32> = Vec::new();
    for r in &rows {
        let rels: Vec<u32> = r.get(1);
        let fns: Vec<u32> = r.get(2);
        all.extend(&rels);
        procs.extend(&fns);
        out.insert(r.get::<_, u32>(0), (rels, fns));
    }
    for r in s
        .query(
            "reading the names of referred relations",
            "SELECT c.oid, n.nspname::text, c.relname::text FROM pg_class c \
             JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = ANY($1)",
            &[&all],
        )
        .await?
    {
        names.relations.insert(
            r.get(0),
            QualifiedTable {
                database: names.db.to_string(),
                schema: r.get(1),
                table: r.get(2),
            },
        );
    }
    let functions: HashMap<u32, (String, bool)> = s
        .query(
            "reading the functions definitions call",
            "SELECT p.oid, format('%I.%I(%s)', n.nspname, p.proname, oidvectortypes(p.proargtypes)), \
                    n.nspname = 'pg_catalog' OR EXISTS (SELECT 1 FROM pg_depend d \
                        WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e') \
             FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE p.oid = ANY($1)",
            &[&procs],
        )
        .await?
        .iter()
        .map(|r| (r.get(0), (r.get(1), r.get(2))))
        .collect();
    Ok(out
        .into_iter()
        .map(|(oid, (rels, fns))| {
            let fns = fns
                .into_iter()
                .filter_map(|f| functions.get(&f).map(|(sig, ext)| (f, sig.clone(), *ext)))
                .collect();
            (oid, (rels, fns))
        })
        .collect())
}

async fn views(
    s: &Session,
    names: &mut Names<'_>,
    plan: &mut ObjectPlan,
) -> Result<(), MigrationError> {
    let rows = s
        .query(
            "reading the views of the selected schemas",
            &format!(
                "SELECT c.oid, n.nspname::text, c.relname::text, c.relkind::text, \
                        pg_get_viewdef(c.oid, true), array_to_string(c.reloptions, ', '), \
                        obj_description(c.oid, 'pg_class'), \
                        coalesce((SELECT array_agg(format('COMMENT ON COLUMN %%s.%I IS %L', a.attname, \
                                          col_description(c.oid, a.attnum)) ORDER BY a.attnum) \
                                  FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0 \
                                    AND col_description(c.oid, a.attnum) IS NOT NULL), '{{}}'), \
                        coalesce((SELECT array_agg(pg_get_indexdef(i.indexrelid) ORDER BY i.indexrelid) \
                                  FROM pg_index i WHERE i.indrelid = c.oid), '{{}}'), \
                        (SELECT rw.oid FROM pg_rewrite rw WHERE rw.ev_class = c.oid AND rw.rulename = '_RETURN') \
                 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE c.relkind IN ('v', 'm') AND {} \
                   AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass \
                                   AND d.objid = c.oid AND d.deptype = 'e') \
                 ORDER BY c.oid",
                mapping::SKIPPED_SCHEMAS
            ),
            &[],
        )
        .await?;
    let selected: Vec<_> = rows
        .iter()
        .filter_map(|r| Some((r, names.target(r.get(1), r.get(2))?)))
        .collect();
    let rules: Vec<u32> = selected
        .iter()
        .filter_map(|(r, _)| r.get::<_, Option<u32>>(9))
        .collect();
    let mut refs: Refs = HashMap::new();
    for (rule, entry) in references(s, names, "pg_rewrite", &rules, 0).await? {
        refs.insert(rule, entry);
    }
    for (r, target) in &selected {
        names.view_targets.insert(r.get(0), target.clone());
    }
    // Dependencies first: a view is placed once every selected view it refers to is.
    let mut placed: HashSet<u32> = HashSet::new();
    let mut order = Vec::new();
    let refs_of = |r: &tokio_postgres::Row| -> (Vec<u32>, Vec<(u32, String, bool)>) {
        r.get::<_, Option<u32>>(9)
            .and_then(|rule| refs.get(&rule).cloned())
            .unwrap_or_default()
    };
    while order.len() < selected.len() {
        let before = order.len();
        for (i, (r, _)) in selected.iter().enumerate() {
            let oid: u32 = r.get(0);
            if placed.contains(&oid) {
                continue;
            }
            let waits = refs_of(r)
                .0
                .iter()
                .any(|d| *d != oid && names.view_targets.contains_key(d) && !placed.contains(d));
            if !waits {
                placed.insert(oid);
                order.push(i);
            }
        }
        if order.len() == before {
            // A cycle PostgreSQL would not allow; place the rest as they come.
            let rest: Vec<usize> = (0..selected.len()).filter(|i| !order.contains(i)).collect();
            order.extend(rest);
        }
    }
    for i in order {
        let (r, target) = &selected[i];
        let oid: u32 = r.get(0);
        let (mut rels, procs) = refs_of(r);
        // A view's rule refers to the view itself, which the definition does not name.
        rels.retain(|d| *d != oid);
        let materialized = r.get::<_, &str>(3) == "m";
        let kind = if materialized {
            ObjectKind::MaterializedView
        } else {
            ObjectKind::View
        };
        let source = QualifiedTable {
            database: names.db.to_string(),
            schema: r.get(1),
            table: r.get(2),
        };
        let (needs, requires) = match names.references(&rels, &procs, &target.database) {
            Ok(found) => found,
            Err(why) => {
                plan.skipped.push(format!(
                    "{} {target} is not created: {why}",
                    kind.describe()
                ));
                names.views.insert(oid, None);
                continue;
            }
        };
        let sql_name = qualified(&target.schema, &target.table);
        let def: &str = r.get(4);
        let def = def.trim_end().trim_end_matches(';');
        let with = match r.get::<_, Option<String>>(5) {
            Some(options) if !options.is_empty() => format!(" WITH ({options})"),
            _ => String::new(),
        };
        let mut statements = Vec::new();
        if materialized {
            // Filled by the REFRESH below, after the tables' rows are in.
            statements.push(format!(
                "CREATE MATERIALIZED VIEW {sql_name}{with} AS {def} WITH NO DATA"
            ));
            let indexes: Vec<String> = r.get(8);
            if source.schema == target.schema && source.table == target.table {
                statements.extend(indexes);
            } else if !indexes.is_empty() {
                plan.skipped.push(format!(
                    "the {} indexes of materialized view {target} are not created: it is renamed from {source} and their definitions name the source",
                    indexes.len()
                ));
            }
            statements.push(format!("REFRESH MATERIALIZED VIEW {sql_name}"));
        } else {
            statements.push(format!("CREATE VIEW {sql_name}{with} AS {def}"));
        }
        if let Some(comment) = r.get::<_, Option<String>>(6) {
            let keyword = if materialized {
                "MATERIALIZED VIEW"
            } else {
                "VIEW"
            };
            statements.push(format!(
                "COMMENT ON {keyword} {sql_name} IS {}",
                quote_literal(&comment)
            ));
        }
        for c in r.get::<_, Vec<String>>(7) {
            statements.push(c.replacen("%s", &sql_name, 1));
        }
        // A view selected alone may go to a schema the target lacks: the run creates
        // it as it creates a table's.
        let schema = (target.database.clone(), target.schema.clone());
        if !plan.schemas.contains(&schema) {
            plan.schemas.push(schema);
        }
        let index = plan.objects.len();
        names.views.insert(oid, Some(index));
        plan.objects.push(ObjectDef {
            kind,
            name: target.to_string(),
            target_db: target.database.clone(),
            statements,
            exists: Some((RELATION_EXISTS, vec![sql_name.clone()])),
            requires,
            needs,
            on_table: None,
            with_table: None,
            sequence_of: None,
        });
        let acl = tables::grants(s, tables::RELATION_ACL, oid).await?;
        plan.objects.extend(tables::grant_defs(
            &acl,
            ("TABLE", &sql_name, &target.to_string()),
            &target.database,
            vec![index],
            None,
        ));
        if let Some(owner) = tables::owners(s, "pg_class", &[oid], names.target_account)
            .await?
            .get(&oid)
        {
            let keyword = if materialized {
                "MATERIALIZED VIEW"
            } else {
                "VIEW"
            };
            plan.objects.push(tables::owner_def(
                (keyword, &sql_name, &target.to_string()),
                owner,
                &target.database,
                vec![index],
                None,
                Vec::new(),
            ));
        }
    }
    Ok(())
}

/// The extensions whose types or functions the relations `oids` (columns, defaults,
/// constraints, view and rule definitions, triggers, policies) and the functions
/// `procs` (argument and result types) use, found through `pg_depend`.
async fn extensions(
    s: &Session,
    oids: &[u32],
    procs: &[u32],
) -> Result<Vec<ExtensionNeed>, MigrationError> {
    let rows = s
        .query(
            "reading the extensions the objects need",
            "WITH used(refclassid, refobjid, classid, objid, objsubid) AS ( \
                 SELECT d.refclassid, d.refobjid, d.classid, d.objid, d.objsubid FROM pg_depend d \
                 WHERE (d.classid = 'pg_class'::regclass AND d.objid = ANY($1)) \
                    OR (d.classid = 'pg_proc'::regclass AND d.objid = ANY($2)) \
                    OR (d.classid = 'pg_rewrite'::regclass AND d.objid IN (SELECT oid FROM pg_rewrite WHERE ev_class = ANY($1))) \
                    OR (d.classid = 'pg_attrdef'::regclass AND d.objid IN (SELECT oid FROM pg_attrdef WHERE adrelid = ANY($1))) \
                    OR (d.classid = 'pg_constraint'::regclass AND d.objid IN (SELECT oid FROM pg_constraint WHERE conrelid = ANY($1))) \
                    OR (d.classid = 'pg_trigger'::regclass AND d.objid IN (SELECT oid FROM pg_trigger WHERE tgrelid = ANY($1))) \
                    OR (d.classid = 'pg_policy'::regclass AND d.objid IN (SELECT oid FROM pg_policy WHERE polrelid = ANY($1))) \
               UNION ALL \
                 SELECT 'pg_type'::regclass::oid, CASE WHEN t.typcategory = 'A' THEN t.typelem ELSE t.oid END, \
                        'pg_class'::regclass::oid, a.attrelid, a.attnum::int4 \
                 FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid \
                 WHERE a.attrelid = ANY($1) AND a.attnum > 0 AND NOT a.attisdropped \
             ) \
             SELECT e.extname::text, n.nspname::text, \
                    string_agg(DISTINCT pg_describe_object(u.classid, u.objid, u.objsubid), ', ') \
             FROM used u JOIN pg_depend x ON x.classid = u.refclassid AND x.objid = u.refobjid \
                  AND x.refclassid = 'pg_extension'::regclass AND x.deptype = 'e' \
             JOIN pg_extension e ON e.oid = x.refobjid JOIN pg_namespace n ON n.oid = e.extnamespace \
             GROUP BY 1, 2 ORDER BY 1",
            &[&oids, &procs],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| ExtensionNeed {
            name: r.get(0),
            schema: r.get(1),
            needed_by: r.get(2),
        })
        .collect())
}

/// `ALTER TABLE child INHERIT parent` for every inheritance edge between two tables of
/// the task, in the order of the child's parents (`inhseqno`, the order in which its
/// inherited columns are merged). The child is created as a plain table with all its
/// columns and constraints, the parent's included, so `INHERIT` finds them matching;
/// it is run only when the task builds both tables. An edge into another target
/// database cannot be made: the plan says so.
async fn inheritance(
    s: &Session,
    tables: &[SourceTable],
    plan: &mut ObjectPlan,
) -> Result<(), MigrationError> {
    let by_oid: HashMap<u32, &SourceTable> = tables.iter().map(|t| (t.oid, t)).collect();
    let oids: Vec<u32> = by_oid.keys().copied().collect();
    let rows = s
        .query(
            "reading the inheritance of the selected tables",
            "SELECT i.inhrelid, i.inhparent FROM pg_inherits i \
             JOIN pg_class c ON c.oid = i.inhrelid \
             WHERE i.inhrelid = ANY($1) AND NOT c.relispartition \
             ORDER BY i.inhrelid, i.inhseqno",
            &[&oids],
        )
        .await?;
    for r in rows {
        let (Some(child), Some(parent)) = (
            by_oid.get(&r.get::<_, u32>(0)),
            by_oid.get(&r.get::<_, u32>(1)),
        ) else {
            continue;
        };
        let (c, p) = (&child.mapping.target, &parent.mapping.target);
        if c.database != p.database {
            plan.skipped.push(format!(
                "{c} was migrated as a plain table, without inheriting from {p}: they go into different databases"
            ));
            continue;
        }
        let (c_sql, p_sql) = (
            qualified(&c.schema, &c.table),
            qualified(&p.schema, &p.table),
        );
        plan.objects.push(ObjectDef {
            kind: ObjectKind::Inheritance,
            name: format!("{c} inherits from {p}"),
            target_db: c.database.clone(),
            statements: vec![format!("ALTER TABLE {c_sql} INHERIT {p_sql}")],
            exists: Some((super::INHERITS, vec![c_sql, p_sql])),
            requires: Vec::new(),
            needs: Vec::new(),
            on_table: Some(child.mapping.key.clone()),
            with_table: Some((parent.mapping.key.clone(), p.to_string())),
            sequence_of: None,
        });
    }
    Ok(())
}

/// (schema, role, `defaclobjtype`) of default privileges.
type DefaultAclKey = (String, String, String);
/// (grantee, `None` for PUBLIC; privilege; grantable).
type DefaultAclEntry = (Option<String>, String, bool);

/// What the schemas the task selects whole have of their own: their owners, and the
/// default privileges set in them (`ALTER DEFAULT PRIVILEGES ... IN SCHEMA`), one
/// object per role and kind of object, kept as they are when the target has some
/// for that role, schema and kind already.
async fn schemas(
    s: &Session,
    names: &Names<'_>,
    plan: &mut ObjectPlan,
) -> Result<(), MigrationError> {
    let owners = s
        .query(
            "reading the owners of the selected schemas",
            &format!(
                "SELECT n.nspname::text, pg_get_userbyid(n.nspowner)::text, \
                        pg_get_userbyid(n.nspowner)::text IS DISTINCT FROM $1::text \
                 FROM pg_namespace n WHERE {} ORDER BY 1",
                mapping::SKIPPED_SCHEMAS
            ),
            &[&names.target_account],
        )
        .await?;
    for r in owners {
        if let Some(t) = names.target(r.get(0), "") {
            if r.get::<_, bool>(2) {
                plan.schema_owners
                    .push((t.database.clone(), t.schema.clone(), r.get(1)));
            }
            plan.schemas.push((t.database, t.schema));
        }
    }
    let rows = s
        .query(
            "reading the default privileges of the selected schemas",
            &format!(
                "SELECT n.nspname::text, pg_get_userbyid(d.defaclrole)::text, d.defaclobjtype::text, \
                        g.rolname::text, a.privilege_type, a.is_grantable \
                 FROM pg_default_acl d JOIN pg_namespace n ON n.oid = d.defaclnamespace \
                 CROSS JOIN LATERAL aclexplode(d.defaclacl) a \
                 LEFT JOIN pg_roles g ON g.oid = a.grantee \
                 WHERE {} AND d.defaclobjtype IN ('r', 'S', 'f', 'T') ORDER BY 1, 2, 3, 4, 5",
                mapping::SKIPPED_SCHEMAS
            ),
            &[],
        )
        .await?;
    // (schema, role, kind) -> (grantee, privilege, grantable), in order.
    let mut groups: Vec<(DefaultAclKey, Vec<DefaultAclEntry>)> = Vec::new();
    for r in rows {
        let key: (String, String, String) = (r.get(0), r.get(1), r.get(2));
        let entry = (r.get(3), r.get(4), r.get(5));
        match groups.last_mut() {
            Some((k, list)) if *k == key => list.push(entry),
            _ => groups.push((key, vec![entry])),
        }
    }
    for ((schema, role, kind), entries) in groups {
        if let Some(target) = names.target(&schema, "") {
            plan.objects.push(default_acl_def(
                &role,
                &kind,
                &entries,
                &target.database,
                Some(&target.schema),
            ));
        }
    }
    Ok(())
}

/// The default privileges a database holds outside any schema
/// (`ALTER DEFAULT PRIVILEGES FOR ROLE r GRANT|REVOKE ...` without `IN SCHEMA`),
/// brought when the task selects the whole database, as `pg_dump` of it would. Such
/// an entry replaces the built-in defaults of the role (see `acldefault`) rather
/// than adding to them, so it is created by revoking everything, then granting what
/// the source holds; the target's entry for that role and kind, if any, is kept.
async fn database_defaults(
    s: &Session,
    names: &Names<'_>,
    plan: &mut ObjectPlan,
) -> Result<(), MigrationError> {
    // Only the whole database maps `db` alone (no schema is named "").
    let Some(target) = names.target("", "") else {
        return Ok(());
    };
    let rows = s
        .query(
            "reading the default privileges of the selected database",
            "SELECT pg_get_userbyid(d.defaclrole)::text, d.defaclobjtype::text, \
                    g.rolname::text, a.privilege_type, coalesce(a.is_grantable, false), \
                    a.grantee IS NULL \
             FROM pg_default_acl d \
             LEFT JOIN LATERAL aclexplode(d.defaclacl) a ON true \
             LEFT JOIN pg_roles g ON g.oid = a.grantee \
             WHERE d.defaclnamespace = 0 AND d.defaclobjtype IN ('r', 'S', 'f', 'T', 'n') \
             ORDER BY 1, 2, 3, 4, 5",
            &[],
        )
        .await?;
    let mut groups: Vec<((String, String), Vec<DefaultAclEntry>)> = Vec::new();
    for r in rows {
        let key: (String, String) = (r.get(0), r.get(1));
        let list = match groups.last_mut() {
            Some((k, list)) if *k == key => list,
            _ => {
                groups.push((key, Vec::new()));
                &mut groups.last_mut().expect("just pushed").1
            }
        };
        // An entry that revokes everything holds no privilege at all.
        if !r.get::<_, bool>(5) {
            list.push((r.get(2), r.get(3), r.get(4)));
        }
    }
    for ((role, kind), entries) in groups {
        plan.objects.push(default_acl_def(
            &role,
            &kind,
            &entries,
            &target.database,
            None,
        ));
    }
    Ok(())
}

/// The object that sets the default privileges of `role` for objects of `kind`
/// (`pg_default_acl.defaclobjtype`) to `entries`, in `schema` or, for `None`, in the
/// whole database.
fn default_acl_def(
    role: &str,
    kind: &str,
    entries: &[DefaultAclEntry],
    database: &str,
    schema: Option<&str>,
) -> ObjectDef {
    let on = match kind {
        "r" => "TABLES",
        "S" => "SEQUENCES",
        "f" => "FUNCTIONS",
        "n" => "SCHEMAS",
        _ => "TYPES",
    };
    let prefix = match schema {
        Some(schema) => format!(
            "ALTER DEFAULT PRIVILEGES FOR ROLE {} IN SCHEMA {}",
            quote_ident(role),
            quote_ident(schema)
        ),
        None => format!("ALTER DEFAULT PRIVILEGES FOR ROLE {}", quote_ident(role)),
    };
    let (mut statements, mut shown, mut requires) = (Vec::new(), Vec::new(), Vec::new());
    if schema.is_none() {
        // The built-in defaults go to the role itself and, for functions and types,
        // to PUBLIC.
        statements.push(format!("{prefix} REVOKE ALL ON {on} FROM PUBLIC"));
        statements.push(format!(
            "{prefix} REVOKE ALL ON {on} FROM {}",
            quote_ident(role)
        ));
    }
    let mut grantees: Vec<&Option<String>> = Vec::new();
    for (g, _, _) in entries {
        if !grantees.contains(&g) {
            grantees.push(g);
        }
    }
    for grantee in grantees {
        let to = grantee
            .as_deref()
            .map(quote_ident)
            .unwrap_or_else(|| "PUBLIC".into());
        let who = grantee
            .as_deref()
            .map(display_ident)
            .unwrap_or_else(|| "PUBLIC".into());
        for grantable in [false, true] {
            let privileges: Vec<&str> = entries
                .iter()
                .filter(|(g, _, o)| g == grantee && *o == grantable)
                .map(|(_, p, _)| p.as_str())
                .collect();
            if privileges.is_empty() {
                continue;
            }
            statements.push(format!(
                "{prefix} GRANT {} ON {on} TO {to}{}",
                privileges.join(", "),
                if grantable { " WITH GRANT OPTION" } else { "" }
            ));
            shown.push(format!("{} to {who}", privileges.join(", ")));
        }
        if let Some(g) = grantee.as_deref().filter(|g| *g != role) {
            requires.push(Requirement {
                sql: ROLE_EXISTS,
                arg: g.to_string(),
                missing: format!("role {} does not exist in the target", display_ident(g)),
                fail: false,
            });
        }
    }
    if shown.is_empty() {
        shown.push("none".into());
    }
    requires.push(Requirement {
        sql: ROLE_EXISTS,
        arg: role.to_string(),
        missing: format!("role {} does not exist in the target", display_ident(role)),
        fail: false,
    });
    requires.push(Requirement {
        sql: MAY_ACT_FOR,
        arg: role.to_string(),
        missing: format!(
            "the account Lifeboat connects to the target with is neither a superuser nor a member of role {}",
            display_ident(role)
        ),
        fail: false,
    });
    let (scope, exists) = match schema {
        Some(schema) => (
            format!(
                "schema {}.{}",
                display_ident(database),
                display_ident(schema)
            ),
            (
                DEFAULT_ACL_EXISTS,
                vec![role.to_string(), schema.to_string(), kind.to_string()],
            ),
        ),
        None => (
            format!("database {}", display_ident(database)),
            (
                GLOBAL_DEFAULT_ACL_EXISTS,
                vec![role.to_string(), kind.to_string()],
            ),
        ),
    };
    ObjectDef {
        kind: ObjectKind::DefaultPrivileges,
        name: format!(
            "default privileges of {} in {scope} on {}: {}",
            display_ident(role),
            on.to_lowercase(),
            shown.join("; ")
        ),
        target_db: database.to_string(),
        statements,
        exists: Some(exists),
        requires,
        needs: Vec::new(),
        on_table: None,
        with_table: None,
        sequence_of: None,
    }
}

/// The identifiers of `text`, lower-cased (a name unquoted in a function body, or
/// quoted as it is), to find the table names it holds.
fn words(text: &str) -> HashSet<String> {
    // `$` may continue an identifier, but in a body it mostly ends a dollar quote.
    text.split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::words;

    #[test]
    fn a_body_names_a_table_as_a_whole_word_only() {
        let names = |text: &str, word: &str| words(text).contains(word);
        assert!(names("SELECT count(*) FROM public.Orders;", "orders"));
        assert!(names("INSERT INTO \"orders\" VALUES (1)", "orders"));
        assert!(!names("SELECT * FROM orders_old", "orders"));
        assert!(!names("SELECT my_orders FROM t", "orders"));
        assert!(names(
            "AS $function$SELECT 1 FROM orders$function$",
            "orders"
        ));
        assert!(!names("SELECT 1", ""));
    }
}
