//! The migrator against a real redis-server: plan counts equal a generated dataset's truth
//! and change nothing; apply then verify passes and leaves other keys alone; rollback
//! restores the typed dump exactly; SIGKILLed runs resume to the same result as an
//! uninterrupted one; a live writer loses no update; the Upstash REST backend works; and
//! `rediss://` works with a private CA given by `--tls-ca`; keys above the size limits are
//! reported and left alone; `--rate` holds; verify, rollback and status never create a
//! journal, and a journal is refused for another database.
//! Each test uses its own Redis database (`redis://…/N`).

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use edgesync_core::store::{Command as StoreCommand, Store, StoreExt};
use edgesync_e2e::binaries;
use edgesync_e2e::harness::{migrator_binary, RedisBackend, REDIS_TOKEN};
use edgesync_e2e::suite::run_suite;
use edgesync_migrator::apply::{apply, ApplyOptions};
use edgesync_migrator::connect::open;
use edgesync_migrator::dump::{differences, dump, Dump};
use edgesync_migrator::generate::generate;
use edgesync_migrator::journal::SledJournal;
use edgesync_migrator::plan::plan;
use edgesync_migrator::rules::builtin;
use edgesync_migrator::rules::convert::{convert, Converted};
use edgesync_migrator::rules::{RuleOptions, RuleSet};
use edgesync_migrator::scan::Class;
use edgesync_migrator::sides::Sides;
use edgesync_migrator::value::TypedValue;
use edgesync_migrator::verify::verify;
use futures_executor::block_on;
use redis::Commands;

const PREFIX: &str = "qrl:v1:";

fn main() {
    run_suite(
        || RedisBackend::start(&binaries!()),
        &[
            ("plan_apply_verify_rollback_on_100k_keys", plan_apply_verify_rollback_on_100k_keys),
            ("sigkill_at_several_points_then_resume", sigkill_at_several_points_then_resume),
            ("a_live_writer_loses_no_update", a_live_writer_loses_no_update),
            ("upstash_rest_backend", upstash_rest_backend),
            ("rediss_with_a_private_ca", rediss_with_a_private_ca),
            (
                "keys_above_the_size_limits_are_reported_and_left_alone",
                keys_above_the_size_limits_are_reported_and_left_alone,
            ),
            ("rate_limits_apply", rate_limits_apply),
            ("reading_steps_need_the_journal_of_their_database", reading_steps_need_the_journal_of_their_database),
        ],
    )
}

fn url(backend: &RedisBackend, db: u8) -> String {
    format!("{}/{db}", backend.redis_url)
}

fn options() -> RuleOptions {
    RuleOptions { target_prefix: PREFIX.into(), ..RuleOptions::default() }
}

fn apply_options(batch: usize) -> ApplyOptions {
    ApplyOptions {
        batch,
        rate: None,
        keep_source: false,
        overwrite: false,
        progress: false,
        lock_key: edgesync_migrator::apply::lock_key(),
        connector: None,
        target: None,
    }
}

fn generic() -> RuleSet {
    builtin::load("generic").unwrap()
}

fn owned_by_rules(key: &str) -> bool {
    builtin::rules().iter().any(|r| r.from.matches(key))
}

