//! The one integration-test binary: real git, real files, real sockets, under a harness that
//! says which tests did not run here, and why (`harness.rs`).

mod agents;
mod allocate;
mod anyrepo;
mod bad_input;
mod browser;
mod channels;
mod choice;
mod claims;
mod compose;
mod envfiles;
mod fences;
mod harness;
mod hostile;
mod https;
mod leases;
mod limits;
mod machine;
mod mcp;
mod newcomer;
mod owner;
mod ports;
mod promise;
mod proxy;
mod robust;
mod status;
mod support;
mod userfiles;
mod variables;
mod windows;
mod workflow;

include!(concat!(env!("OUT_DIR"), "/it_all.rs"));

fn main() {
    harness::main(all())
}

/// How many tests the binary has.
pub fn harness_count() -> usize {
    all().len()
}
