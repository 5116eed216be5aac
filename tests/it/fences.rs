//! Ports a user fences off: `ports.exclude` in git config, and reservations machine-wide
//! (`git ports reserve`), which no worktree, lease or proxy is given; `available` and
//! `allocate` agree, since they ask one question.
//!
//! Ports: this module takes 20200-20299.

use crate::support::{Env, same, scrub, seen};

fn excluded_ports_are_never_handed_out() {
    let env = Env::new();
    let repo = env.repo("app");
    repo.range("web", 20200, 20204);
    repo.git(["config", "ports.exclude", "20200, 20202-20203"]);
    let run = repo.run(["allocate", "web"]);
    run.ok();
    assert!(
        run.stdout
            .contains("Port 20200: Fenced off by ports.exclude\nPort 20201: Available\n"),
        "{}",
        run.stdout
    );
    let b = repo.worktree("b", "b");
    let c = repo.worktree("c", "c");
    // What `available` says allocation gives next is what allocation gives.
    let next = env.run(&b, ["available", "web", "--json"]).ok().json()["next"].clone();
    assert_eq!(next, 20204);
    let run = env.run(&b, ["allocate", "web", "--json"]);
    assert_eq!(run.ok().json()["allocations"][0]["port"], 20204);
    same(
        &seen(&env.run(&c, ["allocate", "web"]), &env),
        "--- stderr\ngit-ports: no free port for service 'web' in 20200-20204: 2 of 5 are held, 3 are fenced off (ports.exclude, reservations, the proxy's port)\n--- exit 3\n",
    );
    same(
        &seen(&env.run(&c, ["allocate", "web", "--port", "20202"]), &env),
        "--- stderr\ngit-ports: port 20202 is fenced off by ports.exclude\nhint: ask for another port, or take it out of ports.exclude (`git config --get-all ports.exclude` shows where)\n--- exit 4\n",
    );
    repo.git(["config", "ports.web.leaseRange", "20202-20203"]);
    env.run(
        &c,
        ["lease", "web", "--pid", &std::process::id().to_string()],
    )
    .code(3);
    // A bad entry is skipped, and said so; the good ones still fence.
    repo.git(["config", "--add", "ports.exclude", "port eighty"]);
    let run = env.run(&c, ["allocate", "web"]);
    run.code(3);
    assert!(
        run.stderr
            .contains("config ports.exclude: 'port' is not a port"),
        "{}",
        run.stderr
    );
}

fn reservations_fence_ports_off_machine_wide() {
    let env = Env::new();
    let repo = env.repo("app");
    repo.range("web", 20210, 20214);
    let root = env.root();
    same(
        &seen(
            &env.run(
                root,
                ["reserve", "20210", "--reason", "the system's postgres"],
            ),
            &env,
        ),
        "✓ Reserved port 20210: the system's postgres\n--- stderr\n--- exit 0\n",
    );
    let run = repo.run(["allocate", "web"]);
    run.ok();
    assert!(
        run.stdout
            .contains("Port 20210: Reserved (the system's postgres)\nPort 20211: Available\n"),
        "{}",
        run.stdout
    );
    // A port a worktree holds now cannot be reserved: nothing changes, and who holds it is
    // said.
    let ledger = std::fs::read(crate::promise::ledger_path(&env)).expect("ledger");
    same(
        &seen(&env.run(root, ["reserve", "20212", "20211"]), &env),
        "--- stderr\ngit-ports: port 20211 is held by another repository: [TMP]/app (app)\n--- exit 4\n",
    );
    assert_eq!(
        std::fs::read(crate::promise::ledger_path(&env)).expect("ledger"),
        ledger
    );
    // Listed machine-wide, with its reason.
    let machine = repo.run(["status", "--machine"]);
    assert!(
        scrub(&machine.stdout, &env).contains(
            "Reserved (no repository, lease or proxy is given these):\n  20210  the system's postgres, since [TIME]\n"
        ),
        "{}",
        machine.stdout
    );
    let json = repo.run(["status", "--machine", "--json"]).json();
    assert_eq!(json["reserved"][0]["port"], 20210);
    assert_eq!(json["reserved"][0]["reason"], "the system's postgres");
    let check = env.run(root, ["check", "20210"]);
    check.code(4);
    assert!(
        check.stdout.contains(
            "Port 20210: FENCED OFF\n- Never given to a worktree: it is reserved (the system's postgres)\n"
        ),
        "{}",
        check.stdout
    );
    // The proxy is not given it either.
    env.git(root, ["config", "--global", "ports.proxyPort", "20210"]);
    let start = env.run(root, ["proxy", "start"]);
    start.code(1);
    assert!(
        start.stderr.contains(
            "port 20210 is reserved (the system's postgres): give the proxy another port"
        ),
        "{}",
        start.stderr
    );
    // Given back, it is anyone's again; giving back a port not reserved is an error.
    same(
        &seen(&env.run(root, ["unreserve", "20210"]), &env),
        "✓ Port 20210 is no longer reserved\n--- stderr\n--- exit 0\n",
    );
    same(
        &seen(&env.run(root, ["unreserve", "20210"]), &env),
        "--- stderr\ngit-ports: port 20210 is not reserved\nhint: no port is reserved (`git ports status --machine` lists reservations)\n--- exit 1\n",
    );
    env.git(root, ["config", "--global", "--unset", "ports.proxyPort"]);
    let wt = repo.worktree("wt", "wt");
    let run = env.run(&wt, ["allocate", "web", "--json"]);
    assert_eq!(run.ok().json()["allocations"][0]["port"], 20210);
}

include!(concat!(env!("OUT_DIR"), "/it_fences.rs"));
