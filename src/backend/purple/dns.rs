//! DNS resolution for libpurple on a helper thread.
//!
//! libpurple's own resolver forks a child process, which is unsafe in a
//! multi-threaded process. These UI operations resolve with the system
//! resolver on a short-lived thread and hand the result back to the purple
//! thread, unless libpurple cancelled the query meanwhile.

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::{SocketAddr, ToSocketAddrs};

use super::{ffi, glue, invoke};

thread_local! {
    /// Queries in flight: query pointer -> generation.
    static ACTIVE: RefCell<HashMap<usize, u64>> = RefCell::new(HashMap::new());
    static NEXT: std::cell::Cell<u64> = const { std::cell::Cell::new(1) };
}

unsafe extern "C" fn resolve_host(
    query: *mut ffi::PurpleDnsQueryData,
    resolved_cb: ffi::PurpleDnsQueryResolvedCallback,
    failed_cb: ffi::PurpleDnsQueryFailedCallback,
) -> ffi::gboolean {
    let host = unsafe { glue::string(ffi::purple_dnsquery_get_host(query)) };
    let port = unsafe { ffi::purple_dnsquery_get_port(query) };
    let generation = NEXT.with(|n| {
        let g = n.get();
        n.set(g + 1);
        g
    });
    let key = query as usize;
    ACTIVE.with(|a| a.borrow_mut().insert(key, generation));
    let spawned = std::thread::Builder::new()
        .name("dns".into())
        .spawn(move || {
            let result: Result<Vec<SocketAddr>, String> = (host.as_str(), port)
                .to_socket_addrs()
                .map(|it| it.collect())
                .map_err(|e| format!("cannot resolve {host}: {e}"));
            invoke(move || {
                let current = ACTIVE.with(|a| a.borrow().get(&key).copied());
                if current != Some(generation) {
                    return; // cancelled (destroy was called)
                }
                ACTIVE.with(|a| a.borrow_mut().remove(&key));
                let query = key as *mut ffi::PurpleDnsQueryData;
                match result {
                    Ok(addrs) if !addrs.is_empty() => {
                        let list = unsafe { hosts_list(&addrs) };
                        if let Some(cb) = resolved_cb {
                            unsafe { cb(query, list) };
                        }
                    }
                    Ok(_) => fail(query, failed_cb, "no address found"),
                    Err(e) => fail(query, failed_cb, &e),
                }
            });
        });
    if spawned.is_err() {
        ACTIVE.with(|a| a.borrow_mut().remove(&key));
        return ffi::GFALSE;
    }
    ffi::GTRUE
}

fn fail(query: *mut ffi::PurpleDnsQueryData, cb: ffi::PurpleDnsQueryFailedCallback, msg: &str) {
    let msg = glue::cstring(msg);
    if let Some(cb) = cb {
        unsafe { cb(query, msg.as_ptr()) };
    }
}

/// libpurple's result list: alternating `GINT_TO_POINTER(addrlen)` and a
/// g_malloc'd `struct sockaddr` (libpurple frees both).
unsafe fn hosts_list(addrs: &[SocketAddr]) -> *mut ffi::GSList {
    let mut list: *mut ffi::GSList = std::ptr::null_mut();
    for addr in addrs {
        let (ptr, len) = match addr {
            SocketAddr::V4(a) => {
                let mut sa: libc::sockaddr_in = unsafe { std::mem::zeroed() };
                sa.sin_family = libc::AF_INET as libc::sa_family_t;
                sa.sin_port = a.port().to_be();
                sa.sin_addr.s_addr = u32::from_ne_bytes(a.ip().octets());
                let len = std::mem::size_of::<libc::sockaddr_in>();
                (copy_to_glib(&sa as *const _ as *const u8, len), len)
            }
            SocketAddr::V6(a) => {
                let mut sa: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
                sa.sin6_family = libc::AF_INET6 as libc::sa_family_t;
                sa.sin6_port = a.port().to_be();
                sa.sin6_addr.s6_addr = a.ip().octets();
                sa.sin6_flowinfo = a.flowinfo();
                sa.sin6_scope_id = a.scope_id();
                let len = std::mem::size_of::<libc::sockaddr_in6>();
                (copy_to_glib(&sa as *const _ as *const u8, len), len)
            }
        };
        unsafe {
            list = ffi::g_slist_append(list, len as ffi::gpointer);
            list = ffi::g_slist_append(list, ptr);
        }
    }
    list
}

fn copy_to_glib(src: *const u8, len: usize) -> ffi::gpointer {
    unsafe {
        let dst = ffi::g_malloc(len);
        std::ptr::copy_nonoverlapping(src, dst as *mut u8, len);
        dst
    }
}

unsafe extern "C" fn destroy(query: *mut ffi::PurpleDnsQueryData) {
    ACTIVE.with(|a| a.borrow_mut().remove(&(query as usize)));
}

static mut DNS_OPS: ffi::PurpleDnsQueryUiOps = ffi::PurpleDnsQueryUiOps {
    resolve_host: Some(resolve_host),
    destroy: Some(destroy),
    _purple_reserved1: None,
    _purple_reserved2: None,
    _purple_reserved3: None,
    _purple_reserved4: None,
};

/// # Safety
/// Purple thread only.
pub unsafe fn install() {
    unsafe { ffi::purple_dnsquery_set_ui_ops(std::ptr::addr_of_mut!(DNS_OPS)) };
}
