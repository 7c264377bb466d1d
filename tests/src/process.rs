//! Child processes that cannot outlive the tests: each runs in its own process group (so
//! `wrangler` and the `workerd` it starts go together), logs to a file, and is stopped —
//! SIGTERM, then SIGKILL after a grace period — when its [`Service`] is dropped, including
//! while a failing test unwinds. A SIGINT/SIGTERM to the test process stops them too.

use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Once;
use std::time::{Duration, Instant};

/// Process groups to stop if the test process is interrupted. Fixed slots: a signal handler
/// may only touch atomics.
static GROUPS: [AtomicI32; 64] = [const { AtomicI32::new(0) }; 64];
static HANDLER: Once = Once::new();

extern "C" fn stop_all_and_exit(signal: libc::c_int) {
    for slot in &GROUPS {
        let pgid = slot.load(Ordering::SeqCst);
        if pgid > 0 {
            // SAFETY: kill(2) is async-signal-safe.
            unsafe { libc::kill(-pgid, libc::SIGKILL) };
        }
    }
    // SAFETY: _exit(2) is async-signal-safe; 128 + signal is the shell's convention.
    unsafe { libc::_exit(128 + signal) };
}

fn install_signal_handler() {
    HANDLER.call_once(|| {
        for signal in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
            // SAFETY: the handler only calls async-signal-safe functions.
            unsafe { libc::signal(signal, stop_all_and_exit as *const () as libc::sighandler_t) };
        }
    });
}

/// A running child process with its own process group and log file.
pub struct Service {
    name: String,
    child: Child,
    log: PathBuf,
}

