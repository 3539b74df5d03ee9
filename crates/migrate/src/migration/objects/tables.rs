//! The objects that belong to the selected tables: triggers, rules, row-level
//! security and its policies, grants (of tables and their columns, their sequences,
//! views and functions) and owners.
//!
//! Triggers are taken apart: the text of `pg_get_triggerdef` up to its `ON table`
//! clause is rebuilt here from `pg_trigger` exactly as PostgreSQL prints it, checked
//! against the definition, and the clause is replaced by the target table; when the
//! two disagree (a constraint trigger) the trigger is not migrated, never guessed.

use std::collections::HashMap;

use crate::migration::MigrationError;
use crate::migration::conn::Session;
use crate::migration::mapping::{SourceTable, TableKey};
use crate::migration::names::{display_ident, qualified, quote_ident};
use crate::migration::objects::load::{Names, references};
use crate::migration::objects::{
    FUNCTION_EXISTS, MAY_GIVE_TO, ObjectDef, ObjectKind, ObjectPlan, POLICY_EXISTS, ROLE_EXISTS,
    RULE_EXISTS, Requirement, TRIGGER_EXISTS,
};

pub(super) async fn triggers(
    s: &Session,
    names: &Names<'_>,
    tables: &[SourceTable],
    plan: &mut ObjectPlan,
) -> Result<(), MigrationError> {
    let oids: Vec<u32> = tables.iter().map(|t| t.oid).collect();
    let rows = s
        .query(
            "reading the triggers of the selected tables",
            // `head` and `on` are what pg_get_triggerdef prints before the trigger's
            // level, in the same words and quoting (ruleutils.c, pg_get_triggerdef_worker).
            "SELECT t.tgrelid, t.tgname::text, pg_get_triggerdef(t.oid), \
                    'CREATE TRIGGER ' || quote_ident(t.tgname) || ' ' || \
                    CASE WHEN t.tgtype & 2 <> 0 THEN 'BEFORE' WHEN t.tgtype & 64 <> 0 THEN 'INSTEAD OF' \
                         ELSE 'AFTER' END || ' ' || \
                    concat_ws(' OR ', CASE WHEN t.tgtype & 4 <> 0 THEN 'INSERT' END, \
                              CASE WHEN t.tgtype & 8 <> 0 THEN 'DELETE' END, \
                              CASE WHEN t.tgtype & 16 <> 0 THEN 'UPDATE' || coalesce(' OF ' || \
                                  (SELECT string_agg(quote_ident(a.attname), ', ' ORDER BY k.n) \
                                   FROM unnest(t.tgattr::int2[]) WITH ORDINALITY k(attnum, n) \
                                   JOIN pg_attribute a ON a.attrelid = t.tgrelid AND a.attnum = k.attnum), '') END, \
                              CASE WHEN t.tgtype & 32 <> 0 THEN 'TRUNCATE' END), \
                    ' ON ' || quote_ident(rn.nspname) || '.' || quote_ident(r.relname) || ' ', \
                    t.tgfoid, format('%I.%I(%s)', pn.nspname, p.proname, oidvectortypes(p.proargtypes)), \
                    pn.nspname::text, t.tgenabled::text, \
                    EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass \
                            AND d.objid = p.oid AND d.deptype = 'e') \
             FROM pg_trigger t JOIN pg_class r ON r.oid = t.tgrelid \
             JOIN pg_namespace rn ON rn.oid = r.relnamespace \
             JOIN pg_proc p ON p.oid = t.tgfoid JOIN pg_namespace pn ON pn.oid = p.pronamespace \
             WHERE t.tgrelid = ANY($1) AND NOT t.tgisinternal AND t.tgparentid = 0 \
             ORDER BY t.tgrelid, t.tgname",
            &[&oids],
        )
        .await?;
    for r in rows {
        let Some(table) = tables.iter().find(|t| t.oid == r.get::<_, u32>(0)) else {
            continue;
        };
        let target = &table.mapping.target;
        let name: String = r.get(1);
        let label = format!("{} on {target}", display_ident(&name));
        let (def, head, on): (String, String, String) = (r.get(2), r.get(3), r.get(4));
        let Some(rest) = def
            .strip_prefix(head.as_str())
            .and_then(|d| d.strip_prefix(on.as_str()))
        else {
            plan.skipped.push(format!(
                "trigger {label} is not created: only plain triggers are migrated (constraint triggers are not)"
            ));
            continue;
        };
        let (function, signature, fn_schema): (u32, String, String) =
            (r.get(5), r.get(6), r.get(7));
        let mut needs = Vec::new();
        let mut requires = Vec::new();
        match names.functions.get(&function) {
            Some(Some(i)) => needs.push(*i),
            Some(None) => {
                plan.skipped.push(format!(
                    "trigger {label} is not created: it calls {signature}, which is not created"
                ));
                continue;
            }
            None if r.get::<_, bool>(9) => {}
            None => requires.push(Requirement {
                sql: FUNCTION_EXISTS,
                arg: signature.clone(),
                missing: format!(
                    "it calls {signature}, which the target lacks and the task does not migrate (schema {} is not selected)",
                    display_ident(&fn_schema)
                ),
                fail: true,
            }),
        }
        let sql_table = qualified(&target.schema, &target.table);
        let mut statements = vec![format!("{head} ON {sql_table} {rest}")];
        let enable = match r.get::<_, &str>(8) {
            "D" => Some("DISABLE TRIGGER"),
            "R" => Some("ENABLE REPLICA TRIGGER"),
            "A" => Some("ENABLE ALWAYS TRIGGER"),
            _ => None,
        };
        if let Some(enable) = enable {
            statements.push(format!(
                "ALTER TABLE {sql_table} {enable} {}",
                quote_ident(&name)
            ));
        }
        plan.objects.push(ObjectDef {
            kind: ObjectKind::Trigger,
            name: label,
            target_db: target.database.clone(),
            statements,
            exists: Some((TRIGGER_EXISTS, vec![sql_table, name])),
            requires,
            needs,
            on_table: Some(table.mapping.key.clone()),
            with_table: None,
            sequence_of: None,
        });
    }
    Ok(())
}

