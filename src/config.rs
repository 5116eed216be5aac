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

/// `[a-z][a-z0-9+.-]*`: a URL scheme (RFC 3986, lowercase).
fn is_scheme(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some('a'..='z'))
        && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '+' | '.' | '-'))
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
    /// `ports.compose`.
    pub compose: bool,
    /// `ports.hostTemplate`: the shape of a worktree's host name.
    pub host_template: crate::names::Template,
    /// `ports.hostService`: the service a bare host name means (default web).
    pub host_service: String,
    /// `ports.hostVars`: export the names browsers use, `<SERVICE>_PUBLIC_HOST` and
    /// `<SERVICE>_PUBLIC_URL` (default true).
    pub host_vars: bool,
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

/// Reads one value of a setting into the settings.
type Read = fn(&mut Settings, &str) -> Result<()>;

/// A true-or-false setting's value, or the error that names its key.
fn flag(key: &str, value: &str) -> Result<bool> {
    parse_bool(value).ok_or_else(|| config_error(key, value, "expected true or false"))
}

/// One of git-ports' settings: its key, how it reads a value, what a wrong value stops, and
/// whether it takes one value per entry (`git config --add`).
struct Row {
    key: &'static str,
    read: Read,
    stops: Stops,
    multi: bool,
}

const fn row(key: &'static str, stops: Stops, read: Read) -> Row {
    Row {
        key,
        read,
        stops,
        multi: false,
    }
}

const fn multi(key: &'static str, stops: Stops, read: Read) -> Row {
    Row {
        key,
        read,
        stops,
        multi: true,
    }
}

/// The keys of one service, `ports.<service>.<KEY>`, and what a wrong value stops.
const SERVICE_KEYS: &[(&str, Stops)] = &[
    (KEY_RANGE, Stops::Service),
    (KEY_ENV, Stops::Variables),
    (KEY_SCHEME, Stops::Variables),
    (KEY_READY, Stops::Readiness),
    (KEY_LEASE_RANGE, Stops::Leases),
];

/// The row of a key, if it is one of the settings (case as git folds it).
fn row_of(key: &str) -> Option<&'static Row> {
    SETTINGS.iter().find(|r| r.key.eq_ignore_ascii_case(key))
}

/// The keys that take one value per entry (`git config --add`).
fn is_multi(key: &str) -> bool {
    row_of(key).is_some_and(|r| r.multi)
}

/// What a wrong value of `key` stops.
fn stops_of(key: &str) -> Stops {
    if let Some(r) = row_of(key) {
        return r.stops;
    }
    key.strip_prefix("ports.")
        .and_then(|rest| rest.rsplit_once('.'))
        .and_then(|(_, var)| {
            SERVICE_KEYS
                .iter()
                .find(|(v, _)| v.eq_ignore_ascii_case(var))
        })
        .map_or(Stops::Nothing, |(_, stops)| *stops)
}

/// `ports.*` keys git-ports does not know, with the key most like each: a typo
/// (`ports.db.rnage`) would otherwise be ignored without a word.
pub fn unknown_keys<'a>(
    entries: impl Iterator<Item = (&'a str, Option<&'a str>)>,
) -> Vec<(String, Option<String>, Option<String>)> {
    let mut known: Vec<String> = SETTINGS
        .iter()
        .map(|r| r.key.to_ascii_lowercase())
        .collect();
    let mut out: Vec<(String, Option<String>, Option<String>)> = Vec::new();
    for (key, origin) in entries {
        let Some(rest) = key.strip_prefix("ports.") else {
            continue;
        };
        let lower = key.to_ascii_lowercase();
        if known.contains(&lower) {
            continue;
        }
        let like = match rest.rsplit_once('.') {
            // ports.<service>.<var>
            Some((service, var)) => {
                if SERVICE_KEYS
                    .iter()
                    .any(|(v, _)| v.eq_ignore_ascii_case(var))
                {
                    continue;
                }
                let vars: Vec<String> = SERVICE_KEYS.iter().map(|(v, _)| v.to_string()).collect();
                crate::error::closest(var, &vars).map(|v| format!("ports.{service}.{v}"))
            }
            None => {
                let names: Vec<String> = SETTINGS.iter().map(|r| r.key.to_string()).collect();
                crate::error::closest(key, &names).map(str::to_string)
            }
        };
        if !out.iter().any(|(k, ..)| k == key) {
            out.push((key.to_string(), like, origin.map(str::to_string)));
        }
        known.push(lower);
    }
    out
}