fn plan_apply_verify_rollback_on_100k_keys(backend: &RedisBackend) {
    let store = open(&url(backend, 1), None).unwrap();
    let store = store.as_ref();
    let truth = block_on(generate(store, 100_000, 7, PREFIX)).unwrap();
    assert!(truth.keys >= 100_000);
    let original = block_on(dump(store)).unwrap();
    assert_eq!(original.len() as u64, truth.keys);

    let report = block_on(plan(Sides::same(store), &generic(), &options(), 500, &std::env::temp_dir())).unwrap();
    for (rule, classes) in &truth.counts {
        let counts = serde_json::to_value(&report.rules[rule]).unwrap();
        for (class, expected) in classes {
            let name = serde_json::to_value(class).unwrap();
            assert_eq!(counts[name.as_str().unwrap()], *expected, "rule {rule}, class {name}");
        }
    }
    assert_eq!(report.rules.len(), truth.counts.len());
    let after_plan = block_on(dump(store)).unwrap();
    // Expiries are read as now + PTTL, so two dumps differ by the milliseconds between reads.
    let diff = differences(&original, &after_plan, 50, |_| false);
    assert!(
        diff.is_empty(),
        "plan must write nothing: {} differences, e.g. {:?}",
        diff.len(),
        &diff[..diff.len().min(5)]
    );

    // apply through the CLI, then verify.
    let journal = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        Command::new(migrator_binary())
            .args(args)
            .args(["--url", &url(backend, 1), "--journal"])
            .arg(journal.path())
            .args(["--json", "--batch", "1000"])
            .output()
            .unwrap()
    };
    let applied = run(&["apply", "--no-progress"]);
    let applied_report: serde_json::Value = serde_json::from_slice(&applied.stdout).unwrap();
    assert_eq!(applied.status.code(), Some(1), "conflicts and unparseable keys are problems: {applied_report}");
    let migrate: u64 = truth.counts.values().map(|c| c.get(&Class::Migrate).copied().unwrap_or(0)).sum();
    let already: u64 = truth.counts.values().map(|c| c.get(&Class::AlreadyMigrated).copied().unwrap_or(0)).sum();
    assert_eq!(applied_report["migrated"].as_u64().unwrap(), migrate + already, "{applied_report}");
    // What apply leaves behind is counted once per key (SCAN may return a key twice).
    for (class, field) in
        [(Class::Conflict, "conflicts"), (Class::Unparseable, "unparseable"), (Class::WrongType, "wrong_type")]
    {
        let expected: u64 = truth.counts.values().map(|c| c.get(&class).copied().unwrap_or(0)).sum();
        assert_eq!(applied_report[field].as_u64().unwrap(), expected, "{field}: {applied_report}");
    }
    let verified = run(&["verify"]);
    assert_eq!(verified.status.code(), Some(0), "{}", String::from_utf8_lossy(&verified.stdout));
    let verified_report: serde_json::Value = serde_json::from_slice(&verified.stdout).unwrap();
    assert_eq!(verified_report["checked"], applied_report["migrated"], "every moved entry is checked once");
    let after_apply = block_on(dump(store)).unwrap();
    verify_finds_what_changed_after_apply(store, &after_apply, &run);
    let untouched = |key: &str| !owned_by_rules(key) && !key.starts_with(PREFIX);
    let changed_others = differences(&original, &after_apply, 50, |k| !untouched(k));
    assert!(
        changed_others.is_empty(),
        "keys no rule owns must be untouched: {:?}",
        &changed_others[..changed_others.len().min(5)]
    );
    let status = run(&["status"]);
    assert_eq!(status.status.code(), Some(0));
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(status["states"]["done"], verified_report["checked"], "{status}");
    let states: u64 = status["states"].as_object().unwrap().values().map(|n| n.as_u64().unwrap()).sum();
    assert_eq!(status["entries"].as_u64(), Some(states), "{status}");

    let rolled = run(&["rollback"]);
    assert_eq!(rolled.status.code(), Some(0), "{}", String::from_utf8_lossy(&rolled.stdout));
    let after_rollback = block_on(dump(store)).unwrap();
    let diff = differences(&original, &after_rollback, 50, |_| false);
    assert!(
        diff.is_empty(),
        "rollback must restore everything: {} differences, e.g. {:?}",
        diff.len(),
        &diff[..diff.len().min(5)]
    );
}

fn count_targets(connection: &mut redis::Connection) -> usize {
    let keys: Vec<String> =
        connection.scan_match::<_, String>(format!("{PREFIX}*")).unwrap().collect::<Result<_, _>>().unwrap();
    keys.len()
}

