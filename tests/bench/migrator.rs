//! `make bench-migrator`: the migrator's four steps on generated legacy keys against a local
//! redis-server, all in one run so the ratios compare like with like:
//!
//! - `apply` keys/s (keys moved) on 1 M generated keys, as ratios to `redis-benchmark -P 64`
//!   SET on the same server (the practical ceiling of writes) and to a naive
//!   one-key-at-a-time SCAN + GET + SET + DEL loop;
//! - `plan` (keys scanned and classified), `verify` (entries checked) and `rollback` (entries
//!   restored) keys/s on the same keys;
//! - each step's peak RSS at 100 k and at 1 M keys (memory must stay flat), and the CPU time
//!   Redis and the migrator spent on it (Redis's share of the wall time shows whether it is
//!   the bound);
//! - on GRID-style position arrays (`{exchange}:positions:{user}`, OKX position lists as
//!   TradingBoost's GRID writes them), `apply --rules tradingboost` against the tool that
//!   codebase ships for the same move: `scripts/migrate_grid_positions.py` at 42d81ac, run
//!   with its pinned `redis` from PyPI (`--force`) on a copy of the same data. The script is
//!   read from a checkout of the public repository at run time, never vendored:
//!   `TRADINGBOOST_REPO` (a clone or a bare mirror; default: the library's mirror when present,
//!   else a fresh clone of github.com/seungdori/TradingBoost-Strategy).
//!
//! - the same generated keys on a Redis Cluster of 3 masters on this machine: every step's
//!   keys/s and peak RSS (100 k against 1 M), the ratio to the single-node apply, each master's
//!   busy share, and the migrator's CPU per key — what a core per master would allow.
//!
//! Environment: `BENCH_KEYS` (default 1000000), `BENCH_NAIVE_KEYS` (default 100000),
//! `BENCH_GRID_USERS` (default 20000), `BENCH_CLUSTER` (0 skips the cluster run).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use edgesync_e2e::binaries;
use edgesync_e2e::cluster::RedisCluster;
use edgesync_e2e::harness::RedisBackend;
use edgesync_e2e::okx::okx_position;
use edgesync_migrator::connect::open;
use edgesync_migrator::generate::generate;
use futures_executor::block_on;
use redis::Commands;
use serde_json::{json, Value};

/// TradingBoost's commit the seed issues name; its GRID migration script.
const TRADINGBOOST_COMMIT: &str = "42d81ac";
const TRADINGBOOST_SCRIPT: &str = "scripts/migrate_grid_positions.py";
const TRADINGBOOST_URL: &str = "https://github.com/seungdori/TradingBoost-Strategy";
const TRADINGBOOST_MIRROR: &str = "/work/.mirror/seungdori+TradingBoost-Strategy/repo";
/// The redis-py TradingBoost pins (requirements.txt at 42d81ac).
const REDIS_PY: &str = "redis==5.0.1";

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// The release `migrator` next to this bench binary (built by `make bench-migrator`).
fn migrator_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("bench binary path");
    let path = exe.parent().and_then(|d| d.parent()).expect("target dir").join("migrator");
    assert!(
        path.exists(),
        "{} is missing: `make bench-migrator` builds it (cargo build --release -p edgesync-migrator)",
        path.display()
    );
    path
}

/// One step's run: wall seconds, its JSON report, peak RSS in KiB, and the CPU seconds the
/// migrator (all its threads) and each Redis (one, or every master of a cluster) spent on it —
/// which says what bounds the step.
struct Run {
    seconds: f64,
    report: Value,
    rss_kib: i64,
    migrator_cpu: f64,
    redis_cpu: f64,
    /// Per Redis server, in the order given.
    redis_cpus: Vec<f64>,
}

/// Redis's own CPU seconds so far (`INFO cpu`: user + system of the server process).
fn redis_cpu_seconds(url: &str) -> f64 {
    let mut connection = redis::Client::open(url).unwrap().get_connection().unwrap();
    let info: String = redis::cmd("INFO").arg("cpu").query(&mut connection).expect("INFO cpu");
    info.lines()
        .filter_map(|line| line.strip_prefix("used_cpu_user:").or_else(|| line.strip_prefix("used_cpu_sys:")))
        .map(|value| value.trim().parse::<f64>().expect("a number of seconds"))
        .sum()
}

fn timeval_seconds(time: libc::timeval) -> f64 {
    time.tv_sec as f64 + time.tv_usec as f64 / 1e6
}

