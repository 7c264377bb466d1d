//! `make bench`: HTTP latency and throughput of the worker in workerd, as ratios to a
//! hello-world worker and to what a user would write instead — a JS worker with the official
//! `@upstash/redis` SDK reading the same key through the same gateway — all measured in the
//! same run, interleaved (every case once per round, two rounds, averaged), so the numbers
//! mean something on any machine. Load comes from `wrk` on 127.0.0.1; Redis is a local
//! redis-server behind the Upstash-REST gateway.
//!
//! Cases: the price read in the **steady state** (`price:…:cached` expired, as it is 150 of
//! every 180 s between crons; default tiers), right after a cron (`cached` fresh), with the
//! memory tier off (`MEMORY_TIER_TTL=0`), `/health`, and the gateway alone (`POST /` with
//! the `GET` of the price key, as the worker sends it).
//!
//! Environment: `BENCH_SECONDS` (default 10), `BENCH_CONNECTIONS` (default 8),
//! `BENCH_BASELINE_GATEWAY` (another `edgesync-gateway` binary, e.g. the previous commit's:
//! measured in the same rounds in front of the same Redis, and the throughput ratio printed).

use std::process::Command;

use edgesync_e2e::binaries;
use edgesync_e2e::harness::{repo_root, start_wrangler_dev, Stack, StackOptions, REDIS_TOKEN};
use edgesync_e2e::process::{free_port, wait_until, Service};

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
    wrk_with(url, "")
}

/// `POST /` of `command` to a gateway, with the harness's token.
fn wrk_gateway(url: &str, command: &str) -> Measured {
    let request = format!(
        "wrk.method = \"POST\"\nwrk.body = '{command}'\nwrk.headers[\"Authorization\"] = \"Bearer {REDIS_TOKEN}\"\nwrk.headers[\"Content-Type\"] = \"application/json\"\n"
    );
    wrk_with(&format!("{url}/"), &request)
}

