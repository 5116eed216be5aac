//! `status --json`: the spec's schema, plus branch, path, stale, listeners and conflicts.

use super::*;

#[derive(Serialize)]
pub(super) struct Json {
    timestamp: String,
    total_allocations: usize,
    worktrees: Vec<JsonWorktree>,
    /// Live leases made from this repository's worktrees; absent when there are none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    leases: Vec<super::leases::LeaseRow>,
    /// The repository's origin and the worktree it points at, once it has a name.
    #[serde(skip_serializing_if = "Option::is_none")]
    origin: Option<Origin>,
    #[serde(skip_serializing_if = "Option::is_none")]
    summary: Option<Summary>,
}

/// `{repo}.localhost` and the worktree it serves.
#[derive(Serialize)]
pub(super) struct Origin {
    pub host: String,
    pub worktree: String,
}

#[derive(Serialize)]
pub(super) struct JsonWorktree {
    name: String,
    /// The checked-out branch; null when HEAD is detached or the worktree is stale.
    branch: Option<String>,
    detached: bool,
    path: String,
    stale: bool,
    /// With `ports.align`: the offset all its ports share, if they share one.
    #[serde(skip_serializing_if = "Option::is_none")]
    slot: Option<usize>,
    /// Its host name (`feature-x.shop.localhost`), once it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    host: Option<String>,
    ports: BTreeMap<String, JsonPort>,
}

#[derive(Serialize)]
pub(super) struct JsonPort {
    port: u16,
    allocated_at: String,
    /// `running`, `stopped`, `error`, or `stale` (not checked): only with --health-check.
    #[serde(skip_serializing_if = "Option::is_none")]
    health: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_time_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    /// Another repository holds this port too (`~/src/app (main)`): a conflict that
    /// `git ports doctor --fix` resolves. Absent when there is none.
    #[serde(skip_serializing_if = "Option::is_none")]
    also_held_by: Option<String>,
    /// With --health-check: who listens on the port (pid, command, cwd, and whose worktree
    /// that is), or null when nothing does.
    #[serde(skip_serializing_if = "Listening::unchecked")]
    listener: Listening,
}

/// Who listens on a port, as far as the command looked.
pub(super) enum Listening {
    /// No health check was asked for.
    Unchecked,
    Nobody,
    By(Box<Owner>),
}

impl Listening {
    fn unchecked(&self) -> bool {
        matches!(self, Listening::Unchecked)
    }
}

impl Serialize for Listening {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            Listening::By(o) => o.serialize(s),
            Listening::Unchecked | Listening::Nobody => s.serialize_none(),
        }
    }
}

pub(super) fn to_json(
    ctx: &Ctx,
    rows: Vec<Row>,
    summary: Option<Summary>,
    leases: Vec<super::leases::LeaseRow>,
    origin: Option<Origin>,
) -> Json {
    let checked = summary.is_some();
    let worktrees: Vec<JsonWorktree> = rows.into_iter().map(|r| json_row(r, checked)).collect();
    Json {
        timestamp: timestamp(&ctx.now),
        total_allocations: worktrees.iter().map(|w| w.ports.len()).sum(),
        worktrees,
        leases,
        origin,
        summary,
    }
}

pub(super) fn json_row(r: Row, checked: bool) -> JsonWorktree {
    let also = r.also.clone();
    let owners = r.owners.clone();
    let port = |(service, a, h): Port| {
        let health = match (&h, checked) {
            (Some(h), _) => Some(h.word()),
            (None, true) => Some("stale"),
            (None, false) => None,
        };
        let (response_time_ms, error) = match h {
            Some(Health::Running { ms }) => (Some((ms * 100.0).round() / 100.0), None),
            Some(Health::Stopped) => (None, Some("connection refused".to_string())),
            Some(Health::Error(e)) => (None, Some(e)),
            None => (None, None),
        };
        let listener = match (checked, owners.get(&a.port)) {
            (false, _) => Listening::Unchecked,
            (true, None) => Listening::Nobody,
            (true, Some(o)) => Listening::By(Box::new(o.clone())),
        };
        let p = JsonPort {
            listener,
            also_held_by: also.get(&a.port).cloned(),
            port: a.port,
            allocated_at: timestamp(&a.allocated_at),
            health,
            response_time_ms,
            error,
        };
        (service, p)
    };
    JsonWorktree {
        ports: r.ports.into_iter().map(port).collect(),
        name: r.name,
        branch: r.branch,
        detached: r.detached,
        path: r.path,
        stale: r.stale.is_some(),
        slot: r.slot,
        host: r.host,
    }
}
