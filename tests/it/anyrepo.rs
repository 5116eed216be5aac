//! At home in every git repository: git 3.0's defaults (SHA-256, reftable), every channel of
//! git config, every place git keeps hooks, and every worktree layout.

use std::fs;
use std::path::PathBuf;

use crate::promise::{ledger_path, run_with};
use crate::support::{Env, Repo, git3, same};

/// A repository made with the given object and ref formats, one commit on `main`, and a
/// linked worktree on branch `feat`.
fn formatted<'a>(env: &'a Env, name: &str, hash: &str, refs: &str) -> (Repo<'a>, PathBuf) {
    let dir = env.path(name);
    fs::create_dir_all(&dir).expect("mkdir");
    env.git(
        &dir,
        [
            "init",
            "-q",
            "-b",
            "main",
            &format!("--object-format={hash}"),
            &format!("--ref-format={refs}"),
        ],
    );
    env.git(&dir, ["commit", "-q", "--allow-empty", "-m", "init"]);
    let repo = Repo { env, dir };
    let wt = repo.worktree(&format!("{name}-feat"), "feat");
    (repo, wt)
}

fn every_command_works_under_sha256_and_reftable() {
    let env = Env::new();
    let mut base = 27600;
    for (hash, refs) in [
        ("sha256", "files"),
        ("sha1", "reftable"),
        ("sha256", "reftable"),
    ] {
        let name = format!("{hash}-{refs}");
        let (repo, wt) = formatted(&env, &name, hash, refs);
        let wt_name = format!("{name}-feat");
        repo.range("web", base, base + 9);
        repo.range("api", base + 10, base + 19);
        repo.run(["allocate", "web"]).ok();
        env.run(&wt, ["allocate", "web", "api"]).ok();
        // The real branch of each worktree, never the reftable's stub.
        let json = repo.run(["status", "--json"]).ok().json();
        let branches: Vec<_> = json["worktrees"]
            .as_array()
            .expect("worktrees")
            .iter()
            .map(|w| (w["name"].clone(), w["branch"].clone()))
            .collect();
        assert_eq!(
            branches,
            vec![
                (name.clone().into(), "main".into()),
                (wt_name.clone().into(), "feat".into())
            ],
            "{name}"
        );
        let status = repo.run(["status", "--service", "web"]);
        assert!(
            status.stdout.contains("Branch: feat"),
            "{name}: {}",
            status.stdout
        );
        let machine = repo.run(["status", "--machine"]);
        assert!(
            machine.stdout.contains(&format!("  {wt_name} (feat):")),
            "{name}: {}",
            machine.stdout
        );
        assert_eq!(
            env.run(&wt, ["get", "api"]).ok().stdout,
            format!("{}\n", base + 10)
        );
        repo.run(["get", "web", "-w", "feat"]).ok();
        // Host names too, in every format.
        let (web, api) = (base + 1, base + 10);
        // A worktree named after its repository (`sha256-files-feat`) is named without it.
        let label = wt_name
            .strip_prefix(&format!("{name}-"))
            .unwrap_or(&wt_name);
        let host = format!("{label}.{name}.localhost");
        same(
            &env.run(&wt, ["env"]).ok().stdout,
            &format!(
                "export WEB_PORT={web}\nexport API_PORT={api}\nexport WEB_URL=http://localhost:{web}\nexport WEB_PUBLIC_HOST={host}\nexport WEB_PUBLIC_URL=http://{host}:{web}\nexport API_URL=http://localhost:{api}\nexport API_PUBLIC_HOST=api.{host}\nexport API_PUBLIC_URL=http://api.{host}:{api}\n",
            ),
        );
        env.run(&wt, ["exec", "--", "true"]).ok();
        repo.run(["check", &(base + 1).to_string()]).code(4);
        repo.run(["available", "web"]).ok();
        repo.run(["release", &(base + 10).to_string()]).ok();
        repo.run(["doctor"]).ok();
        // The hook, through git itself.
        repo.run(["hook", "install", "--services", "web"]).ok();
        let add = repo.add_worktree(&format!("{name}-new"), &format!("{name}-new"));
        add.ok();
        assert!(
            add.stderr.contains(&format!(
                "git-ports: web port {} for worktree '{name}-new'",
                base + 2
            )),
            "{name}: {add:?}"
        );
        repo.git([
            "worktree",
            "remove",
            env.path(&format!("{name}-new")).to_str().unwrap_or(""),
        ]);
        assert!(
            repo.run(["prune"]).ok().stdout.contains("Released port"),
            "{name}"
        );
        base += 20;
    }
}

