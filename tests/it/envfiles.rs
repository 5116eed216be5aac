//! Ports reach every place that needs them: derived values, env files kept in step through
//! the hook, release and prune, drift flagged, tracked files refused, compose project names.

use std::fs;

use crate::support::{Env, same};

fn derived_values_reach_env_exec_and_files() {
    let env = Env::new();
    let repo = env.repo("app");
    // Derived values alone (names and URLs have their own tests).
    repo.git(["config", "ports.hostVars", "false"]);
    repo.git(["config", "ports.web.scheme", "none"]);
    repo.git(["config", "ports.api.scheme", "none"]);
    repo.range("web", 28800, 28809);
    repo.range("api", 28810, 28819);
    repo.git([
        "config",
        "--add",
        "ports.derived",
        "VITE_API_URL=http://localhost:{api}/v1",
    ]);
    repo.git([
        "config",
        "--add",
        "ports.derived",
        "CORS_ORIGINS=http://localhost:{web} http://127.0.0.1:{web}",
    ]);
    repo.run(["allocate", "web"]).ok();
    // api is not held yet: the value that needs it is left out, and said so.
    let run = repo.run(["env"]);
    run.ok();
    same(
        &run.stdout,
        "export WEB_PORT=28800\nexport CORS_ORIGINS='http://localhost:28800 http://127.0.0.1:28800'\n",
    );
    assert!(
        run.stderr
            .contains("VITE_API_URL is left out: worktree 'app' holds no port for 'api'"),
        "{}",
        run.stderr
    );
    repo.run(["allocate", "api"]).ok();
    same(
        &repo.run(["env", "--format", "dotenv"]).ok().stdout,
        "WEB_PORT=28800\nAPI_PORT=28810\nVITE_API_URL=http://localhost:28810/v1\nCORS_ORIGINS='http://localhost:28800 http://127.0.0.1:28800'\n",
    );
    assert_eq!(
        repo.run(["env", "--format", "json"]).ok().json()["VITE_API_URL"],
        "http://localhost:28810/v1"
    );
    same(
        &repo
            .run([
                "exec",
                "--",
                "sh",
                "-c",
                "echo \"$VITE_API_URL|$CORS_ORIGINS\"",
            ])
            .ok()
            .stdout,
        "http://localhost:28810/v1|http://localhost:28800 http://127.0.0.1:28800\n",
    );
    // And files: the block holds them, quoted as dotenv reads them.
    repo.run(["env", "--write", ".env.local"]).ok();
    let file = fs::read_to_string(repo.dir.join(".env.local")).expect("written");
    assert!(
        file.contains("VITE_API_URL=http://localhost:28810/v1\nCORS_ORIGINS='http://localhost:28800 http://127.0.0.1:28800'\n"),
        "{file}"
    );
    // eval of the shell format gives exactly these values.
    same(
        &env.sh(
            &repo.dir,
            "eval \"$(git ports env)\" && printf '%s\\n' \"$CORS_ORIGINS\"",
        )
        .ok()
        .stdout,
        "http://localhost:28800 http://127.0.0.1:28800\n",
    );
    // Names follow the rules of ports.<service>.env.
    for (bad, says) in [
        ("PATH=http://x", "that variable belongs to the shell"),
        (
            "WEB_PORT={api}",
            "service 'web' is exported as WEB_PORT too",
        ),
        ("X={API}", "is not a service"),
        ("no template", "expected NAME=TEMPLATE"),
    ] {
        repo.git(["config", "--add", "ports.derived", bad]);
        let run = repo.run(["env"]);
        run.code(1);
        assert!(run.stderr.contains(says), "{bad}: {}", run.stderr);
        repo.git(["config", "--unset", "ports.derived", &regex_escape(bad)]);
    }
}

fn regex_escape(s: &str) -> String {
    s.chars()
        .map(|c| {
            if "{}[]().*+?^$|\\".contains(c) {
                format!("\\{c}")
            } else {
                c.to_string()
            }
        })
        .collect()
}

