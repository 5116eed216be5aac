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

/// A repository made as users make theirs: `git ports hook install --services web,api,db`,
/// then `n` worktrees added with `git worktree add -b`, each allocated by the hook, so the
/// registry remembers every branch's and name's ports and the ledger names every worktree.
/// (The leases are made fresh by each run: a lease lasts while its process does.)
fn realistic_fixture(n: usize) -> PathBuf {
    let root = target_dir().join(format!("real-wt{n}"));
    let repo = root.join("main");
    if root.join("ready").exists() {
        return root;
    }
    let _ = fs::remove_dir_all(&root);
    eprintln!("creating a fixture with {n} worktrees through the hook…");
    new_repo(&root, None);
    let ok = env(&mut Command::new(BIN), &root)
        .current_dir(&repo)
        .args(["hook", "install", "--services", "web,api,db"])
        .status();
    assert!(ok.is_ok_and(|s| s.success()), "hook install");
    let path = path_with_bin();
    for i in 0..n {
        let wt = root.join(format!("wt{i}"));
        let ok = env(&mut Command::new("git"), &root)
            .env("PATH", &path)
            .current_dir(&repo)
            .args(["worktree", "add", "-q"])
            .arg(&wt)
            .args(["-b", &format!("branch-{i}")])
            .status();
        assert!(ok.is_ok_and(|s| s.success()), "worktree add wt{i}");
    }
    fs::write(root.join("ready"), "").expect("ready");
    root
}

/// System calls and bytes read by one run, from `strace -f` (None where strace is missing).
fn syscalls(root: &Path, dir: &Path, args: &[&str], vars: &[(&str, &Path)]) -> Option<(u64, u64)> {
    let log = root.join("strace.log");
    let mut cmd = Command::new("strace");
    env(&mut cmd, root)
        .current_dir(dir)
        .args(["-f", "-qq", "-e", "signal=none", "-o"])
        .arg(&log)
        .arg(BIN)
        .args(args);
    for (k, v) in vars {
        cmd.env(k, v);
    }
    if !cmd.status().is_ok_and(|s| s.success()) {
        return None;
    }
    let text = fs::read_to_string(&log).ok()?;
    let (mut calls, mut bytes) = (0u64, 0u64);
    for line in text.lines() {
        // `PID call(…) = N`; a call another thread interrupted is two lines, `call(… <unfinished
        // ...>` and `<... call resumed>… = N`: counted once, its result read from the second.
        let call = line
            .split_once(' ')
            .map_or(line, |(_, rest)| rest.trim_start());
        let resumed = call.strip_prefix("<... ");
        if resumed.is_none() {
            calls += 1;
        }
        if line.ends_with("<unfinished ...>") {
            continue;
        }
        let name = resumed.unwrap_or(call);
        let is_read = ["read(", "pread64(", "read resumed", "pread64 resumed"]
            .iter()
            .any(|p| name.starts_with(p));
        if let Some(n) = line
            .rsplit_once(" = ")
            .and_then(|(_, n)| n.parse::<u64>().ok())
            .filter(|_| is_read)
        {
            bytes += n;
        }
    }
    Some((calls, bytes))
}

/// A command timed on a realistic fixture: its label, arguments and variables of its own.
type RealCase<'a> = (&'a str, &'a [&'a str], &'a [(&'a str, &'a Path)]);

