//! The migrator on a Redis Cluster: 3 masters and 3 replicas of Debian's `redis-server` on
//! 127.0.0.1, created with `redis-cli --cluster create`, beside a single `redis-server` holding
//! the same data for comparison. The bots' own writers (TradingBoost at 6111cb0) write through a
//! cluster-aware client, so their keys land on every master; the migrator is given the URL of
//! one node and must plan, move, verify and roll back all of them — across a crash at each
//! point of the cross-node protocol, and across a failover.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use edgesync_core::store::StoreExt;
use edgesync_e2e::binaries;
use edgesync_e2e::cluster::{node, RedisCluster, SlotMove};
use edgesync_e2e::harness::{migrator_binary, require_tool, RedisBackend, REDIS_TOKEN};
use edgesync_e2e::process::{free_port, wait_until, Service};
use edgesync_e2e::suite::run_suite;
use edgesync_e2e::tradingboost::{
    grid_legacy_all_positions, grid_legacy_quantity, grid_phase2_all_positions, trading_cache_get_position,
    write_legacy,
};
use edgesync_migrator::apply::{apply, lock_key, ApplyOptions};
use edgesync_migrator::connect::{open, open_with, Connector, Trust};
use edgesync_migrator::dump::{differences, dump, Dump};
use edgesync_migrator::entry::EntryState;
use edgesync_migrator::generate::generate;
use edgesync_migrator::journal::{entries, SledJournal};
use edgesync_migrator::rules::convert::{convert, Converted};
use edgesync_migrator::rules::{builtin, RuleOptions};
use edgesync_migrator::value::{read_many, TypedValue};
use futures_executor::block_on;
use redis::Commands;
use serde_json::Value;

struct Fixture {
    cluster: RedisCluster,
    /// Another redis-server with the Upstash REST gateway in front: a target over REST.
    backend: RedisBackend,
    /// One plain redis-server, for the single-node plan of the same data.
    _single: Service,
    single_port: u16,
    _dir: tempfile::TempDir,
}

impl Fixture {
    fn start() -> Result<Self, String> {
        require_tool("redis-server", "install it with `apt-get install redis-server` (`make test` does this)")?;
        let cluster = RedisCluster::start(3, 1)?;
        let backend = RedisBackend::start(&binaries!())?;
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let single_port = free_port();
        let mut command = Command::new("redis-server");
        command.args(["--bind", "127.0.0.1", "--port", &single_port.to_string(), "--save", "", "--appendonly", "no"]);
        command.arg("--dir").arg(dir.path());
        let mut single = Service::spawn("redis-server", command, &dir.path().join("single.log"))?;
        let url = format!("redis://127.0.0.1:{single_port}");
        wait_until("redis-server to answer", Duration::from_secs(20), || {
            let answers = redis::Client::open(url.as_str())
                .and_then(|c| c.get_connection_with_timeout(Duration::from_millis(200)))
                .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c))
                .is_ok();
            (answers || !single.is_running()).then_some(())
        })?;
        Ok(Self { cluster, backend, _single: single, single_port, _dir: dir })
    }

    /// The URL of one master: the operator gives any node.
    fn cluster_url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.cluster.ports_with_role("master")[1])
    }

    fn single_url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.single_port)
    }

    fn single(&self) -> redis::Connection {
        redis::Client::open(self.single_url()).unwrap().get_connection().unwrap()
    }

    fn reset(&self) {
        self.cluster.wait_ok().unwrap();
        self.cluster.flush();
        let _: () = redis::cmd("FLUSHALL").query(&mut self.single()).unwrap();
    }
}

fn main() {
    run_suite(
        Fixture::start,
        &[
            ("tradingboost_on_a_cluster_reads_as_on_one_redis", tradingboost_on_a_cluster_reads_as_on_one_redis),
            (
                "a_crash_at_each_cross_node_step_resumes_to_the_same_end",
                a_crash_at_each_cross_node_step_resumes_to_the_same_end,
            ),
            ("one_apply_per_cluster", one_apply_per_cluster),
            (
                "rolling_back_a_crashed_run_keeps_what_a_writer_wrote_since",
                rolling_back_a_crashed_run_keeps_what_a_writer_wrote_since,
            ),
            (
                "a_live_writer_loses_no_update_and_no_target_is_left_behind",
                a_live_writer_loses_no_update_and_no_target_is_left_behind,
            ),
            ("a_failover_mid_apply_loses_and_duplicates_nothing", a_failover_mid_apply_loses_and_duplicates_nothing),
            (
                "what_a_cluster_cannot_do_is_refused_with_a_sentence",
                what_a_cluster_cannot_do_is_refused_with_a_sentence,
            ),
            ("onto_another_redis_a_cluster_or_upstash_rest", onto_another_redis_a_cluster_or_upstash_rest),
            ("a_tls_cluster_is_worked_over_tls_on_every_node", a_tls_cluster_is_worked_over_tls_on_every_node),
            // Last: it moves a slot, which the tests before do not expect.
            ("a_key_resharded_during_a_scan_is_still_seen", a_key_resharded_during_a_scan_is_still_seen),
        ],
    )
}

