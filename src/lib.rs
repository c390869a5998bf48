//! Sapphire: a self-hosted, multi-user web chat system.
//!
//! The crate holds the library behind three thin binaries:
//! `sapphire-proxy` (the public TLS edge), `sapphire-backend` (one libpurple
//! daemon per user) and `sapphire-ctl` (the admin CLI). See
//! `ARCHITECTURE`-level notes in `README.md` and `docs/`.

#![deny(
    clippy::undocumented_unsafe_blocks,
    clippy::multiple_unsafe_ops_per_block
)]

pub mod accounts;
pub mod acme;
pub mod backend;
pub mod fsutil;
pub mod logging;
pub mod proxy;
pub mod ratelimit;
pub mod session;
pub mod tls;
pub mod units;
pub mod username;