/// git-ports' own settings with one key each, and how each reads its value. The keys of a
/// service (`ports.<service>.range`, `.env`) and git's colour keys are read beside them.
const SETTINGS: &[Row] = &[
    multi(KEY_AUTO_ALLOCATE, Stops::Entry, Settings::add_auto_allocate),
    // A variable left out would be missed: a wrong one stops the variables.
    multi(KEY_DERIVED, Stops::Variables, Settings::add_derived),
    multi(KEY_ENV_FILE, Stops::Entry, Settings::add_env_file),
    multi(KEY_EXCLUDE, Stops::Entry, Settings::add_exclude),
    row(KEY_LOCK_TIMEOUT, Stops::Changes, Settings::set_lock_timeout),
    row(KEY_COMPOSE, Stops::Variables, |s, v| {
        s.compose = flag(KEY_COMPOSE, v)?;
        Ok(())
    }),
    row(KEY_HOST_TEMPLATE, Stops::Changes, |s, v| {
        s.host_template = v
            .parse()
            .map_err(|reason: String| config_error(KEY_HOST_TEMPLATE, v, reason))?;
        Ok(())
    }),
    row(KEY_HOST_SERVICE, Stops::Changes, |s, v| {
        service_name(KEY_HOST_SERVICE, v, v)?;
        s.host_service = v.to_string();
        Ok(())
    }),
    row(KEY_HOST_VARS, Stops::Variables, |s, v| {
        s.host_vars = flag(KEY_HOST_VARS, v)?;
        Ok(())
    }),
    row(KEY_MACHINE_WIDE, Stops::Changes, |s, v| {
        s.machine_wide = flag(KEY_MACHINE_WIDE, v)?;
        Ok(())
    }),
    row(KEY_STICKY, Stops::Changes, |s, v| {
        s.choice.sticky = flag(KEY_STICKY, v)?;
        Ok(())
    }),
    row(KEY_ALIGN, Stops::Changes, |s, v| {
        s.choice.align = flag(KEY_ALIGN, v)?;
        Ok(())
    }),
    row(KEY_STABLE_FIRST, Stops::Changes, |s, v| {
        s.choice.stable_first = flag(KEY_STABLE_FIRST, v)?;
        Ok(())
    }),
    row(KEY_RESERVE_MAIN, Stops::Changes, |s, v| {
        s.choice.reserve_main = flag(KEY_RESERVE_MAIN, v)?;
        Ok(())
    }),
    row(KEY_PROXY_PORT, Stops::Proxy, |s, v| {
        s.proxy_port = v
            .trim()
            .parse::<u16>()
            .ok()
            .filter(|&p| p > 0)
            .ok_or_else(|| config_error(KEY_PROXY_PORT, v, "expected a port from 1 to 65535"))?;
        Ok(())
    }),
    row(KEY_PROXY_TIMEOUT, Stops::Proxy, |s, v| {
        s.proxy_timeout = v
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|t| (0.001..=3600.0).contains(t))
            .ok_or_else(|| {
                config_error(KEY_PROXY_TIMEOUT, v, "expected seconds from 0.001 to 3600")
            })?;
        Ok(())
    }),
];

/// A service's name in a key, or the error that says how names are made.
fn service_name(key: &str, value: &str, service: &str) -> Result<()> {
    if is_service_name(service) {
        return Ok(());
    }
    Err(config_error(
        key,
        value,
        "service names use lowercase letters, digits and '-', starting with a letter",
    ))
}

/// A variable name git-ports may set, or the error that says why not.
fn env_var_name(key: &str, value: &str, name: &str) -> Result<()> {
    if !is_env_name(name) {
        return Err(config_error(
            key,
            value,
            "not a variable name: use letters, digits and '_', not starting with a digit",
        ));
    }
    if is_reserved_env(name) {
        return Err(config_error(
            key,
            value,
            "that variable belongs to the shell or the system; choose another name",
        ));
    }
    Ok(())
}