pub(super) async fn rules_and_policies(
    s: &Session,
    names: &mut Names<'_>,
    tables: &[SourceTable],
    plan: &mut ObjectPlan,
) -> Result<(), MigrationError> {
    for t in tables {
        let target = &t.mapping.target;
        let sql_table = qualified(&target.schema, &target.table);
        let renamed =
            t.mapping.source.schema != target.schema || t.mapping.source.table != target.table;
        let rules = s
            .query(
                "reading the rules of a selected table",
                "SELECT oid, rulename::text, pg_get_ruledef(oid) FROM pg_rewrite \
                 WHERE ev_class = $1 AND rulename <> '_RETURN' ORDER BY rulename",
                &[&t.oid],
            )
            .await?;
        let oids: Vec<u32> = rules.iter().map(|r| r.get(0)).collect();
        let refs = references(s, names, "pg_rewrite", &oids, t.oid).await?;
        for r in rules {
            let name: String = r.get(1);
            let label = format!("{} on {target}", display_ident(&name));
            let (rels, procs) = refs.get(&r.get::<_, u32>(0)).cloned().unwrap_or_default();
            let found = if renamed {
                Err(format!(
                    "the task migrates its table {} as {target}, and the rule's definition names the source",
                    t.mapping.source
                ))
            } else {
                names.references(&rels, &procs, &target.database)
            };
            match found {
                Ok((needs, requires)) => plan.objects.push(ObjectDef {
                    kind: ObjectKind::Rule,
                    name: label,
                    target_db: target.database.clone(),
                    statements: vec![r.get(2)],
                    exists: Some((RULE_EXISTS, vec![sql_table.clone(), name])),
                    requires,
                    needs,
                    on_table: Some(t.mapping.key.clone()),
                    with_table: None,
                    sequence_of: None,
                }),
                Err(why) => plan
                    .skipped
                    .push(format!("rule {label} is not created: {why}")),
            }
        }
        policies(s, names, t, plan).await?;
    }
    Ok(())
}

