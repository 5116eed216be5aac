//! The git workflow: the post-checkout hook, prune, get/env/exec, the man page, completions.

use std::fs;
#[cfg(unix)]
use std::os::unix::fs::PermissionsExt;

use clap::CommandFactory;
use git_ports::cli::Cli;

use crate::support::{Env, same, write_hook};

fn hook_allocates_on_worktree_add_keeps_user_hook_and_prune_releases() {
    let env = Env::new();
    let repo = env.repo("app");
    repo.range("web", 23000, 23009);
    repo.range("api", 23010, 23019);
    let hook = repo.dir.join(".git/hooks/post-checkout");
    let user = "#!/bin/sh\necho \"$1 $3\" >> \"$(git rev-parse --git-common-dir)/user-hook-ran\"\nexit 0\n";
    write_hook(&hook, user);

    let install = repo.run(["hook", "install", "--services", "web,api"]);
    install.ok();
    assert!(
        install
            .stdout
            .contains("New worktrees get: web, api (ports.autoAllocate)"),
        "{}",
        install.stdout
    );
    let installed = fs::read_to_string(&hook).expect("hook");
    // Re-install replaces the block in place.
    repo.run(["hook", "install"]).ok();
    assert_eq!(fs::read_to_string(&hook).expect("hook"), installed);
    assert_eq!(
        repo.git(["config", "--get-all", "ports.autoAllocate"]),
        "web\napi\n"
    );

    let fx = env.path("feature-x");
    let add = repo.add_worktree("feature-x", "feature-x");
    add.ok();
    // git passes a hook's stdout on to stderr.
    assert!(add.stderr.contains("git-ports: web port 23000 for worktree 'feature-x'\ngit-ports: api port 23010 for worktree 'feature-x'\n"), "{add:?}");
    let ports = &repo.registry()["worktrees"]["feature-x"]["ports"];
    assert_eq!(
        (ports["web"]["port"].clone(), ports["api"]["port"].clone()),
        (23000.into(), 23010.into())
    );
    let ran = fs::read_to_string(repo.dir.join(".git/user-hook-ran")).expect("the user's hook ran");
    // The null id: 40 zeros, or 64 in a SHA-256 repository.
    let (old, flag) = ran.split_once(' ').unwrap_or_default();
    assert!(
        old.len() >= 40 && old.bytes().all(|b| b == b'0') && flag.trim() == "1",
        "{ran}"
    );
    let status = repo.run(["status"]);
    assert!(
        status
            .ok()
            .stdout
            .contains("\nfeature-x (feature-x):\n  web:       23000\n  api:       23010\n"),
        "{}",
        status.stdout
    );

    // A branch switch in an existing worktree allocates nothing and prints nothing from us.
    repo.git(["branch", "other"]);
    let switch = env.git_run(&fx, ["checkout", "-q", "other"]);
    switch.ok();
    assert!(
        !switch.stdout.contains("git-ports") && !switch.stderr.contains("git-ports"),
        "{switch:?}"
    );

    repo.git(["worktree", "remove", fx.to_str().unwrap_or_default()]);
    let dry = repo.run(["prune", "--dry-run"]);
    same(
        &dry.ok().stdout,
        "- Would release port 23000 (web) of worktree 'feature-x': worktree removed\n- Would release port 23010 (api) of worktree 'feature-x': worktree removed\n",
    );
    assert_eq!(
        repo.registry()["worktrees"]["feature-x"]["ports"]["web"]["port"],
        23000
    );
    let prune = repo.run(["prune"]);
    same(
        &prune.ok().stdout,
        "✓ Released port 23000 (web) of worktree 'feature-x': worktree removed\n✓ Released port 23010 (api) of worktree 'feature-x': worktree removed\n",
    );
    assert_eq!(repo.registry()["worktrees"], serde_json::json!({}));

    repo.run(["hook", "uninstall"]).ok();
    assert_eq!(fs::read_to_string(&hook).expect("hook"), user);
}

