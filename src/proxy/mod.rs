//! `sapphire-proxy`: the public TLS edge. It accepts connections (from
//! systemd's sockets or its own), terminates TLS, serves the HTTP API and the
//! web client, and relays each signed-in user's WebSocket to their backend.
//!
//! Layers, bottom up (each module uses only those above it in this list):
//! `config`, `error`, `shutdown`, `edge`, `launcher`, `limits`, `admission`, `hashing`, `relay`, `state`, `http`,
//! `plain`, `server`, `demo`. See `docs/architecture.md`.

pub(crate) mod admission;
pub mod config;
pub mod demo;
mod edge;
mod error;
pub(crate) mod hashing;
pub(crate) mod http;
pub(crate) mod launcher;
pub(crate) mod limits;
mod plain;
pub(crate) mod relay;
mod server;
mod shutdown;
pub(crate) mod state;

pub use error::ProxyError;
pub use server::Proxy;
