//! The servers when peers push past what is reasonable: HTTP as the RFCs say it, floods under
//! a low descriptor limit (`prlimit`), memory under unique long names and a 60 MB line, MCP
//! lines no JSON parser takes. Real sockets, curl, raw TCP and JSON-RPC written by the test.
//!
//! Ports: this module takes 29850-29899.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::mcp::Session;
use crate::proxy::{Proc, curl, have, node, proxy, upstream};
use crate::support::{BIN, Env, skip, wait_listening};

/// Sends `request` to the proxy on `port` and reads the answer until the connection closes
/// (or 20 s pass): the status line and all.
pub fn raw(port: u16, request: &[u8]) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(20))).ok();
    let _ = s.write_all(request);
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got);
    String::from_utf8_lossy(&got).into_owned()
}

/// VmRSS of a process, in KiB.
pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// The CPU time a process has used, in clock ticks (user and system).
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    // Fields 14 and 15 of stat; `rest` starts at field 3.
    let n = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    n(11) + n(12)
}

/// A program that listens on 127.0.0.1:`port` in `dir` and answers what it is sent with a
/// line that is not HTTP, as redis does.
fn not_http(dir: &Path, port: u16) -> Proc {
    let code = format!(
        "require('net').createServer(s => s.once('data', () => s.end('-ERR unknown command\\r\\n'))).listen({port}, '127.0.0.1')"
    );
    let child = Command::new("node")
        .args(["-e", &code])
        .current_dir(dir)
        .stdin(Stdio::null())
        .spawn()
        .expect("node");
    let p = Proc(child);
    wait_listening(port, true);
    p
}

fn the_proxy_speaks_http_as_the_rfcs_say() {
    if !node() || !have("curl") {
        skip("needs node and curl");
    }
    let env = Env::new();
    let repo = env.repo("shop");
    repo.range("web", 29850, 29854);
    repo.range("api", 29855, 29859);
    repo.run(["allocate", "web"]).ok();
    let fx = repo.worktree("fx", "fx");
    env.run(&fx, ["allocate", "web", "api"]).ok();
    let _web = upstream(&fx, 29851);
    let _redis = not_http(&fx, 29855);
    let _proxy = proxy(&env, 29899);

    // More than one Host: refused, never routed by the first (RFC 9112 §3.2).
    let got = raw(
        29899,
        b"GET / HTTP/1.1\r\nHost: fx.shop.localhost\r\nHost: shop.localhost\r\nConnection: close\r\n\r\n",
    );
    assert!(got.starts_with("HTTP/1.1 400 "), "{got}");
    assert!(got.contains("more than one Host header"), "{got}");
    // An absolute-form target: its host wins over Host (§3.2.2), and the server gets it.
    let got = raw(
        29899,
        b"GET http://fx.shop.localhost/ HTTP/1.1\r\nHost: nope.localhost\r\nConnection: close\r\n\r\n",
    );
    assert!(got.starts_with("HTTP/1.1 200 "), "{got}");
    assert!(
        got.contains("hello from 29851 host=fx.shop.localhost "),
        "{got}"
    );
    // An upgrade the proxy does not splice (h2c), with a body: plain HTTP/1.1, body and all.
    let t = Instant::now();
    let (code, body) = curl(&[
        "--http2",
        "-d",
        "x=1",
        "http://fx.shop.localhost:29899/upload",
    ]);
    assert_eq!((code, body.as_str()), (200, "{\"bytes\":3}\n"));
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    // The proxy is the edge: what a client says under X-Forwarded-* is replaced.
    let (code, body) = curl(&[
        "-H",
        "Host: fx.shop.localhost:29899",
        "-H",
        "X-Forwarded-Host: evil.example",
        "-H",
        "X-Forwarded-Proto: https",
        "-H",
        "X-Forwarded-For: 6.6.6.6",
        "http://127.0.0.1:29899/",
    ]);
    assert_eq!(code, 200);
    crate::support::same(
        &body,
        "hello from 29851 host=fx.shop.localhost:29899 xff=127.0.0.1 xfh=fx.shop.localhost:29899 xfp=http\n",
    );
    // A client's malformed chunked body is the client's fault: 400.
    let got = raw(
        29899,
        b"POST /upload HTTP/1.1\r\nHost: fx.shop.localhost\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
    );
    assert!(got.starts_with("HTTP/1.1 400 "), "{got}");
    assert!(got.contains("the request body is malformed"), "{got}");
    // A server that is up but does not speak HTTP: a 502 that says so.
    let (code, body) = curl(&["http://api.fx.shop.localhost:29899/"]);
    assert_eq!(code, 502, "{body}");
    assert!(body.contains("answered, but not with HTTP"), "{body}");
    // A page that rebinds its own name to 127.0.0.1 learns no names.
    let (code, body) = curl(&["-H", "Host: evil.example", "http://127.0.0.1:29899/"]);
    assert_eq!(code, 421, "{body}");
    assert!(!body.contains("shop"), "{body}");
    let (code, body) = curl(&["-H", "Host: 127.0.0.1:29899", "http://127.0.0.1:29899/"]);
    assert_eq!(code, 404, "{body}");
    assert!(body.contains("the names are: shop.localhost"), "{body}");
    // A Host longer than any DNS name.
    let long = format!(
        "GET / HTTP/1.1\r\nHost: {}.localhost\r\nConnection: close\r\n\r\n",
        "a".repeat(300)
    );
    assert!(raw(29899, long.as_bytes()).starts_with("HTTP/1.1 400 "));
    // A template with a label DNS cannot have is refused when it is read.
    repo.git([
        "config",
        "ports.hostTemplate",
        &format!("{{worktree}}-{}.localhost", "a".repeat(62)),
    ]);
    let run = env.run(&fx, ["allocate", "web"]);
    run.code(1);
    assert!(
        run.stderr.contains("has a label of 64 bytes"),
        "{}",
        run.stderr
    );
}

