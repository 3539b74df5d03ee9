//! The objects around the tables (issue 14, "Every object a user can lose"):
//! functions, views on views, materialized views with their indexes, triggers that
//! fire in the target afterwards (and not during the copy), rules, row-level security
//! and its policies, grants and extensions; renamed tables, and a restart after the
//! objects committed.

use std::collections::HashSet;

use lifeboat_migrate::migration::{
    ConflictMode, MigrationError, ObjectKind, PrecheckStatus, precheck_passed,
};

use crate::support::{Pair, assert_status, check, column, item, migrate, one};

/// A schema `app` with one of everything; `reader` exists on both sides.
const APP: &str = "
    CREATE SCHEMA app;
    CREATE TABLE app.orders (id int PRIMARY KEY, amount int NOT NULL);
    CREATE TABLE app.audit (order_id int, op text);
    CREATE FUNCTION app.log_order() RETURNS trigger LANGUAGE plpgsql AS
        $$ BEGIN INSERT INTO app.audit VALUES (NEW.id, TG_OP); RETURN NEW; END $$;
    CREATE TRIGGER orders_audit AFTER INSERT ON app.orders
        FOR EACH ROW EXECUTE FUNCTION app.log_order();
    CREATE FUNCTION app.double(x int) RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT x * 2';
    CREATE AGGREGATE app.total(int) (SFUNC = int4pl, STYPE = int);
    CREATE VIEW app.big_orders AS SELECT id, app.double(amount) AS doubled FROM app.orders WHERE amount > 50;
    COMMENT ON VIEW app.big_orders IS 'orders over 50';
    COMMENT ON COLUMN app.big_orders.doubled IS 'twice the amount';
    CREATE VIEW app.biggest AS SELECT max(doubled) AS top FROM app.big_orders;
    CREATE MATERIALIZED VIEW app.totals AS SELECT count(*) AS n, sum(amount) AS total FROM app.orders;
    CREATE UNIQUE INDEX totals_n ON app.totals (n);
    CREATE TABLE app.notes (id int PRIMARY KEY, body text);
    CREATE RULE notes_kept AS ON DELETE TO app.notes DO INSTEAD NOTHING;
    ALTER TABLE app.orders ENABLE ROW LEVEL SECURITY;
    ALTER TABLE app.orders FORCE ROW LEVEL SECURITY;
    CREATE POLICY big_only ON app.orders AS PERMISSIVE FOR SELECT TO reader USING (amount > 10);
    GRANT SELECT ON app.orders TO reader;
    GRANT SELECT ON app.big_orders TO reader;
    CREATE TABLE app.tickets (id serial PRIMARY KEY);
    GRANT USAGE ON SEQUENCE app.tickets_id_seq TO reader;
    INSERT INTO app.orders SELECT i, i FROM generate_series(1, 100) i;
    INSERT INTO app.notes VALUES (1, 'keep me');";

