//! `git ports mcp`: a real MCP client (the MCP Inspector's command-line mode) lists the tools
//! and calls each against real repositories; JSON-RPC spoken to the server directly, with
//! hostile messages.
//!
//! The Inspector needs Node 22.19 or later: `GIT_PORTS_TEST_NODE` names that `node`, and
//! `GIT_PORTS_TEST_MCP_INSPECTOR` the Inspector's launcher (`.ci/run` installs both).
//!
//! Ports: this module takes 29500-29599.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::promise::{ledger_path, promise_holds};
use crate::support::{BIN, Env, listen_in, skip, wait_listening};

/// The Inspector, and the `node` it runs on, when this machine has them.
fn inspector() -> Option<(PathBuf, PathBuf)> {
    let node = PathBuf::from(std::env::var_os("GIT_PORTS_TEST_NODE")?);
    let launcher = PathBuf::from(std::env::var_os("GIT_PORTS_TEST_MCP_INSPECTOR")?);
    (node.exists() && launcher.exists()).then_some((node, launcher))
}

/// One Inspector call of `git-ports mcp`, run in `cwd`; the JSON it prints.
fn inspect(env: &Env, tools: &(PathBuf, PathBuf), cwd: &Path, args: &[&str]) -> Value {
    let (node, launcher) = tools;
    let mut cmd = Command::new(node);
    env.isolate(&mut cmd);
    cmd.arg(launcher).arg("--cli");
    // The Inspector hands its server only the variables it is given.
    for var in [
        "GIT_PORTS_HOME",
        "GIT_CONFIG_GLOBAL",
        "GIT_CONFIG_NOSYSTEM",
        "HOME",
    ] {
        if let Some(v) = cmd
            .get_envs()
            .find(|(k, _)| *k == var)
            .and_then(|(_, v)| v.map(|v| v.to_string_lossy().into_owned()))
        {
            cmd.arg("-e").arg(format!("{var}={v}"));
        }
    }
    cmd.arg("--cwd").arg(cwd).arg(BIN).arg("mcp").args(args);
    let out = cmd.output().expect("run the MCP Inspector");
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "the Inspector printed no JSON ({e}): {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn call(env: &Env, tools: &(PathBuf, PathBuf), cwd: &Path, tool: &str, args: &[&str]) -> Value {
    let mut all = vec!["--method", "tools/call", "--tool-name", tool];
    if !args.is_empty() {
        all.push("--tool-arg");
        all.extend(args);
    }
    inspect(env, tools, cwd, &all)
}

/// The structured answer of a call that succeeded.
#[track_caller]
fn ok(v: &Value) -> &Value {
    assert_eq!(v["isError"], false, "{v:#}");
    &v["structuredContent"]
}

/// The text of a call that failed as a tool error.
#[track_caller]
fn failed(v: &Value) -> String {
    assert_eq!(v["isError"], true, "{v:#}");
    v["content"][0]["text"].as_str().unwrap_or("").to_string()
}