async fn policies(
    s: &Session,
    names: &mut Names<'_>,
    t: &SourceTable,
    plan: &mut ObjectPlan,
) -> Result<(), MigrationError> {
    let target = &t.mapping.target;
    let sql_table = qualified(&target.schema, &target.table);
    let key = Some(t.mapping.key.clone());
    let flags = s
        .query_one(
            "reading row-level security",
            "SELECT relrowsecurity, relforcerowsecurity FROM pg_class WHERE oid = $1",
            &[&t.oid],
        )
        .await?;
    let mut statements = Vec::new();
    if flags.get(0) {
        statements.push(format!("ALTER TABLE {sql_table} ENABLE ROW LEVEL SECURITY"));
    }
    if flags.get(1) {
        statements.push(format!("ALTER TABLE {sql_table} FORCE ROW LEVEL SECURITY"));
    }
    if !statements.is_empty() {
        plan.objects.push(ObjectDef {
            kind: ObjectKind::RowSecurity,
            name: target.to_string(),
            target_db: target.database.clone(),
            statements,
            exists: None,
            requires: Vec::new(),
            needs: Vec::new(),
            on_table: key.clone(),
            with_table: None,
            sequence_of: None,
        });
    }
    let rows = s
        .query(
            "reading the policies of a selected table",
            "SELECT p.oid, p.polname::text, p.polpermissive, \
                    CASE p.polcmd WHEN 'r' THEN 'SELECT' WHEN 'a' THEN 'INSERT' WHEN 'w' THEN 'UPDATE' \
                                  WHEN 'd' THEN 'DELETE' ELSE 'ALL' END, \
                    ARRAY(SELECT r.rolname::text FROM pg_roles r WHERE r.oid = ANY(p.polroles) ORDER BY 1), \
                    pg_get_expr(p.polqual, p.polrelid), pg_get_expr(p.polwithcheck, p.polrelid) \
             FROM pg_policy p WHERE p.polrelid = $1 ORDER BY p.polname",
            &[&t.oid],
        )
        .await?;
    let oids: Vec<u32> = rows.iter().map(|r| r.get(0)).collect();
    let refs = references(s, names, "pg_policy", &oids, t.oid).await?;
    for r in rows {
        let name: String = r.get(1);
        let label = format!("{} on {target}", display_ident(&name));
        let (rels, procs) = refs.get(&r.get::<_, u32>(0)).cloned().unwrap_or_default();
        let (needs, mut requires) = match names.references(&rels, &procs, &target.database) {
            Ok(found) => found,
            Err(why) => {
                plan.skipped
                    .push(format!("policy {label} is not created: {why}"));
                continue;
            }
        };
        let roles: Vec<String> = r.get(4);
        let to = if roles.is_empty() {
            "PUBLIC".to_string()
        } else {
            roles
                .iter()
                .map(|r| quote_ident(r))
                .collect::<Vec<_>>()
                .join(", ")
        };
        for role in &roles {
            requires.push(Requirement {
                sql: ROLE_EXISTS,
                arg: role.clone(),
                missing: format!("role {} does not exist in the target", display_ident(role)),
                fail: true,
            });
        }
        let mut sql = format!(
            "CREATE POLICY {} ON {sql_table} AS {} FOR {} TO {to}",
            quote_ident(&name),
            if r.get(2) {
                "PERMISSIVE"
            } else {
                "RESTRICTIVE"
            },
            r.get::<_, &str>(3),
        );
        if let Some(using) = r.get::<_, Option<&str>>(5) {
            sql.push_str(&format!(" USING ({using})"));
        }
        if let Some(check) = r.get::<_, Option<&str>>(6) {
            sql.push_str(&format!(" WITH CHECK ({check})"));
        }
        plan.objects.push(ObjectDef {
            kind: ObjectKind::Policy,
            name: label,
            target_db: target.database.clone(),
            statements: vec![sql],
            exists: Some((POLICY_EXISTS, vec![sql_table.clone(), name])),
            requires,
            needs,
            on_table: key.clone(),
            with_table: None,
            sequence_of: None,
        });
    }
    Ok(())
}

