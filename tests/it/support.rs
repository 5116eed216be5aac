//! The test environment: a temp dir with an isolated HOME, git config and ledger, real
//! repositories and linked worktrees made by the `git` CLI, and the built binary to run.

#![allow(dead_code)]

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub const BIN: &str = env!("CARGO_BIN_EXE_git-ports");

/// Variables git sets for hooks and aliases; a test that runs inside one must not inherit them.
const GIT_VARS: &[&str] = &[
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "GIT_COMMON_DIR",
    "GIT_OBJECT_DIRECTORY",
    "GIT_PREFIX",
    "GIT_CEILING_DIRECTORIES",
];

pub struct Env {
    pub tmp: tempfile::TempDir,
}

/// The variable that runs the suite under git 3.0's defaults: SHA-256 objects, reftable refs
/// and `main` as the first branch, for every repository the tests create.
pub const GIT3: &str = "GIT_PORTS_TEST_GIT3";

/// Whether the suite runs under git 3.0's defaults (see [`GIT3`]).
pub fn git3() -> bool {
    std::env::var_os(GIT3).is_some_and(|v| !v.is_empty() && v != "0")
}

/// What a run of git-ports gave.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn from(o: Output) -> Run {
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }

    /// Asserts the exit code, showing everything printed if it differs.
    #[track_caller]
    pub fn code(&self, want: i32) -> &Self {
        assert_eq!(
            self.code, want,
            "exit code\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }

    #[track_caller]
    pub fn ok(&self) -> &Self {
        self.code(0)
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}", self.stdout))
    }
}

impl Env {
    pub fn new() -> Env {
        let tmp = tempfile::Builder::new()
            .prefix("git-ports-test")
            .tempdir()
            .expect("temp dir");
        for d in ["home", "ports-home"] {
            std::fs::create_dir_all(tmp.path().join(d)).expect("mkdir");
        }
        let config = if git3() {
            // git's reftable backend gives up on a busy table after 100 ms by default; parallel
            // `git worktree add`s need longer.
            "[init]\n\tdefaultBranch = main\n[reftable]\n\tlockTimeout = 10000\n"
        } else {
            ""
        };
        std::fs::write(tmp.path().join("gitconfig"), config).expect("gitconfig");
        Env { tmp }
    }

    pub fn root(&self) -> &Path {
        self.tmp.path()
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.tmp.path().join(rel)
    }

    /// Gives any command the test environment.
    pub fn isolate(&self, cmd: &mut Command) {
        for v in GIT_VARS {
            cmd.env_remove(v);
        }
        // Hooks run `git ports`: git finds git-ports on PATH, as after an install.
        let bin_dir = Path::new(BIN)
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        let path = std::env::var_os("PATH").unwrap_or_default();
        let mut dirs = vec![bin_dir];
        dirs.extend(std::env::split_paths(&path));
        cmd.env("PATH", std::env::join_paths(dirs).unwrap_or(path));
        cmd.env("HOME", self.path("home"))
            .env("XDG_CONFIG_HOME", self.path("home/.config"))
            .env("XDG_DATA_HOME", self.path("home/.local/share"))
            .env("GIT_CONFIG_GLOBAL", self.path("gitconfig"))
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_PORTS_HOME", self.path("ports-home"))
            .env("GIT_AUTHOR_NAME", "Test")
            .env("GIT_AUTHOR_EMAIL", "test@example.com")
            .env("GIT_COMMITTER_NAME", "Test")
            .env("GIT_COMMITTER_EMAIL", "test@example.com")
            .env("LC_ALL", "C")
            .env("NO_COLOR", "1")
            .env_remove("CLICOLOR_FORCE")
            // Docker is asked only where a test says which one.
            .env_remove("DOCKER_HOST")
            .env_remove("DOCKER_CONTEXT")
            .env("DOCKER_CONFIG", self.path("home/.docker"));
        if git3() {
            cmd.env("GIT_DEFAULT_HASH", "sha256")
                .env("GIT_DEFAULT_REF_FORMAT", "reftable");
        }
    }

