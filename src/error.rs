//! The one error type of git-ports, and the only place where exit codes are decided.

use std::path::PathBuf;

/// Which table of exit codes a command answers to: the spec gives `port_allocate.py` and
/// `port_status.py` different codes for the same failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// allocate, release, check, available, get, env, exec, prune, hook.
    Allocate,
    /// status.
    Status,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Usage(String),

    /// git's own words, when it gave any.
    #[error("not inside a git repository{}", .0.as_ref().map(|m| format!(" ({m})")).unwrap_or_default())]
    NotARepo(Option<String>),

    /// git refuses the repository because another user owns it (`safe.directory`).
    #[error("git refuses this repository: {message}")]
    Ownership {
        message: String,
        fix: Option<String>,
    },

    /// git cannot read the repository: its words, which name the format or extension.
    #[error("git cannot read this repository: {0}")]
    GitSays(String),

    /// A lock another process holds past the time allowed to wait for it.
    #[error("{what} {}: gave up after {secs}s waiting for the lock{}", path.display(), holder.as_ref().map(|h| format!(" held by {h}")).unwrap_or_default())]
    LockTimeout {
        what: &'static str,
        path: PathBuf,
        secs: u64,
        holder: Option<String>,
    },

    #[error("no worktree matches '{query}'")]
    WorktreeNotFound { query: String, known: Vec<String> },

    #[error("'{query}' matches more than one worktree: {}", candidates.join(", "))]
    AmbiguousWorktree {
        query: String,
        candidates: Vec<String>,
    },

    #[error("this repository is bare and the current directory is not inside a worktree")]
    NeedWorktree,

    #[error("config {key}: {reason} (got '{value}'{})", origin.as_ref().map(|o| format!(", set in {o}")).unwrap_or_default())]
    Config {
        key: String,
        value: String,
        reason: String,
        /// Where the value is set (a file, or the command line), where known.
        origin: Option<String>,
    },

    #[error("{var}: {reason} (got '{value}')")]
    Env {
        var: &'static str,
        value: String,
        reason: String,
    },

    #[error("unknown service '{service}'")]
    UnknownService { service: String, known: Vec<String> },

    #[error(
        "invalid service name '{0}': use lowercase letters, digits and '-', starting with a letter"
    )]
    BadServiceName(String),

    #[error("port {port} is outside the range of service '{service}' ({range})")]
    PortOutsideRange {
        port: u16,
        service: String,
        range: String,
    },

    #[error("no free port for service '{service}' in {range}: {}", exhausted(*held, *reserved, *fenced, *total))]
    RangeExhausted {
        service: String,
        range: String,
        held: usize,
        /// Ports kept for the main worktree (`ports.reserveMain`), free but not for this one.
        reserved: usize,
        /// Ports fenced off (`ports.exclude`, reservations, the proxy's).
        fenced: usize,
        total: usize,
    },

    #[error("port {port} is already allocated to worktree '{worktree}' (service '{service}')")]
    PortTaken {
        port: u16,
        worktree: String,
        service: String,
    },

    #[error("port {port} is held by another repository: {holder}")]
    PortHeldElsewhere { port: u16, holder: String },

    /// A port no worktree or lease is ever given (the proxy's, excluded, reserved).
    #[error("port {port} is {}", fence.describe())]
    PortFenced {
        port: u16,
        fence: crate::config::Fence,
    },

    #[error("port {port} is already served by {who}")]
    PortServedByOther { port: u16, who: String },

    /// `ports`: each with what it never did (`web (8001) never answered HTTP`).
    #[error("gave up after {secs}s: {}", ports.join(", "))]
    WaitTimeout { secs: f64, ports: Vec<String> },

    #[error("port {port} is not reserved")]
    NotReserved { port: u16, reserved: Vec<String> },

    #[error("port {port} is not allocated")]
    PortNotAllocated { port: u16 },

    #[error("worktree '{worktree}' holds no port for service '{service}'")]
    NoSuchAllocation { worktree: String, service: String },

    #[error("registry {}: {reason}", path.display())]
    RegistryCorrupt { path: PathBuf, reason: String },

    #[error("registry {}: {action}", path.display())]
    RegistryIo {
        path: PathBuf,
        action: &'static str,
        #[source]
        source: std::io::Error,
    },

    #[error("ledger {}: {reason}", path.display())]
    LedgerCorrupt { path: PathBuf, reason: String },

    #[error("ledger {}: {action}", path.display())]
    LedgerIo {
        path: PathBuf,
        action: &'static str,
        #[source]
        source: std::io::Error,
    },

    /// A directory or file of git-ports' own that another user owns or can write: whoever
    /// can write it could hand out ports or name the process `proxy stop` signals.
    #[error("{} {reason}: git-ports uses only {rule}", path.display())]
    NotPrivate {
        path: PathBuf,
        /// What git-ports accepts: "a file of this user's that nobody else can write".
        rule: String,
        reason: String,
        fix: String,
    },

    #[error("hook {}: {reason}", path.display())]
    Hook { path: PathBuf, reason: String },

    /// A file of the user's (an env file, a hook) that git-ports will not read or write as it
    /// is: why, in one line. Nothing was written.
    #[error("{}: {reason}", path.display())]
    UserFile { path: PathBuf, reason: String },

    /// A file git-ports must write cannot be written: the spec's "unwritable" code.
    #[error("{action} {}", path.display())]
    Unwritable {
        path: PathBuf,
        action: &'static str,
        #[source]
        source: std::io::Error,
    },

    #[error("{action} {}", path.display())]
    Io {
        path: PathBuf,
        action: &'static str,
        #[source]
        source: std::io::Error,
    },

    #[error("cannot run '{program}'")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },

    /// The command `exec` was to become could not be started: 127 when there is no such
    /// command, 126 when it cannot be executed, as `env(1)` and shells answer.
    #[error("cannot run '{program}'")]
    Exec {
        program: String,
        #[source]
        source: std::io::Error,
    },

    #[error("cannot lease a port to pid {pid}: {reason}")]
    LeaseRefused { pid: u32, reason: &'static str },

    #[error("cannot tell which process the lease is for: {0}")]
    NoLeaseHolder(&'static str),

    #[error(
        "leases and names are recorded in the machine-wide ledger, which this repository does not use"
    )]
    LedgerOnly,

    #[error("health check met {0} error(s)")]
    HealthErrors(usize),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What a command answered, when the answer itself decides the exit code: printed in full
