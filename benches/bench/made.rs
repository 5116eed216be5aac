//! Repositories made as users make theirs (through the hook: branches, remembered ports,
//! names, leases), timed with the system calls and bytes read per worktree; and what the hook
//! adds to a `git worktree add`.

use super::*;

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
pub(super) fn realistic(n: usize) {
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
pub(super) fn hook_overhead() {
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
                    #[cfg(unix)]
                    {
                        let mut perm = fs::metadata(&hook).expect("hook").permissions();
                        std::os::unix::fs::PermissionsExt::set_mode(&mut perm, 0o755);
                        fs::set_permissions(&hook, perm).expect("chmod");
                    }
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
