//! A worktree's ports as environment variables, and the env files that hold them: the
//! variables of a worktree, their lines, and the marked block kept in `ports.envFile` files
//! and in files named to `env --write`.
//!
//! Env files are written only inside a change (see `ledger.rs`), while its locks are held,
//! from the registry that change commits: two changes at once can never leave a file saying
//! what neither committed. Every change also mends the files of the repository's other
//! worktrees that disagree with the registry, so a change killed between its registry write
//! and its env files is healed by the next one.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::block;
use crate::cli::EnvFormat;
use crate::config::{ENV_COMPOSE, ENV_SLOT, KEY_ENV_FILE};
use crate::error::{Error, Result};
use crate::fault::Target;
use crate::names::Hosts;
use crate::output::shell_quote;
use crate::registry::Registry;
use crate::repo::{Repo, Worktree};
use crate::userfile::{self, Failure, UserFile};

/// One variable: a port, or text (derived values, the compose project name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Var {
    pub name: String,
    pub value: Value,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// A port the worktree holds.
    Port(u16),
    /// A number that is no port (the slot).
    Number(u16),
    Text(String),
}

impl Value {
    pub fn text(&self) -> String {
        match self {
            Value::Port(n) | Value::Number(n) => n.to_string(),
            Value::Text(t) => t.clone(),
        }
    }
}

/// The variables of worktree `wt`, in service order, then derived values, the slot and the
/// compose project name. Names are `[A-Za-z_][A-Za-z0-9_]*`, validated when read from config,
/// so printing them unquoted cannot inject anything; text values are quoted where printed.
/// Derived values whose services the worktree does not hold are left out, each with a warning.
pub fn vars_of(
    repo: &Repo,
    wt: &Worktree,
    registry: &Registry,
    hosts: &Hosts,
) -> Result<(Vec<Var>, Vec<String>)> {
    let settings = &repo.settings_for(wt)?;
    if let Some(e) = settings.env_problem() {
        return Err(e);
    }
    let held: BTreeMap<&str, u16> = registry
        .worktrees
        .get(&wt.key)
        .map(|e| e.ports.iter().map(|(s, a)| (s.as_str(), a.port)).collect())
        .unwrap_or_default();
    let mut ports: Vec<(&str, u16)> = held.iter().map(|(s, p)| (*s, *p)).collect();
    ports.sort_by_key(|(s, _)| (settings.rank(s), s.to_string()));
    let mut vars: Vec<Var> = ports
        .iter()
        .map(|(s, p)| Var {
            name: settings.env_name(s),
            value: Value::Port(*p),
        })
        .collect();
    // Each service's URL, which any client on this machine connects to whatever its
    // resolver (`WEB_URL=http://localhost:8001`, `REDIS_URL=redis://localhost:6380`), where
    // its scheme is known; and for a browser's scheme, the worktree's own name
    // (`WEB_PUBLIC_URL=http://feature-x.shop.localhost:8001`), which keeps its cookies apart.
    // A name the user gave a variable already is theirs.
    let default = settings.host_service.as_str();
    let host = |s: &str| {
        hosts
            .get(&wt.key)
            .map(|h| crate::names::service_host(h, s, default))
    };
    let names = settings.host_vars && hosts.contains_key(&wt.key);
    let https = settings.https.then_some(settings.proxy_port);
    let mut made: Vec<Var> = Vec::new();
    for (s, p) in &ports {
        let Some(scheme) = settings.scheme(s) else {
            continue;
        };
        let base = s.to_uppercase().replace('-', "_");
        made.push(Var {
            name: format!("{base}_{}", crate::keys::ENV_URL_SUFFIX),
            value: Value::Text(format!("{scheme}://localhost:{p}")),
        });
        if let Some(h) = host(s).filter(|_| names && crate::config::is_browser_scheme(scheme)) {
            made.push(Var {
                name: format!("{base}_{}", crate::keys::ENV_PUBLIC_HOST_SUFFIX),
                value: Value::Text(h.clone()),
            });
            made.push(Var {
                name: format!("{base}_{}", crate::keys::ENV_PUBLIC_URL_SUFFIX),
                value: Value::Text(crate::derived::public_url(scheme, &h, *p, https)),
            });
        }
    }
    let taken =
        |n: &str| vars.iter().any(|v| v.name == n) || settings.derived.iter().any(|d| d.name == n);
    let mut warnings = Vec::new();
    // With HTTPS, a Node server that calls another worktree's https:// name trusts the
    // proxy's authority (Node reads no system or NSS store by default).
    if settings.https
        && let Ok(Some(l)) = crate::ledger::LedgerStore::locate()
    {
        let dir = l.path.parent().map(Path::to_path_buf).unwrap_or_default();
        let cert = crate::proxy::ca::Files::in_dir(&dir).cert;
        if cert.exists() {
            made.push(Var {
                name: crate::keys::ENV_NODE_CA.to_string(),
                value: Value::Text(cert.display().to_string()),
            });
        } else {
            warnings.push(format!(
                "{} is true, but the proxy has no certificate authority yet: run `git ports proxy trust`",
                crate::keys::KEY_HTTPS
            ));
        }
    }
    let made: Vec<Var> = made.into_iter().filter(|v| !taken(&v.name)).collect();
    vars.extend(made);
    let port = |s: &str| held.get(s).copied();
    let scheme = |s: &str| settings.scheme(s).map(str::to_string);
    let values = crate::derived::Values {
        port: &port,
        host: &host,
        scheme: &scheme,
        default,
        https,
    };
    for d in &settings.derived {
        use crate::derived::Missing;
        match d.render(&values) {
            Ok(v) => vars.push(Var {
                name: d.name.clone(),
                value: Value::Text(v),
            }),
            Err(Missing::Name(_)) => warnings.push(format!(
                "{} is left out: worktree '{}' has no host name yet (the next change gives it one)",
                d.name, wt.name
            )),
            Err(Missing::Port(missing)) => warnings.push(format!(
                "{} is left out: worktree '{}' holds no port for '{missing}'",
                d.name, wt.name
            )),
            Err(Missing::Scheme(s)) => warnings.push(format!(
                "{} is left out: service '{s}' has no URL scheme (set one with `git config ports.{s}.scheme SCHEME`)",
                d.name
            )),
        }
    }
    if settings.choice.align
        && let Some(k) = crate::policy::allocate::slot_of(registry, settings, &wt.key)
            .and_then(|k| u16::try_from(k).ok())
    {
        vars.push(Var {
            name: ENV_SLOT.to_string(),
            value: Value::Number(k),
        });
    }
    if settings.compose {
        vars.push(Var {
            name: ENV_COMPOSE.to_string(),
            value: Value::Text(compose_project(repo, wt)),
        });
    }
    Ok((vars, warnings))
}