fn the_mcp_inspector_lists_the_tools_and_calls_each() {
    let Some(tools) = inspector() else {
        skip(
            "GIT_PORTS_TEST_NODE and GIT_PORTS_TEST_MCP_INSPECTOR must name Node 22.19+ and the MCP Inspector 2.x launcher",
        );
    };
    let env = Env::new();
    let repo = env.repo("app");
    repo.range("web", 29500, 29509);
    repo.range("api", 29510, 29519);
    let wt = repo.worktree("wt", "wt");

    let list = inspect(&env, &tools, &wt, &["--method", "tools/list"]);
    let mut names: Vec<&str> = list["tools"]
        .as_array()
        .expect("tools")
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "allocate",
            "check",
            "doctor",
            "env",
            "get",
            "lease",
            "point",
            "release",
            "reserve",
            "status",
            "stop",
            "unreserve",
            "wait"
        ]
    );
    for t in list["tools"].as_array().into_iter().flatten() {
        assert_eq!(t["inputSchema"]["type"], "object", "{t:#}");
        if ["allocate", "get", "lease"].contains(&t["name"].as_str().unwrap_or("")) {
            let d = t["description"].as_str().unwrap_or("").to_lowercase();
            assert!(d.contains("never"), "tells an agent not to pick ports: {d}");
        }
    }

    // Each tool, in the order an agent uses them.
    let a = call(
        &env,
        &tools,
        &wt,
        "allocate",
        &["services=[\"web\",\"api\"]"],
    );
    let a = ok(&a);
    assert_eq!(a["worktree"], "wt");
    assert_eq!(a["allocations"][0]["port"], 29500, "{a:#}");
    assert_eq!(a["allocations"][1]["port"], 29510);
    let g = call(&env, &tools, &wt, "get", &["service=web"]);
    assert_eq!(ok(&g)["port"], 29500);
    let e = call(&env, &tools, &wt, "env", &[]);
    assert_eq!(ok(&e)["WEB_PORT"], 29500);
    assert_eq!(ok(&e)["API_PORT"], 29510);
    // Another worktree's ports, from the main worktree, by name.
    let g = call(
        &env,
        &tools,
        &repo.dir,
        "get",
        &["service=api", "worktree=wt"],
    );
    assert_eq!(ok(&g)["port"], 29510);
    // And from outside any repository, naming one.
    let root = env.root().to_path_buf();
    let here = format!("repository={}", wt.display());
    let g = call(&env, &tools, &root, "get", &["service=web", &here]);
    assert_eq!(ok(&g)["port"], 29500);
    let c = call(&env, &tools, &wt, "check", &["port=29500"]);
    assert_eq!(ok(&c)["allocated_to"]["worktree"], "wt", "{c:#}");
    assert_eq!(ok(&c)["available"], false);

    // A server of the worktree: wait sees it, status names it as the worktree's own.
    let server = listen_in(&wt, 29500);
    let w = call(
        &env,
        &tools,
        &wt,
        "wait",
        &["services=[\"web\"]", "timeout=5"],
    );
    assert_eq!(ok(&w)["ready"], true);
    let s = call(&env, &tools, &wt, "status", &["health_check=true"]);
    let s = ok(&s);
    let wt_row = s["worktrees"]
        .as_array()
        .and_then(|ws| ws.iter().find(|w| w["name"] == "wt"))
        .expect("wt in status");
    assert_eq!(wt_row["ports"]["web"]["health"], "running", "{s:#}");
    assert_eq!(wt_row["ports"]["web"]["listener"]["pid"], server.id());
    assert_eq!(wt_row["ports"]["web"]["listener"]["owner"], "self");
    assert_eq!(wt_row["ports"]["api"]["health"], "stopped");

    // A lease for a process of ours, shown by status.
    let mut holder = Command::new("sleep").arg("60").spawn().expect("sleep");
    let pid = format!("pid={}", holder.id());
    let l = call(&env, &tools, &wt, "lease", &["services=[\"web\"]", &pid]);
    assert_eq!(ok(&l)["leases"][0]["port"], 29509, "{l:#}");
    let s = call(&env, &tools, &wt, "status", &[]);
    assert_eq!(ok(&s)["leases"][0]["pid"], holder.id());

    // stop stops the worktree's own server, and says so.
    let st = call(
        &env,
        &tools,
        &wt,
        "stop",
        &["services=[\"web\"]", "grace=2"],
    );
    let st = ok(&st);
    assert!(st.to_string().contains(&server.id().to_string()), "{st:#}");
    wait_listening(29500, false);
    drop(server);

    let r = call(&env, &tools, &wt, "release", &["ports=[29510]"]);
    ok(&r);
    let g = call(&env, &tools, &wt, "get", &["service=api"]);
    let text = failed(&g);
    assert!(text.contains("holds no port for service 'api'"), "{text}");
    assert!(
        text.contains("\nhint: call allocate with services [\"api\"] and worktree \"wt\""),
        "{text}"
    );
    // The origin, pointed at this worktree.
    let pt = call(&env, &tools, &repo.dir, "point", &["worktree=wt"]);
    assert_eq!(ok(&pt)["origin"], "app.localhost", "{pt:#}");
    assert_eq!(ok(&pt)["worktree"], "wt");
    let d = call(&env, &tools, &wt, "doctor", &[]);
    assert!(ok(&d).to_string().contains("ledger"), "{d:#}");

    // Errors are tool errors carrying the command's line and hint.
    let t = call(&env, &tools, &wt, "get", &["service=wbe"]);
    let text = failed(&t);
    assert!(
        text.starts_with("unknown service 'wbe'\nhint: did you mean 'web'?"),
        "{text}"
    );
    assert_eq!(t["structuredContent"]["exit_code"], 1);
    let t = call(
        &env,
        &tools,
        &wt,
        "allocate",
        &["services=[\"web\"]", "worktree=nope"],
    );
    assert!(failed(&t).contains("no worktree matches 'nope'"));
    let _ = holder.kill();
    let _ = holder.wait();
    promise_holds(&env, &[repo.dir.join(".git")]).expect("the promise holds");
}

