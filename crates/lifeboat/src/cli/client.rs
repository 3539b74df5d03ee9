//! The HTTP client of the CLI, and how API errors become one line.

use std::path::Path;

use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// An error answer of the API.
#[derive(Debug, serde::Deserialize)]
pub struct ApiFailure {
    pub code: String,
    pub message: String,
    pub hint: String,
}

impl std::fmt::Display for ApiFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}; hint: {}", self.message, self.hint)
    }
}

impl std::error::Error for ApiFailure {}

/// One line for any error: the chain joined by ": ", newlines folded.
pub fn one_line(e: &anyhow::Error) -> String {
    format!("{e:#}").replace('\n', " ")
}

pub struct Client {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl Client {
    pub fn new(
        data_dir: &Path,
        server: Option<String>,
        token: Option<String>,
    ) -> anyhow::Result<Self> {
        let base = match server {
            Some(s) => s,
            None => read_trimmed(&data_dir.join("server-address")).map_err(|_| {
                anyhow::anyhow!(
                    "no server address: {} does not exist; hint: start the server (lifeboat serve), or pass --data-dir/LIFEBOAT_DATA_DIR of a running server, or --server URL",
                    data_dir.join("server-address").display()
                )
            })?,
        };
        let token = match token {
            Some(t) => t,
            None => read_trimmed(&data_dir.join("api-token")).map_err(|e| {
                anyhow::anyhow!(
                    "cannot read the API token {}: {e}; hint: pass --token/LIFEBOAT_TOKEN or --data-dir of the server",
                    data_dir.join("api-token").display()
                )
            })?,
        };
        Ok(Self {
            base: base.trim_end_matches('/').to_string(),
            token,
            http: reqwest::Client::new(),
        })
    }

    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        self.send(Method::GET, path, None::<&()>).await
    }

    pub async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> anyhow::Result<T> {
        self.send(Method::POST, path, Some(body)).await
    }

    pub async fn patch<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> anyhow::Result<T> {
        self.send(Method::PATCH, path, Some(body)).await
    }

    /// POSTs to an action route, which takes no body (`/migrations/{task}/start`).
    pub async fn action<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        self.send(Method::POST, path, None::<&()>).await
    }

    pub async fn delete<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        self.send(Method::DELETE, path, None::<&()>).await
    }

    /// POSTs and hands each line of a streamed answer to `on_line` as it arrives.
    pub async fn post_stream<B: Serialize>(
        &self,
        path: &str,
        body: &B,
        mut on_line: impl FnMut(&[u8]) -> std::io::Result<()>,
    ) -> anyhow::Result<()> {
        let url = format!("{}/api/v1{path}", self.base);
        let mut resp = self
            .http
            .post(&url)
            .bearer_auth(&self.token)
            .json(body)
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("cannot reach the Lifeboat server at {}: {e}; hint: is `lifeboat serve` running?", self.base))?;
        let status = resp.status();
        if !status.is_success() {
            let bytes = resp.bytes().await?;
            return Err(match serde_json::from_slice::<ApiFailure>(&bytes) {
                Ok(f) => f.into(),
                Err(_) => anyhow::anyhow!(
                    "the server answered {status}: {}",
                    String::from_utf8_lossy(&bytes)
                ),
            });
        }
        let mut pending: Vec<u8> = Vec::new();
        while let Some(chunk) = resp.chunk().await? {
            pending.extend_from_slice(&chunk);
            while let Some(end) = pending.iter().position(|b| *b == b'\n') {
                on_line(&pending[..end])?;
                pending.drain(..=end);
            }
        }
        if !pending.is_empty() {
            on_line(&pending)?;
        }
        Ok(())
    }

    async fn send<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> anyhow::Result<T> {
        let url = format!("{}/api/v1{path}", self.base);
        let mut req = self.http.request(method, &url).bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await.map_err(|e| {
            anyhow::anyhow!(
                "cannot reach the Lifeboat server at {}: {e}; hint: is `lifeboat serve` running?",
                self.base
            )
        })?;
        let status = resp.status();
        let bytes = resp.bytes().await?;
        if !status.is_success() {
            return Err(match serde_json::from_slice::<ApiFailure>(&bytes) {
                Ok(f) => f.into(),
                Err(_) => anyhow::anyhow!(
                    "the server answered {status}: {}",
                    String::from_utf8_lossy(&bytes)
                ),
            });
        }
        let bytes = if status == StatusCode::NO_CONTENT || bytes.is_empty() {
            &b"null"[..]
        } else {
            &bytes[..]
        };
        serde_json::from_slice(bytes)
            .map_err(|e| anyhow::anyhow!("unexpected answer from the server: {e}"))
    }
}

fn read_trimmed(path: &Path) -> std::io::Result<String> {
    Ok(std::fs::read_to_string(path)?.trim().to_string())
}
