//! `make bench-migrator`: keys/s of `migrator apply` on 1 M generated legacy keys against a
//! local redis-server, printed as ratios to `redis-benchmark -P 64` SET on the same server
//! (the practical ceiling of writes) and to a naive one-key-at-a-time SCAN + GET + SET + DEL
//! loop; plus the migrator's peak RSS at 100 k and at 1 M keys (memory must stay flat).
//!
//! Environment: `BENCH_KEYS` (default 1000000), `BENCH_NAIVE_KEYS` (default 100000).

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Instant;

use edgesync_e2e::binaries;
use edgesync_e2e::harness::RedisBackend;
use edgesync_migrator::connect::open;
use edgesync_migrator::generate::generate;
use futures_executor::block_on;
use redis::Commands;

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

/// Runs `migrator apply` on `url`; returns (seconds, migrated keys, peak RSS in KiB).
// The child is reaped with `wait4`, which also yields its peak RSS; clippy cannot see that.
#[allow(clippy::zombie_processes)]
fn run_apply(url: &str) -> (f64, u64, i64) {
    let journal = tempfile::tempdir().expect("temp dir");
    let started = Instant::now();
    let child = Command::new(migrator_binary())
        .args(["apply", "--no-progress", "--json", "--batch", "1000", "--url", url, "--journal"])
        .arg(journal.path())
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
    let report: serde_json::Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("report ({e}): {text}"));
    (seconds, report["migrated"].as_u64().unwrap_or(0), usage.ru_maxrss)
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

fn main() {
    let keys = env_number("BENCH_KEYS", 1_000_000);
    let naive_keys = env_number("BENCH_NAIVE_KEYS", 100_000);
    let backend = RedisBackend::start(&binaries!()).unwrap_or_else(|e| panic!("redis could not start: {e}"));
    let port: u16 = backend.redis_url.rsplit(':').next().and_then(|p| p.parse().ok()).expect("port");

    let ceiling = redis_benchmark_sets_per_second(port);
    let naive = naive_keys_per_second(&format!("{}/3", backend.redis_url), naive_keys);

    let small_url = format!("{}/1", backend.redis_url);
    block_on(generate(open(&small_url, None).unwrap().as_ref(), 100_000, 1, "qrl:v1:")).unwrap();
    let (_, _, small_rss) = run_apply(&small_url);

    let big_url = format!("{}/2", backend.redis_url);
    let started = Instant::now();
    let truth = block_on(generate(open(&big_url, None).unwrap().as_ref(), keys, 2, "qrl:v1:")).unwrap();
    println!("generated {} legacy keys in {:.1} s", truth.keys, started.elapsed().as_secs_f64());
    let (seconds, migrated, big_rss) = run_apply(&big_url);
    let rate = migrated as f64 / seconds;

    println!("\nmigrator apply: {migrated} keys moved in {seconds:.1} s = {rate:.0} keys/s");
    println!("  vs redis-benchmark -P 64 SET ({ceiling:.0}/s): {:.3}x", rate / ceiling);
    println!("  vs naive SCAN+GET+SET+DEL loop ({naive:.0} keys/s): {:.2}x", rate / naive);
    println!(
        "  peak RSS: {small_rss} KiB at 100k keys, {big_rss} KiB at {keys} keys ({:.2}x)",
        big_rss as f64 / small_rss as f64
    );
    let _: () = redis::Client::open(big_url).unwrap().get_connection().unwrap().set("bench:done", 1).unwrap();
}