/// `status` on [`realistic_fixture`]s: as git-ports finds a user's repository, and with
/// `GIT_CONFIG_GLOBAL` set (as CI systems and test harnesses do), against git's listing,
/// with what one run reads and how many system calls it makes per worktree.
fn realistic(n: usize) {
    let root = realistic_fixture(n);
    let repo = root.join("main");
    // Twenty processes' leases, as agents' servers hold them: the bench's own pid.
    let pid = std::process::id().to_string();
    for _ in 0..10 {
        let _ = env(&mut Command::new(BIN), &root)
            .current_dir(&repo)
            .args(["lease", "web", "api", "--pid", &pid])
            .status();
    }
    let global = root.join("home/.gitconfig");
    let vars: [(&str, &Path); 1] = [("GIT_CONFIG_GLOBAL", &global)];
    let cases: [RealCase; 3] = [
        ("git ports status", &["status"], &[]),
        ("git ports status --json", &["status", "--json"], &[]),
        (
            "git ports status (GIT_CONFIG_GLOBAL set)",
            &["status"],
            &vars,
        ),
    ];
    let mut reference = Vec::new();
    let mut times: Vec<Vec<Duration>> = cases.iter().map(|_| Vec::new()).collect();
    for _ in 0..RUNS {
        reference.push(time(
            &root,
            &repo,
            "git",
            &["worktree", "list", "--porcelain"],
        ));
        for (i, (_, args, vars)) in cases.iter().enumerate() {
            times[i].push(time_with(&root, &repo, BIN, args, vars));
        }
    }
    let r = median(reference);
    let registry = fs::metadata(repo.join(".git/worktree-ports.json")).map_or(0, |m| m.len());
    let ledger = fs::metadata(root.join("ports-home/ledger.json")).map_or(0, |m| m.len());
    println!(
        "\n{n} worktrees made through the hook (registry {} KiB, ledger {} KiB, 20 leases)",
        registry / 1024,
        ledger / 1024
    );
    println!(
        "  {:<44} {:>10}  {:>6}  {:>9} {:>10}",
        "git worktree list --porcelain",
        ms(r),
        "1.00×",
        "calls/wt",
        "bytes/wt"
    );
    for ((name, args, vars), t) in cases.iter().zip(times) {
        let m = median(t);
        let per = syscalls(&root, &repo, args, vars).map_or_else(
            || ("(no strace)".to_string(), String::new()),
            |(c, b)| {
                let n = n.max(1) as f64;
                (
                    format!("{:.1}", c as f64 / n),
                    format!("{:.0}", b as f64 / n),
                )
            },
        );
        println!(
            "  {:<44} {:>10}  {:>5.2}×  {:>9} {:>10}",
            name,
            ms(m),
            m.as_secs_f64() / r.as_secs_f64(),
            per.0,
            per.1
        );
    }
}

