//! `--max-response-bytes` enforced while a reply is read from Redis: a stream adapter that
//! sits between the socket and the Redis driver, follows the RESP framing of each top-level
//! reply without decoding it, and hands the driver only complete replies. A reply that grows
//! past the limit is replaced by a Redis error line (`-ERR … exceeds the limit …`) the moment
//! it does; its remaining bytes are read from the socket and dropped as they arrive. So a
//! 100 MiB value costs the gateway at most one limit's worth of memory, never the value, and
//! the driver sees one reply per command as it expects (the connection stays usable).
//!
//! A pipeline's replies share one budget: the gateway sends `ECHO` of a [`window_marker`]
//! (a per-process nonce and the pipeline's command count) ahead of its commands, and the
//! replies that follow the marker's reply — contiguous, as the driver writes a pipeline in one
//! piece — count together, so the whole pipeline holds at most one limit too. Past it, each
//! further reply of the window is replaced as it arrives.
//!
//! Bulk payloads are skipped by their declared length, so the cost per byte is a copy, not a
//! scan. RESP3 frame types are followed too, although the gateway speaks RESP2.

use std::hash::{BuildHasher, Hasher};
use std::io;
use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// What the error replacing a reply says; [`is_exceeded`] recognises it.
const EXCEEDED: &str = "exceeds the limit of";

fn exceeded_line(limit: usize) -> String {
    format!("-ERR the reply from Redis {EXCEEDED} {limit} bytes (--max-response-bytes); it was not read whole\r\n")
}

/// True for the error a reply past the limit was replaced by.
pub fn is_exceeded(error_text: &str) -> bool {
    error_text.contains(EXCEEDED) && error_text.contains("--max-response-bytes")
}

/// `edgesync-gateway-window:<nonce>:`: the nonce is random per process, so a stored value
/// cannot pose as a marker (and one that did would only end a budget window early).
fn marker_prefix() -> &'static str {
    static PREFIX: OnceLock<String> = OnceLock::new();
    PREFIX.get_or_init(|| {
        let random = || std::collections::hash_map::RandomState::new().build_hasher().finish();
        format!("edgesync-gateway-window:{:016x}{:016x}:", random(), random())
    })
}

/// The `ECHO` argument that opens a budget window over the next `replies` replies.
pub fn window_marker(replies: usize) -> String {
    format!("{}{replies}", marker_prefix())
}

/// The window a marker's reply (`$n\r\n<marker>\r\n`) opens, if `reply` is one.
fn marker_window(reply: &[u8]) -> Option<u64> {
    if reply.len() > 128 || reply.first() != Some(&b'$') {
        return None;
    }
    let body_at = memchr::memchr(b'\n', reply)? + 1;
    let payload = reply.get(body_at..)?.strip_suffix(b"\r\n")?;
    std::str::from_utf8(payload.strip_prefix(marker_prefix().as_bytes())?).ok()?.parse().ok()
}

/// Where the scanner is inside the current reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Position {
    /// Reading a type line (`+OK`, `$5`, `*3`, …) up to its `\n`.
    Line,
    /// Inside a bulk payload: this many bytes (its CRLF included) still to come.
    Payload(u64),
}

/// Follows RESP framing and keeps, in `out`, the bytes of complete replies (or the error that
/// replaced one) ahead of the bytes of the reply still arriving.
#[derive(Debug)]
struct Scanner {
    limit: usize,
    position: Position,
    /// The first bytes of the current type line: enough for a type and a length.
    line: Vec<u8>,
    /// Elements still expected by each open aggregate, innermost last.
    open: Vec<u64>,
    /// Bytes of the current top-level reply so far.
    size: usize,
    /// The current reply passed the limit: its bytes are dropped.
    discarding: bool,
    /// Replies still to come in the open budget window (0: none open).
    window_left: u64,
    /// Bytes the window's replies used so far.
    window_used: usize,
    out: Vec<u8>,
    /// `out[..complete]` are complete replies the reader may take.
    complete: usize,
    /// `out[..taken]` were handed to the reader already.
    taken: usize,
}

const LINE_PREFIX: usize = 32;

