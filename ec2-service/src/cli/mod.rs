//! The command line of the `ec2-service` binary: the daemon and the operator's tools.

pub mod admin_client;
pub mod ops;
pub mod process;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Exit status for a bad command line or configuration (sysexits EX_USAGE).
pub const EXIT_USAGE: i32 = 64;

#[derive(Debug, Parser)]
#[command(
    name = "ec2-service",
    version,
    about = "Image pipeline daemon and operator tools"
)]
pub struct Cli {
    /// Config file (TOML). Default: /etc/ec2-service/config.toml if it exists, else the
    /// built-in defaults.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon: accept signed jobs, process them, serve health and metrics.
    Serve,
    /// Queue depth, jobs in flight, recent failures and readiness of the running daemon.
    Status,
    /// The running daemon's unfinished and recently finished jobs.
    Jobs {
        /// Only jobs that failed or are retrying after an error.
        #[arg(long)]
        failed: bool,
    },
    /// Process sources again (their current version), whatever their records say.
    Reprocess {
        /// Source keys in the source bucket, as stored (not URL-encoded).
        #[arg(required = true, value_name = "KEY")]
        keys: Vec<String>,
    },
    /// List the source bucket and enqueue every object whose record is missing, failed,
    /// or of an older recipe version.
    Reconcile {
        /// Only keys starting with this prefix.
        #[arg(long, value_name = "P")]
        prefix: Option<String>,
    },
    /// Run the recipe on local files: variants and metadata.json under --out.
    Process(process::ProcessArgs),
}

/// Runs the parsed command and returns the process exit status.
pub fn run(cli: Cli) -> i32 {
    let config = cli.config.as_deref();
    match cli.command {
        Command::Serve => crate::daemon::serve(config),
        Command::Status => ops::run(config, ops::Op::Status),
        Command::Jobs { failed } => ops::run(config, ops::Op::Jobs { failed }),
        Command::Reprocess { keys } => ops::run(config, ops::Op::Reprocess { keys }),
        Command::Reconcile { prefix } => ops::run(config, ops::Op::Reconcile { prefix }),
        Command::Process(args) => process::run(config, &args),
    }
}
