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

    #[error("not inside a git repository")]
    NotARepo(#[source] Option<git2::Error>),

    #[error("git: {0}")]
    Git(#[from] git2::Error),

    #[error("no worktree matches '{query}'")]
    WorktreeNotFound { query: String, known: Vec<String> },

    #[error("'{query}' matches more than one worktree: {}", candidates.join(", "))]
    AmbiguousWorktree {
        query: String,
        candidates: Vec<String>,
    },

    #[error("this repository is bare and the current directory is not inside a worktree")]
    NeedWorktree,

    #[error("config {key}: {reason} (got '{value}')")]
    Config {
        key: String,
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

    #[error(
        "no free port for service '{service}' in {range}: {held} of {total} are held, the rest are in use on this machine"
    )]
    RangeExhausted {
        service: String,
        range: String,
        held: usize,
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

    #[error("hook {}: {reason}", path.display())]
    Hook { path: PathBuf, reason: String },

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

    #[error("health check met {0} error(s)")]
    HealthErrors(usize),

    /// An answer already given on stdout that still decides the exit code, as `check` does
    /// for an allocated port: nothing more is printed.
    #[error("{0}")]
    Reported(Box<Error>),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The exit code of this error under the given command family: the spec's two tables.
    pub fn exit_code(&self, family: Family) -> i32 {
        use Error::*;
        match (self, family) {
            (Reported(inner), _) => inner.exit_code(family),
            (Usage(_) | NeedWorktree | Config { .. } | UnknownService { .. }, _) => 1,
            (BadServiceName(_) | PortOutsideRange { .. } | PortNotAllocated { .. }, _) => 1,
            (Spawn { .. } | Hook { .. } | Io { .. }, _) => 1,
            (NotARepo(_) | Git(_), _) => 2,
            (WorktreeNotFound { .. }, Family::Status) => 3,
            (WorktreeNotFound { .. } | AmbiguousWorktree { .. }, _) => 2,
            (NoSuchAllocation { .. }, _) => 2,
            (RangeExhausted { .. }, _) => 3,
            (PortTaken { .. } | PortHeldElsewhere { .. }, _) => 4,
            (HealthErrors(_), _) => 4,
            (RegistryCorrupt { .. } | RegistryIo { .. }, Family::Status) => 2,
            (RegistryCorrupt { .. } | RegistryIo { .. }, Family::Allocate) => 5,
            (LedgerCorrupt { .. } | LedgerIo { .. }, Family::Status) => 2,
            (LedgerCorrupt { .. } | LedgerIo { .. }, Family::Allocate) => 5,
        }
    }

    /// A second line that helps the user act on the error, if one does.
    pub fn hint(&self) -> Option<String> {
        use Error::*;
        match self {
            WorktreeNotFound { known, .. } => {
                Some(format!("known worktrees: {}", known.join(", ")))
            }
            UnknownService { known, .. } => Some(format!(
                "known services: {}; add one with `git config ports.<service>.range START-END`",
                known.join(", ")
            )),
            NeedWorktree => Some("name one with --worktree".into()),
            NoSuchAllocation { service, worktree } => Some(format!(
                "allocate one with `git ports allocate {service} --worktree {worktree}`"
            )),
            RegistryCorrupt { .. } => {
                Some("the file was left as it is; fix or remove it by hand".into())
            }
            NotARepo(_) => Some("run git ports inside a repository or one of its worktrees".into()),
            _ => None,
        }
    }
}
