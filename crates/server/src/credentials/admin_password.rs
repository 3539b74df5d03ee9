//! The console's admin password: stored only as an Argon2id hash (a PHC string such as
//! `$argon2id$v=19$m=19456,t=2,p=1$...`) in `[console] admin_password_hash`, made by
//! `lifeboat hash-password`. Signing in with it is an alternative to the API token.

use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};

/// Hashes a password for the configuration file.
pub fn hash(password: &str) -> anyhow::Result<String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| anyhow::anyhow!("cannot hash the password: {e}"))
}

/// Checks that a configured hash is one this server can verify against.
pub fn check(phc: &str) -> anyhow::Result<()> {
    let parsed = PasswordHash::new(phc).map_err(|e| {
        anyhow::anyhow!(
            "[console] admin_password_hash is not a password hash ({e}); make one with `lifeboat hash-password --password-file FILE` and paste its output"
        )
    })?;
    if parsed.algorithm.as_str() != "argon2id" {
        anyhow::bail!(
            "[console] admin_password_hash uses {}, not argon2id; make one with `lifeboat hash-password --password-file FILE`",
            parsed.algorithm
        );
    }
    Ok(())
}

/// Whether `password` matches the configured hash. Slow on purpose (Argon2id); call
/// it off the async runtime.
pub fn verify(phc: &str, password: &str) -> bool {
    PasswordHash::new(phc)
        .map(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_verifies_its_password_and_no_other() {
        let h = hash("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$"), "{h}");
        assert!(!h.contains("correct horse"));
        check(&h).unwrap();
        assert!(verify(&h, "correct horse"));
        assert!(!verify(&h, "correct hors"));
        assert!(!verify(&h, ""));
        assert_ne!(
            hash("correct horse").unwrap(),
            h,
            "each hash has its own salt"
        );
    }

    #[test]
    fn a_configured_hash_that_is_not_argon2id_is_refused() {
        let e = check("hunter2").unwrap_err().to_string();
        assert!(e.contains("lifeboat hash-password"), "{e}");
        let e = check("$pbkdf2-sha256$i=1000$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo")
            .unwrap_err()
            .to_string();
        assert!(e.contains("not argon2id"), "{e}");
        assert!(!verify("hunter2", "hunter2"));
    }
}
