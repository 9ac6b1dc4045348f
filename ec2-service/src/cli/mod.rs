//! The command line of the `ec2-service` binary: the daemon and the operator's tools.

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
    /// Run the recipe on local files: variants and metadata.json under --out.
    Process(process::ProcessArgs),
}

/// Runs the parsed command and returns the process exit status.
pub fn run(cli: Cli) -> i32 {
    match cli.command {
        Command::Process(args) => process::run(cli.config.as_deref(), &args),
    }
}
