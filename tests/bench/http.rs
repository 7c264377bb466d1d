//! `make bench`: HTTP latency and throughput of the worker in workerd, as ratios to a
//! hello-world worker measured in the same run (so the numbers mean something on any
//! machine). Load comes from `wrk` on 127.0.0.1; Redis is a local redis-server behind the
//! Upstash-REST gateway. Routes: (a) `/health`, (b) a price read served from the isolate's
//! memory tier (L1), (c) a price read served from Redis (`MEMORY_TIER_TTL=0`).
//!
//! Environment: `BENCH_SECONDS` (default 10), `BENCH_CONNECTIONS` (default 16).

use std::process::Command;

use edgesync_e2e::binaries;
use edgesync_e2e::harness::{repo_root, start_wrangler_dev, Stack, StackOptions};

struct Measured {
    p50_ms: f64,
    p99_ms: f64,
    requests_per_sec: f64,
}

/// wrk prints latencies like `1.23ms`, `850.00us`, `1.02s`.
fn millis(text: &str) -> f64 {
    let (number, factor) = if let Some(n) = text.strip_suffix("us") {
        (n, 0.001)
    } else if let Some(n) = text.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1000.0)
    } else {
        (text, 1.0)
    };
    number.parse::<f64>().unwrap_or(f64::NAN) * factor
}

fn wrk(url: &str) -> Measured {
    let seconds = std::env::var("BENCH_SECONDS").unwrap_or_else(|_| "10".into());
    let connections = std::env::var("BENCH_CONNECTIONS").unwrap_or_else(|_| "16".into());
    let output = Command::new("wrk")
        .args(["-t2", "-c", &connections, "-d", &format!("{seconds}s"), "--latency", url])
        .output()
        .unwrap_or_else(|e| panic!("wrk is missing ({e}): `make bench` installs it (apt-get install wrk)"));
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success() && !text.contains("Non-2xx"), "wrk against {url} failed or saw errors:\n{text}");
    let field = |prefix: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(prefix).map(|rest| rest.trim().to_owned()))
            .unwrap_or_else(|| panic!("no `{prefix}` in wrk output:\n{text}"))
    };
    Measured {
        p50_ms: millis(&field("50%")),
        p99_ms: millis(&field("99%")),
        requests_per_sec: field("Requests/sec:").parse().unwrap_or(f64::NAN),
    }
}

fn main() {
    let stack = Stack::start(StackOptions {
        binaries: binaries!(),
        vars: vec![("REDIS_NAMESPACE".into(), "bench".into()), ("MEMORY_TIER_TTL".into(), "3600".into())],
    })
    .unwrap_or_else(|e| panic!("the bench stack could not start: {e}"));
    stack.fire_cron("*/3 * * * *");
    let redis_worker =
        stack.extra_worker(&[("REDIS_NAMESPACE", "bench"), ("MEMORY_TIER_TTL", "0")]).expect("second worker");
    let dir = tempfile::tempdir().expect("temp dir");
    let hello_config = repo_root().join("tests/bench/hello/wrangler.toml");
    let (_hello, hello_url) =
        start_wrangler_dev(Some(&hello_config), &[], &dir.path().join("hello.log")).expect("hello worker");

    let price = "/v1/price/QRLUSDT";
    let l1 = stack.get(price);
    assert_eq!(l1.header("x-edgesync-tier"), Some("l1"), "warm-up read must come from L1: {:?}", l1.headers);
    let via_redis = ureq::get(&format!("{}{price}", redis_worker.url)).call().expect("redis-tier read");
    assert_eq!(via_redis.headers().get("x-edgesync-tier").and_then(|v| v.to_str().ok()), Some("redis"));

    let baseline = wrk(&format!("{hello_url}/"));
    let cases = [
        ("(a) /health", wrk(&format!("{}/health", stack.worker_url))),
        ("(b) price from L1", wrk(&format!("{}{price}", stack.worker_url))),
        ("(c) price from Redis", wrk(&format!("{}{price}", redis_worker.url))),
    ];
    println!(
        "\nbaseline hello-world worker: p50 {:.2} ms, p99 {:.2} ms, {:.0} req/s",
        baseline.p50_ms, baseline.p99_ms, baseline.requests_per_sec
    );
    println!(
        "{:<24} {:>9} {:>9} {:>10}   {:>8} {:>8} {:>8}",
        "route", "p50 ms", "p99 ms", "req/s", "p50 x", "p99 x", "req/s x"
    );
    for (name, m) in &cases {
        println!(
            "{:<24} {:>9.2} {:>9.2} {:>10.0}   {:>8.2} {:>8.2} {:>8.2}",
            name,
            m.p50_ms,
            m.p99_ms,
            m.requests_per_sec,
            m.p50_ms / baseline.p50_ms,
            m.p99_ms / baseline.p99_ms,
            m.requests_per_sec / baseline.requests_per_sec
        );
    }
}