    /// Runs git in `dir` and returns everything it gave, whether it failed or not.
    pub fn git_run<I, S>(&self, dir: &Path, args: I) -> Run
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = Command::new("git");
        cmd.args(args).current_dir(dir);
        self.isolate(&mut cmd);
        Run::from(cmd.output().expect("run git"))
    }

    /// Runs `sh -c script` in `dir` with the test environment.
    pub fn sh(&self, dir: &Path, script: &str) -> Run {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", script]).current_dir(dir);
        self.isolate(&mut cmd);
        Run::from(cmd.output().expect("run sh"))
    }

    /// Runs git in `dir`, failing the test if git fails; returns what it printed.
    #[track_caller]
    pub fn git<I, S>(&self, dir: &Path, args: I) -> String
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.git_run(dir, args).ok().stdout.clone()
    }

    /// A command for git-ports in `dir`, with the environment isolated.
    pub fn cmd(&self, dir: &Path) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.current_dir(dir);
        self.isolate(&mut cmd);
        cmd
    }

    /// Runs git-ports in `dir`.
    pub fn run<I, S>(&self, dir: &Path, args: I) -> Run
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let o = self.cmd(dir).args(args).output().expect("run git-ports");
        Run::from(o)
    }

    /// A new repository `name` with one commit on branch `main`.
    pub fn repo(&self, name: &str) -> Repo<'_> {
        let dir = self.path(name);
        std::fs::create_dir_all(&dir).expect("mkdir");
        self.git(&dir, ["init", "-q", "-b", "main"]);
        self.git(&dir, ["commit", "-q", "--allow-empty", "-m", "init"]);
        Repo { env: self, dir }
    }
}

impl Env {
    /// A bare repository `<name>.git` with one commit, cloned from a new repository.
    pub fn bare_repo(&self, name: &str) -> PathBuf {
        let src = self.repo(&format!("{name}-src"));
        let bare = self.path(&format!("{name}.git"));
        let (from, to) = (
            src.dir.to_str().unwrap_or_default(),
            bare.to_str().unwrap_or_default(),
        );
        self.git(self.root(), ["clone", "-q", "--bare", from, to]);
        bare
    }
}

pub struct Repo<'a> {
    pub env: &'a Env,
    /// The main worktree (or the bare repository).
    pub dir: PathBuf,
}

impl Repo<'_> {
    #[track_caller]
    pub fn git<I, S>(&self, args: I) -> String
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.env.git(&self.dir, args)
    }

    /// `git worktree add ../<dir> -b <branch>`; returns the worktree's path.
    #[track_caller]
    pub fn worktree(&self, dir: &str, branch: &str) -> PathBuf {
        let path = self.env.path(dir);
        self.git([
            "worktree",
            "add",
            "-q",
            path.to_str().expect("utf-8"),
            "-b",
            branch,
        ]);
        path
    }

    /// Runs `git worktree add ../<dir> -b <branch>` (hooks and all) and returns what it gave.
    pub fn add_worktree(&self, dir: &str, branch: &str) -> Run {
        let path = self.env.path(dir);
        let args = [
            "worktree",
            "add",
            path.to_str().unwrap_or_default(),
            "-b",
            branch,
        ];
        self.env.git_run(&self.dir, args)
    }

    /// Runs `git worktree add ../<dir> <branch>` for a branch that exists, hooks and all.
    pub fn add_worktree_branch(&self, dir: &str, branch: &str) -> Run {
        let path = self.env.path(dir);
        let args = ["worktree", "add", path.to_str().unwrap_or_default(), branch];
        self.env.git_run(&self.dir, args)
    }

    /// `git worktree add --detach ../<dir>`; returns the worktree's path.
    #[track_caller]
    pub fn detached_worktree(&self, dir: &str) -> PathBuf {
        let path = self.env.path(dir);
        self.git([
            "worktree",
            "add",
            "-q",
            "--detach",
            path.to_str().expect("utf-8"),
        ]);
        path
    }

    /// Runs git-ports in the main worktree.
    pub fn run<I, S>(&self, args: I) -> Run
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.env.run(&self.dir, args)
    }

    /// Gives `service` a range of its own, so exact port numbers never depend on other tests.
    pub fn range(&self, service: &str, start: u16, end: u16) {
        self.git([
            "config",
            &format!("ports.{service}.range"),
            &format!("{start}-{end}"),
        ]);
    }

    pub fn registry_path(&self) -> PathBuf {
        let common = self.git(["rev-parse", "--path-format=absolute", "--git-common-dir"]);
        PathBuf::from(common.trim()).join("worktree-ports.json")
    }

    pub fn registry(&self) -> serde_json::Value {
        let text = std::fs::read_to_string(self.registry_path()).expect("registry");
        serde_json::from_str(&text).expect("registry is JSON")
    }
}

