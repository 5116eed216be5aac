//! `git ports unreserve PORT…`: give reserved ports back.

use serde::Serialize;

use super::Ctx;
use crate::cli::UnreserveArgs;
use crate::error::{Error, Result};

pub fn run(ctx: &mut Ctx, args: UnreserveArgs) -> Result<()> {
    let store = ctx.ledger.clone().ok_or(Error::LedgerOnly)?;
    let ports = super::unique_ports(&args.ports);
    crate::change::on_machine(
        &store,
        ctx.repo.settings.lock_timeout,
        ctx.start,
        crate::fault::Target::LedgerReserve,
        |ledger| {
            // Either every port is freed, or none is.
            if let Some(&port) = ports.iter().find(|p| !ledger.reserved.contains_key(p)) {
                let reserved: Vec<String> = ledger.reserved.keys().map(u16::to_string).collect();
                return Err(Error::NotReserved { port, reserved });
            }
            for port in &ports {
                ledger.reserved.remove(port);
            }
            Ok(())
        },
    )?;
    if args.json {
        #[derive(Serialize)]
        struct Report<'a> {
            unreserved: &'a [u16],
        }
        ctx.out.json(&Report { unreserved: &ports });
        return Ok(());
    }
    let tick = ctx.out.paint("✓", crate::output::Style::Good);
    for port in &ports {
        ctx.out
            .line(format!("{tick} Port {port} is no longer reserved"));
    }
    Ok(())
}
