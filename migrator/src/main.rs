//! `migrator`: the operators' CLI. See the library (`edgesync_migrator`) for what each step
//! does; this file only parses arguments, opens the connection and the journal, runs the
//! step and prints its report (text, or JSON with `--json`).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use edgesync_core::keys::KeySpace;
use edgesync_migrator::apply::{apply, lock_key, ApplyOptions};
use edgesync_migrator::connect::{open_connection, open_with, redacted, Connection, Connector, Trust};
use edgesync_migrator::journal::{self, heads, Journal, SledJournal};
use edgesync_migrator::journal_owner::{self, Database};
use edgesync_migrator::rules::{builtin, RuleOptions, RuleSet, Target};
use edgesync_migrator::sides::Sides;
use edgesync_migrator::value::SizeLimits;
use edgesync_migrator::{exit, generate, plan, rollback, verify};
use futures_executor::block_on;
use serde::Serialize;

const EXIT_CODES: &str =
    "Exit codes: 0 success; 1 the step found problems (conflicts, unparseable or wrong-type keys, \
verify mismatches, rollback refusals); 2 usage error (arguments, rules file); 3 could not run (connection, journal, \
or another apply holds the lock).";

/// Journaled, resumable, verifiable and reversible migration of legacy Redis keys to
/// edgesync's key schema.
#[derive(Parser)]
#[command(name = "migrator", version, propagate_version = true, after_help = EXIT_CODES)]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    step: Step,
}

#[derive(Args)]
struct Global {
    /// Redis to migrate: redis://, rediss:// (TLS) or https:// (Upstash REST; http:// for a gateway on
    /// a trusted network).
    #[arg(long, global = true, env = "MIGRATOR_REDIS_URL", hide_env_values = true)]
    url: Option<String>,
    /// Token for an https:// (Upstash REST) URL.
    #[arg(long, global = true, env = "UPSTASH_REDIS_REST_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Another Redis to move the keys into (redis://, rediss:// — a single node or any node of
    /// a cluster — or https:// Upstash REST): sources are read and deleted where they are,
    /// targets written there. Give it to verify and rollback too (the journal remembers it).
    #[arg(long, global = true, env = "MIGRATOR_TARGET_URL", hide_env_values = true)]
    target_url: Option<String>,
    /// Token for an https:// (Upstash REST) --target-url.
    #[arg(long, global = true, env = "MIGRATOR_TARGET_TOKEN", hide_env_values = true)]
    target_token: Option<String>,
    /// PEM file of the CA certificates to trust for rediss:// and https:// instead of the
    /// bundled Mozilla roots (a self-hosted Redis with a private CA).
    #[arg(long, global = true, env = "MIGRATOR_TLS_CA", hide_env_values = true, value_name = "FILE")]
    tls_ca: Option<PathBuf>,
    /// PEM file of the CA certificates to trust for a rediss:// or https:// --target-url
    /// (the source's `--tls-ca` is the source's alone).
    #[arg(long, global = true, env = "MIGRATOR_TARGET_TLS_CA", hide_env_values = true, value_name = "FILE")]
    target_tls_ca: Option<PathBuf>,
    /// The journal directory (sled). Keep it until you are sure you will not roll back.
    #[arg(long, global = true, default_value = "migrator-journal")]
    journal: PathBuf,
    /// A built-in rule set (generic, tradingboost, qrl-api; see `migrator rules list`) or a
    /// TOML file of rules.
    #[arg(long, global = true, value_name = "NAME|FILE", default_value = builtin::DEFAULT)]
    rules: String,
    /// Namespace of the target prefix `{namespace}:v1:` (sets whose target is the namespace).
    #[arg(long, global = true, default_value = "qrl")]
    namespace: String,
    /// Target prefix, instead of the set's own target (in place, or `{namespace}:v1:`).
    /// `''` standardizes keys in place.
    #[arg(long, global = true)]
    target_prefix: Option<String>,
    /// Side for positions whose key and value name none.
    #[arg(long, global = true)]
    default_side: Option<String>,
    /// Keys per round trip.
    #[arg(long, global = true, default_value_t = 500)]
    batch: usize,
    /// Strings longer than this many bytes are reported as too large and left in place, never
    /// loaded (each moved value is held in memory and journaled whole).
    #[arg(long, global = true, value_name = "BYTES", default_value_t = SizeLimits::default().max_string_bytes)]
    max_value_bytes: u64,
    /// Hashes, sets, sorted sets and lists with more elements than this are reported as too
    /// large and left in place, never loaded.
    #[arg(long, global = true, value_name = "N", default_value_t = SizeLimits::default().max_elements)]
    max_elements: u64,
    /// Print the report as JSON on stdout.
    #[arg(long, global = true)]
    json: bool,
}

