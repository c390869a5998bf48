//! The WebSocket relay between a browser and its user's backend: the
//! handshakes, the registry of open relays, and the byte pumps.

pub(crate) mod bridge;
pub(crate) mod frames;
pub(crate) mod handshake;
pub(crate) mod pump;
pub(crate) mod registry;
