//! `git ports wait`: block until a worktree's servers accept connections, within a bound.

use std::time::{Duration, Instant};

use super::Ctx;
use crate::cli::WaitArgs;
use crate::error::{Error, Result};
use crate::net::{self, Health};
use crate::output::Style;

/// How often the ports are tried again, at most.
const PAUSE: Duration = Duration::from_millis(50);

pub fn run(ctx: &mut Ctx, args: WaitArgs) -> Result<()> {
    let wt = ctx.repo.target(args.worktree.as_deref())?;
    let ports = ctx.held_ports(&wt, &args.services)?;
    if ports.is_empty() {
        return Err(Error::Usage(format!(
            "worktree '{}' holds no ports to wait for",
            wt.name
        )));
    }
    let ready: Vec<net::Ready> = ports
        .iter()
        .map(|(s, _)| ctx.repo.settings.ready(s))
        .collect::<Result<_>>()?;
    let start = Instant::now();
    let limit = Duration::from_secs_f64(args.timeout);
    let mut told = false;
    let mut waiting = ports.clone();
    loop {
        let left = limit.saturating_sub(start.elapsed());
        let try_for = left
            .min(Duration::from_millis(250))
            .max(Duration::from_millis(1));
        let numbers: Vec<u16> = waiting.iter().map(|p| p.1).collect();
        let mut health = net::check_all(&numbers, try_for);
        // A service that shows it is up by answering HTTP is waited for until it does.
        let mut http: Vec<(&mut Health, u16, String)> = health
            .iter_mut()
            .zip(&waiting)
            .filter_map(|(h, (_, p))| {
                let i = ports.iter().position(|(_, q)| q == p)?;
                match &ready[i] {
                    net::Ready::Http(path) => Some((h, *p, path.clone())),
                    net::Ready::Tcp => None,
                }
            })
            .collect();
        net::confirm_http(&mut http, try_for);
        let mut still = Vec::new();
        for (p, h) in waiting.into_iter().zip(health) {
            if !matches!(h, Health::Running { .. }) {
                still.push(p);
            }
        }
        waiting = still;
        // Each port with what it is waited for: a connection, or an HTTP answer.
        let how = |p: u16| {
            let i = ports.iter().position(|(_, q)| *q == p);
            match i.map(|i| &ready[i]) {
                Some(net::Ready::Http(_)) => "to answer HTTP",
                _ => "to accept connections",
            }
        };
        let waited = |ps: &[(String, u16)]| -> Vec<String> {
            ps.iter()
                .map(|(s, p)| format!("{s} ({p}) {}", how(*p)))
                .collect()
        };
        let never = |ps: &[(String, u16)]| -> Vec<String> {
            ps.iter()
                .map(|(s, p)| {
                    let what = match how(*p) {
                        "to answer HTTP" => "never answered HTTP",
                        _ => "never accepted a connection",
                    };
                    format!("{s} ({p}) {what}")
                })
                .collect()
        };
        if waiting.is_empty() {
            // A port served from outside the worktree is someone else's server, as `exec`
            // says: a test run against it would test the wrong code.
            let held: Vec<(u16, Option<std::path::PathBuf>)> = ports
                .iter()
                .map(|(_, p)| (*p, Some(wt.path.clone())))
                .collect();
            let owners = ctx.owners(&held);
            for (_, port) in &ports {
                let o = owners
                    .get(port)
                    .cloned()
                    .unwrap_or_else(crate::owner::Owner::unknown);
                if !o.is_own() {
                    return Err(Error::PortServedByOther {
                        port: *port,
                        who: o.describe(),
                    });
                }
            }
            let tick = ctx.out.paint("✓", Style::Good);
            for ((s, p), r) in ports.iter().zip(&ready) {
                let how = match r {
                    net::Ready::Http(path) => format!("answers HTTP ({path})"),
                    net::Ready::Tcp => "accepts connections".to_string(),
                };
                ctx.out.line(format!("{tick} {s} ({p}) {how}"));
            }
            return Ok(());
        }
        if start.elapsed() >= limit {
            return Err(Error::WaitTimeout {
                secs: args.timeout,
                ports: never(&waiting),
            });
        }
        if !told && start.elapsed() >= Duration::from_secs(1) {
            told = true;
            crate::output::notice(&format!(
                "waiting for {} (up to {}s)",
                waited(&waiting).join(", "),
                args.timeout
            ));
        }
        std::thread::sleep(PAUSE.min(limit.saturating_sub(start.elapsed())));
    }
}
