//! CPU time of workerd as Linux's `perf` samples it (`cpu-clock`, call graphs), split by where
//! each sample was: inside the isolate — JavaScript or WebAssembly running, or V8 and the
//! runtime's APIs called from it, below a V8 entry frame — or outside it (the event loop, HTTP,
//! the kernel's network work for subrequests).
//!
//! It is the CPU-bench's measure of the isolate's CPU because it counts CPU, not wall time:
//! V8's own sampling profiler stamps its samples with wall-clock intervals, and on a loaded
//! 2-core machine a descheduled isolate thread makes one sample stand for milliseconds
//! (docs/benchmarks.md). `perf` samples only while a thread runs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// Samples per second of CPU.
const FREQUENCY: &str = "20000";

/// Frames through which V8 enters JavaScript (or WebAssembly): a sample with one of them on
/// its stack ran for an isolate.
const V8_ENTRIES: [&str; 3] = ["Builtins_JSEntry", "Builtins_JSRunMicrotasksEntry", "Builtins_JSConstructEntry"];

/// Frames of `wrangler dev`'s own plumbing, which runs in other isolates of the same process
/// (its internal workers read the inspector and log relay over WebSockets): never the worker's.
const DEV_ONLY: [&str; 1] = ["workerd::api::WebSocket::readLoop"];

/// Where a sample's CPU went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Place {
    /// JIT code: the worker's WebAssembly and JavaScript (its glue, wrangler's middleware).
    Code,
    /// V8 itself on the isolate's behalf: builtins, the runtime, garbage collection.
    V8,
    /// workerd's C++ called from JavaScript: `fetch`, `Request`, `Headers`, `console`, …
    RuntimeApis,
    /// The kernel, entered from JavaScript (a synchronous write, a page fault).
    Kernel,
    /// Not below a V8 entry: the event loop, HTTP for subrequests, other threads.
    OutsideIsolate,
    /// `wrangler dev`'s own isolates ([`DEV_ONLY`]).
    DevOnly,
}

impl Place {
    pub fn label(self) -> &'static str {
        match self {
            Place::Code => "wasm+JS code",
            Place::V8 => "V8 (builtins, GC)",
            Place::RuntimeApis => "runtime APIs",
            Place::Kernel => "kernel",
            Place::OutsideIsolate => "outside the isolate",
            Place::DevOnly => "wrangler dev's isolates",
        }
    }

    pub fn in_isolate(self) -> bool {
        !matches!(self, Place::OutsideIsolate | Place::DevOnly)
    }
}

/// CPU per place, ns.
#[derive(Debug, Clone, Default)]
pub struct CpuByPlace {
    pub ns: BTreeMap<Place, u64>,
}

impl CpuByPlace {
    /// Everything below a V8 entry frame.
    pub fn isolate_ns(&self) -> u64 {
        self.ns.iter().filter(|(place, _)| place.in_isolate()).map(|(_, ns)| ns).sum()
    }

    pub fn get(&self, place: Place) -> u64 {
        self.ns.get(&place).copied().unwrap_or(0)
    }

    pub fn total_ns(&self) -> u64 {
        self.ns.values().sum()
    }

    /// The isolate's share of every sample: sampling at 20 kHz with call graphs costs the
    /// process CPU of its own, spread over the samples, so shares are what perf gets right and
    /// an unsampled run's CPU time is what they are applied to.
    pub fn isolate_share(&self) -> f64 {
        self.isolate_ns() as f64 / self.total_ns().max(1) as f64
    }

    /// `place`'s share of every sample.
    pub fn share(&self, place: Place) -> f64 {
        self.get(place) as f64 / self.total_ns().max(1) as f64
    }
}

/// A `perf record` of some processes, sampling between [`Recording::start`] and
/// [`Recording::stop`] exactly: perf starts disabled and is switched on and off through its
/// control FIFO, each switch acknowledged, so no invocation is half-recorded.
pub struct Recording {
    child: Child,
    file: PathBuf,
    control: std::fs::File,
    ack: std::io::BufReader<std::fs::File>,
    _fifos: tempfile::TempDir,
}

