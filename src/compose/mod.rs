//! A worktree's compose project: the files Compose reads there, the model as Compose
//! resolves it with the worktree's own variables (Compose v2's `docker compose config`,
//! else v1's `docker-compose config`, else git-ports' own reading of the files, and which one
//! was used is said), and where each part is written, file and line, for `doctor`'s traps
//! (`traps.rs`) and for allocating a port for every service the stack publishes. The user's
//! compose files are only ever read.

pub mod traps;
pub mod yaml;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use yaml::Node;

/// The files Compose looks for in a project directory, in its order, and the override it
/// reads beside the first found.
pub const FILES: &[&str] = &[
    "compose.yaml",
    "compose.yml",
    "docker-compose.yml",
    "docker-compose.yaml",
];
pub const OVERRIDES: &[&str] = &[
    "compose.override.yaml",
    "compose.override.yml",
    "docker-compose.override.yml",
    "docker-compose.override.yaml",
];

/// How long Compose may take to print its model.
const WAIT: Duration = Duration::from_secs(30);

/// One compose file as written.
#[derive(Debug, Clone)]
pub struct RawFile {
    pub path: PathBuf,
    /// Its path relative to the worktree, as messages say it.
    pub shown: String,
    pub node: Node,
}

/// What resolved the model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reader {
    /// Compose v2 (`docker compose config --format json`), and its version.
    V2(String),
    /// Compose v1 (`docker-compose config`), and its version.
    V1(String),
    /// git-ports read the files itself: no Compose here.
    Own,
}

impl Reader {
    pub fn describe(&self) -> String {
        match self {
            Reader::V2(v) => format!("Compose {v} (`docker compose config`)"),
            Reader::V1(v) => format!("Compose {v} (`docker-compose config`)"),
            Reader::Own => {
                "git-ports' own reading of the files (no Compose is installed here; profiles are not applied)".into()
            }
        }
    }
}

/// One host port a service publishes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publish {
    pub host_ip: Option<String>,
    /// `None`: Docker picks a free port.
    pub published: Option<u16>,
    pub target: u16,
    pub protocol: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    pub name: String,
    pub ports: Vec<Publish>,
    pub container_name: Option<String>,
    pub network_mode: Option<String>,
}

/// The model as resolved.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Model {
    pub name: Option<String>,
    pub services: Vec<Service>,
}

/// A worktree's compose project.
#[derive(Debug, Clone)]
pub struct Project {
    pub dir: PathBuf,
    pub files: Vec<RawFile>,
    pub reader: Reader,
    /// The model, or the one line Compose (or git-ports' reader) gave for why not.
    pub model: Result<Model, String>,
}

/// The value of `name` among `vars`, the process's environment, and `dir/.env`, in the order
/// Compose takes them.
fn var(name: &str, vars: &[(String, String)], dotenv: &BTreeMap<String, String>) -> Option<String> {
    vars.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.clone())
        .or_else(|| std::env::var(name).ok())
        .or_else(|| dotenv.get(name).cloned())
}

/// `dir/.env` as Compose reads it: `KEY=VALUE` lines, `#` comments, quotes taken off.
pub fn dotenv(dir: &Path) -> BTreeMap<String, String> {
    let text = crate::store::read_text(&dir.join(".env"))
        .ok()
        .flatten()
        .unwrap_or_default();
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim();
        let line = line.strip_prefix("export ").unwrap_or(line);
        if line.starts_with('#') {
            continue;
        }
        if let Some((k, v)) = line.split_once('=') {
            let v = v.trim();
            let v = v
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .or_else(|| v.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
                .unwrap_or(v);
            out.insert(k.trim().to_string(), v.to_string());
        }
    }
    out
}