impl Scanner {
    fn new(limit: usize) -> Self {
        Self {
            limit,
            position: Position::Line,
            line: Vec::with_capacity(LINE_PREFIX),
            open: Vec::new(),
            size: 0,
            discarding: false,
            window_left: 0,
            window_used: 0,
            out: Vec::new(),
            complete: 0,
            taken: 0,
        }
    }

    fn feed(&mut self, mut input: &[u8]) {
        while !input.is_empty() {
            match self.position {
                Position::Line => {
                    let (length, ended) = match memchr::memchr(b'\n', input) {
                        Some(at) => (at + 1, true),
                        None => (input.len(), false),
                    };
                    let part = &input[..length];
                    let room = LINE_PREFIX.saturating_sub(self.line.len());
                    self.line.extend_from_slice(&part[..room.min(part.len())]);
                    self.keep(part);
                    input = &input[length..];
                    if ended {
                        let line = std::mem::take(&mut self.line);
                        self.line_ended(&line);
                        self.line = line;
                        self.line.clear();
                    }
                }
                Position::Payload(remaining) => {
                    let length = remaining.min(input.len() as u64) as usize;
                    self.keep(&input[..length]);
                    input = &input[length..];
                    let remaining = remaining - length as u64;
                    if remaining == 0 {
                        self.position = Position::Line;
                        self.element_ended();
                    } else {
                        self.position = Position::Payload(remaining);
                    }
                }
            }
        }
    }

    fn line_ended(&mut self, line: &[u8]) {
        let number = || -> Option<i64> {
            let digits = line.get(1..)?;
            let digits = digits.strip_suffix(b"\r\n").or_else(|| digits.strip_suffix(b"\n")).unwrap_or(digits);
            std::str::from_utf8(digits).ok()?.parse().ok()
        };
        match line.first() {
            // Bulk string, blob error, verbatim string.
            Some(b'$' | b'!' | b'=') => match number() {
                Some(length) if length >= 0 => self.position = Position::Payload(length as u64 + 2),
                _ => self.element_ended(),
            },
            // Array, set, push; a map's count is of pairs.
            Some(kind @ (b'*' | b'~' | b'>' | b'%' | b'|')) => match number() {
                Some(count) if count > 0 => {
                    let count = count as u64;
                    self.open.push(if matches!(kind, b'%' | b'|') { count * 2 } else { count });
                }
                _ => self.element_ended(),
            },
            _ => self.element_ended(),
        }
    }

    fn element_ended(&mut self) {
        while let Some(remaining) = self.open.last_mut() {
            *remaining -= 1;
            if *remaining > 0 {
                return;
            }
            self.open.pop();
        }
        self.reply_ended();
    }

    fn reply_ended(&mut self) {
        if self.discarding {
            if self.window_left > 0 {
                // The window's budget is spent: its further replies are replaced too.
                self.window_used = self.limit;
                self.window_left -= 1;
            }
        } else if let Some(replies) = marker_window(&self.out[self.complete..]) {
            self.window_left = replies;
            self.window_used = 0;
        } else if self.window_left > 0 {
            self.window_used += self.size;
            self.window_left -= 1;
        }
        self.complete = self.out.len();
        self.size = 0;
        self.discarding = false;
    }

    /// What the current reply may still use: the limit, less what its window used.
    fn budget(&self) -> usize {
        if self.window_left > 0 {
            self.limit.saturating_sub(self.window_used)
        } else {
            self.limit
        }
    }

    /// Counts `part` against the budget, and keeps it unless the reply already passed it.
    fn keep(&mut self, part: &[u8]) {
        if self.discarding {
            return;
        }
        self.size += part.len();
        if self.size > self.budget() {
            // Drop what was kept of this reply and answer in its place now.
            self.out.truncate(self.complete);
            if self.out.capacity() > 2 * self.limit.min(1 << 20) {
                self.out.shrink_to(self.out.len().max(4096));
            }
            self.out.extend_from_slice(exceeded_line(self.limit).as_bytes());
            self.complete = self.out.len();
            self.discarding = true;
            return;
        }
        self.out.extend_from_slice(part);
    }

    /// Complete bytes not yet handed out.
    fn available(&self) -> &[u8] {
        &self.out[self.taken..self.complete]
    }

    fn take(&mut self, count: usize) {
        self.taken += count;
        if self.taken == self.complete {
            // Keep only the reply in progress.
            self.out.drain(..self.taken);
            self.complete = 0;
            self.taken = 0;
        }
    }
}

