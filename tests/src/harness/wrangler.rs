//! The worker under `wrangler dev` (offline, quiet, 127.0.0.1 only), and extra workers a
//! test or a benchmark starts beside the stack's.

use std::process::Command;
use std::time::Duration;

use super::{
    agent, repo_root, require_tool, spawn_workerd, spawn_workerd_build, wait_ready, Stack, WorkerRunner, MEXC_API_KEY,
    MEXC_API_SECRET, REDIS_TOKEN,
};
use crate::process::{free_port, Service};

/// Runs `wrangler dev` on a free 127.0.0.1 port — the repository's worker, or the one
/// `config` (a `wrangler.toml` path) describes — and waits until it answers `/health` (the
/// repository's worker) or `/` (another). Offline and quiet, like the Makefile.
pub fn start_wrangler_dev(
    config: Option<&std::path::Path>,
    vars: &[(String, String)],
    log: &std::path::Path,
) -> Result<(Service, String), String> {
    start_wrangler_dev_persisted(config, vars, log, None)
}

/// [`start_wrangler_dev`], keeping wrangler's local state (Durable Objects) in `state`
/// rather than the repository's `.wrangler/state`.
pub fn start_wrangler_dev_persisted(
    config: Option<&std::path::Path>,
    vars: &[(String, String)],
    log: &std::path::Path,
    state: Option<&std::path::Path>,
) -> Result<(Service, String), String> {
    start_wrangler_dev_at(config, vars, log, state, free_port())
}

/// [`start_wrangler_dev_persisted`] on `port` (127.0.0.1).
pub fn start_wrangler_dev_at(
    config: Option<&std::path::Path>,
    vars: &[(String, String)],
    log: &std::path::Path,
    state: Option<&std::path::Path>,
    port: u16,
) -> Result<(Service, String), String> {
    spawn_wrangler_dev(config, vars, log, state, port).map(|(service, url, _)| (service, url))
}

/// [`start_wrangler_dev_at`], also answering the port of the worker's V8 inspector.
pub fn spawn_wrangler_dev(
    config: Option<&std::path::Path>,
    vars: &[(String, String)],
    log: &std::path::Path,
    state: Option<&std::path::Path>,
    port: u16,
) -> Result<(Service, String, u16), String> {
    let root = repo_root();
    let inspector_port = free_port();
    let wrangler = root.join("node_modules/.bin/wrangler");
    require_tool(wrangler.to_str().unwrap_or_default(), "run `npm ci` in the repository root (`make test` does this)")?;
    let mut command = Command::new(&wrangler);
    command.current_dir(&root).args([
        "dev",
        "--ip",
        "127.0.0.1",
        "--port",
        &port.to_string(),
        "--inspector-ip",
        "127.0.0.1",
        "--inspector-port",
        &inspector_port.to_string(),
        "--show-interactive-dev-session=false",
        "--log-level",
        "log",
    ]);
    if let Some(config) = config {
        command.arg("--config").arg(config);
    }
    if let Some(state) = state {
        command.arg("--persist-to").arg(state);
    }
    for (name, value) in vars {
        command.arg("--var").arg(format!("{name}:{value}"));
    }
    offline_and_quiet(&mut command, &root);
    let mut worker = Service::spawn("wrangler dev", command, log)?;
    let url = format!("http://127.0.0.1:{port}");
    let probe = if config.is_some() { format!("{url}/") } else { format!("{url}/health") };
    wait_ready(&agent(), &mut worker, &probe, Duration::from_secs(240))?;
    Ok((worker, url, inspector_port))
}

/// wrangler's (and Miniflare's) settings for a run that never leaves the machine and keeps
/// its config and cache in the repository, as the Makefile sets them.
pub(super) fn offline_and_quiet(command: &mut Command, root: &std::path::Path) {
    command
        .env("XDG_CONFIG_HOME", root.join(".xdg"))
        .env("XDG_CACHE_HOME", root.join(".cache"))
        .env("WRANGLER_SEND_METRICS", "false")
        .env("WRANGLER_SEND_ERROR_REPORTS", "false")
        .env("CLOUDFLARE_CF_FETCH_ENABLED", "false")
        // The banner is what makes wrangler ask the npm registry for a newer version.
        .env("WRANGLER_HIDE_BANNER", "true");
}

/// Another worker process on the same backend and stand-in (e.g. with different vars).
pub struct ExtraWorker {
    service: Service,
    pub url: String,
    /// Its V8 inspector, on 127.0.0.1.
    pub inspector_port: u16,
}

impl ExtraWorker {
    /// CPU time its workerd has used so far, in clock ticks.
    pub fn workerd_cpu_ticks(&self) -> u64 {
        self.service.group_cpu_ticks("workerd")
    }

    /// See [`Service::set_priority`].
    pub fn set_priority(&self, nice: i32) -> Result<(), String> {
        self.service.set_priority(nice)
    }

    /// CPU time its workerd's threads have run so far, ns.
    pub fn workerd_cpu_ns(&self) -> u64 {
        self.service.group_cpu_ns("workerd")
    }

    /// The pids of its workerd processes.
    pub fn workerd_pids(&self) -> Vec<u32> {
        self.service.group_members("workerd")
    }
}

impl Stack {
    /// Starts a second worker under `wrangler dev` against this stack's Redis and stand-in,
    /// with `vars` added.
    pub fn extra_worker(&self, vars: &[(&str, &str)]) -> Result<ExtraWorker, String> {
        self.extra_worker_on(WorkerRunner::WranglerDev, vars)
    }

    /// [`Stack::extra_worker`], run by `runner`.
    pub fn extra_worker_on(&self, runner: WorkerRunner, vars: &[(&str, &str)]) -> Result<ExtraWorker, String> {
        let spawn = match runner {
            WorkerRunner::WranglerDev => spawn_wrangler_dev,
            WorkerRunner::Workerd => spawn_workerd,
        };
        self.extra_worker_with(vars, |vars, log, state| spawn(None, vars, log, Some(state), free_port()))
    }

    /// [`Stack::extra_worker`], running the worker build in `build` (a copy of `worker/build`)
    /// in workerd.
    pub fn extra_worker_built(&self, build: &std::path::Path, vars: &[(&str, &str)]) -> Result<ExtraWorker, String> {
        self.extra_worker_with(vars, |vars, log, state| spawn_workerd_build(build, vars, log, Some(state), free_port()))
    }

    fn extra_worker_with(
        &self,
        vars: &[(&str, &str)],
        spawn: impl FnOnce(
            &[(String, String)],
            &std::path::Path,
            &std::path::Path,
        ) -> Result<(Service, String, u16), String>,
    ) -> Result<ExtraWorker, String> {
        let mut all = vec![
            ("UPSTASH_REDIS_REST_URL".to_owned(), self.backend.gateway_url.clone()),
            ("UPSTASH_REDIS_REST_TOKEN".to_owned(), REDIS_TOKEN.to_owned()),
            ("MEXC_BASE_URL".to_owned(), self.exchange.url.clone()),
            ("MEXC_API_KEY".to_owned(), MEXC_API_KEY.to_owned()),
            ("MEXC_API_SECRET".to_owned(), MEXC_API_SECRET.to_owned()),
        ];
        all.extend(vars.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let name = format!("worker-{}", free_port());
        let state = self.backend.dir.path().join(format!("{name}-state"));
        let (service, url, inspector_port) = spawn(&all, &self.backend.log(&name), &state)?;
        Ok(ExtraWorker { service, url, inspector_port })
    }
}
