//! What a node's error says to do with a command: follow a redirection (`MOVED`, `ASK`),
//! resend one that never reached the node, or answer it — with the gateway's own error
//! replies made the way the driver reports Redis's.

use redis::{RedisError, RedisResult, Value};

/// A Redis error reply (`CODE detail`) as the driver reports one.
pub fn server_error(line: &str) -> RedisError {
    let line = line.replace(['\r', '\n'], " ");
    match redis::parse_redis_value(format!("-{line}\r\n").as_bytes()).and_then(Value::extract_error) {
        Err(error) => error,
        Ok(_) => RedisError::from((redis::ErrorKind::Client, "not an error line")),
    }
}

/// Where a `MOVED` or `ASK` reply sends a command: its `host:port`, and the slot.
pub(super) fn redirection(error: &RedisError) -> Option<(String, u16)> {
    // The driver's `redirect_node` answers (`host:port`, slot).
    error.redirect_node().map(|(address, slot)| (address.to_owned(), slot))
}

/// `reply`, unless it is a redirection the gateway stopped following: then `TRYAGAIN`.
pub(super) fn without_redirection(reply: RedisResult<Value>) -> RedisResult<Value> {
    match reply {
        Err(error) if matches!(error.code(), Some("MOVED" | "ASK")) => Err(server_error(&format!(
            "TRYAGAIN the cluster kept redirecting this command ({}); retry",
            error.detail().unwrap_or_default()
        ))),
        other => other,
    }
}

/// Marks an error that happened before anything was sent (no connection): safe to resend.
pub(super) fn not_sent(error: RedisError) -> RedisError {
    RedisError::from((redis::ErrorKind::Io, NOT_SENT, error.to_string()))
}

const NOT_SENT: &str = "no connection to the node";

pub(super) fn is_not_sent(error: &RedisError) -> bool {
    error.to_string().contains(NOT_SENT)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::PlanError;

    #[test]
    fn redirections_name_the_node_and_the_slot() {
        assert_eq!(redirection(&server_error("MOVED 3999 127.0.0.1:6381")), Some(("127.0.0.1:6381".into(), 3999)));
        assert_eq!(redirection(&server_error("ASK 12 [::1]:7000")), Some(("[::1]:7000".into(), 12)));
        assert_eq!(redirection(&server_error("ERR nope")), None);
        let crossslot = server_error(&PlanError::CrossSlot.to_string());
        assert_eq!(crossslot.code(), Some("CROSSSLOT"), "the driver reads it as Redis's own");
    }
}