/// The compose files of the project in `dir`: `ports.composeFile` (as `-f` files), else
/// `COMPOSE_FILE`, else the first of [`FILES`] with its override. Only those that exist.
pub fn files(dir: &Path, configured: &[String], vars: &[(String, String)]) -> Vec<PathBuf> {
    if !configured.is_empty() {
        return configured.iter().map(|f| dir.join(f)).collect();
    }
    let env = dotenv(dir);
    if let Some(list) = var("COMPOSE_FILE", vars, &env).filter(|l| !l.is_empty()) {
        let sep = var("COMPOSE_PATH_SEPARATOR", vars, &env)
            .unwrap_or_else(|| if cfg!(windows) { ";" } else { ":" }.to_string());
        return list
            .split(sep.as_str())
            .filter(|f| !f.is_empty())
            .map(|f| dir.join(f))
            .collect();
    }
    let mut out: Vec<PathBuf> = FILES
        .iter()
        .map(|f| dir.join(f))
        .find(|p| p.is_file())
        .into_iter()
        .collect();
    if !out.is_empty()
        && let Some(o) = OVERRIDES.iter().map(|f| dir.join(f)).find(|p| p.is_file())
    {
        out.push(o);
    }
    out
}

/// Reads the compose project of worktree directory `dir`, with the worktree's variables;
/// `Ok(None)` when it has none, `Err` with one line (the file and position) for a file that
/// cannot be read or parsed.
pub fn read(
    dir: &Path,
    configured: &[String],
    vars: &[(String, String)],
) -> Result<Option<Project>, String> {
    let paths = files(dir, configured, vars);
    if paths.is_empty() {
        return Ok(None);
    }
    let mut raw = Vec::new();
    for path in &paths {
        let shown = path.strip_prefix(dir).unwrap_or(path).display().to_string();
        let text = match crate::store::read_text(path) {
            Ok(Some(t)) => t,
            Ok(None) => {
                return Err(format!(
                    "{shown}: no such file (named by the compose file list)"
                ));
            }
            Err(crate::store::ReadError::Refused(why)) => return Err(format!("{shown} {why}")),
            Err(crate::store::ReadError::Io(e)) => return Err(format!("{shown}: {e}")),
        };
        let node = yaml::parse(&text).map_err(|e| format!("{shown}: {e}"))?;
        raw.push(RawFile {
            path: path.clone(),
            shown,
            node,
        });
    }
    let (reader, mut model) = resolve(dir, &paths, &raw, vars);
    // In the order the files write them (a JSON model's keys come sorted).
    let order: Vec<&str> = raw
        .iter()
        .flat_map(|f| f.services())
        .map(|(k, _)| k.as_str())
        .collect();
    if let Ok(m) = &mut model {
        m.services.sort_by_key(|s| {
            order
                .iter()
                .position(|k| *k == s.name)
                .unwrap_or(usize::MAX)
        });
    }
    Ok(Some(Project {
        dir: dir.to_path_buf(),
        files: raw,
        reader,
        model,
    }))
}

fn compose_cmd(
    program: &str,
    pre: &[&str],
    dir: &Path,
    paths: &[PathBuf],
    vars: &[(String, String)],
) -> std::process::Command {
    let mut cmd = std::process::Command::new(program);
    cmd.args(pre).current_dir(dir);
    for p in paths {
        cmd.arg("-f").arg(p);
    }
    for (k, v) in vars {
        cmd.env(k, v);
    }
    cmd
}

/// The version `program pre… version --short` prints, if it runs.
fn version(program: &str, pre: &[&str]) -> Option<String> {
    let mut cmd = std::process::Command::new(program);
    cmd.args(pre).args(["version", "--short"]);
    let out = crate::machine::run_bounded(&mut cmd, Duration::from_secs(10)).ok()?;
    out.status.success().then(|| {
        let v = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if v.starts_with('v') || v.is_empty() {
            v
        } else {
            format!("v{v}")
        }
    })
}

/// The first line Compose wrote about why it failed.
fn why(out: &std::process::Output) -> String {
    let err = String::from_utf8_lossy(&out.stderr);
    err.lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with("WARN"))
        .map(str::to_string)
        .unwrap_or_else(|| format!("Compose exited with {}", out.status))
}

