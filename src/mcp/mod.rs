//! `git ports mcp`: an MCP server over stdio, so a coding agent finds git-ports and gets
//! structured answers instead of guessing ports.
//!
//! Each tool runs this same binary as a command (`git-ports allocate web --json`, …) in the
//! repository the call names, or the server's working directory: the answer is exactly the
//! command's `--json` output, its errors are exactly the command's one-line message and
//! hint, every lock wait and every rule is the command's own, and a call that is cut short
//! (the client gone, stdin closed) is a command that runs to its end or is killed, which the
//! registry and the ledger are built to survive. The async runtime lives in this module only.

use std::path::PathBuf;
use std::process::Stdio;

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, ContentBlock, Implementation, ServerCapabilities, ServerConfig};
use rmcp::{ErrorData, ServerHandler, ServiceExt, tool, tool_handler, tool_router};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::{Error, Result};

mod relay;
use relay::relay;
pub use relay::{MAX_DEPTH, MAX_LINE};

/// The most tool calls that run at once, each a command of its own; the rest wait their
/// turn, and every one is answered.
pub const MAX_CALLS: usize = 8;

/// What the server tells the agent before any tool: the rules an agent must follow.
const INSTRUCTIONS: &str = "git-ports hands out development-server ports to git worktrees, \
collision-free across every worktree and repository on this machine. Never choose a port \
yourself and never kill a process by its port: ask `get` or `env` for the worktree's ports \
(`allocate` first if it holds none), `lease` a port for a one-off run such as a test suite, \
`wait` for a server to come up, and `stop` to stop only this worktree's own servers. Every \
tool takes `repository` (a directory in the repository, default: where the server runs) and \
most take `worktree` (its name, path or branch).";