fn under_git3_defaults_the_suite_really_uses_them() {
    let env = Env::new();
    let repo = env.repo("app");
    let formats = repo.git(["rev-parse", "--show-object-format", "--show-ref-format"]);
    if git3() {
        // A git too old for these defaults would make a second run that tests nothing.
        assert_eq!(
            formats, "sha256\nreftable\n",
            "git does not honour git 3.0's defaults"
        );
    } else {
        assert_eq!(formats.lines().count(), 2, "{formats}");
    }
}

fn a_repository_git_cannot_read_is_named_for_what_it_is() {
    let env = Env::new();
    let repo = env.repo("app");
    repo.git(["config", "core.repositoryformatversion", "1"]);
    repo.git(["config", "extensions.frobnicate", "true"]);
    let run = repo.run(["status"]);
    run.code(2);
    same(
        &run.stderr,
        "git-ports: git cannot read this repository: unknown repository extension found: frobnicate\n",
    );
}

fn settings_come_through_every_channel_git_offers() {
    let env = Env::new();
    let repo = env.repo("app");
    // The variables the channels set, and no others.
    repo.git(["config", "ports.hostVars", "false"]);
    let wt = repo.worktree("wc-a", "wc-a");
    // `git -c`, which git hands to subcommands as GIT_CONFIG_PARAMETERS.
    let run = env.git_run(
        &repo.dir,
        [
            "-c",
            "ports.web.range=27700-27709",
            "ports",
            "available",
            "web",
        ],
    );
    run.ok();
    assert!(
        run.stdout
            .starts_with("Available ports for service 'web' (range: 27700-27709)"),
        "{}",
        run.stdout
    );
    // GIT_CONFIG_COUNT / KEY / VALUE.
    let run = run_with(
        &env,
        &repo.dir,
        &["available", "web"],
        &[
            ("GIT_CONFIG_COUNT", "1"),
            ("GIT_CONFIG_KEY_0", "ports.web.range"),
            ("GIT_CONFIG_VALUE_0", "27710-27719"),
        ],
    );
    assert!(
        run.stdout
            .starts_with("Available ports for service 'web' (range: 27710-27719)"),
        "{}",
        run.stdout
    );
    // Per-worktree config: a command aimed at wc-a uses wc-a's settings.
    repo.range("web", 27720, 27729);
    repo.git(["config", "extensions.worktreeConfig", "true"]);
    env.git(&wt, ["config", "--worktree", "ports.web.env", "WC_A_PORT"]);
    env.run(&wt, ["allocate", "web"]).ok();
    same(
        &repo.run(["env", "-w", "wc-a"]).ok().stdout,
        "export WC_A_PORT=27720\nexport WEB_URL=http://localhost:27720\n",
    );
    same(
        &env.run(&wt, ["env"]).ok().stdout,
        "export WC_A_PORT=27720\nexport WEB_URL=http://localhost:27720\n",
    );
}