#[cfg(unix)]
fn a_new_hook_file_is_created_and_removed_whole() {
    let env = Env::new();
    let repo = env.repo("app");
    repo.range("web", 23020, 23029);
    repo.run(["hook", "install"]).ok();
    let hook = repo.dir.join(".git/hooks/post-checkout");
    let text = fs::read_to_string(&hook).expect("hook");
    assert!(
        text.starts_with("#!/bin/sh\n# >>> git-ports >>>\n")
            && text.ends_with("# <<< git-ports <<<\n"),
        "{text}"
    );
    assert_ne!(
        fs::metadata(&hook).expect("meta").permissions().mode() & 0o111,
        0
    );
    let st = repo.run(["hook", "status"]);
    assert!(
        st.ok().stdout.contains("Hook: installed in ")
            && st.stdout.contains("Services: web (ports.autoAllocate)"),
        "{}",
        st.stdout
    );
    repo.run(["hook", "uninstall"]).ok();
    assert!(!hook.exists());
    assert!(
        repo.run(["hook", "status"])
            .ok()
            .stdout
            .starts_with("Hook: not installed")
    );
}

fn hooks_path_and_bare_repositories() {
    let env = Env::new();
    let repo = env.repo("app");
    repo.range("web", 23030, 23039);
    repo.git(["config", "core.hooksPath", "my-hooks"]);
    repo.run(["hook", "install", "--services", "web"]).ok();
    assert!(repo.dir.join("my-hooks/post-checkout").exists());
    // A relative core.hooksPath is read from the worktree the hook runs in: commit the hooks
    // so that the new worktree has them too, as projects that use one do.
    repo.git(["add", "my-hooks"]);
    repo.git(["commit", "-q", "-m", "hooks"]);
    let add = repo.add_worktree("wt", "wt");
    add.ok();
    assert!(
        add.stderr
            .contains("git-ports: web port 23030 for worktree 'wt'"),
        "{add:?}"
    );

    let bare = env.bare_repo("bare");
    env.git(&bare, ["config", "ports.web.range", "23040-23049"]);
    env.run(&bare, ["hook", "install", "--services", "web"])
        .ok();
    assert!(bare.join("hooks/post-checkout").exists());
    let add = env.git_run(
        &bare,
        [
            "worktree",
            "add",
            env.path("bwt").to_str().unwrap_or_default(),
            "-b",
            "bwt",
        ],
    );
    add.ok();
    assert!(
        add.stderr
            .contains("git-ports: web port 23040 for worktree 'bwt'"),
        "{add:?}"
    );
}

fn a_hook_that_is_not_a_shell_script_is_refused() {
    let env = Env::new();
    let repo = env.repo("app");
    let hook = repo.dir.join(".git/hooks/post-checkout");
    let py = "#!/usr/bin/env python3\nprint('hi')\n";
    write_hook(&hook, py);
    let run = repo.run(["hook", "install"]);
    run.code(1);
    // The line to add is given in the hook's own language.
    assert!(run.stderr.contains("is not a shell script; add this to it by hand: import subprocess, sys; subprocess.call([\"git\", \"ports\", \"hook\", \"run\", \"post-checkout\", *sys.argv[1:]])"), "{}", run.stderr);
    assert_eq!(fs::read_to_string(&hook).expect("hook"), py);
}

fn a_corrupt_registry_never_fails_worktree_add() {
    let env = Env::new();
    let repo = env.repo("app");
    repo.run(["hook", "install", "--services", "web"]).ok();
    fs::write(repo.registry_path(), "{ not json").expect("write");
    let add = repo.add_worktree("wt", "wt");
    add.ok();
    assert!(
        add.stderr.contains(
            "git-ports: warning: no ports were allocated (the checkout itself succeeded): registry "
        ),
        "{add:?}"
    );
    assert!(env.path("wt/.git").exists());
    assert_eq!(
        fs::read_to_string(repo.registry_path()).expect("read"),
        "{ not json"
    );
}