/// Runs `migrator <step> --json …` and measures it.
// The child is reaped with `wait4`, which also yields its peak RSS; clippy cannot see that.
#[allow(clippy::zombie_processes)]
fn run_step(step: &str, url: &str, journal: &Path, extra: &[&str], servers: &[String]) -> Run {
    let redis_before: Vec<f64> = servers.iter().map(|server| redis_cpu_seconds(server)).collect();
    let started = Instant::now();
    let child = Command::new(migrator_binary())
        .args([step, "--json", "--batch", "1000", "--url", url, "--journal"])
        .arg(journal)
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("migrator starts");
    let pid = child.id() as libc::pid_t;
    let mut output = child.stdout.expect("piped stdout");
    let mut status = 0;
    // SAFETY: a zeroed rusage is a valid out-parameter for wait4.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let mut text = String::new();
    std::io::Read::read_to_string(&mut output, &mut text).expect("report");
    // SAFETY: waits for our own child and fills `usage` with its resource use.
    unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let seconds = started.elapsed().as_secs_f64();
    let redis_cpus: Vec<f64> =
        servers.iter().zip(redis_before).map(|(server, before)| redis_cpu_seconds(server) - before).collect();
    let redis_cpu = redis_cpus.iter().sum();
    let report: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{step} report ({e}): {text}"));
    let migrator_cpu = timeval_seconds(usage.ru_utime) + timeval_seconds(usage.ru_stime);
    Run { seconds, report, rss_kib: usage.ru_maxrss, migrator_cpu, redis_cpu, redis_cpus }
}

fn count(report: &Value, pointer: &str) -> u64 {
    report.pointer(pointer).and_then(Value::as_u64).unwrap_or_else(|| panic!("no {pointer} in {report}"))
}

/// The four steps on one database: (plan, apply, verify, rollback), each with the count its
/// keys/s is of. Verify must come back clean and rollback must restore every move.
fn all_steps(url: &str, rules: &[&str], servers: &[String]) -> [(Run, u64); 4] {
    let journal = tempfile::tempdir().expect("temp dir");
    let plan = run_step("plan", url, journal.path(), rules, servers);
    let classes = ["migrate", "already_migrated", "conflict", "unparseable", "wrong_type", "too_large"];
    let planned = classes.iter().map(|class| count(&plan.report, &format!("/total/{class}"))).sum();
    let apply = run_step("apply", url, journal.path(), &[rules, &["--no-progress"]].concat(), servers);
    let moved = count(&apply.report, "/migrated");
    let verify = run_step("verify", url, journal.path(), rules, servers);
    let checked = count(&verify.report, "/checked");
    assert_eq!(count(&verify.report, "/value_mismatch/count"), 0, "verify: {}", verify.report);
    let rollback = run_step("rollback", url, journal.path(), rules, servers);
    let restored = count(&rollback.report, "/restored");
    assert_eq!(restored, checked, "rollback restores every move: {}", rollback.report);
    [(plan, planned), (apply, moved), (verify, checked), (rollback, restored)]
}

fn redis_benchmark_sets_per_second(port: u16) -> f64 {
    let output = Command::new("redis-benchmark")
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-t", "set", "-n", "1000000", "-P", "64", "-q", "--csv"])
        .output()
        .unwrap_or_else(|e| panic!("redis-benchmark is missing ({e}): apt-get install redis-tools"));
    let text = String::from_utf8_lossy(&output.stdout);
    text.lines()
        .find(|l| l.starts_with("\"SET\""))
        .and_then(|l| l.split(',').nth(1))
        .and_then(|v| v.trim_matches('"').parse().ok())
        .unwrap_or_else(|| panic!("no SET rate in redis-benchmark output:\n{text}"))
}