fn a_request_body_that_stops_halfway_is_cut_off() {
    if !node() {
        skip("needs node");
    }
    let env = Env::new();
    let repo = env.repo("shop");
    repo.range("web", 29860, 29861);
    repo.run(["allocate", "web"]).ok();
    let _web = upstream(&repo.dir, 29860);
    env.git(
        env.root(),
        ["config", "--global", "ports.proxyTimeout", "1"],
    );
    let _proxy = proxy(&env, 29898);
    let mut s = TcpStream::connect(("127.0.0.1", 29898)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(15))).ok();
    s.write_all(b"PUT /upload HTTP/1.1\r\nHost: shop.localhost\r\nContent-Length: 100\r\n\r\nabc")
        .expect("send");
    let t = Instant::now();
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got);
    let got = String::from_utf8_lossy(&got);
    assert!(got.starts_with("HTTP/1.1 408 "), "{got}");
    assert!(
        got.contains("the request body sent nothing for 1s"),
        "{got}"
    );
    assert!(t.elapsed() < Duration::from_secs(10));
}

/// `prlimit` in front of a git-ports command, when this machine has it.
fn limited(env: &Env, files: u32, args: &[&str]) -> Command {
    let mut cmd = Command::new("prlimit");
    cmd.arg(format!("--nofile={files}:{files}"))
        .arg(BIN)
        .args(args)
        .current_dir(env.root());
    env.isolate(&mut cmd);
    cmd
}