fn locked_worktrees_keep_their_ports_through_prune() {
    let env = Env::new();
    let repo = env.repo("app");
    repo.range("web", 23050, 23059);
    let locked = repo.worktree("locked", "l");
    let missing = repo.worktree("missing", "m");
    env.run(&locked, ["allocate", "web"]).ok();
    env.run(&missing, ["allocate", "web"]).ok();
    repo.git(["worktree", "lock", locked.to_str().unwrap_or_default()]);
    fs::remove_dir_all(&locked).expect("rm");
    fs::remove_dir_all(&missing).expect("rm");
    let j = repo.run(["prune", "--json"]).ok().json();
    assert_eq!(
        j["released"],
        serde_json::json!([{"worktree": "missing", "service": "web", "port": 23051, "reason": "missing"}])
    );
    assert_eq!(
        repo.registry()["worktrees"]["locked"]["ports"]["web"]["port"],
        23050
    );
    same(
        &repo.run(["prune"]).ok().stdout,
        "Nothing to prune: every worktree in the registry still exists.\n",
    );
}

fn get_env_and_exec() {
    let env = Env::new();
    let repo = env.repo("app");
    // The ports' variables (host names have their own tests).
    repo.git(["config", "ports.hostVars", "false"]);
    repo.range("web", 23060, 23069);
    repo.range("api", 23070, 23079);
    repo.range("my-svc", 23080, 23089);
    repo.git(["config", "ports.api.env", "PORT"]);
    repo.run(["allocate", "web", "api", "my-svc"]).ok();
    same(&repo.run(["get", "web"]).ok().stdout, "23060\n");
    let none = repo.run(["get", "db"]);
    none.code(2);
    assert!(
        none.stderr
            .contains("hint: allocate one with `git ports allocate db --worktree app`"),
        "{}",
        none.stderr
    );
    same(
        &repo.run(["env"]).ok().stdout,
        "export WEB_PORT=23060\nexport PORT=23070\nexport MY_SVC_PORT=23080\nexport WEB_URL=http://localhost:23060\nexport API_URL=http://localhost:23070\n",
    );
    same(
        &repo.run(["env", "--format", "dotenv"]).ok().stdout,
        "WEB_PORT=23060\nPORT=23070\nMY_SVC_PORT=23080\nWEB_URL=http://localhost:23060\nAPI_URL=http://localhost:23070\n",
    );
    assert_eq!(
        repo.run(["env", "--format", "json"]).ok().json(),
        serde_json::json!({"WEB_PORT": 23060, "PORT": 23070, "MY_SVC_PORT": 23080,
            "WEB_URL": "http://localhost:23060", "API_URL": "http://localhost:23070"})
    );
    same(
        &repo
            .run(["exec", "--", "sh", "-c", "echo $WEB_PORT $PORT"])
            .ok()
            .stdout,
        "23060 23070\n",
    );
    repo.run(["exec", "--", "sh", "-c", "exit 7"]).code(7);
    // As env(1) and shells answer: 127 for no such command, 126 for one that cannot run.
    repo.run(["exec", "--", "/nonexistent/cmd"]).code(127);
    fs::write(repo.dir.join("not-executable"), "echo hi\n").expect("write");
    repo.run(["exec", "--", "./not-executable"]).code(126);
    same(
        &env.sh(
            &repo.dir,
            "eval \"$(git ports env)\" && echo \"$WEB_PORT/$MY_SVC_PORT\"",
        )
        .ok()
        .stdout,
        "23060/23080\n",
    );
    // A hostile variable name in config is refused, never printed.
    repo.git(["config", "ports.web.env", "X=1; touch pwned #"]);
    repo.run(["env"]).code(1);
    assert!(!repo.dir.join("pwned").exists());
}