#[tokio::test]
async fn a_schema_brings_its_functions_views_triggers_rules_policies_and_grants() {
    let p = Pair::start().await;
    p.both("CREATE ROLE reader").await;
    p.src(APP).await;
    let task = p.task(&["shop.app=restored.app"], ConflictMode::Error);
    let items = check(&task).await;
    assert!(precheck_passed(&items), "{items:#?}");
    let objects = item(&items, "schema_objects");
    assert_eq!(objects.status, PrecheckStatus::Warning, "{objects:#?}");
    assert!(
        objects
            .detail
            .contains("aggregate restored.app.total(integer) is not migrated"),
        "{}",
        objects.detail
    );

    let out = migrate(&task, &HashSet::new()).await;
    let report = out.report();
    let created = |kind: ObjectKind, name: &str| {
        report
            .objects
            .iter()
            .any(|o| o.kind == kind && o.name == name && o.created)
    };
    assert!(
        created(ObjectKind::View, "restored.app.biggest"),
        "{:#?}",
        report.objects
    );
    assert!(created(ObjectKind::MaterializedView, "restored.app.totals"));
    assert!(created(
        ObjectKind::Trigger,
        "orders_audit on restored.app.orders"
    ));
    assert!(created(
        ObjectKind::Policy,
        "big_only on restored.app.orders"
    ));
    assert!(created(
        ObjectKind::Rule,
        "notes_kept on restored.app.notes"
    ));

    let dst = p.target.connect("restored").await;
    // The trigger did not fire for the copied rows: audit holds the source's.
    assert_eq!(
        one(&dst, "SELECT count(*)::text FROM app.audit").await,
        "100"
    );
    dst.batch_execute("INSERT INTO app.orders VALUES (101, 101)")
        .await
        .unwrap();
    assert_eq!(
        column(&dst, "SELECT op FROM app.audit WHERE order_id = 101").await,
        ["INSERT"]
    );
    // Functions, a view on a view, comments.
    assert_eq!(one(&dst, "SELECT app.double(4)::text").await, "8");
    assert_eq!(
        one(&dst, "SELECT count(*)::text FROM app.big_orders").await,
        "51"
    );
    assert_eq!(one(&dst, "SELECT top::text FROM app.biggest").await, "202");
    assert_eq!(
        one(
            &dst,
            "SELECT obj_description('app.big_orders'::regclass, 'pg_class')"
        )
        .await,
        "orders over 50"
    );
    assert_eq!(
        one(
            &dst,
            "SELECT col_description('app.big_orders'::regclass, 2)"
        )
        .await,
        "twice the amount"
    );
    // The materialized view holds the migrated rows (not the one inserted since),
    // with its index.
    assert_eq!(
        one(&dst, "SELECT n || ':' || total FROM app.totals").await,
        "100:5050"
    );
    assert_eq!(
        column(
            &dst,
            "SELECT indexname::text FROM pg_indexes WHERE tablename = 'totals'"
        )
        .await,
        ["totals_n"]
    );
    // The rule keeps the note.
    dst.batch_execute("DELETE FROM app.notes").await.unwrap();
    assert_eq!(one(&dst, "SELECT count(*)::text FROM app.notes").await, "1");
    // Row-level security, enabled and forced, with its policy.
    assert_eq!(
        one(&dst, "SELECT relrowsecurity || ':' || relforcerowsecurity FROM pg_class WHERE oid = 'app.orders'::regclass").await,
        "true:true"
    );
    assert_eq!(
        one(&dst, "SELECT policyname || ' ' || permissive || ' ' || cmd || ' ' || roles::text || ' ' || qual FROM pg_policies WHERE tablename = 'orders'").await,
        "big_only PERMISSIVE SELECT {reader} (amount > 10)"
    );
    // Grants to a role both sides have.
    assert_eq!(
        one(&dst, "SELECT has_table_privilege('reader', 'app.orders', 'SELECT') || ':' || has_table_privilege('reader', 'app.big_orders', 'SELECT') || ':' || has_table_privilege('reader', 'app.notes', 'SELECT')").await,
        "true:true:false"
    );
    assert_eq!(
        one(&dst, "SELECT has_sequence_privilege('reader', pg_get_serial_sequence('app.tickets', 'id'), 'USAGE')::text").await,
        "true"
    );
    // The aggregate was not migrated, and said so.
    assert_eq!(
        one(
            &dst,
            "SELECT count(*)::text FROM pg_proc WHERE proname = 'total'"
        )
        .await,
        "0"
    );
}

#[tokio::test]
async fn a_restart_after_the_objects_committed_creates_nothing_twice() {
    let p = Pair::start().await;
    p.both("CREATE ROLE reader").await;
    p.src(APP).await;
    let task = p.task(&["shop.app"], ConflictMode::Error);
    let first = migrate(&task, &HashSet::new()).await;
    let made = first.report().objects.iter().filter(|o| o.created).count();
    assert!(made >= 8, "{:#?}", first.report().objects);
    // The caller lost everything it persisted: the journal knows.
    let second = migrate(&task, &HashSet::new()).await;
    let report = second.report();
    assert!(
        report.objects.iter().all(|o| o.resumed),
        "{:#?}",
        report.objects
    );
    assert_eq!(report.objects.iter().filter(|o| o.created).count(), made);
    assert_eq!(
        one(
            &p.dst,
            "SELECT count(*)::text FROM pg_trigger WHERE tgname = 'orders_audit'"
        )
        .await,
        "1"
    );
    p.dst("INSERT INTO app.orders VALUES (101, 101)").await;
    assert_eq!(
        one(
            &p.dst,
            "SELECT count(*)::text FROM app.audit WHERE order_id = 101"
        )
        .await,
        "1"
    );
    assert_eq!(
        one(&p.dst, "SELECT count(*)::text FROM pg_policy").await,
        "1"
    );
}

