//! Name rules for instances and accounts.
//!
//! Account names become PostgreSQL role names, so they follow PostgreSQL's identifier
//! rules in their simplest, unquoted form: a user never has to quote them in `psql`.

use crate::InvalidInput;

/// PostgreSQL truncates identifiers longer than this (NAMEDATALEN - 1).
pub const MAX_IDENTIFIER_BYTES: usize = 63;

/// Roles Lifeboat keeps for itself or that PostgreSQL reserves.
const RESERVED_ACCOUNTS: &[&str] = &[
    "lifeboat",
    "postgres",
    "public",
    "none",
    "current_user",
    "session_user",
    "current_role",
];

/// An instance name: 1 to 64 characters, letters, digits, `-` and `_`, starting with a letter.
pub fn validate_instance_name(name: &str) -> Result<(), InvalidInput> {
    let first_ok = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic());
    let rest_ok = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !first_ok || !rest_ok || name.len() > 64 {
        return Err(InvalidInput::new(
            format!("invalid instance name '{}'", name.escape_debug()),
            "use 1 to 64 letters, digits, '-' or '_', starting with a letter",
        ));
    }
    Ok(())
}

/// An account name: a lowercase PostgreSQL identifier that needs no quoting.
pub fn validate_account_name(name: &str) -> Result<(), InvalidInput> {
    let hint = "use 1 to 63 lowercase letters, digits or '_', starting with a letter or '_', not starting with 'pg_'";
    let first_ok = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_');
    let rest_ok = name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !first_ok || !rest_ok || name.len() > MAX_IDENTIFIER_BYTES {
        return Err(InvalidInput::new(
            format!("invalid account name '{}'", name.escape_debug()),
            hint,
        ));
    }
    if name.starts_with("pg_") || RESERVED_ACCOUNTS.contains(&name) {
        return Err(InvalidInput::new(
            format!("account name '{name}' is reserved"),
            "choose another name; 'pg_*', 'postgres' and 'lifeboat' belong to PostgreSQL and Lifeboat",
        ));
    }
    Ok(())
}

/// A password as read from a password file: the file's content without its final
/// newline. Lifeboat never stores it; it is turned into a SCRAM verifier at once.
pub fn password_from_file_content(content: &[u8]) -> Result<String, InvalidInput> {
    let text = std::str::from_utf8(content).map_err(|_| {
        InvalidInput::new(
            "the password file is not valid UTF-8",
            "write the password as text on the first line of the file",
        )
    })?;
    let password = text.strip_suffix('\n').unwrap_or(text);
    let password = password.strip_suffix('\r').unwrap_or(password);
    validate_password(password)?;
    Ok(password.to_string())
}

/// Passwords: 8 to 128 characters, one line, no NUL byte.
pub fn validate_password(password: &str) -> Result<(), InvalidInput> {
    let hint = "put a password of 8 to 128 characters on one line of the password file";
    if password.is_empty() {
        return Err(InvalidInput::new("the password is empty", hint));
    }
    if password.chars().count() < 8 {
        return Err(InvalidInput::new(
            "the password is shorter than 8 characters",
            hint,
        ));
    }
    if password.chars().count() > 128 {
        return Err(InvalidInput::new(
            "the password is longer than 128 characters",
            hint,
        ));
    }
    if password.contains(['\n', '\r', '\0']) {
        return Err(InvalidInput::new(
            "the password spans several lines or contains a NUL byte",
            hint,
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_names() {
        for ok in ["shop", "Shop-2", "a", "orders_db"] {
            validate_instance_name(ok).unwrap();
        }
        for bad in ["", "2shop", "-x", "shop db", "x\"; drop", &"a".repeat(65)] {
            assert!(validate_instance_name(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn account_names() {
        for ok in ["admin", "_app", "app_2"] {
            validate_account_name(ok).unwrap();
        }
        for bad in [
            "",
            "Admin",
            "pg_admin",
            "postgres",
            "lifeboat",
            "a-b",
            "x\"y",
            &"a".repeat(64),
        ] {
            assert!(validate_account_name(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn password_files() {
        assert_eq!(
            password_from_file_content(b"s3cret-pass\n").unwrap(),
            "s3cret-pass"
        );
        assert_eq!(
            password_from_file_content(b"s3cret-pass\r\n").unwrap(),
            "s3cret-pass"
        );
        assert!(password_from_file_content(b"").is_err());
        assert!(password_from_file_content(b"short\n").is_err());
        assert!(password_from_file_content(b"two\nlines-here\n").is_err());
        assert!(
            password_from_file_content(&[0xff, 0xfe, 0x41, 0x41, 0x41, 0x41, 0x41, 0x41]).is_err()
        );
    }
}
