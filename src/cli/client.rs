//! A small HTTP client for the REST API: bearer token, one W3C `traceparent` per
//! invocation (SPEC §7: the CLI starts the trace), JSON bodies, and error
//! statuses turned into [`CliError::Api`] with the server's problem+json body.

use std::time::Duration;

use reqwest::header::{ACCEPT, LOCATION};
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;

use super::error::CliError;
use super::settings::Settings;
use crate::wire::Problem;

/// How long any request but a synchronous job wait may take.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// One request to the API.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: Method,
    /// Path under the base URL, starting with `/`.
    pub path: String,
    pub query: Vec<(String, String)>,
    pub body: Option<serde_json::Value>,
    /// A body of bytes (an upload), sent as `application/octet-stream`.
    pub bytes: Option<Vec<u8>>,
    /// `None`: no overall limit (streamed downloads).
    pub timeout: Option<Duration>,
}

impl Request {
    pub fn new(method: Method, path: impl Into<String>) -> Self {
        Request {
            method,
            path: path.into(),
            query: Vec::new(),
            body: None,
            bytes: None,
            timeout: Some(DEFAULT_REQUEST_TIMEOUT),
        }
    }

    pub fn get(path: impl Into<String>) -> Self {
        Request::new(Method::GET, path)
    }

    pub fn query(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.query.push((name.into(), value.into()));
        self
    }

    /// Add `name=value` when there is a value.
    pub fn query_opt(self, name: &'static str, value: Option<impl ToString>) -> Self {
        match value {
            Some(v) => self.query(name, v.to_string()),
            None => self,
        }
    }

    pub fn json(mut self, body: serde_json::Value) -> Self {
        self.body = Some(body);
        self
    }

    pub fn bytes(mut self, body: Vec<u8>) -> Self {
        self.bytes = Some(body);
        self
    }

    pub fn timeout(mut self, timeout: Option<Duration>) -> Self {
        self.timeout = timeout;
        self
    }
}

/// A successful answer, read whole.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub location: Option<String>,
    pub body: bytes::Bytes,
}