/// The naive baseline: one key at a time, SCAN + GET + SET + DEL, over `count` string keys.
fn naive_keys_per_second(url: &str, count: u64) -> f64 {
    let mut connection = redis::Client::open(url).unwrap().get_connection().unwrap();
    let mut pipe = redis::pipe();
    for i in 0..count {
        pipe.set(format!("bot:NAIVE{i}:price:latest"), format!("{{\"price\":\"0.{i}\"}}")).ignore();
        if i % 10_000 == 9_999 {
            pipe.query::<()>(&mut connection).unwrap();
            pipe = redis::pipe();
        }
    }
    if !count.is_multiple_of(10_000) {
        pipe.query::<()>(&mut connection).unwrap();
    }
    let started = Instant::now();
    let mut moved = 0u64;
    let mut cursor = 0u64;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg("bot:NAIVE*:price:latest")
            .arg("COUNT")
            .arg(1000)
            .query(&mut connection)
            .unwrap();
        for key in keys {
            let value: Option<String> = connection.get(&key).unwrap();
            if let Some(value) = value {
                let symbol = key.split(':').nth(1).unwrap_or_default().to_owned();
                let _: () = connection.set(format!("qrl:v1:price:mexc:{symbol}:latest"), value).unwrap();
                let _: () = connection.del(&key).unwrap();
                moved += 1;
            }
        }
        if next == 0 {
            break;
        }
        cursor = next;
    }
    moved as f64 / started.elapsed().as_secs_f64()
}

/// `users` GRID position arrays (`okx:positions:{user}`, three open positions each) in `url`.
fn write_grid_arrays(url: &str, users: u64) {
    let mut connection = redis::Client::open(url).unwrap().get_connection().unwrap();
    let mut pipe = redis::pipe();
    for user in 0..users {
        let positions = json!([
            okx_position("DOGE-USDT-SWAP", "long", &format!("{}", 10 + user % 7), "1.5"),
            okx_position("XRP-USDT-SWAP", "short", "4", "2.4"),
            okx_position("ADA-USDT-SWAP", "long", "3", "0.9"),
        ]);
        pipe.set(format!("okx:positions:{user}"), positions.to_string()).ignore();
        if user % 5_000 == 4_999 || user + 1 == users {
            pipe.query::<()>(&mut connection).unwrap();
            pipe = redis::pipe();
        }
    }
}

/// A directory holding TradingBoost's script at the named commit and the small
/// `shared/database/redis.py` it imports (`get_redis`, over redis-py's asyncio client with
/// one pool, as TradingBoost's own is) — written here, at run time.
fn tradingboost_script(work: &Path) -> PathBuf {
    let repo = std::env::var("TRADINGBOOST_REPO").unwrap_or_else(|_| {
        if Path::new(TRADINGBOOST_MIRROR).exists() {
            TRADINGBOOST_MIRROR.to_owned()
        } else {
            TRADINGBOOST_URL.to_owned()
        }
    });
    let git_dir = if Path::new(&repo).exists() {
        PathBuf::from(&repo)
    } else {
        let clone = work.join("tradingboost.git");
        let status = Command::new("git").args(["clone", "--bare", "--quiet", &repo]).arg(&clone).status();
        assert!(
            status.is_ok_and(|s| s.success()),
            "cannot clone {repo}: set TRADINGBOOST_REPO to a checkout of seungdori/TradingBoost-Strategy"
        );
        clone
    };
    let source = Command::new("git")
        .arg("--git-dir")
        .arg(if git_dir.join(".git").exists() { git_dir.join(".git") } else { git_dir.clone() })
        .args(["show", &format!("{TRADINGBOOST_COMMIT}:{TRADINGBOOST_SCRIPT}")])
        .output()
        .expect("git runs");
    assert!(source.status.success(), "{TRADINGBOOST_SCRIPT} at {TRADINGBOOST_COMMIT} is not in {}", git_dir.display());
    let root = work.join("tradingboost");
    std::fs::create_dir_all(root.join("scripts")).unwrap();
    std::fs::create_dir_all(root.join("shared/database")).unwrap();
    std::fs::write(root.join(TRADINGBOOST_SCRIPT), source.stdout).unwrap();
    std::fs::write(root.join("shared/__init__.py"), "").unwrap();
    std::fs::write(root.join("shared/database/__init__.py"), "").unwrap();
    std::fs::write(
        root.join("shared/database/redis.py"),
        "import os\nfrom redis.asyncio import ConnectionPool, Redis\n_pool = None\n\n\
         async def get_redis():\n    global _pool\n    if _pool is None:\n        \
         _pool = ConnectionPool.from_url(os.environ['BENCH_REDIS_URL'], decode_responses=True)\n    \
         return Redis(connection_pool=_pool)\n",
    )
    .unwrap();
    root
}

/// A virtualenv with TradingBoost's redis-py from PyPI; its python.
fn python_with_redis(work: &Path) -> PathBuf {
    let venv = work.join("venv");
    let made = Command::new("python3").args(["-m", "venv"]).arg(&venv).status();
    assert!(made.is_ok_and(|s| s.success()), "python3 with venv is needed (apt-get install python3-venv)");
    let python = venv.join("bin/python");
    let installed = Command::new(&python)
        .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check", REDIS_PY])
        .status();
    assert!(installed.is_ok_and(|s| s.success()), "pip could not install {REDIS_PY} from PyPI");
    python
}

