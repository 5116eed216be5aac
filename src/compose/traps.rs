//! The traps a compose stack falls into when it runs in several worktrees at once, each
//! with the file, the line, and what to write instead. Nothing here writes a file.

use std::collections::BTreeMap;

use super::yaml::Node;
use super::{Project, RawFile};

/// What the checks know of the worktree and the machine.
pub struct Context<'a> {
    /// This worktree's git-ports ports: service → port.
    pub held: &'a BTreeMap<String, u16>,
    /// Ports others hold: port → who (`worktree 'b'`, `~/src/other (fx)`, a reservation).
    pub others: &'a BTreeMap<u16, String>,
    /// The variable a git-ports service's port is exported as (`DB_PORT`).
    pub env_name: &'a dyn Fn(&str) -> String,
    /// Whether git-ports has a service of that name.
    pub known: &'a dyn Fn(&str) -> bool,
    /// `COMPOSE_PROJECT_NAME` is set for this worktree (`ports.compose`, or the user's own).
    pub project_var: bool,
    /// The other worktrees whose directories have this one's name: Compose's default
    /// project name is the directory's.
    pub same_dir_name: Vec<String>,
}

/// One trap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trap {
    /// The file it is written in, relative to the worktree, and the line.
    pub file: Option<String>,
    pub line: Option<usize>,
    pub message: String,
    /// The line to write instead, or what to do.
    pub fix: String,
}

fn at(f: &RawFile, n: &Node) -> (Option<String>, Option<usize>) {
    (Some(f.shown.clone()), Some(n.line))
}

/// `"${DB_PORT:?run git ports allocate db}:5432"`, with the host address kept.
fn mapping(cx: &Context, service: &str, ip: Option<&str>, target: u16) -> String {
    let ip = match ip {
        Some(i) if i.contains(':') => format!("[{i}]:"),
        Some(i) => format!("{i}:"),
        None => String::new(),
    };
    format!(
        "- \"{ip}${{{}:?run git ports allocate {service}}}:{target}\"",
        (cx.env_name)(service)
    )
}

/// What else a fix for `service` needs when git-ports has no service of its name.
fn define(cx: &Context, service: &str) -> String {
    match (cx.known)(service) {
        true => String::new(),
        false => format!(
            " (git-ports has no service '{service}' yet: `git config ports.{service}.range START-END` first)"
        ),
    }
}

pub fn check(p: &Project, cx: &Context) -> Vec<Trap> {
    let mut out = Vec::new();
    let first = p.files.first();
    match &p.model {
        Err(e) => {
            let missing = e
                .strip_prefix("required variable ")
                .and_then(|r| r.split_once(' '))
                .map(|(v, _)| v.to_string());
            let service = missing.as_ref().and_then(|v| {
                cx.held
                    .keys()
                    .chain(p.publishing().iter())
                    .find(|s| (cx.env_name)(s) == *v)
                    .cloned()
            });
            out.push(Trap {
                file: first.map(|f| f.shown.clone()),
                line: None,
                message: format!("{} cannot resolve the stack: {e}", p.reader.describe()),
                fix: match service {
                    Some(s) => format!("git ports allocate {s}{}", define(cx, &s)),
                    None => "mend the file; git-ports resolves it with this worktree's variables (`git ports env` shows them)".into(),
                },
            });
        }
        Ok(model) => {
            let mine: Vec<u16> = cx.held.values().copied().collect();
            for s in &model.services {
                for publish in s.ports.iter().filter(|p| p.protocol == "tcp") {
                    let Some(port) = publish.published else {
                        continue;
                    };
                    if mine.contains(&port) {
                        continue;
                    }
                    let (file, line) = port_line(p, &s.name, port, publish.target);
                    let fix = format!(
                        "write in its place: {}, then `git ports allocate {}`{}",
                        mapping(cx, &s.name, publish.host_ip.as_deref(), publish.target),
                        s.name,
                        define(cx, &s.name)
                    );
                    let message = match cx.others.get(&port) {
                        Some(who) => format!(
                            "service {} publishes host port {port}, which {who} holds: the two cannot run at once",
                            s.name
                        ),
                        None => format!(
                            "service {} publishes host port {port}, which no git-ports service of this worktree holds (hard-coded, or a default such as ${{{}:-{port}}}): every worktree's stack publishes it",
                            s.name,
                            (cx.env_name)(&s.name)
                        ),
                    };
                    out.push(Trap {
                        file,
                        line,
                        message,
                        fix,
                    });
                }
                if s.network_mode.as_deref() == Some("host") {
                    let (file, line) = p
                        .written(&s.name, "network_mode")
                        .map_or((first.map(|f| f.shown.clone()), None), |(f, n)| at(f, n));
                    out.push(Trap {
                        file,
                        line,
                        message: format!(
                            "service {} uses network_mode: host, so it binds straight on this machine's ports, the same ones in every worktree",
                            s.name
                        ),
                        fix: format!(
                            "delete it and publish the port the server listens on: ports: [{}]{}",
                            mapping(cx, &s.name, None, 0).trim_start_matches("- ").replace(":0\"", ":PORT\""),
                            define(cx, &s.name)
                        ),
                    });
                }
            }
        }
    }
    for f in &p.files {
        for (name, s) in f.services() {
            if let Some(n) = s.get("container_name")
                && !n
                    .text()
                    .is_some_and(|t| t.contains("${COMPOSE_PROJECT_NAME"))
            {
                out.push(Trap {
                    file: Some(f.shown.clone()),
                    line: Some(n.line),
                    message: format!(
                        "service {name} sets container_name: {}, one name on the whole machine: a second worktree's stack cannot start it, or takes it over",
                        n.text().unwrap_or_default()
                    ),
                    fix: format!(
                        "delete the line (Compose names it <project>-{name}-1), or write `container_name: ${{COMPOSE_PROJECT_NAME}}-{name}`"
                    ),
                });
            }
        }
    }
    appended(p, &mut out);
    shared(p, &mut out);
    project_name(p, cx, &mut out);
    out
}