fn env_files_follow_every_change_and_keep_their_other_lines() {
    let env = Env::new();
    let repo = env.repo("app");
    // The block without host names: this test is about the file, not its variables.
    repo.git(["config", "ports.hostVars", "false"]);
    repo.range("web", 28820, 28829);
    repo.range("api", 28830, 28839);
    fs::create_dir_all(repo.dir.join("server")).expect("mkdir");
    fs::write(repo.dir.join("server/main.js"), "").expect("write");
    repo.git(["add", "server"]);
    repo.git(["commit", "-q", "-m", "server"]);
    repo.git(["config", "--add", "ports.envFile", ".env.local"]);
    repo.git(["config", "--add", "ports.envFile", "server/.env"]);
    repo.run(["hook", "install", "--services", "web"]).ok();
    // The moment `git worktree add` returns, the new worktree's files are there.
    repo.add_worktree("wt", "wt").ok();
    let wt = env.path("wt");
    let block = |ports: &str| {
        format!(
            "# >>> git-ports >>>\n# Written by git ports; these lines are replaced when the ports change.\n{ports}# <<< git-ports <<<\n"
        )
    };
    same(
        &fs::read_to_string(wt.join(".env.local")).expect("written"),
        &block("WEB_PORT=28820\nWEB_URL=http://localhost:28820\n"),
    );
    same(
        &fs::read_to_string(wt.join("server/.env")).expect("written"),
        &block("WEB_PORT=28820\nWEB_URL=http://localhost:28820\n"),
    );
    // Other lines stay, before and after the block; allocate and release rewrite the block.
    let own = format!(
        "FOO=1\n{}BAR=2\n",
        block("WEB_PORT=28820\nWEB_URL=http://localhost:28820\n")
    );
    fs::write(wt.join(".env.local"), &own).expect("write");
    env.run(&wt, ["allocate", "api"]).ok();
    same(
        &fs::read_to_string(wt.join(".env.local")).expect("read"),
        &format!(
            "FOO=1\n{}BAR=2\n",
            block(
                "WEB_PORT=28820\nAPI_PORT=28830\nWEB_URL=http://localhost:28820\nAPI_URL=http://localhost:28830\n"
            )
        ),
    );
    env.run(&wt, ["release", "28830"]).ok();
    same(
        &fs::read_to_string(wt.join(".env.local")).expect("read"),
        &format!(
            "FOO=1\n{}BAR=2\n",
            block("WEB_PORT=28820\nWEB_URL=http://localhost:28820\n")
        ),
    );
    // Written by hand: idempotent, dotenv by default, and --write says when nothing changed.
    let run = env.run(&wt, ["env", "--write", "other.env"]);
    run.ok();
    let first = fs::read_to_string(wt.join("other.env")).expect("read");
    let again = env.run(&wt, ["env", "--write", "other.env"]);
    assert!(again.stdout.contains("Up to date:"), "{}", again.stdout);
    assert_eq!(
        fs::read_to_string(wt.join("other.env")).expect("read"),
        first
    );
    // Drift: a block edited by hand is flagged by status and doctor.
    fs::write(
        wt.join("server/.env"),
        block("WEB_PORT=1\nWEB_URL=http://localhost:1\n"),
    )
    .expect("write");
    let status = repo.run(["status"]);
    status.ok();
    assert!(
        status.stdout.contains(&format!("Env file {} does not match the ports of 'wt': run `git ports env --worktree wt --write ", wt.join("server/.env").display())),
        "{}",
        status.stdout
    );
    let doctor = repo.run(["doctor"]);
    doctor.code(4);
    assert!(
        doctor.stdout.contains("PROBLEM env-file"),
        "{}",
        doctor.stdout
    );
    env.run(&wt, ["env", "--write", "server/.env"]).ok();
    repo.run(["doctor"]).ok();
}

fn a_tracked_file_is_never_written() {
    let env = Env::new();
    let repo = env.repo("app");
    repo.range("web", 28840, 28849);
    repo.run(["allocate", "web"]).ok();
    fs::write(repo.dir.join(".env"), "COMMITTED=1\n").expect("write");
    repo.git(["add", ".env"]);
    repo.git(["commit", "-q", "-m", "env"]);
    let run = repo.run(["env", "--write", ".env"]);
    run.code(1);
    assert!(
        run.stderr.contains(".env is tracked by git"),
        "{}",
        run.stderr
    );
    assert_eq!(
        fs::read_to_string(repo.dir.join(".env")).expect("read"),
        "COMMITTED=1\n"
    );
    // Listed in ports.envFile, it is skipped with a warning; the change itself goes ahead.
    repo.git(["config", "ports.envFile", ".env"]);
    let run = repo.run(["release", "28840"]);
    run.ok();
    assert!(
        run.stderr.contains(".env is tracked by git: not written"),
        "{}",
        run.stderr
    );
    assert_eq!(
        fs::read_to_string(repo.dir.join(".env")).expect("read"),
        "COMMITTED=1\n"
    );
}

fn compose_project_names_are_distinct_and_valid() {
    let env = Env::new();
    let repo = env.repo("My App");
    repo.range("web", 28850, 28859);
    repo.git(["config", "ports.compose", "true"]);
    let a = repo.worktree("Feature.X", "fx");
    let b = repo.worktree("-odd", "odd");
    let mut names = Vec::new();
    for dir in [&repo.dir, &a, &b] {
        env.run(dir, ["allocate", "web"]).ok();
        let json = env.run(dir, ["env", "--format", "json"]).ok().json();
        let name = json["COMPOSE_PROJECT_NAME"]
            .as_str()
            .unwrap_or("")
            .to_string();
        let valid = name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
        assert!(valid, "{name}");
        names.push(name);
    }
    assert_eq!(names, ["my-app", "my-app-feature-x", "my-app--odd"]);
}

include!(concat!(env!("OUT_DIR"), "/it_envfiles.rs"));