#[derive(Subcommand)]
enum Step {
    /// Classify every key the rules own (SCAN, never KEYS) and count per rule; writes nothing
    /// to Redis (keys are counted once through scratch files in $TMPDIR).
    #[command(after_help = EXIT_CODES)]
    Plan,
    /// Journal and move the keys, resuming an interrupted run.
    #[command(after_help = EXIT_CODES)]
    Apply {
        /// At most this many keys per second (a token bucket holding one batch).
        #[arg(long, value_name = "KEYS_PER_SECOND", value_parser = positive_rate)]
        rate: Option<f64>,
        /// Leave the legacy keys in place.
        #[arg(long)]
        keep_source: bool,
        /// Replace targets that hold a different value (otherwise they are reported).
        #[arg(long)]
        overwrite: bool,
        /// No progress bar on stderr.
        #[arg(long)]
        no_progress: bool,
    },
    /// Check every migrated key against its journaled original.
    #[command(after_help = EXIT_CODES)]
    Verify,
    /// Restore every original exactly and remove what the migration created.
    #[command(after_help = EXIT_CODES)]
    Rollback {
        /// Restore even where a target changed after the migration.
        #[arg(long)]
        force: bool,
    },
    /// Show the journal's counts per state.
    #[command(after_help = EXIT_CODES)]
    Status,
    /// The built-in rule sets: `rules list`, or `rules show NAME` to print one (TOML, the
    /// format of `--rules FILE`) to copy and adapt.
    Rules {
        #[command(subcommand)]
        action: RulesAction,
    },
    /// Write a seeded legacy dataset (for tests and benchmarks) and print its truth.
    #[command(hide = true)]
    Generate {
        #[arg(long, default_value_t = 100_000)]
        keys: u64,
        #[arg(long, default_value_t = 42)]
        seed: u64,
    },
}

#[derive(Subcommand)]
enum RulesAction {
    /// Each built-in set with what it is for.
    List,
    /// Print a built-in set's TOML.
    Show { name: String },
}

fn rules_step(action: &RulesAction) -> Result<ExitCode, StepError> {
    match action {
        RulesAction::List => {
            for name in builtin::names() {
                let set = builtin::load(name).map_err(|e| StepError::Failed(e.to_string()))?;
                println!("{name:14} {}", set.description);
            }
            Ok(ExitCode::from(exit::OK))
        }
        RulesAction::Show { name } => match builtin::text(name) {
            Some(text) => {
                print!("{text}");
                Ok(ExitCode::from(exit::OK))
            }
            None => Err(StepError::Usage(format!("no built-in rule set `{name}` ({})", builtin::names().join(", ")))),
        },
    }
}

/// The journal directory as an absolute path, created if missing (by `apply`, the one step
/// that starts a journal), so every file the steps put in it (segments, scratch sets) is found
/// again whatever the working directory.
fn journal_dir(path: &std::path::Path) -> Result<PathBuf, StepError> {
    std::fs::create_dir_all(path)
        .map_err(|e| StepError::Failed(format!("cannot create the journal {}: {e}", path.display())))?;
    path.canonicalize().map_err(|e| StepError::Failed(format!("cannot resolve the journal {}: {e}", path.display())))
}

/// The journal a reading step (`verify`, `rollback`, `status`) works on, which must exist:
/// creating an empty one and reporting on it would tell an operator in the wrong directory
/// that all is well.
fn existing_journal_dir(path: &std::path::Path, step: &str) -> Result<PathBuf, StepError> {
    if journal::exists(path) {
        return journal_dir(path);
    }
    let shown = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
    Err(StepError::Usage(format!(
        "no journal at {}: `{step}` reads the journal `apply` wrote; run it in the directory apply ran in, or give \
         --journal with that journal's path",
        shown.display()
    )))
}

/// Why a step could not run: bad usage (exit 2) or a failure to run at all (exit 3).
#[derive(Debug, thiserror::Error)]
enum StepError {
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Failed(String),
}

impl StepError {
    fn exit_code(&self) -> u8 {
        match self {
            StepError::Usage(_) => exit::USAGE,
            StepError::Failed(_) => exit::FAILED,
        }
    }
}

fn failed(error: impl std::fmt::Display) -> StepError {
    StepError::Failed(error.to_string())
}

/// Prints a step's report and turns whether it found problems into the exit code.
fn report<T: Serialize>(json: bool, report: &T, clean: bool) -> Result<ExitCode, StepError> {
    let value = serde_json::to_value(report).expect("reports serialize");
    if json {
        println!("{}", serde_json::to_string_pretty(&value).expect("JSON prints"));
    } else {
        print!("{}", edgesync_migrator::render::text(&value));
    }
    Ok(ExitCode::from(if clean { exit::OK } else { exit::PROBLEMS }))
}