/// What the hook adds to one `git worktree add`: the same add in three repositories made
/// alike, one without a hook, one whose post-checkout hook is an empty shell script (what git
/// pays to run any hook: looking it up, starting `sh`), one with git-ports' hook (allocating
/// web); interleaved, each add undone untimed. `cargo bench -- --hook` runs only this.
fn hook_overhead() {
    let root = target_dir().join("hooked-v2");
    let kinds = ["none", "empty", "git-ports"];
    if !root.join("ready").exists() {
        let _ = fs::remove_dir_all(&root);
        for kind in kinds {
            let dir = root.join(kind);
            fs::create_dir_all(dir.join("home")).expect("mkdir");
            fs::create_dir_all(dir.join("ports-home")).expect("mkdir");
            fs::write(dir.join("home/.gitconfig"), "").expect("gitconfig");
            let repo = dir.join("main");
            fs::create_dir_all(&repo).expect("mkdir");
            git(&dir, &repo, &["init", "-q", "-b", "main"]);
            fs::write(repo.join("README"), "bench\n").expect("write");
            git(&dir, &repo, &["add", "README"]);
            git(&dir, &repo, &["commit", "-q", "-m", "init"]);
            git(&dir, &repo, &["config", "ports.web.range", "30000-39999"]);
            match kind {
                "empty" => {
                    let hook = repo.join(".git/hooks/post-checkout");
                    fs::write(&hook, "#!/bin/sh\n").expect("hook");
                    let mut perm = fs::metadata(&hook).expect("hook").permissions();
                    std::os::unix::fs::PermissionsExt::set_mode(&mut perm, 0o755);
                    fs::set_permissions(&hook, perm).expect("chmod");
                }
                "git-ports" => {
                    let ok = env(&mut Command::new(BIN), &dir)
                        .current_dir(&repo)
                        .args(["hook", "install", "--services", "web"])
                        .status();
                    assert!(ok.is_ok_and(|s| s.success()), "hook install");
                }
                _ => {}
            }
        }
        fs::write(root.join("ready"), "").expect("ready");
    }
    let path = path_with_bin();
    // A name never used before each time, so the hook allocates (claim, then registry, each
    // written durably) rather than finding the port the name was given last time.
    let add = |dir: &Path, name: &str| {
        let repo = dir.join("main");
        let wt = dir.join(name);
        let wt_s = wt.to_str().expect("utf-8");
        let start = Instant::now();
        let ok = env(&mut Command::new("git"), dir)
            .env("PATH", &path)
            .current_dir(&repo)
            .args(["worktree", "add", "-q", wt_s, "-b", name])
            .status();
        let took = start.elapsed();
        assert!(ok.is_ok_and(|s| s.success()), "worktree add");
        git(dir, &repo, &["worktree", "remove", "--force", wt_s]);
        git(dir, &repo, &["branch", "-q", "-D", name]);
        took
    };
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut times: Vec<Vec<Duration>> = vec![Vec::new(); kinds.len()];
    for run in 0..RUNS * 2 {
        for (i, kind) in kinds.iter().enumerate() {
            times[i].push(add(&root.join(kind), &format!("add-{stamp}-{run}")));
        }
    }
    let m: Vec<Duration> = times.into_iter().map(median).collect();
    let ratio = |d: Duration| d.as_secs_f64() / m[0].as_secs_f64();
    println!("\nhook: one `git worktree add`");
    for (label, d) in [
        ("without a hook", m[0]),
        ("with an empty shell hook (any hook's cost)", m[1]),
        ("with git-ports' hook (allocates web)", m[2]),
    ] {
        println!("  {label:<44} {:>10}  {:>5.2}×", ms(d), ratio(d));
    }
    println!(
        "  git-ports' hook over an empty one: {:+.2} ms",
        (m[2].as_secs_f64() - m[1].as_secs_f64()) * 1000.0
    );
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

/// Who listens on `n` ports, each held by this process: git-ports' own reading of the system
/// (`/proc` on Linux) against the `listeners` crate, which is what other systems use, on the
/// same sockets in the same run.
fn owner_lookup(n: usize) {
    let base: u16 = 45000;
    let held: Vec<std::net::TcpListener> = (0..n)
        .filter_map(|i| std::net::TcpListener::bind(("127.0.0.1", base + i as u16)).ok())
        .collect();
    let ports: Vec<u16> = held
        .iter()
        .filter_map(|l| l.local_addr().ok())
        .map(|a| a.port())
        .collect();
    let ours = || {
        let start = Instant::now();
        let found = git_ports::machine::listeners(&ports);
        let named = found
            .values()
            .filter(|ls| ls.iter().any(|l| l.process.is_some()))
            .count();
        (start.elapsed(), named)
    };
    let theirs = || {
        let start = Instant::now();
        let all = listeners::get_all().unwrap_or_default();
        let named = ports
            .iter()
            .filter(|p| all.iter().any(|l| l.socket.port() == **p))
            .count();
        (start.elapsed(), named)
    };
    let (mut a, mut b) = (Vec::new(), Vec::new());
    let (mut named_a, mut named_b) = (0, 0);
    for _ in 0..RUNS {
        let (t, k) = ours();
        a.push(t);
        named_a = k;
        let (t, k) = theirs();
        b.push(t);
        named_b = k;
    }
    let (a, b) = (median(a), median(b));
    println!(
        "\nowner lookup, {} listening ports: git-ports {} (named {named_a}), listeners crate {} (named {named_b}): {:.2}× the crate's time",
        ports.len(),
        ms(a),
        ms(b),
        a.as_secs_f64() / b.as_secs_f64()
    );
}

/// A repository whose main worktree holds `n` ports (services `s0`…), for health checks.
fn many_ports_fixture(n: usize, base: u16) -> PathBuf {
    let root = target_dir().join(format!("ports{n}"));
    let repo = root.join("main");
    if !root.join("ready").exists() {
        let _ = fs::remove_dir_all(&root);
        fs::create_dir_all(root.join("home")).expect("mkdir");
        fs::create_dir_all(root.join("ports-home")).expect("mkdir");
        fs::write(root.join("home/.gitconfig"), "").expect("gitconfig");
        fs::create_dir_all(&repo).expect("mkdir");
        git(&root, &repo, &["init", "-q", "-b", "main"]);
        let ports: Vec<String> = (0..n)
            .map(|i| {
                format!(
                    "\"s{i}\": {{\"port\": {}, \"allocated_at\": \"2026-01-01T00:00:00Z\"}}",
                    base as usize + i
                )
            })
            .collect();
        let p = repo.to_str().expect("utf-8");
        let registry = format!(
            "{{\"version\": 1, \"worktrees\": {{\"/\": {{\"path\": \"{p}\", \"ports\": {{{}}}}}}}}}\n",
            ports.join(", ")
        );
        fs::write(repo.join(".git/worktree-ports.json"), registry).expect("registry");
        fs::write(root.join("ready"), "").expect("ready");
    }
    root
}

fn silent_ports(n: usize) {
    use socket2::{Domain, Socket, Type};
    let base: u16 = 40000;
    let root = many_ports_fixture(n, base);
    let repo = root.join("main");
    let mut held = Vec::new();
    for i in 0..n {
        let port = base + i as u16;
        let Ok(s) = Socket::new(Domain::IPV6, Type::STREAM, None) else {
            continue;
        };
        let addr: std::net::SocketAddr = (std::net::Ipv6Addr::UNSPECIFIED, port).into();
        if s.set_only_v6(false).is_err() || s.bind(&addr.into()).is_err() || s.listen(0).is_err() {
            continue;
        }
        let filler =
            TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(200));
        held.push((s, filler));
    }
    let timeout = 1.0;
    let t = median(
        (0..3)
            .map(|_| {
                time(
                    &root,
                    &repo,
                    BIN,
                    &["status", "--health-check", "--timeout", "1"],
                )
            })
            .collect(),
    );
    println!(
        "health check, {n} ports ({} silent on IPv4 and IPv6) at --timeout 1: {} = {:.2}× the timeout",
        held.len(),
        ms(t),
        t.as_secs_f64() / timeout
    );
}