/// A compose project name of the worktree's own, stable and valid (`[a-z0-9][a-z0-9_-]*`):
/// the repository's directory name, and for a linked worktree `-` and its name.
pub fn compose_project(repo: &Repo, wt: &Worktree) -> String {
    let base = repo.main().map_or_else(
        || crate::repo::basename(&repo.common_dir),
        |m| m.name.clone(),
    );
    let raw = if wt.is_main {
        base
    } else {
        // `webapp-beta`, not `webapp-webapp-beta`, for a worktree named after the repository.
        let own = crate::names::without_repo(wt.name.as_bytes(), base.as_bytes());
        format!("{base}-{}", String::from_utf8_lossy(own))
    };
    let mut name: String = raw
        .to_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    while name.starts_with(['-', '_']) {
        name.remove(0);
    }
    if name.is_empty() {
        name = "worktree".into();
    }
    name
}

/// The lines of a format: `export NAME=value` or `NAME=value`, text quoted for the shell.
pub fn lines(vars: &[Var], format: EnvFormat) -> Vec<String> {
    let export = if format == EnvFormat::Shell {
        "export "
    } else {
        ""
    };
    vars.iter()
        .map(|v| {
            let value = match &v.value {
                Value::Text(t) => shell_quote(t),
                number => number.text(),
            };
            format!("{export}{}={value}", v.name)
        })
        .collect()
}

/// The first line of the block's body in a `ports.envFile` file, which every change keeps in
/// step.
const HEADER: &str = "# Written by git ports; these lines are replaced when the ports change.";
/// The first line in a file written by hand with `env --write`, which nothing rewrites.
const HEADER_BY_HAND: &str =
    "# Written by `git ports env --write`; run it again when the ports change.";

/// The body of the block for these lines: the header, then the lines.
pub fn body(lines: &[String]) -> Vec<String> {
    body_with(HEADER, lines)
}