/// `wrk` against `url`, `request` (Lua) setting the method, body and headers.
fn wrk_with(url: &str, request: &str) -> Measured {
    let seconds = std::env::var("BENCH_SECONDS").unwrap_or_else(|_| "10".into());
    let connections = std::env::var("BENCH_CONNECTIONS").unwrap_or_else(|_| "8".into());
    // Prints the first few non-2xx answers, so a failing case says what it answered.
    let script = std::env::temp_dir().join("edgesync-bench-errors.lua");
    std::fs::write(
        &script,
        format!("{request}local shown = 0\nresponse = function(status, headers, body)\n  if status >= 300 and shown < 3 then\n    shown = shown + 1\n    io.write(\"non-2xx: \", status, \" \", body, \"\\n\")\n  end\nend\n"),
    )
    .expect("write the wrk script");
    let output = Command::new("wrk")
        .args(["-t2", "-c", &connections, "-d", &format!("{seconds}s"), "--latency", "-s"])
        .arg(&script)
        .arg(url)
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

fn mean(samples: &[Measured]) -> Measured {
    let n = samples.len() as f64;
    Measured {
        p50_ms: samples.iter().map(|m| m.p50_ms).sum::<f64>() / n,
        p99_ms: samples.iter().map(|m| m.p99_ms).sum::<f64>() / n,
        requests_per_sec: samples.iter().map(|m| m.requests_per_sec).sum::<f64>() / n,
    }
}

const CASES: [&str; 9] = [
    "hello-world worker",
    "JS @upstash/redis peer",
    "JS peer, edgesync's pipeline",
    "price, steady state",
    "price, right after cron",
    "price, memory tier off",
    "/health",
    "gateway alone, GET",
    "gateway alone, baseline",
];

/// The `BENCH_BASELINE_GATEWAY` binary in front of `redis_url`, once it answers.
fn baseline_gateway(binary: &str, redis_url: &str, log: &std::path::Path) -> (Service, String) {
    let port = free_port();
    let mut command = Command::new(binary);
    command
        .args(["--listen", &format!("127.0.0.1:{port}"), "--redis-url", redis_url])
        .env("GATEWAY_TOKEN", REDIS_TOKEN);
    let service = Service::spawn("baseline gateway", command, log).expect("the baseline gateway starts");
    let url = format!("http://127.0.0.1:{port}");
    wait_until("the baseline gateway to answer", std::time::Duration::from_secs(20), || {
        ureq::get(&format!("{url}/?_token={REDIS_TOKEN}")).call().ok().map(|_| ())
    })
    .expect("the baseline gateway answers");
    (service, url)
}

fn main() {
    let stack = Stack::start(StackOptions {
        binaries: binaries!(),
        vars: vec![("REDIS_NAMESPACE".into(), "bench".into()), ("SYMBOLS".into(), "QRLUSDT".into())],
    })
    .unwrap_or_else(|e| panic!("the bench stack could not start: {e}"));
    stack.fire_cron("*/3 * * * *");
    let memory_off =
        stack.extra_worker(&[("REDIS_NAMESPACE", "bench"), ("MEMORY_TIER_TTL", "0")]).expect("second worker");
    let dir = tempfile::tempdir().expect("temp dir");
    let hello_config = repo_root().join("tests/bench/hello/wrangler.toml");
    let (_hello, hello_url) =
        start_wrangler_dev(Some(&hello_config), &[], &dir.path().join("hello.log")).expect("hello worker");
    let latest = "bench:v1:price:mexc:QRLUSDT:latest";
    let cached = "bench:v1:price:mexc:QRLUSDT:cached";
    let peer_vars: Vec<(String, String)> = [
        ("UPSTASH_REDIS_REST_URL", stack.backend.gateway_url.as_str()),
        ("UPSTASH_REDIS_REST_TOKEN", edgesync_e2e::harness::REDIS_TOKEN),
        ("UPSTASH_DISABLE_TELEMETRY", "1"),
        ("PRICE_KEY", latest),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let peer_config = repo_root().join("tests/bench/upstash-js/wrangler.toml");
    let (_peer, peer_url) =
        start_wrangler_dev(Some(&peer_config), &peer_vars, &dir.path().join("peer.log")).expect("JS peer worker");
    let mut pipeline_vars = peer_vars.clone();
    pipeline_vars.push(("PIPELINE".into(), "1".into()));
    pipeline_vars.push(("CACHED_KEY".into(), cached.into()));
    let (_pipeline_peer, pipeline_peer_url) =
        start_wrangler_dev(Some(&peer_config), &pipeline_vars, &dir.path().join("peer-pipeline.log"))
            .expect("JS pipeline peer worker");

    let baseline = std::env::var("BENCH_BASELINE_GATEWAY")
        .ok()
        .map(|binary| baseline_gateway(&binary, &stack.backend.redis_url, &dir.path().join("baseline-gateway.log")));
    let get_latest = format!(r#"["GET","{latest}"]"#);

    let price = format!("{}/v1/price/QRLUSDT", stack.worker_url);
    let peer =
        ureq::get(&format!("{peer_url}/")).call().expect("JS peer answers").into_body().read_to_string().unwrap();
    assert!(peer.contains("QRLUSDT"), "the JS peer reads the same key: {peer}");
    let expire_cached = || {
        let _: () = redis::cmd("DEL").arg(cached).query(&mut stack.backend.redis()).expect("DEL cached");
    };

    let mut samples: Vec<Vec<Measured>> = CASES.iter().map(|_| Vec::new()).collect();
    for _round in 0..2 {
        samples[0].push(wrk(&format!("{hello_url}/")));
        samples[1].push(wrk(&format!("{peer_url}/")));
        expire_cached();
        samples[2].push(wrk(&format!("{pipeline_peer_url}/")));
        assert_eq!(ureq::get(&price).call().expect("steady read").status(), 200);
        samples[3].push(wrk(&price));
        stack.fire_cron("*/3 * * * *"); // `cached` fresh for 30 s
        samples[4].push(wrk(&price));
        expire_cached();
        samples[5].push(wrk(&format!("{}/v1/price/QRLUSDT", memory_off.url)));
        samples[6].push(wrk(&format!("{}/health", stack.worker_url)));
        samples[7].push(wrk_gateway(&stack.backend.gateway_url, &get_latest));
        if let Some((_, url)) = &baseline {
            samples[8].push(wrk_gateway(url, &get_latest));
        }
    }
    let cases = if baseline.is_some() { CASES.len() } else { CASES.len() - 1 };
    let measured: Vec<Measured> = samples[..cases].iter().map(|s| mean(s)).collect();
    let (hello, js) = (&measured[0], &measured[1]);
    println!(
        "\n{:<26} {:>8} {:>8} {:>8}   {:>7} {:>7} {:>7}   {:>7} {:>7} {:>7}",
        "case", "p50 ms", "p99 ms", "req/s", "p50/h", "p99/h", "rps/h", "p50/js", "p99/js", "rps/js"
    );
    for (name, m) in CASES.iter().zip(&measured) {
        println!(
            "{:<26} {:>8.2} {:>8.2} {:>8.0}   {:>7.2} {:>7.2} {:>7.2}   {:>7.2} {:>7.2} {:>7.2}",
            name,
            m.p50_ms,
            m.p99_ms,
            m.requests_per_sec,
            m.p50_ms / hello.p50_ms,
            m.p99_ms / hello.p99_ms,
            m.requests_per_sec / hello.requests_per_sec,
            m.p50_ms / js.p50_ms,
            m.p99_ms / js.p99_ms,
            m.requests_per_sec / js.requests_per_sec,
        );
    }
    if baseline.is_some() {
        println!(
            "\ngateway alone, this build / baseline: req/s {:.3}, p50 {:.3}, p99 {:.3}",
            measured[7].requests_per_sec / measured[8].requests_per_sec,
            measured[7].p50_ms / measured[8].p50_ms,
            measured[7].p99_ms / measured[8].p99_ms,
        );
    }
    println!("\ngoals: steady p50 <= 1.3x hello; memory tier off p50 <= 0.9x JS peer; /health p50 <= 1.5x hello");
}
