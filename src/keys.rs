//! Every name git-ports reads or writes: its files, its git config keys and the environment
//! variables it reads or sets, in one place.

/// The registry file, in the repository's common dir.
pub const REGISTRY_FILE: &str = "worktree-ports.json";
/// The machine-wide ledger, in `$GIT_PORTS_HOME` or the user's data directory.
pub const LEDGER_FILE: &str = "ledger.json";
/// The sidecar file every writer of the registry locks.
pub const LOCK_SUFFIX: &str = ".lock";
/// `ports.<service>.range`: a service's port range, `START-END`, bounds inclusive.
pub const KEY_RANGE: &str = "range";
/// `ports.<service>.ready`: `tcp` (the default) or `http[:PATH]`, how `wait` and the health
/// check tell the service is up.
pub const KEY_READY: &str = "ready";
/// `ports.<service>.leaseRange`: the ports `git ports lease` takes for the service,
/// `START-END` (default: the service's range).
pub const KEY_LEASE_RANGE: &str = "leaseRange";
/// `ports.<service>.scheme`: the URL scheme of the service's `<SERVICE>_URL` (`http`, `redis`,
/// `postgresql`, …), or `none` for no URL.
pub const KEY_SCHEME: &str = "scheme";
/// `ports.<service>.env`: the variable name `env` and `exec` use for a service.
pub const KEY_ENV: &str = "env";
/// `ports.autoAllocate`: services the post-checkout hook allocates to new worktrees.
pub const KEY_AUTO_ALLOCATE: &str = "ports.autoAllocate";
/// `ports.machineWide`: false keeps this repository out of the machine-wide ledger.
pub const KEY_MACHINE_WIDE: &str = "ports.machineWide";
/// `color.ports`, then `color.ui`: git's colour switches.
pub const KEY_COLOR: &str = "color.ports";
pub const KEY_COLOR_UI: &str = "color.ui";
/// `ports.sticky`: false turns off giving a worktree's name or branch its last ports back.
pub const KEY_STICKY: &str = "ports.sticky";
/// `ports.align`: one offset for all of a worktree's services (web 8000+k, api 9000+k, …).
pub const KEY_ALIGN: &str = "ports.align";
/// `ports.stableFirst`: the first port (or slot) tried comes from a stable hash of the
/// repository and the worktree's name, the same on every machine.
pub const KEY_STABLE_FIRST: &str = "ports.stableFirst";
/// `ports.reserveMain`: the range's first port (slot 0) is kept for the main worktree.
pub const KEY_RESERVE_MAIN: &str = "ports.reserveMain";
/// `GIT_PORTS_SLOT`: the variable `env` and `exec` export for an aligned worktree's offset.
pub const ENV_SLOT: &str = "GIT_PORTS_SLOT";
/// `ports.derived`: variables computed from a worktree's ports, `NAME=TEMPLATE` with
/// `{service}` for a port (multi-valued): `VITE_API_URL=http://localhost:{api}`.
pub const KEY_DERIVED: &str = "ports.derived";
/// `ports.exclude`: ports and ranges (`5432, 9000-9010`) never handed to a worktree, a lease
/// or the proxy (multi-valued).
pub const KEY_EXCLUDE: &str = "ports.exclude";
/// `ports.envFile`: files, relative to each worktree's root, kept in step with its ports
/// (multi-valued).
pub const KEY_ENV_FILE: &str = "ports.envFile";
pub const KEY_COMPOSE_FILE: &str = "ports.composeFile";
/// `ports.compose`: export a `COMPOSE_PROJECT_NAME` of the worktree's own.
pub const KEY_COMPOSE: &str = "ports.compose";
/// The variable docker compose takes its project name from.
pub const ENV_COMPOSE: &str = "COMPOSE_PROJECT_NAME";
/// `ports.hostTemplate`: the shape of a worktree's host name, `{worktree}.{repo}.localhost`
/// by default.
pub const KEY_HOST_TEMPLATE: &str = "ports.hostTemplate";
/// `ports.hostService`: the service a worktree's bare host name stands for (default web).
pub const KEY_HOST_SERVICE: &str = "ports.hostService";
/// What `env` appends to a service's name: `WEB_URL` (`http://localhost:8001`, which any
/// client on this machine reaches), `WEB_PUBLIC_HOST` and `WEB_PUBLIC_URL` (the worktree's own
/// name, for a browser).
pub const ENV_URL_SUFFIX: &str = "URL";
pub const ENV_PUBLIC_HOST_SUFFIX: &str = "PUBLIC_HOST";
pub const ENV_PUBLIC_URL_SUFFIX: &str = "PUBLIC_URL";
/// With `ports.https`: the proxy's certificate authority, for Node (which reads no system or
/// NSS store by default).
pub const ENV_NODE_CA: &str = "NODE_EXTRA_CA_CERTS";
/// `ports.hostVars`: false leaves the names (`<SERVICE>_PUBLIC_HOST`, `<SERVICE>_PUBLIC_URL`)
/// out of `env`, `exec` and env files (the `{host}` and `{public_url}` placeholders still
/// work).
pub const KEY_HOST_VARS: &str = "ports.hostVars";
/// `ports.https`: the URL variables a browser opens (`<SERVICE>_PUBLIC_URL`, `{public_url}`)
/// say `https://` (`wss://`) and go through `git ports proxy`, which serves HTTPS with the
/// local authority `git ports proxy trust` makes; `NODE_EXTRA_CA_CERTS` names the authority.
pub const KEY_HTTPS: &str = "ports.https";
/// `ports.proxyPort`: the port `git ports proxy` listens on (global git config).
pub const KEY_PROXY_PORT: &str = "ports.proxyPort";
/// The port `git ports proxy` listens on when `ports.proxyPort` is not set: outside every
/// default service range.
pub const DEFAULT_PROXY_PORT: u16 = 4480;
/// `ports.proxyTimeout`: seconds the proxy waits for a server's answer before a 504.
pub const KEY_PROXY_TIMEOUT: &str = "ports.proxyTimeout";
/// How long the proxy waits for a server's answer when `ports.proxyTimeout` is not set.
pub const DEFAULT_PROXY_TIMEOUT_SECS: f64 = 60.0;
/// `ports.lockTimeout`: seconds to wait for another git-ports to finish before giving up.
pub const KEY_LOCK_TIMEOUT: &str = "ports.lockTimeout";
/// How long to wait for a lock when `ports.lockTimeout` is not set.
pub const DEFAULT_LOCK_TIMEOUT_SECS: f64 = 10.0;
/// Who reads the hints: `mcp` when the MCP server runs a command for an agent, which acts
/// through tools, not a command line.
pub const ENV_AUDIENCE: &str = "GIT_PORTS_AUDIENCE";
/// Overrides the directory of the machine-wide ledger; must be absolute.
pub const ENV_HOME: &str = "GIT_PORTS_HOME";

