//! The Upstash REST protocol client: the Redis tier, over any [`HttpClient`].
//!
//! Protocol (see `docs/upstash-rest.md`): `POST /` with a JSON array runs one command,
//! `POST /pipeline` with an array of arrays runs many in order, `POST /multi-exec` runs many
//! atomically. Auth is `Authorization: Bearer <token>`. The client always asks for
//! `Upstash-Encoding: base64`, so values that are not valid UTF-8 survive the answer's JSON
//! trip, and it chains the `upstash-sync-token` header for read-your-writes on replicated
//! databases.
//!
//! Requests are JSON, which cannot carry bytes that are not UTF-8, and the protocol has no
//! encoding for request arguments. A command with such an argument (a binary `SET` value)
//! goes in the protocol's path form instead — `POST /SET/{key}?EX=30` with the value as the
//! raw body, which Upstash appends as the argument after the path's — alone, in its place
//! in a pipeline's order. A transaction cannot be split, so one carrying such an argument
//! is refused before anything is sent.
//!
//! The client owns the wire format and status mapping. It never logs, and the token never
//! appears in an error.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;
use serde_json::Value;

use super::{Command, CommandError, Replies, Reply, Store, StoreError};
use crate::clock::{splitmix64, Backoff, Sleep};
use crate::http::{HttpClient, HttpRequest, HttpResponse, Method};
use crate::secret::Secret;

const SYNC_TOKEN_HEADER: &str = "upstash-sync-token";

/// Largest request body sent at once: under Upstash's 10 MB request limit with room to spare.
pub const DEFAULT_MAX_REQUEST_BYTES: usize = 9 * 1024 * 1024;

/// Where the Redis REST endpoint is and how to talk to it.
#[derive(Debug, Clone)]
pub struct UpstashConfig {
    /// The REST URL, e.g. `https://eu1-xxx.upstash.io` (a trailing `/` is ignored).
    pub url: String,
    pub token: Secret,
    /// Bound on one HTTP request, connect to last byte.
    pub timeout: Duration,
}

/// Retries of read-only requests that failed to reach Redis. Writes are never retried: a
/// write whose response was lost may have been applied, and repeating `INCR` or `ZADD` would
/// not be harmless.
pub struct ReadRetries {
    pub sleep: Box<dyn Sleep>,
    /// Attempts after the first.
    pub retries: u32,
    pub backoff: Backoff,
}