#[cfg(unix)]
fn a_repository_git_refuses_for_ownership_says_so_with_the_fix() {
    use std::os::unix::fs::MetadataExt;
    let env = Env::new();
    let repo = env.repo("app");
    let me = fs::metadata(env.root()).map(|m| m.uid()).unwrap_or(0);
    if me != 0 {
        crate::support::skip("needs root to give a directory to another user");
    }
    let chown = env.sh(env.root(), "chown -R 65534 app");
    if chown.code != 0 {
        crate::support::skip(&format!("chown failed: {}", chown.stderr));
    }
    let run = repo.run(["status"]);
    run.code(2);
    assert!(
        run.stderr.starts_with(
            "git-ports: git refuses this repository: detected dubious ownership in repository at "
        ) && run
            .stderr
            .contains("hint: if you trust it, run `git config --global --add safe.directory "),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("class="), "{}", run.stderr);
}

fn the_hook_allocates_only_for_a_worktree_git_worktree_add_created() {
    let env = Env::new();
    let src = env.repo("src");
    // A hook in a global core.hooksPath runs for every repository, clones included.
    let hooks = env.path("global-hooks");
    fs::create_dir_all(&hooks).expect("mkdir");
    env.git(
        env.root(),
        [
            "config",
            "--global",
            "core.hooksPath",
            hooks.to_str().expect("utf-8"),
        ],
    );
    env.git(
        env.root(),
        ["config", "--global", "ports.autoAllocate", "web"],
    );
    src.run(["hook", "install"]).ok();
    assert!(hooks.join("post-checkout").exists());
    // A clone runs post-checkout with the null id and flag 1: no ports.
    let clone = env.git_run(
        env.root(),
        ["clone", "-q", src.dir.to_str().unwrap_or(""), "copy"],
    );
    clone.ok();
    assert!(!clone.stderr.contains("git-ports"), "{clone:?}");
    assert!(!env.path("copy/.git/worktree-ports.json").exists());
    // Nor does a checkout from an unborn branch.
    let fresh = env.path("fresh");
    fs::create_dir_all(&fresh).expect("mkdir");
    env.git(&fresh, ["init", "-q", "-b", "unborn"]);
    env.git(
        &fresh,
        ["fetch", "-q", src.dir.to_str().unwrap_or(""), "main:main"],
    );
    let co = env.git_run(&fresh, ["checkout", "-q", "main"]);
    co.ok();
    assert!(!fresh.join(".git/worktree-ports.json").exists(), "{co:?}");
    // `git worktree add` does.
    let add = src.add_worktree("wt", "wt");
    add.ok();
    assert!(add.stderr.contains("git-ports: web port"), "{add:?}");
}

fn a_relative_hooks_path_is_read_from_each_worktree_as_git_does() {
    let env = Env::new();
    let repo = env.repo("app");
    repo.range("web", 27730, 27739);
    repo.git(["config", "core.hooksPath", ".githooks"]);
    let install = repo.run(["hook", "install", "--services", "web"]);
    install.ok();
    assert!(
        install
            .stdout
            .contains("core.hooksPath is relative (.githooks)")
            && install.stdout.contains("Commit "),
        "{}",
        install.stdout
    );
    assert!(repo.dir.join(".githooks/post-checkout").exists());
    // git runs the copy in the worktree the command runs in: from the main one, this one.
    let add = repo.add_worktree("early", "early");
    add.ok();
    assert!(
        add.stderr
            .contains("git-ports: web port 27730 for worktree 'early'"),
        "{add:?}"
    );
    // Not committed yet: `early` has no copy, so adding from there runs nothing, and
    // `hook status` there says where the block would have to be.
    let early = env.path("early");
    let from_early = env.git_run(
        &early,
        ["worktree", "add", env.path("e2").to_str().unwrap_or("")],
    );
    from_early.ok();
    assert!(!from_early.stderr.contains("git-ports"), "{from_early:?}");
    let st = env.run(&early, ["hook", "status"]);
    assert!(
        st.stdout.starts_with(&format!(
            "Hook: not installed (it would go in {}",
            early.join(".githooks").display()
        )),
        "{}",
        st.stdout
    );
    // Committed, every worktree made from it has its own copy, and adds from there allocate.
    repo.git(["add", ".githooks"]);
    repo.git(["commit", "-q", "-m", "hooks"]);
    repo.add_worktree("later", "later").ok();
    let later = env.path("later");
    let from_later = env.git_run(
        &later,
        ["worktree", "add", env.path("l2").to_str().unwrap_or("")],
    );
    from_later.ok();
    assert!(
        from_later.stderr.contains("for worktree 'l2'"),
        "{from_later:?}"
    );
    let st = env.run(&later, ["hook", "status"]);
    assert!(
        st.stdout.starts_with("Hook: installed in "),
        "{}",
        st.stdout
    );
}

