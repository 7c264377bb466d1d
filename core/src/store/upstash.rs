//! The Upstash REST protocol client: the Redis tier, over any [`HttpClient`].
//!
//! Protocol (see `docs/upstash-rest.md`): `POST /` with a JSON array runs one command,
//! `POST /pipeline` with an array of arrays runs many in order, `POST /multi-exec` runs many
//! atomically. Auth is `Authorization: Bearer <token>`. The client always asks for
//! `Upstash-Encoding: base64`, so values that are not valid UTF-8 survive the JSON trip, and
//! it chains the `upstash-sync-token` header for read-your-writes on replicated databases.
//!
//! The client owns the wire format and status mapping. It never logs, and the token never
//! appears in an error.

use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;
use serde_json::Value;

use super::{Command, CommandError, Replies, Reply, Store, StoreError};
use crate::http::{HttpClient, HttpRequest, HttpResponse, Method};
use crate::secret::Secret;

const SYNC_TOKEN_HEADER: &str = "upstash-sync-token";

/// Where the Redis REST endpoint is and how to talk to it.
#[derive(Debug, Clone)]
pub struct UpstashConfig {
    /// The REST URL, e.g. `https://eu1-xxx.upstash.io` (a trailing `/` is ignored).
    pub url: String,
    pub token: Secret,
    /// Bound on one HTTP request, connect to last byte.
    pub timeout: Duration,
}

pub struct UpstashClient<H> {
    http: H,
    url: String,
    token: Secret,
    timeout: Duration,
    /// The last sync token Upstash sent; `Mutex` only to be `Sync` for native callers; the
    /// worker is single-threaded and never contends.
    sync_token: Mutex<Option<String>>,
}

impl<H: HttpClient> UpstashClient<H> {
    pub fn new(http: H, config: UpstashConfig) -> Self {
        Self {
            http,
            url: config.url.trim_end_matches('/').to_owned(),
            token: config.token,
            timeout: config.timeout,
            sync_token: Mutex::new(None),
        }
    }

    async fn post(&self, path: &str, body: Value) -> Result<HttpResponse, StoreError> {
        let mut request = HttpRequest::new(Method::Post, format!("{}{path}", self.url), self.timeout)
            .header("Authorization", format!("Bearer {}", self.token.expose()))
            .header("Content-Type", "application/json")
            .header("Upstash-Encoding", "base64")
            .body(body.to_string().into_bytes());
        if let Some(token) = self.sync_token.lock().ok().and_then(|t| t.clone()) {
            request = request.header(SYNC_TOKEN_HEADER, token);
        }
        let response = self.http.send(request).await.map_err(|e| StoreError::Unavailable(e.to_string()))?;
        if let Some(token) = response.header(SYNC_TOKEN_HEADER) {
            if let Ok(mut slot) = self.sync_token.lock() {
                *slot = Some(token.to_owned());
            }
        }
        Ok(response)
    }

    async fn batch(&self, path: &str, commands: &[Command]) -> Result<Replies, StoreError> {
        if commands.is_empty() {
            return Ok(Vec::new());
        }
        let body = Value::Array(commands.iter().map(command_json).collect());
        let response = self.post(path, body).await?;
        let body = parse_body(&response)?;
        match body {
            Value::Array(items) if items.len() == commands.len() => items.iter().map(item_reply).collect(),
            Value::Array(items) => Err(StoreError::UnexpectedReply {
                command: path.trim_start_matches('/').to_owned(),
                detail: format!("{} replies for {} commands", items.len(), commands.len()),
            }),
            // `/multi-exec` answers a discarded transaction with one error object.
            Value::Object(ref object) if object.contains_key("error") => {
                Err(StoreError::Rejected { status: response.status, message: error_text(&body) })
            }
            other => Err(StoreError::UnexpectedReply {
                command: path.trim_start_matches('/').to_owned(),
                detail: format!("expected an array, got {other}"),
            }),
        }
    }
}

#[async_trait(?Send)]
impl<H: HttpClient> Store for UpstashClient<H> {
    async fn pipeline(&self, commands: &[Command]) -> Result<Replies, StoreError> {
        self.batch("/pipeline", commands).await
    }

    async fn transaction(&self, commands: &[Command]) -> Result<Replies, StoreError> {
        self.batch("/multi-exec", commands).await
    }

    async fn execute(&self, command: &Command) -> Result<Reply, StoreError> {
        let response = self.post("", command_json(command)).await?;
        let body = parse_body(&response)?;
        item_reply(&body)?.map_err(|error| StoreError::Command { command: command.name().to_owned(), error })
    }
}

fn command_json(command: &Command) -> Value {
    Value::Array(command.args().iter().cloned().map(Value::String).collect())
}

/// Maps HTTP status to errors and returns the JSON body of a response worth reading:
/// 200, and 400 (a command error, whose body says which).
fn parse_body(response: &HttpResponse) -> Result<Value, StoreError> {
    let body: Result<Value, _> = serde_json::from_slice(&response.body);
    match response.status {
        200 | 400 => body.map_err(|e| StoreError::UnexpectedReply {
            command: "request".into(),
            detail: format!("HTTP {} with a body that is not JSON: {e}", response.status),
        }),
        401 | 403 | 405 | 413 => Err(StoreError::Rejected {
            status: response.status,
            message: body.map(|b| error_text(&b)).unwrap_or_else(|_| "no error message".into()),
        }),
        status => Err(StoreError::Unavailable(format!("HTTP {status}"))),
    }
}

