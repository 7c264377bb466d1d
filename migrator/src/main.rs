//! `migrator`: the operators' CLI that moves legacy position and order keys to edgesync's
//! standardized key schema (see `docs/design.md`, "Migrator"). Every original is journaled
//! before it is touched, so a run can resume after a crash, be verified, and be rolled back
//! exactly.
//!
//! This is the command-line skeleton; the subcommands report that they are not available yet
//! rather than pretending to work.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Journaled, resumable, verifiable and reversible migration of legacy Redis keys.
#[derive(Parser)]
#[command(name = "migrator", version, propagate_version = true)]
#[command(after_help = "Exit codes: 0 success, 1 failure or mismatch, 2 usage error.")]
struct Cli {
    #[command(subcommand)]
    command: Step,
}

#[derive(Subcommand)]
enum Step {
    /// Classify every legacy key and show what `apply` would do; writes nothing.
    Plan,
    /// Journal and move legacy keys to the schema, resuming an interrupted run.
    Apply,
    /// Check every migrated key against its journaled original.
    Verify,
    /// Restore every original exactly and remove what the migration created.
    Rollback,
    /// Show the journal's progress.
    Status,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let name = match cli.command {
        Step::Plan => "plan",
        Step::Apply => "apply",
        Step::Verify => "verify",
        Step::Rollback => "rollback",
        Step::Status => "status",
    };
    eprintln!("migrator: `{name}` is not implemented yet in this version");
    ExitCode::FAILURE
}
