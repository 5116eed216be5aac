//! Services, their port ranges and every other setting, from the defaults and git config.
//! Config keys and file names live here as constants.

use crate::allocator::PortRange;
use crate::error::{Error, Result};
use crate::output::ColorChoice;
use std::collections::BTreeMap;

pub use crate::derived::{Derived, Piece, parse_template};
pub use crate::keys::*;

/// The spec's services and ranges, in the spec's order.
pub const DEFAULT_SERVICES: &[(&str, u16, u16)] = &[
    ("web", 8000, 8099),
    ("api", 9000, 9099),
    ("db", 5432, 5532),
    ("redis", 6379, 6479),
    ("grpc", 50051, 50151),
    ("websocket", 3000, 3099),
];

/// The URL schemes of the default services whose clients take a URL: a web server's and an
/// API's (http), a WebSocket server's (ws), redis'. A database's depends on which one it is
/// (`ports.db.scheme postgresql`), and a gRPC target is no URL.
pub const DEFAULT_SCHEMES: &[(&str, &str)] = &[
    ("web", "http"),
    ("api", "http"),
    ("websocket", "ws"),
    ("redis", "redis"),
];

/// Whether a scheme's URLs are for browsers, which are given the worktree's own name: HTTP
/// and WebSocket, plain or secure.
pub fn is_browser_scheme(scheme: &str) -> bool {
    matches!(scheme, "http" | "https" | "ws" | "wss")
}

/// Why a port is never handed out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fence {
    /// `ports.exclude` names it.
    Excluded,
    /// It is the proxy's (`ports.proxyPort`).
    Proxy,
    /// It is reserved machine-wide (`git ports reserve`), for this reason if one was given.
    Reserved(Option<String>),
}

impl Fence {
    /// `fenced off by ports.exclude`, after "port 8000 is".
    pub fn describe(&self) -> String {
        match self {
            Fence::Excluded => format!("fenced off by {KEY_EXCLUDE}"),
            Fence::Proxy => format!("kept for git ports proxy ({KEY_PROXY_PORT})"),
            Fence::Reserved(Some(r)) => format!("reserved ({r})"),
            Fence::Reserved(None) => "reserved (git ports reserve)".into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    pub name: String,
    pub range: PortRange,
}

#[derive(Debug, Clone)]
pub struct Settings {
    /// The defaults in the spec's order, then services only config names, by name.
    pub services: Vec<Service>,
    /// `ports.<service>.env` overrides, by service.
    pub env_names: BTreeMap<String, String>,
    /// `ports.<service>.ready`, by service; unset is `tcp`.
    pub ready: BTreeMap<String, crate::net::Ready>,
    /// `ports.<service>.scheme`, by service: a URL scheme, or `None` for no URL.
    pub schemes: BTreeMap<String, Option<String>>,
    /// `ports.<service>.leaseRange`, by service; unset is the service's own range.
    pub lease_ranges: BTreeMap<String, PortRange>,
    pub auto_allocate: Vec<String>,
    pub machine_wide: bool,
    pub color: ColorChoice,
    /// Seconds to wait for a lock.
    pub lock_timeout: f64,
    /// How a port is chosen beyond "lowest free".
    pub choice: Choice,
    /// `ports.derived`, in order.
    pub derived: Vec<Derived>,
    /// `ports.envFile`, in order.
    pub env_files: Vec<String>,
    /// The compose files of each worktree's stack, as `docker compose -f` takes them, in
    /// order (`ports.composeFile`); none: the files Compose finds itself.
    pub compose_files: Vec<String>,
    /// `ports.compose`.
    pub compose: bool,
    /// `ports.hostTemplate`: the shape of a worktree's host name.
    pub host_template: crate::names::Template,
    /// `ports.hostService`: the service a bare host name means (default web).
    pub host_service: String,
    /// `ports.hostVars`: export the names browsers use, `<SERVICE>_PUBLIC_HOST` and
    /// `<SERVICE>_PUBLIC_URL` (default true).
    pub host_vars: bool,
    /// `ports.https`: the URLs a browser opens go through the proxy's HTTPS.
    pub https: bool,
    /// `ports.exclude`: ports and ranges never handed out.
    pub excluded: Vec<PortRange>,
    /// `ports.proxyPort`: the port `git ports proxy` listens on, never handed to a worktree.
    pub proxy_port: u16,
    /// `ports.proxyTimeout`: seconds the proxy waits for a server's answer.
    pub proxy_timeout: f64,
    /// Values that are wrong, each kept until a command needs its key: one bad `ports.*`
    /// value stops only the commands that use it.
    pub problems: Vec<Problem>,
}

/// How a port is chosen, from `ports.sticky`, `ports.align`, `ports.stableFirst` and
/// `ports.reserveMain`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Choice {
    pub sticky: bool,
    pub align: bool,
    pub stable_first: bool,
    pub reserve_main: bool,
}

impl Default for Choice {
    fn default() -> Self {
        Choice {
            sticky: true,
            align: false,
            stable_first: false,
            reserve_main: false,
        }
    }
}

/// A config value that is wrong, and what it concerns.
#[derive(Debug, Clone)]
pub struct Problem {
    pub key: String,
    pub value: String,
    pub reason: String,
    /// The service whose range or variable it breaks, if any.
    pub service: Option<String>,
    /// What it stops, from its key's row.
    pub stops: Stops,
    /// Where it is set: a file, or the command line.
    pub origin: Option<String>,
}

impl Problem {
    pub fn error(&self) -> Error {
        Error::Config {
            key: self.key.clone(),
            value: self.value.clone(),
            reason: self.reason.clone(),
            origin: self.origin.clone(),
        }
    }
}

/// What a wrong value stops, as its key's row says: the commands that need the value refuse,
/// naming the key and where it is set; the others go on, and `status` and `doctor` say what
/// is wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stops {
    /// Every change of the registry and the ledger: allocate, release, prune, lease, point,
    /// the hook.
    Changes,
    /// The variables: env, exec, env files.
    Variables,
    /// The proxy.
    Proxy,
    /// Allocation of the service it is about (its range).
    Service,
    /// Readiness checks of the service: wait and the health check.
    Readiness,
    /// Leases of the service.
    Leases,
    /// Only its own entry, which is skipped and said so (one value of a multi-valued key).
    Entry,
    /// Nothing: the value is not used (colour, which falls back to its default).
    Nothing,
}