fn error_text(body: &Value) -> String {
    match body.get("error") {
        Some(Value::String(text)) => text.clone(),
        Some(other) => other.to_string(),
        None => "no error message".into(),
    }
}

/// One `{"result": …}` or `{"error": "…"}` object.
fn item_reply(item: &Value) -> Result<Result<Reply, CommandError>, StoreError> {
    if let Some(error) = item.get("error") {
        return Ok(Err(CommandError(match error {
            Value::String(text) => text.clone(),
            other => other.to_string(),
        })));
    }
    match item.get("result") {
        Some(result) => {
            decode(result).map(Ok).map_err(|detail| StoreError::UnexpectedReply { command: "reply".into(), detail })
        }
        None => Err(StoreError::UnexpectedReply {
            command: "reply".into(),
            detail: format!("neither result nor error in {item}"),
        }),
    }
}

/// Decodes a base64-mode result: strings are base64 except the literal status `OK`.
fn decode(value: &Value) -> Result<Reply, String> {
    match value {
        Value::Null => Ok(Reply::Nil),
        Value::Number(n) => n.as_i64().map(Reply::Int).ok_or_else(|| format!("non-integer number {n}")),
        Value::String(s) if s == "OK" => Ok(Reply::bulk("OK")),
        Value::String(s) => base64::engine::general_purpose::STANDARD
            .decode(s)
            .map(Reply::Bulk)
            .map_err(|e| format!("result {s:?} is not base64: {e}")),
        Value::Array(items) => items.iter().map(decode).collect::<Result<_, _>>().map(Reply::Array),
        other => Err(format!("unexpected JSON in result: {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::TransportError;
    use std::cell::RefCell;

    /// Answers every request with a canned response and remembers what was sent.
    struct Canned {
        status: u16,
        body: &'static str,
        seen: RefCell<Vec<HttpRequest>>,
    }

    #[async_trait(?Send)]
    impl HttpClient for Canned {
        async fn send(&self, request: HttpRequest) -> Result<HttpResponse, TransportError> {
            self.seen.borrow_mut().push(request);
            Ok(HttpResponse {
                status: self.status,
                headers: vec![(SYNC_TOKEN_HEADER.into(), "tok-1".into())],
                body: self.body.as_bytes().to_vec(),
            })
        }
    }

    fn client(status: u16, body: &'static str) -> UpstashClient<Canned> {
        UpstashClient::new(
            Canned { status, body, seen: RefCell::new(Vec::new()) },
            UpstashConfig {
                url: "http://redis.test/".into(),
                token: Secret::new("s3cret"),
                timeout: Duration::from_secs(1),
            },
        )
    }

    #[test]
    fn pipeline_decodes_base64_and_keeps_per_command_errors() {
        let c = client(200, r#"[{"result":"OK"},{"error":"ERR boom"},{"result":"YmFy"},{"result":[null,3,"eA=="]}]"#);
        let commands = [Command::new("SET"), Command::new("INCR"), Command::new("GET"), Command::new("MGET")];
        let replies = futures_executor::block_on(c.pipeline(&commands)).unwrap();
        assert_eq!(
            replies,
            vec![
                Ok(Reply::bulk("OK")),
                Err(CommandError("ERR boom".into())),
                Ok(Reply::bulk("bar")),
                Ok(Reply::Array(vec![Reply::Nil, Reply::Int(3), Reply::bulk("x")])),
            ]
        );
        let sent = &c.http.seen.borrow()[0];
        assert_eq!(sent.url, "http://redis.test/pipeline");
        assert!(sent.headers.contains(&("Upstash-Encoding".into(), "base64".into())));
        assert!(sent.headers.contains(&("Authorization".into(), "Bearer s3cret".into())));
    }

    #[test]
    fn sync_token_is_chained_to_the_next_request() {
        let c = client(200, r#"{"result":null}"#);
        futures_executor::block_on(c.get("a")).unwrap();
        futures_executor::block_on(c.get("b")).unwrap();
        let seen = c.http.seen.borrow();
        assert!(!seen[0].headers.iter().any(|(n, _)| n == SYNC_TOKEN_HEADER));
        assert!(seen[1].headers.contains(&(SYNC_TOKEN_HEADER.into(), "tok-1".into())));
    }

    #[test]
    fn status_codes_map_to_typed_errors_without_the_token() {
        let unauthorized = futures_executor::block_on(client(401, r#"{"error":"WRONGPASS invalid"}"#).get("k"));
        assert_eq!(unauthorized, Err(StoreError::Rejected { status: 401, message: "WRONGPASS invalid".into() }));
        let command = futures_executor::block_on(client(400, r#"{"error":"ERR syntax"}"#).get("k"));
        assert!(matches!(command, Err(StoreError::Command { .. })));
        let down = futures_executor::block_on(client(502, "bad gateway").get("k")).unwrap_err();
        assert!(matches!(down, StoreError::Unavailable(_)));
        assert!(!format!("{down:?}").contains("s3cret"));
    }
}