/// The source's shop: a trigger and a view on a table the task renames.
const RENAMED: &str = "
    CREATE TABLE orders (id int PRIMARY KEY, amount int);
    CREATE TABLE audit (order_id int);
    CREATE FUNCTION log_order() RETURNS trigger LANGUAGE plpgsql AS
        $$ BEGIN INSERT INTO public.audit VALUES (NEW.id); RETURN NEW; END $$;
    CREATE TRIGGER orders_audit BEFORE INSERT OR UPDATE OF amount ON orders
        FOR EACH ROW WHEN (NEW.amount > 0) EXECUTE FUNCTION log_order();
    CREATE VIEW order_view AS SELECT id FROM orders;
    CREATE RULE orders_kept AS ON DELETE TO orders DO INSTEAD NOTHING;
    INSERT INTO orders SELECT i, i FROM generate_series(1, 10) i;";

#[tokio::test]
async fn a_renamed_table_keeps_its_trigger_and_a_view_over_it_is_refused() {
    let p = Pair::start().await;
    p.src(RENAMED).await;
    let task = p.task(
        &["shop.public", "shop.public.orders=orders_restored"],
        ConflictMode::Error,
    );
    let items = check(&task).await;
    assert!(precheck_passed(&items), "{items:#?}");
    let objects = item(&items, "schema_objects");
    assert_eq!(objects.status, PrecheckStatus::Warning);
    let refused = "view shop.public.order_view is not created: it refers to shop.public.orders, which the task migrates as shop.public.orders_restored";
    assert!(objects.detail.contains(refused), "{}", objects.detail);
    let rule = "rule orders_kept on shop.public.orders_restored is not created: the task migrates its table shop.public.orders as shop.public.orders_restored, and the rule's definition names the source";
    assert!(objects.detail.contains(rule), "{}", objects.detail);

    let out = migrate(&task, &HashSet::new()).await;
    let report = out.report();
    assert!(
        report.warnings.iter().any(|w| w.contains(refused)),
        "{:#?}",
        report.warnings
    );
    assert_eq!(
        one(&p.dst, "SELECT tgrelid::regclass::text || ' ' || pg_get_triggerdef(oid) FROM pg_trigger WHERE tgname = 'orders_audit'").await,
        "orders_restored CREATE TRIGGER orders_audit BEFORE INSERT OR UPDATE OF amount ON public.orders_restored FOR EACH ROW WHEN ((new.amount > 0)) EXECUTE FUNCTION log_order()"
    );
    assert_eq!(one(&p.dst, "SELECT count(*)::text FROM audit").await, "10");
    p.dst("INSERT INTO orders_restored VALUES (11, 11), (12, 0)")
        .await;
    assert_eq!(
        column(
            &p.dst,
            "SELECT order_id::text FROM audit WHERE order_id > 10"
        )
        .await,
        ["11"]
    );
    assert_eq!(
        one(&p.dst, "SELECT to_regclass('order_view')::text").await,
        ""
    );
    assert_eq!(
        one(
            &p.dst,
            "SELECT count(*)::text FROM pg_rewrite WHERE rulename = 'orders_kept'"
        )
        .await,
        "0"
    );
}

