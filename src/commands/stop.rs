//! `git ports stop`: stop the servers a worktree runs on its ports, and only those.

use std::time::Duration;

use serde::Serialize;

use super::Ctx;
use crate::cli::StopArgs;
use crate::error::{Error, Result};
use crate::owner::{Kind, Owner};
use crate::stop::{Ending, StoppedContainer, rest_of_stack, stop_owner};

/// One port of the worktree, and what was done about who serves it.
#[derive(Debug, Serialize)]
struct Stopped {
    service: String,
    port: u16,
    /// Who listens on it; absent when nothing does.
    #[serde(skip_serializing_if = "Option::is_none")]
    listener: Option<Owner>,
    /// What came of stopping it; absent when it was left alone (nothing listens, or the
    /// listener is not the worktree's own).
    #[serde(skip_serializing_if = "Option::is_none")]
    ending: Option<Ending>,
}

pub fn run(ctx: &mut Ctx, args: StopArgs) -> Result<()> {
    let wt = ctx.repo.target(args.worktree.as_deref())?;
    let ports = ctx.held_ports(&wt, &args.services)?;
    if ports.is_empty() {
        return Err(Error::Usage(format!(
            "worktree '{}' holds no ports: nothing to stop",
            wt.name
        )));
    }
    let grace = Duration::from_secs_f64(args.grace);
    let asked: Vec<(u16, Option<std::path::PathBuf>)> = ports
        .iter()
        .map(|(_, p)| (*p, Some(wt.path.clone())))
        .collect();
    let owners = ctx.owners(&asked);
    let mut done: Vec<Stopped> = Vec::new();
    for (service, port) in ports {
        let listener = owners.get(&port).cloned();
        // Only the worktree's own server, still in the worktree at the moment of the signal.
        let ending = listener
            .as_ref()
            .filter(|o| o.is_own() && crate::stop::still_in(o, &wt.path))
            .map(|o| stop_owner(o, grace));
        done.push(Stopped {
            service,
            port,
            listener,
            ending,
        });
    }
    // The rest of the worktree's compose stack, when every service is stopped.
    let stack = match args.services.is_empty() {
        true => {
            let stopped: Vec<&Owner> = done
                .iter()
                .filter(|d| d.ending.is_some())
                .filter_map(|d| d.listener.as_ref())
                .collect();
            rest_of_stack(&wt.path, &stopped, grace)
        }
        false => Vec::new(),
    };
    if args.json {
        #[derive(Serialize)]
        struct Report<'a> {
            worktree: &'a str,
            ports: &'a [Stopped],
            containers: &'a [StoppedContainer],
        }
        ctx.out.json(&Report {
            worktree: &wt.name,
            ports: &done,
            containers: &stack,
        });
        return Ok(());
    }
    for d in &done {
        let line = match (&d.listener, d.ending) {
            (None, _) => "nothing listens on it".to_string(),
            (Some(o), Some(e)) => {
                format!("{}: {}", o.process().unwrap_or_default(), e.describe(grace))
            }
            (Some(o), None) if o.owner == Kind::User && o.pid.is_some() => format!(
                "left alone: {} runs as another user",
                o.process().unwrap_or_default()
            ),
            (Some(o), None) => format!("left alone: served by {}", o.describe()),
        };
        ctx.out.line(format!("{} ({}): {line}", d.service, d.port));
    }
    for c in &stack {
        ctx.out.line(format!(
            "{}: {}",
            c.container.describe(),
            c.ending.describe(grace)
        ));
    }
    Ok(())
}