/// Variables a port must never be exported as: `eval "$(git ports env)"` would break the
/// shell (`PATH`, `IFS`), change what programs load (`LD_PRELOAD`), or confuse git itself.
const RESERVED_ENV: &[&str] = &[
    "PATH",
    "HOME",
    "IFS",
    "SHELL",
    "USER",
    "LOGNAME",
    "PWD",
    "OLDPWD",
    "CDPATH",
    "ENV",
    "BASH_ENV",
    "PS1",
    "PS2",
    "PS4",
    "PROMPT_COMMAND",
    "SHELLOPTS",
    "BASHOPTS",
    "TERM",
    "TMPDIR",
    "LANG",
    "LANGUAGE",
    "TZ",
    "MAIL",
    "MAILPATH",
    "OPTIND",
    "OPTARG",
    "HISTFILE",
    "NODE_OPTIONS",
    "PYTHONPATH",
    "PYTHONHOME",
    "PERL5LIB",
    "RUBYOPT",
    "RUBYLIB",
];
const RESERVED_ENV_PREFIXES: &[&str] = &["LD_", "DYLD_", "GIT_", "LC_", "BASH_FUNC_", "SSH_"];

/// Whether a variable name is one git-ports refuses to set (see [`RESERVED_ENV`]).
pub fn is_reserved_env(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    RESERVED_ENV.contains(&upper.as_str())
        || RESERVED_ENV_PREFIXES.iter().any(|p| upper.starts_with(p))
}

/// `[A-Za-z_][A-Za-z0-9_]*`: what `env` will print as a variable name.
pub fn is_env_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some('A'..='Z' | 'a'..='z' | '_'))
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}
