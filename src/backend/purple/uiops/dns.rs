//! DNS resolution for libpurple on a helper thread.
//!
//! libpurple's own resolver forks a child process, which is unsafe in a
//! multi-threaded process. These UI operations resolve with the system
//! resolver on a short-lived thread and hand the result back to the purple
//! thread, unless libpurple cancelled the query meanwhile.

use std::net::{SocketAddr, ToSocketAddrs};

use super::super::ffi;
use super::super::handles::{DnsCallbacks, DnsQuery};
use super::super::invoke::invoke;
use super::super::state::{self, DnsEntry};

unsafe extern "C" fn resolve_host(
    query: *mut ffi::PurpleDnsQueryData,
    resolved_cb: ffi::PurpleDnsQueryResolvedCallback,
    failed_cb: ffi::PurpleDnsQueryFailedCallback,
) -> ffi::gboolean {
    // SAFETY: libpurple's live query, in flight until `destroy`.
    let Some(query) = (unsafe { DnsQuery::from_ptr(query) }) else {
        return ffi::GFALSE;
    };
    // SAFETY: the query's own callbacks, called only while it is in flight
    // (the generation check below).
    let callbacks = unsafe { DnsCallbacks::new(resolved_cb, failed_cb) };
    let (host, port, key) = (query.host(), query.port(), query.key());
    let generation = state::with(|s| {
        let g = s.next_dns;
        s.next_dns += 1;
        s.dns.insert(
            key,
            DnsEntry {
                generation: g,
                callbacks,
            },
        );
        g
    });
    let spawned = std::thread::Builder::new()
        .name("dns".into())
        .spawn(move || {
            let result: Result<Vec<SocketAddr>, String> = (host.as_str(), port)
                .to_socket_addrs()
                .map(|it| it.collect())
                .map_err(|e| format!("cannot resolve {host}: {e}"));
            invoke(move || finish(key, generation, result));
        });
    if spawned.is_err() {
        state::with(|s| s.dns.remove(&key));
        return ffi::GFALSE;
    }
    ffi::GTRUE
}

/// On the purple thread: hands the result to libpurple unless the query
/// was destroyed meanwhile.
fn finish(key: usize, generation: u64, result: Result<Vec<SocketAddr>, String>) {
    let entry = state::with(|s| match s.dns.get(&key) {
        Some(e) if e.generation == generation => s.dns.remove(&key),
        _ => None,
    });
    let Some(entry) = entry else {
        return; // cancelled (destroy was called)
    };
    // SAFETY: the query is still in flight: `destroy` removes its entry,
    // and the entry (same generation) was still there.
    let Some(query) = (unsafe { DnsQuery::from_ptr(key as *mut ffi::PurpleDnsQueryData) }) else {
        return;
    };
    match result {
        Ok(addrs) if !addrs.is_empty() => entry.callbacks.resolved(query, &addrs),
        Ok(_) => entry.callbacks.failed(query, "no address found"),
        Err(e) => entry.callbacks.failed(query, &e),
    }
}

unsafe extern "C" fn destroy(query: *mut ffi::PurpleDnsQueryData) {
    state::with(|s| s.dns.remove(&(query as usize)));
}

static mut DNS_OPS: ffi::PurpleDnsQueryUiOps = ffi::PurpleDnsQueryUiOps {
    resolve_host: Some(resolve_host),
    destroy: Some(destroy),
    _purple_reserved1: None,
    _purple_reserved2: None,
    _purple_reserved3: None,
    _purple_reserved4: None,
};

pub(super) fn install() {
    let ops = &raw mut DNS_OPS;
    // SAFETY: a static that lives for the process; libpurple only reads it.
    unsafe { ffi::purple_dnsquery_set_ui_ops(ops) };
}
