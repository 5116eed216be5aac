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
    disable_help_subcommand = false
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    #[command(flatten)]
    pub status: StatusArgs,
}

impl Command {
    /// The command the script's flag forms stand for (`allocate --release PORT`, `--check
    /// PORT`, `--available SERVICE`, as `port_allocate.py` takes them), so each is run by the
    /// command that owns it.
    pub fn canonical(self) -> Command {
        match self {
            Command::Allocate(a) if !a.release.is_empty() => Command::Release(ReleaseArgs {
                ports: a.release,
                worktree: None,
                service: None,
                forget: false,
                json: a.json,
            }),
            Command::Allocate(AllocateArgs {
                check: Some(port),
                json,
                ..
            }) => Command::Check(CheckArgs { port, json }),
            Command::Allocate(AllocateArgs {
                available: Some(service),
                json,
                ..
            }) => Command::Available(AvailableArgs { service, json }),
            c => c,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    Allocate(AllocateArgs),
    Release(ReleaseArgs),
    Check(CheckArgs),
    Available(AvailableArgs),
    Status(StatusArgs),
    Get(GetArgs),
    Env(EnvArgs),
    Exec(ExecArgs),
    Wait(WaitArgs),
    Lease(LeaseArgs),
    Reserve(ReserveArgs),
    Unreserve(UnreserveArgs),
    Mcp(McpArgs),
    Proxy(ProxyArgs),
    Point(PointArgs),
    Prune(PruneArgs),
    Stop(StopArgs),
    Doctor(DoctorArgs),
    Hook(HookArgs),
    Man(ManArgs),
    Completions(CompletionsArgs),
    /// What shell completion offers here (completion scripts run this; not for people)
    #[command(hide = true)]
    Complete(CompleteArgs),
}

/// The arguments of the hidden `complete` command.
#[derive(Debug, Args)]
pub struct CompleteArgs {
    /// `worktrees` (names and branches) or `services` (defaults and git config's)
    #[arg(value_name = "WHAT")]
    pub what: String,
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

    /// Also allocate a port for every service the worktree's compose stack publishes, named
    /// after the compose service (db, redis, web…)
    #[arg(long, conflicts_with = "port")]
    pub compose: bool,

    /// Release a port (the script's form of `git ports release PORT`)
    #[arg(long, value_parser = port, value_name = "PORT", conflicts_with_all = ["check", "available", "port"], hide = true)]
    pub release: Vec<u16>,

    /// Check a port (the script's form of `git ports check PORT`)
    #[arg(long, value_parser = port, value_name = "PORT", conflicts_with_all = ["available", "port"], hide = true)]
    pub check: Option<u16>,

    /// List free ports of a service (the script's form of `git ports available SERVICE`)
    #[arg(long, value_name = "SERVICE", conflicts_with = "port", hide = true)]
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

    /// Also forget that the worktree's name and branch held these ports, so they are not given
    /// back to it first
    #[arg(long)]
    pub forget: bool,

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
///
/// The ports held (by a worktree here, another repository or a lease) or fenced off
/// (ports.exclude, reservations, the proxy's port), the free ones as ranges, and the port
/// `allocate` would give this worktree now.
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

    /// Show every allocation on this machine, grouped by repository and worktree
    #[arg(long, conflicts_with_all = ["worktree", "service", "all"])]
    pub machine: bool,

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

/// A timeout: from a millisecond, the finest any wait here can tell, to an hour.
fn seconds(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(t) if (0.001..=3600.0).contains(&t) => Ok(t),
        _ => Err(format!(
            "'{s}' is not a number of seconds from 0.001 to 3600"
        )),
    }
}

/// Print the port a worktree holds for a service
///
/// Prints just the number, for `--port "$(git ports get web)"`. Exits 2 if the worktree
/// holds no port for the service.
#[derive(Debug, Args)]
pub struct GetArgs {
    /// The service
    #[arg(value_name = "SERVICE")]
    pub service: String,

    /// The worktree: its name, path or branch (default: the current worktree)
    #[arg(long, short = 'w', value_name = "WORKTREE")]
    pub worktree: Option<String>,
}

/// Print a worktree's ports as environment variables
///
/// One variable per allocated service: WEB_PORT, API_PORT, DB_PORT, … (the service in
/// capitals, '-' as '_', then _PORT), or the name set with `git config ports.<service>.env`;
/// for each service with a URL scheme (ports.<service>.scheme: http for web and api, ws for
/// websocket, redis for redis), SERVICE_URL with localhost, which every client on this machine
/// reaches, and for a browser's scheme SERVICE_PUBLIC_HOST and SERVICE_PUBLIC_URL with the
/// worktree's own name; then the variables of `ports.derived` (such as
/// VITE_API_URL={public_url:api}/v1),
/// GIT_PORTS_SLOT with `ports.align`, and COMPOSE_PROJECT_NAME with `ports.compose`. The
/// shell format is safe for `eval "$(git ports env)"`. With --write, the variables go into a
/// file as a marked block instead (a file git tracks is refused).
#[derive(Debug, Args)]
pub struct EnvArgs {
    /// The worktree: its name, path or branch (default: the current worktree)
    #[arg(long, short = 'w', value_name = "WORKTREE")]
    pub worktree: Option<String>,

    /// How to print the variables (default: shell; dotenv with --write)
    #[arg(long, value_enum)]
    pub format: Option<EnvFormat>,

    /// Write the variables into FILE as a marked block, keeping every other line of it
    #[arg(long, value_name = "FILE")]
    pub write: Option<std::path::PathBuf>,
}

/// The formats of `git ports env`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EnvFormat {
    /// `export WEB_PORT=8000` lines
    Shell,
    /// `WEB_PORT=8000` lines, for .env files
    Dotenv,
    /// One JSON object
    Json,
}

/// Run a command with the worktree's ports in its environment
///
/// Adds the variables `git ports env` prints to the environment of COMMAND and becomes it: on
/// Unix COMMAND takes git-ports' process (same pid, its signals and process group), so
/// stopping it stops the server. Before that, if a port of the worktree is already served by
/// a process outside the worktree, it refuses (exit 4) and says who, unless --force.
#[derive(Debug, Args)]
pub struct ExecArgs {
    /// The worktree: its name, path or branch (default: the current worktree)
    #[arg(long, short = 'w', value_name = "WORKTREE")]
    pub worktree: Option<String>,

