//! The one integration-test binary: real git, real files, real sockets.

mod agents;
mod allocate;
mod anyrepo;
mod bad_input;
mod browser;
mod choice;
mod claims;
mod envfiles;
mod hostile;
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
mod workflow;
