//! Pub/sub over server-sent events, as Upstash serves it: `/subscribe/{channel}` and
//! `/psubscribe/{pattern}` (any method; more channels as more path segments) answer
//! `text/event-stream` with one `data:` line per event — `subscribe,{channel},{count}` first,
//! then `message,{channel},{payload}` (`pmessage,{pattern},{channel},{payload}` for patterns)
//! — which is what `@upstash/redis`'s `Subscriber` reads. `PUBLISH` is an ordinary command.
//!
//! Each subscriber has a Redis connection of its own (as its token's ACL user), opened for it
//! and closed with it: a subscribed connection can do nothing else, so it never shares state
//! with the connections requests run on. Subscribers are bounded ([`SubscribeLimits`]): at most
//! so many per token at once (429 beyond), a stream ends after so long without a message and
//! after so long in all (clients subscribe again), and each message is read through the reply
//! limit. A comment line every [`KEEPALIVE`] keeps proxies from closing a quiet stream.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use futures_util::{Stream, StreamExt};
use redis::aio::PubSub;
use redis::{Msg, RedisError};
use tokio::time::Instant;

use crate::redis_link::Target;
use crate::tokens::Access;

/// A comment line sent when nothing else was for this long.
pub const KEEPALIVE: Duration = Duration::from_secs(15);

/// How many subscribers, and for how long.
#[derive(Debug, Clone, Copy)]
pub struct SubscribeLimits {
    /// Streams open at once per token.
    pub per_token: usize,
    /// A stream ends after this long without a message.
    pub idle: Duration,
    /// A stream ends after this long in all.
    pub total: Duration,
}

impl Default for SubscribeLimits {
    fn default() -> Self {
        Self { per_token: 100, idle: Duration::from_secs(600), total: Duration::from_secs(3600) }
    }
}

/// Channels or patterns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Channels,
    Patterns,
}

/// Why a subscription was not opened.
#[derive(Debug, thiserror::Error)]
pub enum SubscribeError {
    #[error("ERR {0} subscribers are open for this token (--max-subscribers); close one first")]
    TooMany(usize),
    #[error("ERR name at least one channel: /subscribe/{{channel}} or /psubscribe/{{pattern}}")]
    NoChannel,
    #[error("ERR redis unavailable: {0}")]
    Redis(#[from] RedisError),
}

/// The open streams per token.
pub struct Subscriptions {
    limits: SubscribeLimits,
    open: Arc<Mutex<HashMap<Access, usize>>>,
}

/// One open stream's place in the count, given back when the stream ends.
struct Slot {
    open: Arc<Mutex<HashMap<Access, usize>>>,
    access: Access,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.open.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(n) = open.get_mut(&self.access) {
            *n = n.saturating_sub(1);
        }
    }
}

impl Subscriptions {
    pub fn new(limits: SubscribeLimits) -> Self {
        Self { limits, open: Arc::default() }
    }

    /// Streams open now, over every token.
    pub fn open(&self) -> usize {
        self.open.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).values().sum()
    }

    fn take_slot(&self, access: Access) -> Result<Slot, SubscribeError> {
        let mut open = self.open.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let n = open.entry(access).or_default();
        if *n >= self.limits.per_token {
            return Err(SubscribeError::TooMany(self.limits.per_token));
        }
        *n += 1;
        Ok(Slot { open: Arc::clone(&self.open), access })
    }

    /// Subscribes a connection of its own to `names` and answers the event stream.
    pub async fn subscribe(
        &self,
        target: &Target,
        access: Access,
        kind: Kind,
        names: Vec<String>,
        message_limit: usize,
    ) -> Result<impl Stream<Item = Result<Bytes, std::io::Error>>, SubscribeError> {
        if names.is_empty() {
            return Err(SubscribeError::NoChannel);
        }
        let slot = self.take_slot(access)?;
        let mut pubsub: PubSub = target.pubsub(message_limit).await?;
        let mut first = String::new();
        for (count, name) in names.iter().enumerate() {
            match kind {
                Kind::Channels => pubsub.subscribe(name).await?,
                Kind::Patterns => pubsub.psubscribe(name).await?,
            }
            let event = if kind == Kind::Channels { "subscribe" } else { "psubscribe" };
            first.push_str(&event_line(&[event, name, &(count + 1).to_string()]));
        }
        let messages = pubsub.into_on_message();
        let now = Instant::now();
        let state = Streaming {
            first: Some(Bytes::from(first)),
            messages: Box::pin(messages),
            _slot: slot,
            ends_at: now + self.limits.total,
            idle: self.limits.idle,
            last_message: now,
        };
        Ok(futures_util::stream::unfold(state, Streaming::next))
    }
}

struct Streaming {
    first: Option<Bytes>,
    messages: std::pin::Pin<Box<dyn Stream<Item = Msg> + Send>>,
    _slot: Slot,
    ends_at: Instant,
    idle: Duration,
    last_message: Instant,
}

impl Streaming {
    async fn next(mut self) -> Option<(Result<Bytes, std::io::Error>, Self)> {
        if let Some(first) = self.first.take() {
            return Some((Ok(first), self));
        }
        let now = Instant::now();
        let idle_end = self.last_message + self.idle;
        let wake = (now + KEEPALIVE).min(idle_end).min(self.ends_at);
        match tokio::time::timeout_at(wake, self.messages.next()).await {
            Ok(Some(message)) => {
                self.last_message = Instant::now();
                Some((Ok(Bytes::from(message_line(&message))), self))
            }
            // The connection closed (Redis went away): the stream ends; clients subscribe again.
            Ok(None) => None,
            Err(_) if Instant::now() >= self.ends_at || Instant::now() >= idle_end => None,
            Err(_) => Some((Ok(Bytes::from_static(b": keepalive\n\n")), self)),
        }
    }
}

/// One event: `data: a,b,c` — a field with a line break continues on another `data:` line.
fn event_line(fields: &[&str]) -> String {
    format!("data: {}\n\n", fields.join(",").replace('\r', "").replace('\n', "\ndata: "))
}

fn message_line(message: &Msg) -> String {
    let payload = String::from_utf8_lossy(message.get_payload_bytes());
    let channel = message.get_channel_name();
    match message.get_pattern::<String>() {
        Ok(pattern) => event_line(&["pmessage", &pattern, channel, &payload]),
        Err(_) => event_line(&["message", channel, &payload]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_data_lines_as_the_sdk_reads_them() {
        assert_eq!(event_line(&["subscribe", "news", "1"]), "data: subscribe,news,1\n\n");
        assert_eq!(event_line(&["message", "news", "a,b"]), "data: message,news,a,b\n\n");
        assert_eq!(event_line(&["message", "news", "two\nlines"]), "data: message,news,two\ndata: lines\n\n");
    }

    #[test]
    fn subscribers_per_token_are_bounded_and_slots_come_back() {
        let subscriptions = Subscriptions::new(SubscribeLimits { per_token: 2, ..Default::default() });
        let a = subscriptions.take_slot(Access::Full).unwrap();
        let _b = subscriptions.take_slot(Access::Full).unwrap();
        assert!(matches!(subscriptions.take_slot(Access::Full), Err(SubscribeError::TooMany(2))));
        let _other = subscriptions.take_slot(Access::Admin).expect("another token has its own bound");
        drop(a);
        let _c = subscriptions.take_slot(Access::Full).expect("an ended stream gives its place back");
        assert_eq!(subscriptions.open(), 3);
    }
}
