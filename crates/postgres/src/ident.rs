//! PostgreSQL names: quoting every identifier and literal that goes into SQL, reading
//! the dotted paths users type (`shop."my.schema".orders`) the way psql reads them, and
//! writing names back the way a user would type them.
//!
//! Every identifier is quoted when written into SQL, whatever it looks like: a table
//! named `x"; DROP TABLE y; --` is one identifier and nothing else.

/// PostgreSQL's identifier limit (NAMEDATALEN - 1); longer names are silently
/// truncated by the server, which would make two mapped names collide unnoticed.
pub use lifeboat_domain::names::MAX_IDENTIFIER_BYTES;

/// `"name"` with embedded quotes doubled: safe for any identifier.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `'text'` with embedded quotes doubled (standard_conforming_strings is on).
pub fn quote_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// A part as a user would type it: bare when psql would take it bare, quoted otherwise.
pub fn display_ident(name: &str) -> String {
    let bare = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '$');
    if bare {
        name.to_string()
    } else {
        quote_ident(name)
    }
}

/// `a.b.c` for display, each part quoted only when needed.
pub fn display_path<S: AsRef<str>>(parts: &[S]) -> String {
    parts
        .iter()
        .map(|p| display_ident(p.as_ref()))
        .collect::<Vec<_>>()
        .join(".")
}

/// Why a name cannot be used, or `None` when PostgreSQL accepts it as is.
pub fn identifier_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        Some("an empty name is not allowed".into())
    } else if name.len() > MAX_IDENTIFIER_BYTES {
        Some(format!(
            "{} is {} bytes long; PostgreSQL names are at most {MAX_IDENTIFIER_BYTES} bytes",
            display_ident(name),
            name.len()
        ))
    } else if name.contains('\0') {
        Some("a name cannot contain a NUL character".into())
    } else {
        None
    }
}

/// Splits a dotted path the way psql reads names: an unquoted part folds to lower case
/// and must be a plain identifier (letter or `_`, then letters, digits, `_`, `$`); a
/// `"quoted"` part is taken as written, with `""` standing for one `"`. So
/// `shop."my.schema".Orders` is `["shop", "my.schema", "orders"]`.
pub fn parse_path(text: &str) -> Result<Vec<String>, String> {
    let mut parts = Vec::new();
    let mut chars = text.trim().chars().peekable();
    loop {
        let mut part = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    Some('"') if chars.peek() == Some(&'"') => {
                        chars.next();
                        part.push('"');
                    }
                    Some('"') => break,
                    Some(c) => part.push(c),
                    None => return Err(format!("'{text}' has an unterminated quote")),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == '.' {
                    break;
                }
                part.extend(c.to_lowercase());
                chars.next();
            }
            let plain = part
                .chars()
                .next()
                .is_some_and(|c| c.is_alphabetic() || c == '_')
                && part
                    .chars()
                    .all(|c| c.is_alphanumeric() || c == '_' || c == '$');
            if !plain {
                return Err(format!(
                    "'{part}' in '{text}' is not a plain identifier; write it in double quotes to use it as a name"
                ));
            }
        }
        if let Some(problem) = identifier_problem(&part) {
            return Err(format!("in '{text}': {problem}"));
        }
        parts.push(part);
        match chars.next() {
            None => return Ok(parts),
            Some('.') => continue,
            Some(c) => return Err(format!("unexpected '{c}' after a quoted name in '{text}'")),
        }
    }
}

/// A value inside single quotes of a libpq connection string (`host='...'`).
pub fn conninfo_quote(value: &str) -> String {
    value.replace('\\', "\\\\").replace('\'', "\\'")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(quote_literal("it's"), "'it''s'");
        assert_eq!(display_ident("Orders"), "\"Orders\"");
        assert_eq!(
            display_path(&["shop", "my.schema", "orders"]),
            "shop.\"my.schema\".orders"
        );
    }

    #[test]
    fn paths_read_like_psql() {
        assert_eq!(
            parse_path(r#"shop."my.schema".Orders"#).unwrap(),
            vec!["shop", "my.schema", "orders"]
        );
        assert_eq!(parse_path(r#""a""b""#).unwrap(), vec!["a\"b"]);
        assert!(parse_path("my-table").is_err(), "not a plain identifier");
        assert!(parse_path("\"open").is_err());
        assert!(parse_path("").is_err());
        assert!(
            parse_path(&"x".repeat(64)).is_err(),
            "longer than PostgreSQL keeps"
        );
    }
}
