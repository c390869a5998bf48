//! The edge runtime: where every new connection is served until it becomes
//! a relay — its TLS handshake, its HTTP requests, sign-ins and their
//! argon2 hashes (on this runtime's blocking threads). The process's main
//! runtime keeps the accept loop (cheap: the per-address admission check
//! refuses before any TLS work), the timers and signals, and the relays of
//! signed-in users.
//!
//! Why two runtimes (issue #11): on one runtime a relay's frame waited in
//! a worker's run queue behind strangers' key exchanges and hashes, so a
//! sign-in flood raised every connected user's latency. On its own worker
//! threads the relay is scheduled by the kernel, which runs a thread that
//! wakes for a short frame ahead of one that has been busy with a flood
//! for a while; and the edge's threads run at a lower CPU priority (nice
//! +`EDGE_NICE` relative to the process) where the kernel allows it, so
//! that under a flood the relays get most of the CPU and new connections
//! the rest. Figures in docs/benchmarks.md ("Sign-ins under attack").
//!
//! I/O registered by the main runtime (the accepted TCP stream) may be
//! polled here and the other way round: tokio's drivers wake whichever task
//! polls. A stream that outlives its task's runtime must be registered with
//! the runtime that will poll it for good: the relay re-registers the
//! backend's socket on the main runtime (`relay::bridge`).

use std::sync::atomic::{AtomicBool, Ordering};

use tokio::runtime::{Builder, Handle, Runtime};
use tracing::{debug, info};

/// How much nicer than the process the edge's threads are: at nice +10 a
/// busy thread gets about a tenth of the CPU a nice-0 one competing with it
/// gets (the kernel's weights 110 and 1024).
pub(crate) const EDGE_NICE: i32 = 10;

pub(crate) struct Edge {
    runtime: Option<Runtime>,
}

impl Edge {
    /// Starts the edge's worker threads, one per core.
    pub(crate) fn start() -> std::io::Result<Edge> {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        // Relative to the thread starting the edge (the process's priority),
        // set as an absolute value: a blocking thread that an edge thread
        // starts inherits the edge's priority and must not be lowered again.
        let nice = rustix::process::getpriority_process(None).map(|now| (now + EDGE_NICE).min(19));
        let runtime = Builder::new_multi_thread()
            .worker_threads(cores)
            .thread_name("sapphire-edge")
            .on_thread_start(move || lower_this_threads_priority(&nice))
            .enable_all()
            .build()?;
        Ok(Edge {
            runtime: Some(runtime),
        })
    }

    pub(crate) fn handle(&self) -> &Handle {
        self.runtime.as_ref().expect("running").handle()
    }
}

impl Drop for Edge {
    fn drop(&mut self) {
        // Dropping a runtime from async code would block (and panic): what
        // is still running on the edge after the proxy's graceful shutdown
        // is abandoned, as the process is about to exit anyway.
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

/// Sets the calling thread's nice value to `nice` (the process's plus
/// `EDGE_NICE`). Where the system call is refused (a seccomp filter that
/// denies the `@resources` group with EPERM) the thread keeps the
/// process's priority: the separate runtime still keeps relays out of the
/// edge's run queues.
fn lower_this_threads_priority(nice: &rustix::io::Result<i32>) {
    static SAID: AtomicBool = AtomicBool::new(false);
    let result = nice.and_then(|nice| {
        rustix::process::setpriority_process(Some(rustix::thread::gettid()), nice).map(|()| nice)
    });
    if SAID.swap(true, Ordering::Relaxed) {
        return;
    }
    match result {
        Ok(nice) => debug!("edge threads run at nice {nice}"),
        Err(e) => info!("edge threads keep the process's CPU priority: {e}"),
    }
}