/// A connection to Redis whose replies are each at most `limit` bytes (see the module).
pub struct ReplyLimit<S> {
    inner: S,
    scanner: Scanner,
    chunk: Box<[u8]>,
}

impl<S> ReplyLimit<S> {
    pub fn new(inner: S, limit: usize) -> Self {
        Self { inner, scanner: Scanner::new(limit), chunk: vec![0; 64 * 1024].into_boxed_slice() }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for ReplyLimit<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        loop {
            let available = this.scanner.available();
            if !available.is_empty() {
                let count = available.len().min(buf.remaining());
                buf.put_slice(&available[..count]);
                this.scanner.take(count);
                return Poll::Ready(Ok(()));
            }
            let mut chunk = ReadBuf::new(&mut this.chunk);
            ready!(Pin::new(&mut this.inner).poll_read(cx, &mut chunk))?;
            if chunk.filled().is_empty() {
                return Poll::Ready(Ok(())); // end of stream
            }
            this.scanner.feed(chunk.filled());
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for ReplyLimit<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `input` in pieces of `step` bytes and returns what the reader would get.
    fn scan(limit: usize, input: &[u8], step: usize) -> (Vec<u8>, usize) {
        let mut scanner = Scanner::new(limit);
        let mut seen = Vec::new();
        let mut peak = 0;
        for piece in input.chunks(step) {
            scanner.feed(piece);
            peak = peak.max(scanner.out.len());
            let available = scanner.available().to_vec();
            scanner.take(available.len());
            seen.extend_from_slice(&available);
        }
        (seen, peak)
    }

    #[test]
    fn replies_under_the_limit_pass_unchanged_whatever_the_pieces() {
        let input = b"+OK\r\n$5\r\nhello\r\n*3\r\n:1\r\n$-1\r\n*2\r\n$1\r\na\r\n-ERR x\r\n*0\r\n%1\r\n+k\r\n+v\r\n";
        for step in [1, 2, 3, 7, 64] {
            assert_eq!(scan(64, input, step).0, input.to_vec(), "step {step}");
        }
    }

    #[test]
    fn a_reply_past_the_limit_is_replaced_and_never_held_whole() {
        let big = format!("${}\r\n{}\r\n", 10_000, "x".repeat(10_000));
        let input = [b"+OK\r\n".as_slice(), big.as_bytes(), b"*2\r\n$3\r\nfoo\r\n:7\r\n"].concat();
        let (seen, peak) = scan(1_000, &input, 97);
        let error = b"-ERR the reply from Redis exceeds the limit of 1000 bytes (--max-response-bytes); it was not read whole\r\n";
        assert_eq!(seen, [b"+OK\r\n".as_slice(), error, b"*2\r\n$3\r\nfoo\r\n:7\r\n"].concat());
        assert!(peak <= 1_000 + error.len(), "held {peak} bytes");
        // Inside an aggregate the whole top-level reply is what counts.
        let nested = format!("*2\r\n:1\r\n{big}+after\r\n");
        let (seen, _) = scan(1_000, nested.as_bytes(), 1000);
        assert_eq!(seen, [error.as_slice(), b"+after\r\n"].concat());
    }

    #[test]
    fn a_pipeline_window_shares_one_budget() {
        let marker = window_marker(3);
        let echo = format!("${}\r\n{marker}\r\n", marker.len());
        let value = format!("$400\r\n{}\r\n", "v".repeat(400));
        let input = [echo.as_str(), &value, &value, &value, &value].concat();
        let (seen, peak) = scan(1_000, input.as_bytes(), 61);
        let error = exceeded_line(1_000);
        // Two values fit the window's 1000 bytes, the third does not; the fourth is outside.
        assert_eq!(String::from_utf8(seen).unwrap(), [echo.as_str(), &value, &value, &error, &value].concat());
        assert!(peak <= 1_000 + echo.len() + error.len(), "held {peak} bytes");
        assert!(is_exceeded(&error));
        assert_eq!(marker_window(b"$5\r\nhello\r\n"), None);
        let forged = "$40\r\nedgesync-gateway-window:0000000000000000:9\r\n";
        assert_eq!(marker_window(forged.as_bytes()), None, "the nonce is not guessable");
    }
}
