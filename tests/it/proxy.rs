//! Names and `git ports proxy`: real servers (Node, `tests/fixtures/upstream.js`) behind the
//! proxy, real clients (curl, a WebSocket handshake, an SSE stream, a 100 MB upload).
//!
//! Ports: this module takes 29600-29699.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use git_ports::fault::{self, Point, Target};

#[cfg(unix)]
use crate::support::listen_in;
use crate::support::{Env, Run, same, skip, wait_listening};

pub const UPSTREAM: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/upstream.js");

/// A process killed when dropped.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Whether `node` runs here (the machine's own, for the upstream servers).
pub fn node() -> bool {
    Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// `upstream.js` on `port`, working in `dir` (so it is that worktree's own server).
pub fn upstream(dir: &Path, port: u16) -> Proc {
    upstream_on(dir, port, "127.0.0.1")
}

/// `upstream.js` on `host`:`port`, working in `dir`.
pub fn upstream_on(dir: &Path, port: u16, host: &str) -> Proc {
    let child = Command::new("node")
        .arg(UPSTREAM)
        .arg(port.to_string())
        .arg(host)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .expect("node");
    let p = Proc(child);
    let start = Instant::now();
    while TcpStream::connect((host, port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{host}:{port} never came up"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    p
}

/// `git ports proxy` in the foreground on `port`, until dropped.
pub fn proxy(env: &Env, port: u16) -> Proc {
    env.git(
        env.root(),
        ["config", "--global", "ports.proxyPort", &port.to_string()],
    );
    let child = env
        .cmd(env.root())
        .arg("proxy")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("proxy");
    let p = Proc(child);
    wait_listening(port, true);
    p
}

/// curl with a bound, as a user runs it: the status, then the body.
pub fn curl(args: &[&str]) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-sS", "-m", "20", "-o", "-", "-w", "\n%{http_code}"])
        .args(args)
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or((&text, "0"));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

pub fn have(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A repository `shop` with worktree `fx`: main holds web `base`, fx web `base + 1` and api
/// `base + 5`.
fn shop(env: &Env, base: u16) -> (crate::support::Repo<'_>, PathBuf) {
    let repo = env.repo("shop");
    repo.range("web", base, base + 4);
    repo.range("api", base + 5, base + 9);
    repo.run(["allocate", "web"]).ok();
    let fx = repo.worktree("fx", "fx");
    env.run(&fx, ["allocate", "web", "api"]).ok();
    (repo, fx)
}

fn every_worktree_has_a_name_in_env_and_status() {
    let env = Env::new();
    let (repo, fx) = shop(&env, 29600);
    same(
        &env.run(&fx, ["env"]).ok().stdout,
        "export WEB_PORT=29601\nexport API_PORT=29605\nexport WEB_URL=http://localhost:29601\nexport WEB_PUBLIC_HOST=fx.shop.localhost\nexport WEB_PUBLIC_URL=http://fx.shop.localhost:29601\nexport API_URL=http://localhost:29605\nexport API_PUBLIC_HOST=api.fx.shop.localhost\nexport API_PUBLIC_URL=http://api.fx.shop.localhost:29605\n",
    );
    repo.git([
        "config",
        "--add",
        "ports.derived",
        "OAUTH_CALLBACK={public_url}/auth/callback",
    ]);
    repo.git([
        "config",
        "--add",
        "ports.derived",
        "API_BASE=http://{host:api}:{api}/v1",
    ]);
    let dotenv = env
        .run(&fx, ["env", "--format", "dotenv"])
        .ok()
        .stdout
        .clone();
    assert!(
        dotenv.ends_with("OAUTH_CALLBACK=http://fx.shop.localhost:29601/auth/callback\nAPI_BASE=http://api.fx.shop.localhost:29605/v1\n"),
        "{dotenv}"
    );
    let json = repo.run(["status", "--json"]).json();
    assert_eq!(json["origin"]["host"], "shop.localhost");
    assert_eq!(json["origin"]["worktree"], "shop");
    assert_eq!(json["worktrees"][1]["host"], "fx.shop.localhost", "{json}");
    // A second repository whose directory has the same name gets a name of its own, and keeps
    // it; so does a worktree whose name has nothing DNS-safe in it.
    let other = env.path("elsewhere");
    std::fs::create_dir_all(&other).expect("mkdir");
    env.git(&other, ["init", "-q", "-b", "main", "shop"]);
    let other = other.join("shop");
    env.git(&other, ["commit", "-q", "--allow-empty", "-m", "i"]);
    let o = crate::support::Repo {
        env: &env,
        dir: other.clone(),
    };
    o.range("web", 29610, 29614);
    let fx2 = o.worktree("elsewhere/fx", "fx");
    env.run(&fx2, ["allocate", "web"]).ok();
    let host = env.run(&fx2, ["env"]).ok().stdout.clone();
    assert!(
        host.contains("WEB_PUBLIC_HOST=fx.shop-2.localhost\n"),
        "{host}"
    );
    let odd = o.worktree("elsewhere/日本", "jp");
    env.run(&odd, ["allocate", "web"]).ok();
    let text = env.run(&odd, ["env"]).ok().stdout.clone();
    assert!(text.contains("WEB_PUBLIC_HOST=x-"), "{text}");
    // The template is validated; a bad one stops changes with a line naming it.
    repo.git(["config", "ports.hostTemplate", "{worktree}.example.com"]);
    let bad = env.run(&fx, ["allocate", "web"]);
    bad.code(1);
    assert!(
        bad.stderr.contains("ports.hosttemplate") || bad.stderr.contains("ports.hostTemplate"),
        "{}",
        bad.stderr
    );
    repo.git([
        "config",
        "ports.hostTemplate",
        "{repo}-{worktree}.localhost",
    ]);
    let late = repo.worktree("late", "late");
    env.run(&late, ["allocate", "web"]).ok();
    let text = env.run(&late, ["env"]).ok().stdout.clone();
    assert!(
        text.contains("WEB_PUBLIC_HOST=shop-late.localhost\n"),
        "{text}"
    );
    // The origin points only at a worktree that holds a port; a refusal changes nothing.
    let idle = repo.worktree("idle", "idle");
    let ledger = std::fs::read(crate::promise::ledger_path(&env)).expect("ledger");
    let run = env.run(&idle, ["point"]);
    run.code(1);
    assert!(run.stderr.contains("worktree 'idle' holds no port to serve: run `git ports allocate web --worktree idle` first"), "{}", run.stderr);
    repo.run(["point", "nosuch"]).code(2);
    assert_eq!(
        std::fs::read(crate::promise::ledger_path(&env)).expect("ledger"),
        ledger
    );
    // Names already given stay as they were.
    assert!(
        env.run(&fx, ["env"])
            .ok()
            .stdout
            .contains("WEB_PUBLIC_HOST=fx.shop.localhost\n")
    );
}

fn the_proxy_routes_names_live_and_says_what_is_wrong() {
    if !node() || !have("curl") {
        skip("needs node and curl");
    }
    let env = Env::new();
    let (repo, fx) = shop(&env, 29620);
    let _web = upstream(&fx, 29621);
    let _proxy = proxy(&env, 29690);
    let url = |host: &str, path: &str| format!("http://{host}:29690{path}");
    let (code, body) = curl(&[&url("fx.shop.localhost", "/")]);
    assert_eq!(code, 200, "{body}");
    // curl reaches a `.localhost` name over either loopback address.
    same(
        &body.replace("xff=::1 ", "xff=127.0.0.1 "),
        "hello from 29621 host=fx.shop.localhost:29690 xff=127.0.0.1 xfh=fx.shop.localhost:29690 xfp=http\n",
    );
    // As browsers and odd clients send the name: any case, a trailing dot, the port.
    let (code, body) = curl(&[
        "-H",
        "Host: FX.Shop.LocalHost.:29690",
        "http://127.0.0.1:29690/",
    ]);
    assert_eq!(code, 200, "{body}");
    // Over IPv6 loopback too, where the machine has it.
    if std::net::TcpStream::connect(("::1", 29690)).is_ok() {
        let (code, _) = curl(&["-H", "Host: fx.shop.localhost", "http://[::1]:29690/"]);
        assert_eq!(code, 200);
    }
    // Keep-alive: two requests, one connection.
    let out = Command::new("curl")
        .args([
            "-sS",
            "-o",
            "/dev/null",
            "-o",
            "/dev/null",
            "-w",
            "%{num_connects} ",
        ])
        .args([url("fx.shop.localhost", "/"), url("fx.shop.localhost", "/")])
        .output()
        .expect("curl");
    same(&String::from_utf8_lossy(&out.stdout), "1 0 ");
    // The origin: the main worktree, whose server is down: a 502 that says what to do, one
    // line for curl and a page for a browser.
    let (code, body) = curl(&[&url("shop.localhost", "/")]);
    assert_eq!(code, 502);
    assert!(
        body.starts_with(
            "git ports proxy: nothing answers for shop.localhost (web of worktree 'shop' in "
        ) && body.contains("on port 29620: nothing listens on it. Start it with `git -C ")
            && body.ends_with("/shop ports exec -- COMMAND`\n"),
        "{body}"
    );
    let (code, page) = curl(&["-H", "Accept: text/html", &url("shop.localhost", "/")]);
    assert_eq!(code, 502);
    assert!(
        page.starts_with("<!doctype html>")
            && page.contains("<h1>502 Bad Gateway</h1>")
            // It reloads itself until the server answers.
            && page.contains("<meta http-equiv=\"refresh\" content=\"2\">"),
        "{page}"
    );
    // A name nobody has: the names there are, as links.
    let (code, page) = curl(&["-H", "Accept: text/html", &url("nope.shop.localhost", "/")]);
    assert_eq!(code, 404);
    assert!(
        page.contains("<li><a href=\"http://fx.shop.localhost:29690/\">http://fx.shop.localhost:29690/</a></li>")
            && !page.contains("http-equiv"),
        "{page}"
    );
    // Pointed at fx, the origin serves fx at once.
    same(
        &repo
            .run(["point", "fx"])
            .ok()
            .stdout
            .replace(&fx.display().to_string(), "FX"),
        "✓ shop.localhost now serves worktree 'fx' (FX)\n",
    );
    let (code, body) = curl(&[&url("shop.localhost", "/")]);
    assert_eq!(
        (code, body.starts_with("hello from 29621")),
        (200, true),
        "{body}"
    );
    assert_eq!(
        repo.run(["status", "--json"]).json()["origin"]["worktree"],
        "fx"
    );
    // A service in front of a name.
    let (code, body) = curl(&[&url("api.fx.shop.localhost", "/")]);
    assert_eq!(code, 502);
    assert!(body.contains("(api of worktree 'fx' in "), "{body}");
    let (code, body) = curl(&[&url("db.fx.shop.localhost", "/")]);
    assert_eq!(code, 502);
    assert!(
        body.contains("holds no port for db: run `git -C ")
            && body.contains("/fx ports allocate db`"),
        "{body}"
    );
    // Unknown names: a 404 with the names there are.
    let (code, body) = curl(&[&url("nope.shop.localhost", "/")]);
    assert_eq!(code, 404);
    same(
        &body,
        "git ports proxy: no worktree is named nope.shop.localhost; the names are: shop.localhost, api.shop.localhost, fx.shop.localhost, api.fx.shop.localhost, shop.shop.localhost\n",
    );
    let (code, _) = curl(&["-0", "-H", "Host:", "http://127.0.0.1:29690/"]);
    assert_eq!(code, 400);
    // A loop: a request that went through the proxy once.
    let (code, _) = curl(&["-H", "X-Git-Ports-Proxy: 1", &url("fx.shop.localhost", "/")]);
    assert_eq!(code, 508);
    // Live: a worktree allocated after the proxy started is served at once.
    let late = repo.worktree("late", "late");
    env.run(&late, ["allocate", "web"]).ok();
    let _late = upstream(&late, 29622);
    let (code, body) = curl(&[&url("late.shop.localhost", "/")]);
    assert_eq!(
        (code, body.starts_with("hello from 29622")),
        (200, true),
        "{body}"
    );
    // A registry that cannot be read now: 503, naming it; nothing is written.
    let registry = repo.registry_path();
    let text = std::fs::read(&registry).expect("registry");
    std::fs::write(&registry, b"{ not json").expect("corrupt");
    let (code, body) = curl(&[&url("fx.shop.localhost", "/")]);
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("cannot be read now"), "{body}");
    assert_eq!(std::fs::read(&registry).expect("registry"), b"{ not json");
    std::fs::write(&registry, text).expect("restore");
    // The proxy's status lists the names and where each goes.
    let st = env.run(env.root(), ["proxy", "status"]);
    st.ok();
    assert!(
        st.stdout
            .contains("  http://fx.shop.localhost:29690 → web of 'fx' (29621), "),
        "{}",
        st.stdout
    );
    assert!(
        st.stdout
            .contains("  http://shop.localhost:29690 (origin) → web of 'fx' (29621), "),
        "{}",
        st.stdout
    );
    let st = repo.run(["status"]);
    assert!(st.stdout.contains("Through git ports proxy (port 29690):\n  http://shop.localhost:29690  origin, points at 'fx'\n"), "{}", st.stdout);
}

/// VmHWM of a process: the most memory it has held, in KiB.
pub fn peak_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn streams_upgrades_and_uploads_go_through_whole_and_unbuffered() {
    if !node() || !have("curl") {
        skip("needs node and curl");
    }
    let env = Env::new();
    let (_repo, fx) = shop(&env, 29630);
    let _web = upstream(&fx, 29631);
    let proxy = proxy(&env, 29691);
    // Server-sent events arrive one by one: the first is read while the stream is open.
    let mut s = TcpStream::connect(("127.0.0.1", 29691)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).ok();
    s.write_all(
        b"GET /sse HTTP/1.1\r\nHost: fx.shop.localhost\r\nAccept: text/event-stream\r\n\r\n",
    )
    .expect("send");
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&got).contains("data: 1 ") {
        let n = s.read(&mut buf).expect("read");
        assert!(n > 0, "closed early: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    let first = String::from_utf8_lossy(&got).into_owned();
    assert!(first.starts_with("HTTP/1.1 200 OK\r\n"), "{first}");
    assert!(first.contains("content-type: text/event-stream"), "{first}");
    assert!(
        !first.contains("data: 3 "),
        "the stream was buffered: {first}"
    );
    while !String::from_utf8_lossy(&got).contains("data: 3 ") {
        let n = s.read(&mut buf).expect("read");
        assert!(n > 0);
        got.extend_from_slice(&buf[..n]);
    }
    // A WebSocket: the upgrade goes through and frames flow both ways.
    let mut ws = TcpStream::connect(("127.0.0.1", 29691)).expect("connect");
    ws.set_read_timeout(Some(Duration::from_secs(10))).ok();
    ws.write_all(
        b"GET /ws HTTP/1.1\r\nHost: fx.shop.localhost:29691\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    )
    .expect("send");
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut b = [0u8; 1];
        assert_eq!(ws.read(&mut b).expect("read"), 1);
        head.push(b[0]);
    }
    let head = String::from_utf8_lossy(&head).to_lowercase();
    assert!(
        head.starts_with("http/1.1 101 switching protocols"),
        "{head}"
    );
    assert!(
        head.contains("sec-websocket-accept: s3pplmbitxaq9kygzzhzrbk+xoo="),
        "{head}"
    );
    let text = b"hi through the proxy";
    let mask = [1u8, 2, 3, 4];
    let mut frame = vec![0x81, 0x80 | text.len() as u8];
    frame.extend_from_slice(&mask);
    frame.extend(text.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    ws.write_all(&frame).expect("frame");
    let mut reply = [0u8; 2];
    ws.read_exact(&mut reply).expect("reply head");
    let mut body = vec![0u8; usize::from(reply[1] & 0x7f)];
    ws.read_exact(&mut body).expect("reply");
    same(
        &String::from_utf8_lossy(&body),
        "echo 29631: hi through the proxy",
    );
    // 100 MB up, streamed: the server counts every byte, and the proxy never held them all.
    let out: Output = Command::new("sh")
        .arg("-c")
        .arg("head -c 104857600 /dev/zero | curl -sS -m 120 -T - -H 'Host: fx.shop.localhost' http://127.0.0.1:29691/upload")
        .output()
        .expect("upload");
    same(
        &String::from_utf8_lossy(&out.stdout),
        "{\"bytes\":104857600}\n",
    );
    let peak = peak_kib(proxy.0.id());
    assert!(peak < 64 * 1024, "the proxy held {peak} KiB at its peak");
}

fn slow_servers_and_slow_clients_are_bounded() {
    if !node() || !have("curl") {
        skip("needs node and curl");
    }
    let env = Env::new();
    let (_repo, fx) = shop(&env, 29640);
    let _web = upstream(&fx, 29641);
    env.git(
        env.root(),
        ["config", "--global", "ports.proxyTimeout", "1"],
    );
    let _proxy = proxy(&env, 29692);
    let t = Instant::now();
    let (code, body) = curl(&["http://fx.shop.localhost:29692/slow"]);
    assert_eq!(code, 504, "{body}");
    assert!(
        body.contains("accepted the connection but sent no answer within 1s"),
        "{body}"
    );
    assert!(t.elapsed() < Duration::from_secs(15));
    // A client that never finishes its request head is let go.
    let mut s = TcpStream::connect(("127.0.0.1", 29692)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(15))).ok();
    s.write_all(b"GET / HTTP/1.1\r\nHost: fx.sh").expect("send");
    let t = Instant::now();
    let mut buf = [0u8; 512];
    let n = s.read(&mut buf).unwrap_or(0);
    let said = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(n == 0 || said.starts_with("HTTP/1.1 408"), "{said}");
    assert!(t.elapsed() < Duration::from_secs(12));
}

fn proxy_cmd(env: &Env, args: &[&str]) -> Run {
    let mut all = vec!["proxy"];
    all.extend(args);
    env.run(env.root(), all)
}

#[cfg(unix)]
fn start_stop_status_and_a_killed_proxy_never_block_the_next_start() {
    let env = Env::new();
    let (_repo, _fx) = shop(&env, 29650);
    env.git(
        env.root(),
        ["config", "--global", "ports.proxyPort", "29693"],
    );
    let st = proxy_cmd(&env, &["status"]);
    st.code(1);
    assert!(
        st.stdout
            .starts_with("git ports proxy is not running (it would listen on port 29693"),
        "{}",
        st.stdout
    );
    let run = proxy_cmd(&env, &["start"]);
    run.ok();
    assert!(
        run.stdout.starts_with("✓ git ports proxy runs (pid "),
        "{}",
        run.stdout
    );
    wait_listening(29693, true);
    // Asked for another port while it runs: said, not silently ignored.
    let mut cmd = env.cmd(env.root());
    cmd.args(["proxy", "start"])
        .env("GIT_CONFIG_PARAMETERS", "'ports.proxyPort'='29699'");
    let moved = Run::from(cmd.output().expect("proxy start"));
    moved.code(1);
    assert!(
        moved
            .stderr
            .contains("on port 29693, not on port 29699 as ports.proxyPort says now: stop it with `git ports proxy stop`, then start it again"),
        "{}",
        moved.stderr
    );
    let again = proxy_cmd(&env, &["start"]);
    again.ok();
    assert!(
        again
            .stdout
            .starts_with("git ports proxy already runs (pid "),
        "{}",
        again.stdout
    );
    let json = proxy_cmd(&env, &["status", "--json"]).json();
    assert_eq!(json["running"], true);
    assert_eq!(json["port"], 29693);
    let pid = json["pid"].as_u64().expect("pid") as u32;
    // SIGKILL: its state file stays behind, naming a process that is gone.
    Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .expect("kill");
    wait_listening(29693, false);
    proxy_cmd(&env, &["status"]).code(1);
    proxy_cmd(&env, &["start"]).ok();
    wait_listening(29693, true);
    let stop = proxy_cmd(&env, &["stop"]);
    stop.ok();
    assert!(stop.stdout.ends_with(") stopped\n"), "{}", stop.stdout);
    wait_listening(29693, false);
    same(
        &proxy_cmd(&env, &["stop"]).stdout,
        "git ports proxy is not running\n",
    );
    // A user with no ledger yet: its directory is made, private, for the proxy's files.
    let fresh = env.path("fresh/ports");
    let in_fresh = |args: &[&str]| {
        let mut cmd = env.cmd(env.root());
        cmd.arg("proxy").args(args).env("GIT_PORTS_HOME", &fresh);
        Run::from(cmd.output().expect("proxy"))
    };
    in_fresh(&["start"]).ok();
    wait_listening(29693, true);
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&fresh)
            .expect("made")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700);
    }
    in_fresh(&["stop"]).ok();
    wait_listening(29693, false);
    // Its port taken by someone else: one line that names who.
    let holder = listen_in(env.root(), 29693);
    let taken = proxy_cmd(&env, &["start"]);
    taken.code(1);
    assert!(
        taken.stderr.starts_with(&format!(
            "git-ports: the proxy did not start: port 29693 is already in use by pid {} (",
            holder.id()
        )),
        "{}",
        taken.stderr
    );
    let fg = proxy_cmd(&env, &[]);
    fg.code(1);
    assert_eq!(
        fg.stderr
            .lines()
            .filter(|l| l.starts_with("git-ports: "))
            .count(),
        1,
        "{}",
        fg.stderr
    );
}

/// A crash, or a failed write, at every point of writing the proxy's state file: the next
/// start always succeeds.
fn a_crash_at_every_point_of_the_proxy_state_never_blocks_the_next_start() {
    let env = Env::new();
    env.git(
        env.root(),
        ["config", "--global", "ports.proxyPort", "29694"],
    );
    for point in fault::points_of(&[Target::ProxyState]) {
        for fail in [false, true] {
            let name = Point::name(point);
            let fault = if fail {
                format!("{name}:fail")
            } else {
                name.clone()
            };
            let trace = env.path("trace");
            let _ = std::fs::remove_file(&trace);
            let mut cmd = env.cmd(env.root());
            cmd.arg("proxy")
                .env(fault::ENV, &fault)
                .env(fault::TRACE, &trace)
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            let mut child = Proc(cmd.spawn().expect("proxy"));
            let _ = &mut child;
            // It stops at the point (an abort), or fails there, or, past the rename, runs.
            let t = Instant::now();
            loop {
                let reached = std::fs::read_to_string(&trace).unwrap_or_default();
                if reached.lines().any(|l| l == name) {
                    break;
                }
                assert!(
                    t.elapsed() < Duration::from_secs(20),
                    "{fault} never reached"
                );
                std::thread::sleep(Duration::from_millis(10));
            }
            std::thread::sleep(Duration::from_millis(100));
            let _ = child.0.kill();
            let _ = child.0.wait();
            wait_listening(29694, false);
            let run = proxy_cmd(&env, &["start"]);
            assert_eq!(run.code, 0, "after {fault}: {run:?}");
            wait_listening(29694, true);
            proxy_cmd(&env, &["stop"]).ok();
            wait_listening(29694, false);
        }
    }
}

include!(concat!(env!("OUT_DIR"), "/it_proxy.rs"));