#[derive(Serialize, Debug, Default)]
struct StatusReport {
    entries: u64,
    states: std::collections::BTreeMap<String, u64>,
}

fn positive_rate(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(rate) if rate.is_finite() && rate > 0.0 => Ok(rate),
        _ => Err(format!("`{text}` is not a positive number of keys per second")),
    }
}

/// jemalloc rather than the system allocator: a third less CPU for `apply` (allocation was
/// ~40 % of its profile under glibc) with memory as flat from 100 k to 1 M keys, and no
/// allocator tuning (docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's options, read when it starts (`_rjem_` is tikv-jemalloc-sys's symbol prefix; a
/// C `const char *`): freed pages go back to the system after a second instead of ~10 s, so
/// peak RSS follows what is in use (72 MB at 100 k keys, 74 MB at 1 M). Returning them at once
/// (`dirty_decay_ms:0`) saved another 10 MB but cost 4.6 s of page faults and `madvise` per
/// 1 M keys, as every large buffer freed was faulted in again by the next batch
/// (docs/benchmarks.md). `_RJEM_MALLOC_CONF` still overrides it.
#[export_name = "_rjem_malloc_conf"]
static JEMALLOC_OPTIONS: &[u8; 37] = b"dirty_decay_ms:1000,muzzy_decay_ms:0\0";

/// The CLI, with the Redis, journal and rule options left out of `migrator rules --help`: they
/// are global for the steps, and `rules` (which reads only the built-in sets) uses none of them.
fn command() -> clap::Command {
    fn without_globals(command: clap::Command) -> clap::Command {
        command.mut_args(|arg| if arg.is_global_set() { arg.hide(true) } else { arg })
    }
    let mut command = Cli::command();
    command.build();
    command.mut_subcommand("rules", |rules| without_globals(rules).mut_subcommands(without_globals))
}

fn main() -> ExitCode {
    let cli = match Cli::from_arg_matches(&command().get_matches()) {
        Ok(cli) => cli,
        Err(error) => error.exit(),
    };
    run(&cli).unwrap_or_else(|error| {
        eprintln!("migrator: {error}");
        ExitCode::from(error.exit_code())
    })
}