impl Reply {
    /// The body as JSON.
    pub fn json(&self) -> Result<serde_json::Value, CliError> {
        serde_json::from_slice(&self.body).map_err(|source| CliError::Decode {
            what: "response body",
            source,
        })
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Decode the typed view of an answer while keeping the raw JSON for `-o json`,
/// so fields this client does not know are still shown.
pub fn decode<T: DeserializeOwned>(
    raw: &serde_json::Value,
    what: &'static str,
) -> Result<T, CliError> {
    serde_json::from_value(raw.clone()).map_err(|source| CliError::Decode { what, source })
}

/// The API client of one invocation.
pub struct Client {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
    traceparent: String,
}

impl Client {
    pub fn new(settings: &Settings) -> Result<Client, CliError> {
        // reqwest is built without a default crypto provider; rustls needs one
        // installed before any client exists (an error only means it already is).
        crate::tls::install_ring_provider();
        let builder = || {
            reqwest::Client::builder()
                .user_agent(concat!("osapictl/", env!("CARGO_PKG_VERSION")))
                .connect_timeout(Duration::from_secs(10))
        };
        let plain_http = reqwest::Url::parse(&settings.url).is_ok_and(|u| u.scheme() == "http");
        if let Some(ca_file) = &settings.ca_file {
            // Pinned: only this CA (the API's generated one) is trusted.
            let pem = std::fs::read(ca_file).map_err(|source| CliError::CaFile {
                path: ca_file.clone(),
                source,
            })?;
            let certs =
                reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| CliError::CaFile {
                    path: ca_file.clone(),
                    source: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
                })?;
            let http = builder()
                .tls_certs_only(certs)
                .build()
                .map_err(CliError::ClientSetup)?;
            return Ok(Client {
                http,
                base: settings.url.clone(),
                token: settings.token.clone(),
                traceparent: new_traceparent(),
            });
        }
        // Plain HTTP needs no CA: loading and parsing the system's would be
        // most of a short invocation's time (a redirect to https then fails
        // on the certificate, with a message saying so).
        let http = if plain_http {
            builder().tls_certs_only([]).build()
        } else {
            builder().build()
        }
        .map_err(CliError::ClientSetup)?;
        Ok(Client {
            http,
            base: settings.url.clone(),
            token: settings.token.clone(),
            traceparent: new_traceparent(),
        })
    }

    /// The trace context sent with every request of this invocation.
    pub fn traceparent(&self) -> &str {
        &self.traceparent
    }

    fn builder(&self, req: &Request) -> reqwest::RequestBuilder {
        let mut b = self
            .http
            .request(req.method.clone(), format!("{}{}", self.base, req.path))
            .header("traceparent", &self.traceparent)
            .header(
                ACCEPT,
                "application/json, application/problem+json;q=0.9, */*;q=0.1",
            );
        if !req.query.is_empty() {
            b = b.query(&req.query);
        }
        if let Some(body) = &req.body {
            b = b.json(body);
        }
        if let Some(bytes) = &req.bytes {
            b = b
                .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
                .body(bytes.clone());
        }
        if let Some(t) = req.timeout {
            b = b.timeout(t);
        }
        if let Some(token) = &self.token {
            b = b.bearer_auth(token);
        }
        b
    }

    fn transport_error(&self, req: &Request, e: reqwest::Error) -> CliError {
        if e.is_connect() {
            CliError::Connect {
                url: self.base.clone(),
                source: e,
            }
        } else if e.is_timeout() {
            CliError::Timeout {
                url: self.base.clone(),
                after: req.timeout.unwrap_or_default(),
            }
        } else {
            CliError::Transport {
                url: format!("{}{}", self.base, req.path),
                source: e,
            }
        }
    }

    /// Send and read the whole answer, whatever its status.
    pub async fn send_any(&self, req: &Request) -> Result<Reply, CliError> {
        let resp = self
            .builder(req)
            .send()
            .await
            .map_err(|e| self.transport_error(req, e))?;
        let status = resp.status().as_u16();
        let location = resp
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = resp
            .bytes()
            .await
            .map_err(|e| self.transport_error(req, e))?;
        Ok(Reply {
            status,
            location,
            body,
        })
    }

    /// Send; an error status becomes [`CliError::Api`].
    pub async fn send(&self, req: &Request) -> Result<Reply, CliError> {
        let reply = self.send_any(req).await?;
        if (200..300).contains(&reply.status) {
            Ok(reply)
        } else {
            Err(CliError::Api {
                status: reply.status,
                problem: Box::new(problem_from(reply.status, &reply.body)),
            })
        }
    }

    /// Send and return the answer's JSON.
    pub async fn json(&self, req: &Request) -> Result<serde_json::Value, CliError> {
        self.send(req).await?.json()
    }

    /// Send and copy the body as it arrives (for streamed exports) into the
    /// writer `open` gives, called only once the answer is known to be a success
    /// so a failed export leaves no empty file behind. Returns the bytes written.
    pub async fn download<W: std::io::Write>(
        &self,
        req: &Request,
        open: impl FnOnce() -> Result<W, CliError>,
    ) -> Result<u64, CliError> {
        let mut resp = self
            .builder(req)
            .send()
            .await
            .map_err(|e| self.transport_error(req, e))?;
        let status = resp.status();
        if !status.is_success() {
            let body = resp
                .bytes()
                .await
                .map_err(|e| self.transport_error(req, e))?;
            return Err(CliError::Api {
                status: status.as_u16(),
                problem: Box::new(problem_from(status.as_u16(), &body)),
            });
        }
        let mut out = open()?;
        let mut written = 0u64;
        let io = |source| CliError::Io {
            doing: "write the export".into(),
            source,
        };
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| self.transport_error(req, e))?
        {
            out.write_all(&chunk).map_err(io)?;
            written += chunk.len() as u64;
        }
        out.flush().map_err(io)?;
        Ok(written)
    }
}