fn resolve(
    dir: &Path,
    paths: &[PathBuf],
    raw: &[RawFile],
    vars: &[(String, String)],
) -> (Reader, Result<Model, String>) {
    if let Some(v) = version("docker", &["compose"]) {
        let mut cmd = compose_cmd("docker", &["compose"], dir, paths, vars);
        cmd.args(["config", "--format", "json"]);
        let model = match crate::machine::run_bounded(&mut cmd, WAIT) {
            Ok(out) if out.status.success() => serde_json::from_slice::<Value>(&out.stdout)
                .map_err(|e| format!("Compose printed a model git-ports cannot read: {e}"))
                .and_then(|v| Model::from_json(&v)),
            Ok(out) => Err(why(&out)),
            Err(e) => Err(format!("docker compose config: {e}")),
        };
        return (Reader::V2(v), model);
    }
    if let Some(v) = version("docker-compose", &[]) {
        let mut cmd = compose_cmd("docker-compose", &[], dir, paths, vars);
        cmd.arg("config");
        let model = match crate::machine::run_bounded(&mut cmd, WAIT) {
            Ok(out) if out.status.success() => yaml::parse(&String::from_utf8_lossy(&out.stdout))
                .and_then(|n| Model::from_json(&n.to_json())),
            Ok(out) => Err(why(&out)),
            Err(e) => Err(format!("docker-compose config: {e}")),
        };
        return (Reader::V1(v), model);
    }
    let env = dotenv(dir);
    let merged = merge(raw);
    let model =
        interpolate(&merged, &|name| var(name, vars, &env)).and_then(|v| Model::from_json(&v));
    (Reader::Own, model)
}

/// The files merged as Compose merges them: mappings key by key, a later file's value
/// replacing an earlier one's, except `ports` (and the other lists Compose appends), which are
/// appended unless the later file tags them `!override` or `!reset`.
pub fn merge(raw: &[RawFile]) -> Value {
    fn go(into: &mut Value, from: &Node, path: &mut Vec<String>) {
        let json = from.to_json();
        match (&from.value, into) {
            (yaml::Tree::Map(m), Value::Object(o)) if from.tag.is_none() => {
                for (k, v) in m {
                    path.push(k.clone());
                    let slot = o.entry(k.clone()).or_insert(Value::Null);
                    if slot.is_null() {
                        *slot = v.to_json();
                    } else {
                        go(slot, v, path);
                    }
                    path.pop();
                }
            }
            (yaml::Tree::Seq(_), Value::Array(a))
                if from.tag.is_none() && path.last().is_some_and(|k| k == "ports") =>
            {
                if let Value::Array(more) = json {
                    a.extend(more);
                }
            }
            (_, slot) => *slot = json,
        }
    }
    let mut out = Value::Object(serde_json::Map::new());
    for f in raw {
        go(&mut out, &f.node, &mut Vec::new());
    }
    out
}

