//! Policy: the rules that change a registry, run inside a locked change (`Ctx::update`) by
//! the commands. No command holds a rule another command needs; they all live here.

pub mod allocate;
pub mod availability;
pub mod lease;
pub mod memory;
#[cfg(test)]
mod properties;
pub mod prune;
pub mod release;