fn body_with(header: &str, lines: &[String]) -> Vec<String> {
    std::iter::once(header.to_string())
        .chain(lines.iter().cloned())
        .collect()
}

/// Whether `file` is one of the `ports.envFile` files of worktree `wt`.
fn kept_in_step(repo: &Repo, wt: &Worktree, file: &UserFile) -> bool {
    repo.settings
        .env_files
        .iter()
        .any(|f| userfile::open(&wt.path.join(f), None).is_ok_and(|k| k.real == file.real))
}

/// The file's new bytes with `body` in its block (replaced in place, or added at the end), or
/// `None` when it already says exactly that. A file whose markers are broken is refused.
fn with_body(file: &UserFile, body: &[String]) -> Result<Option<Vec<u8>>, String> {
    let text = file.text();
    let rendered = block::render(body, block::eol(text));
    let new = match block::find(text)? {
        Some(span) if block::body(text, span) == body => return Ok(None),
        Some(span) => block::replace(text, span, &rendered),
        None => block::insert(text, usize::MAX, &rendered),
    };
    Ok((new != text).then_some(new))
}

/// How an env file stands against the registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Drift {
    /// It holds the block, but with other values.
    Differs,
    /// It is not there, or holds no block, while the worktree holds ports.
    Missing,
    /// Its markers are broken: the line numbers.
    Broken(String),
    /// git-ports does not read or write it: why.
    Refused(String),
}

impl Drift {
    /// How `status` and `doctor` say it, after the file's name.
    pub fn describe(&self, worktree: &str) -> String {
        match self {
            Drift::Differs => format!("does not match the ports of '{worktree}'"),
            Drift::Missing => format!("is missing the ports of '{worktree}'"),
            Drift::Broken(why) => format!("cannot be kept in step: {why}"),
            Drift::Refused(why) => format!("cannot be kept in step: it {why}"),
        }
    }

    /// Whether `env --write` would mend it.
    pub fn writable(&self) -> bool {
        matches!(self, Drift::Differs | Drift::Missing)
    }
}

/// One `ports.envFile` file of a live worktree that says other than the registry.
#[derive(Debug, Clone)]
pub struct Drifted {
    pub worktree: String,
    pub path: PathBuf,
    pub drift: Drift,
}

/// The canonical directory of a worktree: env files must stay inside it.
fn root_of(wt: &Worktree) -> Option<PathBuf> {
    std::fs::canonicalize(&wt.path).ok()
}

/// How one env file stands, and its new bytes when it is to be written. A file without the
/// block gets one when `holds` (the worktree holds ports, or its ports just changed).
fn judge(
    path: &Path,
    root: &Path,
    body: &[String],
    holds: bool,
) -> (Option<Drift>, Option<(UserFile, Vec<u8>)>) {
    let file = match userfile::open(path, Some(root)) {
        Ok(f) => f,
        // Nothing is to be written into a file of a worktree that holds no ports.
        Err(_) if !holds => return (None, None),
        Err(Failure::Refused(why)) => return (Some(Drift::Refused(why)), None),
        Err(Failure::Io(e)) => return (Some(Drift::Refused(format!("cannot be read: {e}"))), None),
    };
    let had_block = match block::find(file.text()) {
        Ok(b) => b.is_some(),
        Err(why) => return (Some(Drift::Broken(why)), None),
    };
    if !had_block && !holds {
        return (None, None);
    }
    match with_body(&file, body) {
        Ok(None) => (None, None),
        Ok(Some(new)) => {
            let drift = if had_block {
                Drift::Differs
            } else {
                Drift::Missing
            };
            (Some(drift), Some((file, new)))
        }
        Err(why) => (Some(Drift::Broken(why)), None),
    }
}

/// The `ports.envFile` files of live worktrees whose block says other than the registry.
pub fn drifted(repo: &Repo, registry: &Registry, hosts: &Hosts) -> Vec<Drifted> {
    let mut out = Vec::new();
    if repo.settings.env_files.is_empty() {
        return out;
    }
    for wt in repo.worktrees().iter().filter(|w| w.path.is_dir()) {
        let holds = registry.worktrees.contains_key(&wt.key);
        let (Ok((vars, _)), Some(root)) = (vars_of(repo, wt, registry, hosts), root_of(wt)) else {
            continue;
        };
        let body = body(&lines(&vars, EnvFormat::Dotenv));
        for f in &repo.settings.env_files {
            let path = wt.path.join(f);
            if let (Some(drift), _) = judge(&path, &root, &body, holds) {
                out.push(Drifted {
                    worktree: wt.name.clone(),
                    path,
                    drift,
                });
            }
        }
    }
    out
}

