//! A worker in workerd without `wrangler dev`'s dev-only hops (`tests/bench/workerd.mjs`):
//! what the CPU bench measures, since a deployed worker's subrequests do not pass through a
//! second JavaScript worker as they do under `wrangler dev`. Configured from the same
//! `wrangler.toml`; 127.0.0.1 only; the cron fires through `/cdn-cgi/handler/scheduled`.

use std::process::Command;
use std::time::Duration;

use super::{agent, repo_root, require_tool, wait_ready};
use crate::process::{free_port, Service};

/// How a worker is run locally.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkerRunner {
    /// `wrangler dev`: what `make dev` and the e2e suites run.
    WranglerDev,
    /// workerd through Miniflare, without wrangler dev's proxy and outbound hops.
    Workerd,
}

/// Runs the worker `config` describes (the repository's `wrangler.toml` when `None`) in
/// workerd on `port`, with `vars` over the file's, its Durable Objects kept in `state`; waits
/// until it answers `/health` (the repository's worker) or `/` (another). Answers the service,
/// its URL and its V8 inspector's port.
pub fn spawn_workerd(
    config: Option<&std::path::Path>,
    vars: &[(String, String)],
    log: &std::path::Path,
    state: Option<&std::path::Path>,
    port: u16,
) -> Result<(Service, String, u16), String> {
    let probe = if config.is_some() { "/" } else { "/health" };
    spawn_workerd_probing(config, probe, vars, log, state, port)
}

/// [`spawn_workerd`], ready when `probe` (a path) answers 2xx.
fn spawn_workerd_probing(
    config: Option<&std::path::Path>,
    probe: &str,
    vars: &[(String, String)],
    log: &std::path::Path,
    state: Option<&std::path::Path>,
    port: u16,
) -> Result<(Service, String, u16), String> {
    let root = repo_root();
    let inspector_port = free_port();
    require_tool("node", "install Node.js (the README's prerequisites)")?;
    let mut command = Command::new("node");
    command.current_dir(&root).arg(root.join("tests/bench/workerd.mjs")).args([
        "--config",
        config.map_or_else(|| root.join("wrangler.toml"), |c| c.to_path_buf()).to_str().unwrap_or_default(),
        "--port",
        &port.to_string(),
        "--inspector-port",
        &inspector_port.to_string(),
    ]);
    if let Some(state) = state {
        command.arg("--persist").arg(state);
    }
    for (name, value) in vars {
        command.arg("--var").arg(format!("{name}:{value}"));
    }
    super::wrangler::offline_and_quiet(&mut command, &root);
    let mut worker = Service::spawn("workerd", command, log)?;
    let url = format!("http://127.0.0.1:{port}");
    wait_ready(&agent(), &mut worker, &format!("{url}{probe}"), Duration::from_secs(240))?;
    Ok((worker, url, inspector_port))
}

/// Runs the worker build in `build` (a copy of `worker/build`, e.g. from another commit) with
/// the repository's `wrangler.toml` otherwise; the configuration is written beside the build,
/// since workerd loads modules only from below the configuration's directory.
pub fn spawn_workerd_build(
    build: &std::path::Path,
    vars: &[(String, String)],
    log: &std::path::Path,
    state: Option<&std::path::Path>,
    port: u16,
) -> Result<(Service, String, u16), String> {
    let repository = std::fs::read_to_string(repo_root().join("wrangler.toml")).map_err(|e| e.to_string())?;
    let config: String = repository
        .lines()
        .map(|line| if line.starts_with("main = ") { "main = \"worker/shim.mjs\"" } else { line })
        .collect::<Vec<_>>()
        .join("\n");
    let path = build.join("wrangler.toml");
    std::fs::write(&path, config).map_err(|e| format!("writing {}: {e}", path.display()))?;
    spawn_workerd_probing(Some(&path), "/health", vars, log, state, port)
}