    /// Start COMMAND even if another process already serves one of the worktree's ports
    #[arg(long)]
    pub force: bool,

    /// Also say which of the worktree's ports its own servers already serve
    #[arg(long, short = 'v')]
    pub verbose: bool,

    /// Give COMMAND a port of its own for SERVICE, leased to its process (see `git ports
    /// lease`), instead of the worktree's: two runs at once get two ports
    #[arg(long, value_name = "SERVICE", num_args = 1.., value_delimiter = ',')]
    pub lease: Vec<String>,

    /// The command and its arguments
    #[arg(required = true, last = true, value_name = "COMMAND")]
    pub command: Vec<std::ffi::OsString>,
}

/// Wait until a worktree's servers accept connections
///
/// Returns 0 as soon as the port of each SERVICE (default: every port the worktree holds)
/// accepts a connection on 127.0.0.1 or ::1; exits 4 when the time runs out, naming the ports
/// that never came up. For scripts and agents: start the server in the background, then
/// `git ports wait web`, then run the tests.
#[derive(Debug, Args)]
pub struct WaitArgs {
    /// Services to wait for (default: all of the worktree's)
    #[arg(value_name = "SERVICE")]
    pub services: Vec<String>,

    /// The worktree: its name, its path or its branch (default: the current worktree)
    #[arg(long, short = 'w', value_name = "WORKTREE")]
    pub worktree: Option<String>,

    /// Seconds to wait at most
    #[arg(long, value_name = "SECONDS", default_value_t = 30.0, value_parser = seconds)]
    pub timeout: f64,
}

/// Lease a port to one process, until it exits
///
/// Prints a free port of each SERVICE (from `ports.<service>.leaseRange`, else the service's
/// range, searched from the top down) claimed in the machine-wide ledger for one process: no
/// worktree, repository or other lease is given it while that process runs, and the next
/// change after it exits frees it. The process is the one that ran the command (its shell;
/// `git` and subshells are passed over) unless --pid names another of yours. For one run of
/// a command, `git ports exec --lease SERVICE -- COMMAND` leases for the command itself.
#[derive(Debug, Args)]
pub struct LeaseArgs {
    /// Services to lease a port of
    #[arg(value_name = "SERVICE", required = true)]
    pub services: Vec<String>,

    /// The process the lease is for (default: the caller)
    #[arg(long, value_name = "PID")]
    pub pid: Option<u32>,

    /// The worktree the lease is made from, for its settings and for status (default: the
    /// current worktree)
    #[arg(long, short = 'w', value_name = "WORKTREE")]
    pub worktree: Option<String>,