/// Whether `perf` can sample here (installed, and allowed to: root or a permissive
/// `perf_event_paranoid`).
pub fn available() -> Result<(), String> {
    let probe = Command::new("perf")
        .args(["stat", "-e", "cpu-clock", "-x,", "true"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| format!("perf is not installed ({e}): install linux-perf"))?;
    if probe.status.success() {
        Ok(())
    } else {
        Err(format!("perf cannot sample here: {}", String::from_utf8_lossy(&probe.stderr).trim()))
    }
}

impl Recording {
    /// Starts sampling `pids` (every thread) into `file`; returns once perf samples.
    pub fn start(pids: &[u32], file: &Path) -> Result<Self, String> {
        let fifos = tempfile::tempdir().map_err(|e| e.to_string())?;
        let (control, ack) = (fifos.path().join("control"), fifos.path().join("ack"));
        for fifo in [&control, &ack] {
            let made = Command::new("mkfifo").arg(fifo).status().map_err(|e| format!("mkfifo: {e}"))?;
            if !made.success() {
                return Err(format!("mkfifo {} failed", fifo.display()));
            }
        }
        let pids: Vec<String> = pids.iter().map(u32::to_string).collect();
        let child = Command::new("perf")
            .args(["record", "-q", "-e", "cpu-clock", "-F", FREQUENCY, "-g", "-D", "-1", "--control"])
            .arg(format!("fifo:{},{}", control.display(), ack.display()))
            .arg("-o")
            .arg(file)
            .args(["-p", &pids.join(",")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("perf record: {e}"))?;
        let control = std::fs::OpenOptions::new().write(true).open(&control).map_err(|e| e.to_string())?;
        let ack = std::io::BufReader::new(std::fs::File::open(&ack).map_err(|e| e.to_string())?);
        let mut recording = Self { child, file: file.to_owned(), control, ack, _fifos: fifos };
        recording.switch("enable")?;
        Ok(recording)
    }

    /// Sends `command` to perf and waits for its acknowledgement.
    fn switch(&mut self, command: &str) -> Result<(), String> {
        use std::io::{BufRead, Write};
        writeln!(self.control, "{command}").map_err(|e| format!("perf control: {e}"))?;
        let mut answer = String::new();
        self.ack.read_line(&mut answer).map_err(|e| format!("perf ack: {e}"))?;
        // perf writes the C string "ack\n" with its terminating NUL.
        let answer = answer.trim_matches(|c: char| c == '\0' || c.is_whitespace());
        if answer == "ack" {
            Ok(())
        } else {
            Err(format!("perf answered `{answer}` to {command}"))
        }
    }

    /// Stops sampling and classifies every sample.
    pub fn stop(mut self) -> Result<CpuByPlace, String> {
        self.switch("disable")?;
        let _ = Command::new("kill").args(["-INT", &self.child.id().to_string()]).status();
        self.child.wait().map_err(|e| format!("perf record: {e}"))?;
        let script = Command::new("perf")
            .args(["script", "-F", "period,ip,sym,dso", "-i"])
            .arg(&self.file)
            .stderr(Stdio::null())
            .output()
            .map_err(|e| format!("perf script: {e}"))?;
        Ok(classify(&String::from_utf8_lossy(&script.stdout)))
    }
}

/// Sums `perf script -F period,ip,sym,dso` output by place: a sample is a line with its
/// period, then its stack (leaf first), one frame per line, then a blank line.
pub fn classify(script: &str) -> CpuByPlace {
    let mut cpu = CpuByPlace::default();
    let mut lines = script.lines().peekable();
    while let Some(line) = lines.next() {
        let Ok(period) = line.trim().parse::<u64>() else { continue };
        let mut frames = Vec::new();
        while let Some(frame) = lines.next_if(|l| !l.trim().is_empty()) {
            frames.push(frame.trim());
        }
        *cpu.ns.entry(place(&frames)).or_default() += period;
    }
    cpu
}

fn place(frames: &[&str]) -> Place {
    if frames.iter().any(|f| DEV_ONLY.iter().any(|dev| symbol(f).starts_with(dev))) {
        return Place::DevOnly;
    }
    let in_isolate = frames.iter().any(|f| V8_ENTRIES.iter().any(|entry| symbol(f).starts_with(entry)));
    let Some(leaf) = frames.first() else { return Place::OutsideIsolate };
    let code = leaf.contains("[JIT]") || leaf.contains("[unknown]");
    if !in_isolate && !code {
        return Place::OutsideIsolate;
    }
    let name = symbol(leaf);
    if code {
        Place::Code
    } else if leaf.contains("[kernel") {
        Place::Kernel
    } else if name.starts_with("Builtins_") || name.starts_with("v8::") || name.contains("cppgc") {
        Place::V8
    } else {
        Place::RuntimeApis
    }
}

/// The symbol of a `perf script` frame line: `<ip> <symbol> (<dso>)`.
fn symbol(frame: &str) -> &str {
    let after_ip = frame.split_once(' ').map_or(frame, |(_, rest)| rest);
    after_ip.rsplit_once(" (").map_or(after_ip, |(symbol, _)| symbol)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_are_placed_by_their_stack() {
        let script = "\
50000
\t 7f01 [unknown] ([JIT] tid 7)
\t 5201 Builtins_JSEntry (/bin/workerd)

50000
\t 3300 v8::internal::Heap::CollectGarbage (/bin/workerd)
\t 5201 Builtins_JSRunMicrotasksEntry (/bin/workerd)

50000
\t 2100 workerd::api::fetchImpl (/bin/workerd)
\t 5201 Builtins_JSEntry (/bin/workerd)

50000
\tffffffff81 tcp_sendmsg ([kernel.kallsyms])
\t 2100 kj::EventLoop::turn (/bin/workerd)

";
        let cpu = classify(script);
        assert_eq!(cpu.get(Place::Code), 50_000);
        assert_eq!(cpu.get(Place::V8), 50_000);
        assert_eq!(cpu.get(Place::RuntimeApis), 50_000);
        assert_eq!(cpu.get(Place::OutsideIsolate), 50_000);
        assert_eq!(cpu.isolate_ns(), 150_000);
        assert!((cpu.isolate_share() - 0.75).abs() < 1e-9);
    }
}