fn config_error(key: &str, value: &str, reason: impl Into<String>) -> Error {
    Error::Config {
        key: key.into(),
        value: value.into(),
        reason: reason.into(),
        origin: None,
    }
}

impl Settings {
    /// Settings with nothing but the defaults.
    pub fn defaults() -> Self {
        let services = DEFAULT_SERVICES
            .iter()
            .map(|&(name, start, end)| Service {
                name: name.into(),
                range: PortRange { start, end },
            })
            .collect();
        Settings {
            services,
            env_names: BTreeMap::new(),
            ready: BTreeMap::new(),
            lease_ranges: BTreeMap::new(),
            schemes: BTreeMap::new(),
            auto_allocate: Vec::new(),
            machine_wide: true,
            color: ColorChoice::Auto,
            lock_timeout: DEFAULT_LOCK_TIMEOUT_SECS,
            choice: Choice::default(),
            derived: Vec::new(),
            env_files: Vec::new(),
            compose: false,
            host_template: crate::names::Template::default(),
            host_service: "web".to_string(),
            host_vars: true,
            excluded: Vec::new(),
            proxy_port: DEFAULT_PROXY_PORT,
            proxy_timeout: DEFAULT_PROXY_TIMEOUT_SECS,
            problems: Vec::new(),
        }
    }

    /// Reads every `ports.*` key (and git's colour keys) from the configuration as git reads
    /// it. Wrong values are kept as [`Problem`]s, not errors.
    /// The settings of git config entries, in git's order (see `repo::GitConfig::entries`).
    pub fn from_entries<'a>(
        entries: impl Iterator<Item = (&'a str, Option<&'a [u8]>, Option<&'a str>)>,
    ) -> Self {
        let mut settings = Settings::defaults();
        let mut ranges = BTreeMap::new();
        for (name, value, origin) in entries {
            if !(name.starts_with("ports.") || name.starts_with("color.")) {
                continue;
            }
            let value = String::from_utf8_lossy(value.unwrap_or(b"true")).into_owned();
            if let Err(Error::Config {
                key, value, reason, ..
            }) = settings.apply(name, &value, &mut ranges)
            {
                let service = name
                    .strip_prefix("ports.")
                    .and_then(|r| r.rsplit_once('.'))
                    .map(|(s, _)| s.to_string());
                // A later value of the same key replaces an earlier one, and its problem; each
                // entry of a multi-valued key is its own, and keeps its problem.
                if !is_multi(&key) {
                    settings
                        .problems
                        .retain(|p| !p.key.eq_ignore_ascii_case(&key));
                }
                settings.problems.push(Problem {
                    stops: stops_of(&key),
                    key,
                    value,
                    reason,
                    service,
                    origin: origin.map(str::to_string),
                });
            } else if !is_multi(name) || value.is_empty() {
                // An empty value resets a multi-valued key, and forgets its entries' problems.
                settings
                    .problems
                    .retain(|p| !p.key.eq_ignore_ascii_case(name));
            }
        }
        settings.add_ranges(ranges);
        settings.check_env_names();
        settings
    }

    /// Two services exported under one name would silently lose one of them.
    fn check_env_names(&mut self) {
        let mut seen: BTreeMap<String, String> = BTreeMap::new();
        let mut names: Vec<String> = self.known();
        for s in self.env_names.keys() {
            if !names.contains(s) {
                names.push(s.clone());
            }
        }
        for service in names {
            let var = self.env_name(&service);
            if let Some(other) = seen.insert(var.clone(), service.clone()) {
                self.problems.push(Problem {
                    key: format!("ports.{service}.{KEY_ENV}"),
                    value: var.clone(),
                    reason: format!("service '{other}' is exported as {var} too"),
                    service: Some(service.clone()),
                    stops: Stops::Variables,
                    origin: None,
                });
            }
        }
        for d in &self.derived {
            let clash = seen
                .get(&d.name)
                .map(|s| format!("service '{s}' is exported as {} too", d.name))
                .or_else(|| {
                    [ENV_SLOT, ENV_COMPOSE]
                        .contains(&d.name.as_str())
                        .then(|| format!("git-ports sets {} itself", d.name))
                });
            if let Some(reason) = clash {
                self.problems.push(Problem {
                    key: format!("{KEY_DERIVED}.{}", d.name),
                    value: d.name.clone(),
                    reason,
                    service: None,
                    stops: Stops::Variables,
                    origin: None,
                });
            }
        }
    }

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