/// Replaces what changes from run to run: the temp dir and timestamps.
pub fn scrub(text: &str, env: &Env) -> String {
    let root = env.root().to_string_lossy().into_owned();
    let mut out = text.replace(&root, "[TMP]");
    // RFC 3339 UTC timestamps: 2026-01-15T10:30:00Z.
    let bytes: Vec<char> = out.chars().collect();
    let mut res = String::new();
    let mut i = 0;
    while i < bytes.len() {
        let rest: String = bytes[i..bytes.len().min(i + 20)].iter().collect();
        if rest.len() == 20 && is_stamp(&rest) {
            res.push_str("[TIME]");
            i += 20;
        } else {
            res.push(bytes[i]);
            i += 1;
        }
    }
    out = res;
    out
}

fn is_stamp(s: &str) -> bool {
    let b = s.as_bytes();
    let digits = [0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18];
    digits.iter().all(|&i| b[i].is_ascii_digit())
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
        && b[16] == b':'
        && b[19] == b'Z'
}

/// Asserts two texts are equal, printing both in full when not.
#[track_caller]
pub fn same(got: &str, want: &str) {
    assert!(
        got == want,
        "output differs\n--- got ---\n{got}\n--- want ---\n{want}\n---"
    );
}

/// A listener on 127.0.0.1:`port` that never answers: a backlog of 0, already filled by one
/// connection nobody accepts, so the kernel drops every further SYN and connects time out.
/// Returns `None` where that cannot be set up.
pub fn silent_listener(port: u16) -> Option<(socket2::Socket, std::net::TcpStream)> {
    use socket2::{Domain, Socket, Type};
    let addr: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
    let s = Socket::new(Domain::IPV4, Type::STREAM, None).ok()?;
    s.bind(&addr.into()).ok()?;
    s.listen(0).ok()?;
    let filler =
        std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_millis(500)).ok()?;
    Some((s, filler))
}

/// Replaces how git-ports names this test process when it listens on a port (`pid N
/// (COMMAND) in DIR, not a known worktree`) with `[THIS TEST]`. The command is left open: the
/// test harness renames its threads, and the process's name with them.
pub fn scrub_self(text: &str) -> String {
    let head = format!("pid {} (", std::process::id());
    let cwd = std::env::current_dir().unwrap_or_default();
    let tail = format!(") in {}, not a known worktree", cwd.display());
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find(&head) {
        let after = &rest[i + head.len()..];
        let Some(j) = after.find(&tail) else { break };
        if after[..j].contains('\n') {
            break;
        }
        out.push_str(&rest[..i]);
        out.push_str("[THIS TEST]");
        rest = &after[j + tail.len()..];
    }
    out.push_str(rest);
    out
}

/// The variable that makes this test binary a listener (see [`listen_in`]).
pub const LISTEN: &str = "GIT_PORTS_TEST_LISTEN";

/// What this test binary does when [`LISTEN`] names a port: listens on 127.0.0.1 there,
/// prints its pid (as its own system counts it: the Windows pid under wine), and accepts
/// connections, until killed or a minute has passed. It drops each one, or with
/// [`LISTEN_HTTP`] set answers it with `200 served by PID`.
pub fn listener_process(port: &str) {
    use std::io::{Read, Write};
    let Ok(port) = port.parse::<u16>() else {
        return;
    };
    let Ok(l) = std::net::TcpListener::bind(("127.0.0.1", port)) else {
        return;
    };
    // As a server does, and as wine needs to name the socket's process.
    git_ports::machine::own(&l);
    let _ = l.set_nonblocking(true);
    let me = std::process::id();
    println!("{me}");
    let _ = std::io::stdout().flush();
    let http = std::env::var_os(LISTEN_HTTP).is_some();
    let start = std::time::Instant::now();
    while start.elapsed() < std::time::Duration::from_secs(60) {
        match l.accept() {
            Ok((mut c, _)) if http => {
                let _ = c.set_nonblocking(false);
                let _ = c.set_read_timeout(Some(std::time::Duration::from_secs(5)));
                let mut got = Vec::new();
                let mut buf = [0u8; 4096];
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    match c.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    }
                }
                let body = format!("served by {me}");
                let _ = write!(
                    c,
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
            Ok(_) => {}
            Err(_) => std::thread::sleep(std::time::Duration::from_millis(20)),
        }
    }
}

