//! Speed against git itself, on repositories with 10, 100 and 1000 linked worktrees.
//!
//! `cargo bench` builds the fixtures once (cached under `target/bench-fixtures/`; 1000
//! worktrees take about a minute to create), then times each command interleaved with
//! `git worktree list --porcelain` on the same repository, at least 10 runs each, and prints the
//! medians and their ratio to git's. Ratios, not absolute times, are what to compare across
//! machines. `cargo bench -- --quick` runs 10 and 100 only; `cargo bench -- --owner` only the
//! owner lookup (5,000 listening ports: `/proc` against the `listeners` crate);
//! `cargo bench -- --against OLD` this build against another build's `git-ports` binary, side
//! by side: status at 1,000 worktrees, and a health check naming 5,000 listeners;
//! `cargo bench -- --real` only `status` on repositories made through the hook (branches,
//! remembered ports, names, leases), with system calls and bytes read per worktree;
//! `cargo bench -- --hook` only what the hook adds to a `git worktree add`;
//! `cargo bench -- --docker` a health check of 100 ports a container publishes (a private
//! Docker daemon, as root) against the same 100 ports served by plain listeners.

use std::fs;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

// Beside this file, not in benches/ itself, where cargo would take each for a benchmark.
#[path = "bench/made.rs"]
mod made;
#[path = "bench/ports.rs"]
mod ports;

use made::{hook_overhead, realistic};
use ports::{against, docker_health_check, owner_lookup, silent_ports};

const BIN: &str = env!("CARGO_BIN_EXE_git-ports");
const RUNS: usize = 15;

fn target_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-fixtures")
}

/// The environment every command runs in: its own HOME (whose `.gitconfig` is the global
/// config, as for most users; `GIT_CONFIG_GLOBAL` would send git-ports to `git config` for
/// every read) and ledger, fixed identity.
fn env<'a>(cmd: &'a mut Command, root: &Path) -> &'a mut Command {
    for v in [
        "GIT_DIR",
        "GIT_WORK_TREE",
        "GIT_INDEX_FILE",
        "GIT_COMMON_DIR",
        "GIT_CONFIG_GLOBAL",
        "GIT_CONFIG_SYSTEM",
        "GIT_CONFIG_NOSYSTEM",
    ] {
        cmd.env_remove(v);
    }
    cmd.env("HOME", root.join("home"))
        .env("XDG_CONFIG_HOME", root.join("home/.config"))
        .env("GIT_PORTS_HOME", root.join("ports-home"))
        .env("GIT_AUTHOR_NAME", "Bench")
        .env("GIT_AUTHOR_EMAIL", "bench@example.com")
        .env("GIT_COMMITTER_NAME", "Bench")
        .env("GIT_COMMITTER_EMAIL", "bench@example.com")
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
}

fn git(root: &Path, dir: &Path, args: &[&str]) {
    let ok = env(&mut Command::new("git"), root)
        .current_dir(dir)
        .args(args)
        .status();
    assert!(
        ok.is_ok_and(|s| s.success()),
        "git {args:?} failed in {}",
        dir.display()
    );
}

/// A repository `main` with `n` linked worktrees `wt0…`, each holding web, api and db except
/// `wt0`, which holds no web port (so `allocate web` there searches past every other one).
/// Its registry is written directly, as version 1: nothing remembered, no names in the
/// ledger (see [`realistic_fixture`] for a repository made through the CLI).
fn fixture(n: usize) -> PathBuf {
    fixture_as(n, None)
}

/// [`fixture`] in git 3.0's formats (SHA-256 objects, reftable refs): the repositories
/// libgit2 cannot open, read through the git CLI.
fn fixture_git3(n: usize) -> PathBuf {
    fixture_as(n, Some(["--object-format=sha256", "--ref-format=reftable"]))
}