    /// Overrides default ranges and appends the services only config names, by name.
    fn add_ranges(&mut self, ranges: BTreeMap<String, PortRange>) {
        for (name, range) in ranges {
            match self.services.iter_mut().find(|s| s.name == name) {
                Some(s) => s.range = range,
                None => self.services.push(Service { name, range }),
            }
        }
    }

    /// Applies one config entry; later entries (more local files) win, as in git.
    fn apply(
        &mut self,
        key: &str,
        value: &str,
        ranges: &mut BTreeMap<String, PortRange>,
    ) -> Result<()> {
        if let Some(r) = row_of(key) {
            return (r.read)(self, value);
        }
        let lower = key.to_ascii_lowercase();
        if lower == KEY_COLOR || (lower == KEY_COLOR_UI && self.color == ColorChoice::Auto) {
            self.color = match value.to_ascii_lowercase().as_str() {
                "always" => ColorChoice::Always,
                "auto" => ColorChoice::Auto,
                v => match parse_bool(v) {
                    Some(true) => ColorChoice::Auto,
                    Some(false) | None => ColorChoice::Never,
                },
            };
            return Ok(());
        }
        let Some((service, var)) = key
            .strip_prefix("ports.")
            .and_then(|rest| rest.rsplit_once('.'))
        else {
            return Ok(());
        };
        match var.to_ascii_lowercase().as_str() {
            KEY_RANGE => {
                service_name(key, value, service)?;
                let range = value
                    .parse()
                    .map_err(|reason| config_error(key, value, reason))?;
                ranges.insert(service.to_string(), range);
            }
            v if v.eq_ignore_ascii_case(KEY_LEASE_RANGE) => {
                service_name(key, value, service)?;
                let range = value
                    .parse()
                    .map_err(|reason| config_error(key, value, reason))?;
                self.lease_ranges.insert(service.to_string(), range);
            }
            KEY_READY => {
                service_name(key, value, service)?;
                let ready = value
                    .parse()
                    .map_err(|reason: String| config_error(key, value, reason))?;
                self.ready.insert(service.to_string(), ready);
            }
            KEY_SCHEME => {
                service_name(key, value, service)?;
                let scheme = match value.trim() {
                    "none" => None,
                    v if is_scheme(v) => Some(v.to_string()),
                    _ => {
                        return Err(config_error(
                            key,
                            value,
                            "expected a URL scheme (http, redis, postgresql, …) or none",
                        ));
                    }
                };
                self.schemes.insert(service.to_string(), scheme);
            }
            KEY_ENV => {
                service_name(key, value, service)?;
                env_var_name(key, value, value)?;
                self.env_names
                    .insert(service.to_string(), value.to_string());
            }
            _ => {}
        }
        Ok(())
    }

    fn add_auto_allocate(&mut self, value: &str) -> Result<()> {
        if value.is_empty() {
            self.auto_allocate.clear();
        }
        for s in value.split([',', ' ']).filter(|s| !s.is_empty()) {
            if !is_service_name(s) {
                return Err(config_error(KEY_AUTO_ALLOCATE, value, "not a service name"));
            }
            if !self.auto_allocate.iter().any(|x| x == s) {
                self.auto_allocate.push(s.to_string());
            }
        }
        Ok(())
    }

    fn add_derived(&mut self, value: &str) -> Result<()> {
        if value.is_empty() {
            self.derived.clear();
            return Ok(());
        }
        let (name, template) = value.split_once('=').ok_or_else(|| {
            config_error(
                KEY_DERIVED,
                value,
                "expected NAME=TEMPLATE, such as VITE_API_URL=http://localhost:{api}",
            )
        })?;
        env_var_name(KEY_DERIVED, value, name)?;
        let template = parse_template(template).map_err(|r| config_error(KEY_DERIVED, value, r))?;
        self.derived.retain(|d| d.name != name);
        self.derived.push(Derived {
            name: name.to_string(),
            template,
        });
        Ok(())
    }