/// `[a-z][a-z0-9-]*`: what a service may be called.
pub fn is_service_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some('a'..='z'))
        && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '-'))
}

impl Settings {
    /// The first wrong value that stops `what` (for `service`, where it is about one), if
    /// any: what its key's row says it stops.
    pub fn stopping(&self, what: Stops, service: Option<&str>) -> Option<Error> {
        self.problems
            .iter()
            .find(|p| p.stops == what && (service.is_none() || p.service.as_deref() == service))
            .map(Problem::error)
    }

    /// The first problem with the variables `env` and `exec` print, if any.
    pub fn env_problem(&self) -> Option<Error> {
        self.stopping(Stops::Variables, None)
    }

    /// Every problem of a key: one per invalid entry of a multi-valued key.
    pub fn problems_of(&self, key: &str) -> Vec<Error> {
        self.problems
            .iter()
            .filter(|p| p.key.eq_ignore_ascii_case(key))
            .map(Problem::error)
            .collect()
    }

    /// Whom `port` is kept for, if it is never to be handed to a worktree or a lease: a port
    /// `ports.exclude` fences off, and the proxy's port (`ports.proxyPort`), which a server
    /// would otherwise find taken the moment the proxy starts. (Machine-wide reservations
    /// are the ledger's: see `policy::availability`.)
    pub fn fenced(&self, port: u16) -> Option<Fence> {
        if self.excluded.iter().any(|r| r.contains(port)) {
            return Some(Fence::Excluded);
        }
        (port == self.proxy_port).then_some(Fence::Proxy)
    }

