//! `make bench` (CPU part): what one cron invocation costs in CPU — the quantity Cloudflare
//! limits and bills — for 1, 5 and 20 symbols, with and without the durable copy.
//!
//! Three measurements of the same worker in workerd (release wasm, names kept), over
//! `BENCH_INVOCATIONS` (default 20) invocations after 3 warm-up ones. The workers run as
//! `wrangler dev` configures them but without its two dev-only hops (`tests/bench/workerd.mjs`):
//! under `wrangler dev` every subrequest is also dispatched to a second JavaScript worker,
//! which costs ~8× what the subrequest itself does and which no deployed worker runs
//! (`BENCH_RUNNER=wrangler-dev` measures that way, for comparison):
//! - **the isolate's CPU** (the headline): Linux `perf` samples workerd (`cpu-clock`, 20 kHz,
//!   call graphs; [`edgesync_e2e::perf`]); the share of samples below a V8 entry frame —
//!   JavaScript or WebAssembly running, or V8 and the runtime's APIs called from it — applied
//!   to workerd's CPU time for unsampled invocations (sampling costs CPU of its own, spread
//!   over the samples). "own" subtracts an invocation for a cron expression that runs no task;
//!   `wrangler dev`'s own isolates (its WebSocket plumbing) are left out. Beside it, what any
//!   worker pays per subrequest, measured in the same run: a hello-world worker making 16
//!   fetches of the stand-in, minus a plain request, per fetch; and the invocation's
//!   subrequests, counted by the stand-in and the gateway. "edgesync" is the cron's own CPU
//!   minus that floor times its subrequests: what the worker's code adds to the platform's
//!   unavoidable cost.
//! - **workerd's CPU time** per invocation (`/proc/<pid>/task/*/schedstat`, every thread,
//!   ns), unprofiled: CPU, not wall time. Per task, the task alone on its own expression (as
//!   `CRON_TASKS` splitting runs it). Beside it, workerd's CPU per request of a hello-world
//!   worker: the same-run floor.
//! - **a V8 sampling profile** taken through the inspector wrangler exposes (`Profiler`
//!   domain, 100 µs sampling), for *where* the isolate's time goes: frames attributed to phases
//!   by name ([`phase`]), and the Durable Object's frames (`wrangler dev` runs the object in the
//!   same isolate; Cloudflare bills it to the object's own requests) as its share, which also
//!   splits perf's total. Its samples are stamped with wall-clock intervals, so on a loaded
//!   machine a descheduled thread makes one sample stand for milliseconds: its totals are not
//!   CPU (docs/benchmarks.md), its shares are. A profile that caught no sample of the
//!   invocation is left out and counted.
//!
//! Data: the MEXC stand-in serves an account of 31 balances, each symbol's 24 h ticker and
//! `FILLS` fills per symbol in the one-month window (one page), in `fixtures/mexc` shapes.
//! The measured workerd runs at nice -10 when the bench may raise it (root).
//!
//! Environment: `BENCH_RUNNER`, `BENCH_INVOCATIONS` (default 20), `BENCH_TOP` (print the N hottest frames of
//! each configuration, default 0), `BENCH_SIZES=5` and `BENCH_COPY=off` to narrow the run,
//! `BENCH_PERF_DIR` to keep perf's recordings there (`perf report -i …`).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use edgesync_e2e::binaries;
use edgesync_e2e::harness::{
    repo_root, spawn_workerd, spawn_wrangler_dev, ExtraWorker, Stack, StackOptions, WorkerRunner,
};
use edgesync_e2e::inspector::{CallFrame, CpuProfile, Inspector, GARBAGE_COLLECTOR, IDLE, PROGRAM};
use edgesync_e2e::perf::{self, CpuByPlace, Place, Recording};
use edgesync_e2e::process::{free_port, Service};
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
/// Frames of a stack shown in `BENCH_TOP`'s hottest stacks.
const STACK_DEPTH: usize = 5;

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
    /// Self time per stack, its leaf and the callers above it (for `BENCH_TOP`): where a
    /// frame without a name is called from.
    stacks: BTreeMap<String, i64>,
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
                    let callers: Vec<String> = stack
                        .iter()
                        .take(STACK_DEPTH)
                        .map(|f| {
                            let name = f.function_name.split("::h").next().unwrap_or_default();
                            let short = name.rsplit("::").take(2).collect::<Vec<_>>().join("<");
                            if short.is_empty() {
                                format!("(anonymous {}:{})", f.url, f.line_number)
                            } else {
                                short
                            }
                        })
                        .collect();
                    *invocation.stacks.entry(callers.join(" <- ")).or_default() += duration;
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