/// Runs the migrator CLI as an operator would, with `--json`.
fn migrator(url: &str, journal: &Path, args: &[&str], env: &[(&str, &str)]) -> (Output, Value) {
    let mut command = Command::new(migrator_binary());
    command.args(args).args(["--url", url, "--journal"]).arg(journal).arg("--json");
    if args[0] == "apply" {
        command.arg("--no-progress");
    }
    let output = command.envs(env.iter().copied()).stdin(Stdio::null()).output().unwrap();
    let report = serde_json::from_slice(&output.stdout).unwrap_or(Value::Null);
    (output, report)
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn typed_dump(url: &str) -> Dump {
    let store = open(url, None).unwrap();
    block_on(dump(store.as_ref())).unwrap()
}

/// What `plan` reports that must not depend on where the keys live.
fn plan_counts(plan: &Value) -> Value {
    serde_json::json!({"rules": plan["rules"], "total": plan["total"], "not_owned": plan["not_owned"]["count"]})
}

const TAGS: [&str; 10] = ["", "1", "2", "3", "4", "5", "6", "7", "8", "9"];

fn tradingboost_on_a_cluster_reads_as_on_one_redis(fixture: &Fixture) {
    fixture.reset();
    let mut client = fixture.cluster.client();
    let mut single = fixture.single();
    let written: Vec<_> = TAGS.iter().map(|tag| write_legacy(&mut client, tag)).collect();
    for tag in TAGS {
        write_legacy(&mut single, tag);
    }
    let per_master = fixture.cluster.keys_per_master();
    assert!(per_master.len() == 3 && per_master.iter().all(|n| *n > 20), "spread over every master: {per_master:?}");
    let original = typed_dump(&fixture.cluster_url());
    assert_eq!(original.len() as u64, per_master.iter().sum::<u64>(), "the dump sees every master");

    let journal = tempfile::tempdir().unwrap();
    let url = fixture.cluster_url();
    let base = ["--rules", "tradingboost"];
    let (planned, plan) = migrator(&url, journal.path(), &[&["plan"][..], &base].concat(), &[]);
    assert_eq!(planned.status.code(), Some(0), "{plan} {}", stderr(&planned));
    let (_, single_plan) = migrator(&fixture.single_url(), journal.path(), &[&["plan"][..], &base].concat(), &[]);
    assert_eq!(plan_counts(&plan), plan_counts(&single_plan), "the cluster's plan is the single Redis's");
    let to_move = plan["total"]["migrate"].as_u64().unwrap();
    assert_eq!(to_move, 8 * TAGS.len() as u64, "{plan}");

    let (applied, report) = migrator(&url, journal.path(), &[&["apply"][..], &base].concat(), &[]);
    assert_eq!(applied.status.code(), Some(0), "{report} {}", stderr(&applied));
    assert_eq!(report["migrated"].as_u64(), Some(to_move), "{report}");
    let (verified, check) = migrator(&url, journal.path(), &["verify"], &[]);
    assert_eq!(verified.status.code(), Some(0), "{check} {}", stderr(&verified));
    assert_eq!(check["checked"].as_u64(), Some(to_move), "{check}");

    // The bots' new readers, through a cluster-aware client, see what the old ones saw.
    for (tag, written) in TAGS.iter().zip(&written) {
        // GRID: the hedge-mode list as its legacy reader totals it; the net-mode envelope as
        // `handle_okx` reads each symbol.
        let (hedge_user, hedge_payload) = &written.grid[0];
        let phase2 = grid_phase2_all_positions(&mut client, hedge_user, "okx");
        assert_eq!(phase2, grid_legacy_all_positions(hedge_payload), "GRID user {hedge_user}");
        assert_eq!(phase2.len(), 2, "DOGE and XRP");
        let (net_user, net_payload) = &written.grid[1];
        let phase2 = grid_phase2_all_positions(&mut client, net_user, "okx");
        for symbol in ["LTC-USDT-SWAP", "BNB-USDT-SWAP"] {
            assert_eq!(phase2[symbol], grid_legacy_quantity(net_payload, symbol), "{net_user} {symbol}");
        }
        for (user, _) in &written.grid {
            let gone: bool = client.exists(format!("okx:positions:{user}")).unwrap();
            assert!(!gone, "okx:positions:{user} moved");
        }
        for (user, symbol, side, value) in &written.cached {
            let read = trading_cache_get_position(&mut client, user, symbol, side);
            assert_eq!(read.as_ref(), Some(value), "TradingCache {user} {symbol}");
        }
        let orders: std::collections::BTreeMap<String, String> =
            client.hgetall(format!("orders:okx:user:{tag}401:symbol:DOGE-USDT-SWAP:order_placed")).unwrap();
        assert_eq!(orders.len(), 2, "GRID's order hash for tag {tag:?}");
    }

    let (rolled, undone) = migrator(&url, journal.path(), &["rollback"], &[]);
    assert_eq!(rolled.status.code(), Some(0), "{undone} {}", stderr(&rolled));
    assert_eq!(undone["restored"].as_u64(), Some(to_move), "{undone}");
    let diff = differences(&original, &typed_dump(&url), 1_000, |_| false);
    assert!(diff.is_empty(), "rollback restores type, value and TTL on every master: {diff:?}");
    let restored = typed_dump(&url);
    assert_eq!(restored.len(), original.len(), "nothing left behind");
}

/// Generated legacy data (`migrator generate`), mostly moves whose source and targets live on
/// different masters.
fn generated(fixture: &Fixture, keys: u64) -> Dump {
    fixture.reset();
    let url = fixture.cluster_url();
    let journal = tempfile::tempdir().unwrap();
    let (generated, _) =
        migrator(&url, journal.path(), &["generate", "--keys", &keys.to_string(), "--seed", "11"], &[]);
    assert_eq!(generated.status.code(), Some(0), "{}", stderr(&generated));
    typed_dump(&url)
}

fn a_crash_at_each_cross_node_step_resumes_to_the_same_end(fixture: &Fixture) {
    let url = fixture.cluster_url();
    let original = generated(fixture, 1_500);
    let base = ["apply", "--rules", "tradingboost", "--batch", "50"];

    // The end state of an uninterrupted run.
    let journal = tempfile::tempdir().unwrap();
    let (applied, report) = migrator(&url, journal.path(), &base, &[]);
    assert!(applied.status.code().is_some_and(|c| c <= 1), "{report} {}", stderr(&applied));
    let moved = report["migrated"].as_u64().unwrap();
    assert!(moved > 500, "{report}");
    let uninterrupted = typed_dump(&url);
    let (rolled, _) = migrator(&url, journal.path(), &["rollback"], &[]);
    assert_eq!(rolled.status.code(), Some(0), "{}", stderr(&rolled));
    assert!(differences(&original, &typed_dump(&url), 1_000, |_| false).is_empty(), "back to the original");

    // Killed at each step of the protocol — after the targets are written, after the sources
    // are taken, between two nodes' calls — then run again until done.
    let journal = tempfile::tempdir().unwrap();
    let mut crashes = 0;
    for point in ["put:2", "taken:1", "put:5", "taken:4", "node:5", "node:17"] {
        let (crashed, _) = migrator(&url, journal.path(), &base, &[("MIGRATOR_CRASH_AT", point)]);
        if crashed.status.code().is_none() {
            crashes += 1;
        }
        // A killed run leaves its lock to expire; an operator waits, the test clears it.
        let _: () = fixture.cluster.client().del(format!("{}lock", edgesync_migrator::rules::OWN_KEYS_PREFIX)).unwrap();
    }
    assert!(crashes >= 5, "the run was killed at the protocol's steps ({crashes} of 6)");
    let (finished, report) = migrator(&url, journal.path(), &base, &[]);
    assert!(finished.status.code().is_some_and(|c| c <= 1), "{report} {}", stderr(&finished));
    let diff = differences(&uninterrupted, &typed_dump(&url), 1_000, |_| false);
    assert!(diff.is_empty(), "resumed runs end where an uninterrupted one does: {diff:?}");
    assert_eq!(typed_dump(&url).len(), uninterrupted.len(), "no key left behind or duplicated");
    let (verified, check) = migrator(&url, journal.path(), &["verify"], &[]);
    assert_eq!(verified.status.code(), Some(0), "{check}");
    assert_eq!(check["checked"].as_u64(), Some(moved), "{check}");
    let (rolled, undone) = migrator(&url, journal.path(), &["rollback"], &[]);
    assert_eq!(rolled.status.code(), Some(0), "{undone} {}", stderr(&rolled));
    let diff = differences(&original, &typed_dump(&url), 1_000, |_| false);
    assert!(diff.is_empty(), "rollback after the crashes restores the original: {diff:?}");
}

fn one_apply_per_cluster(fixture: &Fixture) {
    generated(fixture, 200);
    let url = fixture.cluster_url();
    let mut client = fixture.cluster.client();
    // Another run's lock, as it holds it while moving.
    let lock = format!("{}lock", edgesync_migrator::rules::OWN_KEYS_PREFIX);
    let _: () = client.pset_ex(&lock, "another-run", 60_000).unwrap();
    for port in fixture.cluster.ports_with_role("master") {
        let journal = tempfile::tempdir().unwrap();
        let node = format!("redis://127.0.0.1:{port}");
        let (refused, _) = migrator(&node, journal.path(), &["apply", "--rules", "tradingboost"], &[]);
        assert_eq!(refused.status.code(), Some(3), "{}", stderr(&refused));
        assert!(stderr(&refused).contains("lock"), "{}", stderr(&refused));
    }
    let _: () = client.del(&lock).unwrap();
    let journal = tempfile::tempdir().unwrap();
    let (applied, report) = migrator(&url, journal.path(), &["apply", "--rules", "tradingboost"], &[]);
    assert!(applied.status.code().is_some_and(|c| c <= 1), "{report} {}", stderr(&applied));
}

fn a_failover_mid_apply_loses_and_duplicates_nothing(fixture: &Fixture) {
    let original = generated(fixture, 4_000);
    let url = fixture.cluster_url();
    let journal = tempfile::tempdir().unwrap();
    let (_, plan) = migrator(&url, journal.path(), &["plan", "--rules", "tradingboost"], &[]);
    let to_move = plan["total"]["migrate"].as_u64().unwrap();

    let mut command = Command::new(migrator_binary());
    command.args(["apply", "--rules", "tradingboost", "--batch", "50", "--rate", "800", "--no-progress", "--json"]);
    command.args(["--url", &url, "--journal"]).arg(journal.path());
    let run = command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    // Once the run is moving, a replica takes over its master (as an operator's failover).
    wait_until("the apply to move keys", Duration::from_secs(30), || {
        let left: usize = fixture
            .cluster
            .ports_with_role("master")
            .into_iter()
            .map(|port| {
                let mut node =
                    redis::Client::open(format!("redis://127.0.0.1:{port}")).unwrap().get_connection().unwrap();
                node.scan_match::<_, String>("okx:positions:*").unwrap().count()
            })
            .sum();
        (left < 300).then_some(())
    })
    .unwrap();
    // A replica that has not finished its first sync holds none of its master's writes: a
    // failover to it would lose them whatever the migrator did.
    fixture.cluster.wait_replicas_synced().unwrap();
    let replica = fixture.cluster.ports_with_role("slave")[0];
    let mut connection = redis::Client::open(format!("redis://127.0.0.1:{replica}")).unwrap().get_connection().unwrap();
    let _: () = redis::cmd("CLUSTER").arg("FAILOVER").query(&mut connection).unwrap();
    wait_until("the replica to become a master", Duration::from_secs(30), || {
        fixture.cluster.ports_with_role("master").contains(&replica).then_some(())
    })
    .unwrap();
    let first = run.wait_with_output().unwrap();

    // The run followed the new topology to the end (1: the generated data's unparseable keys).
    assert!(first.status.code().is_some_and(|c| c <= 1), "the run stopped at the failover: {}", stderr(&first));
    let report: Value = serde_json::from_slice(&first.stdout).unwrap();
    assert!(report["migrated"].as_u64().unwrap() > 0, "{report}");
    // A re-run finds nothing left to move.
    let (again, rerun) = migrator(&url, journal.path(), &["apply", "--rules", "tradingboost"], &[]);
    assert!(again.status.code().is_some_and(|c| c <= 1), "{rerun} {}", stderr(&again));
    assert_eq!(rerun["migrated"], 0, "{rerun}");
    let (_, after) = migrator(&url, journal.path(), &["plan", "--rules", "tradingboost"], &[]);
    assert_eq!(after["total"]["migrate"], 0, "nothing left to move: {after}");
    let (verified, check) = migrator(&url, journal.path(), &["verify"], &[]);
    assert_eq!(verified.status.code(), Some(0), "nothing lost, no source beside its target: {check}");
    assert_eq!(check["checked"].as_u64(), Some(to_move), "{check}");
    let (rolled, undone) = migrator(&url, journal.path(), &["rollback"], &[]);
    assert_eq!(rolled.status.code(), Some(0), "{undone} {}", stderr(&rolled));
    let diff = differences(&original, &typed_dump(&url), 1_000, |_| false);
    assert!(diff.is_empty(), "rollback after the failover restores the original: {diff:?}");
}

fn what_a_cluster_cannot_do_is_refused_with_a_sentence(fixture: &Fixture) {
    let journal = tempfile::tempdir().unwrap();
    let port = fixture.cluster.ports_with_role("master")[0];
    let (refused, _) = migrator(&format!("redis://127.0.0.1:{port}/2"), journal.path(), &["plan"], &[]);
    assert_eq!(refused.status.code(), Some(2), "{}", stderr(&refused));
    assert!(stderr(&refused).contains("only database 0"), "{}", stderr(&refused));
}

fn a_live_writer_loses_no_update_and_no_target_is_left_behind(fixture: &Fixture) {
    fixture.reset();
    let url = fixture.cluster_url();
    let store = open(&url, None).unwrap();
    let rule_options = RuleOptions { target_prefix: "lw:".into(), ..RuleOptions::default() };
    block_on(generate(store.as_ref(), 2_000, 3, "lw:")).unwrap();
    let hot: Vec<String> = (0..40).map(|i| format!("user:w{i}:position:QRLUSDT:long")).collect();
    let mut client = fixture.cluster.client();
    for key in &hot {
        let _: () = client.set(key, r#"{"qty":"0","version":"0"}"#).unwrap();
    }
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (stop, hot) = (stop.clone(), hot.clone());
        let mut client = fixture.cluster.client();
        std::thread::spawn(move || {
            let mut last = BTreeMap::new();
            let mut version = 0u64;
            while !stop.load(Ordering::SeqCst) {
                version += 1;
                for key in &hot {
                    let value = format!(r#"{{"qty":"{version}","version":"{version}"}}"#);
                    let _: () = client.set(key, &value).unwrap();
                    last.insert(key.clone(), value);
                }
            }
            last
        })
    };
    let dir = tempfile::tempdir().unwrap();
    let journal = SledJournal::open(dir.path()).unwrap();
    let set = builtin::load("generic").unwrap();
    let options = |rate: Option<f64>| ApplyOptions {
        batch: 50,
        rate,
        keep_source: false,
        overwrite: false,
        progress: false,
        lock_key: lock_key(),
        connector: Some(Connector::new(&url, None, &Trust::default())),
        target: None,
    };
    block_on(apply(store.as_ref(), &journal, &set, &rule_options, &options(Some(1_500.0)))).unwrap();
    stop.store(true, Ordering::SeqCst);
    let last = writer.join().unwrap();
    // A second run picks up what the writer recreated after its first move.
    let again = block_on(apply(store.as_ref(), &journal, &set, &rule_options, &options(None))).unwrap();

    // What each source's completed moves wrote: the only values its target may hold.
    let mut moved_values: BTreeMap<String, Vec<TypedValue>> = BTreeMap::new();
    let mut changed = 0;
    for page in entries(&journal, false, 1_000) {
        for entry in page.unwrap() {
            match entry.state {
                EntryState::Done => moved_values
                    .entry(entry.source.clone())
                    .or_default()
                    .extend(entry.targets.into_iter().map(|(_, v)| v)),
                EntryState::Changed => changed += 1,
                _ => {}
            }
        }
    }
    assert!(changed > 0, "the writer changed sources under the move (else this test tests nothing)");
    let rule = builtin::rules().into_iter().find(|r| r.name == "user-position").unwrap();
    for (key, value) in &last {
        let captures = rule.from.capture(key).unwrap();
        let Converted::Targets { targets, .. } =
            convert(&rule, &captures, &TypedValue::String(value.clone()), &rule_options)
        else {
            panic!("{key} converts")
        };
        let held = block_on(read_many(store.as_ref(), &[targets[0].0.clone()])).unwrap().remove(0);
        let source: Option<String> = client.get(key).unwrap();
        let migrated_latest = source.is_none() && held.as_ref().is_some_and(|t| t.value == targets[0].1);
        let reported =
            source.as_deref() == Some(value.as_str()) && again.problems.iter().any(|p| p.starts_with(key.as_str()));
        if !(migrated_latest || reported) {
            for page in entries(&journal, false, 1_000) {
                for entry in page.unwrap().into_iter().filter(|e| e.source == *key) {
                    eprintln!(
                        "journal {} {:?} overwrite={} original={:?} targets={:?} previous={:?} note={:?}",
                        entry.seq,
                        entry.state,
                        entry.overwrite,
                        entry.original.value,
                        entry.targets,
                        entry.previous_targets,
                        entry.note
                    );
                }
            }
        }
        assert!(
            migrated_latest || reported,
            "{key}: its last write {value} was lost (target {held:?}, source {source:?})"
        );
        if let Some(held) = held {
            let moved = moved_values.get(key).into_iter().flatten().any(|v| *v == held.value);
            assert!(moved, "{key}: its target holds {:?}, which no completed move wrote", held.value);
        }
    }
}

/// `--target-url`: the bot's data moves out of a self-hosted Redis into a cluster, or into a
/// Redis behind the Upstash REST protocol over TLS (the gateway, its certificate signed by a
/// private CA given with `--target-tls-ca`), standardized on the way.
fn onto_another_redis_a_cluster_or_upstash_rest(fixture: &Fixture) {
    let tags = ["", "1", "2"];
    let single_url = fixture.single_url();
    let (ca, certificate, key) = fixture.backend.tls_files();
    let (_gateway, rest) = fixture
        .backend
        .start_gateway(
            &["--tls-cert", certificate.to_str().unwrap(), "--tls-key", key.to_str().unwrap()],
            &[("GATEWAY_TOKEN", REDIS_TOKEN)],
        )
        .unwrap();
    assert!(rest.starts_with("https://"), "{rest}");
    for target in [fixture.cluster_url(), rest.clone()] {
        fixture.reset();
        let mut rest_redis = redis::Client::open(fixture.backend.redis_url.as_str()).unwrap().get_connection().unwrap();
        let _: () = redis::cmd("FLUSHDB").query(&mut rest_redis).unwrap();
        let mut single = fixture.single();
        let written: Vec<_> = tags.iter().map(|tag| write_legacy(&mut single, tag)).collect();
        let original = typed_dump(&single_url);
        let journal = tempfile::tempdir().unwrap();
        // The private CA is the TLS target's (for a plain one it is refused, exit 2).
        let mut env = vec![("MIGRATOR_TARGET_TOKEN", REDIS_TOKEN)];
        if target == rest {
            env.push(("MIGRATOR_TARGET_TLS_CA", ca.to_str().unwrap()));
        }
        let with_target = |step: &'static str| vec![step, "--rules", "tradingboost", "--target-url", target.as_str()];
        let target_dump = || {
            if target == rest {
                typed_dump(&fixture.backend.redis_url)
            } else {
                typed_dump(&target)
            }
        };

        let (applied, report) = migrator(&single_url, journal.path(), &with_target("apply"), &env);
        assert_eq!(applied.status.code(), Some(0), "{target}: {report} {}", stderr(&applied));
        let moved = report["migrated"].as_u64().unwrap();
        assert_eq!(moved, 8 * tags.len() as u64, "{report}");
        // The source keeps only what no rule moves.
        let left = typed_dump(&single_url);
        assert_eq!(left.len() as u64, original.len() as u64 - moved, "every moved source is gone from the source");
        for written in &written {
            for key in &written.state_keys {
                assert!(left.contains_key(key.as_str()), "{key} stays on the source");
            }
        }
        // The new readers, on the target, see what the legacy readers saw on the source.
        assert!(target_dump().len() as u64 >= moved, "every target written");
        for written in &written {
            let (user, payload) = &written.grid[0];
            let phase2 = if target == rest {
                grid_phase2_all_positions(&mut rest_redis, user, "okx")
            } else {
                grid_phase2_all_positions(&mut fixture.cluster.client(), user, "okx")
            };
            assert_eq!(phase2, grid_legacy_all_positions(payload), "GRID {user} on {target}");
            for (user, symbol, side, value) in &written.cached {
                let read = if target == rest {
                    trading_cache_get_position(&mut rest_redis, user, symbol, side)
                } else {
                    trading_cache_get_position(&mut fixture.cluster.client(), user, symbol, side)
                };
                assert_eq!(read.as_ref(), Some(value), "TradingCache {user} {symbol} on {target}");
            }
        }

        let (verified, check) = migrator(&single_url, journal.path(), &with_target("verify"), &env);
        assert_eq!(verified.status.code(), Some(0), "{check} {}", stderr(&verified));
        assert_eq!(check["checked"].as_u64(), Some(moved), "{check}");
        // The journal remembers where the targets went.
        let (forgot, _) = migrator(&single_url, journal.path(), &["verify"], &[]);
        assert_eq!(forgot.status.code(), Some(2), "{}", stderr(&forgot));
        assert!(stderr(&forgot).contains("--target-url"), "{}", stderr(&forgot));

        let (rolled, undone) = migrator(&single_url, journal.path(), &with_target("rollback"), &env);
        assert_eq!(rolled.status.code(), Some(0), "{undone} {}", stderr(&rolled));
        assert_eq!(undone["restored"].as_u64(), Some(moved), "{undone}");
        let diff = differences(&original, &typed_dump(&single_url), 1_000, |_| false);
        assert!(diff.is_empty(), "rollback restores the source: {diff:?}");
        let target_left = target_dump();
        assert!(
            target_left.is_empty(),
            "rollback removes the targets: {:?}",
            target_left.keys().take(5).collect::<Vec<_>>()
        );
    }
}

/// A scan that a resharding overtakes: every key sits in one slot of one master, the other
/// masters (empty) finish their scans at once, then the slot moves to one of them — its keys
/// now live where the scan has already been. They must still be seen.
fn a_key_resharded_during_a_scan_is_still_seen(fixture: &Fixture) {
    fixture.reset();
    let masters = fixture.cluster.ports_with_role("master");
    let mut client = fixture.cluster.client();
    let keys: Vec<String> = (0..300).map(|i| format!("okx:positions:{{reshard}}{i}")).collect();
    for key in &keys {
        let _: () = client.set(key, "[]").unwrap();
    }
    let slot: u16 = redis::cmd("CLUSTER").arg("KEYSLOT").arg(&keys[0]).query(&mut node(masters[0])).unwrap();
    let store = open(&fixture.cluster_url(), None).unwrap();
    let first = block_on(store.scan(0, "okx:positions:*", 10)).unwrap();
    assert_ne!(first.cursor, 0, "the scan is under way");
    assert!(first.keys.len() < keys.len(), "{} keys in the first page", first.keys.len());

    // Move the slot as `redis-cli --cluster reshard` does: importing, migrating, MIGRATE the
    // keys, then every master learns the new owner.
    SlotMove::begin(&fixture.cluster, slot).finish();

    let mut seen: std::collections::BTreeSet<String> = first.keys.into_iter().collect();
    let mut cursor = first.cursor;
    while cursor != 0 {
        let page = block_on(store.scan(cursor, "okx:positions:*", 10)).unwrap();
        seen.extend(page.keys);
        cursor = page.cursor;
    }
    let expected: std::collections::BTreeSet<String> = keys.into_iter().collect();
    assert_eq!(seen, expected, "every key of the resharded slot is seen once the scan ends");
}

/// A run killed after writing targets leaves its entries pending; a bot then updates one of
/// those sources. Rolling back must take the targets back and leave the bot's update alone —
/// not write the journaled (older) original over it.
fn rolling_back_a_crashed_run_keeps_what_a_writer_wrote_since(fixture: &Fixture) {
    fixture.reset();
    let url = fixture.cluster_url();
    let mut client = fixture.cluster.client();
    let written: Vec<_> = TAGS.iter().map(|tag| write_legacy(&mut client, tag)).collect();
    let original = typed_dump(&url);
    let journal = tempfile::tempdir().unwrap();
    let (crashed, _) = migrator(
        &url,
        journal.path(),
        &["apply", "--rules", "tradingboost", "--batch", "1000"],
        &[("MIGRATOR_CRASH_AT", "put:1")],
    );
    assert_eq!(crashed.status.code(), None, "killed after the targets were written: {}", stderr(&crashed));
    let _: () = client.del(format!("{}lock", edgesync_migrator::rules::OWN_KEYS_PREFIX)).unwrap();
    // The bot writes one of the pending sources again (TradingCache.set_position, 300 s).
    let (user, symbol, _, _) = &written[1].cached[0];
    let source = format!("position:{user}:{symbol}");
    let update = r#"{"symbol": "BTC-USDT-SWAP", "side": "long", "size": 2.5}"#;
    let _: () = client.set_ex(&source, update, 300).unwrap();

    let (rolled, undone) = migrator(&url, journal.path(), &["rollback"], &[]);
    assert_eq!(rolled.status.code(), Some(0), "{undone} {}", stderr(&rolled));
    let now: Option<String> = client.get(&source).unwrap();
    assert_eq!(now.as_deref(), Some(update), "the bot's update is kept");
    let restored = typed_dump(&url);
    let diff = differences(&original, &restored, 1_000, |key| key == source);
    assert!(diff.is_empty(), "everything else as before the run, targets taken back: {diff:?}");
    assert_eq!(restored.len(), original.len(), "no target left behind");
}

/// A cluster that speaks TLS only (clients and bus), its certificates from a private CA: the
/// URL of one node (`rediss://`) and `--tls-ca` reach every master, and every step sees all of
/// them — the plan counts what a plain cluster with the same data counts.
fn a_tls_cluster_is_worked_over_tls_on_every_node(fixture: &Fixture) {
    let (ca, certificate, key) = fixture.backend.tls_files();
    let tls_cluster = RedisCluster::start_tls(3, 0, ca, certificate, key).unwrap();
    let url = tls_cluster.urls()[1].clone();
    assert!(url.starts_with("rediss://"), "{url}");
    let ca_arg = ca.to_str().unwrap();
    let journal = tempfile::tempdir().unwrap();
    let with_ca = |args: &[&'static str]| [args, &["--tls-ca", ca_arg]].concat();
    let (generated, _) = migrator(&url, journal.path(), &with_ca(&["generate", "--keys", "1000", "--seed", "5"]), &[]);
    assert_eq!(generated.status.code(), Some(0), "{}", stderr(&generated));
    let trust = Trust::from_pem_file(ca).unwrap();
    let tls_dump = || block_on(dump(open_with(&url, None, &trust).unwrap().as_ref())).unwrap();
    let original = tls_dump();

    let (untrusted, _) = migrator(&url, journal.path(), &["plan", "--rules", "tradingboost"], &[]);
    assert_eq!(untrusted.status.code(), Some(3), "without the CA: {}", stderr(&untrusted));

    let (_, plan) = migrator(&url, journal.path(), &with_ca(&["plan", "--rules", "tradingboost"]), &[]);
    generated_on_plain(fixture, 5);
    let (_, plain_plan) = migrator(&fixture.cluster_url(), journal.path(), &["plan", "--rules", "tradingboost"], &[]);
    assert_eq!(plan_counts(&plan), plan_counts(&plain_plan), "every TLS master scanned");

    let (applied, report) = migrator(&url, journal.path(), &with_ca(&["apply", "--rules", "tradingboost"]), &[]);
    assert!(applied.status.code().is_some_and(|c| c <= 1), "{report} {}", stderr(&applied));
    assert_eq!(report["migrated"], plan["total"]["migrate"], "{report}");
    let (verified, check) = migrator(&url, journal.path(), &with_ca(&["verify"]), &[]);
    assert_eq!(verified.status.code(), Some(0), "{check} {}", stderr(&verified));
    let (rolled, undone) = migrator(&url, journal.path(), &with_ca(&["rollback"]), &[]);
    assert_eq!(rolled.status.code(), Some(0), "{undone} {}", stderr(&rolled));
    let diff = differences(&original, &tls_dump(), 1_000, |_| false);
    assert!(diff.is_empty(), "rollback over TLS restores every master: {diff:?}");
}

/// `migrator generate` on the plain cluster (emptied first).
fn generated_on_plain(fixture: &Fixture, seed: u64) {
    fixture.reset();
    let journal = tempfile::tempdir().unwrap();
    let seed = seed.to_string();
    let (generated, _) =
        migrator(&fixture.cluster_url(), journal.path(), &["generate", "--keys", "1000", "--seed", &seed], &[]);
    assert_eq!(generated.status.code(), Some(0), "{}", stderr(&generated));
}