/// `root/main`: a repository with one commit, in `formats` if given, with web, api, db and
/// redis given ranges of 2000 ports each; an empty global config and ledger directory of its
/// own beside it.
fn new_repo(root: &Path, formats: Option<[&str; 2]>) {
    let repo = root.join("main");
    for d in ["home", "ports-home", "main"] {
        fs::create_dir_all(root.join(d)).expect("mkdir");
    }
    fs::write(root.join("home/.gitconfig"), "").expect("gitconfig");
    let mut init = vec!["init", "-q", "-b", "main"];
    init.extend(formats.iter().flatten());
    git(root, &repo, &init);
    fs::write(repo.join("README"), "bench\n").expect("write");
    git(root, &repo, &["add", "README"]);
    git(root, &repo, &["commit", "-q", "-m", "init"]);
    for (service, start) in [
        ("web", 20000),
        ("api", 22000),
        ("db", 24000),
        ("redis", 26000),
    ] {
        let range = format!("{start}-{}", start + 1999);
        git(
            root,
            &repo,
            &["config", &format!("ports.{service}.range"), &range],
        );
    }
}

fn fixture_as(n: usize, formats: Option<[&str; 2]>) -> PathBuf {
    let name = match formats {
        None => format!("wt{n}"),
        Some(_) => format!("git3-wt{n}"),
    };
    let root = target_dir().join(name);
    let repo = root.join("main");
    // `ready` marks a fixture whose ledger claims every allocation, as a user's does.
    if root.join("ready").exists() && root.join("ports-home/ledger.json").exists() {
        return root;
    }
    let _ = fs::remove_dir_all(&root);
    eprintln!("creating a fixture with {n} worktrees…");
    new_repo(&root, formats);
    let mut worktrees = String::new();
    for i in 0..n {
        let path = root.join(format!("wt{i}"));
        let p = path.to_str().expect("utf-8");
        git(
            &root,
            &repo,
            &["worktree", "add", "-q", p, "-b", &format!("branch-{i}")],
        );
        let mut ports = Vec::new();
        for (service, start) in [("web", 20000), ("api", 22000), ("db", 24000)] {
            if !(service == "web" && i == 0) {
                ports.push(format!(
                    "\"{service}\": {{\"port\": {}, \"allocated_at\": \"2026-01-01T00:00:00Z\"}}",
                    start + i
                ));
            }
        }
        if i > 0 {
            worktrees.push_str(",\n");
        }
        worktrees.push_str(&format!(
            "\"wt{i}\": {{\"path\": \"{p}\", \"ports\": {{{}}}}}",
            ports.join(", ")
        ));
    }
    let registry = format!("{{\"version\": 1, \"worktrees\": {{\n{worktrees}\n}}}}\n");
    fs::write(repo.join(".git/worktree-ports.json"), registry).expect("registry");
    // The ledger claims every port the registry holds, as one made port by port would.
    let claimed = env(&mut Command::new(BIN), &root)
        .current_dir(&repo)
        .args(["doctor", "--fix"])
        .status();
    assert!(
        root.join("ports-home/ledger.json").exists(),
        "doctor --fix made no ledger: {claimed:?}"
    );
    fs::write(root.join("ready"), "").expect("ready");
    root
}

fn time(root: &Path, dir: &Path, program: &str, args: &[&str]) -> Duration {
    time_with(root, dir, program, args, &[])
}