fn the_man_page_documents_every_command_and_flag() {
    let page = git_ports::commands::man::PAGE;
    let cmd = Cli::command();
    let mut missing = Vec::new();
    let check = |c: &clap::Command, path: &str, missing: &mut Vec<String>| {
        for a in c.get_arguments().filter(|a| !a.is_hide_set()) {
            if let Some(l) = a.get_long() {
                let roff = format!("\\fB\\-\\-{}\\fR", l.replace('-', "\\-"));
                if !page.contains(&roff) {
                    missing.push(format!("{path} --{l}"));
                }
            }
        }
    };
    check(&cmd, "git ports", &mut missing);
    for sub in cmd.get_subcommands().filter(|c| !c.is_hide_set()) {
        let name = sub.get_name();
        if !page.contains(&format!("\\fB{name}\\fR")) && !page.contains(&format!("\\fB{name} ")) {
            missing.push(name.to_string());
        }
        check(sub, name, &mut missing);
        for nested in sub.get_subcommands().filter(|c| !c.is_hide_set()) {
            if !page.contains(&format!("\\fB{name} {}\\fR", nested.get_name())) {
                missing.push(format!("{name} {}", nested.get_name()));
            }
            check(
                nested,
                &format!("{name} {}", nested.get_name()),
                &mut missing,
            );
        }
    }
    assert!(missing.is_empty(), "not in man/git-ports.1: {missing:?}");
    for section in [
        "NAME",
        "SYNOPSIS",
        "DESCRIPTION",
        "COMMANDS",
        "SERVICES AND RANGES",
        "CONFIGURATION",
        "FILES",
        "ENVIRONMENT",
        "EXIT STATUS",
        "EXAMPLES",
        "SEE ALSO",
    ] {
        assert!(page.contains(&format!(".SH {section}\n")), "{section}");
    }
    let groff = std::process::Command::new("groff")
        .args(["-man", "-ww", "-z", "man/git-ports.1"])
        .output();
    match groff {
        Ok(o) => assert!(
            o.status.success() && o.stderr.is_empty(),
            "groff: {}",
            String::from_utf8_lossy(&o.stderr)
        ),
        Err(_) => crate::support::skip("groff is not installed"),
    }
}

fn man_install_puts_the_page_beside_the_binary() {
    let env = Env::new();
    let bin = env.path("prefix/bin");
    fs::create_dir_all(&bin).expect("mkdir");
    fs::copy(crate::support::BIN, bin.join("git-ports")).expect("copy binary");
    // Another test forking while the copy was open for writing can hold it open a moment
    // longer: exec then fails with "text file busy" (ETXTBSY, 26) until that child execs.
    let mut tries = 0;
    let out = loop {
        match std::process::Command::new(bin.join("git-ports"))
            .args(["man", "--install"])
            .output()
        {
            Err(e) if e.raw_os_error() == Some(26) && tries < 50 => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            other => break other.expect("run"),
        }
    };
    assert!(out.status.success(), "{out:?}");
    let page = env.path("prefix/share/man/man1/git-ports.1");
    assert_eq!(
        fs::read_to_string(&page).expect("page"),
        git_ports::commands::man::PAGE
    );
    // man finds it through PATH (<dir>/bin → <dir>/share/man), which is what `git help ports`
    // and `git ports --help` run.
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let man_w = |page: &str| {
        std::process::Command::new("man")
            .args(["-w", page])
            .env("PATH", &path)
            .env_remove("MANPATH")
            .output()
            .ok()
            .filter(|o| o.status.success())
    };
    // A machine whose man cannot find its own page has no manual pages to search at all.
    if man_w("man").is_some() {
        let found =
            man_w("git-ports").map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
        assert_eq!(found.as_deref(), Some(page.to_string_lossy().as_ref()));
    } else {
        crate::support::skip_part(
            "man finding the page",
            "man is not installed or has no pages here",
        );
    }
    let printed = std::process::Command::new(bin.join("git-ports"))
        .arg("man")
        .output()
        .expect("run");
    assert_eq!(
        String::from_utf8_lossy(&printed.stdout),
        git_ports::commands::man::PAGE
    );
}