/// This build against `old` (another build's binary), interleaved on the same fixtures:
/// `status` at 1,000 worktrees, and `status --health-check` over 5,000 ports this process
/// listens on, where the owner lookup is most of the work.
fn against(old: &str) {
    let pair = |title: &str, root: &Path, dir: &Path, args: &[&str], runs: usize| {
        let (mut new_t, mut old_t) = (Vec::new(), Vec::new());
        for _ in 0..runs {
            new_t.push(time(root, dir, BIN, args));
            old_t.push(time(root, dir, old, args));
        }
        let (n, o) = (median(new_t), median(old_t));
        println!(
            "{title}: this build {}, the other {}: {:.2}× the other's time",
            ms(n),
            ms(o),
            n.as_secs_f64() / o.as_secs_f64()
        );
    };
    let root = fixture(1000);
    let repo = root.join("main");
    pair("status, 1000 worktrees", &root, &repo, &["status"], RUNS);
    pair(
        "status --json, 1000 worktrees",
        &root,
        &repo,
        &["status", "--json"],
        RUNS,
    );
    let n = 5000;
    let base: u16 = 40000;
    let root = many_ports_fixture(n, base);
    let repo = root.join("main");
    let held: Vec<std::net::TcpListener> = (0..n)
        .filter_map(|i| std::net::TcpListener::bind(("127.0.0.1", base + i as u16)).ok())
        .collect();
    pair(
        &format!("health check naming {} listeners", held.len()),
        &root,
        &repo,
        &["status", "--health-check", "--timeout", "1"],
        7,
    );
}