/// Writes `new` into `file` for worktree `wt`, refusing a file git tracks.
fn write(repo: &Repo, wt: &Worktree, file: &UserFile, new: &[u8]) -> Result<()> {
    if crate::repo::is_tracked(&wt.path, &file.real) {
        return Err(Error::Usage(format!(
            "{} is tracked by git: ports written into a committed file would reach every \
             clone; write an untracked file such as .env.local (and list it in .gitignore)",
            file.path.display()
        )));
    }
    file.replace(new, 0o666, Some(&repo.admin_dir(wt)), Target::EnvFile)
        .map_err(|e| e.at(&file.path))
}

/// Writes the block of `lines` into `path` for worktree `wt` (`env --write`), keeping every
/// other line; says whether anything changed. Run inside a change, with its locks held.
pub fn write_one(repo: &Repo, wt: &Worktree, path: &Path, lines: &[String]) -> Result<bool> {
    let root = root_of(wt).ok_or_else(|| Error::UserFile {
        path: path.to_path_buf(),
        reason: format!("worktree '{}' has no directory", wt.name),
    })?;
    let file = userfile::open(path, Some(&root)).map_err(|e| e.at(path))?;
    let header = if kept_in_step(repo, wt, &file) {
        HEADER
    } else {
        HEADER_BY_HAND
    };
    let new = with_body(&file, &body_with(header, lines)).map_err(|reason| Error::UserFile {
        path: path.to_path_buf(),
        reason: crate::block::refused(&reason),
    })?;
    match new {
        None => Ok(false),
        Some(new) => write(repo, wt, &file, &new).map(|()| true),
    }
}

/// Brings the `ports.envFile` files of every live worktree in step with `registry`, just
/// committed (from `before`) by a change that still holds its locks. Problems with the files
/// of the worktrees whose ports this change moved are warnings; the others' files are mended
/// where they can be, quietly (`status` and `doctor` report the rest).
pub fn sync(repo: &Repo, before: &Registry, registry: &Registry, hosts: &Hosts) -> Vec<String> {
    let mut late: Vec<String> = Vec::new();
    let env_files_named =
        !repo.settings.env_files.is_empty() || !repo.settings.problems_of(KEY_ENV_FILE).is_empty();
    if !env_files_named {
        return late;
    }
    let touched: Vec<&String> = registry
        .worktrees
        .iter()
        .filter(|(k, e)| before.worktrees.get(*k) != Some(*e))
        .map(|(k, _)| k)
        .chain(
            before
                .worktrees
                .keys()
                .filter(|k| !registry.worktrees.contains_key(*k)),
        )
        .collect();
    if !touched.is_empty() {
        for e in repo.settings.problems_of(KEY_ENV_FILE) {
            late.push(format!("{e}; that entry is skipped"));
        }
    }
    if repo.settings.env_files.is_empty() {
        return late;
    }
    for wt in repo.worktrees().iter().filter(|w| w.path.is_dir()) {
        let loud = touched.contains(&&wt.key);
        let holds = registry.worktrees.contains_key(&wt.key);
        let vars = match vars_of(repo, wt, registry, hosts) {
            Ok((vars, _)) => vars,
            Err(e) => {
                if loud {
                    late.push(format!("env files of '{}' not written: {e}", wt.name));
                }
                continue;
            }
        };
        let Some(root) = root_of(wt) else { continue };
        let body = body(&lines(&vars, EnvFormat::Dotenv));
        for f in &repo.settings.env_files {
            let path = wt.path.join(f);
            let said = match judge(&path, &root, &body, holds || loud) {
                (_, Some((file, new))) => write(repo, wt, &file, &new).err().map(|e| match e {
                    Error::Usage(_) => format!(
                        "{} is tracked by git: not written (see {KEY_ENV_FILE})",
                        path.display()
                    ),
                    e => format!("{e}; not written"),
                }),
                (Some(d), None) => Some(format!("{} {}", path.display(), d.describe(&wt.name))),
                (None, None) => None,
            };
            if let Some(s) = said.filter(|_| loud) {
                late.push(s);
            }
        }
    }
    late
}