/// How the measured workers run: workerd without `wrangler dev`'s hops (the default: what a
/// deployed worker runs), or `BENCH_RUNNER=wrangler-dev` (each subrequest also passes through
/// Miniflare's outbound JavaScript worker, each request through wrangler's proxy worker).
fn runner() -> WorkerRunner {
    match std::env::var("BENCH_RUNNER").as_deref() {
        Ok("wrangler-dev") => WorkerRunner::WranglerDev,
        Ok("workerd") | Err(_) => WorkerRunner::Workerd,
        Ok(other) => panic!("BENCH_RUNNER is `workerd` (the default) or `wrangler-dev`, not `{other}`"),
    }
}

/// The machine's load average, as `/proc/loadavg` gives it: other work on the 2-core VM raises
/// every figure (docs/benchmarks.md), so each run says how loaded it was.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|text| text.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
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
    stack.exchange.set_response("/api/v3/account", None, &account);
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
    stack.exchange.set_response("/api/v3/myTrades", None, &Value::Array(fills));
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
    /// perf's CPU per invocation by place: the full cron, the no-task floor, each task alone.
    perf_full: CpuByPlace,
    perf_floor: CpuByPlace,
    perf_tasks: [(&'static str, CpuByPlace); 3],
    /// Subrequests per invocation (the full cron), counted by the stand-in and the gateway.
    subrequests: f64,
    /// workerd's CPU per full invocation, one per interleaved round.
    rounds: Vec<f64>,
    /// workerd's CPU per full invocation over the hello worker's per plain request, median of
    /// the per-round ratios.
    times_hello: f64,
    against: Option<usize>,
}

impl Row {
    /// The isolate's CPU per full invocation: perf's share applied to workerd's CPU.
    fn isolate_ms(&self) -> f64 {
        self.perf_full.isolate_share() * self.process_ms
    }

    /// The isolate's CPU for an invocation that runs no task.
    fn no_task_ms(&self) -> f64 {
        self.perf_floor.isolate_share() * self.empty_process_ms
    }

    fn own_ms(&self) -> f64 {
        self.isolate_ms() - self.no_task_ms()
    }

    /// Locally the Durable Object runs in the same isolate; its share of the V8 profile's
    /// samples (a ratio, which the profile gets right) estimates its part.
    fn durable_object_ms(&self) -> f64 {
        let share =
            if self.isolate_median_us > 0.0 { self.durable_object_median_us / self.isolate_median_us } else { 0.0 };
        self.own_ms() * share.clamp(0.0, 1.0)
    }

    /// What the cron invocation is billed: its own CPU without the Durable Object's part.
    fn cron_ms(&self) -> f64 {
        self.own_ms() - self.durable_object_ms()
    }
}

/// Issue 29's goals against this run: 5 symbols ≤ 5 ms with the copy off and ≤ 10 ms with
/// it (the object's part apart), and growth at most linear in the symbols (the cost per
/// symbol from 5 to 20 no more than from 1 to 5, with a tenth of slack for noise).
fn print_goals(rows: &[Row]) {
    println!("\ngoals (issue 29), this run:");
    let find = |symbols: usize, copy: bool| {
        let label = format!(
            "{symbols} symbol{}, copy {}",
            if symbols == 1 { "" } else { "s" },
            if copy { "on" } else { "off" }
        );
        rows.iter().find(|row| row.label == label)
    };
    for (copy, goal) in [(false, 5.0), (true, 10.0)] {
        let copy_name = if copy { "on" } else { "off" };
        if let Some(row) = find(5, copy) {
            let verdict = if row.cron_ms() <= goal { "met" } else { "NOT met" };
            println!("  5 symbols, copy {copy_name}: {:.2} ms (goal <= {goal} ms): {verdict}", row.cron_ms());
        }
        if let (Some(one), Some(five), Some(twenty)) = (find(1, copy), find(5, copy), find(20, copy)) {
            let (low, high) = ((five.cron_ms() - one.cron_ms()) / 4.0, (twenty.cron_ms() - five.cron_ms()) / 15.0);
            let verdict = if high <= low * 1.1 { "met" } else { "NOT met" };
            println!("  copy {copy_name}, per symbol: {low:.2} ms from 1 to 5, {high:.2} ms from 5 to 20 (at most linear): {verdict}");
        }
    }
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
        for (stack, us) in &inv.stacks {
            *mean.stacks.entry(stack.clone()).or_default() += us;
        }
    }
    mean.isolate_us /= n;
    mean.gc_us /= n;
    mean.program_us /= n;
    mean.phases.values_mut().for_each(|us| *us /= n);
    mean.frames.values_mut().for_each(|us| *us /= n);
    mean.inclusive.values_mut().for_each(|us| *us /= n);
    mean.stacks.values_mut().for_each(|us| *us /= n);
    mean
}