#[tokio::test]
async fn a_view_in_the_way_is_a_conflict_or_kept() {
    let p = Pair::start().await;
    p.src("CREATE TABLE t (id int); INSERT INTO t VALUES (1); CREATE VIEW v AS SELECT id FROM t;")
        .await;
    p.dst("CREATE VIEW v AS SELECT 42 AS mine").await;
    // A function with the same signature is the user's: kept, never replaced.
    p.src("CREATE FUNCTION answer() RETURNS int LANGUAGE sql AS 'SELECT 1'")
        .await;
    p.dst("CREATE FUNCTION answer() RETURNS int LANGUAGE sql AS 'SELECT 42'")
        .await;
    let task = p.task(&["shop.public"], ConflictMode::Error);
    let items = check(&task).await;
    assert_status(&items, "schema_objects", PrecheckStatus::Failed);
    let expected = "view shop.public.v already exists in the target (conflict mode error)";
    assert!(item(&items, "schema_objects").detail.contains(expected));
    match migrate(&task, &HashSet::new()).await.result {
        Err(MigrationError::Conflicts(c)) => assert!(c.contains(&expected.to_string()), "{c:?}"),
        other => panic!("expected a conflict, got {:?}", other.map(|r| r.objects)),
    }
    assert_eq!(
        one(&p.dst, "SELECT to_regclass('t')::text").await,
        "",
        "nothing written"
    );

    let task = p.task(&["shop.public"], ConflictMode::SkipExisting);
    let out = migrate(&task, &HashSet::new()).await;
    let v = &out.report().objects;
    assert!(
        v.iter()
            .any(|o| o.name == "shop.public.v" && !o.created && o.note.contains("kept")),
        "{v:#?}"
    );
    assert_eq!(one(&p.dst, "SELECT mine::text FROM v").await, "42");
    assert!(
        v.iter()
            .any(|o| o.name == "shop.public.answer()" && !o.created && o.note.contains("kept")),
        "{v:#?}"
    );
    assert_eq!(one(&p.dst, "SELECT answer()::text").await, "42");
}

#[tokio::test]
async fn an_extension_type_brings_its_extension() {
    let p = Pair::start().await;
    p.src(
        "CREATE EXTENSION citext;
         CREATE TABLE users (id int PRIMARY KEY, email citext NOT NULL);
         INSERT INTO users VALUES (1, 'Ann@Example.org');",
    )
    .await;
    let task = p.task(&["shop.public.users"], ConflictMode::Error);
    let items = check(&task).await;
    assert!(precheck_passed(&items), "{items:#?}");
    assert_eq!(
        item(&items, "extensions").detail,
        "citext in database shop (created by the task)"
    );
    let out = migrate(&task, &HashSet::new()).await;
    assert!(
        out.report()
            .objects
            .iter()
            .any(|o| o.kind == ObjectKind::Extension
                && o.created
                && o.note.contains("column email of table public.users")),
        "{:#?}",
        out.report().objects
    );
    // The type behaves as on the source: case does not matter.
    assert_eq!(
        one(
            &p.dst,
            "SELECT id::text FROM users WHERE email = 'ann@example.ORG'"
        )
        .await,
        "1"
    );
}

#[tokio::test]
async fn missing_roles_and_functions_fail_the_precheck_until_the_target_has_them() {
    let p = Pair::start().await;
    let stamp = "CREATE SCHEMA util;
        CREATE FUNCTION util.stamp() RETURNS trigger LANGUAGE plpgsql AS
            $$ BEGIN NEW.at := 'stamped'; RETURN NEW; END $$;";
    p.src(&format!(
        "CREATE ROLE auditor; {stamp}
         CREATE TABLE t (id int, at text);
         CREATE TRIGGER t_stamp BEFORE INSERT ON t FOR EACH ROW EXECUTE FUNCTION util.stamp();
         ALTER TABLE t ENABLE ROW LEVEL SECURITY;
         CREATE POLICY audit_all ON t TO auditor USING (true);
         GRANT SELECT ON t TO auditor;
         CREATE VIEW v AS SELECT id FROM t;
         INSERT INTO t VALUES (1);"
    ))
    .await;
    // A view named alone comes with the table it shows.
    let task = p.task(&["shop.public.t", "shop.public.v"], ConflictMode::Error);
    let items = check(&task).await;
    let objects = item(&items, "schema_objects");
    assert_eq!(objects.status, PrecheckStatus::Failed, "{objects:#?}");
    for expected in [
        "trigger t_stamp on shop.public.t: it calls util.stamp(), which the target lacks and the task does not migrate (schema util is not selected)",
        "policy audit_all on shop.public.t: role auditor does not exist in the target",
        "grant SELECT on shop.public.t to auditor is not created: role auditor does not exist in the target",
    ] {
        assert!(objects.detail.contains(expected), "{}", objects.detail);
    }
    assert!(matches!(
        migrate(&task, &HashSet::new()).await.result,
        Err(MigrationError::Conflicts(_))
    ));
    assert_eq!(one(&p.dst, "SELECT to_regclass('t')::text").await, "");

    p.dst(&format!("CREATE ROLE auditor; {stamp}")).await;
    let items = check(&task).await;
    assert_status(&items, "schema_objects", PrecheckStatus::Passed);
    migrate(&task, &HashSet::new()).await.report();
    assert_eq!(one(&p.dst, "SELECT count(*)::text FROM v").await, "1");
    assert_eq!(
        one(
            &p.dst,
            "SELECT string_agg(policyname || ' ' || roles::text, ',') FROM pg_policies"
        )
        .await,
        "audit_all {auditor}"
    );
    assert_eq!(
        one(
            &p.dst,
            "SELECT has_table_privilege('auditor', 't', 'SELECT')::text"
        )
        .await,
        "true"
    );
    p.dst("INSERT INTO t (id) VALUES (2)").await;
    assert_eq!(
        one(&p.dst, "SELECT at FROM t WHERE id = 2").await,
        "stamped"
    );
}

