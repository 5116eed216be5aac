//! `git ports doctor`: checks what can go wrong, says how to fix each, and with `--fix`
//! repairs what is safe to repair.

use std::collections::BTreeMap;

use serde::Serialize;

use super::Ctx;
use crate::cli::DoctorArgs;
use crate::error::{Outcome, Result};
use crate::ledger::{Ledger, Seen, look, repo_dir, tilde};
use crate::output::Style;
use crate::policy::allocate::allocate_one;
use crate::registry::Registry;
use crate::store::{self, lock_path};

/// One finding.
#[derive(Debug, Serialize)]
struct Finding {
    check: Check,
    status: Status,
    message: String,
    /// What to run or do about it, when something is to be done.
    #[serde(skip_serializing_if = "Option::is_none")]
    fix: Option<String>,
    /// The file it is about, relative to the worktree, and the line (compose files).
    #[serde(skip_serializing_if = "Option::is_none")]
    file: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    line: Option<usize>,
}

#[derive(Serialize)]
struct Report<'a> {
    healthy: bool,
    problems: usize,
    fixed: usize,
    findings: &'a [Finding],
}

/// What a finding is about; in JSON, `registry`, `ledger`, `conflict`, `unclaimed`,
/// `stale-claim`, `unreachable`, `env-file`, `hook`, `lock`, `config`, `names` or `compose`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
enum Check {
    Registry,
    Ledger,
    Conflict,
    Unclaimed,
    StaleClaim,
    Unreachable,
    EnvFile,
    Hook,
    Lock,
    Config,
    Names,
    Compose,
}

impl Check {
    fn name(self) -> &'static str {
        match self {
            Check::Registry => "registry",
            Check::Ledger => "ledger",
            Check::Conflict => "conflict",
            Check::Unclaimed => "unclaimed",
            Check::StaleClaim => "stale-claim",
            Check::Unreachable => "unreachable",
            Check::EnvFile => "env-file",
            Check::Hook => "hook",
            Check::Lock => "lock",
            Check::Config => "config",
            Check::Names => "names",
            Check::Compose => "compose",
        }
    }
}

/// How a finding stands; in JSON, `ok`, `problem`, `fixed` or `info`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
enum Status {
    Ok,
    Problem,
    Fixed,
    Info,
}

fn finding(check: Check, status: Status, message: String) -> Finding {
    Finding {
        check,
        status,
        message,
        fix: None,
        file: None,
        line: None,
    }
}