/// Where a call runs: a repository and one of its worktrees.
#[derive(Debug, Default, Deserialize, JsonSchema)]
pub struct Place {
    /// A directory inside the repository or one of its worktrees (default: the server's
    /// working directory).
    #[serde(default)]
    #[schemars(with = "String")]
    pub repository: Option<String>,
    /// The worktree: its name, its path or its branch (default: the one `repository` is in).
    #[serde(default)]
    #[schemars(with = "String")]
    pub worktree: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct AllocateParams {
    /// Services to allocate: web, api, db, redis, grpc, websocket, or one set in git config.
    pub services: Vec<String>,
    /// Ask for this port instead of the lowest free one (one service only). Only when the
    /// user asked for this port: never guess one.
    #[serde(default)]
    #[schemars(with = "u16")]
    pub port: Option<u16>,
    #[serde(flatten)]
    pub place: Place,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct ServiceParams {
    /// The service, such as web or api.
    pub service: String,
    #[serde(flatten)]
    pub place: Place,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct StatusParams {
    /// Connect to every port and say RUNNING, STOPPED or ERROR, and who listens.
    #[serde(default)]
    pub health_check: bool,
    /// Every repository on this machine, not just this one.
    #[serde(default)]
    pub machine: bool,
    /// Only this service.
    #[serde(default)]
    #[schemars(with = "String")]
    pub service: Option<String>,
    /// Seconds for the health check (default 2).
    #[serde(default)]
    #[schemars(with = "f64")]
    pub timeout: Option<f64>,
    #[serde(flatten)]
    pub place: Place,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct WaitParams {
    /// Services to wait for (default: every port the worktree holds).
    #[serde(default)]
    pub services: Vec<String>,
    /// Seconds to wait at most (default 30).
    #[serde(default)]
    #[schemars(with = "f64")]
    pub timeout: Option<f64>,
    #[serde(flatten)]
    pub place: Place,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct CheckParams {
    /// The port to ask about.
    pub port: u16,
    /// A directory inside the repository (default: the server's working directory).
    #[serde(default)]
    #[schemars(with = "String")]
    pub repository: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct ReleaseParams {
    /// Ports to release; or none, with `worktree`, for all of that worktree's.
    #[serde(default)]
    pub ports: Vec<u16>,
    /// With `worktree`: only this service's port.
    #[serde(default)]
    #[schemars(with = "String")]
    pub service: Option<String>,
    /// Also forget that the worktree held these ports, so they are not given back to it first.
    #[serde(default)]
    pub forget: bool,
    #[serde(flatten)]
    pub place: Place,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct LeaseParams {
    /// Services to lease a port of, for one process.
    pub services: Vec<String>,
    /// The process the lease is for; it ends when that process exits. Default: this MCP
    /// server's process, so the lease lasts as long as the session.
    #[serde(default)]
    #[schemars(with = "u32")]
    pub pid: Option<u32>,
    #[serde(flatten)]
    pub place: Place,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct ReserveParams {
    /// The ports to fence off machine-wide.
    pub ports: Vec<u16>,
    /// What they are kept for (shown by status with machine).
    #[serde(default)]
    #[schemars(with = "String")]
    pub reason: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct UnreserveParams {
    /// The reserved ports to give back.
    pub ports: Vec<u16>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct StopParams {
    /// Services whose servers to stop (default: every port the worktree holds).
    #[serde(default)]
    pub services: Vec<String>,
    /// Seconds between SIGTERM and SIGKILL (default 5).
    #[serde(default)]
    #[schemars(with = "f64")]
    pub grace: Option<f64>,
    #[serde(flatten)]
    pub place: Place,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct DoctorParams {
    /// Repair what is safe to repair.
    #[serde(default)]
    pub fix: bool,
    /// A directory inside the repository (default: the server's working directory).
    #[serde(default)]
    #[schemars(with = "String")]
    pub repository: Option<String>,
}

/// A call's command: its arguments, where it runs, and which exit codes are answers (their
/// JSON is the result) rather than failures.
struct Call {
    args: Vec<String>,
    repository: Option<String>,
    answers: &'static [i32],
}

impl Call {
    fn new(args: &[&str], repository: Option<String>) -> Call {
        Call {
            args: args.iter().map(|s| s.to_string()).collect(),
            repository,
            answers: &[0],
        }
    }

    fn worktree(mut self, place: &Place) -> Call {
        if let Some(w) = &place.worktree {
            self.args.push(format!("--worktree={w}"));
        }
        self
    }

    fn opt(mut self, flag: &str, value: Option<impl ToString>) -> Call {
        if let Some(v) = value {
            self.args.push(format!("{flag}={}", v.to_string()));
        }
        self
    }

    fn flag(mut self, flag: &str, on: bool) -> Call {
        if on {
            self.args.push(flag.to_string());
        }
        self
    }

    fn words(mut self, words: impl IntoIterator<Item = impl ToString>) -> Call {
        self.args.extend(words.into_iter().map(|w| w.to_string()));
        self
    }
}

/// What a command gave.
struct Ran {
    code: i32,
    stdout: String,
    stderr: String,
}

/// The server: it holds nothing but where it runs; every call is a command.
#[derive(Clone)]
pub struct Server {
    tool_router: ToolRouter<Self>,
    /// This binary.
    exe: PathBuf,
    /// One permit per call running ([`MAX_CALLS`]).
    calls: std::sync::Arc<tokio::sync::Semaphore>,
}

impl Server {
    async fn run(&self, call: &Call) -> std::result::Result<Ran, CallToolResult> {
        let mut cmd = tokio::process::Command::new(&self.exe);
        cmd.args(&call.args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .env("NO_COLOR", "1")
            .env(crate::keys::ENV_AUDIENCE, "mcp");
        if let Some(dir) = &call.repository {
            let dir = PathBuf::from(dir);
            if !dir.is_dir() {
                return Err(failure(
                    &format!("repository '{}' is not a directory", dir.display()),
                    Some("give a directory inside the repository or one of its worktrees"),
                    1,
                ));
            }
            // The repository is the directory's, not the one git named for this process.
            crate::repo::in_other_repository(cmd.as_std_mut());
            cmd.current_dir(dir);
        }
        // Calls beyond MAX_CALLS wait here for their turn.
        let _turn = self.calls.acquire().await;
        // A moment without descriptors or processes passes: the call waits for it, within
        // a bound, rather than failing.
        let mut pause = std::time::Duration::from_millis(20);
        let mut tries = 0;
        let out = loop {
            match cmd.output().await {
                Err(e) if crate::net::starved(&e) && tries < 30 => {
                    tries += 1;
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(std::time::Duration::from_millis(500));
                }
                other => break other,
            }
        }
        .map_err(|e| failure(&format!("cannot run {}: {e}", self.exe.display()), None, 1))?;
        Ok(Ran {
            code: out.status.code().unwrap_or(1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }

    /// Runs `call` and gives its JSON as the result, or its error as a tool error.
    async fn json(&self, call: Call) -> std::result::Result<CallToolResult, ErrorData> {
        Ok(match self.run(&call).await {
            Err(e) => e,
            Ok(ran) => match serde_json::from_str::<Value>(&ran.stdout) {
                Ok(v @ Value::Object(_)) if call.answers.contains(&ran.code) => {
                    let mut r = CallToolResult::structured(v);
                    if ran.code != 0 {
                        r.content
                            .push(ContentBlock::text(format!("exit code {}", ran.code)));
                    }
                    r
                }
                _ => error_of(&ran),
            },
        })
    }

    /// Runs `call`, whose output is not JSON, and gives `answer` built from its stdout.
    async fn plain(
        &self,
        call: Call,
        answer: impl FnOnce(&str) -> Value,
    ) -> std::result::Result<CallToolResult, ErrorData> {
        Ok(match self.run(&call).await {
            Err(e) => e,
            Ok(ran) if ran.code == 0 => CallToolResult::structured(answer(&ran.stdout)),
            Ok(ran) => error_of(&ran),
        })
    }
}

/// A tool error: the command's one-line message and its hint, as text and as fields.
fn failure(message: &str, hint: Option<&str>, code: i32) -> CallToolResult {
    let mut text = message.to_string();
    if let Some(h) = hint {
        text.push_str("\nhint: ");
        text.push_str(h);
    }
    let mut r = CallToolResult::structured_error(json!({
        "error": message,
        "hint": hint,
        "exit_code": code,
    }));
    r.content = vec![ContentBlock::text(text)];
    r
}

/// The error a command printed: its `git-ports:` line and its `hint:` line.
fn error_of(ran: &Ran) -> CallToolResult {
    let mut message = None;
    let mut hint = None;
    for line in ran.stderr.lines() {
        if let Some(m) = line.strip_prefix("git-ports: ")
            && !m.starts_with("warning: ")
            && message.is_none()
        {
            message = Some(m.to_string());
        } else if let Some(h) = line.strip_prefix("hint: ") {
            hint = Some(h.to_string());
        }
    }
    let message = message.unwrap_or_else(|| match ran.stderr.trim() {
        "" => format!("git-ports exited with {}", ran.code),
        e => e.to_string(),
    });
    failure(&message, hint.as_deref(), ran.code)
}

#[tool_router(router = tool_router)]
impl Server {
    pub fn new(exe: PathBuf) -> Server {
        Server {
            tool_router: Self::tool_router(),
            exe,
            calls: std::sync::Arc::new(tokio::sync::Semaphore::new(MAX_CALLS)),
        }
    }

    #[tool(
        name = "allocate",
        description = "Give the worktree a port for each service (the lowest free one, or the one it held before), or return the port it already holds. Never choose a port yourself: allocate, then use the port this returns. Same fields as `git ports allocate --json`."
    )]
    async fn allocate(
        &self,
        Parameters(p): Parameters<AllocateParams>,
    ) -> std::result::Result<CallToolResult, ErrorData> {
        let call = Call::new(&["allocate", "--json"], p.place.repository.clone())
            .worktree(&p.place)
            .opt("--port", p.port)
            .words(["--"])
            .words(p.services);
        self.json(call).await
    }

    #[tool(
        name = "get",
        description = "The port the worktree holds for one service: {service, port}. An error (with the command to fix it) when it holds none; then call allocate. Never guess a port instead."
    )]
    async fn get(
        &self,
        Parameters(p): Parameters<ServiceParams>,
    ) -> std::result::Result<CallToolResult, ErrorData> {
        let service = p.service.clone();
        let call = Call::new(&["get"], p.place.repository.clone())
            .worktree(&p.place)
            .words(["--", &p.service]);
        self.plain(
            call,
            |out| json!({"service": service, "port": out.trim().parse::<u16>().ok()}),
        )
        .await
    }

    #[tool(
        name = "env",
        description = "The worktree's ports as environment variables (WEB_PORT, API_PORT, derived URLs, ...): set these when starting its servers, rather than choosing ports."
    )]
    async fn env(
        &self,
        Parameters(p): Parameters<Place>,
    ) -> std::result::Result<CallToolResult, ErrorData> {
        let call = Call::new(&["env", "--format", "json"], p.repository.clone()).worktree(&p);
        self.json(call).await
    }

    #[tool(
        name = "status",
        description = "Who holds which port in this repository (or, with machine, on this machine), with health_check whether each is running and which process listens (pid, command, and whether it is the worktree's own), and live leases. Same fields as `git ports status --json`."
    )]
    async fn status(
        &self,
        Parameters(p): Parameters<StatusParams>,
    ) -> std::result::Result<CallToolResult, ErrorData> {
        let mut call = Call::new(&["status", "--json"], p.place.repository.clone())
            .flag("--health-check", p.health_check)
            .flag("--machine", p.machine)
            .opt("--service", p.service.as_deref())
            .opt("--timeout", p.timeout)
            .worktree(&p.place);
        // A health check that met errors still answers, with its summary.
        call.answers = &[0, 4];
        self.json(call).await
    }

    #[tool(
        name = "wait",
        description = "Wait until the worktree's servers accept connections (or answer HTTP, where ports.<service>.ready says so). Start the server in the background first, then wait, then use it. An error names the ports that never came up, or the foreign process serving one."
    )]
    async fn wait(
        &self,
        Parameters(p): Parameters<WaitParams>,
    ) -> std::result::Result<CallToolResult, ErrorData> {
        let services = p.services.clone();
        let call = Call::new(&["wait"], p.place.repository.clone())
            .opt("--timeout", p.timeout)
            .worktree(&p.place)
            .words(["--"])
            .words(p.services);
        self.plain(call, |_| json!({"ready": true, "services": services}))
            .await
    }

    #[tool(
        name = "check",
        description = "Whether a port is free: which worktree or repository holds it, which services' ranges contain it, and whether something listens on it now. Same fields as `git ports check --json`."
    )]
    async fn check(
        &self,
        Parameters(p): Parameters<CheckParams>,
    ) -> std::result::Result<CallToolResult, ErrorData> {
        let mut call = Call::new(
            &["check", "--json", "--", &p.port.to_string()],
            p.repository,
        );
        // Held is an answer, not a failure.
        call.answers = &[0, 4];
        self.json(call).await
    }

    #[tool(
        name = "release",
        description = "Give ports back: the ports named, or with worktree all of that worktree's (one service with service). Same fields as `git ports release --json`."
    )]
    async fn release(
        &self,
        Parameters(p): Parameters<ReleaseParams>,
    ) -> std::result::Result<CallToolResult, ErrorData> {
        let call = Call::new(&["release", "--json"], p.place.repository.clone())
            .worktree(&p.place)
            .opt("--service", p.service.as_deref())
            .flag("--forget", p.forget)
            .words(["--"])
            .words(p.ports);
        self.json(call).await
    }

    #[tool(
        name = "lease",
        description = "A port of its own for one process (a test run, a one-off server), claimed machine-wide and freed when that process exits: no worktree, repository or other lease gets it meanwhile. Never pick a 'random free port' yourself: lease one. Give pid for the process that will use it; by default the lease lasts as long as this MCP session."
    )]
    async fn lease(
        &self,
        Parameters(p): Parameters<LeaseParams>,
    ) -> std::result::Result<CallToolResult, ErrorData> {
        let pid = p.pid.unwrap_or_else(std::process::id);
        let call = Call::new(&["lease", "--json"], p.place.repository.clone())
            .opt("--pid", Some(pid))
            .worktree(&p.place)
            .words(["--"])
            .words(p.services);
        self.json(call).await
    }

    #[tool(
        name = "reserve",
        description = "Fence ports off machine-wide: no repository, lease or proxy is given them (a port another program of this machine uses, say). Refused when a worktree, a lease or the proxy holds one now. Same fields as `git ports reserve --json`."
    )]
    async fn reserve(
        &self,
        Parameters(p): Parameters<ReserveParams>,
    ) -> std::result::Result<CallToolResult, ErrorData> {
        let call = Call::new(&["reserve", "--json"], None)
            .opt("--reason", p.reason.as_deref())
            .words(["--"])
            .words(p.ports);
        self.json(call).await
    }

    #[tool(
        name = "unreserve",
        description = "Give reserved ports back. Same fields as `git ports unreserve --json`."
    )]
    async fn unreserve(
        &self,
        Parameters(p): Parameters<UnreserveParams>,
    ) -> std::result::Result<CallToolResult, ErrorData> {
        let call = Call::new(&["unreserve", "--json"], None)
            .words(["--"])
            .words(p.ports);
        self.json(call).await
    }

    #[tool(
        name = "stop",
        description = "Stop the servers this worktree runs on its ports (SIGTERM, then SIGKILL after grace seconds). Never stops a process of another worktree, repository or user: use this instead of killing whatever listens on a port. Same fields as `git ports stop --json`."
    )]
    async fn stop(
        &self,
        Parameters(p): Parameters<StopParams>,
    ) -> std::result::Result<CallToolResult, ErrorData> {
        let call = Call::new(&["stop", "--json"], p.place.repository.clone())
            .opt("--grace", p.grace)
            .worktree(&p.place)
            .words(["--"])
            .words(p.services);
        self.json(call).await
    }

    #[tool(
        name = "point",
        description = "Point the repository's origin, {repo}.localhost (served through `git ports proxy`), at the worktree, so a fixed URL (an OAuth redirect, a webhook) reaches it. Same fields as `git ports point --json`: {origin, worktree, path}."
    )]
    async fn point(
        &self,
        Parameters(p): Parameters<Place>,
    ) -> std::result::Result<CallToolResult, ErrorData> {
        let mut call = Call::new(&["point", "--json"], p.repository.clone());
        if let Some(w) = &p.worktree {
            call = call.words(["--", w.as_str()]);
        }
        self.json(call).await
    }

    #[tool(
        name = "doctor",
        description = "Check the registry, the machine-wide ledger, the hook and git config, and say how to fix each problem; with fix, repair what is safe. Same fields as `git ports doctor --json`."
    )]
    async fn doctor(
        &self,
        Parameters(p): Parameters<DoctorParams>,
    ) -> std::result::Result<CallToolResult, ErrorData> {
        let mut call = Call::new(&["doctor", "--json"], p.repository).flag("--fix", p.fix);
        // Problems found (4) and files that cannot be read (5) are answers.
        call.answers = &[0, 4, 5];
        self.json(call).await
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for Server {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("git-ports", env!("CARGO_PKG_VERSION")))
            .with_instructions(INSTRUCTIONS)
    }
}

/// Serves MCP on stdin and stdout until the client closes them.
pub fn serve() -> Result<()> {
    let exe = std::env::current_exe().map_err(|source| Error::Io {
        path: PathBuf::from("git-ports"),
        action: "cannot find the running binary",
        source,
    })?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|source| Error::Io {
            path: PathBuf::from("git-ports mcp"),
            action: "cannot start the runtime of",
            source,
        })?;
    let done = runtime.block_on(async move {
        let (ours, theirs) = tokio::io::duplex(1 << 16);
        let lines = tokio::spawn(relay(ours));
        let service = Server::new(exe)
            .serve(theirs)
            .await
            .map_err(|e| Error::Usage(format!("MCP session did not start: {e}")))?;
        let _ = service.waiting().await;
        let _ = lines.await;
        Ok(())
    });
    // A read of stdin still pending cannot be cancelled: the runtime does not wait for it.
    runtime.shutdown_background();
    done
}
