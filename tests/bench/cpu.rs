//! `make bench` (CPU part): what one cron invocation costs in CPU — the quantity Cloudflare
//! limits and bills — for 1, 5 and 20 symbols, with and without the durable copy.
//!
//! Two measurements of the same worker in workerd under `wrangler dev` (release wasm, names
//! kept), medians of `BENCH_INVOCATIONS` (default 20) invocations after 3 warm-up ones:
//! - **workerd's CPU time** per invocation (`/proc/<pid>/task/*/schedstat`, every thread,
//!   ns), unprofiled: CPU, not wall time, so other load on the machine does not stretch it.
//!   "own" subtracts an invocation of the same worker for a cron expression that runs no
//!   task; per task, the task alone on its own expression (as `CRON_TASKS` splitting runs it).
//!   Beside it, workerd's CPU per request of a hello-world worker: the same-run floor.
//! - **the isolate's CPU** from a V8 sampling profile taken through the inspector wrangler
//!   exposes (`Profiler` domain, 100 µs sampling): the self time of every sampled frame except
//!   `(idle)`, `(program)` (workerd's own work) and `(garbage collector)` (shown apart). Frames
//!   are attributed to phases by name ([`phase`]); the Durable Object's frames (`wrangler dev`
//!   runs the object in the same isolate; Cloudflare bills it to the object's own requests)
//!   are its share, apart from the cron's. A profile that caught no sample of the invocation
//!   is left out and counted. On a loaded machine the sampler is starved and the totals
//!   scatter; the phase shares over all kept profiles are what this is best for.
//!
//! Data: the MEXC stand-in serves an account of 31 balances, each symbol's 24 h ticker and
//! `FILLS` fills per symbol in the one-month window (one page), in `fixtures/mexc` shapes.
//! The measured workerd runs at nice -10 when the bench may raise it (root).
//!
//! Environment: `BENCH_INVOCATIONS` (default 20), `BENCH_TOP` (print the N hottest frames of
//! each configuration, default 0), `BENCH_SIZES=5` and `BENCH_COPY=off` to narrow the run.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use edgesync_e2e::binaries;
use edgesync_e2e::harness::{repo_root, spawn_wrangler_dev, Stack, StackOptions};
use edgesync_e2e::inspector::{CallFrame, CpuProfile, Inspector, GARBAGE_COLLECTOR, IDLE, PROGRAM};
use edgesync_e2e::process::free_port;
use serde_json::{json, Value};

const SYMBOLS: [&str; 20] = [
    "QRLUSDT", "BTCUSDT", "ETHUSDT", "MXUSDT", "SOLUSDT", "XRPUSDT", "DOGEUSDT", "ADAUSDT", "TRXUSDT", "LINKUSDT",
    "DOTUSDT", "LTCUSDT", "BCHUSDT", "AVAXUSDT", "ATOMUSDT", "XLMUSDT", "NEARUSDT", "UNIUSDT", "FILUSDT", "APTUSDT",
];
/// Fills per symbol in the window: one page of `myTrades`.
const FILLS: usize = 50;
const SIZES: [usize; 3] = [1, 5, 20];
const FULL: &str = "*/3 * * * *";
const TASK_CRONS: [(&str, &str); 3] = [("balance", "1 * * * *"), ("price", "2 * * * *"), ("cost", "3 * * * *")];
/// Listed nowhere: the invocation runs no task.
const UNMAPPED: &str = "9 9 9 9 9";
const SAMPLING_US: u32 = 100;
const WARM_UP: usize = 3;

/// The phases frames are attributed to, in the order they are printed.
const PHASES: [&str; 9] = [
    "signing",
    "parsing MEXC JSON",
    "cost computation",
    "building pipelines",
    "JSON encoding",
    "durable copy (worker)",
    "durable object",
    "JS glue and runtime",
    "other wasm",
];