pub fn run(ctx: &mut Ctx, args: DoctorArgs) -> Result<Outcome> {
    let mut findings: Vec<Finding> = Vec::new();
    let mut unreadable = false;
    // Repairs are decided inside one locked change, from the files as they are then; what
    // is reported afterwards is read again, so it says how things stand after the repair.
    let fixed = if args.fix { fix(ctx)? } else { Vec::new() };

    let registry = match ctx.store.load() {
        Ok(r) => {
            findings.push(finding(
                Check::Registry,
                Status::Ok,
                format!("{} reads ({} ports)", ctx.store.path.display(), r.total()),
            ));
            Some(r)
        }
        Err(e) => {
            unreadable = true;
            findings.push(Finding {
                fix: Some("fix or remove the file by hand; git-ports never rewrites a file it cannot read".into()),
                ..finding(Check::Registry, Status::Problem, e.to_string())
            });
            None
        }
    };
    let ledger = match &ctx.ledger {
        None => None,
        Some(l) => match l.load_for(&ctx.repo_id) {
            Ok(ledger) => {
                findings.push(finding(
                    Check::Ledger,
                    Status::Ok,
                    format!("{} reads ({} claims)", l.path.display(), ledger.ports.len()),
                ));
                Some(ledger)
            }
            Err(e) => {
                unreadable = true;
                findings.push(Finding {
                    fix: Some("fix or remove the file by hand; every repository's registry is kept, and claims are made again at each one's next change".into()),
                    ..finding(Check::Ledger, Status::Problem, e.to_string())
                });
                None
            }
        },
    };
    findings.extend(fixed);
    if let (Some(registry), Some(ledger)) = (&registry, &ledger) {
        check_claims(ctx, registry, ledger, &mut findings);
    }
    if let Some(registry) = &registry {
        for d in crate::envfile::drifted(&ctx.repo, registry, &ctx.hosts()) {
            let fix = if d.drift.writable() {
                format!(
                    "git ports env {} --write {}",
                    crate::output::worktree_arg(&d.worktree),
                    crate::output::shell_quote(&d.path.display().to_string())
                )
            } else {
                "mend the file by hand (see ENV FILES in `git ports --help`)".to_string()
            };
            findings.push(Finding {
                fix: Some(fix),
                ..finding(
                    Check::EnvFile,
                    Status::Problem,
                    format!("{} {}", d.path.display(), d.drift.describe(&d.worktree)),
                )
            });
        }
    }
    if let Some(registry) = &registry {
        check_compose(ctx, registry, ledger.as_ref(), &mut findings);
    }
    check_hook(ctx, &mut findings);
    check_locks(ctx, &mut findings);
    for p in &ctx.repo.settings.problems {
        let file = p
            .origin
            .as_ref()
            .filter(|o| o.starts_with('/'))
            .map(|o| format!("--file {} ", crate::output::shell_quote(o)))
            .unwrap_or_default();
        findings.push(Finding {
            fix: Some(format!("git config {file}{} <valid value>", p.key)),
            ..finding(Check::Config, Status::Problem, p.error().to_string())
        });
    }
    // A key git-ports does not know is a typo, which would otherwise do nothing silently.
    let entries = ctx.repo.config.entries().map(|(k, _, origin)| (k, origin));
    for (key, like, origin) in crate::config::unknown_keys(entries) {
        let value = ctx.repo.config.get(&key).unwrap_or_default();
        let at = origin
            .as_ref()
            .map(|o| format!(", set in {o}"))
            .unwrap_or_default();
        let message = match &like {
            Some(l) => format!("config {key}: git-ports has no such key (did you mean {l}?){at}"),
            None => format!("config {key}: git-ports has no such key{at}"),
        };
        let file = origin
            .as_ref()
            .filter(|o| o.starts_with('/'))
            .map(|o| format!("--file {} ", crate::output::shell_quote(o)))
            .unwrap_or_default();
        let fix = match &like {
            Some(l) => format!(
                "git config {file}--unset {key} && git config {file}{l} {}",
                crate::output::shell_quote(&value)
            ),
            None => format!("git config {file}--unset {key}"),
        };
        findings.push(Finding {
            fix: Some(fix),
            ..finding(Check::Config, Status::Problem, message)
        });
    }

    let problems = findings
        .iter()
        .filter(|f| f.status == Status::Problem)
        .count();
    let fixed = findings
        .iter()
        .filter(|f| f.status == Status::Fixed)
        .count();
    if args.json {
        ctx.out.json(&Report {
            healthy: problems == 0,
            problems,
            fixed,
            findings: &findings,
        });
    } else {
        render(ctx, &findings, problems, fixed);
    }
    if unreadable {
        return Ok(Outcome::Unreadable);
    }
    Ok(if problems > 0 {
        Outcome::Problems
    } else {
        Outcome::Done
    })
}

/// Repairs what is safe to repair, in one change that holds both locks: a port held here
/// and claimed by another repository that still holds it (a conflict, decided from the
/// ledger read under the lock) moves to a fresh port; ports held without a claim are
/// claimed, claims no worktree here backs are dropped, and every env file is brought in
/// step with the registry, as every change does.
fn fix(ctx: &Ctx) -> Result<Vec<Finding>> {
    let before = ctx.store.load().ok();
    let ledger_before = ctx
        .ledger
        .as_ref()
        .and_then(|l| l.load_for(&ctx.repo_id).ok());
    let drifted_before = before
        .as_ref()
        .map(|r| crate::envfile::drifted(&ctx.repo, r, &ctx.hosts()))
        .unwrap_or_default();
    let repo = &ctx.repo;
    let now = ctx.now;
    let moved = ctx.update(|reg, elsewhere| {
        let mut moved = Vec::new();
        let conflicts: Vec<u16> = reg
            .by_port()
            .keys()
            .copied()
            .filter(|p| elsewhere.contains_key(p))
            .collect();
        for port in conflicts {
            let Some((key, service, _)) = reg.remove_port(port) else {
                continue;
            };
            // The holder the ledger does not record moves; a live worktree gets a fresh port
            // for the same service.
            let to = match repo.by_key(&key).filter(|w| repo.gone(&w.key).is_none()) {
                Some(w) => Some(allocate_one(reg, elsewhere, repo, w, &service, None, now)?.port),
                None => None,
            };
            let other = elsewhere
                .get(&port)
                .map(|c| c.describe())
                .unwrap_or_default();
            moved.push((port, repo.display_name(&key), service, other, to));
        }
        Ok(moved)
    })?;
    let mut findings = Vec::new();
    for (port, wt, service, other, to) in moved {
        let message = match to {
            Some(to) => format!(
                "port {port} ({service}) of worktree '{wt}' was also held by {other}: moved to {to}"
            ),
            None => format!(
                "port {port} ({service}) of removed worktree '{wt}' was also held by {other}: released"
            ),
        };
        findings.push(finding(Check::Conflict, Status::Fixed, message));
    }
    if let (Some(registry), Some(ledger)) = (&before, &ledger_before) {
        let held = registry.by_port();
        if ctx.repo.settings.machine_wide {
            for p in held.keys().filter(|p| !ledger.ports.contains_key(p)) {
                findings.push(finding(
                    Check::Unclaimed,
                    Status::Fixed,
                    format!("port {p} is now claimed in the ledger"),
                ));
            }
        }
        for (p, _) in ledger
            .ports
            .iter()
            .filter(|(p, c)| c.is_registry(&ctx.repo_id) && !held.contains_key(p))
        {
            findings.push(finding(
                Check::StaleClaim,
                Status::Fixed,
                format!(
                    "the ledger's claim on port {p}, which no worktree here holds, was dropped"
                ),
            ));
        }
    }
    let left = ctx
        .store
        .load()
        .map(|r| crate::envfile::drifted(&ctx.repo, &r, &ctx.hosts()))
        .unwrap_or_default();
    for d in drifted_before
        .iter()
        .filter(|d| d.drift.writable() && !left.iter().any(|l| l.path == d.path))
    {
        findings.push(finding(
            Check::EnvFile,
            Status::Fixed,
            format!(
                "{} now holds the ports of '{}'",
                d.path.display(),
                d.worktree
            ),
        ));
    }
    findings.sort_by_key(|f| f.check);
    Ok(findings)
}