/// The variable that makes this test binary hold a file open (see [`hold_process`]).
pub const HOLD: &str = "GIT_PORTS_TEST_HOLD";

/// What this test binary does when [`HOLD`] names a file: opens it as an editor or a virus
/// scanner on Windows does, sharing reading only (so nobody may replace or delete it), says
/// `held`, and keeps it open for `GIT_PORTS_TEST_HOLD_MS` milliseconds. Elsewhere a file
/// cannot be held so: it says `unsupported`.
pub fn hold_process(path: &str) {
    use std::io::Write;
    let ms: u64 = std::env::var("GIT_PORTS_TEST_HOLD_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    #[cfg(windows)]
    {
        use std::os::windows::fs::OpenOptionsExt;
        const FILE_SHARE_READ: u32 = 1;
        let Ok(_f) = std::fs::OpenOptions::new()
            .read(true)
            .share_mode(FILE_SHARE_READ)
            .open(path)
        else {
            println!("cannot open {path}");
            return;
        };
        println!("held");
        let _ = std::io::stdout().flush();
        std::thread::sleep(std::time::Duration::from_millis(ms));
    }
    #[cfg(not(windows))]
    {
        let _ = (path, ms);
        println!("unsupported");
        let _ = std::io::stdout().flush();
    }
}

/// With [`LISTEN`], makes the listener answer HTTP.
pub const LISTEN_HTTP: &str = "GIT_PORTS_TEST_LISTEN_HTTP";

/// Starts a process that listens on 127.0.0.1:`port` with `dir` as its working directory:
/// this test binary, as [`listener_process`]. It ends when killed, or after a minute. Waits
/// until the port accepts connections.
pub fn listen_in(dir: &Path, port: u16) -> Server {
    let exe = std::env::current_exe().expect("test binary");
    let child = Command::new(exe)
        .env(LISTEN, port.to_string())
        .current_dir(dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn listener");
    let server = Server(child);
    wait_listening(port, true);
    server
}

/// A listener process, killed when dropped, even when the test fails.
pub struct Server(pub std::process::Child);

impl Server {
    pub fn id(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits (up to 20 s) until `port` accepts connections, or no longer does.
pub fn wait_listening(port: u16, up: bool) {
    let start = std::time::Instant::now();
    while start.elapsed() < std::time::Duration::from_secs(20) {
        let ok = std::net::TcpStream::connect_timeout(
            &([127, 0, 0, 1], port).into(),
            std::time::Duration::from_millis(200),
        )
        .is_ok();
        if ok == up {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    panic!(
        "port {port} never {}",
        if up { "came up" } else { "went down" }
    );
}

pub use crate::harness::{skip, skip_part};

/// `text` quoted for sh, zsh and fish alike: in single quotes, a quote as `'\''`.
pub fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
}

/// `cp -a from to`: a copy of a repository with everything in it, as a user makes one.
#[track_caller]
pub fn copy_all(from: &Path, to: &Path) {
    let cp = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .expect("cp");
    assert!(cp.success(), "cp -a {} {}", from.display(), to.display());
}

/// stdout, stderr and the exit code of a run together, temp paths scrubbed: what a user
/// sees, for whole-output assertions.
pub fn seen(run: &Run, env: &Env) -> String {
    scrub(
        &format!(
            "{}--- stderr\n{}--- exit {}\n",
            run.stdout, run.stderr, run.code
        ),
        env,
    )
}

/// Writes an executable hook file (and its directory), as a user's own hook is.
#[track_caller]
pub fn write_hook(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().expect("dir")).expect("mkdir");
    std::fs::write(path, text).expect("write hook");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
}
