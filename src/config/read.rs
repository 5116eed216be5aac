//! Reading settings from git config: one row per key, with how it reads a value and what a
//! wrong one stops, and the readers of a service's keys.

use super::*;

/// `[a-z][a-z0-9+.-]*`: a URL scheme (RFC 3986, lowercase).
fn is_scheme(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some('a'..='z'))
        && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '+' | '.' | '-'))
}

/// Reads one value of a setting into the settings.
type Read = fn(&mut Settings, &str) -> Result<()>;

/// A true-or-false setting's value, or the error that names its key.
fn flag(key: &str, value: &str) -> Result<bool> {
    parse_bool(value).ok_or_else(|| config_error(key, value, "expected true or false"))
}

/// One of git-ports' settings: its key, how it reads a value, what a wrong value stops, and
/// whether it takes one value per entry (`git config --add`).
pub(super) struct Row {
    pub(super) key: &'static str,
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
pub(super) const SERVICE_KEYS: &[(&str, Stops)] = &[
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
pub(super) const SETTINGS: &[Row] = &[
    multi(KEY_AUTO_ALLOCATE, Stops::Entry, Settings::add_auto_allocate),
    // A variable left out would be missed: a wrong one stops the variables.
    multi(KEY_DERIVED, Stops::Variables, Settings::add_derived),
    multi(KEY_ENV_FILE, Stops::Entry, Settings::add_env_file),
    multi(KEY_COMPOSE_FILE, Stops::Entry, Settings::add_compose_file),
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
    row(KEY_HTTPS, Stops::Variables, |s, v| {
        s.https = flag(KEY_HTTPS, v)?;
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
            compose_files: Vec::new(),
            compose: false,
            host_template: crate::names::Template::default(),
            host_service: "web".to_string(),
            host_vars: true,
            https: false,
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

    /// Overrides default ranges and appends the services only config names, by name.
    pub(super) fn add_ranges(&mut self, ranges: BTreeMap<String, PortRange>) {
        for (name, range) in ranges {
            match self.services.iter_mut().find(|s| s.name == name) {
                Some(s) => s.range = range,
                None => self.services.push(Service { name, range }),
            }
        }
    }

    /// Applies one config entry; later entries (more local files) win, as in git.
    pub(super) fn apply(
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
        add_worktree_file(&mut self.env_files, KEY_ENV_FILE, value)
    }

    fn add_compose_file(&mut self, value: &str) -> Result<()> {
        add_worktree_file(&mut self.compose_files, KEY_COMPOSE_FILE, value)
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
}

/// One entry of a multi-valued list of files inside each worktree (`key`): an empty value
/// clears the list, as git's multi-valued keys do; a path outside the worktree is refused.
fn add_worktree_file(list: &mut Vec<String>, key: &str, value: &str) -> Result<()> {
    if value.is_empty() {
        list.clear();
    } else if std::path::Path::new(value).is_absolute()
        || value.split(['/', '\\']).any(|c| c == "..")
    {
        return Err(config_error(
            key,
            value,
            "give a path inside the worktree, relative to its root",
        ));
    } else if !list.iter().any(|f| f == value) {
        list.push(value.to_string());
    }
    Ok(())
}
