//! `P:sync:{task}:status`: a hash describing a task's runs — `last_started`, `last_ok`,
//! `last_error` (with `last_error_code`, MEXC's code when there is one, and `last_error_at`),
//! `duration_ms`, `keys_written`, `runs`, `failures`, `consecutive_failures`. Because the
//! `scheduled` handler cannot fail visibly, this hash (with the error log line) is how a
//! failing task is noticed. Timestamps are ms since the epoch.

use serde_json::json;

use super::SyncError;
use crate::records::status::RunFields;
use crate::store::{Command, CommandError, Replies, Reply};
use crate::App;

pub fn success(key: &str, started: i64, finished: i64, keys_written: usize) -> Vec<Command> {
    vec![
        Command::hset(key, &RunFields::Succeeded { started, finished, keys_written }.fields()),
        Command::new("HINCRBY").arg(key).arg("runs").arg(1),
    ]
}

pub fn failure(key: &str, started: i64, finished: i64, error: &SyncError) -> Vec<Command> {
    let run = RunFields::Failed { started, finished, error: error.to_string(), code: error.code() };
    vec![
        Command::hset(key, &run.fields()),
        Command::new("HINCRBY").arg(key).arg("runs").arg(1),
        Command::new("HINCRBY").arg(key).arg("failures").arg(1),
        Command::new("HINCRBY").arg(key).arg("consecutive_failures").arg(1),
    ]
}

/// The fields a success overwrites that a failure would have kept, read in the same
/// pipeline just before the success is written, so [`correction`] can put them back.
const KEPT_BY_A_FAILURE: [&str; 3] = ["last_ok", "keys_written", "consecutive_failures"];

/// Reads what [`success`] is about to overwrite (one `HMGET`, in the same pipeline, before it).
pub fn before_success(key: &str) -> Command {
    let mut read = Command::new("HMGET").arg(key);
    for field in KEPT_BY_A_FAILURE {
        read = read.arg(field);
    }
    read
}

/// The writes that turn a success already stored into the failure the run was: on a Redis
/// Cluster a pipeline is split by node, so a task's data can fail on one master while its
/// status, on another, was written as a success. `before` is [`before_success`]'s answer;
/// `runs` was counted by the success already.
pub fn correction(key: &str, started: i64, finished: i64, error: &SyncError, before: &Reply) -> Vec<Command> {
    let run = RunFields::Failed { started, finished, error: error.to_string(), code: error.code() };
    let previous: Vec<Option<String>> = match before {
        Reply::Array(values) => values.iter().map(|value| value.clone().into_string().ok()).collect(),
        _ => Vec::new(),
    };
    let previous = |at: usize| previous.get(at).cloned().flatten();
    let consecutive = previous(2).and_then(|n| n.parse::<i64>().ok()).unwrap_or(0) + 1;
    let mut fields = run.fields();
    fields.push(("consecutive_failures", consecutive.to_string()));
    let mut forget = Vec::new();
    for (at, field) in KEPT_BY_A_FAILURE.iter().enumerate().take(2) {
        match previous(at) {
            Some(value) => fields.push((field, value)),
            None => forget.push(*field),
        }
    }
    let mut commands = vec![Command::hset(key, &fields), Command::new("HINCRBY").arg(key).arg("failures").arg(1)];
    if !forget.is_empty() {
        let mut delete = Command::new("HDEL").arg(key);
        for field in forget {
            delete = delete.arg(field);
        }
        commands.push(delete);
    }
    commands
}

/// After a run whose writes Redis did not acknowledge.
pub fn deferred(key: &str, at: i64) -> Vec<Command> {
    vec![Command::hset(key, &RunFields::deferred(at))]
}

/// After pending writes were replayed to Redis.
pub fn replayed(key: &str, at: i64, keys: u64) -> Vec<Command> {
    vec![Command::hset(key, &RunFields::replayed(at, keys))]
}

