//! `git ports reserve PORT… [--reason TEXT]`: fence ports off machine-wide.

use serde::Serialize;

use super::Ctx;
use crate::cli::ReserveArgs;
use crate::error::{Error, Result};
use crate::ledger::Reservation;

#[derive(Debug, Serialize)]
struct Reserved {
    port: u16,
    reason: Option<String>,
    /// Something listens on it now (a program of this machine's, which is what a
    /// reservation is often for).
    in_use: bool,
}

pub fn run(ctx: &mut Ctx, args: ReserveArgs) -> Result<()> {
    let store = ctx.ledger.clone().ok_or(Error::LedgerOnly)?;
    let proxy = crate::proxy::running(&store).map(|s| s.port);
    let reason = args.reason.clone().filter(|r| !r.trim().is_empty());
    let now = ctx.now;
    let ports = super::unique_ports(&args.ports);
    crate::change::on_machine(
        &store,
        ctx.repo.settings.lock_timeout,
        ctx.start,
        crate::fault::Target::LedgerReserve,
        |ledger| {
            // Claims nobody backs any more are no obstacle.
            ledger.mend(std::path::Path::new(""));
            for &port in &ports {
                if let Some(c) = ledger.ports.get(&port) {
                    return Err(Error::PortHeldElsewhere {
                        port,
                        holder: c.describe(),
                    });
                }
                if proxy == Some(port) {
                    return Err(Error::PortFenced {
                        port,
                        fence: crate::config::Fence::Proxy,
                    });
                }
            }
            for &port in &ports {
                ledger.reserved.insert(
                    port,
                    Reservation {
                        reason: reason.clone(),
                        at: now,
                    },
                );
            }
            Ok(())
        },
    )?;
    let done: Vec<Reserved> = ports
        .iter()
        .map(|&port| Reserved {
            port,
            reason: reason.clone(),
            in_use: crate::net::in_use(port),
        })
        .collect();
    if args.json {
        #[derive(Serialize)]
        struct Report<'a> {
            reserved: &'a [Reserved],
        }
        ctx.out.json(&Report { reserved: &done });
        return Ok(());
    }
    let tick = ctx.out.paint("✓", crate::output::Style::Good);
    for r in &done {
        let why = r
            .reason
            .as_ref()
            .map(|r| format!(": {r}"))
            .unwrap_or_default();
        let busy = if r.in_use {
            " (something listens on it now)"
        } else {
            ""
        };
        ctx.out
            .line(format!("{tick} Reserved port {}{why}{busy}", r.port));
    }
    Ok(())
}