fn run(cli: &Cli) -> Result<ExitCode, StepError> {
    let global = &cli.global;
    if global.batch == 0 {
        return Err(StepError::Usage("--batch must be at least 1".into()));
    }
    if let Step::Rules { action } = &cli.step {
        return rules_step(action);
    }
    let set: RuleSet = builtin::resolve(&global.rules).map_err(|e| StepError::Usage(format!("--rules: {e}")))?;
    let prefix = match (&global.target_prefix, set.target) {
        (Some(prefix), _) => prefix.clone(),
        (None, Target::InPlace) => String::new(),
        (None, Target::Namespace) => {
            let keys = KeySpace::new(&global.namespace).map_err(|e| StepError::Usage(format!("--namespace: {e}")))?;
            format!("{}:", keys.prefix())
        }
    };
    let rule_options = RuleOptions {
        target_prefix: prefix.clone(),
        default_side: global.default_side.clone(),
        limits: SizeLimits { max_string_bytes: global.max_value_bytes, max_elements: global.max_elements },
    };
    // Opened by the steps that keep one (not `plan`, which writes nothing anywhere); only
    // `apply` starts one.
    let step_name = match &cli.step {
        Step::Apply { .. } => None,
        Step::Verify => Some("verify"),
        Step::Rollback { .. } => Some("rollback"),
        _ => Some("status"),
    };
    let journal_path = || match step_name {
        None => journal_dir(&global.journal),
        Some(step) => existing_journal_dir(&global.journal, step),
    };
    if matches!(cli.step, Step::Verify | Step::Rollback { .. } | Step::Status) {
        journal_path()?;
    }
    let journal = || -> Result<SledJournal, StepError> { SledJournal::open(&journal_path()?).map_err(failed) };

    if let Step::Status = cli.step {
        let journal = journal()?;
        let mut status = StatusReport::default();
        // Heads only: a state is all it counts, and decoding originals was most of its time.
        for page in heads(&journal, false, 10_000) {
            for entry in page.map_err(failed)? {
                status.entries += 1;
                *status.states.entry(format!("{:?}", entry.state).to_lowercase()).or_default() += 1;
            }
        }
        let unfinished = status.states.get("pending").copied().unwrap_or(0);
        return report(global.json, &status, unfinished == 0);
    }

    let url =
        global.url.as_ref().ok_or_else(|| StepError::Usage("no Redis: give --url or set MIGRATOR_REDIS_URL".into()))?;
    let trust_from = |file: &Option<PathBuf>, flag: &str| match file {
        Some(path) => {
            Trust::from_pem_file(path).map_err(|e| StepError::Usage(e.to_string().replacen("--tls-ca", flag, 1)))
        }
        None => Ok(Trust::default()),
    };
    let trust = trust_from(&global.tls_ca, "--tls-ca")?;
    let target_trust = trust_from(&global.target_tls_ca, "--target-tls-ca")?;
    let connection = open_connection(url, global.token.as_deref(), &trust).map_err(|error| match error {
        edgesync_migrator::connect::ConnectError::Usage(message) => StepError::Usage(message),
        other => failed(other),
    })?;
    let store = connection.store();
    let source = match &connection {
        Connection::Cluster(cluster) => Database::cluster(cluster.masters()),
        Connection::Single(_) => Database::single(url),
    };
    // apply, verify and rollback open more connections of their own (docs/design.md).
    let connector = Connector::new(url, global.token.as_deref(), &trust);
    let target_connector = global
        .target_url
        .as_deref()
        .map(|target| Connector::new(target, global.target_token.as_deref(), &target_trust));
    let target = match &global.target_url {
        Some(target) => {
            Some(open_with(target, global.target_token.as_deref(), &target_trust).map_err(|error| match error {
                edgesync_migrator::connect::ConnectError::Usage(message) => {
                    StepError::Usage(format!("--target-url: {message}"))
                }
                other => failed(format!("--target-url: {other}")),
            })?)
        }
        None => None,
    };
    let target = target.as_deref();
    if target.is_some() && matches!(&cli.step, Step::Apply { overwrite: true, .. }) {
        return Err(StepError::Usage(
            "--overwrite with --target-url is not supported: the target's keys are not replaced".into(),
        ));
    }
    let journaled_owner = |record: bool| -> Result<(), StepError> {
        journal_owner::check(&journal_path()?, &source, global.target_url.as_deref(), record)
            .map_err(|e| StepError::Usage(e.to_string()))
    };

    match &cli.step {
        Step::Plan => {
            let sides = Sides::with_target(store, target);
            let planned = block_on(plan::plan(sides, &set, &rule_options, global.batch, &std::env::temp_dir()))
                .map_err(|e| failed(format!("{}: {e}", redacted(url))))?;
            report(global.json, &planned, !planned.has_problems())
        }
        Step::Apply { rate, keep_source, overwrite, no_progress } => {
            journaled_owner(true)?;
            let journal = journal()?;
            let options = ApplyOptions {
                batch: global.batch,
                rate: *rate,
                keep_source: *keep_source,
                overwrite: *overwrite,
                progress: !no_progress && !global.json,
                lock_key: lock_key(),
                connector: Some(connector.clone()),
                target: target_connector.clone(),
            };
            let applied =
                block_on(apply(store, &journal as &dyn Journal, &set, &rule_options, &options)).map_err(failed)?;
            report(global.json, &applied, !applied.has_problems())
        }
        Step::Verify => {
            journaled_owner(false)?;
            let verified =
                block_on(verify::verify(store, &journal()?, global.batch, Some(&connector), target)).map_err(failed)?;
            report(global.json, &verified, verified.is_clean())
        }
        Step::Rollback { force } => {
            journaled_owner(false)?;
            let rolled = block_on(rollback::rollback(
                store,
                &journal()?,
                global.batch,
                *force,
                Some(&connector),
                target_connector.as_ref(),
            ))
            .map_err(failed)?;
            report(global.json, &rolled, rolled.refused == 0)
        }
        Step::Generate { keys, seed } => {
            let truth = block_on(generate::generate(store, *keys, *seed, &prefix)).map_err(failed)?;
            report(global.json, &truth, true)
        }
        Step::Status | Step::Rules { .. } => Err(StepError::Failed("handled before connecting".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_help_lists_only_what_rules_takes() {
        let mut command = command();
        let rules = command.find_subcommand_mut("rules").unwrap().render_help().to_string();
        assert!(!rules.contains("--url") && !rules.contains("--journal"), "{rules}");
        let verify = command.find_subcommand_mut("verify").unwrap().render_help().to_string();
        assert!(verify.contains("--url") && verify.contains("--journal"), "{verify}");
        let parsed = Cli::from_arg_matches(&command.try_get_matches_from(["migrator", "rules", "list"]).unwrap());
        assert!(matches!(parsed.unwrap().step, Step::Rules { action: RulesAction::List }));
    }
}