/// The compose stack of the worktree doctor runs in, read as Compose resolves it with the
/// worktree's variables: each trap with its file, line and what to write instead.
fn check_compose(
    ctx: &Ctx,
    registry: &Registry,
    ledger: Option<&Ledger>,
    findings: &mut Vec<Finding>,
) {
    let Ok(wt) = ctx.repo.current() else {
        return;
    };
    let Ok(settings) = ctx.repo.settings_for(&wt) else {
        return;
    };
    let vars: Vec<(String, String)> =
        crate::envfile::vars_of(&ctx.repo, &wt, registry, &ctx.hosts())
            .map(|(v, _)| v)
            .unwrap_or_default()
            .into_iter()
            .map(|v| (v.name, v.value.text()))
            .collect();
    let project = match crate::compose::read(&wt.path, &settings.compose_files, &vars) {
        Ok(None) => return,
        Ok(Some(p)) => p,
        Err(e) => {
            findings.push(Finding {
                fix: Some("mend the file (git-ports only reads it)".into()),
                ..finding(Check::Compose, Status::Problem, e)
            });
            return;
        }
    };
    let held: BTreeMap<String, u16> = registry
        .worktrees
        .get(&wt.key)
        .map(|e| e.ports.iter().map(|(s, a)| (s.clone(), a.port)).collect())
        .unwrap_or_default();
    let mut others: BTreeMap<u16, String> = BTreeMap::new();
    for (port, h) in registry.by_port() {
        if h.worktree != wt.key {
            others.insert(
                port,
                format!("worktree '{}'", ctx.repo.display_name(h.worktree)),
            );
        }
    }
    // From the ledger doctor read above, not read again.
    if let Some(elsewhere) = ledger.map(|l| l.elsewhere(&ctx.repo_id)) {
        for (port, c) in &elsewhere.claims {
            others.entry(*port).or_insert_with(|| c.describe());
        }
        for (port, r) in &elsewhere.reserved {
            others.entry(*port).or_insert_with(|| r.describe());
        }
    }
    let project_var = vars.iter().any(|(k, _)| k == crate::keys::ENV_COMPOSE)
        || std::env::var_os(crate::keys::ENV_COMPOSE).is_some()
        || crate::compose::dotenv(&wt.path).contains_key(crate::keys::ENV_COMPOSE);
    let dir_name = wt.path.file_name();
    let same_dir_name: Vec<String> = ctx
        .repo
        .worktrees()
        .iter()
        .filter(|w| w.key != wt.key && w.path.file_name() == dir_name)
        .map(|w| w.name.clone())
        .collect();
    let env_name = |s: &str| settings.env_name(s);
    let known = |s: &str| settings.service(s).is_ok();
    let cx = crate::compose::traps::Context {
        held: &held,
        others: &others,
        env_name: &env_name,
        known: &known,
        project_var,
        same_dir_name,
    };
    let traps = crate::compose::traps::check(&project, &cx);
    let names: Vec<&str> = project.files.iter().map(|f| f.shown.as_str()).collect();
    findings.push(finding(
        Check::Compose,
        Status::Info,
        format!(
            "the stack in {} of worktree '{}', read by {}",
            names.join(" + "),
            wt.name,
            project.reader.describe()
        ),
    ));
    if traps.is_empty() {
        findings.push(finding(
            Check::Compose,
            Status::Ok,
            "the stack can run beside the other worktrees' stacks".into(),
        ));
    }
    for t in traps {
        let place = match (&t.file, t.line) {
            (Some(f), Some(l)) => format!("{f}:{l}: "),
            (Some(f), None) => format!("{f}: "),
            _ => String::new(),
        };
        findings.push(Finding {
            fix: Some(t.fix),
            file: t.file,
            line: t.line,
            ..finding(
                Check::Compose,
                Status::Problem,
                format!("{place}{}", t.message),
            )
        });
    }
}