    /// The service called `name`. Unknown names, names without a range and names whose range
    /// in config is wrong are errors.
    /// Why a worktree holds no port for `service`: the service is unknown (with the known
    /// ones listed, as a typo wants), or the worktree simply holds none.
    pub fn not_held(&self, worktree: &str, service: &str) -> Error {
        match self.service(service) {
            Err(e @ (Error::UnknownService { .. } | Error::BadServiceName(_))) => e,
            _ => Error::NoSuchAllocation {
                worktree: worktree.to_string(),
                service: service.to_string(),
            },
        }
    }

    /// How the service shows it is ready (`ports.<service>.ready`); an invalid value stops
    /// the commands that check readiness, naming the key.
    pub fn ready(&self, service: &str) -> Result<crate::net::Ready> {
        if let Some(e) = self.stopping(Stops::Readiness, Some(service)) {
            return Err(e);
        }
        Ok(self
            .ready
            .get(service)
            .cloned()
            .unwrap_or(crate::net::Ready::Tcp))
    }

    /// The ports a lease of `service` is taken from: `ports.<service>.leaseRange`, else the
    /// service's own range. An invalid lease range stops leases, naming the key.
    pub fn lease_range(&self, service: &str) -> Result<PortRange> {
        let range = self.service(service)?.range;
        if let Some(e) = self.stopping(Stops::Leases, Some(service)) {
            return Err(e);
        }
        Ok(self.lease_ranges.get(service).copied().unwrap_or(range))
    }

    pub fn service(&self, name: &str) -> Result<&Service> {
        if !is_service_name(name) {
            return Err(Error::BadServiceName(name.to_string()));
        }
        if let Some(e) = self.stopping(Stops::Service, Some(name)) {
            return Err(e);
        }
        self.services
            .iter()
            .find(|s| s.name == name)
            .ok_or_else(|| Error::UnknownService {
                service: name.to_string(),
                known: self.known(),
            })
    }

    /// The URL scheme of `service`'s `<SERVICE>_URL`: `ports.<service>.scheme`, else the one
    /// its kind of server speaks where git-ports knows it ([`DEFAULT_SCHEMES`]); `None` where
    /// no scheme is known, and no URL is made.
    pub fn scheme(&self, service: &str) -> Option<&str> {
        match self.schemes.get(service) {
            Some(explicit) => explicit.as_deref(),
            None => DEFAULT_SCHEMES
                .iter()
                .find(|(s, _)| *s == service)
                .map(|(_, scheme)| *scheme),
        }
    }

    /// Where a service sorts in output: configured services in their order, then the rest.
    pub fn rank(&self, service: &str) -> usize {
        self.services
            .iter()
            .position(|s| s.name == service)
            .unwrap_or(usize::MAX)
    }

    pub fn known(&self) -> Vec<String> {
        self.services.iter().map(|s| s.name.clone()).collect()
    }

    /// The services whose range contains `port`.
    pub fn containing(&self, port: u16) -> Vec<&Service> {
        self.services
            .iter()
            .filter(|s| s.range.contains(port))
            .collect()
    }

    /// Other services whose range overlaps `service`'s.
    pub fn overlapping<'a>(&'a self, service: &'a Service) -> impl Iterator<Item = &'a Service> {
        self.services
            .iter()
            .filter(move |s| s.name != service.name && s.range.overlaps(&service.range))
    }

    /// The range of `name` as text, or `unknown` for a service config no longer defines.
    pub fn range_text(&self, name: &str) -> String {
        self.services
            .iter()
            .find(|s| s.name == name)
            .map_or_else(|| "unknown".to_string(), |s| s.range.to_string())
    }

    /// The environment variable for a service: `ports.<service>.env`, else `WEB_PORT` style.
    pub fn env_name(&self, service: &str) -> String {
        self.env_names
            .get(service)
            .cloned()
            .unwrap_or_else(|| format!("{}_PORT", service.to_uppercase().replace('-', "_")))
    }
}

/// git's boolean spellings.
pub fn parse_bool(v: &str) -> Option<bool> {
    match v.to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" | "1" | "" => Some(true),
        "false" | "no" | "off" | "0" => Some(false),
        _ => None,
    }
}

mod read;
pub use read::unknown_keys;
#[cfg(test)]
mod tests;