/// The `HSET` that restarts a counter whose `HINCRBY` Redis refused because the field holds
/// no integer (a value planted or left by another tool), at this run's increment.
fn counter_repair(command: &Command, error: &CommandError) -> Option<(String, String, Command)> {
    if command.name() != "HINCRBY" || !error.0.contains("not an integer") {
        return None;
    }
    let (key, field, increment) = (command.text(0)?, command.text(1)?, command.text(2)?);
    Some((key.to_owned(), field.to_owned(), Command::hset(key, &[(field, increment)])))
}

/// Repairs the status counters a run's write could not increment, so one bad field does not
/// make every run of the task a failure: each is set to this run's increment, once, with one
/// log line naming the fields; their replies become what `HINCRBY` would have answered. A
/// repair Redis refuses leaves the replies as they were.
pub async fn repair_counters(app: &App<'_>, commands: &[Command], mut replies: Replies) -> Replies {
    let broken: Vec<(usize, (String, String, Command))> = commands
        .iter()
        .zip(&replies)
        .enumerate()
        .filter_map(|(at, (command, reply))| Some((at, counter_repair(command, reply.as_ref().err()?)?)))
        .collect();
    if broken.is_empty() {
        return replies;
    }
    let repairs: Vec<Command> = broken.iter().map(|(_, (_, _, repair))| repair.clone()).collect();
    let Ok(written) = app.store.write(&repairs).await else { return replies };
    if written.replies.iter().any(Result::is_err) {
        return replies;
    }
    let fields: Vec<&str> = broken.iter().map(|(_, (_, field, _))| field.as_str()).collect();
    app.store.events().warn(&json!({
        "event": "status_counter_repaired",
        "key": broken[0].1 .0,
        "fields": fields,
        "reason": "the field held no integer; it restarts at this run",
    }));
    for (at, (_, _, repair)) in &broken {
        let increment = repair.text(2).and_then(|n| n.parse().ok()).unwrap_or(1);
        replies[*at] = Ok(Reply::Int(increment));
    }
    replies
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use futures_executor::block_on;
    use serde_json::Value;

    use super::*;
    use crate::log::EventLog;
    use crate::test_app::NoNetwork;

    #[derive(Default)]
    struct Recorded(RefCell<Vec<Value>>);

    impl EventLog for Recorded {
        fn warn(&self, event: &Value) {
            self.0.borrow_mut().push(event.clone());
        }
    }

    #[test]
    fn only_counters_refused_as_non_integers_are_repaired() {
        let increment = Command::new("HINCRBY").arg("k").arg("runs").arg(1);
        let not_integer = CommandError("ERR hash value is not an integer".into());
        let (_, field, repair) = counter_repair(&increment, &not_integer).unwrap();
        assert_eq!((field.as_str(), repair.parts().len()), ("runs", 4));
        assert_eq!(repair.name(), "HSET");
        assert!(counter_repair(&increment, &CommandError("WRONGTYPE".into())).is_none());
        assert!(counter_repair(&Command::new("SET").arg("k").arg("v"), &not_integer).is_none());
    }

    #[test]
    fn a_text_counter_is_repaired_once_and_the_run_succeeds() {
        use std::sync::Arc;

        use crate::clock::{FixedClock, ThreadSleep};
        use crate::store::memory::MemoryStore;
        use crate::store::tiered::{Backing, IsolateCache, Tiered};

        let config = crate::config::Config::from_lookup(|_| None).unwrap();
        let clock = Arc::new(FixedClock::at(crate::test_app::NOW_MS));
        let store = MemoryStore::new(clock.clone(), 1_000);
        let memory = IsolateCache::new(config.tiers);
        let events = Recorded::default();
        let tiers = Tiered::new(&memory, Backing::Memory(&store), &*clock).with_log(&events);
        let flights = crate::api::flight::Flights::default();
        let app = App {
            config: &config,
            store: &tiers,
            http: &NoNetwork,
            clock: &*clock,
            sleep: &ThreadSleep,
            flights: &flights,
            mexc_clock: &Default::default(),
            waiter: &crate::single_flight::Unbounded,
            page: &crate::api::page::PageAssets::NONE,
            health_report: &Default::default(),
        };
        let key = "status-test";
        let hget = |field: &str| block_on(store_get(&app, key, field));
        block_on(app.store.write(&[Command::hset(key, &[("runs", "text"), ("failures", "2")])])).unwrap();

        let commands = success(key, 1, 2, 3);
        let written = block_on(app.store.write(&commands)).unwrap();
        assert!(written.replies.iter().any(Result::is_err), "the planted text refuses HINCRBY");
        let replies = block_on(repair_counters(&app, &commands, written.replies));
        assert!(replies.iter().all(Result::is_ok), "{replies:?}");
        assert_eq!((hget("runs"), hget("last_ok")), (Some("1".into()), Some("2".into())), "status written");
        assert_eq!(events.0.borrow().len(), 1);
        assert_eq!(events.0.borrow()[0]["fields"], serde_json::json!(["runs"]));

        // The next run counts on from the repaired value, with no second log line.
        let commands = success(key, 3, 4, 3);
        let written = block_on(app.store.write(&commands)).unwrap();
        let replies = block_on(repair_counters(&app, &commands, written.replies));
        assert!(replies.iter().all(Result::is_ok));
        assert_eq!(hget("runs"), Some("2".into()));
        assert_eq!(events.0.borrow().len(), 1, "logged once");
    }

    /// A task whose data fails where its status succeeds — a cluster's other node; here a
    /// key of the wrong type — ends with the status of a failed run: the fields a failure keeps
    /// as they were, its counters counted once, the error recorded.
    #[test]
    fn a_run_whose_data_failed_where_its_status_was_written_is_stored_as_a_failure() {
        crate::test_app::with_app(&[], &NoNetwork, |app| {
            a_run_whose_data_failed_is_corrected(app);
        });
    }

    fn a_run_whose_data_failed_is_corrected(app: &App<'_>) {
        use crate::sync::{write_runs, Task, TaskRun};

        let config = app.config;
        let key = config.keys.sync_status("price");
        let before =
            [("last_ok", "5"), ("keys_written", "7"), ("consecutive_failures", "2"), ("runs", "3"), ("failures", "1")];
        block_on(app.store.write(&[Command::hset(&key, &before), Command::set("planted", b"text", None)])).unwrap();
        let data = vec![Command::set("written", b"v", None), Command::zadd("planted", 1, "member")];
        let run = TaskRun { task: Task::Price, started: 10, finished: 20, outcome: Ok(data) };

        let reports = block_on(write_runs(app, vec![run]));
        assert!(!reports[0].ok, "{reports:?}");
        let hget = |field: &str| block_on(store_get(app, &key, field)).unwrap_or_default();
        let kept: Vec<String> = ["last_ok", "keys_written"].iter().map(|f| hget(f)).collect();
        assert_eq!(kept, ["5", "7"], "a failure keeps the last success");
        let counters: Vec<String> = ["runs", "failures", "consecutive_failures"].iter().map(|f| hget(f)).collect();
        assert_eq!(counters, ["4", "2", "3"], "counted once, as a failure");
        assert!(hget("last_error").contains("WRONGTYPE"), "{}", hget("last_error"));
        assert_eq!((hget("last_error_at"), hget("last_started")), ("20".into(), "10".into()));

        // With no success before, the fields a success wrote are removed again.
        let fresh = config.keys.sync_status("cost");
        let data = vec![Command::zadd("planted", 1, "member")];
        let run = TaskRun { task: Task::Cost, started: 30, finished: 40, outcome: Ok(data) };
        assert!(!block_on(write_runs(app, vec![run]))[0].ok);
        let field = |name: &str| block_on(store_get(app, &fresh, name));
        assert_eq!((field("last_ok"), field("keys_written")), (None, None));
        assert_eq!(field("consecutive_failures"), Some("1".into()));
    }

    async fn store_get(app: &App<'_>, key: &str, field: &str) -> Option<String> {
        match app.store.backing_store().execute(&Command::new("HGET").arg(key).arg(field)).await.unwrap() {
            Reply::Bulk(bytes) => Some(String::from_utf8(bytes).unwrap()),
            _ => None,
        }
    }
}