/// Owners come back as `pg_dump` restores them (a table with its sequence and index,
/// a partitioned table with its partitions, a view, a function), and column
/// privileges with the table's grants; an owner the target lacks is reported, and
/// the object stays the connecting account's.
#[tokio::test]
async fn owners_and_column_privileges_come_back() {
    let p = Pair::start().await;
    p.both("CREATE ROLE app; CREATE ROLE clerk").await;
    p.src(
        "CREATE ROLE gone;
         CREATE SCHEMA own;
         CREATE TABLE own.t (id serial PRIMARY KEY, secret text, pub text);
         ALTER TABLE own.t OWNER TO app;
         GRANT SELECT (pub), UPDATE (pub) ON own.t TO clerk;
         CREATE VIEW own.v AS SELECT id, pub FROM own.t;
         ALTER VIEW own.v OWNER TO app;
         CREATE FUNCTION own.f() RETURNS int LANGUAGE sql AS 'SELECT 1';
         ALTER FUNCTION own.f() OWNER TO app;
         CREATE TABLE own.m (id int, n int) PARTITION BY RANGE (n);
         CREATE TABLE own.m_1 PARTITION OF own.m FOR VALUES FROM (0) TO (10);
         ALTER TABLE own.m OWNER TO app;
         ALTER TABLE own.m_1 OWNER TO app;
         CREATE TABLE own.lost (id int);
         ALTER TABLE own.lost OWNER TO gone;
         INSERT INTO own.t (secret, pub) VALUES ('s', 'p');",
    )
    .await;
    let task = p.task(&["shop.own"], ConflictMode::Error);
    let out = migrate(&task, &HashSet::new()).await;
    let report = out.report();
    assert!(report.verified(), "{report:#?}");
    let me = one(&p.dst, "SELECT current_user::text").await;
    assert_eq!(
        column(
            &p.dst,
            "SELECT relname || ':' || pg_get_userbyid(relowner) FROM pg_class \
             WHERE relnamespace = 'own'::regnamespace ORDER BY 1"
        )
        .await,
        [
            format!("lost:{me}"),
            "m:app".into(),
            "m_1:app".into(),
            "t:app".into(),
            "t_id_seq:app".into(),
            "t_pkey:app".into(),
            "v:app".into(),
        ]
    );
    assert_eq!(
        one(
            &p.dst,
            "SELECT pg_get_userbyid(proowner)::text FROM pg_proc WHERE oid = 'own.f()'::regprocedure"
        )
        .await,
        "app"
    );
    assert_eq!(
        one(
            &p.dst,
            "SELECT concat_ws(',', has_column_privilege('clerk', 'own.t', 'pub', 'SELECT'), \
                    has_column_privilege('clerk', 'own.t', 'pub', 'UPDATE'), \
                    has_column_privilege('clerk', 'own.t', 'secret', 'SELECT'), \
                    has_table_privilege('clerk', 'own.t', 'SELECT'))"
        )
        .await,
        "t,t,f,f"
    );
    let lost = report
        .objects
        .iter()
        .find(|o| o.kind == ObjectKind::Owner && o.name == "owner of shop.own.lost: gone")
        .expect("the owner of lost is reported");
    assert!(!lost.created, "{lost:#?}");
    assert!(
        lost.note
            .starts_with("role gone does not exist in the target; it stays owned by the account Lifeboat connects to the target with"),
        "{lost:#?}"
    );
    let given = report
        .objects
        .iter()
        .filter(|o| o.kind == ObjectKind::Owner && o.created)
        .count();
    assert_eq!(given, 4, "t, m, v, f: {:#?}", report.objects);
}