fn a_flood_under_a_low_descriptor_limit_passes_and_every_name_routes_again() {
    if !have("prlimit") || !have("curl") {
        skip("needs prlimit (util-linux) and curl");
    }
    let env = Env::new();
    let repo = env.repo("shop");
    repo.range("web", 29862, 29863);
    repo.run(["allocate", "web"]).ok();
    env.git(
        env.root(),
        ["config", "--global", "ports.proxyPort", "29897"],
    );
    let mut cmd = limited(&env, 96, &["proxy"]);
    let proxy = Proc(
        cmd.stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prlimit"),
    );
    wait_listening(29897, true);
    let pid = proxy.0.id();
    let before = cpu_ticks(pid);
    // Far more connections than the proxy may hold, held open and silent, until the
    // kernel's queue for it is full too.
    let mut flood: Vec<TcpStream> = Vec::new();
    let mut failed = 0;
    while flood.len() < 400 && failed < 3 {
        match TcpStream::connect_timeout(
            &([127, 0, 0, 1], 29897).into(),
            Duration::from_millis(200),
        ) {
            Ok(s) => flood.push(s),
            Err(_) => failed += 1,
        }
    }
    assert!(flood.len() > 100, "only {} connections", flood.len());
    std::thread::sleep(Duration::from_secs(3));
    let spent = cpu_ticks(pid) - before;
    // 3 s of a core spinning would be some 300 ticks.
    assert!(
        spent < 60,
        "the proxy spent {spent} ticks of CPU while flooded"
    );
    drop(flood);
    // Once the flood is gone, every name routes again, from the ledger as it is.
    let start = Instant::now();
    loop {
        let (code, body) = curl(&["-m", "5", "http://shop.localhost:29897/"]);
        if code == 502 && body.contains("on port 29862: nothing listens on it") {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "after the flood: {code} {body}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // A failed read is an answer of its own, asked again at the next request.
    let ledger = crate::promise::ledger_path(&env);
    let text = std::fs::read(&ledger).expect("ledger");
    std::fs::write(&ledger, b"{ corrupt").expect("corrupt");
    let (code, body) = curl(&["http://shop.localhost:29897/"]);
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("cannot be read now"), "{body}");
    std::fs::write(&ledger, text).expect("restore");
    let (code, body) = curl(&["http://shop.localhost:29897/"]);
    assert_eq!(code, 502, "{body}");
    assert!(body.contains("on port 29862"), "{body}");
}

fn unique_long_hosts_leave_the_proxys_memory_as_it_was() {
    let env = Env::new();
    let repo = env.repo("shop");
    repo.range("web", 29864, 29865);
    repo.run(["allocate", "web"]).ok();
    let p = proxy(&env, 29896);
    let pid = p.0.id();
    for _ in 0..50 {
        raw(
            29896,
            b"GET / HTTP/1.1\r\nHost: shop.localhost\r\nConnection: close\r\n\r\n",
        );
    }
    let idle = rss_kib(pid);
    for i in 0..1000 {
        let host = format!("{i}{}", "a".repeat(100_000));
        let got = raw(
            29896,
            format!("GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes(),
        );
        assert!(
            got.starts_with("HTTP/1.1 400 "),
            "{}",
            &got[..got.len().min(200)]
        );
    }
    for i in 0..2000 {
        let host = format!("{i}-{}.shop.localhost", "b".repeat(60));
        let got = raw(
            29896,
            format!("GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes(),
        );
        assert!(got.starts_with("HTTP/1.1 404 "), "{got}");
    }
    let after = rss_kib(pid);
    eprintln!("proxy memory: {idle} KiB idle, {after} KiB after 3000 unique hosts");
    assert!(
        after < idle + 6 * 1024,
        "the proxy grew from {idle} KiB to {after} KiB"
    );
}

fn every_mcp_line_gets_an_answer_and_the_session_goes_on() {
    let env = Env::new();
    let repo = env.repo("app");
    repo.range("web", 29866, 29867);
    repo.run(["allocate", "web"]).ok();
    let mut cmd = env.cmd(&repo.dir);
    cmd.arg("mcp");
    let mut s = Session::spawn(cmd);
    // Bytes that are not UTF-8.
    s.bytes(b"{\"jsonrpc\":\"2.0\",\"id\":40,\"method\":\"\xff\xfe\"}\n");
    let v = s.next();
    assert_eq!(
        (v["error"]["code"].clone(), v["id"].clone()),
        (json!(-32700), json!(40)),
        "{v}"
    );
    // Nested deeper than any parser here takes.
    let deep = format!(
        "{{\"jsonrpc\":\"2.0\",\"id\":41,\"method\":\"tools/call\",\"params\":{}1{}}}",
        "[".repeat(200),
        "]".repeat(200)
    );
    s.raw(&deep);
    let v = s.next();
    assert_eq!(
        (v["error"]["code"].clone(), v["id"].clone()),
        (json!(-32600), json!(41)),
        "{v}"
    );
    // A 60 MB line: answered, and not kept.
    let pid = s.child.id();
    let v = s.call(1, "get", json!({"service": "web"}));
    assert_eq!(v["result"]["structuredContent"]["port"], 29866, "{v}");
    let before = rss_kib(pid);
    let mut long =
        b"{\"jsonrpc\":\"2.0\",\"id\":42,\"method\":\"tools/call\",\"params\":\"".to_vec();
    long.extend(std::iter::repeat_n(b'a', 60 << 20));
    long.extend_from_slice(b"\"}\n");
    s.bytes(&long);
    drop(long);
    let v = s.next();
    assert_eq!(
        (v["error"]["code"].clone(), v["id"].clone()),
        (json!(-32600), json!(42)),
        "{v}"
    );
    let after = rss_kib(pid);
    eprintln!("mcp memory: {before} KiB before a 60 MB line, {after} KiB after");
    assert!(
        after < before + 6 * 1024,
        "the MCP server grew from {before} KiB to {after} KiB"
    );
    // The session goes on.
    let v = s.call(2, "get", json!({"service": "web"}));
    assert_eq!(v["result"]["structuredContent"]["port"], 29866, "{v}");
}

fn pipelined_mcp_calls_under_a_low_descriptor_limit_are_all_answered() {
    if !have("prlimit") {
        skip("needs prlimit (util-linux)");
    }
    let env = Env::new();
    let repo = env.repo("app");
    repo.range("web", 29868, 29869);
    repo.run(["allocate", "web"]).ok();
    let mut cmd = limited(&env, 256, &["mcp"]);
    cmd.current_dir(&repo.dir);
    let mut s = Session::spawn(cmd);
    // The children of the server (prlimit execs it: the same pid), counted as they run.
    let pid = s.child.id();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let most = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut most = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let children: usize = std::fs::read_dir(format!("/proc/{pid}/task"))
                    .into_iter()
                    .flatten()
                    .flatten()
                    .map(|t| {
                        std::fs::read_to_string(t.path().join("children"))
                            .unwrap_or_default()
                            .split_whitespace()
                            .count()
                    })
                    .sum();
                most = most.max(children);
                std::thread::sleep(Duration::from_millis(2));
            }
            most
        })
    };
    let mut all = String::new();
    for id in 100..250 {
        let tool = if id % 2 == 0 { "get" } else { "wait" };
        let args = if tool == "get" {
            json!({"service": "web"})
        } else {
            json!({"services": ["web"], "timeout": 0.1})
        };
        all.push_str(
            &json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
                "params": {"name": tool, "arguments": args}})
            .to_string(),
        );
        all.push('\n');
    }
    s.bytes(all.as_bytes());
    let mut answered = std::collections::BTreeSet::new();
    for _ in 100..250 {
        let v = s.next();
        let text = v.to_string();
        assert!(!text.contains("Too many open files"), "{text}");
        if v["id"].as_u64().is_some_and(|i| i % 2 == 0) {
            assert_eq!(v["result"]["structuredContent"]["port"], 29868, "{v}");
        } else {
            // Nothing listens: wait's own answer, not a failure to start it.
            assert!(
                text.contains("did not accept connections") || text.contains("never"),
                "{v}"
            );
        }
        answered.insert(v["id"].as_u64().unwrap_or(0));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let most = most.join().unwrap_or(0);
    assert_eq!(answered.len(), 150);
    assert!(
        most <= git_ports::mcp::MAX_CALLS,
        "{most} calls ran at once"
    );
}

include!(concat!(env!("OUT_DIR"), "/it_limits.rs"));