    /// Print JSON for scripts
    #[arg(long)]
    pub json: bool,
}

/// Fence ports off machine-wide: no repository, lease or proxy is given them
///
/// A reservation is recorded in the machine-wide ledger, so every repository on this machine
/// passes the port over, as it does one `ports.exclude` names: a port another program of
/// this machine uses (a system database), or one kept for something that comes later. A
/// port held now by a worktree, a lease or the proxy is refused, naming who holds it.
#[derive(Debug, Args)]
pub struct ReserveArgs {
    /// The ports to reserve
    #[arg(value_name = "PORT", required = true, value_parser = port)]
    pub ports: Vec<u16>,

    /// What the ports are kept for, shown by status --machine
    #[arg(long, value_name = "TEXT")]
    pub reason: Option<String>,

    /// Print JSON for scripts
    #[arg(long)]
    pub json: bool,
}

/// Give reserved ports back to every repository
#[derive(Debug, Args)]
pub struct UnreserveArgs {
    /// The reserved ports to free
    #[arg(value_name = "PORT", required = true, value_parser = port)]
    pub ports: Vec<u16>,

    /// Print JSON for scripts
    #[arg(long)]
    pub json: bool,
}

/// Serve coding agents over MCP (stdio)
///
/// An MCP server on stdin and stdout, for Claude Code, Codex and other agents: the tools
/// allocate, get, env, status, wait, check, release, lease, stop, point and doctor answer with the
/// fields of the commands' --json. It serves the repository it is started in; every tool
/// also takes a repository directory and a worktree. Configure it as the command
/// `git-ports` with the argument `mcp`.
#[derive(Debug, Args)]
pub struct McpArgs {}

/// Route worktrees' names to their ports: a local reverse proxy
///
/// One proxy per user, on 127.0.0.1 and ::1 only, port `ports.proxyPort` (default 4480).
/// It sends `http://feature-x.shop.localhost:4480/` to the port the registry of `shop` holds
/// for worktree `feature-x` (its `ports.hostService`, web by default),
/// `api.feature-x.shop.localhost` to its api, and `shop.localhost` to the worktree the
/// repository's origin points at (see `git ports point`), for every repository the ledger
/// names, read live. Without a command it runs in the foreground.
#[derive(Debug, Args)]
pub struct ProxyArgs {
    #[command(subcommand)]
    pub command: Option<ProxyCommand>,
}

#[derive(Debug, Subcommand)]
pub enum ProxyCommand {
    /// Run the proxy in the background (its state and log beside the ledger), unless it runs
    Start,
    /// Stop the background proxy
    Stop,
    /// Make the proxy's local certificate authority (local names only) and trust it where
    /// this user's browsers look: HTTPS on the proxy's port
    ///
    /// The authority is made once, beside the ledger, its key readable by its owner alone;
    /// its name constraints (critical) let it sign `localhost` and names under it, nothing
    /// else. Linux: every NSS database of this user's (Chromium's `~/.pki/nssdb`, made if
    /// need be, and each Firefox profile's), with `certutil` from libnss3-tools; macOS: the
    /// login keychain; Windows: the user's Root store.
    Trust {
        /// Also the system's store (`/usr/local/share/ca-certificates`; needs root)
        #[arg(long)]
        system: bool,
        /// Make a new authority even if one is there (an expired or damaged one, say)
        #[arg(long)]
        renew: bool,
    },
    /// Remove every authority of git-ports' from where `trust` added it
    Untrust {
        /// Also delete the authority itself (the proxy then serves plain HTTP only)
        #[arg(long)]
        delete: bool,
    },
    /// Say whether the proxy runs, and the names it serves (exit 0 running, 1 not)
    Status {
        /// Print JSON for scripts
        #[arg(long)]
        json: bool,
    },
}

/// Point the repository's origin, `{repo}.localhost`, at a worktree
///
/// `shop.localhost` (through `git ports proxy`) serves the worktree it points at, the main
/// worktree until this names another: one URL to register as an OAuth redirect, a webhook or
/// a bookmark, for whichever worktree is being tried. Takes effect at once.
#[derive(Debug, Args)]
pub struct PointArgs {
    /// The worktree: its name, path or branch (default: the current worktree)
    #[arg(value_name = "WORKTREE")]
    pub worktree: Option<String>,