/// A dropped view comes back alone: a task naming only the view passes its pre-check
/// and creates it over the table the target still has.
#[tokio::test]
async fn a_view_alone_comes_back() {
    let p = Pair::start().await;
    p.both(
        "CREATE TABLE t (id int PRIMARY KEY, n int);
         INSERT INTO t SELECT i, i % 3 FROM generate_series(1, 30) i;
         CREATE VIEW threes AS SELECT n, count(*) AS c FROM t GROUP BY n;",
    )
    .await;
    p.dst("DROP VIEW threes").await;
    let task = p.task(&["shop.public.threes"], ConflictMode::Error);
    let items = check(&task).await;
    assert!(precheck_passed(&items), "{items:#?}");
    assert_eq!(
        item(&items, "source_objects").detail,
        "no table selected; 1 other objects: view shop.public.threes"
    );
    let out = migrate(&task, &HashSet::new()).await;
    let report = out.report();
    assert!(report.tables.is_empty(), "{report:#?}");
    assert!(
        report
            .objects
            .iter()
            .any(|o| o.kind == ObjectKind::View && o.name == "shop.public.threes" && o.created),
        "{:#?}",
        report.objects
    );
    assert_eq!(
        one(
            &p.dst,
            "SELECT string_agg(n || ':' || c, ',' ORDER BY n) FROM threes"
        )
        .await,
        "0:10,1:10,2:10"
    );
}

/// A view selected alone and mapped into a schema the target lacks: the run creates
/// the schema, and the pre-check fails when the account could not.
#[tokio::test]
async fn a_view_alone_into_a_new_schema_comes_back() {
    let p = Pair::start().await;
    p.both(
        "CREATE TABLE t (id int PRIMARY KEY, n int);
         INSERT INTO t SELECT i, i % 3 FROM generate_series(1, 30) i;
         CREATE VIEW threes AS SELECT n, count(*) AS c FROM t GROUP BY n;
         CREATE ROLE mover LOGIN PASSWORD 'pw';
         GRANT SELECT ON t TO mover;",
    )
    .await;
    let mut task = p.task(
        &["shop.public.threes=shop.archive.threes"],
        ConflictMode::Error,
    );
    task.target.user("mover").password("pw");
    let items = check(&task).await;
    let objects = item(&items, "schema_objects");
    assert_eq!(objects.status, PrecheckStatus::Failed, "{items:#?}");
    assert!(
        objects.detail.contains(
            "schema shop.archive does not exist in the target and mover has no CREATE on database shop to create it"
        ),
        "{objects:#?}"
    );
    let task = p.task(
        &["shop.public.threes=shop.archive.threes"],
        ConflictMode::Error,
    );
    let items = check(&task).await;
    assert!(precheck_passed(&items), "{items:#?}");
    let out = migrate(&task, &HashSet::new()).await;
    let report = out.report();
    assert!(
        report
            .objects
            .iter()
            .any(|o| o.kind == ObjectKind::View && o.name == "shop.archive.threes" && o.created),
        "{:#?}",
        report.objects
    );
    assert_eq!(
        one(
            &p.dst,
            "SELECT string_agg(n || ':' || c, ',' ORDER BY n) FROM archive.threes"
        )
        .await,
        "0:10,1:10,2:10"
    );
}