/// The phase of one sample, from its stack (leaf first). The Durable Object's frames are
/// recognised anywhere on the stack; otherwise the frame nearest the leaf that names a phase
/// decides.
fn phase(stack: &[&CallFrame]) -> &'static str {
    let names: Vec<&str> = stack.iter().map(|f| f.function_name.as_str()).collect();
    if names.iter().any(|n| n.contains("durable_object") || n.contains("EdgeStore") || n.contains("durable::copy")) {
        return "durable object";
    }
    for name in &names {
        let rule = [
            ("signing", &["exchange::sign", "hmac", "sha2::", "Sha256", "hex::"][..]),
            ("durable copy (worker)", &["durable_transport", "durable::wire", "durable::client", "WireBytes"]),
            ("cost computation", &["cost_basis", "sync::cost::report", "rust_decimal::ops", "Decimal as core::ops"]),
            (
                "parsing MEXC JSON",
                &[
                    "serde_json::de",
                    "serde_json::value::de",
                    "lenient_decimal",
                    "exchange::model",
                    "read_json",
                    "from_str",
                ],
            ),
            ("JSON encoding", &["serde_json::ser", "format_escaped_str", "encode_json", "command_json", "to_string"]),
            (
                "building pipelines",
                &[
                    "store::command",
                    "sync::status",
                    "sync::raw",
                    "keys::",
                    "upstash",
                    "Command",
                    "store::tiered",
                    "iso8601",
                ],
            ),
        ]
        .into_iter()
        .find(|(_, patterns)| patterns.iter().any(|p| name.contains(p)));
        if let Some((phase, _)) = rule {
            return phase;
        }
    }
    match stack.first() {
        Some(leaf) if leaf.url.contains("wasm") || leaf.function_name.contains("::") => "other wasm",
        _ => "JS glue and runtime",
    }
}

/// One profiled invocation, in µs.
#[derive(Default, Clone)]
struct Invocation {
    isolate_us: i64,
    gc_us: i64,
    program_us: i64,
    phases: BTreeMap<&'static str, i64>,
    frames: BTreeMap<String, i64>,
    /// Inclusive time of edgesync's own functions (for `BENCH_TOP`).
    inclusive: BTreeMap<String, i64>,
}

impl Invocation {
    fn of(profile: &CpuProfile) -> Self {
        let mut invocation = Invocation::default();
        for (stack, duration) in profile.stacks() {
            let leaf = stack.first().map_or("(root)", |f| f.function_name.as_str());
            match leaf {
                IDLE => continue,
                PROGRAM => invocation.program_us += duration,
                GARBAGE_COLLECTOR => invocation.gc_us += duration,
                _ => {
                    invocation.isolate_us += duration;
                    *invocation.phases.entry(phase(&stack)).or_default() += duration;
                    let name = match stack.first() {
                        Some(frame) if frame.function_name.is_empty() || frame.function_name == "(anonymous)" => {
                            format!("(anonymous) {}", frame.url)
                        }
                        _ => leaf.to_owned(),
                    };
                    *invocation.frames.entry(name).or_default() += duration;
                    let mut seen = std::collections::BTreeSet::new();
                    for frame in &stack {
                        let name = frame.function_name.split("::h").next().unwrap_or_default();
                        if (name.contains("edgesync") || !name.contains("::")) && seen.insert(name) {
                            *invocation.inclusive.entry(name.to_owned()).or_default() += duration;
                        }
                    }
                }
            }
        }
        invocation
    }

