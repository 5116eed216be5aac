//! git-ports hands out development-server ports to git worktrees, so every checkout of a
//! project can run its servers side by side without collisions.

pub mod allocator;
pub mod block;
pub mod bytes;
pub mod change;
pub mod cli;
pub mod clock;
pub mod commands;
pub mod compose;
pub mod config;
pub mod derived;
pub mod envfile;
pub mod error;
pub mod fault;
pub mod hooks;
pub mod keys;
pub mod lease;
pub mod ledger;
pub mod machine;
pub mod mcp;
pub mod names;
pub mod net;
pub mod output;
pub mod owner;
pub mod policy;
pub mod proxy;
pub mod registry;
pub mod repo;
pub mod stop;
pub mod store;
pub mod userfile;