/// A function whose body names a table the task renames is created as it is, and
/// the pre-check and the report say that it keeps using the source's name.
#[tokio::test]
async fn a_function_naming_a_renamed_table_is_flagged() {
    let p = Pair::start().await;
    p.src(
        "CREATE SCHEMA app;
         CREATE TABLE app.orders (id int PRIMARY KEY);
         CREATE TABLE app.orders_log (id int);
         CREATE FUNCTION app.n_orders() RETURNS bigint LANGUAGE sql AS 'SELECT count(*) FROM app.orders';
         CREATE FUNCTION app.n_log() RETURNS bigint LANGUAGE sql AS 'SELECT count(*) FROM app.orders_log';",
    )
    .await;
    let task = p.task(
        &["shop.app", "shop.app.orders=orders_old"],
        ConflictMode::Error,
    );
    let expected = "function shop.app.n_orders() is created as the source has it, and its body names shop.app.orders (migrated as shop.app.orders_old): it keeps using the source's name (Lifeboat does not rewrite SQL text); change it in the target if it must use the new one";
    let items = check(&task).await;
    let objects = item(&items, "schema_objects");
    assert!(objects.detail.contains(expected), "{objects:#?}");
    assert!(!objects.detail.contains("n_log"), "{objects:#?}");
    let out = migrate(&task, &HashSet::new()).await;
    assert!(
        out.report().warnings.iter().any(|w| w == expected),
        "{:?}",
        out.report().warnings
    );
    assert_eq!(
        one(
            &p.dst,
            "SELECT count(*)::text FROM pg_proc WHERE proname IN ('n_orders', 'n_log')"
        )
        .await,
        "2"
    );
}

/// A schema selected whole into a new database comes back owned by its owner, with
/// the default privileges set in it, so the tables its owner creates afterwards are
/// readable by the same roles as on the source.
#[tokio::test]
async fn a_schema_comes_back_with_its_owner_and_default_privileges() {
    let p = Pair::start().await;
    p.both("CREATE ROLE app; CREATE ROLE reader").await;
    p.src(
        "CREATE SCHEMA app AUTHORIZATION app;
         ALTER DEFAULT PRIVILEGES FOR ROLE app IN SCHEMA app GRANT SELECT ON TABLES TO reader;
         ALTER DEFAULT PRIVILEGES FOR ROLE app IN SCHEMA app
             GRANT USAGE ON SEQUENCES TO reader WITH GRANT OPTION;
         CREATE TABLE app.t (id int PRIMARY KEY);",
    )
    .await;
    let task = p.task(&["shop.app=restored.app"], ConflictMode::Error);
    let items = check(&task).await;
    assert!(precheck_passed(&items), "{items:#?}");
    let out = migrate(&task, &HashSet::new()).await;
    let report = out.report();
    let made = |kind: ObjectKind, name: &str| {
        report
            .objects
            .iter()
            .any(|o| o.kind == kind && o.name == name && o.created)
    };
    assert!(
        made(ObjectKind::Owner, "owner of schema restored.app: app"),
        "{:#?}",
        report.objects
    );
    assert!(
        made(
            ObjectKind::DefaultPrivileges,
            "default privileges of app in schema restored.app on tables: SELECT to reader"
        ),
        "{:#?}",
        report.objects
    );
    let restored = p.target.connect("restored").await;
    assert_eq!(
        one(
            &restored,
            "SELECT pg_get_userbyid(nspowner)::text FROM pg_namespace WHERE nspname = 'app'"
        )
        .await,
        "app"
    );
    assert_eq!(
        column(
            &restored,
            "SELECT defaclobjtype::text || ':' || array_to_string(defaclacl, ',') FROM pg_default_acl ORDER BY 1"
        )
        .await,
        ["S:reader=U*/app", "r:reader=r/app"]
    );
    restored
        .batch_execute("SET ROLE app; CREATE TABLE app.later (x int); RESET ROLE")
        .await
        .expect("app creates a table in its schema");
    assert_eq!(
        one(
            &restored,
            "SELECT has_table_privilege('reader', 'app.later', 'SELECT')::text"
        )
        .await,
        "true"
    );
}