/// One configuration's worker, started before any configuration is measured.
struct Configured {
    label: String,
    namespace: String,
    worker: ExtraWorker,
    /// Index of the configuration this one is measured against (`BENCH_AGAINST`).
    against: Option<usize>,
}

/// Starts the worker of one configuration — this build, or the one in `build` — and warms it.
fn configure(stack: &Stack, http: &ureq::Agent, symbols: usize, copy: bool, build: Option<&Path>) -> Configured {
    let label = format!(
        "{symbols} symbol{}, copy {}{}",
        if symbols == 1 { "" } else { "s" },
        if copy { "on" } else { "off" },
        if build.is_some() { " (B)" } else { "" }
    );
    let namespace = format!("cpu{symbols}{}{}", if copy { "d" } else { "n" }, if build.is_some() { "b" } else { "" });
    let cron_tasks = format!("{FULL}=balance,price,cost;{}", TASK_CRONS.map(|(t, c)| format!("{c}={t}")).join(";"));
    let symbol_list = SYMBOLS[..symbols].join(",");
    let vars = [
        ("REDIS_NAMESPACE", namespace.as_str()),
        ("SYMBOLS", &symbol_list),
        ("CRON_TASKS", &cron_tasks),
        ("DURABLE_COPY", if copy { "on" } else { "off" }),
    ];
    let worker = match build {
        None => stack.extra_worker_on(runner(), &vars),
        Some(build) => stack.extra_worker_built(build, &vars),
    }
    .unwrap_or_else(|e| panic!("{label}: the worker could not start: {e}"));
    raise(|nice| worker.set_priority(nice));
    for _ in 0..WARM_UP {
        fire(http, &worker.url, FULL);
    }
    for (_, cron) in TASK_CRONS {
        fire(http, &worker.url, cron);
    }
    Configured { label, namespace, worker, against: None }
}

/// workerd's CPU per invocation of the full cron for every configuration, fired in turn,
/// round after round: a slow stretch of the machine then weighs on every configuration alike,
/// so they compare within each round — with each other, and with the hello-world worker's
/// plain request measured in the same round. Answers each configuration's values and the
/// hello request's, one per round.
fn interleaved(
    http: &ureq::Agent,
    hello: &Hello,
    configured: &[Configured],
    rounds: usize,
) -> (Vec<Vec<f64>>, Vec<f64>) {
    let mut values = vec![Vec::with_capacity(rounds); configured.len()];
    let mut hellos = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        hellos.push(hello.request_ms(http, HELLO_PER_ROUND));
        for (one, values) in configured.iter().zip(&mut values) {
            let before = one.worker.workerd_cpu_ns();
            fire(http, &one.worker.url, FULL);
            values.push((one.worker.workerd_cpu_ns() - before) as f64 / 1e6);
        }
    }
    (values, hellos)
}

