//! The API's contract: schemathesis (PyPI) fuzzes the OpenAPI document the server
//! serves, with the token, with every default check (no server error, documented
//! status codes and content types, answers that match their schemas, schema-valid
//! requests accepted and invalid ones refused), and the test fails on any failure.
//! `tests/schemathesis/schemathesis.toml` lists the answers no schema can foretell.

use std::process::Command;

use super::harness::*;

/// Examples per operation and phase: enough to reach every rule, few enough that the
/// instances valid requests create stay within the server's port range.
const EXAMPLES: &str = "25";

/// Seconds one request may take. Creating an instance (initdb, start, first base
/// backup) answers once the instance runs: about 5 s on a quiet 2-core machine, and
/// past schemathesis's default of 10 s when builds and other tests load it.
const REQUEST_TIMEOUT: &str = "120";

#[tokio::test]
async fn the_api_answers_as_its_openapi_document_says() {
    let runs = Command::new("python3")
        .args(["-c", "import schemathesis"])
        .status()
        .is_ok_and(|s| s.success());
    if !runs {
        skip("schemathesis is not installed (scripts/install-deps installs it from PyPI)");
        return;
    }
    let server = TestServer::start_archiving("");
    // Something for the operations on an instance to find.
    server.create_master("shop");
    // A fixed seed, so a run can be replayed; LIFEBOAT_SCHEMATHESIS_SEED tries others.
    let seed = std::env::var("LIFEBOAT_SCHEMATHESIS_SEED").unwrap_or_else(|_| "20261201".into());
    let config = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/schemathesis/schemathesis.toml");
    let out = Command::new("python3")
        .args([
            "-c",
            "import sys; from schemathesis.cli import schemathesis; schemathesis(prog_name='schemathesis')",
        ])
        .arg("--config-file")
        .arg(&config)
        .args(["run", &format!("{}/api/v1/openapi.json", server.url)])
        .args(["-H", &format!("Authorization: Bearer {}", server.token())])
        .args(["--max-examples", EXAMPLES, "--workers", "1", "--seed", &seed])
        .args(["--request-timeout", REQUEST_TIMEOUT])
        .args(["--report-dir"])
        .arg(server.tmp.path().join("schemathesis-report"))
        .current_dir(server.tmp.path())
        .output()
        .expect("run schemathesis");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "schemathesis found failures:\n{stdout}\n{}\nserver log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        server.log()
    );
    assert!(stdout.contains(" passed"), "{stdout}");
}