    /// Print JSON for scripts
    #[arg(long)]
    pub json: bool,
}

/// Release the ports of worktrees git no longer has
///
/// A worktree removed with `git worktree remove`, or whose directory is gone, gives its ports
/// back. A locked worktree keeps them.
#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Only say what would be released
    #[arg(long, short = 'n')]
    pub dry_run: bool,

    /// Also stop the servers the removed worktrees left running on those ports (SIGTERM,
    /// then SIGKILL after 5 seconds)
    #[arg(long, conflicts_with = "dry_run")]
    pub stop: bool,

    /// Print JSON for scripts
    #[arg(long)]
    pub json: bool,
}

/// Stop the servers a worktree runs on its ports
///
/// Stops the processes that listen on the worktree's ports and run in that worktree (the rule
/// status uses to call a server the worktree's own): never a process of another worktree,
/// another repository or another user. SIGTERM first, then SIGKILL after --grace seconds. A
/// container of the worktree's compose project is its own, stopped through Docker; with no
/// service named, the rest of the worktree's compose stack is stopped too.
#[derive(Debug, Args)]
pub struct StopArgs {
    /// Services whose servers to stop (default: every port the worktree holds)
    #[arg(value_name = "SERVICE")]
    pub services: Vec<String>,

    /// The worktree: its name, path or branch (default: the current worktree)
    #[arg(long, short = 'w', value_name = "WORKTREE")]
    pub worktree: Option<String>,

    /// Seconds to wait after SIGTERM before SIGKILL
    #[arg(long, value_parser = seconds, default_value = "5", value_name = "SECONDS")]
    pub grace: f64,

    /// Print JSON for scripts
    #[arg(long)]
    pub json: bool,
}

/// Check what can go wrong, and say how to fix each
///
/// Checks that the registry and the machine-wide ledger are readable and agree, that no port
/// this repository holds is held by another repository too (a copied repository, a registry
/// restored from a backup), which claims belong to repositories that cannot be read now,
/// whether the hook is installed where git runs it, which locks are held now and by whom,
/// that every ports.* value in git config is valid, and the traps of the worktree's compose
/// stack (a host port no git-ports service holds, container_name, appended override ports,
/// shared volumes and networks, host networking, one project name for every worktree), each
/// with its file, line and the line to write instead. Exits 0 when all is well, 4 when
/// something is wrong, 5 when the registry or the ledger cannot be read.
#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Repair what is safe to repair: a port held here that the ledger gives to another live
    /// repository moves to a fresh port; missing claims are made and stale ones dropped
    #[arg(long)]
    pub fix: bool,

    /// Print JSON for scripts
    #[arg(long)]
    pub json: bool,
}

/// Manage the post-checkout hook that allocates ports on `git worktree add`
#[derive(Debug, Args)]
pub struct HookArgs {
    #[command(subcommand)]
    pub command: HookCommand,
}

#[derive(Debug, Subcommand)]
pub enum HookCommand {
    /// Install the hook, keeping any hook already there
    ///
    /// Adds a marked block to the post-checkout hook in core.hooksPath, or in the hooks
    /// directory of the common dir (shared by every worktree). Running it again replaces the
    /// block in place.
    Install {
        /// Services to allocate to every new worktree; sets ports.autoAllocate
        #[arg(long, value_delimiter = ',', value_name = "SERVICE,…")]
        services: Vec<String>,
    },
    /// Remove the hook's block, and the hook file if nothing else is left in it
    Uninstall {
        /// In every repository the machine-wide ledger knows, and this one: what to run before
        /// removing git-ports itself
        #[arg(long)]
        all: bool,
    },
    /// Say whether the hook is installed, where, and which services it allocates
    Status,
    /// What the hook runs (git runs this; not for people)
    #[command(hide = true)]
    Run {
        /// The hook's name
        #[arg(value_name = "HOOK")]
        hook: String,
        /// The arguments git gave the hook
        #[arg(value_name = "ARG", allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

/// Print the manual page, or install it where `man` finds it
#[derive(Debug, Args)]
pub struct ManArgs {
    /// Write the page to <dir of git-ports>/../share/man/man1/git-ports.1, where man looks
    /// for the pages of programs on PATH
    #[arg(long)]
    pub install: bool,
}

/// Print a shell completion script
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell
    #[arg(value_enum)]
    pub shell: Shell,
}

/// Shells `completions` writes for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
    /// PowerShell, on Windows and elsewhere: `git-ports` is completed
    #[value(name = "powershell")]
    PowerShell,
}