fn completions_include_git_bash_integration() {
    let env = Env::new();
    let bash = env.run(env.root(), ["completions", "bash"]);
    bash.ok();
    assert!(bash.stdout.contains("_git_ports ()"), "no _git_ports");
    assert!(
        bash.stdout
            .contains("allocate release check available status"),
        "subcommands"
    );
    let script = env.path("c.bash");
    fs::write(&script, &bash.stdout).expect("write");
    let syntax = std::process::Command::new("bash")
        .arg("-n")
        .arg(&script)
        .output()
        .expect("bash");
    assert!(
        syntax.status.success(),
        "{}",
        String::from_utf8_lossy(&syntax.stderr)
    );
    for shell in ["zsh", "fish"] {
        assert!(
            env.run(env.root(), ["completions", shell])
                .ok()
                .stdout
                .contains("git-ports"),
            "{shell}"
        );
    }
    // PowerShell's completer for git-ports: every command and its flags, nothing hidden.
    let ps = env.run(env.root(), ["completions", "powershell"]);
    ps.ok();
    assert!(
        ps.stdout
            .contains("Register-ArgumentCompleter -Native -CommandName 'git-ports'"),
        "{}",
        ps.stdout
    );
    for c in Cli::command()
        .get_subcommands()
        .filter(|c| !c.is_hide_set())
    {
        let name = c.get_name();
        assert!(
            ps.stdout.contains(&format!("'git-ports;{name}' {{")),
            "{name}"
        );
        for flag in c
            .get_arguments()
            .filter(|a| !a.is_hide_set())
            .filter_map(|a| a.get_long())
        {
            assert!(
                ps.stdout.contains(&format!("'--{flag}'")),
                "{name} --{flag}"
            );
        }
    }
    assert!(!ps.stdout.contains("new('complete'"), "the hidden command");
    assert!(!ps.stdout.contains("'--release'"), "a hidden flag");
}

fn git_bash_completion_completes_git_ports() {
    let env = Env::new();
    let script = [
        "/usr/share/bash-completion/completions/git",
        "/usr/local/share/bash-completion/completions/git",
    ]
    .into_iter()
    .find(|p| std::path::Path::new(p).exists());
    let Some(git_completion) = script else {
        crate::support::skip("git's bash completion is not installed");
    };
    let repo = env.repo("app");
    let ours = env.path("git-ports.bash");
    fs::write(
        &ours,
        env.run(env.root(), ["completions", "bash"])
            .ok()
            .stdout
            .as_bytes(),
    )
    .expect("write");
    let complete = |words: &str| {
        let script = format!(
            "source {git_completion}; source {}; COMP_WORDS=({words}); COMP_CWORD=$((${{#COMP_WORDS[@]}}-1)); \
             COMP_LINE=\"${{COMP_WORDS[*]}}\"; COMP_POINT=${{#COMP_LINE}}; COMPREPLY=(); __git_wrap__git_main; echo \"${{COMPREPLY[*]}}\"",
            ours.display()
        );
        let mut cmd = std::process::Command::new("bash");
        cmd.args(["-c", &script]).current_dir(&repo.dir);
        env.isolate(&mut cmd);
        let out = cmd.output().expect("bash");
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    assert_eq!(complete("git ports al"), vec!["allocate"]);
    assert_eq!(complete("git ports allocate --wor"), vec!["--worktree"]);
    assert_eq!(
        complete("git ports hook ''"),
        vec!["install", "uninstall", "status"]
    );
    // What the repository holds: worktree names and branches, and custom services.
    repo.worktree("feature-x", "feat/login");
    repo.range("storybook", 6006, 6106);
    assert_eq!(
        complete("git ports get web --worktree ''"),
        vec!["app", "main", "feature-x", "feat/login"]
    );
    assert_eq!(
        complete("git ports env -w fea"),
        vec!["feature-x", "feat/login"]
    );
    // bash splits the word at `=`: the reply is what follows it.
    assert_eq!(
        complete("git ports status --worktree=feature"),
        vec!["feature-x"]
    );
    assert_eq!(complete("git ports allocate st"), vec!["storybook"]);
    // point takes a worktree; after `exec --`, a command.
    assert_eq!(
        complete("git ports point fea"),
        vec!["feature-x", "feat/login"]
    );
    assert!(
        complete("git ports exec -- ech").contains(&"echo".to_string()),
        "{:?}",
        complete("git ports exec -- ech")
    );
    assert_eq!(complete("git ports status --service st"), vec!["storybook"]);
    assert_eq!(
        complete("git ports env --format ''"),
        vec!["shell", "dotenv", "json"]
    );
    assert_eq!(
        complete("git ports hook install --"),
        vec!["--services", "--help"]
    );
    assert_eq!(
        complete("git ports prune -"),
        vec!["--dry-run", "--stop", "--json", "--help"]
    );
    assert_eq!(complete("git ports wait ap"), vec!["api"]);
}

include!(concat!(env!("OUT_DIR"), "/it_workflow.rs"));
