//! `git ports env` and `git ports exec`: a worktree's ports as environment variables.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use super::Ctx;
use crate::cli::{EnvArgs, EnvFormat, ExecArgs};
use crate::config::{ENV_COMPOSE, ENV_SLOT};
use crate::error::{Error, Result};
use crate::output::shell_quote;
use crate::registry::Registry;
use crate::repo::Worktree;

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
    fn text(&self) -> String {
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
pub fn vars_of(ctx: &Ctx, wt: &Worktree, registry: &Registry) -> Result<(Vec<Var>, Vec<String>)> {
    let settings = &ctx.repo.settings_for(wt)?;
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
        .into_iter()
        .map(|(s, p)| Var {
            name: settings.env_name(s),
            value: Value::Port(p),
        })
        .collect();
    let mut warnings = Vec::new();
    for d in &settings.derived {
        match d.render(|s| held.get(s).copied()) {
            Ok(v) => vars.push(Var {
                name: d.name.clone(),
                value: Value::Text(v),
            }),
            Err(missing) => warnings.push(format!(
                "{} is left out: worktree '{}' holds no port for '{missing}'",
                d.name, wt.name
            )),
        }
    }
    if settings.choice.align
        && let Some(k) = super::allocate::slot_of(registry, settings, &wt.key)
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
            value: Value::Text(compose_project(&ctx.repo, wt)),
        });
    }
    Ok((vars, warnings))
}