fn hook_install_that_cannot_write_exits_with_the_unwritable_code() {
    let env = Env::new();
    let repo = env.repo("app");
    let hooks = repo.dir.join(".git/hooks");
    fs::remove_dir_all(&hooks).expect("rm");
    fs::write(&hooks, "not a directory").expect("write");
    let run = repo.run(["hook", "install"]);
    run.code(5);
    assert!(
        run.stderr.starts_with("git-ports: cannot create "),
        "{}",
        run.stderr
    );
}

fn husky_keeps_the_block_through_npm_install() {
    let env = Env::new();
    let repo = env.repo("app");
    repo.range("web", 27740, 27749);
    let npm = |args: &str| {
        env.sh(
            &repo.dir,
            &format!("npm {args} --no-audit --no-fund --fetch-timeout=20000 --fetch-retries=1 >/dev/null 2>&1"),
        )
    };
    if env.sh(&repo.dir, "command -v npm").code != 0 || npm("init -y").code != 0 {
        crate::support::skip("npm is not on this machine");
    }
    if npm("install husky@9").code != 0 || env.sh(&repo.dir, "npx husky init").code != 0 {
        crate::support::skip("husky could not be installed from npm");
    }
    assert_eq!(repo.git(["config", "core.hooksPath"]), ".husky/_\n");
    let install = repo.run(["hook", "install", "--services", "web"]);
    install.ok();
    assert!(
        install.stdout.contains("is generated by husky"),
        "{}",
        install.stdout
    );
    let user_hook = repo.dir.join(".husky/post-checkout");
    assert!(
        fs::read_to_string(&user_hook)
            .expect("hook")
            .contains("git-ports hook run")
    );
    // husky rewrites its directory on every install: the block is not in it, so it stays.
    npm("install").ok();
    assert!(
        fs::read_to_string(&user_hook)
            .expect("hook")
            .contains("git-ports hook run")
    );
    repo.run(["hook", "status"])
        .ok()
        .stdout
        .starts_with("Hook: installed")
        .then_some(())
        .expect("installed");
    // As the note says, pointing every worktree at this one's hooks makes git run it on add.
    let abs = repo.dir.join(".husky/_");
    repo.git(["config", "core.hooksPath", abs.to_str().unwrap_or("")]);
    let add = repo.add_worktree("wt", "wt");
    add.ok();
    assert!(
        add.stderr
            .contains("git-ports: web port 27740 for worktree 'wt'"),
        "{add:?}"
    );
}

fn a_separate_git_dir_keeps_the_main_worktrees_real_path() {
    let env = Env::new();
    let work = env.path("work");
    let gd = env.path("store/gd");
    fs::create_dir_all(env.path("store")).expect("mkdir");
    env.git(
        env.root(),
        [
            "init",
            "-q",
            "-b",
            "main",
            "--separate-git-dir",
            gd.to_str().unwrap_or(""),
            work.to_str().unwrap_or(""),
        ],
    );
    env.git(&work, ["commit", "-q", "--allow-empty", "-m", "init"]);
    let repo = Repo {
        env: &env,
        dir: work.clone(),
    };
    repo.range("web", 27750, 27759);
    repo.run(["allocate", "web"]).ok();
    let wt = repo.worktree("linked", "linked");
    // From the linked worktree the main one is known by its real name and path.
    env.run(&wt, ["allocate", "web"]).ok();
    env.run(&wt, ["get", "web", "-w", "work"]).ok();
    let json = env.run(&wt, ["status", "--json"]).ok().json();
    assert_eq!(json["worktrees"][0]["name"], "work");
    assert_eq!(json["worktrees"][0]["path"], work.to_str().unwrap_or(""));
    // Allocating for it from there never replaces the known path with a guess.
    env.run(&wt, ["allocate", "api", "-w", "work"]).ok();
    let reg: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(gd.join("worktree-ports.json")).expect("reg"))
            .expect("json");
    assert_eq!(reg["worktrees"]["/"]["path"], work.to_str().unwrap_or(""));
}