/// The grants on the sequences `t` owns (serial and identity columns), one object
/// per column and grantee.
pub(super) async fn sequence_grants(
    s: &Session,
    t: &SourceTable,
) -> Result<Vec<ObjectDef>, MigrationError> {
    let rows = s
        .query(
            "reading the grants of the sequences of a selected table",
            "SELECT a.attname::text, r.rolname::text, x.privilege_type, x.is_grantable \
             FROM pg_depend d JOIN pg_class sc ON sc.oid = d.objid AND sc.relkind = 'S' \
             JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid \
             CROSS JOIN LATERAL aclexplode(sc.relacl) x LEFT JOIN pg_roles r ON r.oid = x.grantee \
             WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass \
               AND d.refobjid = $1 AND d.deptype IN ('a', 'i') AND x.grantee <> sc.relowner \
             ORDER BY 1, 2, 3",
            &[&t.oid],
        )
        .await?;
    let target = &t.mapping.target;
    let sql_table = qualified(&target.schema, &target.table);
    let mut by_column: Vec<(String, Vec<Acl>)> = Vec::new();
    for r in rows {
        let column: String = r.get(0);
        let acl = Acl {
            grantee: r.get(1),
            privilege: r.get(2),
            grantable: r.get(3),
        };
        match by_column.iter_mut().find(|(c, _)| *c == column) {
            Some((_, list)) => list.push(acl),
            None => by_column.push((column, vec![acl])),
        }
    }
    let mut out = Vec::new();
    for (column, acl) in by_column {
        let label = format!("the sequence of {target}.{}", display_ident(&column));
        let mut defs = grant_defs(
            &acl,
            ("SEQUENCE", super::SEQUENCE, &label),
            &target.database,
            Vec::new(),
            Some(t.mapping.key.clone()),
        );
        for d in &mut defs {
            d.sequence_of = Some((sql_table.clone(), column.clone()));
        }
        out.extend(defs);
    }
    Ok(out)
}

/// One entry of an access control list: `None` grantee is PUBLIC.
pub(super) struct Acl {
    grantee: Option<String>,
    privilege: String,
    grantable: bool,
}

/// Grants of a relation to others than its owner (whose rights are implicit).
pub(super) const RELATION_ACL: &str = "SELECT r.rolname::text, a.privilege_type, a.is_grantable \
     FROM pg_class c CROSS JOIN LATERAL aclexplode(c.relacl) a \
     LEFT JOIN pg_roles r ON r.oid = a.grantee \
     WHERE c.oid = $1 AND a.grantee <> c.relowner ORDER BY 1, 2";
/// Column privileges (`GRANT SELECT (col)`), as privileges named with their column.
pub(super) const COLUMN_ACL: &str = "SELECT r.rolname::text, \
            a.privilege_type || ' (' || quote_ident(att.attname) || ')', a.is_grantable \
     FROM pg_attribute att JOIN pg_class c ON c.oid = att.attrelid \
     CROSS JOIN LATERAL aclexplode(att.attacl) a \
     LEFT JOIN pg_roles r ON r.oid = a.grantee \
     WHERE att.attrelid = $1 AND att.attnum > 0 AND NOT att.attisdropped \
       AND a.grantee <> c.relowner ORDER BY 1, 2";
pub(super) const FUNCTION_ACL: &str = "SELECT r.rolname::text, a.privilege_type, a.is_grantable \
     FROM pg_proc p CROSS JOIN LATERAL aclexplode(p.proacl) a \
     LEFT JOIN pg_roles r ON r.oid = a.grantee \
     WHERE p.oid = $1 AND a.grantee <> p.proowner ORDER BY 1, 2";

pub(super) async fn grants(s: &Session, sql: &str, oid: u32) -> Result<Vec<Acl>, MigrationError> {
    Ok(s.query("reading grants", sql, &[&oid])
        .await?
        .iter()
        .map(|r| Acl {
            grantee: r.get(0),
            privilege: r.get(1),
            grantable: r.get(2),
        })
        .collect())
}