/// A `git-ports mcp` spoken to line by line, its answers read with a bound.
pub struct Session {
    pub child: Child,
    pub stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
}

impl Session {
    fn start(env: &Env, dir: &Path) -> Session {
        let mut cmd = env.cmd(dir);
        cmd.arg("mcp");
        Session::spawn(cmd)
    }

    /// A session of `cmd`, a `git-ports mcp` however it is started, initialized.
    pub fn spawn(mut cmd: Command) -> Session {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("git-ports mcp");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stdin = child.stdin.take();
        let mut s = Session {
            child,
            stdin,
            lines,
        };
        s.send(
            &json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": "hostile", "version": "1"}}}),
        );
        let init = s.next();
        assert_eq!(init["result"]["serverInfo"]["name"], "git-ports", "{init}");
        s.send(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
        s
    }

    pub fn raw(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        writeln!(stdin, "{line}").expect("write");
        stdin.flush().expect("flush");
    }

    pub fn bytes(&mut self, bytes: &[u8]) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        stdin.write_all(bytes).expect("write");
        stdin.flush().expect("flush");
    }

    pub fn send(&mut self, v: &Value) {
        self.raw(&v.to_string());
    }

    /// The next message, within 20 seconds.
    #[track_caller]
    pub fn next(&mut self) -> Value {
        let line = self
            .lines
            .recv_timeout(Duration::from_secs(20))
            .expect("an answer within 20 s");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
    }