fn moved_worktrees_are_read_where_they_are_now() {
    let env = Env::new();
    let repo = env.repo("app");
    repo.range("web", 27760, 27769);
    let wt = repo.worktree("before", "b");
    env.run(&wt, ["allocate", "web"]).ok();
    repo.git([
        "worktree",
        "move",
        wt.to_str().unwrap_or(""),
        env.path("after").to_str().unwrap_or(""),
    ]);
    let machine = repo.run(["status", "--machine"]);
    machine.ok();
    assert!(
        machine.stdout.contains("  before (b):\n") && !machine.stdout.contains("stale"),
        "{}",
        machine.stdout
    );
    let json = repo.run(["status", "--machine", "--json"]).ok().json();
    let w = &json["repositories"][0]["worktrees"][0];
    assert_eq!(w["path"], env.path("after").to_str().unwrap_or(""));
    assert_eq!(w["stale"], false);
}

fn a_submodules_main_worktree_path_is_normalised() {
    let env = Env::new();
    let lib = env.repo("lib");
    let app = env.repo("app");
    app.git([
        "-c",
        "protocol.file.allow=always",
        "submodule",
        "add",
        "-q",
        lib.dir.to_str().unwrap_or(""),
        "sub",
    ]);
    let sub = app.dir.join("sub");
    let sub_repo = Repo {
        env: &env,
        dir: sub.clone(),
    };
    sub_repo.range("web", 27770, 27779);
    sub_repo.run(["allocate", "web"]).ok();
    let wt = sub_repo.worktree("sub-wt", "sub-wt");
    let json = env.run(&wt, ["status", "--json"]).ok().json();
    assert_eq!(json["worktrees"][0]["path"], sub.to_str().unwrap_or(""));
    assert_eq!(json["worktrees"][0]["name"], "sub");
}

fn a_worktree_named_with_a_dash_gets_a_hint_that_works() {
    let env = Env::new();
    let repo = env.repo("app");
    let run = repo.run(["get", "web", "-w", "-dash"]);
    run.code(1);
    same(
        &run.stderr,
        "git-ports: unexpected argument '-d' found\nhint: to name a worktree that starts with '-', write --worktree=-dash\n",
    );
}

fn machine_wide_commands_run_outside_any_repository() {
    let env = Env::new();
    let repo = env.repo("app");
    repo.range("web", 27780, 27789);
    repo.run(["allocate", "web"]).ok();
    let outside = env.path("nowhere");
    fs::create_dir_all(&outside).expect("mkdir");
    let ceiling = [("GIT_CEILING_DIRECTORIES", env.root().to_str().unwrap_or(""))];
    let machine = run_with(&env, &outside, &["status", "--machine"], &ceiling);
    machine.ok();
    assert!(
        machine
            .stdout
            .contains("  app (main):\n    web:       27780"),
        "{}",
        machine.stdout
    );
    let check = run_with(&env, &outside, &["check", "27780"], &ceiling);
    check.code(4);
    assert!(
        check.stdout.contains("Port 27780: ALLOCATED ELSEWHERE"),
        "{}",
        check.stdout
    );
    run_with(&env, &outside, &["status"], &ceiling).code(2);
    assert!(ledger_path(&env).exists());
}