/// Conflicts, ports held without a claim, claims of ports no longer held, and claims of
/// repositories that cannot be read now.
fn check_claims(ctx: &Ctx, registry: &Registry, ledger: &Ledger, findings: &mut Vec<Finding>) {
    let conflicts = ledger.conflicts(&ctx.repo_id, registry);
    let held = registry.by_port();
    let unclaimed: Vec<u16> = held
        .keys()
        .copied()
        .filter(|p| {
            !conflicts.contains_key(p)
                && ledger
                    .ports
                    .get(p)
                    .is_none_or(|c| !c.is_registry(&ctx.repo_id))
        })
        .collect();
    let stale: Vec<u16> = ledger
        .ports
        .iter()
        .filter(|(p, c)| c.is_registry(&ctx.repo_id) && !held.contains_key(p))
        .map(|(p, _)| *p)
        .collect();
    let machine_wide = ctx.repo.settings.machine_wide;
    for (port, claim) in &conflicts {
        let h = &held[port];
        findings.push(Finding {
            fix: Some("git ports doctor --fix".into()),
            ..finding(
                Check::Conflict,
                Status::Problem,
                format!(
                    "port {port} ({}) of worktree '{}' is also held by {} ({})",
                    h.service,
                    ctx.repo.display_name(h.worktree),
                    claim.describe(),
                    claim.service
                ),
            )
        });
    }
    if machine_wide {
        for p in &unclaimed {
            findings.push(Finding {
                fix: Some("git ports doctor --fix".into()),
                ..finding(Check::Unclaimed, Status::Problem, format!("port {p} is held here but not claimed in the ledger, so another repository could be given it"))
            });
        }
    }
    for p in &stale {
        findings.push(Finding {
            fix: Some("git ports doctor --fix (or any change here)".into()),
            ..finding(Check::StaleClaim, Status::Info, format!("the ledger claims port {p} for this repository, which no longer holds it; it is skipped until the next change"))
        });
    }
    if conflicts.is_empty()
        && unclaimed.is_empty()
        && !findings.iter().any(|f| f.check == Check::Conflict)
    {
        findings.push(finding(
            Check::Conflict,
            Status::Ok,
            "no port held here is held by another repository".into(),
        ));
    }

    // Every worktree holding a port has a name, unless the template leaves it none.
    if machine_wide {
        let hosts = ledger.names.hosts_for(&ctx.repo_id);
        for key in registry
            .worktrees
            .keys()
            .filter(|k| !hosts.contains_key(*k))
        {
            findings.push(Finding {
                fix: Some(format!(
                    "put {{repo}} in {} (`git config {} '{}'`), so its names are this repository's own",
                    crate::keys::KEY_HOST_TEMPLATE,
                    crate::keys::KEY_HOST_TEMPLATE,
                    crate::names::DEFAULT_TEMPLATE
                )),
                ..finding(
                    Check::Names,
                    Status::Problem,
                    format!(
                        "worktree '{}' has no host name: every name {} gives it is taken, or lies under another repository's origin",
                        ctx.repo.display_name(key),
                        crate::keys::KEY_HOST_TEMPLATE
                    ),
                )
            });
        }
    }

    // Claims the ledger keeps for repositories that cannot be read now.
    let mut by_repo: BTreeMap<&std::path::Path, Vec<u16>> = BTreeMap::new();
    for (p, c) in &ledger.ports {
        if c.repo != ctx.repo_id && c.lease.is_none() {
            by_repo.entry(&c.repo).or_default().push(*p);
        }
    }
    for (repo, ports) in by_repo {
        match look(repo) {
            Seen::Unreadable(why) => findings.push(Finding {
                fix: Some("nothing, if it is on a drive that is away: its ports stay reserved until it is back or certainly gone".into()),
                ..finding(
                    Check::Unreachable,
                    Status::Info,
                    format!(
                        "{} cannot be read now ({why}); its {} claim(s) are kept",
                        tilde(&repo_dir(repo)),
                        ports.len()
                    ),
                )
            }),
            Seen::Gone => findings.push(finding(
                Check::Unreachable,
                Status::Info,
                format!("{} is gone; its claims are dropped at the next change", tilde(&repo_dir(repo))),
            )),
            Seen::Registry(_) => {}
        }
    }
}