/// on stdout, it is no error, and nothing more is said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Done,
    /// `check`: the port is held, here or by another repository.
    Held,
    /// `doctor`: problems were found.
    Problems,
    /// `doctor`: the registry or the ledger cannot be read.
    Unreadable,
    /// `exec` where it runs its command as a child: the command's status.
    Exited(i32),
}

impl Outcome {
    /// The exit code of an answer: the spec's 4 for a held port, doctor's 4 and 5.
    pub fn exit_code(self) -> i32 {
        match self {
            Outcome::Done => 0,
            Outcome::Held | Outcome::Problems => 4,
            Outcome::Unreadable => 5,
            Outcome::Exited(code) => code,
        }
    }
}

/// The known name a typo most likely meant: within two edits, the nearest.
pub fn closest<'a>(typo: &str, known: &'a [String]) -> Option<&'a str> {
    let distance = |a: &str, b: &str| -> usize {
        let b: Vec<char> = b.chars().collect();
        let mut row: Vec<usize> = (0..=b.len()).collect();
        for (i, ca) in a.chars().enumerate() {
            let mut prev = row[0];
            row[0] = i + 1;
            for (j, cb) in b.iter().enumerate() {
                let cur = row[j + 1];
                row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
                prev = cur;
            }
        }
        row[b.len()]
    };
    known
        .iter()
        .map(|k| (distance(typo, k), k))
        .filter(|(d, _)| *d <= 2)
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k.as_str())
}

/// Why a range has no port left: what holds them, what is kept, and what is in use.
fn exhausted(held: usize, reserved: usize, fenced: usize, total: usize) -> String {
    let mut parts = vec![format!("{held} of {total} are held")];
    if reserved > 0 {
        parts.push(format!(
            "{reserved} is kept for the main worktree (ports.reserveMain)"
        ));
    }
    if fenced > 0 {
        parts.push(format!(
            "{fenced} {} fenced off (ports.exclude, reservations, the proxy's port)",
            if fenced == 1 { "is" } else { "are" }
        ));
    }
    let rest = total.saturating_sub(held + reserved + fenced);
    if rest > 0 {
        parts.push("the rest are in use on this machine".to_string());
    }
    parts.join(", ")
}

impl Error {
    /// The exit code of this error under the given command family: the spec's two tables.
    pub fn exit_code(&self, family: Family) -> i32 {
        use Error::*;
        match (self, family) {
            (Usage(_) | NeedWorktree | Config { .. } | Env { .. } | UnknownService { .. }, _) => 1,
            (BadServiceName(_) | PortOutsideRange { .. } | PortNotAllocated { .. }, _) => 1,
            (NotReserved { .. }, _) => 1,
            (Spawn { .. } | Hook { .. } | Io { .. }, _) => 1,
            (LeaseRefused { .. } | NoLeaseHolder(_) | LedgerOnly, _) => 1,
            (Exec { source, .. }, _) if source.kind() == std::io::ErrorKind::NotFound => 127,
            (Exec { .. }, _) => 126,
            (NotARepo(_) | Ownership { .. } | GitSays(_), _) => 2,
            (LockTimeout { .. }, Family::Status) => 2,
            (LockTimeout { .. }, Family::Allocate) => 5,
            (WorktreeNotFound { .. }, Family::Status) => 3,
            (WorktreeNotFound { .. } | AmbiguousWorktree { .. }, _) => 2,
            (NoSuchAllocation { .. }, _) => 2,
            (RangeExhausted { .. }, _) => 3,
            (PortTaken { .. } | PortHeldElsewhere { .. } | PortFenced { .. }, _) => 4,
            (HealthErrors(_) | PortServedByOther { .. } | WaitTimeout { .. }, _) => 4,
            (Unwritable { .. } | UserFile { .. }, _) => 5,
            (RegistryCorrupt { .. } | RegistryIo { .. }, Family::Status) => 2,
            (RegistryCorrupt { .. } | RegistryIo { .. }, Family::Allocate) => 5,
            (LedgerCorrupt { .. } | LedgerIo { .. } | NotPrivate { .. }, Family::Status) => 2,
            (LedgerCorrupt { .. } | LedgerIo { .. } | NotPrivate { .. }, Family::Allocate) => 5,
        }
    }