    pub fn call(&mut self, id: u64, tool: &str, args: Value) -> Value {
        self.send(&json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
            "params": {"name": tool, "arguments": args}}));
        let v = self.next();
        assert_eq!(v["id"], id, "{v}");
        v
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn hostile_json_rpc_gets_clear_answers_and_leaves_the_ledger_consistent() {
    let env = Env::new();
    let repo = env.repo("app");
    repo.range("web", 29520, 29529);
    repo.git(["config", "ports.lockTimeout", "0.5"]);
    let mut s = Session::start(&env, &repo.dir);

    // Not JSON, not an object, no method: each an error answer, and the session goes on.
    for (bad, code) in [
        ("garbage{", -32700),
        ("[1,2]", -32600),
        ("{\"jsonrpc\":\"2.0\",\"id\":5}", -32600),
    ] {
        s.raw(bad);
        let v = s.next();
        assert_eq!(v["error"]["code"], code, "{bad}: {v}");
    }
    let v = s.call(1, "get", json!({"service": "web"}));
    let text = v["result"]["content"][0]["text"].as_str().unwrap_or("");
    assert!(text.contains("holds no port for service 'web'"), "{v}");
    // The hint names the tool to call, not a command line.
    assert_eq!(
        v["result"]["structuredContent"]["hint"],
        "call allocate with services [\"web\"] and worktree \"app\"",
        "{v}"
    );
    // Every argument has one type: no optional one is typed as a union with null, which
    // single-type schema dialects (some model providers') refuse.
    s.send(&json!({"jsonrpc": "2.0", "id": 21, "method": "tools/list"}));
    let list = s.next();
    for t in list["result"]["tools"].as_array().into_iter().flatten() {
        let schema = t["inputSchema"].to_string();
        assert!(!schema.contains("\"null\""), "{}: {schema}", t["name"]);
    }
    // An unknown tool is a protocol error.
    let v = s.call(2, "rm-rf", json!({}));
    assert_eq!(v["error"]["code"], -32602, "{v}");
    // Missing and wrong-typed arguments: tool errors that say which.
    let v = s.call(3, "check", json!({"port": "eight thousand"}));
    assert_eq!(v["result"]["isError"], true, "{v}");
    assert!(v.to_string().contains("invalid type"), "{v}");
    let v = s.call(4, "check", json!({"port": 70000}));
    assert_eq!(v["result"]["isError"], true, "{v}");
    let v = s.call(5, "allocate", json!({}));
    assert!(v.to_string().contains("missing field `services`"), "{v}");
    let v = s.call(
        6,
        "allocate",
        json!({"services": ["web"], "worktree": "ghost"}),
    );
    assert!(v.to_string().contains("no worktree matches 'ghost'"), "{v}");
    let v = s.call(
        7,
        "get",
        json!({"service": "web", "repository": "/nonexistent/dir"}),
    );
    assert!(v.to_string().contains("is not a directory"), "{v}");
    let v = s.call(8, "lease", json!({"services": ["web"], "pid": 4194304}));
    assert!(v.to_string().contains("no such process is running"), "{v}");
    // A flag smuggled in as a service is a service name, never an option.
    let v = s.call(9, "allocate", json!({"services": ["--port=1"]}));
    assert!(
        v.to_string().contains("invalid service name '--port=1'"),
        "{v}"
    );

    // A call while another process holds the ledger's lock: the usual bounded wait, and its
    // message.
    let held = {
        let lock = ledger_path(&env).with_extension("json.lock");
        std::fs::create_dir_all(lock.parent().expect("dir")).expect("mkdir");
        let f = std::fs::File::create(&lock).expect("lock file");
        f.lock().expect("lock");
        f
    };
    let t = Instant::now();
    let v = s.call(10, "allocate", json!({"services": ["web"]}));
    assert!(v.to_string().contains("gave up after"), "{v}");
    assert!(t.elapsed() < Duration::from_secs(10));
    drop(held);
    let v = s.call(11, "allocate", json!({"services": ["web"]}));
    assert_eq!(
        v["result"]["structuredContent"]["allocations"][0]["port"], 29520,
        "{v}"
    );
    // A wait that times out says what to do next, in tools.
    let v = s.call(20, "wait", json!({"services": ["web"], "timeout": 0.2}));
    assert!(
        v["result"]["structuredContent"]["hint"]
            .as_str()
            .is_some_and(|h| h.starts_with("start the server in the background first")),
        "{v}"
    );

    // stdin closed in the middle of a call: the server ends, and what it did is whole.
    s.send(&json!({"jsonrpc": "2.0", "id": 12, "method": "tools/call",
        "params": {"name": "wait", "arguments": {"timeout": 2}}}));
    s.send(&json!({"jsonrpc": "2.0", "id": 13, "method": "tools/call",
        "params": {"name": "allocate", "arguments": {"services": ["web"]}}}));
    s.stdin = None;
    let t = Instant::now();
    let status = loop {
        if let Some(st) = s.child.try_wait().expect("wait") {
            break st;
        }
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "the server outlived its stdin"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status:?}");
    promise_holds(&env, &[repo.dir.join(".git")]).expect("the promise holds");
    repo.run(["doctor"]).ok();
}

include!(concat!(env!("OUT_DIR"), "/it_mcp.rs"));