/// TradingBoost's script on `url`: (seconds, keys it moved).
fn run_tradingboost(python: &Path, root: &Path, url: &str) -> (f64, u64) {
    let started = Instant::now();
    let output = Command::new(python)
        .arg(root.join(TRADINGBOOST_SCRIPT))
        .arg("--force")
        .current_dir(root)
        .env("PYTHONPATH", root)
        .env("BENCH_REDIS_URL", url)
        .stdout(Stdio::null())
        .output()
        .expect("python runs");
    let seconds = started.elapsed().as_secs_f64();
    assert!(output.status.success(), "the script failed: {}", String::from_utf8_lossy(&output.stderr));
    let mut connection = redis::Client::open(url).unwrap().get_connection().unwrap();
    let indexes: Vec<String> =
        connection.scan_match::<_, String>("positions:index:*").unwrap().collect::<Result<_, _>>().unwrap();
    (seconds, indexes.len() as u64)
}

fn print_steps(label: &str, steps: &[(Run, u64); 4], small: &[(Run, u64); 4]) {
    println!("\n{label}");
    for ((name, (run, n)), (small_run, _)) in ["plan", "apply", "verify", "rollback"].iter().zip(steps).zip(small) {
        println!(
            "  {name:<9} {n:>8} keys in {:>6.1} s = {:>8.0} keys/s   peak RSS {:>7} KiB ({:.2}x the 100 k run's {} KiB)",
            run.seconds,
            *n as f64 / run.seconds,
            run.rss_kib,
            run.rss_kib as f64 / small_run.rss_kib as f64,
            small_run.rss_kib
        );
    }
    println!("  CPU per step (Redis is one thread: near 100 % busy, it bounds the step):");
    for (name, (run, n)) in ["plan", "apply", "verify", "rollback"].iter().zip(steps) {
        println!(
            "  {name:<9} Redis {:>6.1} s ({:>3.0} % busy, {:>5.1} µs per key)   migrator {:>6.1} s ({:>5.1} µs per key)",
            run.redis_cpu,
            100.0 * run.redis_cpu / run.seconds,
            1e6 * run.redis_cpu / *n as f64,
            run.migrator_cpu,
            1e6 * run.migrator_cpu / *n as f64
        );
    }
}

fn main() {
    let keys = env_number("BENCH_KEYS", 1_000_000);
    let naive_keys = env_number("BENCH_NAIVE_KEYS", 100_000);
    let grid_users = env_number("BENCH_GRID_USERS", 20_000);
    let backend = RedisBackend::start(&binaries!()).unwrap_or_else(|e| panic!("redis could not start: {e}"));
    let port: u16 = backend.redis_url.rsplit(':').next().and_then(|p| p.parse().ok()).expect("port");
    let db = |n: u8| format!("{}/{n}", backend.redis_url);

    let ceiling = redis_benchmark_sets_per_second(port);
    let naive = naive_keys_per_second(&db(3), naive_keys);

    let single = [backend.redis_url.clone()];
    block_on(generate(open(&db(1), None).unwrap().as_ref(), 100_000, 1, "qrl:v1:")).unwrap();
    let small = all_steps(&db(1), &[], &single);

    let started = Instant::now();
    let truth = block_on(generate(open(&db(2), None).unwrap().as_ref(), keys, 2, "qrl:v1:")).unwrap();
    println!("generated {} legacy keys in {:.1} s", truth.keys, started.elapsed().as_secs_f64());
    let big = all_steps(&db(2), &[], &single);

    let (apply, moved) = &big[1];
    let rate = *moved as f64 / apply.seconds;
    println!("\nmigrator apply: {moved} keys moved in {:.1} s = {rate:.0} keys/s", apply.seconds);
    println!("  vs redis-benchmark -P 64 SET ({ceiling:.0}/s): {:.3}x", rate / ceiling);
    println!("  vs naive SCAN+GET+SET+DEL loop ({naive:.0} keys/s): {:.2}x", rate / naive);
    print_steps(
        &format!("every step on {} generated keys (RSS against the same step on 100 k)", truth.keys),
        &big,
        &small,
    );

    // GRID arrays: the same data twice, one copy each.
    let work = tempfile::tempdir().expect("temp dir");
    let root = tradingboost_script(work.path());
    let python = python_with_redis(work.path());
    write_grid_arrays(&db(4), grid_users);
    write_grid_arrays(&db(5), grid_users);
    let journal = tempfile::tempdir().expect("temp dir");
    let ours = run_step("apply", &db(4), journal.path(), &["--rules", "tradingboost", "--no-progress"], &single);
    let ours_moved = count(&ours.report, "/migrated");
    assert_eq!(ours_moved, grid_users, "apply moves every array: {}", ours.report);
    let (their_seconds, their_moved) = run_tradingboost(&python, &root, &db(5));
    assert_eq!(their_moved, grid_users, "the script moves every array");
    let (ours_rate, their_rate) = (ours_moved as f64 / ours.seconds, their_moved as f64 / their_seconds);
    println!("\nGRID position arrays ({grid_users} users, 3 positions each):");
    println!("  migrator apply --rules tradingboost: {:.1} s = {ours_rate:.0} keys/s", ours.seconds);
    println!("  TradingBoost {TRADINGBOOST_SCRIPT} @ {TRADINGBOOST_COMMIT} ({REDIS_PY}): {their_seconds:.1} s = {their_rate:.0} keys/s");
    println!("  ratio: {:.2}x", ours_rate / their_rate);
    let _: () = redis::Client::open(db(2)).unwrap().get_connection().unwrap().set("bench:done", 1).unwrap();

    if env_number("BENCH_CLUSTER", 1) == 1 {
        cluster_run(keys, &big[1]);
    }
}