/// Everything else of one configuration, after the interleaved rounds gave `rounds` (its
/// workerd CPU per full invocation).
fn measure(stack: &Stack, http: &ureq::Agent, configured: &Configured, rounds: &[f64]) -> Row {
    let (label, namespace, worker) = (configured.label.clone(), &configured.namespace, &configured.worker);
    eprintln!("measuring {label}");
    let n = invocations();
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
    let counted = || {
        stack.exchange.requests()["total"].as_u64().unwrap_or(0)
            + stack.backend.gateway_stats()["requests"].as_u64().unwrap_or(0)
    };
    let before = counted();
    fire(http, &worker.url, FULL);
    let subrequests = (counted() - before) as f64;
    let process_ms = median(rounds.to_vec());
    let empty_process_ms = process_of(UNMAPPED);
    let task_process_ms = TASK_CRONS.map(|(task, cron)| (task, process_of(cron)));
    // The isolate's CPU as perf samples it: the full cron, the no-task floor, each task alone.
    // Before any inspector session attaches: a session with the profiler enabled changes how
    // V8 runs the code (docs/benchmarks.md).
    // `BENCH_PERF_DIR` keeps the recordings (for `perf report -i`), one per configuration and cron.
    let kept = std::env::var("BENCH_PERF_DIR").ok();
    let sampled = |cron: &str| -> CpuByPlace {
        let name = format!("perf-{namespace}-{}.data", cron.replace(['*', '/', ' '], "_"));
        let perf_file = match &kept {
            Some(dir) => std::path::Path::new(dir).join(name),
            None => std::env::temp_dir().join(format!("edgesync-{}-{name}", std::process::id())),
        };
        let recording = Recording::start(&worker.workerd_pids(), &perf_file).expect("perf record");
        for _ in 0..n {
            fire(http, &worker.url, cron);
        }
        let cpu = recording.stop().expect("perf script");
        if kept.is_none() {
            let _ = std::fs::remove_file(&perf_file);
        }
        cpu
    };
    let perf_full = sampled(FULL);
    let perf_floor = sampled(UNMAPPED);
    let perf_tasks = TASK_CRONS.map(|(task, cron)| (task, sampled(cron)));

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
        rounds: rounds.to_vec(),
        times_hello: f64::NAN,
        against: configured.against,
        empty_process_ms,
        task_process_ms,
        lost: lost.get(),
        perf_full,
        perf_floor,
        perf_tasks,
        subrequests,
    }
}

/// The same-run floors, from a hello-world worker: its isolate CPU (profiled) and workerd
/// CPU per request, and the isolate CPU (perf) any worker pays per subrequest — a request that
/// makes `SUBREQUESTS` fetches of the stand-in and reads their bodies, minus a plain one, per
/// fetch.
struct Floors {
    hello_isolate_ms: f64,
    hello_process_ms: f64,
    per_subrequest_ms: f64,
}

const FLOOR_SUBREQUESTS: usize = 16;

/// The hello-world worker, kept running after the floors so every interleaved round measures
/// it too.
struct Hello {
    service: Service,
    url: String,
}

/// Plain requests to the hello worker per round: one takes too little CPU to measure alone.
const HELLO_PER_ROUND: usize = 10;

impl Hello {
    /// workerd's CPU per plain request, over `n` of them.
    fn request_ms(&self, http: &ureq::Agent, n: usize) -> f64 {
        let before = self.service.group_cpu_ns("workerd");
        for _ in 0..n {
            let answer = http.get(&format!("{}/", self.url)).call().expect("hello answers");
            assert_eq!(answer.status(), 200);
        }
        (self.service.group_cpu_ns("workerd") - before) as f64 / 1e6 / n as f64
    }
}

fn floors(http: &ureq::Agent, dir: &std::path::Path, standin_url: &str) -> (Floors, Hello) {
    let config = repo_root().join("tests/bench/hello/wrangler.toml");
    let spawn = match runner() {
        WorkerRunner::WranglerDev => spawn_wrangler_dev,
        WorkerRunner::Workerd => spawn_workerd,
    };
    let (hello, url, inspector_port) =
        spawn(Some(&config), &[], &dir.join("hello.log"), None, free_port()).expect("hello worker");
    raise(|nice| hello.set_priority(nice));
    let get = |path: &str| {
        let answer = http.get(&format!("{url}{path}")).call().expect("hello answers");
        assert_eq!(answer.status(), 200);
    };
    let fetching = format!("/?fetch={standin_url}/api/v3/ticker/24hr%3Fsymbol%3DQRLUSDT&n={FLOOR_SUBREQUESTS}");
    (0..WARM_UP * 10).for_each(|_| get("/"));
    (0..WARM_UP).for_each(|_| get(&fetching));
    let requests = invocations() * 10;
    let cpu_of = |path: &str, n: usize| {
        let before = hello.group_cpu_ns("workerd");
        (0..n).for_each(|_| get(path));
        (hello.group_cpu_ns("workerd") - before) as f64 / 1e6 / n as f64
    };
    let hello_process_ms = cpu_of("/", requests);
    let fetching_process_ms = cpu_of(&fetching, invocations());
    let perf_file = dir.join("hello.perf");
    let isolate_of = |path: &str, n: usize, process_ms: f64| {
        let recording = Recording::start(&hello.group_members("workerd"), &perf_file).expect("perf record");
        (0..n).for_each(|_| get(path));
        recording.stop().expect("perf script").isolate_share() * process_ms
    };
    let plain = isolate_of("/", requests, hello_process_ms);
    let with_fetches = isolate_of(&fetching, invocations(), fetching_process_ms);
    let mut inspector = Inspector::connect(inspector_port).expect("the hello worker's inspector");
    inspector.enable_profiler(SAMPLING_US).expect("Profiler.enable");
    let isolate: Vec<f64> = (0..invocations())
        .map(|_| Invocation::of(&inspector.profile(|| get("/")).expect("a CPU profile").1).isolate_us as f64)
        .collect();
    drop(inspector);
    let floors = Floors {
        hello_isolate_ms: median(isolate) / 1000.0,
        hello_process_ms,
        per_subrequest_ms: (with_fetches - plain) / FLOOR_SUBREQUESTS as f64,
    };
    (floors, Hello { service: hello, url })
}