/// A compose project name of the worktree's own, stable and valid (`[a-z0-9][a-z0-9_-]*`):
/// the repository's directory name, and for a linked worktree `-` and its name.
pub fn compose_project(repo: &crate::repo::Repo, wt: &Worktree) -> String {
    let base = repo.main().map_or_else(
        || crate::repo::basename(&repo.common_dir),
        |m| m.name.clone(),
    );
    let raw = if wt.is_main {
        base
    } else {
        format!("{base}-{}", wt.name)
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

/// The worktree `query` names (or the current one) and its variables; what is left out is
/// said as a warning.
pub fn vars(ctx: &Ctx, query: Option<&str>) -> Result<(Worktree, Vec<Var>)> {
    let wt = ctx.repo.target(query)?;
    let registry = ctx.store.load()?;
    let (vars, warnings) = vars_of(ctx, &wt, &registry)?;
    ctx.late.borrow_mut().extend(warnings);
    Ok((wt, vars))
}

/// The lines of a format: `export NAME=value` or `NAME=value`, text quoted for the shell.
fn lines(vars: &[Var], format: EnvFormat) -> Vec<String> {
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

pub fn run(ctx: &mut Ctx, args: EnvArgs) -> Result<()> {
    if let Some(file) = &args.write {
        let format = args.format.unwrap_or(EnvFormat::Dotenv);
        if format == EnvFormat::Json {
            return Err(Error::Usage(
                "--write writes dotenv or shell lines, not JSON".into(),
            ));
        }
        let (_, vars) = vars(ctx, args.worktree.as_deref())?;
        let path = if file.is_absolute() {
            file.clone()
        } else {
            std::env::current_dir()
                .map(|d| d.join(file))
                .unwrap_or(file.clone())
        };
        if tracked(&path) {
            return Err(Error::Usage(format!(
                "{} is tracked by git: ports written into a committed file would reach every \
                 clone; write an untracked file such as .env.local (and list it in .gitignore)",
                path.display()
            )));
        }
        let changed = write_block(&path, &lines(&vars, format))?;
        let tick = ctx.out.paint("✓", crate::output::Style::Good);
        ctx.out.line(format!(
            "{tick} {} {} ({} variable{})",
            if changed { "Wrote" } else { "Up to date:" },
            path.display(),
            vars.len(),
            if vars.len() == 1 { "" } else { "s" }
        ));
        return Ok(());
    }
    let (_, vars) = vars(ctx, args.worktree.as_deref())?;
    match args.format.unwrap_or(EnvFormat::Shell) {
        format @ (EnvFormat::Shell | EnvFormat::Dotenv) => {
            for l in lines(&vars, format) {
                ctx.out.line(l);
            }
        }
        EnvFormat::Json => {
            let map: BTreeMap<&str, serde_json::Value> = vars
                .iter()
                .map(|v| {
                    let value = match &v.value {
                        Value::Port(n) | Value::Number(n) => serde_json::Value::from(*n),
                        Value::Text(t) => serde_json::Value::from(t.as_str()),
                    };
                    (v.name.as_str(), value)
                })
                .collect();
            ctx.out.json(&map);
        }
    }
    Ok(())
}

/// The markers of the block git-ports keeps in an env file.
pub const BEGIN: &str = "# >>> git-ports >>>";
pub const END: &str = "# <<< git-ports <<<";

/// The block for these lines.
fn block(lines: &[String]) -> String {
    let mut b = format!(
        "{BEGIN}\n# Written by git ports; these lines are replaced when the ports change.\n"
    );
    for l in lines {
        b.push_str(l);
        b.push('\n');
    }
    b.push_str(END);
    b.push('\n');
    b
}

/// The file's text with the block in it: replaced in place, or added at the end.
fn with_block(text: &str, block: &str) -> String {
    if let Some(start) = text.find(BEGIN)
        && let Some(rel) = text[start..].find(END)
    {
        let mut end = start + rel + END.len();
        if text[end..].starts_with('\n') {
            end += 1;
        }
        return format!("{}{block}{}", &text[..start], &text[end..]);
    }
    let sep = if text.is_empty() || text.ends_with('\n') {
        ""
    } else {
        "\n"
    };
    format!("{text}{sep}{block}")
}

/// The block's lines as a file holds them now, if it holds one.
pub fn block_in(text: &str) -> Option<String> {
    let start = text.find(BEGIN)?;
    let rel = text[start..].find(END)?;
    Some(text[start..start + rel + END.len()].to_string())
}

/// Writes the block into `path`, keeping every other line; says whether anything changed.
fn write_block(path: &Path, lines: &[String]) -> Result<bool> {
    let existing = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(source) => {
            return Err(Error::Io {
                path: path.to_path_buf(),
                action: "cannot read",
                source,
            });
        }
    };
    let text = with_block(&existing, &block(lines));
    if text == existing {
        return Ok(false);
    }
    crate::store::replace_file(path, &text).map_err(|source| Error::Unwritable {
        path: path.to_path_buf(),
        action: "cannot write",
        source,
    })?;
    Ok(true)
}

/// Whether git tracks `path` (asked of the worktree it is in).
fn tracked(path: &Path) -> bool {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return false;
    };
    if !dir.is_dir() {
        return false;
    }
    Command::new("git")
        .current_dir(dir)
        .env_remove("GIT_DIR")
        .env_remove("GIT_WORK_TREE")
        .args(["ls-files", "--error-unmatch", "--"])
        .arg(name)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Rewrites the `ports.envFile` files of the worktrees `keys` name, after their ports changed.
/// Problems are warnings: the change itself took effect.
pub fn sync_files(ctx: &Ctx, keys: &[String]) {
    if ctx.repo.settings.env_files.is_empty() {
        return;
    }
    let Ok(registry) = ctx.store.load() else {
        return;
    };
    for key in keys {
        let Some(wt) = ctx.repo.by_key(key).filter(|w| w.path.is_dir()) else {
            continue;
        };
        let mut late = Vec::new();
        match vars_of(ctx, wt, &registry) {
            Ok((vars, _)) => {
                let lines = lines(&vars, EnvFormat::Dotenv);
                for f in &ctx.repo.settings.env_files {
                    let path = wt.path.join(f);
                    if path.parent().is_some_and(|d| !d.is_dir()) {
                        late.push(format!(
                            "{} not written: its directory is not in worktree '{}'",
                            path.display(),
                            wt.name
                        ));
                        continue;
                    }
                    if tracked(&path) {
                        late.push(format!(
                            "{} is tracked by git: not written (see {})",
                            path.display(),
                            crate::config::KEY_ENV_FILE
                        ));
                        continue;
                    }
                    if let Err(e) = write_block(&path, &lines) {
                        late.push(e.to_string());
                    }
                }
            }
            Err(e) => late.push(format!("env files of '{}' not written: {e}", wt.name)),
        }
        ctx.late.borrow_mut().extend(late);
    }
}

/// The `ports.envFile` files of live worktrees whose block says other than the registry:
/// (worktree, path).
pub fn drifted(ctx: &Ctx, registry: &Registry) -> Vec<(String, std::path::PathBuf)> {
    let mut out = Vec::new();
    if ctx.repo.settings.env_files.is_empty() {
        return out;
    }
    for wt in ctx.repo.worktrees().iter().filter(|w| w.path.is_dir()) {
        let holds = registry.worktrees.contains_key(&wt.key);
        let Ok((vars, _)) = vars_of(ctx, wt, registry) else {
            continue;
        };
        let want = block(&lines(&vars, EnvFormat::Dotenv));
        for f in &ctx.repo.settings.env_files {
            let path = wt.path.join(f);
            let have = std::fs::read_to_string(&path)
                .ok()
                .and_then(|t| block_in(&t));
            let ok = match &have {
                Some(b) => want.starts_with(b.as_str()),
                None => !holds,
            };
            if !ok {
                out.push((wt.name.clone(), path));
            }
        }
    }
    out
}

/// Hands the process over to the command with the variables added. First, a port of the
/// worktree already served by someone else refuses the start (unless `--force`), and one
/// served by this worktree's own server is mentioned.
pub fn exec(ctx: &mut Ctx, args: ExecArgs) -> Result<i32> {
    let (wt, vars) = vars(ctx, args.worktree.as_deref())?;
    let (program, rest) = args
        .command
        .split_first()
        .ok_or_else(|| Error::Usage("name a command to run after `--`".into()))?;
    let busy: Vec<(u16, Option<std::path::PathBuf>)> = vars
        .iter()
        .filter_map(|v| match v.value {
            Value::Port(p) => Some(p),
            Value::Number(_) | Value::Text(_) => None,
        })
        .filter(|&p| crate::net::in_use(p))
        .map(|p| (p, Some(wt.path.clone())))
        .collect();
    if !busy.is_empty() {
        let owners = ctx.owners(&busy);
        for (port, _) in &busy {
            match owners.get(port) {
                Some(o) if o.is_own() => ctx
                    .out
                    .warn(format!("port {port} is already served by {}", o.describe())),
                other => {
                    let who = other.map_or_else(|| "another process".to_string(), |o| o.describe());
                    if !args.force {
                        return Err(Error::PortServedByOther { port: *port, who });
                    }
                    ctx.out.warn(format!(
                        "port {port} is already served by {who}; starting anyway"
                    ));
                }
            }
        }
    }
    let mut cmd = Command::new(program);
    cmd.args(rest)
        .envs(vars.iter().map(|v| (&v.name, v.value.text())));
    let spawn_error = |source| Error::Spawn {
        program: program.to_string_lossy().into_owned(),
        source,
    };
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        // Nothing of ours is printed after this point: say what there is to say now.
        let late = ctx.late.take();
        ctx.out.warnings.extend(late);
        for w in ctx.out.warnings.drain(..) {
            eprintln!("git-ports: warning: {}", crate::output::escape(&w));
        }
        let _ = crate::output::emit(&std::mem::take(&mut ctx.out.text));
        // Only returns if the command could not be started.
        Err(spawn_error(cmd.exec()))
    }
    #[cfg(not(unix))]
    {
        // No exec here: run it as a child and give back its status.
        let status = cmd.status().map_err(spawn_error)?;
        Ok(status.code().unwrap_or(1))
    }
}