/// [`time`] with variables set beyond [`env`]'s.
fn time_with(
    root: &Path,
    dir: &Path,
    program: &str,
    args: &[&str],
    vars: &[(&str, &Path)],
) -> Duration {
    let mut cmd = Command::new(program);
    env(&mut cmd, root).current_dir(dir).args(args);
    for (k, v) in vars {
        cmd.env(k, v);
    }
    let start = Instant::now();
    let status = cmd.status();
    let took = start.elapsed();
    assert!(status.is_ok(), "{program} {args:?}");
    took
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

/// Runs each case and the reference interleaved, `RUNS` times; prints medians and ratios.
/// A command to time: its label, the directory it runs in, its arguments.
type Case<'a> = (&'a str, &'a Path, &'a [&'a str]);

fn compare(
    title: &str,
    root: &Path,
    dir: &Path,
    reference: (&str, &[&str]),
    cases: &[Case],
    between: &dyn Fn(),
) {
    let mut ref_times = Vec::new();
    let mut times: Vec<Vec<Duration>> = cases.iter().map(|_| Vec::new()).collect();
    for _ in 0..RUNS {
        ref_times.push(time(root, dir, reference.0, reference.1));
        for (i, (_, case_dir, args)) in cases.iter().enumerate() {
            times[i].push(time(root, case_dir, BIN, args));
            between();
        }
    }
    let r = median(ref_times);
    println!("\n{title}");
    println!(
        "  {:<44} {:>10}  {:>6}",
        format!("{} {}", reference.0, reference.1.join(" ")),
        ms(r),
        "1.00×"
    );
    for ((name, _, _), t) in cases.iter().zip(times) {
        let m = median(t);
        println!(
            "  {:<44} {:>10}  {:>5.2}×",
            name,
            ms(m),
            m.as_secs_f64() / r.as_secs_f64()
        );
    }
}

fn release(root: &Path, dir: &Path, port: &str) {
    let _ = env(&mut Command::new(BIN), root)
        .current_dir(dir)
        .args(["release", port])
        .status();
}

/// PATH with this build's directory first: git runs `git ports` from the hook, so git-ports
/// must be on PATH, as after an install.
fn path_with_bin() -> std::ffi::OsString {
    let bin_dir = Path::new(BIN)
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut dirs = vec![bin_dir];
    dirs.extend(std::env::split_paths(&path));
    std::env::join_paths(dirs).unwrap_or(path)
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    if std::env::args().any(|a| a == "--owner") {
        owner_lookup(5000);
        return;
    }
    if std::env::args().any(|a| a == "--real") {
        for n in [10, 100, 1000] {
            realistic(n);
        }
        return;
    }
    if std::env::args().any(|a| a == "--hook") {
        hook_overhead();
        return;
    }
    if std::env::args().any(|a| a == "--docker") {
        docker_health_check(100);
        return;
    }
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--against") {
        let old = args
            .get(i + 1)
            .expect("--against names the other build's git-ports");
        against(old);
        return;
    }
    let sizes: &[usize] = if quick { &[10, 100] } else { &[10, 100, 1000] };
    println!("git-ports benchmark: medians of {RUNS} runs, ratios to git on the same repository");

    // Startup: one worktree.
    let root = fixture(1);
    let repo = root.join("main");
    compare(
        "startup (1 worktree)",
        &root,
        &repo,
        ("git", &["rev-parse", "--git-common-dir"]),
        &[("git ports status", &repo, &["status"])],
        &|| {},
    );

    for (git3, n) in sizes
        .iter()
        .map(|&n| (false, n))
        .chain(sizes.iter().map(|&n| (true, n)))
    {
        let root = if git3 { fixture_git3(n) } else { fixture(n) };
        let repo = root.join("main");
        let wt0 = root.join("wt0");
        let release_web = || release(&root, &repo, "20000");
        release_web();
        let title = if git3 {
            format!("{n} worktrees, SHA-256 + reftable (git CLI path)")
        } else {
            format!("{n} worktrees (registry written directly, version 1)")
        };
        compare(
            &title,
            &root,
            &repo,
            ("git", &["worktree", "list", "--porcelain"]),
            &[
                ("git ports status", &repo, &["status"]),
                ("git ports status --json", &repo, &["status", "--json"]),
                (
                    "git ports allocate web (in wt0)",
                    &wt0,
                    &["allocate", "web"],
                ),
                (
                    "git ports allocate web --worktree wt0",
                    &repo,
                    &["allocate", "web", "--worktree", "wt0"],
                ),
                ("git ports check 20000", &repo, &["check", "20000"]),
            ],
            &release_web,
        );
        release_web();
    }

    for &n in sizes {
        realistic(n);
    }

    hook_overhead();

    // Health checks: 300 ports with nothing listening.
    let root = fixture(100);
    let repo = root.join("main");
    let t = median(
        (0..RUNS)
            .map(|_| time(&root, &repo, BIN, &["status", "--health-check"]))
            .collect(),
    );
    println!(
        "\nhealth check, 300 stopped ports: {} (goal: under 100 ms)",
        ms(t)
    );

    // Never-answering ports on both address families: one dual-stack listener per port whose
    // queue is full, so every further SYN, IPv4 or IPv6, is dropped and each connect can only
    // time out. The health check must take about one timeout whatever the count.
    for n in [50usize, 1000, 5000] {
        silent_ports(n);
    }

    owner_lookup(5000);
}