/// The headline: the isolate's CPU per invocation — perf's share of samples below a V8 entry
/// frame, applied to workerd's CPU for an unsampled invocation — and where it went.
fn print_isolate_cpu(rows: &[Row], n: usize, floors: &Floors) {
    println!(
        "\nisolate CPU per cron invocation (perf cpu-clock, 20 kHz, share below a V8 entry × workerd CPU; {n} invocations; ms)"
    );
    println!(
        "{:<22} {:>8} {:>8} {:>7} {:>8} {:>7} {:>7} {:>7} {:>7} {:>8} {:>7} {:>7} {:>6} {:>9}",
        "configuration",
        "isolate",
        "no task",
        "own",
        "cron",
        "DO est",
        "code",
        "V8",
        "APIs",
        "balance",
        "price",
        "cost",
        "subreq",
        "edgesync"
    );
    for row in rows {
        let (isolate, floor, own, do_ms) = (row.isolate_ms(), row.no_task_ms(), row.own_ms(), row.durable_object_ms());
        let part = |place: Place| row.perf_full.share(place) * row.process_ms;
        let task = |i: usize| row.perf_tasks[i].1.isolate_share() * row.task_process_ms[i].1 - floor;
        println!(
            "{:<22} {:>8.2} {:>8.2} {:>7.2} {:>8.2} {:>7.2} {:>7.2} {:>7.2} {:>7.2} {:>8.2} {:>7.2} {:>7.2} {:>6.1} {:>9.2}",
            row.label,
            isolate,
            floor,
            own,
            own - do_ms,
            do_ms,
            part(Place::Code),
            part(Place::V8),
            part(Place::RuntimeApis) + part(Place::Kernel),
            task(0),
            task(1),
            task(2),
            row.subrequests,
            own - do_ms - row.subrequests * floors.per_subrequest_ms,
        );
    }
    println!(
        "per subrequest, any worker (hello-world worker fetching the stand-in {FLOOR_SUBREQUESTS} times, minus a plain request): {:.3} ms",
        floors.per_subrequest_ms
    );
    println!(
        "(own = isolate minus an invocation that runs no task; cron = own minus the Durable Object's estimated part; \
         code = wasm+JS, V8 = builtins+GC, APIs = workerd's C++ and the kernel called from JS; per task: alone, own; \
         subreq = subrequests per invocation (stand-in and gateway counts); edgesync = cron minus subreq × the per-subrequest floor)"
    );
}

/// `BENCH_AGAINST`: each configuration on build B against this build (A), as the median of
/// the per-round ratios of workerd's CPU (the two fired back to back in every round) and as
/// the ratio of the isolate CPU (perf's share applied to each's median).
fn print_against(rows: &[Row]) {
    let pairs: Vec<(&Row, &Row)> = rows.iter().filter_map(|b| b.against.map(|a| (&rows[a], b))).collect();
    if pairs.is_empty() {
        return;
    }
    println!("\nbuild B (BENCH_AGAINST) against this build A, same rounds");
    println!(
        "{:<22} {:>10} {:>10} {:>12} {:>10} {:>10} {:>10}",
        "configuration", "workerd A", "workerd B", "B/A rounds", "isolate A", "isolate B", "B/A"
    );
    for (a, b) in pairs {
        let ratios: Vec<f64> = a.rounds.iter().zip(&b.rounds).map(|(a, b)| b / a).collect();
        let isolate = Row::isolate_ms;
        println!(
            "{:<22} {:>10.2} {:>10.2} {:>12.3} {:>10.2} {:>10.2} {:>10.3}",
            a.label,
            a.process_ms,
            b.process_ms,
            median(ratios),
            isolate(a),
            isolate(b),
            isolate(b) / isolate(a)
        );
    }
}