/// A fresh W3C trace context: the CLI starts the trace.
pub fn new_traceparent() -> String {
    crate::telemetry::trace::TraceContext::new_root().to_string()
}

/// The problem in an error answer. A body that is not problem+json (a proxy's
/// HTML page, an empty 502) becomes an `about:blank` problem with the status's
/// reason and the body's first line.
pub fn problem_from(status: u16, body: &[u8]) -> Problem {
    if let Ok(p) = serde_json::from_slice::<Problem>(body) {
        return p;
    }
    let title = StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Error")
        .to_owned();
    let text = String::from_utf8_lossy(body);
    let first = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("");
    let detail = if first.is_empty() {
        format!("the API answered {status} {title}")
    } else {
        first.chars().take(200).collect()
    };
    Problem {
        type_uri: "about:blank".into(),
        title,
        status,
        detail,
        field: None,
        permission: None,
        job_id: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_has_the_w3c_shape() {
        let tp = new_traceparent();
        let parts: Vec<&str> = tp.split('-').collect();
        assert_eq!(parts.len(), 4, "{tp}");
        assert_eq!(parts[0], "00");
        assert_eq!(parts[1].len(), 32);
        assert_eq!(parts[2].len(), 16);
        assert_eq!(parts[3], "01");
        assert!(parts[1..3].iter().all(|p| {
            p.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        }));
        assert_ne!(parts[1], "0".repeat(32));
        assert_eq!(
            crate::telemetry::trace::TraceContext::parse(&tp)
                .map(|t| t.trace_id_hex())
                .as_deref(),
            Some(parts[1])
        );
        assert_ne!(new_traceparent(), tp);
    }

    #[test]
    fn problem_json_is_parsed() {
        let body =
            br#"{"type":"https://osapi.dev/problems/forbidden","title":"Forbidden","status":403,
            "detail":"missing permission command:execute","permission":"command:execute"}"#;
        let p = problem_from(403, body);
        assert_eq!(p.status, 403);
        assert_eq!(p.permission.as_deref(), Some("command:execute"));
        let e = CliError::Api {
            status: 403,
            problem: Box::new(p),
        };
        assert_eq!(e.exit_code(), 3);
        assert_eq!(
            e.to_string(),
            "Forbidden (403): missing permission command:execute"
        );

        let body = br#"{"type":"https://osapi.dev/problems/invalid-input","title":"Bad Request","status":400,
            "detail":"must be between 1 and 100","field":"count"}"#;
        let e = CliError::Api {
            status: 400,
            problem: Box::new(problem_from(400, body)),
        };
        assert_eq!(
            e.to_string(),
            "Bad Request (400): must be between 1 and 100 [field: count]"
        );
        assert_eq!(e.exit_code(), 1);
    }

    #[test]
    fn other_error_bodies_become_problems() {
        let p = problem_from(502, b"\n<html>Bad gateway from proxy</html>\n");
        assert_eq!(
            (p.status, p.title.as_str(), p.type_uri.as_str()),
            (502, "Bad Gateway", "about:blank")
        );
        assert_eq!(p.detail, "<html>Bad gateway from proxy</html>");
        let p = problem_from(404, b"");
        assert_eq!(p.detail, "the API answered 404 Not Found");
    }

    #[test]
    fn requests_collect_query_and_body() {
        let r = Request::get("/api/v1/jobs")
            .query("limit", "5")
            .query_opt("cursor", None::<String>)
            .query_opt("status", Some("failed"));
        assert_eq!(
            r.query,
            vec![
                ("limit".to_owned(), "5".to_owned()),
                ("status".to_owned(), "failed".to_owned())
            ]
        );
        assert_eq!(r.timeout, Some(DEFAULT_REQUEST_TIMEOUT));
    }
}