    /// Isolate CPU without the Durable Object's share: what the cron invocation is billed.
    fn cron_us(&self) -> i64 {
        self.isolate_us - self.phases.get("durable object").copied().unwrap_or(0)
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

fn ms(us: i64) -> f64 {
    us as f64 / 1000.0
}

/// Runs the measured workerd ahead of other work on the machine (a build, another test), so
/// its samples are not stretched by waiting for a core: root only; otherwise it says so.
fn raise(set: impl Fn(i32) -> Result<(), String>) {
    if let Err(error) = set(-10) {
        eprintln!("note: the measured worker runs at normal priority ({error}); other load on the machine inflates the samples");
    }
}

fn invocations() -> usize {
    std::env::var("BENCH_INVOCATIONS").ok().and_then(|v| v.parse().ok()).unwrap_or(20).max(1)
}

fn fire(http: &ureq::Agent, url: &str, cron: &str) {
    let url = format!("{url}/cdn-cgi/handler/scheduled?cron={}", cron.replace(' ', "+"));
    let mut answer = http.get(&url).call().unwrap_or_else(|e| panic!("firing {cron}: {e}"));
    assert_eq!(answer.status(), 200, "firing {cron}: {}", answer.body_mut().read_to_string().unwrap_or_default());
}

/// The bench's exchange data: balances for every symbol's base asset and some others, and
/// `FILLS` buys and sells per symbol over the last day.
fn serve_bench_data(stack: &Stack) {
    let mut balances: Vec<Value> = SYMBOLS
        .iter()
        .enumerate()
        .map(|(i, s)| json!({ "asset": s.trim_end_matches("USDT"), "free": format!("{}.{:08}", 100 + i, 12345678), "locked": "0" }))
        .collect();
    for (i, asset) in
        ["USDT", "USDC", "BNB", "PEPE", "SHIB", "TON", "ARB", "OP", "SUI", "WLD", "ENA"].iter().enumerate()
    {
        balances.push(json!({ "asset": asset, "free": format!("{}.5", 1000 * (i + 1)), "locked": "1.25" }));
    }
    let account = json!({
        "canTrade": true, "canWithdraw": true, "canDeposit": true, "updateTime": null,
        "accountType": "SPOT", "balances": balances, "permissions": ["SPOT"],
    });
    stack.set_exchange_response("/api/v3/account", None, &account);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    let fills: Vec<Value> = (0..FILLS)
        .map(|i| {
            let buy = i % 3 != 2;
            json!({
                "symbol": "QRLUSDT", "id": format!("{:032x}", 0xfad2af9e942049b6u64 as u128 * (i as u128 + 1)),
                "orderId": format!("{:032x}", 0xbb41e566u64 as u128 * (i as u128 + 7)), "orderListId": -1,
                "price": format!("0.0{}12345", 1 + i % 9), "qty": format!("{}.00000000", 100 + i),
                "quoteQty": format!("{}.123456", 1 + i), "commission": "0.01000000",
                "commissionAsset": if buy { "QRL" } else { "USDT" }, "time": now - 86_400_000 + i as i64 * 60_000,
                "isBuyer": buy, "isMaker": i % 2 == 0, "isBestMatch": true, "isSelfTrade": false, "clientOrderId": null,
            })
        })
        .collect();
    stack.set_exchange_response("/api/v3/myTrades", None, &Value::Array(fills));
}

struct Row {
    label: String,
    cron: Invocation,
    cron_median_us: f64,
    cron_p90_us: f64,
    cron_min_us: f64,
    isolate_median_us: f64,
    durable_object_median_us: f64,
    tasks: Vec<(&'static str, f64)>,
    /// An invocation for a cron expression `CRON_TASKS` does not list: the scheduled
    /// handler, the runtime set-up and one log line, no task.
    floor_us: f64,
    process_ms: f64,
    /// workerd's CPU for an invocation that runs no task (the same-run floor of the path).
    empty_process_ms: f64,
    /// workerd's CPU per invocation of each task alone.
    task_process_ms: [(&'static str, f64); 3],
    /// Profiles that caught no sample of the invocation, left out.
    lost: usize,
}

fn mean_invocation(all: &[Invocation]) -> Invocation {
    let n = all.len().max(1) as i64;
    let mut mean = Invocation::default();
    for inv in all {
        mean.isolate_us += inv.isolate_us;
        mean.gc_us += inv.gc_us;
        mean.program_us += inv.program_us;
        for (phase, us) in &inv.phases {
            *mean.phases.entry(phase).or_default() += us;
        }
        for (frame, us) in &inv.frames {
            *mean.frames.entry(frame.clone()).or_default() += us;
        }
        for (frame, us) in &inv.inclusive {
            *mean.inclusive.entry(frame.clone()).or_default() += us;
        }
    }
    mean.isolate_us /= n;
    mean.gc_us /= n;
    mean.program_us /= n;
    mean.phases.values_mut().for_each(|us| *us /= n);
    mean.frames.values_mut().for_each(|us| *us /= n);
    mean.inclusive.values_mut().for_each(|us| *us /= n);
    mean
}

fn measure(stack: &Stack, http: &ureq::Agent, symbols: usize, copy: bool) -> Row {
    let label =
        format!("{symbols} symbol{}, copy {}", if symbols == 1 { "" } else { "s" }, if copy { "on" } else { "off" });
    let namespace = format!("cpu{symbols}{}", if copy { "d" } else { "n" });
    let cron_tasks = format!("{FULL}=balance,price,cost;{}", TASK_CRONS.map(|(t, c)| format!("{c}={t}")).join(";"));
    let symbol_list = SYMBOLS[..symbols].join(",");
    let worker = stack
        .extra_worker(&[
            ("REDIS_NAMESPACE", &namespace),
            ("SYMBOLS", &symbol_list),
            ("CRON_TASKS", &cron_tasks),
            ("DURABLE_COPY", if copy { "on" } else { "off" }),
        ])
        .unwrap_or_else(|e| panic!("{label}: the worker could not start: {e}"));
    raise(|nice| worker.set_priority(nice));
    let n = invocations();
    for _ in 0..WARM_UP {
        fire(http, &worker.url, FULL);
    }
    for (_, cron) in TASK_CRONS {
        fire(http, &worker.url, cron);
    }
    // workerd's CPU time (every thread, ns) per unprofiled invocation: CPU, not wall time,
    // so other load on the machine does not stretch it.
    let process_of = |cron: &str| -> f64 {
        median(
            (0..n)
                .map(|_| {
                    let before = worker.workerd_cpu_ns();
                    fire(http, &worker.url, cron);
                    (worker.workerd_cpu_ns() - before) as f64 / 1e6
                })
                .collect(),
        )
    };
    let process_ms = process_of(FULL);
    let empty_process_ms = process_of(UNMAPPED);
    let task_process_ms = TASK_CRONS.map(|(task, cron)| (task, process_of(cron)));

    let mut inspector = Inspector::connect(worker.inspector_port).expect("the worker's inspector");
    inspector.enable_profiler(SAMPLING_US).expect("Profiler.enable");
    let lost = std::cell::Cell::new(0);
    // A profile without a single sample of the isolate lost the invocation (the sampler
    // missed it): it is left out, and counted, rather than read as a free invocation.
    let mut profiled = |cron: &str| -> Vec<Invocation> {
        let mut kept = Vec::new();
        for _ in 0..n * 2 {
            let ((), profile) = inspector.profile(|| fire(http, &worker.url, cron)).expect("a CPU profile");
            let invocation = Invocation::of(&profile);
            if invocation.isolate_us == 0 {
                lost.set(lost.get() + 1);
            } else {
                kept.push(invocation);
            }
            if kept.len() == n {
                break;
            }
        }
        kept
    };
    let full = profiled(FULL);
    let floor_us = median(profiled(UNMAPPED).iter().map(|i| i.isolate_us as f64).collect());
    let tasks = TASK_CRONS
        .map(|(task, cron)| (task, median(profiled(cron).iter().map(|i| i.cron_us() as f64).collect())))
        .to_vec();
    let cron_values: Vec<f64> = full.iter().map(|i| i.cron_us() as f64).collect();
    let mut sorted = cron_values.clone();
    sorted.sort_by(f64::total_cmp);
    Row {
        label,
        cron: mean_invocation(&full),
        cron_median_us: median(cron_values),
        cron_p90_us: sorted[(sorted.len() * 9 / 10).min(sorted.len() - 1)],
        cron_min_us: sorted[0],
        isolate_median_us: median(full.iter().map(|i| i.isolate_us as f64).collect()),
        durable_object_median_us: median(
            full.iter().map(|i| i.phases.get("durable object").copied().unwrap_or(0) as f64).collect(),
        ),
        tasks,
        floor_us,
        process_ms,
        empty_process_ms,
        task_process_ms,
        lost: lost.get(),
    }
}

/// The hello-world worker's isolate CPU (profiled) and workerd process CPU per request.
fn hello_floor(http: &ureq::Agent, dir: &std::path::Path) -> (f64, f64) {
    let config = repo_root().join("tests/bench/hello/wrangler.toml");
    let (hello, url, inspector_port) =
        spawn_wrangler_dev(Some(&config), &[], &dir.join("hello.log"), None, free_port()).expect("hello worker");
    raise(|nice| hello.set_priority(nice));
    let get = || {
        let answer = http.get(&format!("{url}/")).call().expect("hello answers");
        assert_eq!(answer.status(), 200);
    };
    (0..WARM_UP * 10).for_each(|_| get());
    let requests = invocations() * 10;
    let before = hello.group_cpu_ns("workerd");
    (0..requests).for_each(|_| get());
    let process_ms = (hello.group_cpu_ns("workerd") - before) as f64 / 1e6 / requests as f64;
    let mut inspector = Inspector::connect(inspector_port).expect("the hello worker's inspector");
    inspector.enable_profiler(SAMPLING_US).expect("Profiler.enable");
    let isolate: Vec<f64> = (0..invocations())
        .map(|_| Invocation::of(&inspector.profile(get).expect("a CPU profile").1).isolate_us as f64)
        .collect();
    (median(isolate) / 1000.0, process_ms)
}

fn main() {
    let started = Instant::now();
    let stack = Stack::start(StackOptions {
        binaries: binaries!(),
        vars: vec![("REDIS_NAMESPACE".into(), "cpubench".into()), ("SYMBOLS".into(), "QRLUSDT".into())],
    })
    .unwrap_or_else(|e| panic!("the bench stack could not start: {e}"));
    serve_bench_data(&stack);
    let http: ureq::Agent = ureq::Agent::config_builder().timeout_global(Some(Duration::from_secs(60))).build().into();
    let dir = tempfile::tempdir().expect("temp dir");
    let (hello_isolate_ms, hello_process_ms) = hello_floor(&http, dir.path());

    let mut rows = Vec::new();
    // `BENCH_SIZES=5` and `BENCH_COPY=off` narrow the run (while profiling a change).
    let sizes: Vec<usize> = std::env::var("BENCH_SIZES")
        .map(|v| v.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_else(|_| SIZES.to_vec());
    let copies: Vec<bool> = match std::env::var("BENCH_COPY").as_deref() {
        Ok("off") => vec![false],
        Ok("on") => vec![true],
        _ => vec![false, true],
    };
    for copy in copies {
        for &symbols in &sizes {
            rows.push(measure(&stack, &http, symbols, copy));
        }
    }

    let n = invocations();
    println!(
        "\nworkerd CPU per cron invocation (all threads, /proc schedstat; median of {n} after {WARM_UP} warm-up; ms)"
    );
    println!("hello-world worker, per request: workerd {hello_process_ms:.2} ms (the floor)");
    println!(
        "{:<22} {:>9} {:>8} {:>9} {:>8} {:>8} {:>8} {:>8}",
        "configuration", "workerd", "× hello", "no task", "own", "balance", "price", "cost"
    );
    for row in &rows {
        let own = |ms: f64| ms - row.empty_process_ms;
        println!(
            "{:<22} {:>9.2} {:>8.1} {:>9.2} {:>8.2} {:>8.2} {:>8.2} {:>8.2}",
            row.label,
            row.process_ms,
            row.process_ms / hello_process_ms,
            row.empty_process_ms,
            own(row.process_ms),
            own(row.task_process_ms[0].1),
            own(row.task_process_ms[1].1),
            own(row.task_process_ms[2].1),
        );
    }
    println!("(own = workerd CPU minus an invocation of the same worker that runs no task; per task: that task alone)");
    println!(
        "\nisolate CPU per cron invocation, V8 profile (median of {n} kept profiles; {SAMPLING_US} µs sampling; ms)"
    );
    println!("hello-world worker, per request: isolate {hello_isolate_ms:.2} ms");
    println!(
        "{:<22} {:>9} {:>7} {:>7} {:>9} {:>8} {:>6} {:>8} {:>8} {:>8} {:>6}",
        "configuration", "cron CPU", "min", "p90", "isolate", "DO part", "GC", "balance", "price", "cost", "floor",
    );
    for row in &rows {
        println!(
            "{:<22} {:>9.2} {:>7.2} {:>7.2} {:>9.2} {:>8.2} {:>6.2} {:>8.2} {:>8.2} {:>8.2} {:>6.2}",
            row.label,
            row.cron_median_us / 1000.0,
            row.cron_min_us / 1000.0,
            row.cron_p90_us / 1000.0,
            row.isolate_median_us / 1000.0,
            row.durable_object_median_us / 1000.0,
            ms(row.cron.gc_us),
            row.tasks[0].1 / 1000.0,
            row.tasks[1].1 / 1000.0,
            row.tasks[2].1 / 1000.0,
            row.floor_us / 1000.0,
        );
    }
    let lost: Vec<String> = rows.iter().filter(|r| r.lost > 0).map(|r| format!("{} {}", r.label, r.lost)).collect();
    if !lost.is_empty() {
        println!("profiles without a sample of the invocation (left out, replaced): {}", lost.join(", "));
    }
    println!("\nphases, % of the isolate CPU of all kept profiles (the durable object's share among them)");
    print!("{:<22}", "configuration");
    for phase in PHASES {
        print!(" {:>10}", phase.split(' ').next().unwrap_or(phase));
    }
    println!();
    for row in &rows {
        print!("{:<22}", row.label);
        for phase in PHASES {
            let share = row.cron.phases.get(phase).copied().unwrap_or(0) as f64 / row.cron.isolate_us.max(1) as f64;
            print!(" {:>9.1}%", share * 100.0);
        }
        println!();
    }
    println!(
        "(columns: {})",
        PHASES.iter().map(|p| format!("{} = {p}", p.split(' ').next().unwrap_or(p))).collect::<Vec<_>>().join("; ")
    );
    let top: usize = std::env::var("BENCH_TOP").ok().and_then(|v| v.parse().ok()).unwrap_or(0);
    if top > 0 {
        for row in &rows {
            println!("\nhottest frames, {} (mean µs per invocation, self time)", row.label);
            let mut frames: Vec<(&String, &i64)> = row.cron.frames.iter().collect();
            frames.sort_by(|a, b| b.1.cmp(a.1));
            for (frame, us) in frames.into_iter().take(top) {
                println!("{us:>8}  {frame}");
            }
            println!("\ninclusive, {} (mean µs per invocation; edgesync's functions and JS)", row.label);
            let mut frames: Vec<(&String, &i64)> = row.cron.inclusive.iter().collect();
            frames.sort_by(|a, b| b.1.cmp(a.1));
            for (frame, us) in frames.into_iter().take(top) {
                println!("{us:>8}  {frame}");
            }
        }
    }
    println!(
        "\ngoals (issue 29): 5 symbols <= 5 ms cron CPU with the copy off, <= 10 ms with it; growth at most linear in symbols"
    );
    println!("bench took {:.0} s", started.elapsed().as_secs_f64());
}
