//! [`TaskStatus`]: the hash `P:sync:{task}:status` describing a task's runs. Because the
//! `scheduled` handler cannot fail visibly, this hash is how a failing task is noticed. The
//! writers set the fields of one run ([`RunFields`]) and count runs with `HINCRBY`;
//! timestamps are ms since the epoch.

use std::collections::BTreeMap;

/// What one run sets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunFields {
    Succeeded { started: i64, finished: i64, keys_written: usize },
    Failed { started: i64, finished: i64, error: String, code: Option<i64> },
}

impl RunFields {
    pub fn fields(&self) -> Vec<(&'static str, String)> {
        match self {
            RunFields::Succeeded { started, finished, keys_written } => vec![
                ("last_started", started.to_string()),
                ("last_ok", finished.to_string()),
                ("duration_ms", (finished - started).to_string()),
                ("keys_written", keys_written.to_string()),
                ("consecutive_failures", "0".to_owned()),
                ("redis", "ok".to_owned()),
            ],
            RunFields::Failed { started, finished, error, code } => vec![
                ("last_started", started.to_string()),
                ("last_error", error.clone()),
                ("last_error_code", code.map(|c| c.to_string()).unwrap_or_default()),
                ("last_error_at", finished.to_string()),
                ("duration_ms", (finished - started).to_string()),
                ("redis", "ok".to_owned()),
            ],
        }
    }

    /// Set after a run whose writes Redis did not acknowledge (the durable copy holds them).
    pub fn deferred(at: i64) -> Vec<(&'static str, String)> {
        vec![("redis", REDIS_DEFERRED.to_owned()), ("last_deferred_at", at.to_string())]
    }

    /// Set after pending writes were replayed to Redis.
    pub fn replayed(at: i64, keys: u64) -> Vec<(&'static str, String)> {
        vec![("last_replay_at", at.to_string()), ("replayed_keys", keys.to_string())]
    }
}

/// The `redis` field's value while a task's last writes wait in the durable copy.
pub const REDIS_DEFERRED: &str = "redis_deferred";

/// The hash as a reader needs it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TaskStatus {
    pub last_started: Option<i64>,
    pub last_ok: Option<i64>,
    pub last_error: Option<String>,
    pub last_error_code: Option<i64>,
    pub last_error_at: Option<i64>,
    /// How long the last run took.
    pub duration_ms: Option<i64>,
    pub runs: u64,
    pub failures: u64,
    pub consecutive_failures: u64,
    /// The last run's writes wait in the durable copy for Redis.
    pub redis_deferred: bool,
    pub last_deferred_at: Option<i64>,
    pub last_replay_at: Option<i64>,
}

/// The status hash's fields that hold integers (times in ms, counters, codes): answered as
/// JSON numbers, not as the strings a Redis hash keeps.
pub const NUMBER_FIELDS: [&str; 12] = [
    "last_started",
    "last_ok",
    "last_error_code",
    "last_error_at",
    "duration_ms",
    "runs",
    "failures",
    "consecutive_failures",
    "last_deferred_at",
    "last_replay_at",
    "keys_written",
    "replayed_keys",
];

/// A status hash field as JSON: an integer field that parses as one is a number; anything
/// else (and an integer field that does not parse, shown as stored) is a string.
pub fn field_json(name: &str, value: String) -> serde_json::Value {
    match value.parse::<i64>() {
        Ok(number) if NUMBER_FIELDS.contains(&name) => serde_json::Value::from(number),
        _ => serde_json::Value::String(value),
    }
}

impl TaskStatus {
    /// Reads the hash; a field that is present but not a number is an error naming it.
    pub fn from_fields(fields: &BTreeMap<String, String>) -> Result<Self, String> {
        fn number<T: std::str::FromStr>(fields: &BTreeMap<String, String>, name: &str) -> Result<Option<T>, String> {
            match fields.get(name).map(String::as_str) {
                None | Some("") => Ok(None),
                Some(text) => text.parse().map(Some).map_err(|_| format!("field `{name}` is `{text}`, not a number")),
            }
        }
        Ok(Self {
            last_started: number(fields, "last_started")?,
            last_ok: number(fields, "last_ok")?,
            last_error: fields.get("last_error").cloned(),
            last_error_code: number(fields, "last_error_code")?,
            last_error_at: number(fields, "last_error_at")?,
            duration_ms: number(fields, "duration_ms")?,
            runs: number(fields, "runs")?.unwrap_or(0),
            failures: number(fields, "failures")?.unwrap_or(0),
            consecutive_failures: number(fields, "consecutive_failures")?.unwrap_or(0),
            redis_deferred: fields.get("redis").is_some_and(|state| state == REDIS_DEFERRED),
            last_deferred_at: number(fields, "last_deferred_at")?,
            last_replay_at: number(fields, "last_replay_at")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_and_times_are_numbers_and_the_rest_text() {
        assert_eq!(field_json("runs", "39".into()), serde_json::json!(39));
        assert_eq!(field_json("last_ok", "1700000000000".into()), serde_json::json!(1_700_000_000_000_i64));
        assert_eq!(field_json("runs", "text".into()), serde_json::json!("text"), "shown as stored");
        assert_eq!(field_json("last_error", "42".into()), serde_json::json!("42"), "a message stays text");
    }

    #[test]
    fn runs_write_these_fields_and_read_back() {
        let failed = RunFields::Failed { started: 10, finished: 25, error: "MEXC said no".into(), code: Some(700002) };
        let mut fields: BTreeMap<String, String> =
            failed.fields().into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
        assert_eq!(fields["last_error_code"], "700002");
        assert_eq!(fields["duration_ms"], "15");
        fields.insert("runs".into(), "3".into());
        fields.insert("consecutive_failures".into(), "2".into());
        let status = TaskStatus::from_fields(&fields).unwrap();
        assert_eq!((status.last_error_code, status.runs, status.consecutive_failures), (Some(700002), 3, 2));
        assert_eq!(status.last_ok, None);
        let ok = RunFields::Succeeded { started: 1, finished: 2, keys_written: 9 };
        let fields: BTreeMap<String, String> = ok.fields().into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
        assert_eq!(TaskStatus::from_fields(&fields).unwrap().last_ok, Some(2));
        let bad = BTreeMap::from([("runs".to_owned(), "many".to_owned())]);
        assert!(TaskStatus::from_fields(&bad).unwrap_err().contains("runs"));
    }
}
