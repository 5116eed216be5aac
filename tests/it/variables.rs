//! Every variable git-ports writes, read by the client that reads it: redis-cli given
//! `REDIS_URL`, Node's `fetch` in a server process given `WEB_URL` (its server listening on
//! `localhost`, as Vite does, whichever address that is here), and a browser given
//! `WEB_PUBLIC_URL` (`browser.rs`). A URL is made only where the service's scheme is known.
//!
//! Ports: this module takes 20100-20199.

use std::process::{Command, Stdio};

use crate::proxy::{Proc, have, node, upstream_on};
use crate::support::{Env, same, seen, skip, wait_listening};

fn every_variable_works_for_the_client_that_reads_it() {
    if !node() || !have("redis-server") || !have("redis-cli") {
        skip("needs node, redis-server and redis-cli (apt-get install redis-server redis-tools)");
    }
    let env = Env::new();
    let repo = env.repo("shop");
    for (s, base) in [
        ("web", 20100),
        ("db", 20110),
        ("redis", 20120),
        ("grpc", 20130),
        ("websocket", 20140),
    ] {
        repo.range(s, base, base + 4);
    }
    let fx = repo.worktree("fx", "fx");
    env.run(&fx, ["allocate", "web", "db", "redis", "grpc", "websocket"])
        .ok();
    same(
        &env.run(&fx, ["env", "--format", "dotenv"]).ok().stdout,
        "WEB_PORT=20100\nDB_PORT=20110\nREDIS_PORT=20120\nGRPC_PORT=20130\nWEBSOCKET_PORT=20140\nWEB_URL=http://localhost:20100\nWEB_PUBLIC_HOST=fx.shop.localhost\nWEB_PUBLIC_URL=http://fx.shop.localhost:20100\nREDIS_URL=redis://localhost:20120\nWEBSOCKET_URL=ws://localhost:20140\nWEBSOCKET_PUBLIC_HOST=websocket.fx.shop.localhost\nWEBSOCKET_PUBLIC_URL=ws://websocket.fx.shop.localhost:20140\n",
    );
    // redis-cli connects to REDIS_URL as it is.
    let _redis = Proc(
        Command::new("redis-server")
            .args(["--port", "20120", "--save", "", "--appendonly", "no"])
            .current_dir(&fx)
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server"),
    );
    wait_listening(20120, true);
    let ping = env.run(
        &fx,
        ["exec", "--", "sh", "-c", "redis-cli -u \"$REDIS_URL\" ping"],
    );
    same(&seen(&ping, &env), "PONG\n--- stderr\n--- exit 0\n");
    // A server-side fetch reaches WEB_URL, where the worktree's name would not resolve for
    // it: the server listens on `localhost`, and the client resolves that name as it did.
    let _web = upstream_on(&fx, 20100, "localhost");
    let fetched = env.run(
        &fx,
        [
            "exec",
            "--",
            "node",
            "-e",
            "fetch(process.env.WEB_URL).then(r => r.text()).then(t => process.stdout.write(t))",
        ],
    );
    fetched.ok();
    assert!(
        fetched
            .stdout
            .starts_with("hello from 20100 host=localhost:20100 "),
        "{}",
        fetched.stdout
    );
    // A scheme per service: set where git-ports cannot know it, or none.
    repo.git(["config", "ports.db.scheme", "postgresql"]);
    repo.git(["config", "ports.web.scheme", "none"]);
    let vars = env
        .run(&fx, ["env", "--format", "dotenv"])
        .ok()
        .stdout
        .clone();
    assert!(
        vars.contains("DB_URL=postgresql://localhost:20110\n"),
        "{vars}"
    );
    assert!(!vars.contains("DB_PUBLIC"), "{vars}");
    assert!(
        !vars.contains("WEB_URL") && !vars.contains("WEB_PUBLIC"),
        "{vars}"
    );
    repo.git(["config", "ports.db.scheme", "Post Gres"]);
    let bad = env.run(&fx, ["env"]);
    same(
        &seen(&bad, &env),
        "--- stderr\ngit-ports: config ports.db.scheme: expected a URL scheme (http, redis, postgresql, …) or none (got 'Post Gres', set in [TMP]/shop/.git/config)\n--- exit 1\n",
    );
}

include!(concat!(env!("OUT_DIR"), "/it_variables.rs"));
