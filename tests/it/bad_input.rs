//! Bad input, table-driven: each case gets the documented exit code, one clear line naming
//! the problem, and leaves the registry and the ledger byte for byte as they were.

use std::fs;
use std::path::Path;

use crate::support::{Env, Repo};

type Setup = fn(&Env, &Repo);

struct Case {
    name: &'static str,
    setup: Setup,
    args: &'static [&'static str],
    code: i32,
    /// Must appear in the one `git-ports: …` line.
    says: &'static str,
}

fn nothing(_: &Env, _: &Repo) {}

fn registry(text: &'static [u8]) -> impl Fn(&Env, &Repo) {
    move |_, r| fs::write(r.registry_path(), text).expect("write")
}

macro_rules! reg {
    ($text:expr) => {
        |e: &Env, r: &Repo| registry($text)(e, r)
    };
}

fn config(r: &Repo, key: &str, value: &str) {
    r.git(["config", key, value]);
}

const A: &str = r#""allocated_at": "2026-01-01T00:00:00Z""#;

fn cases() -> Vec<Case> {
    let mut cases = vec![
        // Ports.
        Case {
            name: "port 0",
            setup: nothing,
            args: &["check", "0"],
            code: 1,
            says: "'0' is not a port",
        },
        Case {
            name: "port 65536",
            setup: nothing,
            args: &["check", "65536"],
            code: 1,
            says: "'65536' is not a port",
        },
        Case {
            name: "port -1",
            setup: nothing,
            args: &["check", "-1"],
            code: 1,
            says: "unexpected argument '-1'",
        },
        Case {
            name: "port 8000.5",
            setup: nothing,
            args: &["allocate", "web", "--port", "8000.5"],
            code: 1,
            says: "'8000.5' is not a port",
        },
        Case {
            name: "port abc",
            setup: nothing,
            args: &["release", "abc"],
            code: 1,
            says: "'abc' is not a port",
        },
        Case {
            name: "port empty",
            setup: nothing,
            args: &["check", ""],
            code: 1,
            says: "'' is not a port",
        },
        Case {
            name: "port outside every range",
            setup: nothing,
            args: &["allocate", "api", "--port", "1234"],
            code: 1,
            says: "port 1234 is outside the range of service 'api' (26010-26019)",
        },
        Case {
            name: "release a free port",
            setup: nothing,
            args: &["release", "26005"],
            code: 1,
            says: "port 26005 is not allocated",
        },
        Case {
            name: "port held by another worktree",
            setup: nothing,
            args: &["allocate", "web", "--port", "26000", "-w", "app"],
            code: 4,
            says: "port 26000 is already allocated to worktree 'wt'",
        },
        // Services.
        Case {
            name: "unknown service",
            setup: nothing,
            args: &["allocate", "nosuch"],
            code: 1,
            says: "unknown service 'nosuch'",
        },
        Case {
            name: "empty service",
            setup: nothing,
            args: &["allocate", ""],
            code: 1,
            says: "invalid service name ''",
        },
        Case {
            name: "service with spaces",
            setup: nothing,
            args: &["allocate", "we b"],
            code: 1,
            says: "invalid service name 'we b'",
        },
        Case {
            name: "unicode service",
            setup: nothing,
            args: &["allocate", "wéb"],
            code: 1,
            says: "invalid service name 'wéb'",
        },
        Case {
            name: "service ../x",
            setup: nothing,
            args: &["allocate", "../x"],
            code: 1,
            says: "invalid service name '../x'",
        },
        Case {
            name: "uppercase service",
            setup: nothing,
            args: &["allocate", "WEB"],
            code: 1,
            says: "invalid service name 'WEB'",
        },
        Case {
            name: "available of unknown",
            setup: nothing,
            args: &["available", "nosuch"],
            code: 1,
            says: "unknown service 'nosuch'",
        },
        Case {
            name: "status of bad service",
            setup: nothing,
            args: &["status", "--service", "../x"],
            code: 1,
            says: "invalid service name '../x'",
        },
        Case {
            name: "get of empty service",
            setup: nothing,
            args: &["get", ""],
            code: 1,
            says: "invalid service name ''",
        },
        Case {
            name: "release of bad service",
            setup: nothing,
            args: &["release", "-w", "wt", "--service", "A B"],
            code: 1,
            says: "invalid service name 'A B'",
        },
        // Worktrees.
        Case {
            name: "no such worktree",
            setup: nothing,
            args: &["allocate", "web", "-w", "nope"],
            code: 2,
            says: "no worktree matches 'nope'",
        },
        Case {
            name: "ambiguous worktree",
            setup: |e, r| {
                r.worktree("amb", "wt2");
                let _ = e;
                r.worktree("wt2", "other");
            },
            args: &["allocate", "web", "-w", "wt2"],
            code: 2,
            says: "'wt2' matches more than one worktree",
        },
        Case {
            name: "status of no such worktree",
            setup: nothing,
            args: &["status", "--worktree", "nope"],
            code: 3,
            says: "no worktree matches 'nope'",
        },
        Case {
            name: "release of no such worktree",
            setup: nothing,
            args: &["release", "-w", "nope"],
            code: 2,
            says: "no worktree matches 'nope'",
        },
        // Config.
        Case {
            name: "range 9000-8000",
            setup: |_, r| config(r, "ports.web.range", "9000-8000"),
            args: &["allocate", "web"],
            code: 1,
            says: "config ports.web.range: start 9000 is above end 8000",
        },
        Case {
            name: "range 0-10",
            setup: |_, r| config(r, "ports.web.range", "0-10"),
            args: &["available", "web"],
            code: 1,
            says: "config ports.web.range: 0 is outside 1-65535",
        },
        Case {
            name: "range abc",
            setup: |_, r| config(r, "ports.web.range", "abc"),
            args: &["allocate", "web", "--port", "26001"],
            code: 1,
            says: "config ports.web.range: expected START-END",
        },
        Case {
            name: "range 1-70000",
            setup: |_, r| config(r, "ports.web.range", "1-70000"),
            args: &["allocate", "web"],
            code: 1,
            says: "config ports.web.range: 70000 is outside 1-65535",
        },
        Case {
            name: "uppercase service in config",
            setup: |_, r| config(r, "ports.Web.range", "1-2"),
            args: &["allocate", "Web"],
            code: 1,
            says: "invalid service name 'Web'",
        },
        Case {
            name: "bad env name",
            setup: |_, r| config(r, "ports.web.env", "A B"),
            args: &["env"],
            code: 1,
            says: "config ports.web.env: not a variable name",
        },
        Case {
            name: "bad machineWide",
            setup: |_, r| config(r, "ports.machineWide", "maybe"),
            args: &["allocate", "web"],
            code: 1,
            says: "config ports.machineWide: expected true or false",
        },
        // Registry.
        Case {
            name: "empty registry",
            setup: reg!(b""),
            args: &["allocate", "web"],
            code: 5,
            says: "EOF while parsing a value at line 1 column 0",
        },
        Case {
            name: "truncated registry",
            setup: reg!(b"{\"version\": 1, \"worktrees\": {\"a\": {\"pa"),
            args: &["allocate", "web"],
            code: 5,
            says: "EOF while parsing a string at line 1 column 38",
        },
        Case {
            name: "registry []",
            setup: reg!(b"[]"),
            args: &["release", "26000"],
            code: 5,
            says: "expected a JSON object, found `[` at line 1 column 1",
        },
        Case {
            name: "registry with one worktree twice",
            setup: reg!(br#"{"version": 1, "worktrees": {"wt": {"path": "/a", "ports": {}}, "wt": {"path": "/b", "ports": {}}}}"#),
            args: &["allocate", "web"],
            code: 5,
            says: "duplicate key 'wt'",
        },
        Case {
            name: "registry with one service twice",
            setup: reg!(br#"{"version": 1, "worktrees": {"wt": {"path": "/a", "ports": {"web": {"port": 26000, "allocated_at": "2026-01-01T00:00:00Z"}, "web": {"port": 26001, "allocated_at": "2026-01-01T00:00:00Z"}}}}}"#),
            args: &["release", "26000"],
            code: 5,
            says: "duplicate key 'web'",
        },
        Case {
            name: "registry wrong types",
            setup: reg!(br#"{"version": 1, "worktrees": {"a": {"path": 5, "ports": {}}}}"#),
            args: &["allocate", "web"],
            code: 5,
            says: "invalid type: integer `5`, expected a string, or {\"hex\": …}",
        },
        Case {
            name: "registry version 3",
            setup: reg!(br#"{"version": 3, "worktrees": {}}"#),
            args: &["allocate", "web"],
            code: 5,
            says: "unsupported version 3 (this git-ports reads version 2)",
        },
        Case {
            name: "registry port held twice",
            setup: |_, r| {
                fs::write(r.registry_path(), format!(r#"{{"version":1,"worktrees":{{"a":{{"path":"/a","ports":{{"web":{{"port":26001,{A}}},"api":{{"port":26001,{A}}}}}}}}}}}"#)).expect("write")
            },
            args: &["allocate", "web"],
            code: 5,
            says: "port 26001 is held twice",
        },
        Case {
            name: "registry port 0",
            setup: |_, r| {
                fs::write(r.registry_path(), format!(r#"{{"version":1,"worktrees":{{"a":{{"path":"/a","ports":{{"web":{{"port":0,{A}}}}}}}}}}}"#)).expect("write")
            },
            args: &["allocate", "web"],
            code: 5,
            says: "port 0 is outside 1-65535",
        },
        Case {
            name: "registry 10 MB of garbage",
            setup: |_, r| fs::write(r.registry_path(), garbage(10 << 20)).expect("write"),
            args: &["allocate", "web"],
            code: 5,
            says: "worktree-ports.json: ",
        },
        Case {
            name: "registry not UTF-8",
            setup: reg!(b"{\"version\": 1, \xff}"),
            args: &["allocate", "web"],
            code: 5,
            says: "is not UTF-8 text (invalid byte at offset 15)",
        },
        Case {
            name: "registry is a directory",
            setup: |_, r| {
                fs::remove_file(r.registry_path()).expect("rm");
                fs::create_dir(r.registry_path()).expect("mkdir");
            },
            args: &["allocate", "web"],
            code: 5,
            says: "is not a regular file",
        },
        Case {
            name: "status of a corrupt registry",
            setup: reg!(b"{"),
            args: &["status"],
            code: 2,
            says: "EOF while parsing",
        },
        Case {
            name: "corrupt ledger",
            setup: |e, _| fs::write(e.path("ports-home/ledger.json"), "nope").expect("write"),
            args: &["allocate", "web"],
            code: 5,
            says: "ledger ",
        },
    ];
    cases.extend(unix_cases());
    cases
}

/// The cases only Unix can make: a symlinked registry, and mode bits that forbid.
#[cfg(unix)]
fn unix_cases() -> Vec<Case> {
    use std::os::unix::fs::PermissionsExt;
    vec![
        Case {
            name: "registry is a symlink",
            setup: |e, r| {
                let t = e.path("elsewhere.json");
                fs::copy(r.registry_path(), &t).expect("copy");
                fs::remove_file(r.registry_path()).expect("rm");
                std::os::unix::fs::symlink(&t, r.registry_path()).expect("symlink");
            },
            args: &["allocate", "web"],
            code: 5,
            says: "is a symlink",
        },
        Case {
            name: "unreadable registry",
            setup: |_, r| {
                fs::set_permissions(r.registry_path(), fs::Permissions::from_mode(0o000))
                    .expect("chmod")
            },
            args: &["allocate", "web"],
            code: 5,
            says: "cannot read",
        },
        Case {
            name: "read-only directory",
            setup: |_, r| {
                fs::set_permissions(r.dir.join(".git"), fs::Permissions::from_mode(0o555))
                    .expect("chmod")
            },
            args: &["allocate", "api"],
            code: 5,
            says: "cannot lock",
        },
    ]
}

#[cfg(not(unix))]
fn unix_cases() -> Vec<Case> {
    Vec::new()
}

fn garbage(n: usize) -> Vec<u8> {
    let mut x: u32 = 12345;
    (0..n)
        .map(|_| {
            x = x.wrapping_mul(1103515245).wrapping_add(12345);
            (x >> 16) as u8
        })
        .collect()
}

/// Root reads and writes whatever the mode bits say: the permission cases cannot be made.
fn permissions_bite(env: &Env) -> bool {
    let dir = env.path("probe");
    fs::create_dir_all(&dir).expect("mkdir");
    set_mode(&dir, 0o555);
    let bites = fs::write(dir.join("x"), "x").is_err();
    set_mode(&dir, 0o755);
    bites
}

/// Sets a path's mode bits, where files have them.
fn set_mode(path: &Path, mode: u32) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = fs::set_permissions(path, fs::Permissions::from_mode(mode));
    }
    #[cfg(not(unix))]
    let _ = (path, mode);
}

fn snapshot(path: &Path) -> Option<Vec<u8>> {
    if fs::symlink_metadata(path).is_ok_and(|m| m.is_dir()) {
        return Some(b"<dir>".to_vec());
    }
    fs::read(path).ok()
}

fn every_bad_input_is_refused_cleanly() {
    let cases = cases();
    assert!(cases.len() >= 40, "{} cases", cases.len());
    let mut skipped = Vec::new();
    for case in cases {
        let env = Env::new();
        let needs_permissions =
            case.name.starts_with("unreadable") || case.name.starts_with("read-only");
        if needs_permissions && !permissions_bite(&env) {
            skipped.push(case.name);
            continue;
        }
        let repo = env.repo("app");
        repo.range("web", 26000, 26009);
        repo.range("api", 26010, 26019);
        let wt = repo.worktree("wt", "wt");
        env.run(&wt, ["allocate", "web"]).ok();
        (case.setup)(&env, &repo);
        let reg_path = repo.registry_path();
        let ledger_path = env.path("ports-home/ledger.json");
        let (reg_before, ledger_before) = (snapshot(&reg_path), snapshot(&ledger_path));
        let run = env.run(&wt, case.args);
        // Undo permission changes so the temp dir can be read and removed.
        set_mode(&repo.dir.join(".git"), 0o755);
        set_mode(&reg_path, 0o644);
        assert_eq!(run.code, case.code, "{}: {run:?}", case.name);
        let lines: Vec<&str> = run
            .stderr
            .lines()
            .filter(|l| l.starts_with("git-ports: "))
            .collect();
        assert_eq!(lines.len(), 1, "{}: {}", case.name, run.stderr);
        assert!(
            lines[0].contains(case.says),
            "{}: {}",
            case.name,
            run.stderr
        );
        assert!(!run.stderr.contains("panicked"), "{}", case.name);
        assert_eq!(
            snapshot(&reg_path),
            reg_before,
            "{}: the registry changed",
            case.name
        );
        assert_eq!(
            snapshot(&ledger_path),
            ledger_before,
            "{}: the ledger changed",
            case.name
        );
    }
    if !skipped.is_empty() {
        // Root is what CI runs as: these cases are unreachable there, by design, not missing.
        eprintln!(
            "NOTE: running as root, mode bits do not stop reads or writes; not run: {skipped:?}"
        );
    }
}

fn bare_repository_outside_a_worktree() {
    let env = Env::new();
    let bare = env.bare_repo("bare");
    for args in [vec!["allocate", "web"], vec!["get", "web"], vec!["env"]] {
        let run = env.run(&bare, &args);
        run.code(1);
        assert!(run.stderr.starts_with("git-ports: this repository is bare and the current directory is not inside a worktree\n"), "{args:?}: {}", run.stderr);
    }
    assert!(!bare.join("worktree-ports.json").exists());
}

fn overlapping_ranges_are_allowed_with_a_warning() {
    let env = Env::new();
    let repo = env.repo("app");
    repo.range("web", 26100, 26109);
    repo.range("storybook", 26105, 26114);
    let wt = repo.worktree("wt", "wt");
    for p in 26100..26105 {
        let w = repo.worktree(&format!("w{p}"), &format!("b{p}"));
        env.run(&w, ["allocate", "web", "--port", &p.to_string()])
            .ok();
    }
    env.run(&wt, ["allocate", "web"]).ok();
    let run = env.run(&wt, ["allocate", "storybook", "--json"]);
    run.ok();
    assert_eq!(
        run.stderr,
        "git-ports: warning: the range of 'storybook' (26105-26114) overlaps that of 'web' (26100-26109); they share those ports\n"
    );
    // web took 26105, so storybook, sharing the pool, gets the next.
    assert_eq!(run.json()["allocations"][0]["port"], 26106);
}

fn hostile_names_are_shown_faithfully_and_never_run() {
    let env = Env::new();
    let repo = env.repo("app");
    repo.range("web", 26200, 26209);
    repo.run(["hook", "install", "--services", "web"]).ok();
    let names = [
        "it's \"quoted\" $(touch pwned)",
        "back`touch pwned`tick ü",
        "new\nline",
    ];
    let branches = ["feat/$(touch_pwned)", "x`touch${IFS}pwned`", "ünï-côdé"];
    for (name, branch) in names.iter().zip(branches) {
        let path = env.path(name);
        let add = env.git_run(
            &repo.dir,
            [
                "worktree".as_ref(),
                "add".as_ref(),
                path.as_os_str(),
                "-b".as_ref(),
                branch.as_ref(),
            ],
        );
        add.ok();
        let j = env
            .run(&path, ["status", "--json", "--worktree", "."])
            .ok()
            .json();
        assert_eq!(j["worktrees"][0]["path"], path.to_str().unwrap_or_default());
        assert_eq!(j["worktrees"][0]["branch"], branch);
        let human = env.run(&path, ["status"]).ok().stdout.clone();
        assert!(human.contains(&format!("({branch}):")), "{human}");
        let sh = env.sh(
            &path,
            "eval \"$(git ports env)\" && git ports exec -- sh -c 'echo $WEB_PORT'",
        );
        assert!(sh.ok().stdout.starts_with("262"), "{sh:?}");
        for dir in [env.root(), path.as_path(), repo.dir.as_path()] {
            assert!(
                !dir.join("pwned").exists(),
                "a name was run as a command in {}",
                dir.display()
            );
        }
    }
    let all = repo.run(["status", "--json"]).ok().json();
    assert_eq!(all["total_allocations"], 3);
}

include!(concat!(env!("OUT_DIR"), "/it_bad_input.rs"));