/// libgit2 reads the config in-process where it can stand in for git (the files found from
/// HOME, or named by GIT_CONFIG_GLOBAL and friends, opened here); `git config` reads it where
/// an include's conditions are git's to judge. Every way must give what git gives, channel by
/// channel.
fn both_ways_of_reading_config_agree_with_git() {
    let env = Env::new();
    let repo = env.repo("app");
    let wt = repo.worktree("wc", "wc");
    let global = "[ports \"api\"]\n\trange = 27800-27809\n";
    fs::write(env.path("home/.gitconfig"), global).expect("write");
    fs::write(env.path("gitconfig"), global).expect("write");
    fs::write(env.path("included"), global).expect("write");
    fs::write(env.path("with-include"), "[include]\n\tpath = included\n").expect("write");
    let with_include = env.path("with-include");
    // From HOME, from GIT_CONFIG_GLOBAL (the test default), and through an include.
    let ways: [&[(&str, &str)]; 3] = [
        &[],
        &[("GIT_CONFIG_NOSYSTEM", "1")],
        &[("GIT_CONFIG_GLOBAL", with_include.to_str().unwrap_or(""))],
    ];
    let range = |dir: &std::path::Path, vars: &[(&str, &str)], way: usize| {
        let mut cmd = env.cmd(dir);
        cmd.args(["available", "api", "--json"]);
        if way == 0 {
            cmd.env_remove("GIT_CONFIG_GLOBAL")
                .env_remove("GIT_CONFIG_NOSYSTEM");
        }
        for (k, v) in ways[way].iter().chain(vars) {
            cmd.env(k, v);
        }
        let run = crate::support::Run::from(cmd.output().expect("run"));
        run.json()["range"].as_str().unwrap_or("").to_string()
    };
    for (way, _) in ways.iter().enumerate() {
        // Global, from HOME.
        assert_eq!(range(&repo.dir, &[], way), "27800-27809", "way {way}");
        repo.range("api", 27810, 27819);
        assert_eq!(range(&repo.dir, &[], way), "27810-27819");
        let count = [
            ("GIT_CONFIG_COUNT", "1"),
            ("GIT_CONFIG_KEY_0", "ports.api.range"),
            ("GIT_CONFIG_VALUE_0", "27820-27829"),
        ];
        assert_eq!(range(&repo.dir, &count, way), "27820-27829");
        let mut both = count.to_vec();
        both.push(("GIT_CONFIG_PARAMETERS", "'ports.api.range'='27830-27839'"));
        assert_eq!(
            range(&repo.dir, &both, way),
            "27830-27839",
            "-c wins over GIT_CONFIG_COUNT"
        );
        let old_form = [("GIT_CONFIG_PARAMETERS", "'ports.api.range=27840-27849'")];
        assert_eq!(range(&repo.dir, &old_form, way), "27840-27849");
        repo.git(["config", "extensions.worktreeConfig", "true"]);
        env.git(
            &wt,
            ["config", "--worktree", "ports.api.range", "27850-27859"],
        );
        assert_eq!(range(&wt, &[], way), "27850-27859");
        assert_eq!(range(&repo.dir, &[], way), "27810-27819");
        env.git(&wt, ["config", "--worktree", "--unset", "ports.api.range"]);
        repo.git(["config", "--unset", "extensions.worktreeConfig"]);
        repo.git(["config", "--unset", "ports.api.range"]);
    }
    // An includeIf holds only where git says its condition does.
    fs::write(&with_include, "").expect("write");
    let default = range(&repo.dir, &[], 2);
    assert_ne!(default, "27800-27809");
    for (dir, expected) in [
        (repo.dir.clone(), "27800-27809"),
        (env.path("nowhere"), &default),
    ] {
        let condition = format!(
            "[includeIf \"gitdir:{}/\"]\n\tpath = included\n",
            dir.display()
        );
        fs::write(&with_include, condition).expect("write");
        assert_eq!(
            range(&repo.dir, &[], 2),
            expected,
            "includeIf for {}",
            dir.display()
        );
    }
}

include!(concat!(env!("OUT_DIR"), "/it_anyrepo.rs"));