impl Service {
    /// Starts `command` in a new process group, stdout and stderr appended to `log`.
    pub fn spawn(name: &str, mut command: Command, log: &Path) -> Result<Self, String> {
        install_signal_handler();
        let file = File::options()
            .create(true)
            .append(true)
            .open(log)
            .map_err(|e| format!("cannot open {}: {e}", log.display()))?;
        let err = file.try_clone().map_err(|e| e.to_string())?;
        command.stdin(Stdio::null()).stdout(file).stderr(err).process_group(0);
        let child = command.spawn().map_err(|e| format!("cannot start {name} ({:?}): {e}", command.get_program()))?;
        let pid = child.id() as i32;
        // Register for the signal handler; with every slot taken, Drop still stops it.
        let _registered = GROUPS.iter().any(|s| s.compare_exchange(0, pid, Ordering::SeqCst, Ordering::SeqCst).is_ok());
        Ok(Self { name: name.to_owned(), child, log: log.to_owned() })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The process id of the program started (the leader of its group).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sets the scheduling priority (nice value) of every process in this service's group:
    /// a bench raises the process it measures above whatever else runs on the machine.
    pub fn set_priority(&self, nice: i32) -> Result<(), String> {
        // SAFETY: a plain syscall on a process group this struct created.
        let result = unsafe { libc::setpriority(libc::PRIO_PGRP, self.child.id(), nice) };
        if result == 0 {
            Ok(())
        } else {
            Err(format!("setpriority({nice}) of {}: {}", self.name, std::io::Error::last_os_error()))
        }
    }

    /// Resident memory (KiB) of the processes named `program` in this service's process
    /// group (e.g. the `workerd` that `wrangler dev` runs), from `/proc`.
    pub fn group_rss_kib(&self, program: &str) -> u64 {
        let group = self.child.id().to_string();
        let Ok(entries) = std::fs::read_dir("/proc") else { return 0 };
        entries
            .filter_map(Result::ok)
            .filter_map(|entry| std::fs::read_to_string(entry.path().join("stat")).ok())
            .filter_map(|stat| {
                // `pid (comm) state ppid pgrp …`; comm may hold spaces, so split after `)`.
                let (head, rest) = stat.rsplit_once(") ")?;
                let comm = head.split_once(" (")?.1;
                let fields: Vec<&str> = rest.split(' ').collect();
                let rss_pages: u64 = fields.get(21)?.parse().ok()?;
                (comm == program && fields.get(2) == Some(&group.as_str())).then_some(rss_pages * 4)
            })
            .sum()
    }

    /// CPU time (user + system, in clock ticks of `_SC_CLK_TCK`) the processes named
    /// `program` in this service's process group have used so far, from `/proc/<pid>/stat`.
    pub fn group_cpu_ticks(&self, program: &str) -> u64 {
        let group = self.child.id().to_string();
        let Ok(entries) = std::fs::read_dir("/proc") else { return 0 };
        entries
            .filter_map(Result::ok)
            .filter_map(|entry| std::fs::read_to_string(entry.path().join("stat")).ok())
            .filter_map(|stat| {
                let (head, rest) = stat.rsplit_once(") ")?;
                let comm = head.split_once(" (")?.1;
                let fields: Vec<&str> = rest.split(' ').collect();
                // After `)`: state(0) ppid(1) pgrp(2) … utime(11) stime(12).
                let utime: u64 = fields.get(11)?.parse().ok()?;
                let stime: u64 = fields.get(12)?.parse().ok()?;
                (comm == program && fields.get(2) == Some(&group.as_str())).then_some(utime + stime)
            })
            .sum()
    }

    /// CPU time in nanoseconds every thread of the processes named `program` in this
    /// service's process group has run so far (`/proc/<pid>/task/<tid>/schedstat`): finer
    /// than [`Service::group_cpu_ticks`], and CPU, not wall time.
    pub fn group_cpu_ns(&self, program: &str) -> u64 {
        self.group_members(program)
            .into_iter()
            .filter_map(|pid| std::fs::read_dir(format!("/proc/{pid}/task")).ok())
            .flat_map(|tasks| tasks.filter_map(Result::ok))
            .filter_map(|task| std::fs::read_to_string(task.path().join("schedstat")).ok())
            .filter_map(|text| text.split(' ').next()?.parse::<u64>().ok())
            .sum()
    }

    /// The pids of the processes named `program` in this process's group.
    pub fn group_members(&self, program: &str) -> Vec<u32> {
        let group = self.child.id().to_string();
        let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
        entries
            .filter_map(Result::ok)
            .filter(|entry| {
                std::fs::read_to_string(entry.path().join("stat")).ok().is_some_and(|stat| {
                    let Some((head, rest)) = stat.rsplit_once(") ") else { return false };
                    let comm = head.split_once(" (").map(|(_, c)| c);
                    comm == Some(program) && rest.split(' ').nth(2) == Some(group.as_str())
                })
            })
            .filter_map(|entry| entry.file_name().to_str()?.parse().ok())
            .collect()
    }

    /// False once the process has exited.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The last `lines` lines of the log, for failure messages.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// Stops the whole process group: SIGTERM, up to 5 s to exit, then SIGKILL.
    pub fn stop(&mut self) {
        let pgid = self.child.id() as i32;
        if self.is_running() {
            // SAFETY: plain syscalls on a process group this struct created.
            unsafe { libc::kill(-pgid, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(5);
            while self.is_running() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        // Grandchildren (workerd under wrangler) may outlive their parent: kill the group and
        // wait until no member is left, so nothing outlives the test run.
        unsafe { libc::kill(-pgid, libc::SIGKILL) };
        let _ = self.child.wait();
        let _ = wait_until(&format!("{} to exit", self.name), Duration::from_secs(5), || {
            // SAFETY: signal 0 only checks whether the group still has members.
            (unsafe { libc::kill(-pgid, 0) } != 0).then_some(())
        });
        for slot in &GROUPS {
            let _ = slot.compare_exchange(pgid, 0, Ordering::SeqCst, Ordering::SeqCst);
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("can bind an ephemeral port on 127.0.0.1");
    listener.local_addr().expect("bound socket has an address").port()
}

/// Polls `probe` every 25 ms until it returns `Some` or `timeout` passes.
pub fn wait_until<T>(what: &str, timeout: Duration, mut probe: impl FnMut() -> Option<T>) -> Result<T, String> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = probe() {
            return Ok(value);
        }
        if Instant::now() >= deadline {
            return Err(format!("timed out after {timeout:?} waiting for {what}"));
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}