    /// One `ports.exclude` value: ports and ranges, separated by commas or spaces
    /// (`5432, 8080 9000-9010`); an empty value clears what came before.
    fn add_exclude(&mut self, value: &str) -> Result<()> {
        if value.trim().is_empty() {
            self.excluded.clear();
            return Ok(());
        }
        let mut ranges = Vec::new();
        for part in value.split([',', ' ', '\t']).filter(|p| !p.is_empty()) {
            let range = if part.contains('-') {
                part.parse::<PortRange>()
            } else {
                crate::allocator::parse_port(part).map(|p| PortRange { start: p, end: p })
            };
            ranges.push(range.map_err(|reason| config_error(KEY_EXCLUDE, value, reason))?);
        }
        self.excluded.extend(ranges);
        Ok(())
    }

    fn add_env_file(&mut self, value: &str) -> Result<()> {
        if value.is_empty() {
            self.env_files.clear();
        } else if std::path::Path::new(value).is_absolute()
            || value.split(['/', '\\']).any(|c| c == "..")
        {
            return Err(config_error(
                KEY_ENV_FILE,
                value,
                "give a path inside the worktree, relative to its root",
            ));
        } else if !self.env_files.iter().any(|f| f == value) {
            self.env_files.push(value.to_string());
        }
        Ok(())
    }

    fn set_lock_timeout(&mut self, value: &str) -> Result<()> {
        self.lock_timeout = match value.trim().parse::<f64>() {
            Ok(t) if t.is_finite() && (0.0..=3600.0).contains(&t) => t,
            _ => {
                return Err(config_error(
                    KEY_LOCK_TIMEOUT,
                    value,
                    "expected a number of seconds from 0 to 3600",
                ));
            }
        };
        Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_names() {
        for ok in ["web", "storybook", "a1-b2"] {
            assert!(is_service_name(ok), "{ok}");
        }
        for bad in ["", "Web", "1web", "-x", "../x", "we b", "wéb", "web_"] {
            assert!(!is_service_name(bad), "{bad}");
        }
    }

    /// Every key git-ports reads is documented where people look: the README's table and the
    /// man page.
    #[test]
    fn every_key_is_in_the_readme_and_the_man_page() {
        let readme = include_str!("../README.md");
        let man = include_str!("../man/git-ports.1");
        for Row { key, .. } in SETTINGS {
            assert!(
                readme.contains(&format!("`{key}`")) || readme.contains(&format!("{key}`")),
                "README.md does not document {key}"
            );
            assert!(
                man.contains(&format!("\\fB{key}\\fR")),
                "the man page does not document {key}"
            );
        }
        for var in [KEY_RANGE, KEY_ENV, KEY_READY, KEY_LEASE_RANGE, KEY_SCHEME] {
            assert!(
                readme.contains(&format!("`ports.<service>.{var}`")),
                "README.md does not document ports.<service>.{var}"
            );
            assert!(
                man.contains(&format!("\\fIservice\\fR\\fB.{var}")),
                "the man page does not document ports.<service>.{var}"
            );
        }
    }

    #[test]
    fn config_entries_add_and_override() {
        let mut s = Settings::defaults();
        let mut ranges = BTreeMap::new();
        for (k, v) in [
            ("ports.web.range", "8100-8199"),
            ("ports.storybook.range", "6006-6106"),
            ("ports.storybook.env", "STORYBOOK"),
        ] {
            assert!(s.apply(k, v, &mut ranges).is_ok(), "{k}");
        }
        s.add_ranges(ranges);
        assert_eq!(
            s.service("web").map(|x| x.range.to_string()).ok(),
            Some("8100-8199".into())
        );
        assert_eq!(s.known().last().map(String::as_str), Some("storybook"));
        assert_eq!(s.env_name("storybook"), "STORYBOOK");
        assert_eq!(s.env_name("my-svc"), "MY_SVC_PORT");
        let mut ranges = BTreeMap::new();
        assert!(s.apply("ports.x.range", "9000-8000", &mut ranges).is_err());
        assert!(s.apply("ports.X.range", "1-2", &mut ranges).is_err());
        assert!(s.apply("ports.x.env", "A-B", &mut ranges).is_err());
        assert!(
            s.apply("ports.x.env", "$(touch pwned)", &mut ranges)
                .is_err()
        );
    }
}
