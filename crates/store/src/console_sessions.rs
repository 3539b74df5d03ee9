//! Signed-in console browsers. The store keeps a digest of each session id (the
//! browser's cookie), never the id itself, so reading the store signs nobody in.

use rusqlite::{OptionalExtension, params};

use crate::{Store, StoreError};

impl Store {
    /// Records a session; drops the sessions that have ended (`now` and `expires_at`
    /// are Unix seconds).
    pub fn create_console_session(
        &self,
        id_digest: &str,
        csrf: &str,
        now: i64,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        let conn = self.conn();
        conn.execute(
            "DELETE FROM console_sessions WHERE expires_at <= ?1",
            params![now],
        )?;
        conn.execute(
            "INSERT INTO console_sessions (id_digest, csrf, expires_at) VALUES (?1, ?2, ?3)",
            params![id_digest, csrf, expires_at],
        )?;
        Ok(())
    }

    /// The CSRF token of a session that has not ended at `now`.
    pub fn console_session_csrf(
        &self,
        id_digest: &str,
        now: i64,
    ) -> Result<Option<String>, StoreError> {
        Ok(self
            .conn()
            .query_row(
                "SELECT csrf FROM console_sessions WHERE id_digest = ?1 AND expires_at > ?2",
                params![id_digest, now],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// Ends a session (signing out).
    pub fn delete_console_session(&self, id_digest: &str) -> Result<(), StoreError> {
        self.conn().execute(
            "DELETE FROM console_sessions WHERE id_digest = ?1",
            params![id_digest],
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_end_when_they_expire_or_are_deleted() {
        let store = Store::in_memory().unwrap();
        store
            .create_console_session("a", "csrf-a", 100, 200)
            .unwrap();
        store
            .create_console_session("b", "csrf-b", 100, 300)
            .unwrap();
        assert_eq!(
            store.console_session_csrf("a", 150).unwrap().as_deref(),
            Some("csrf-a")
        );
        assert_eq!(store.console_session_csrf("a", 200).unwrap(), None);
        assert_eq!(store.console_session_csrf("nope", 150).unwrap(), None);
        // A new sign-in sweeps the ended ones.
        store
            .create_console_session("c", "csrf-c", 250, 400)
            .unwrap();
        let left: i64 = store
            .conn()
            .query_row("SELECT count(*) FROM console_sessions", [], |r| r.get(0))
            .unwrap();
        assert_eq!(left, 2);
        store.delete_console_session("b").unwrap();
        assert_eq!(store.console_session_csrf("b", 260).unwrap(), None);
        assert!(store.console_session_csrf("c", 260).unwrap().is_some());
    }
}
