//! Login roles ("accounts"), created from SCRAM verifiers so that the cleartext password
//! never reaches PostgreSQL, its log, or Lifeboat's metadata store.

use tokio_postgres::Client;

use crate::PgError;
use crate::ident::{quote_ident, quote_literal};

/// A login role as PostgreSQL reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountInfo {
    pub name: String,
    pub superuser: bool,
}

/// The SCRAM-SHA-256 verifier of a password (random salt, 4096 iterations).
pub fn scram_verifier(password: &str) -> String {
    postgres_protocol::password::scram_sha_256(password.as_bytes())
}

/// Creates a login role. The privileged account is a superuser: it owns the instance's
/// data and is the account migration tasks use.
pub async fn create_account(
    client: &Client,
    name: &str,
    verifier: &str,
    privileged: bool,
) -> Result<(), PgError> {
    let attrs = if privileged {
        "LOGIN SUPERUSER CREATEDB CREATEROLE"
    } else {
        "LOGIN"
    };
    // Names are validated by lifeboat_domain and quoted anyway; the verifier is a
    // literal because CREATE ROLE takes no parameters.
    let sql = format!(
        "CREATE ROLE {} {attrs} PASSWORD {}",
        quote_ident(name),
        quote_literal(verifier)
    );
    client
        .batch_execute(&sql)
        .await
        .map_err(PgError::sql(format!("cannot create account '{name}'")))
}

/// Login roles other than Lifeboat's own.
pub async fn list_accounts(client: &Client) -> Result<Vec<AccountInfo>, PgError> {
    let rows = client
        .query(
            "SELECT rolname::text, rolsuper FROM pg_roles \
             WHERE rolcanlogin AND rolname <> $1 ORDER BY rolname",
            &[&crate::MANAGEMENT_ROLE],
        )
        .await
        .map_err(PgError::sql("cannot list accounts"))?;
    Ok(rows
        .iter()
        .map(|r| AccountInfo {
            name: r.get(0),
            superuser: r.get(1),
        })
        .collect())
}

pub async fn account_exists(client: &Client, name: &str) -> Result<bool, PgError> {
    let row = client
        .query_one("SELECT count(*) FROM pg_roles WHERE rolname = $1", &[&name])
        .await
        .map_err(PgError::sql("cannot look up account"))?;
    Ok(row.get::<_, i64>(0) > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verifier_hides_the_password() {
        let v = scram_verifier("correct horse");
        assert!(v.starts_with("SCRAM-SHA-256$4096:"));
        assert!(!v.contains("correct horse"));
    }
}