fn sigkill_at_several_points_then_resume(backend: &RedisBackend) {
    // The reference: an uninterrupted run on database 3.
    let reference = open(&url(backend, 3), None).unwrap();
    block_on(generate(reference.as_ref(), 20_000, 11, PREFIX)).unwrap();
    let journal_a = tempfile::tempdir().unwrap();
    let journal = SledJournal::open(journal_a.path()).unwrap();
    block_on(apply(reference.as_ref(), &journal, &generic(), &options(), &apply_options(200))).unwrap();
    let expected: Dump = block_on(dump(reference.as_ref())).unwrap();

    // The same data on database 4, killed with SIGKILL three times mid-run, then finished.
    let interrupted = open(&url(backend, 4), None).unwrap();
    block_on(generate(interrupted.as_ref(), 20_000, 11, PREFIX)).unwrap();
    let journal_b = tempfile::tempdir().unwrap();
    let mut connection = redis::Client::open(url(backend, 4)).unwrap().get_connection().unwrap();
    let baseline = count_targets(&mut connection);
    for stop_at in [1_000usize, 4_000, 9_000] {
        let mut child = Command::new(migrator_binary())
            .args([
                "apply",
                "--no-progress",
                "--json",
                "--batch",
                "100",
                "--rate",
                "5000",
                "--url",
                &url(backend, 4),
                "--journal",
            ])
            .arg(journal_b.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        while count_targets(&mut connection) < baseline + stop_at {
            assert!(child.try_wait().unwrap().is_none(), "the run finished before it could be killed at {stop_at}");
            assert!(Instant::now() < deadline, "no progress to {stop_at}");
            std::thread::sleep(Duration::from_millis(20));
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        // A killed run leaves its lock to expire; an operator waits, the test clears it.
        let _: () = connection.del(edgesync_migrator::apply::lock_key()).unwrap();
    }
    let finished = Command::new(migrator_binary())
        .args(["apply", "--no-progress", "--json", "--url", &url(backend, 4), "--journal"])
        .arg(journal_b.path())
        .output()
        .unwrap();
    let report: serde_json::Value = serde_json::from_slice(&finished.stdout).unwrap();
    assert!(finished.status.code() == Some(1), "conflicts remain reported: {report}");
    let scratch: Vec<_> = std::fs::read_dir(journal_b.path())
        .unwrap()
        .map(|item| item.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("spill-"))
        .collect();
    assert!(scratch.is_empty(), "scratch files the killed runs left are removed: {scratch:?}");
    let actual = block_on(dump(interrupted.as_ref())).unwrap();
    // Same keys, types and values; expiries within the seconds between the two runs.
    let diff = differences(&expected, &actual, 120_000, |_| false);
    assert!(diff.is_empty(), "{} differences, e.g. {:?}", diff.len(), &diff[..diff.len().min(5)]);
}

fn a_live_writer_loses_no_update(backend: &RedisBackend) {
    let db = url(backend, 5);
    let store = open(&db, None).unwrap();
    block_on(generate(store.as_ref(), 5_000, 3, PREFIX)).unwrap();
    let hot: Vec<String> = (0..50).map(|i| format!("user:w{i}:position:QRLUSDT:long")).collect();
    let mut connection = redis::Client::open(db.clone()).unwrap().get_connection().unwrap();
    for key in &hot {
        let _: () = connection.set(key, r#"{"qty":"0","version":"0"}"#).unwrap();
    }
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (stop, hot, db) = (stop.clone(), hot.clone(), db.clone());
        std::thread::spawn(move || {
            let mut connection = redis::Client::open(db).unwrap().get_connection().unwrap();
            let mut last = std::collections::BTreeMap::new();
            let mut version = 0u64;
            while !stop.load(Ordering::SeqCst) {
                version += 1;
                for key in &hot {
                    let value = format!(r#"{{"qty":"{version}","version":"{version}"}}"#);
                    let _: () = connection.set(key, &value).unwrap();
                    last.insert(key.clone(), value);
                }
            }
            last
        })
    };
    let journal = tempfile::tempdir().unwrap();
    let journal = SledJournal::open(journal.path()).unwrap();
    let mut slow = apply_options(50);
    slow.rate = Some(2_000.0);
    block_on(apply(store.as_ref(), &journal, &generic(), &options(), &slow)).unwrap();
    stop.store(true, Ordering::SeqCst);
    let last = writer.join().unwrap();
    // A second run picks up what the writer recreated after its first move.
    let again = block_on(apply(store.as_ref(), &journal, &generic(), &options(), &apply_options(50))).unwrap();

    let rule = builtin::rules().into_iter().find(|r| r.name == "user-position").unwrap();
    for (key, value) in &last {
        let captures = rule.from.capture(key).unwrap();
        let Converted::Targets { targets, .. } =
            convert(&rule, &captures, &TypedValue::String(value.clone()), &options())
        else {
            panic!("{key} converts")
        };
        let target = block_on(edgesync_migrator::value::read_many(store.as_ref(), &[targets[0].0.clone()])).unwrap();
        let source: Option<String> = connection.get(key).unwrap();
        let migrated_latest = target[0].as_ref().is_some_and(|t| t.value == targets[0].1);
        let reported =
            source.as_deref() == Some(value.as_str()) && again.problems.iter().any(|p| p.starts_with(key.as_str()));
        assert!(
            migrated_latest || reported,
            "{key}: its last write {value} was lost (target {:?}, source {source:?})",
            target[0]
        );
    }
    let verified = block_on(verify(store.as_ref(), &journal, 100, None, None)).unwrap();
    // Keys the writer recreated after their move differ from the journal only at the source.
    assert_eq!(verified.missing.count + verified.type_mismatch.count, 0, "{verified:?}");
}

/// Verify (its checkers side by side, each on a page of its own) reports targets changed or
/// deleted after the move, wherever they are in the journal; put back, it is clean again.
fn verify_finds_what_changed_after_apply(
    store: &dyn Store,
    after_apply: &Dump,
    run: &dyn Fn(&[&str]) -> std::process::Output,
) {
    let permanent_hashes: Vec<&String> = after_apply
        .iter()
        .filter(|(key, stored)| {
            key.starts_with(&format!("{PREFIX}position:"))
                && stored.expire_at_ms.is_none()
                && matches!(stored.value, TypedValue::Hash(_))
        })
        .map(|(key, _)| key)
        .collect();
    assert!(permanent_hashes.len() > 1000, "moved positions: {}", permanent_hashes.len());
    let (first, middle, last) =
        (permanent_hashes[0], permanent_hashes[permanent_hashes.len() / 2], *permanent_hashes.last().unwrap());
    let execute = |command: StoreCommand| block_on(store.execute(&command)).unwrap();
    execute(StoreCommand::new("HSET").arg(first).arg("tampered").arg("1"));
    execute(StoreCommand::new("HSET").arg(last).arg("tampered").arg("1"));
    let dumped = execute(StoreCommand::new("DUMP").arg(middle)).into_optional_bytes().unwrap().expect("a dump");
    execute(StoreCommand::new("DEL").arg(middle));

    let verified = run(&["verify"]);
    let report: serde_json::Value = serde_json::from_slice(&verified.stdout).unwrap();
    assert_eq!(verified.status.code(), Some(1), "mismatches are problems: {report}");
    assert_eq!(report["value_mismatch"]["count"], 2, "{report}");
    assert_eq!(report["missing"]["count"], 1, "{report}");
    let examples = report["value_mismatch"]["examples"].to_string() + &report["missing"]["examples"].to_string();
    for key in [first, middle, last] {
        assert!(examples.contains(key.as_str()), "{key} in {examples}");
    }

    execute(StoreCommand::new("HDEL").arg(first).arg("tampered"));
    execute(StoreCommand::new("HDEL").arg(last).arg("tampered"));
    execute(StoreCommand::new("RESTORE").arg(middle).arg(0).arg_bytes(&dumped));
    let verified = run(&["verify"]);
    assert_eq!(verified.status.code(), Some(0), "{}", String::from_utf8_lossy(&verified.stdout));
}

fn upstash_rest_backend(backend: &RedisBackend) {
    let store = open(&backend.gateway_url, Some(REDIS_TOKEN)).unwrap();
    let store = store.as_ref();
    // The gateway serves database 0; give this test its own keys there.
    block_on(generate(store, 1_000, 5, PREFIX)).unwrap();
    let report = block_on(plan(Sides::same(store), &generic(), &options(), 200, &std::env::temp_dir())).unwrap();
    assert!(report.total.migrate > 0);
    let journal = tempfile::tempdir().unwrap();
    let journal = SledJournal::open(journal.path()).unwrap();
    let applied = block_on(apply(store, &journal, &generic(), &options(), &apply_options(200))).unwrap();
    assert_eq!(applied.migrated, report.total.migrate + report.total.already_migrated);
    let verified = block_on(verify(store, &journal, 200, None, None)).unwrap();
    assert!(verified.is_clean(), "{verified:?}");
    assert!(block_on(store.scan(0, "qrl:v1:position:*", 10)).is_ok());
    assert!(open("https://example.invalid", None).is_err(), "an https URL without a token is refused");
}

/// `rediss://` to a Redis whose certificate a private CA signed: refused with a sentence
/// until `--tls-ca` names that CA, then plan, apply and verify work over TLS.
fn rediss_with_a_private_ca(backend: &RedisBackend) {
    let db = 6;
    let truth = block_on(generate(open(&url(backend, db), None).unwrap().as_ref(), 2_000, 11, PREFIX)).unwrap();
    let tls_url = format!("{}/{db}", backend.redis_tls_url);
    let journal = tempfile::tempdir().unwrap();
    let run = |args: &[&str], ca: Option<&std::path::Path>| {
        let mut command = Command::new(migrator_binary());
        command.args(args).args(["--url", &tls_url, "--json", "--journal"]).arg(journal.path());
        if let Some(ca) = ca {
            command.arg("--tls-ca").arg(ca);
        }
        command.output().unwrap()
    };

    let untrusted = run(&["plan"], None);
    let stderr = String::from_utf8_lossy(&untrusted.stderr);
    assert_eq!(untrusted.status.code(), Some(3), "the bundled roots do not know the private CA: {stderr}");
    assert!(stderr.contains("cannot connect to rediss://127.0.0.1"), "{stderr}");

    let planned = run(&["plan"], Some(backend.tls_ca()));
    let report: serde_json::Value = serde_json::from_slice(&planned.stdout).unwrap();
    let migrate: u64 = truth.counts.values().map(|c| c.get(&Class::Migrate).copied().unwrap_or(0)).sum();
    assert_eq!(report["total"]["migrate"].as_u64(), Some(migrate), "{report}");

    let applied = run(&["apply", "--no-progress"], Some(backend.tls_ca()));
    let report: serde_json::Value = serde_json::from_slice(&applied.stdout).unwrap();
    assert!(report["migrated"].as_u64().unwrap() >= migrate, "{report}");
    let verified = run(&["verify"], Some(backend.tls_ca()));
    assert_eq!(verified.status.code(), Some(0), "{}", String::from_utf8_lossy(&verified.stdout));
    // What went through TLS is in the one Redis, seen over plain RESP too.
    let mut plain = redis::Client::open(url(backend, db)).unwrap().get_connection().unwrap();
    let migrated: Vec<String> =
        plain.scan_match(format!("{PREFIX}position:*")).unwrap().take(1).collect::<Result<_, _>>().unwrap();
    assert_eq!(migrated.len(), 1, "targets written over TLS are in Redis");

    let not_pem = journal.path().join("not-a-ca.pem");
    std::fs::write(&not_pem, "hello").unwrap();
    let refused = run(&["plan"], Some(&not_pem));
    assert_eq!(refused.status.code(), Some(2), "{}", String::from_utf8_lossy(&refused.stderr));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("no PEM certificate"));
}

/// Keys above `--max-value-bytes` / `--max-elements` are measured, reported and left exactly
/// as they were; the others move.
fn keys_above_the_size_limits_are_reported_and_left_alone(backend: &RedisBackend) {
    let db = 8;
    let mut connection = redis::Client::open(url(backend, db)).unwrap().get_connection().unwrap();
    let padding = "x".repeat(2_000);
    let big_position = format!(r#"{{"side":"long","qty":"1.5","note":"{padding}"}}"#);
    let _: () = connection.set("position:u1:BTCUSDT", &big_position).unwrap();
    let _: () = connection.set("position:u2:BTCUSDT", r#"{"side":"long","qty":"2.5"}"#).unwrap();
    let big_orders: Vec<(u32, String)> = (0..6).map(|n| (1000 + n, format!("order-{n}"))).collect();
    let _: () = connection.zadd_multiple("okx:user:u3:symbol:BTCUSDT:orders", &big_orders).unwrap();
    let _: () = connection.zadd_multiple("okx:user:u4:symbol:BTCUSDT:orders", &big_orders[..2]).unwrap();
    let store = open(&url(backend, db), None).unwrap();
    let before = block_on(dump(store.as_ref())).unwrap();

    let journal = tempfile::tempdir().unwrap();
    let run = |step: &str| {
        Command::new(migrator_binary())
            .args([step, "--json", "--url", &url(backend, db), "--journal"])
            .arg(journal.path())
            .args(["--max-value-bytes", "1000", "--max-elements", "5"])
            .output()
            .unwrap()
    };
    let planned = run("plan");
    let plan: serde_json::Value = serde_json::from_slice(&planned.stdout).unwrap();
    assert_eq!(planned.status.code(), Some(1), "too large keys are problems: {plan}");
    assert_eq!(plan["total"]["too_large"], 2, "{plan}");
    assert_eq!(plan["total"]["migrate"], 2, "{plan}");
    let samples = plan["total"]["samples"]["too_large"].to_string();
    assert!(samples.contains("position:u1:BTCUSDT") && samples.contains("bytes"), "{samples}");
    assert!(samples.contains("okx:user:u3:symbol:BTCUSDT:orders") && samples.contains("6 elements"), "{samples}");

    let applied = run("apply");
    let report: serde_json::Value = serde_json::from_slice(&applied.stdout).unwrap();
    assert_eq!(applied.status.code(), Some(1), "{report}");
    assert_eq!((report["too_large"].as_u64(), report["migrated"].as_u64()), (Some(2), Some(2)), "{report}");
    let after = block_on(dump(store.as_ref())).unwrap();
    for key in ["position:u1:BTCUSDT", "okx:user:u3:symbol:BTCUSDT:orders"] {
        assert_eq!(after.get(key), before.get(key), "{key} is left exactly as it was");
    }
    for key in ["position:u2:BTCUSDT", "okx:user:u4:symbol:BTCUSDT:orders"] {
        assert!(!after.contains_key(key), "{key} moved");
    }
    assert!(after.contains_key(&format!("{PREFIX}orders:okx:user:u4:symbol:BTCUSDT:orders")));
}

/// `--rate` keeps `apply` at or below the rate: it cannot finish sooner than keys/rate.
fn rate_limits_apply(backend: &RedisBackend) {
    let db = 7;
    let store = open(&url(backend, db), None).unwrap();
    block_on(generate(store.as_ref(), 1_500, 13, PREFIX)).unwrap();
    let owned =
        block_on(plan(Sides::same(store.as_ref()), &generic(), &options(), 500, &std::env::temp_dir())).unwrap().total;
    let scanned = owned.migrate + owned.already_migrated + owned.conflict + owned.unparseable + owned.wrong_type;
    let journal = tempfile::tempdir().unwrap();
    let rate = 1_000;
    let started = Instant::now();
    let applied = Command::new(migrator_binary())
        .args(["apply", "--json", "--no-progress", "--url", &url(backend, db), "--journal"])
        .arg(journal.path())
        .args(["--rate", &rate.to_string()])
        .output()
        .unwrap();
    let elapsed = started.elapsed();
    let report: serde_json::Value = serde_json::from_slice(&applied.stdout).unwrap();
    assert_eq!(report["migrated"].as_u64(), Some(owned.migrate + owned.already_migrated), "{report}");
    let floor = Duration::from_secs_f64(0.9 * scanned as f64 / rate as f64);
    assert!(elapsed >= floor, "{scanned} keys at {rate}/s took {elapsed:?}, less than {floor:?}");
}

/// `verify`, `rollback` and `status` where no journal is exit 2 with a sentence naming the path,
/// and create nothing; a journal pointed at another database is refused by verify and
/// rollback, which then change nothing there.
fn reading_steps_need_the_journal_of_their_database(backend: &RedisBackend) {
    let (db, other) = (9, 10);
    let empty = tempfile::tempdir().unwrap();
    for step in ["verify", "rollback", "status"] {
        let run = Command::new(migrator_binary())
            .current_dir(empty.path())
            .args([step, "--url", &url(backend, db)])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert_eq!(run.status.code(), Some(2), "{step}: {stderr}");
        let looked_at = empty.path().canonicalize().unwrap().join("migrator-journal");
        assert!(stderr.contains(&format!("no journal at {}", looked_at.display())), "{step}: {stderr}");
        assert!(stderr.contains("--journal"), "{step} says how to point at the journal: {stderr}");
        assert_eq!(std::fs::read_dir(empty.path()).unwrap().count(), 0, "{step} created something");
    }

    let store = open(&url(backend, db), None).unwrap();
    block_on(generate(store.as_ref(), 300, 17, PREFIX)).unwrap();
    let other_store = open(&url(backend, other), None).unwrap();
    block_on(generate(other_store.as_ref(), 300, 17, PREFIX)).unwrap();
    let other_before = block_on(dump(other_store.as_ref())).unwrap();
    let journal = tempfile::tempdir().unwrap();
    let run = |step: &str, database: u8| {
        Command::new(migrator_binary())
            .args([step, "--json", "--url", &url(backend, database), "--journal"])
            .arg(journal.path())
            .output()
            .unwrap()
    };
    let applied = run("apply", db);
    let report: serde_json::Value = serde_json::from_slice(&applied.stdout).unwrap();
    assert!(report["migrated"].as_u64().unwrap() > 0, "{report}");
    for step in ["verify", "rollback", "apply"] {
        let refused = run(step, other);
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert_eq!(refused.status.code(), Some(2), "{step} on another database: {stderr}");
        assert!(stderr.contains("this journal belongs to") && stderr.contains(&format!("/{db}")), "{stderr}");
    }
    let other_after = block_on(dump(other_store.as_ref())).unwrap();
    assert!(differences(&other_before, &other_after, 50, |_| false).is_empty(), "the other database changed");
    let verified = run("verify", db);
    assert_eq!(verified.status.code(), Some(0), "{}", String::from_utf8_lossy(&verified.stdout));
    let verified: serde_json::Value = serde_json::from_slice(&verified.stdout).unwrap();
    assert_eq!(verified["checked"], report["migrated"], "{verified}");
}
