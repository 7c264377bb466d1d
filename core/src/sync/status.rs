//! `P:sync:{task}:status`: a hash describing a task's runs — `last_started`, `last_ok`,
//! `last_error` (with `last_error_code`, MEXC's code when there is one, and `last_error_at`),
//! `duration_ms`, `keys_written`, `runs`, `failures`, `consecutive_failures`. Because the
//! `scheduled` handler cannot fail visibly, this hash (with the error log line) is how a
//! failing task is noticed. Timestamps are ms since the epoch.

use super::SyncError;
use crate::store::Command;

pub fn success(key: &str, started: i64, finished: i64, keys_written: usize) -> Vec<Command> {
    vec![
        Command::hset(
            key,
            &[
                ("last_started", started.to_string()),
                ("last_ok", finished.to_string()),
                ("duration_ms", (finished - started).to_string()),
                ("keys_written", keys_written.to_string()),
                ("consecutive_failures", "0".to_owned()),
            ],
        ),
        Command::new("HINCRBY").arg(key).arg("runs").arg(1),
    ]
}

pub fn failure(key: &str, started: i64, finished: i64, error: &SyncError) -> Vec<Command> {
    let code = error.code().map(|c| c.to_string()).unwrap_or_default();
    vec![
        Command::hset(
            key,
            &[
                ("last_started", started.to_string()),
                ("last_error", error.to_string()),
                ("last_error_code", code),
                ("last_error_at", finished.to_string()),
                ("duration_ms", (finished - started).to_string()),
            ],
        ),
        Command::new("HINCRBY").arg(key).arg("runs").arg(1),
        Command::new("HINCRBY").arg(key).arg("failures").arg(1),
        Command::new("HINCRBY").arg(key).arg("consecutive_failures").arg(1),
    ]
}