fn main() {
    let started = Instant::now();
    perf::available().unwrap_or_else(|e| panic!("the CPU bench samples workerd with perf: {e}"));
    let stack = Stack::start(StackOptions {
        binaries: binaries!(),
        vars: vec![("REDIS_NAMESPACE".into(), "cpubench".into()), ("SYMBOLS".into(), "QRLUSDT".into())],
    })
    .unwrap_or_else(|e| panic!("the bench stack could not start: {e}"));
    serve_bench_data(&stack);
    let http: ureq::Agent = ureq::Agent::config_builder().timeout_global(Some(Duration::from_secs(60))).build().into();
    let dir = tempfile::tempdir().expect("temp dir");
    let load_before = load_average();
    let (floors, hello) = floors(&http, dir.path(), &stack.exchange.url);
    let (hello_isolate_ms, hello_process_ms) = (floors.hello_isolate_ms, floors.hello_process_ms);

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
    // `BENCH_AGAINST=DIR` measures each configuration also on the worker build in DIR (a
    // copy of `worker/build` from another commit), interleaved, and prints B / A.
    let against = std::env::var_os("BENCH_AGAINST").map(std::path::PathBuf::from);
    let mut configured = Vec::new();
    for copy in copies {
        for &symbols in &sizes {
            eprintln!("starting {symbols} symbol(s), copy {}", if copy { "on" } else { "off" });
            configured.push(configure(&stack, &http, symbols, copy, None));
            if let Some(build) = &against {
                let mut other = configure(&stack, &http, symbols, copy, Some(build));
                other.against = Some(configured.len() - 1);
                configured.push(other);
            }
        }
    }
    eprintln!("{} interleaved rounds over {} configurations", invocations(), configured.len());
    let (rounds, hello_rounds) = interleaved(&http, &hello, &configured, invocations());
    for (one, rounds) in configured.iter().zip(&rounds) {
        let mut row = measure(&stack, &http, one, rounds);
        row.times_hello = median(rounds.iter().zip(&hello_rounds).map(|(cron, hello)| cron / hello).collect());
        rows.push(row);
    }
    let hello_in_rounds_ms = median(hello_rounds);

    let n = invocations();
    print_isolate_cpu(&rows, n, &floors);
    print_against(&rows);
    println!(
        "\nworkerd CPU per cron invocation (all threads, /proc schedstat; median of {n} after {WARM_UP} warm-up; ms)"
    );
    println!(
        "hello-world worker, per request: workerd {hello_process_ms:.2} ms at the start, {hello_in_rounds_ms:.2} ms in the rounds (the floor)"
    );
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
            row.times_hello,
            row.empty_process_ms,
            own(row.process_ms),
            own(row.task_process_ms[0].1),
            own(row.task_process_ms[1].1),
            own(row.task_process_ms[2].1),
        );
    }
    println!(
        "(× hello = median over the rounds of the invocation over the same round's hello request; own = workerd CPU minus \
         an invocation of the same worker that runs no task; per task: that task alone)"
    );
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
            println!("\nhottest stacks, {} (mean µs per invocation, self time; leaf <- callers)", row.label);
            let mut stacks: Vec<(&String, &i64)> = row.cron.stacks.iter().collect();
            stacks.sort_by(|a, b| b.1.cmp(a.1));
            for (stack, us) in stacks.into_iter().take(top) {
                println!("{us:>8}  {stack}");
            }
            println!("\ninclusive, {} (mean µs per invocation; edgesync's functions and JS)", row.label);
            let mut frames: Vec<(&String, &i64)> = row.cron.inclusive.iter().collect();
            frames.sort_by(|a, b| b.1.cmp(a.1));
            for (frame, us) in frames.into_iter().take(top) {
                println!("{us:>8}  {frame}");
            }
        }
    }
    print_goals(&rows);
    println!("load average (1, 5, 15 min) at the start: {load_before}; at the end: {}", load_average());
    println!("bench took {:.0} s", started.elapsed().as_secs_f64());
}