    /// A second line that helps the user act on the error, if one does: a command to run,
    /// or, for a coding agent's MCP session (`GIT_PORTS_AUDIENCE=mcp`), the tool to call and
    /// its arguments.
    pub fn hint(&self) -> Option<String> {
        if std::env::var_os(crate::keys::ENV_AUDIENCE).is_some_and(|v| v == "mcp")
            && let Some(h) = self.hint_for_agents()
        {
            return Some(h);
        }
        self.hint_for_people()
    }

    /// The hints an agent acts on through MCP tools rather than a command line.
    fn hint_for_agents(&self) -> Option<String> {
        use Error::*;
        let quote = |s: &str| serde_json::Value::from(s).to_string();
        match self {
            NeedWorktree => Some("give worktree: its name, path or branch".into()),
            LeaseRefused { .. } | NoLeaseHolder(_) => Some(
                "give pid: a running process of yours that will use the port (without it, the lease lasts as long as this MCP session)".into(),
            ),
            PortServedByOther { .. } => Some(
                "that is not this worktree's server: do not kill it; call status with health_check for who it is, or allocate another worktree's port".into(),
            ),
            NoSuchAllocation { service, worktree } => Some(format!(
                "call allocate with services [{}] and worktree {}",
                quote(service),
                quote(worktree)
            )),
            WaitTimeout { .. } => Some(
                "start the server in the background first (with the variables env gives), then call wait again, with a longer timeout if it starts slowly".into(),
            ),
            _ => None,
        }
    }

    fn hint_for_people(&self) -> Option<String> {
        use Error::*;
        match self {
            WorktreeNotFound { known, .. } => {
                Some(format!("known worktrees: {}", known.join(", ")))
            }
            UnknownService { service, known } => Some(format!(
                "{}known services: {}; add one with `git config ports.<service>.range START-END`",
                closest(service, known)
                    .map(|k| format!("did you mean '{k}'? "))
                    .unwrap_or_default(),
                known.join(", ")
            )),
            NeedWorktree => Some("name one with --worktree".into()),
            LeaseRefused { .. } | NoLeaseHolder(_) => Some(
                "name a running process of yours with --pid, or run the command under `git ports exec --lease SERVICE -- COMMAND`"
                    .into(),
            ),
            LedgerOnly => Some(format!(
                "they need `git config {} true` and a data directory (or GIT_PORTS_HOME)",
                crate::keys::KEY_MACHINE_WIDE
            )),
            PortServedByOther { .. } => Some(
                "stop that process, or start anyway with `git ports exec --force -- COMMAND`"
                    .into(),
            ),
            NoSuchAllocation { service, worktree } => Some(format!(
                "allocate one with `git ports allocate {service} {}`",
                crate::output::worktree_arg(worktree)
            )),
            RegistryCorrupt { .. } => {
                Some("the file was left as it is; fix or remove it by hand".into())
            }
            NotPrivate { fix, .. } => Some(fix.clone()),
            WaitTimeout { .. } => Some(
                "start the server first (`git ports exec -- COMMAND &`, in the worktree), or wait longer with --timeout SECONDS"
                    .into(),
            ),
            NotReserved { reserved, .. } if reserved.is_empty() => {
                Some("no port is reserved (`git ports status --machine` lists reservations)".into())
            }
            NotReserved { reserved, .. } => Some(format!("reserved: {}", reserved.join(", "))),
            PortFenced { fence, .. } => Some(match fence {
                crate::config::Fence::Proxy => format!(
                    "ask for another port, or move the proxy with `git config --global {} PORT`",
                    crate::keys::KEY_PROXY_PORT
                ),
                crate::config::Fence::Excluded => format!(
                    "ask for another port, or take it out of {} (`git config --get-all {}` shows where)",
                    crate::keys::KEY_EXCLUDE,
                    crate::keys::KEY_EXCLUDE
                ),
                crate::config::Fence::Reserved(_) => {
                    "ask for another port, or free it with `git ports unreserve PORT`".into()
                }
            }),
            NotARepo(_) => Some("run git ports inside a repository or one of its worktrees".into()),
            Ownership { fix, .. } => Some(match fix {
                Some(f) => format!("if you trust it, run `{f}`"),
                None => {
                    "if you trust it, add it to safe.directory in your global git config".into()
                }
            }),
            LockTimeout { .. } => Some(format!(
                "wait for that process, or raise the limit with `git config --global {} SECONDS`",
                crate::keys::KEY_LOCK_TIMEOUT
            )),
            _ => None,
        }
    }
}
