//! What an instance holds, for the console's pickers: its databases, schemas and
//! tables, read through the management connection.

use lifeboat_store::InstanceRecord;

use super::instances::require_running;
use super::registry::connect_db;
use super::{Error, ErrorCode, Result, Shared};

/// Schemas that are PostgreSQL's own.
const SYSTEM_SCHEMAS: &str = "('pg_catalog', 'information_schema', 'pg_toast')";

fn query_failed(rec: &InstanceRecord, what: &str, e: &tokio_postgres::Error) -> Error {
    Error::new(
        ErrorCode::QueryFailed,
        format!(
            "cannot list the {what} of {}: {}",
            rec.id,
            lifeboat_postgres::describe(e)
        ),
        "check that the instance is running",
    )
}

/// The user tables of one database of a running instance, as `schema.table`.
pub async fn tables_of(
    state: &Shared,
    rec: &InstanceRecord,
    database: &str,
) -> Result<Vec<String>> {
    require_running(rec)?;
    let client = connect_db(state, rec, database, None).await?;
    let sql = format!(
        "SELECT schemaname || '.' || tablename FROM pg_tables WHERE schemaname NOT IN {SYSTEM_SCHEMAS} ORDER BY 1"
    );
    let rows = client
        .query(&sql, &[])
        .await
        .map_err(|e| query_failed(rec, "tables", &e))?;
    Ok(rows.iter().map(|r| r.get::<_, String>(0)).collect())
}

/// The unlogged tables of every database of a running instance, as
/// `db.schema.table`.
pub async fn unlogged_tables(state: &Shared, rec: &InstanceRecord) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for db in databases(state, rec).await? {
        let client = connect_db(state, rec, &db, None).await?;
        let rows = client
            .query(
                "SELECT n.nspname || '.' || c.relname FROM pg_class c \
                 JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE c.relpersistence = 'u' AND c.relkind IN ('r', 'p') ORDER BY 1",
                &[],
            )
            .await
            .map_err(|e| query_failed(rec, "unlogged tables", &e))?;
        out.extend(
            rows.iter()
                .map(|r| format!("{db}.{}", r.get::<_, String>(0))),
        );
    }
    Ok(out)
}

/// The databases of a running instance one can connect to.
async fn databases(state: &Shared, rec: &InstanceRecord) -> Result<Vec<String>> {
    let client = connect_db(state, rec, "postgres", None).await?;
    let rows = client
        .query(
            "SELECT datname FROM pg_database WHERE datallowconn AND NOT datistemplate ORDER BY 1",
            &[],
        )
        .await
        .map_err(|e| query_failed(rec, "databases", &e))?;
    Ok(rows.iter().map(|r| r.get::<_, String>(0)).collect())
}

/// Every database, schema and table of a running instance, as
/// `(depth, db[.schema[.table]])` in display order.
pub async fn objects_of(state: &Shared, rec: &InstanceRecord) -> Result<Vec<(usize, String)>> {
    let mut out = Vec::new();
    for db in databases(state, rec).await? {
        out.push((0, db.clone()));
        let mut last_schema = String::new();
        for t in tables_of(state, rec, &db).await? {
            let (schema, _) = t.split_once('.').unwrap_or((&t, ""));
            if schema != last_schema {
                out.push((1, format!("{db}.{schema}")));
                last_schema = schema.to_string();
            }
            out.push((2, format!("{db}.{t}")));
        }
    }
    Ok(out)
}