/// `${VAR}`, `${VAR:-default}`, `${VAR-default}`, `${VAR:?error}`, `${VAR?error}`,
/// `${VAR:+other}`, `$VAR` and `$$` in every string of `v`, as Compose interpolates them.
pub fn interpolate(v: &Value, get: &dyn Fn(&str) -> Option<String>) -> Result<Value, String> {
    Ok(match v {
        Value::String(s) => Value::String(expand(s, get)?),
        Value::Array(a) => Value::Array(
            a.iter()
                .map(|x| interpolate(x, get))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(o) => {
            let mut out = serde_json::Map::new();
            for (k, x) in o {
                out.insert(k.clone(), interpolate(x, get)?);
            }
            Value::Object(out)
        }
        other => other.clone(),
    })
}

pub fn expand(s: &str, get: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        rest = &rest[i + 1..];
        if let Some(r) = rest.strip_prefix('$') {
            out.push('$');
            rest = r;
        } else if let Some(r) = rest.strip_prefix('{') {
            let end = r.find('}').ok_or_else(|| {
                format!("invalid interpolation format for \"{s}\": no closing brace")
            })?;
            let inner = &r[..end];
            rest = &r[end + 1..];
            let name_end = inner
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(inner.len());
            let (name, op) = inner.split_at(name_end);
            let val = get(name);
            let set = val.as_deref().is_some_and(|v| !v.is_empty());
            let piece = match op {
                "" => val.unwrap_or_default(),
                _ if op.starts_with(":-") => {
                    if set {
                        val.unwrap_or_default()
                    } else {
                        expand(&op[2..], get)?
                    }
                }
                _ if op.starts_with('-') => val.map_or_else(|| expand(&op[1..], get), Ok)?,
                _ if op.starts_with(":?") => match set {
                    true => val.unwrap_or_default(),
                    false => {
                        return Err(format!(
                            "required variable {name} is missing a value: {}",
                            &op[2..]
                        ));
                    }
                },
                _ if op.starts_with('?') => match val {
                    Some(v) => v,
                    None => {
                        return Err(format!(
                            "required variable {name} is missing a value: {}",
                            &op[1..]
                        ));
                    }
                },
                _ if op.starts_with(":+") => {
                    if set {
                        expand(&op[2..], get)?
                    } else {
                        String::new()
                    }
                }
                _ if op.starts_with('+') => {
                    if val.is_some() {
                        expand(&op[1..], get)?
                    } else {
                        String::new()
                    }
                }
                _ => return Err(format!("invalid interpolation format for \"{s}\"")),
            };
            out.push_str(&piece);
        } else {
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            out.push_str(&get(&rest[..end]).unwrap_or_default());
            rest = &rest[end..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// `8000` or `8000-8010`, as ports.
fn port_list(v: &Value) -> Result<Vec<u16>, String> {
    let s = match v {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        Value::Null => return Ok(Vec::new()),
        other => return Err(format!("'{other}' is not a port")),
    };
    let bad = || format!("'{s}' is not a port or a range of ports");
    match s.split_once('-') {
        Some((a, b)) => {
            let (a, b): (u16, u16) = (
                a.trim().parse().map_err(|_| bad())?,
                b.trim().parse().map_err(|_| bad())?,
            );
            if a > b {
                return Err(bad());
            }
            Ok((a..=b).collect())
        }
        None if s.is_empty() => Ok(Vec::new()),
        None => Ok(vec![s.trim().parse().map_err(|_| bad())?]),
    }
}

/// One entry of a service's `ports:`, short (`"127.0.0.1:8080:80/tcp"`) or long syntax.
pub fn publishes(v: &Value) -> Result<Vec<Publish>, String> {
    let (host_ip, published, target, protocol) = match v {
        Value::Object(o) => (
            o.get("host_ip").and_then(Value::as_str).map(str::to_string),
            o.get("published").cloned().unwrap_or(Value::Null),
            o.get("target").cloned().unwrap_or(Value::Null),
            o.get("protocol")
                .and_then(Value::as_str)
                .unwrap_or("tcp")
                .to_string(),
        ),
        Value::Number(n) => (
            None,
            Value::Null,
            Value::String(n.to_string()),
            "tcp".into(),
        ),
        Value::String(s) => {
            let (spec, protocol) = s.split_once('/').unwrap_or((s, "tcp"));
            // An IPv6 host address is written in brackets.
            let (ip, rest) = match spec.strip_prefix('[') {
                Some(r) => match r.split_once("]:") {
                    Some((ip, rest)) => (Some(ip.to_string()), rest.to_string()),
                    None => return Err(format!("'{s}' is not a port mapping")),
                },
                None => (None, spec.to_string()),
            };
            let parts: Vec<&str> = rest.split(':').collect();
            let (ip, host, target) = match parts.as_slice() {
                [t] => (ip, "", *t),
                [h, t] => (ip, *h, *t),
                [i, h, t] if ip.is_none() => (Some(i.to_string()), *h, *t),
                _ => return Err(format!("'{s}' is not a port mapping")),
            };
            (
                ip,
                Value::String(host.to_string()),
                Value::String(target.to_string()),
                protocol.to_string(),
            )
        }
        other => return Err(format!("'{other}' is not a port mapping")),
    };
    let targets = port_list(&target)?;
    let hosts = port_list(&published)?;
    let host_ip = host_ip.filter(|h| !h.is_empty());
    Ok(match hosts.is_empty() {
        true => targets
            .iter()
            .map(|&t| Publish {
                host_ip: host_ip.clone(),
                published: None,
                target: t,
                protocol: protocol.clone(),
            })
            .collect(),
        false => hosts
            .iter()
            .enumerate()
            .map(|(i, &h)| Publish {
                host_ip: host_ip.clone(),
                published: Some(h),
                target: targets.get(i).or(targets.last()).copied().unwrap_or(h),
                protocol: protocol.clone(),
            })
            .collect(),
    })
}

impl Model {
    /// The model from its JSON form (Compose v2's, v1's YAML as JSON, or the merged files).
    pub fn from_json(v: &Value) -> Result<Model, String> {
        let mut services = Vec::new();
        if let Some(m) = v.get("services").and_then(Value::as_object) {
            for (name, s) in m {
                let mut ports = Vec::new();
                for p in s
                    .get("ports")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    ports.extend(publishes(p).map_err(|e| format!("service {name}: {e}"))?);
                }
                services.push(Service {
                    name: name.clone(),
                    ports,
                    container_name: s
                        .get("container_name")
                        .and_then(Value::as_str)
                        .map(str::to_string),
                    network_mode: s
                        .get("network_mode")
                        .and_then(Value::as_str)
                        .map(str::to_string),
                });
            }
        }
        Ok(Model {
            name: v.get("name").and_then(Value::as_str).map(str::to_string),
            services,
        })
    }
}

impl RawFile {
    /// The services the file writes, in its order, each with what it says of it.
    pub fn services(&self) -> &[(String, Node)] {
        self.node
            .get("services")
            .map(Node::entries)
            .unwrap_or_default()
    }

    /// What the file says of service `name`, if it names it.
    pub fn service(&self, name: &str) -> Option<&Node> {
        self.node.get("services")?.get(name)
    }
}

impl Project {
    /// The compose services that publish a TCP host port, in the model's order (from the
    /// files as written where the model cannot be resolved, as before a first allocation).
    pub fn publishing(&self) -> Vec<String> {
        let from_model = self.model.as_ref().ok().map(|m| {
            m.services
                .iter()
                .filter(|s| s.ports.iter().any(|p| p.protocol == "tcp"))
                .map(|s| s.name.clone())
                .collect::<Vec<_>>()
        });
        from_model.unwrap_or_else(|| {
            let mut out: Vec<String> = Vec::new();
            for f in &self.files {
                for (name, s) in f.services() {
                    let publishes = s.get("ports").is_some_and(|p| {
                        p.items()
                            .iter()
                            .any(|i| !i.text().is_some_and(|t| t.ends_with("/udp")))
                    });
                    if publishes && !out.contains(name) {
                        out.push(name.clone());
                    }
                }
            }
            out
        })
    }

    /// Where `services.<service>.<key>` is written: the last file that sets it, and the line.
    pub fn written(&self, service: &str, key: &str) -> Option<(&RawFile, &Node)> {
        self.files.iter().rev().find_map(|f| {
            let n = f.service(service)?.get(key)?;
            Some((f, n))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_mappings_are_read_as_compose_reads_them() {
        let p = |s: &str| publishes(&Value::String(s.into())).expect(s);
        assert_eq!(p("5432:5432")[0].published, Some(5432));
        let r = p("127.0.0.1:8000-8002:9000-9002");
        assert_eq!(r.len(), 3);
        assert_eq!((r[2].published, r[2].target), (Some(8002), 9002));
        assert_eq!(r[0].host_ip.as_deref(), Some("127.0.0.1"));
        assert_eq!(p("[::1]:6379:6379")[0].host_ip.as_deref(), Some("::1"));
        assert_eq!(p("53:53/udp")[0].protocol, "udp");
        assert_eq!(p("80")[0].published, None);
        let long = serde_json::json!({"target": 80, "published": "8080", "host_ip": "127.0.0.1"});
        assert_eq!(publishes(&long).expect("long")[0].published, Some(8080));
        assert!(publishes(&Value::String("a:b:c:d".into())).is_err());
    }

    #[test]
    fn interpolation_is_composes() {
        let get = |n: &str| match n {
            "SET" => Some("5".to_string()),
            "EMPTY" => Some(String::new()),
            _ => None,
        };
        assert_eq!(
            expand("${SET:-1}:${UNSET:-5432}", &get).expect("expands"),
            "5:5432"
        );
        assert_eq!(
            expand("${EMPTY-x}${EMPTY:-y}$$", &get).expect("expands"),
            "y$"
        );
        assert_eq!(
            expand("${DB_PORT:?run git ports allocate db}", &get).expect_err("required"),
            "required variable DB_PORT is missing a value: run git ports allocate db"
        );
    }
}