pub struct UpstashClient<H> {
    http: H,
    url: String,
    token: Secret,
    timeout: Duration,
    max_request_bytes: usize,
    read_retries: Option<ReadRetries>,
    /// Varies the retry jitter between calls.
    calls: AtomicU64,
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
            max_request_bytes: DEFAULT_MAX_REQUEST_BYTES,
            read_retries: None,
            calls: AtomicU64::new(0),
            sync_token: Mutex::new(None),
        }
    }

    /// Retries read-only requests that could not reach Redis, with jittered backoff.
    pub fn with_read_retries(mut self, retries: ReadRetries) -> Self {
        self.read_retries = Some(retries);
        self
    }

    /// Splits pipelines whose JSON body would exceed `bytes` (never below one command each).
    pub fn with_max_request_bytes(mut self, bytes: usize) -> Self {
        self.max_request_bytes = bytes.max(1);
        self
    }

    /// Posts, retrying when every command is read-only and Redis could not be reached.
    /// `body` is JSON text, encoded once by the caller.
    async fn post_with_retries(&self, path: &str, body: Vec<u8>, read_only: bool) -> Result<HttpResponse, StoreError> {
        let call = self.calls.fetch_add(1, Ordering::Relaxed);
        let retries = self.read_retries.as_ref().filter(|_| read_only).map_or(0, |r| r.retries);
        let mut body = Some(body);
        let mut attempt = 0;
        loop {
            // Only a request that may be retried keeps a copy of its body.
            let sent = if attempt < retries { body.clone() } else { body.take() }.unwrap_or_default();
            let outcome = self.post(path, sent).await.and_then(|response| match response.status {
                500..=599 => Err(StoreError::Unavailable(format!("HTTP {}", response.status))),
                _ => Ok(response),
            });
            match (&outcome, &self.read_retries) {
                (Err(StoreError::Unavailable(_)), Some(retry)) if read_only && attempt < retry.retries => {
                    let seed = splitmix64(call).wrapping_add(self.url.len() as u64);
                    retry.sleep.sleep(retry.backoff.delay(attempt, seed)).await;
                    attempt += 1;
                }
                _ => return outcome,
            }
        }
    }

    async fn post(&self, path: &str, body: Vec<u8>) -> Result<HttpResponse, StoreError> {
        self.send(path, "application/json", body).await
    }

    /// One authenticated request in base64 mode, chaining the sync token both ways.
    async fn send(&self, path: &str, content_type: &str, body: Vec<u8>) -> Result<HttpResponse, StoreError> {
        let mut request = HttpRequest::new(Method::Post, format!("{}{path}", self.url), self.timeout)
            .header("Authorization", format!("Bearer {}", self.token.expose()))
            .header("Content-Type", content_type)
            .header("Upstash-Encoding", "base64")
            .body(body);
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

    /// Sends a pipeline, split into several requests when one would be too large; replies
    /// come back in command order. A transaction cannot be split, so an oversized one is
    /// refused before anything is sent.
    async fn batch(&self, path: &str, commands: &[Command]) -> Result<Replies, StoreError> {
        let mut replies = Vec::with_capacity(commands.len());
        // The request body, `[` then each command's JSON array, comma-separated: every
        // command is encoded once, straight into the bytes that are sent.
        let mut chunk: Vec<u8> = Vec::with_capacity(4096);
        let mut encoded = Vec::new();
        let mut start = 0;
        for (index, command) in commands.iter().enumerate() {
            encoded.clear();
            if !write_command_json(command, &mut encoded) {
                return Err(StoreError::Rejected {
                    status: 400,
                    message: format!("`{}` has an argument that is not UTF-8", command.name()),
                });
            }
            if index > start && chunk.len() + encoded.len() + 3 > self.max_request_bytes {
                if path == "/multi-exec" {
                    return Err(StoreError::Rejected {
                        status: 413,
                        message: format!("transaction exceeds the {} byte request limit", self.max_request_bytes),
                    });
                }
                chunk.push(b']');
                replies.extend(self.batch_request(path, &commands[start..index], std::mem::take(&mut chunk)).await?);
                start = index;
            }
            chunk.push(if index == start { b'[' } else { b',' });
            chunk.extend_from_slice(&encoded);
        }
        if start < commands.len() {
            chunk.push(b']');
            replies.extend(self.batch_request(path, &commands[start..], chunk).await?);
        }
        Ok(replies)
    }

    /// Sends one pipeline or transaction body (a JSON array of command arrays).
    async fn batch_request(&self, path: &str, commands: &[Command], body: Vec<u8>) -> Result<Replies, StoreError> {
        let read_only = commands.iter().all(Command::is_read_only);
        let response = self.post_with_retries(path, body, read_only).await?;
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

impl<H: HttpClient> UpstashClient<H> {
    /// One command in the path form, its binary argument as the body (see the module doc).
    async fn send_in_path_form(&self, command: &Command) -> Result<Result<Reply, CommandError>, StoreError> {
        let (path, body) = path_form(command)?;
        let response = self.send(&path, "application/octet-stream", body).await?;
        if (500..=599).contains(&response.status) {
            return Err(StoreError::Unavailable(format!("HTTP {}", response.status)));
        }
        item_reply(&parse_body(&response)?)
    }
}

#[async_trait(?Send)]
impl<H: HttpClient> Store for UpstashClient<H> {
    async fn pipeline(&self, commands: &[Command]) -> Result<Replies, StoreError> {
        let mut replies = Vec::with_capacity(commands.len());
        let mut start = 0;
        // Runs of JSON-safe commands go as pipelines; a command that is not goes alone.
        while start < commands.len() {
            let end = commands[start..].iter().position(|c| !is_json_safe(c)).map_or(commands.len(), |i| start + i);
            if end > start {
                replies.extend(self.batch("/pipeline", &commands[start..end]).await?);
            }
            if end < commands.len() {
                replies.push(self.send_in_path_form(&commands[end]).await?);
            }
            start = end + 1;
        }
        Ok(replies)
    }

    async fn transaction(&self, commands: &[Command]) -> Result<Replies, StoreError> {
        if let Some(command) = commands.iter().find(|c| !is_json_safe(c)) {
            return Err(StoreError::Rejected {
                status: 400,
                message: format!(
                    "`{}` has an argument that is not UTF-8, which a REST transaction cannot carry",
                    command.name()
                ),
            });
        }
        self.batch("/multi-exec", commands).await
    }

    async fn execute(&self, command: &Command) -> Result<Reply, StoreError> {
        let mut json = Vec::new();
        let reply = match write_command_json(command, &mut json) {
            true => item_reply(&parse_body(&self.post_with_retries("", json, command.is_read_only()).await?)?)?,
            false => self.send_in_path_form(command).await?,
        };
        reply.map_err(|error| StoreError::Command { command: command.name().to_owned(), error })
    }
}

/// True when every part is UTF-8, so the command can travel as a JSON array.
fn is_json_safe(command: &Command) -> bool {
    command.parts().iter().all(|part| std::str::from_utf8(part).is_ok())
}

/// Appends the command as a JSON array of strings to `out`; false (and `out` unusable) when
/// an argument is not UTF-8.
fn write_command_json(command: &Command, out: &mut Vec<u8>) -> bool {
    out.push(b'[');
    for (index, part) in command.parts().iter().enumerate() {
        let Ok(text) = std::str::from_utf8(part) else { return false };
        if index > 0 {
            out.push(b',');
        }
        serde_json::to_writer(&mut *out, text).expect("writing a string to a Vec cannot fail");
    }
    out.push(b']');
    true
}

/// Path segments are percent-encoded except for what is plainly safe.
const SEGMENT: &percent_encoding::AsciiSet =
    &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~').remove(b':');

/// `/{NAME}/{arg}…` up to the one argument that is not UTF-8 (the body), the rest as query
/// pairs — the only places the path form puts arguments.
fn path_form(command: &Command) -> Result<(String, Vec<u8>), StoreError> {
    let refuse = |why: &str| StoreError::Rejected {
        status: 400,
        message: format!("`{}` cannot be sent over Upstash REST: {why}", command.name()),
    };
    let args = command.args();
    let binary = args
        .iter()
        .position(|a| std::str::from_utf8(a).is_err())
        .ok_or_else(|| refuse("nothing to send as the body"))?;
    fn utf8(arg: &[u8]) -> Option<&str> {
        std::str::from_utf8(arg).ok()
    }
    let text = |arg| utf8(arg).ok_or_else(|| refuse("more than one argument is not UTF-8"));
    let mut path = format!("/{}", command.name());
    for arg in &args[..binary] {
        path.push('/');
        path.extend(percent_encoding::utf8_percent_encode(text(arg.as_slice())?, SEGMENT));
    }
    let rest = &args[binary + 1..];
    if !rest.len().is_multiple_of(2) {
        return Err(refuse("the arguments after the binary one are not pairs"));
    }
    let mut query = form_urlencoded::Serializer::new(String::new());
    for pair in rest.chunks(2) {
        query.append_pair(text(pair[0].as_slice())?, text(pair[1].as_slice())?);
    }
    let query = query.finish();
    if !query.is_empty() {
        path.push('?');
        path.push_str(&query);
    }
    Ok((path, args[binary].clone()))
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

    /// Answers every request with a canned response and remembers what was sent; the first
    /// `failures` requests get a 503.
    struct Canned {
        status: u16,
        body: &'static str,
        seen: RefCell<Vec<HttpRequest>>,
        failures: std::cell::Cell<u32>,
    }

    #[async_trait(?Send)]
    impl HttpClient for Canned {
        async fn send(&self, request: HttpRequest) -> Result<HttpResponse, TransportError> {
            self.seen.borrow_mut().push(request);
            let status = if self.failures.get() > 0 {
                self.failures.set(self.failures.get() - 1);
                503
            } else {
                self.status
            };
            Ok(HttpResponse {
                status,
                headers: vec![(SYNC_TOKEN_HEADER.into(), "tok-1".into())],
                body: self.body.as_bytes().to_vec(),
            })
        }
    }

    struct NoWait;

    #[async_trait(?Send)]
    impl Sleep for NoWait {
        async fn sleep(&self, _: Duration) {}
    }

    fn retrying(failures: u32, body: &'static str) -> UpstashClient<Canned> {
        let c = client(200, body);
        c.http.failures.set(failures);
        c.with_read_retries(ReadRetries {
            sleep: Box::new(NoWait),
            retries: 2,
            backoff: Backoff { base: Duration::from_millis(1), cap: Duration::from_millis(2) },
        })
    }

    #[test]
    fn reads_are_retried_writes_are_not() {
        let reads = retrying(2, r#"{"result":null}"#);
        assert_eq!(futures_executor::block_on(reads.get("k")).unwrap(), None);
        assert_eq!(reads.http.seen.borrow().len(), 3);

        let exhausted = retrying(3, r#"{"result":null}"#);
        assert!(matches!(futures_executor::block_on(exhausted.get("k")), Err(StoreError::Unavailable(_))));

        let writes = retrying(1, r#"{"result":"OK"}"#);
        assert!(futures_executor::block_on(writes.set("k", b"v", None)).is_err());
        assert_eq!(writes.http.seen.borrow().len(), 1, "a write is sent once");
    }

    #[test]
    fn oversized_pipelines_are_split_never_truncated() {
        let c = client(200, r#"[{"result":"OK"},{"result":"OK"}]"#).with_max_request_bytes(50);
        let commands: Vec<Command> = (0..4).map(|i| Command::new("SET").arg(format!("key{i}")).arg("value")).collect();
        let replies = futures_executor::block_on(c.pipeline(&commands)).unwrap();
        assert_eq!(replies.len(), 4);
        let seen = c.http.seen.borrow();
        assert_eq!(seen.len(), 2);
        for request in seen.iter() {
            assert!(request.body.as_ref().unwrap().len() <= 50);
        }
        drop(seen);
        let refused = futures_executor::block_on(c.transaction(&commands)).unwrap_err();
        assert!(matches!(refused, StoreError::Rejected { status: 413, .. }));
    }

    fn client(status: u16, body: &'static str) -> UpstashClient<Canned> {
        UpstashClient::new(
            Canned { status, body, seen: RefCell::new(Vec::new()), failures: std::cell::Cell::new(0) },
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