fn check_hook(ctx: &Ctx, findings: &mut Vec<Finding>) {
    let (installed, path, runs, _) = crate::hooks::installed(&ctx.repo);
    let auto = !ctx.repo.settings.auto_allocate.is_empty();
    let f = match (installed, runs, auto) {
        (true, true, _) => finding(
            Check::Hook,
            Status::Ok,
            format!("installed in {}, where git runs it", path.display()),
        ),
        (true, false, _) => Finding {
            fix: Some(format!(
                "chmod +x {}",
                crate::output::shell_quote(&path.display().to_string())
            )),
            ..finding(
                Check::Hook,
                Status::Problem,
                format!(
                    "{} is not executable, so git does not run it",
                    path.display()
                ),
            )
        },
        (false, _, true) => Finding {
            // A hook in another language takes the line by hand: `hook install` refuses it.
            fix: Some(match crate::hooks::read(&path).map(|h| h.state) {
                Ok(crate::hooks::State::Foreign { line }) => {
                    format!("add this line to {}: {line}", path.display())
                }
                _ => "git ports hook install".into(),
            }),
            ..finding(
                Check::Hook,
                Status::Problem,
                format!(
                    "ports.autoAllocate is set but the hook is not installed in {}",
                    path.display()
                ),
            )
        },
        (false, _, false) => finding(
            Check::Hook,
            Status::Info,
            format!("not installed (it would go in {})", path.display()),
        ),
    };
    findings.push(f);
}

/// Locks held right now, and by whom: a stuck holder makes every change wait.
fn check_locks(ctx: &Ctx, findings: &mut Vec<Finding>) {
    let mut paths = vec![("registry", ctx.store.path.clone())];
    if let Some(l) = &ctx.ledger {
        paths.push(("ledger", l.path.clone()));
    }
    for (what, data) in paths {
        let lock_file = lock_path(&data);
        if !lock_file.exists() {
            continue;
        }
        match store::lock(&data, 0.0, std::time::Instant::now()) {
            Ok(_) => {}
            Err(store::LockError::Timeout { holder, .. }) => findings.push(Finding {
                fix: Some("wait for it to finish, or stop it if it is stuck".into()),
                ..finding(
                    Check::Lock,
                    Status::Problem,
                    format!(
                        "the {what} lock {} is held now{}",
                        lock_file.display(),
                        holder.map(|h| format!(" by {h}")).unwrap_or_default()
                    ),
                )
            }),
            Err(store::LockError::Io(e)) => findings.push(finding(
                Check::Lock,
                Status::Problem,
                format!("cannot open {}: {e}", lock_file.display()),
            )),
        }
    }
}

fn render(ctx: &mut Ctx, findings: &[Finding], problems: usize, fixed: usize) {
    let out = &mut ctx.out;
    out.heading("git-ports doctor");
    out.blank();
    for f in findings {
        let mark = match f.status {
            Status::Ok => out.paint("ok     ", Style::Good),
            Status::Fixed => out.paint("fixed  ", Style::Good),
            Status::Problem => out.paint("PROBLEM", Style::Bad),
            Status::Info => out.paint("note   ", Style::Dim),
        };
        out.line(format!("{mark} {:<11} {}", f.check.name(), f.message));
        if let Some(fix) = &f.fix
            && f.status != Status::Ok
        {
            out.line(format!("        {:<11} fix: {fix}", ""));
        }
    }
    out.blank();
    match (problems, fixed) {
        (0, 0) => out.line("No problems found."),
        (0, n) => out.line(format!("Fixed {n} problem(s); nothing else is wrong.")),
        (n, _) => out.line(format!(
            "{n} problem(s) found. `git ports doctor --fix` repairs what is safe to repair."
        )),
    }
}