/// A whole database brings the default privileges set outside any schema, which
/// replace the built-in ones: functions the role creates afterwards are not
/// executable by PUBLIC, and its tables are readable by `reader`, as on the source.
#[tokio::test]
async fn a_database_comes_back_with_its_own_default_privileges() {
    let p = Pair::start().await;
    p.both("CREATE ROLE app; CREATE ROLE reader").await;
    p.src(
        "ALTER DEFAULT PRIVILEGES FOR ROLE app REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC;
         ALTER DEFAULT PRIVILEGES FOR ROLE app GRANT SELECT ON TABLES TO reader;
         ALTER DEFAULT PRIVILEGES FOR ROLE app REVOKE ALL ON SEQUENCES FROM app;
         CREATE TABLE t (id int PRIMARY KEY);",
    )
    .await;
    let task = p.task(&["shop=restored"], ConflictMode::Error);
    let items = check(&task).await;
    assert!(precheck_passed(&items), "{items:#?}");
    let out = migrate(&task, &HashSet::new()).await;
    let mut made: Vec<&str> = out
        .report()
        .objects
        .iter()
        .filter(|o| o.kind == ObjectKind::DefaultPrivileges && o.created)
        .map(|o| o.name.as_str())
        .collect();
    made.sort();
    assert_eq!(
        made,
        [
            "default privileges of app in database restored on functions: EXECUTE to app",
            "default privileges of app in database restored on sequences: none",
            "default privileges of app in database restored on tables: \
             DELETE, INSERT, REFERENCES, SELECT, TRIGGER, TRUNCATE, UPDATE to app; SELECT to reader",
        ]
    );
    let acl = "SELECT pg_get_userbyid(defaclrole)::text || ':' || defaclobjtype::text || ':' \
               || array_to_string(defaclacl, ',') FROM pg_default_acl \
               WHERE defaclnamespace = 0 ORDER BY 1";
    let restored = p.target.connect("restored").await;
    let expected = column(&p.src, acl).await;
    assert_eq!(expected.len(), 3, "{expected:?}");
    assert_eq!(column(&restored, acl).await, expected);
    restored
        .batch_execute(
            "GRANT CREATE ON SCHEMA public TO app; SET ROLE app;
             CREATE TABLE later (x int);
             CREATE FUNCTION later_f() RETURNS int LANGUAGE sql AS 'SELECT 1';
             RESET ROLE",
        )
        .await
        .expect("app creates a table and a function");
    assert_eq!(
        one(
            &restored,
            "SELECT has_table_privilege('reader', 'later', 'SELECT')::text || ' ' || \
                    has_function_privilege('reader', 'later_f()', 'EXECUTE')::text"
        )
        .await,
        "true false"
    );
}

/// A target account that is not a superuser does not give objects to their owners:
/// the table is created and owned by that account, and the report says why.
#[tokio::test]
async fn an_account_that_is_not_a_superuser_keeps_what_it_creates() {
    let p = Pair::start().await;
    p.both("CREATE ROLE app").await;
    p.src(
        "CREATE TABLE t (id int PRIMARY KEY); ALTER TABLE t OWNER TO app; INSERT INTO t VALUES (1)",
    )
    .await;
    p.dst(
        "CREATE ROLE mover LOGIN PASSWORD 'pw' IN ROLE app;
         GRANT CREATE ON DATABASE shop TO mover;
         GRANT CREATE ON SCHEMA public TO mover;",
    )
    .await;
    let mut task = p.task(&["shop.public.t"], ConflictMode::Error);
    task.target.user("mover").password("pw");
    let out = migrate(&task, &HashSet::new()).await;
    let report = out.report();
    assert!(report.verified(), "{report:#?}");
    let o = report
        .objects
        .iter()
        .find(|o| o.kind == ObjectKind::Owner)
        .expect("the owner is reported");
    assert_eq!(o.name, "owner of shop.public.t: app");
    assert!(!o.created, "{o:#?}");
    assert!(
        o.note.starts_with(
            "the account Lifeboat connects to the target with is not a superuser, so it does not give objects to role app"
        ),
        "{o:#?}"
    );
    assert_eq!(
        one(
            &p.dst,
            "SELECT pg_get_userbyid(relowner)::text FROM pg_class WHERE relname = 't'"
        )
        .await,
        "mover"
    );
}

/// A task whose only object is a view going into a database the target lacks: the
/// pre-check checks that database as it would one receiving tables.
#[tokio::test]
async fn a_view_alone_into_a_new_database_is_prechecked() {
    let p = Pair::start().await;
    p.src("CREATE TABLE t (id int); CREATE VIEW v AS SELECT id FROM t")
        .await;
    p.dst("CREATE ROLE mover LOGIN PASSWORD 'pw'").await;
    let mut task = p.task(&["shop.public.v=fresh.public.v"], ConflictMode::Error);
    task.target.user("mover").password("pw");
    let items = check(&task).await;
    let i = item(&items, "target_privileges");
    assert_eq!(i.status, PrecheckStatus::Failed, "{items:#?}");
    assert!(
        i.detail.contains(
            "database fresh does not exist in the target and mover may not create databases"
        ),
        "{i:#?}"
    );
}