/// The line of the `ports:` entry of `service` that publishes `port`: the entry written
/// with it (or with its target), else the `ports:` key.
fn port_line(
    p: &Project,
    service: &str,
    port: u16,
    target: u16,
) -> (Option<String>, Option<usize>) {
    let mut best = None;
    for f in p.files.iter().rev() {
        let Some(list) = f.service(service).and_then(|s| s.get("ports")) else {
            continue;
        };
        // The host part of an entry written with the port (`${DB_PORT:-5432}:5432`).
        let hit = list.items().iter().find(|i| {
            let host = match i.text() {
                Some(t) => t.rsplit_once(':').map_or("", |(h, _)| h).to_string(),
                None => i
                    .get("published")
                    .map(|p| p.to_json().to_string())
                    .unwrap_or_default(),
            };
            host.contains(&port.to_string())
        });
        let near = list.items().iter().find(|i| {
            i.text().is_some_and(|t| {
                t.ends_with(&format!(":{target}")) || t.contains(&format!(":{target}/"))
            }) || i.get("target").and_then(Node::text) == Some(&target.to_string())
        });
        if let Some(i) = hit {
            return at(f, i);
        }
        if best.is_none() {
            best = near.map(|i| at(f, i)).or(Some(at(f, list)));
        }
    }
    best.unwrap_or((p.files.first().map(|f| f.shown.clone()), None))
}

/// A service's `ports:` in a later file is appended to an earlier file's unless tagged.
fn appended(p: &Project, out: &mut Vec<Trap>) {
    let mut seen: BTreeMap<&str, (&RawFile, &Node)> = BTreeMap::new();
    for f in &p.files {
        for (name, s) in f.services() {
            let Some(ports) = s.get("ports") else {
                continue;
            };
            let replaces = matches!(ports.tag.as_deref(), Some("override" | "reset"));
            if let Some((base, bn)) = seen.get(name.as_str())
                && !replaces
            {
                out.push(Trap {
                    file: Some(f.shown.clone()),
                    line: Some(ports.line),
                    message: format!(
                        "service {name}'s ports here are appended to those of {} (line {}), not put in their place, so that file's host ports are published too",
                        base.shown, bn.line
                    ),
                    fix: "write `ports: !override` here (Compose v2.24 and later; Compose v1 has no such tag: take the mapping out of the first file instead)".into(),
                });
            }
            seen.insert(name, (f, ports));
        }
    }
}

/// Volumes and networks with a name of their own, or made outside the project, are one
/// for every worktree.
fn shared(p: &Project, out: &mut Vec<Trap>) {
    for f in &p.files {
        for (kind, what) in [("volumes", "volume"), ("networks", "network")] {
            for (key, v) in f.node.get(kind).map(Node::entries).unwrap_or_default() {
                if let Some(n) = v.get("name")
                    && let Some(name) = n.text()
                    && !name.contains("${COMPOSE_PROJECT_NAME")
                {
                    out.push(Trap {
                        file: Some(f.shown.clone()),
                        line: Some(n.line),
                        message: format!(
                            "{what} {key} is named {name} outright, so every worktree's stack uses the same one{}",
                            if kind == "volumes" { ": two databases would write one data directory" } else { "" }
                        ),
                        fix: format!(
                            "delete the line (Compose names it <project>_{key}), or write `name: ${{COMPOSE_PROJECT_NAME}}-{key}`"
                        ),
                    });
                }
                if let Some(n) = v.get("external")
                    && matches!(n.to_json(), serde_json::Value::Bool(true))
                {
                    out.push(Trap {
                        file: Some(f.shown.clone()),
                        line: Some(n.line),
                        message: format!(
                            "{what} {key} is external: made outside the project, it is one for every worktree's stack"
                        ),
                        fix: format!(
                            "delete `external: true` so that each project makes its own, unless the {what} is meant to be shared"
                        ),
                    });
                }
            }
        }
    }
}

/// Compose names a project after `name:` or the directory, unless `COMPOSE_PROJECT_NAME`
/// says otherwise: two worktrees with one project name share containers.
fn project_name(p: &Project, cx: &Context, out: &mut Vec<Trap>) {
    if cx.project_var {
        return;
    }
    let fix = "git config ports.compose true (a COMPOSE_PROJECT_NAME per worktree, exported by `git ports env`, `git ports exec` and ports.envFile)".to_string();
    let literal = p.files.iter().rev().find_map(|f| {
        let n = f.node.get("name")?;
        let t = n.text()?;
        (!t.contains('$')).then(|| (f, n, t.to_string()))
    });
    if let Some((f, n, name)) = literal {
        out.push(Trap {
            file: Some(f.shown.clone()),
            line: Some(n.line),
            message: format!(
                "the project is named {name} here, the same in every worktree, so one worktree's `up` takes over another's containers"
            ),
            fix,
        });
        return;
    }
    if let Some(w) = cx.same_dir_name.first() {
        let dir = p
            .dir
            .file_name()
            .map(|d| d.to_string_lossy().to_string())
            .unwrap_or_default();
        out.push(Trap {
            file: p.files.first().map(|f| f.shown.clone()),
            line: None,
            message: format!(
                "the project is named after the directory, {dir}, which worktree '{w}' has too, so one worktree's `up` takes over the other's containers"
            ),
            fix,
        });
    }
}
