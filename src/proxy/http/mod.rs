//! The proxy's HTTP surface: routes, the sign-in API, the WebSocket upgrade
//! that hands a connection to the relay, responses, and the web client's
//! files.

pub(crate) mod headers;
pub(crate) mod login;
pub(crate) mod response;
pub(crate) mod routes;
pub(crate) mod web;
pub(crate) mod websocket;