/// `status --health-check` over `n` ports: served by plain listeners of this process (Docker
/// never asked), then published by one container of a compose project in the repository
/// (root's docker-proxy holds each, so git-ports asks the engine), each beside git's own
/// `git worktree list --porcelain` timed in the same stretch.
fn docker_health_check(n: usize) {
    let base: u16 = 46000;
    let root = many_ports_fixture(n, base);
    let repo = root.join("main");
    let args = ["status", "--health-check", "--timeout", "1"];
    let measure = |host: Option<&str>| {
        let (mut g, mut t) = (Vec::new(), Vec::new());
        for _ in 0..RUNS {
            g.push(time(
                &root,
                &repo,
                "git",
                &["worktree", "list", "--porcelain"],
            ));
            let start = Instant::now();
            let mut cmd = Command::new(BIN);
            env(&mut cmd, &root).current_dir(&repo).args(args);
            match host {
                Some(h) => cmd.env("DOCKER_HOST", h),
                None => cmd.env_remove("DOCKER_HOST"),
            };
            let out = cmd.output().expect("git-ports");
            t.push(start.elapsed());
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        (median(g), median(t))
    };
    // The connects alone, in this process: what the servers holding the ports cost to reach.
    let ports: Vec<u16> = (0..n).map(|i| base + i as u16).collect();
    let probe = || {
        let mut t = Vec::new();
        for _ in 0..RUNS {
            let start = Instant::now();
            git_ports::net::check_all(&ports, Duration::from_secs(1));
            t.push(start.elapsed());
        }
        median(t)
    };
    let plain: Vec<std::net::TcpListener> = (0..n)
        .filter_map(|i| std::net::TcpListener::bind(("0.0.0.0", base + i as u16)).ok())
        .collect();
    let (g1, without) = measure(None);
    let probe_plain = probe();
    drop(plain);

    let Some(dockerd) = ["/usr/sbin/dockerd", "/usr/bin/dockerd"]
        .iter()
        .find(|p| Path::new(p).exists())
    else {
        println!("\ndocker health check: SKIPPED, no dockerd here (apt-get install docker.io)");
        return;
    };
    let dir = tempfile::Builder::new()
        .prefix("gpb")
        .tempdir_in("/tmp")
        .expect("temp dir");
    let host = format!("unix://{}/docker.sock", dir.path().display());
    let mut daemon = Command::new(dockerd)
        .args(["--host", &host])
        .arg("--data-root")
        .arg(dir.path().join("data"))
        .arg("--exec-root")
        .arg(dir.path().join("exec"))
        .arg("--pidfile")
        .arg(dir.path().join("docker.pid"))
        .args(["--iptables=false", "--ip-forward=false", "--bridge=none"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("dockerd");
    let docker = |args: &[&str]| {
        Command::new("docker")
            .args(args)
            .env("DOCKER_HOST", &host)
            .output()
            .expect("docker")
    };
    let start = Instant::now();
    while !docker(&["info"]).status.success() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "dockerd did not answer"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let img = dir.path().join("img");
    fs::create_dir_all(&img).expect("mkdir");
    fs::copy("/bin/busybox", img.join("busybox")).expect("busybox (busybox-static)");
    fs::write(
        img.join("Dockerfile"),
        "FROM scratch\nCOPY busybox /bin/busybox\nCMD [\"/bin/busybox\",\"sleep\",\"3600\"]\n",
    )
    .expect("Dockerfile");
    assert!(
        docker(&[
            "build",
            "-q",
            "-t",
            "gpb:local",
            img.to_str().expect("utf-8")
        ])
        .status
        .success()
    );
    assert!(docker(&["network", "create", "gpb"]).status.success());
    let range = format!(
        "{base}-{}:{base}-{}",
        base as usize + n - 1,
        base as usize + n - 1
    );
    let label_dir = format!("com.docker.compose.project.working_dir={}", repo.display());
    let run = docker(&[
        "run",
        "-d",
        "--name",
        "gpb-c",
        "--init",
        "--network",
        "gpb",
        "-p",
        &range,
        "--label",
        "com.docker.compose.project=bench",
        "--label",
        "com.docker.compose.service=db",
        "--label",
        &label_dir,
        "gpb:local",
    ]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let (g2, with) = measure(Some(&host));
    let probe_docker = probe();
    let (g3, unasked) = measure(Some("unix:///nonexistent/docker.sock"));
    // A daemon that stops leaves its networks' bridges on the host: remove them first.
    docker(&["rm", "-f", "gpb-c"]);
    docker(&["network", "rm", "gpb"]);
    let _ = Command::new("kill")
        .args(["-TERM", &daemon.id().to_string()])
        .status();
    let _ = daemon.wait();
    println!("\nhealth check, {n} ports, medians of {RUNS} runs");
    println!(
        "  {:<58} {:>10}  {:>5.2}× git",
        "served by plain listeners (Docker not asked)",
        ms(without),
        without.as_secs_f64() / g1.as_secs_f64()
    );
    println!(
        "  {:<58} {:>10}  {:>5.2}× git",
        "published by a container (root's docker-proxy; Docker asked)",
        ms(with),
        with.as_secs_f64() / g2.as_secs_f64()
    );
    println!(
        "  {:<58} {:>10}  {:>5.2}× git",
        "the same, Docker not reachable (its forwarders named)",
        ms(unasked),
        unasked.as_secs_f64() / g3.as_secs_f64()
    );
    println!(
        "  the connects alone: {} to plain listeners, {} to docker-proxy; the rest of the health check: {} without Docker, {} with",
        ms(probe_plain),
        ms(probe_docker),
        ms(without.saturating_sub(probe_plain)),
        ms(with.saturating_sub(probe_docker))
    );
    println!(
        "  with Docker: {:.2}× the time without",
        with.as_secs_f64() / without.as_secs_f64()
    );
}