/// The same generated data on a Redis Cluster of 3 masters on this machine, the migrator given
/// one node's URL: keys/s against the single-node run above, each master's busy share, the
/// migrator's CPU per key, and what a machine with a core per master would allow.
fn cluster_run(keys: u64, single_apply: &(Run, u64)) {
    const MASTERS: usize = 3;
    let cluster = RedisCluster::start(MASTERS, 0).unwrap_or_else(|e| panic!("the cluster could not start: {e}"));
    let masters: Vec<String> =
        cluster.ports_with_role("master").into_iter().map(|port| format!("redis://127.0.0.1:{port}")).collect();
    let url = masters[0].clone();
    let generate_on = |keys: u64, seed: u64| {
        cluster.flush();
        block_on(generate(open(&url, None).unwrap().as_ref(), keys, seed, "qrl:v1:")).unwrap();
    };
    generate_on(100_000, 1);
    let small = all_steps(&url, &[], &masters);
    generate_on(keys, 2);
    let big = all_steps(&url, &[], &masters);
    print_steps(
        &format!("Redis Cluster, {MASTERS} masters on this machine's {} cores, {keys} generated keys", cores()),
        &big,
        &small,
    );
    let (single_run, single_moved) = single_apply;
    let single_rate = *single_moved as f64 / single_run.seconds;
    let (apply, moved) = &big[1];
    let rate = *moved as f64 / apply.seconds;
    println!(
        "  apply on the cluster: {rate:.0} keys/s = {:.2}x the single-node run's {single_rate:.0}",
        rate / single_rate
    );
    for (name, (run, _)) in ["plan", "apply", "verify", "rollback"].iter().zip(&big) {
        let shares: Vec<String> =
            run.redis_cpus.iter().map(|cpu| format!("{:.0} %", 100.0 * cpu / run.seconds)).collect();
        println!("  {name:<9} each master busy: {}", shares.join(", "));
    }
    // With a core per master and one for the migrator: the busiest master's CPU seconds and the
    // migrator's own bound the step; the single node's Redis CPU per move is the per-node ceiling.
    let busiest = apply.redis_cpus.iter().copied().fold(0.0, f64::max);
    let per_node_ceiling = *single_moved as f64 / single_run.redis_cpu;
    let redis_bound = *moved as f64 / busiest;
    let migrator_bound = *moved as f64 / apply.migrator_cpu;
    println!(
        "  a core per master: Redis allows {redis_bound:.0} keys/s (the busiest master's {busiest:.1} s), \
         the migrator's own CPU ({:.1} µs per key) {migrator_bound:.0} keys/s; \
         {MASTERS} x the single node's ceiling ({per_node_ceiling:.0} moves per Redis CPU-second) = {:.0}",
        1e6 * apply.migrator_cpu / *moved as f64,
        MASTERS as f64 * per_node_ceiling
    );
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}