/// One grant object per grantee of `acl` on `(keyword, sql name, label)`.
pub(super) fn grant_defs(
    acl: &[Acl],
    (keyword, sql_name, label): (&str, &str, &str),
    target_db: &str,
    needs: Vec<usize>,
    on_table: Option<TableKey>,
) -> Vec<ObjectDef> {
    let mut grantees: Vec<&Option<String>> = Vec::new();
    for a in acl {
        if !grantees.contains(&&a.grantee) {
            grantees.push(&a.grantee);
        }
    }
    grantees
        .into_iter()
        .map(|grantee| {
            let to = grantee
                .as_deref()
                .map(quote_ident)
                .unwrap_or_else(|| "PUBLIC".into());
            let shown = grantee
                .as_deref()
                .map(display_ident)
                .unwrap_or("PUBLIC".into());
            let mine: Vec<&Acl> = acl.iter().filter(|a| &a.grantee == grantee).collect();
            let mut statements = Vec::new();
            for grantable in [false, true] {
                let privileges: Vec<&str> = mine
                    .iter()
                    .filter(|a| a.grantable == grantable)
                    .map(|a| a.privilege.as_str())
                    .collect();
                if !privileges.is_empty() {
                    statements.push(format!(
                        "GRANT {} ON {keyword} {sql_name} TO {to}{}",
                        privileges.join(", "),
                        if grantable { " WITH GRANT OPTION" } else { "" }
                    ));
                }
            }
            let privileges: Vec<&str> = mine.iter().map(|a| a.privilege.as_str()).collect();
            ObjectDef {
                kind: ObjectKind::Grant,
                name: format!("{} on {label} to {shown}", privileges.join(", ")),
                target_db: target_db.to_string(),
                statements,
                exists: None,
                requires: grantee
                    .iter()
                    .map(|role| Requirement {
                        sql: ROLE_EXISTS,
                        arg: role.clone(),
                        missing: format!(
                            "role {} does not exist in the target",
                            display_ident(role)
                        ),
                        fail: false,
                    })
                    .collect(),
                needs: needs.clone(),
                on_table: on_table.clone(),
                with_table: None,
                sequence_of: None,
            }
        })
        .collect()
}

/// The owners of the relations (`pg_class`) or functions (`pg_proc`) `oids` other
/// than `target_account`: those are the objects whose owner the target must be told
/// (the account creating them in the target owns them otherwise).
pub(super) async fn owners(
    s: &Session,
    catalog: &str,
    oids: &[u32],
    target_account: Option<&str>,
) -> Result<HashMap<u32, String>, MigrationError> {
    let owner = if catalog == "pg_proc" {
        "proowner"
    } else {
        "relowner"
    };
    let sql = format!(
        "SELECT o.oid, pg_get_userbyid(o.{owner})::text FROM {catalog} o \
         WHERE o.oid = ANY($1) AND pg_get_userbyid(o.{owner})::text IS DISTINCT FROM $2::text"
    );
    Ok(s.query("reading owners", &sql, &[&oids, &target_account])
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect())
}

/// `ALTER <keyword> <sql name> OWNER TO <owner>` for an object the task creates, as
/// `pg_dump` restores owners; skipped with a note when the role is missing or the
/// target account cannot give objects to it. A view or `SECURITY DEFINER` function
/// runs with its owner's rights, which is why the note says whose they keep.
pub(super) fn owner_def(
    (keyword, sql_name, label): (&str, &str, &str),
    owner: &str,
    target_db: &str,
    needs: Vec<usize>,
    on_table: Option<TableKey>,
    extra: Vec<String>,
) -> ObjectDef {
    let mut statements = vec![format!(
        "ALTER {keyword} {sql_name} OWNER TO {}",
        quote_ident(owner)
    )];
    statements.extend(extra);
    let shown = display_ident(owner);
    let stays = "it stays owned by the account Lifeboat connects to the target with, and runs with that account's rights where its owner's apply (views, SECURITY DEFINER functions)";
    ObjectDef {
        kind: ObjectKind::Owner,
        name: format!("owner of {label}: {shown}"),
        target_db: target_db.to_string(),
        statements,
        exists: None,
        requires: vec![
            Requirement {
                sql: ROLE_EXISTS,
                arg: owner.to_string(),
                missing: format!("role {shown} does not exist in the target; {stays}"),
                fail: false,
            },
            Requirement {
                sql: MAY_GIVE_TO,
                arg: owner.to_string(),
                missing: format!(
                    "the account Lifeboat connects to the target with is not a superuser, so it does not give objects to role {shown}; {stays}"
                ),
                fail: false,
            },
        ],
        needs,
        on_table,
        with_table: None,
        sequence_of: None,
    }
}
