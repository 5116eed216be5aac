//! The command line: clap types whose doc comments are the help text and the man page.

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::allocator::parse_port;

/// Hand out collision-free development-server ports to git worktrees
///
/// Every worktree of a repository can run its web, api, db, redis, grpc and websocket servers
/// side by side: git-ports gives each worktree its own port per service, records it in one
/// registry per repository (<common dir>/worktree-ports.json) and never gives one port to two
/// worktrees. Run without a command it shows the status of every allocation.
#[derive(Debug, Parser)]
#[command(
    name = "git-ports",
    bin_name = "git ports",
    version,
    args_conflicts_with_subcommands = true,
    disable_help_subcommand = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    #[command(flatten)]
    pub status: StatusArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    Allocate(AllocateArgs),
    Release(ReleaseArgs),
    Check(CheckArgs),
    Available(AvailableArgs),
    Status(StatusArgs),
}

fn port(s: &str) -> Result<u16, String> {
    parse_port(s)
}

/// Allocate ports to a worktree
///
/// For each service, takes the lowest port of the service's range that no worktree holds and
/// nothing on this machine is bound to, and records it for the worktree. A service the
/// worktree already holds keeps its port (the command is safe to repeat). The forms of the
/// original port_allocate.py script (--service, --release, --check, --available) also work.
#[derive(Debug, Args)]
pub struct AllocateArgs {
    /// Services to allocate a port for: web, api, db, redis, grpc, websocket, or one of
    /// ports.<service>.range in git config
    #[arg(value_name = "SERVICE")]
    pub services: Vec<String>,

    /// A service to allocate (the script's form; same as the SERVICE argument)
    #[arg(long = "service", value_name = "SERVICE")]
    pub service_flags: Vec<String>,

    /// The worktree: its name, its path, or its branch (default: the current worktree)
    #[arg(long, short = 'w', value_name = "WORKTREE")]
    pub worktree: Option<String>,

    /// Ask for this port instead of the lowest free one (one service only)
    #[arg(long, value_parser = port, value_name = "PORT")]
    pub port: Option<u16>,

    /// Release a port (the script's form of `git ports release PORT`)
    #[arg(long, value_parser = port, value_name = "PORT", conflicts_with_all = ["check", "available", "port"])]
    pub release: Vec<u16>,

    /// Check a port (the script's form of `git ports check PORT`)
    #[arg(long, value_parser = port, value_name = "PORT", conflicts_with_all = ["available", "port"])]
    pub check: Option<u16>,

    /// List free ports of a service (the script's form of `git ports available SERVICE`)
    #[arg(long, value_name = "SERVICE", conflicts_with = "port")]
    pub available: Option<String>,

    /// Print JSON for scripts
    #[arg(long)]
    pub json: bool,
}

/// Release ports back to the pool
///
/// Releases the given ports, or with --worktree every port of that worktree (only the one of
/// --service if given). Releasing a port nobody holds is an error.
#[derive(Debug, Args)]
pub struct ReleaseArgs {
    /// Ports to release
    #[arg(value_parser = port, value_name = "PORT", required_unless_present = "worktree")]
    pub ports: Vec<u16>,

    /// Release the ports of this worktree (name, path or branch; also a removed worktree's name)
    #[arg(long, short = 'w', value_name = "WORKTREE", conflicts_with = "ports")]
    pub worktree: Option<String>,

    /// With --worktree: release only this service's port
    #[arg(long, value_name = "SERVICE", requires = "worktree")]
    pub service: Option<String>,

    /// Print JSON for scripts
    #[arg(long)]
    pub json: bool,
}

/// Tell whether a port is free
///
/// Exits 0 if no worktree holds the port, 4 if one does. Also says which services' ranges
/// contain it and whether something on this machine is listening on it now.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The port to check
    #[arg(value_parser = port, value_name = "PORT")]
    pub port: u16,

    /// Print JSON for scripts
    #[arg(long)]
    pub json: bool,
}

/// List the allocated and free ports of a service
#[derive(Debug, Args)]
pub struct AvailableArgs {
    /// The service
    #[arg(value_name = "SERVICE")]
    pub service: String,

    /// Print JSON for scripts
    #[arg(long)]
    pub json: bool,
}

/// Show who holds which port, on which branch, and whether it is running
///
/// Grouped by worktree by default; --worktree shows one worktree in detail and --service one
/// service across worktrees. Worktrees the registry remembers but git no longer has are marked
/// stale.
#[derive(Debug, Args, Default)]
pub struct StatusArgs {
    /// Show every allocation, grouped by worktree (the default)
    #[arg(long, conflicts_with_all = ["worktree", "service"])]
    pub all: bool,

    /// Show one worktree: its name, path or branch
    #[arg(long, short = 'w', value_name = "WORKTREE", conflicts_with = "service")]
    pub worktree: Option<String>,

    /// Show one service across worktrees
    #[arg(long, value_name = "SERVICE")]
    pub service: Option<String>,

    /// Connect to each allocated port and report RUNNING, STOPPED or ERROR
    #[arg(long)]
    pub health_check: bool,

    /// Seconds to wait for each health-check connection
    #[arg(long, value_name = "SECONDS", default_value_t = 2.0, value_parser = seconds)]
    pub timeout: f64,

    /// Print JSON for scripts
    #[arg(long)]
    pub json: bool,
}

fn seconds(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(t) if t.is_finite() && t > 0.0 && t <= 3600.0 => Ok(t),
        _ => Err(format!("'{s}' is not a number of seconds from 0 to 3600")),
    }
}

/// The formats of `git ports env`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EnvFormat {
    Shell,
    Dotenv,
    Json,
}
