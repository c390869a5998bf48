//! The table of open requests (prompts): opening one emits `request.open`
//! and records how to answer it; closing one emits `request.close`. Used
//! by the request UI ops (which open and close) and by `request.answer`.

use super::state::{self, PendingRequest};
use super::{events, handles};
use crate::backend::event::{Event, RequestOpen};

/// Emits `request.open` (the event's `seq` is the request id) and records
/// the request; returns its id, or `None` if the event could not be stored
/// (then libpurple treats the request as not shown).
pub(crate) fn open(make: impl FnOnce(u64) -> RequestOpen, entry: PendingRequest) -> Option<i64> {
    match events::emit_with(|seq| Event::RequestOpen(make(seq))) {
        Ok(id) => {
            let id = id as i64;
            state::with(|s| s.requests.insert(id, entry));
            Some(id)
        }
        Err(e) => {
            tracing::error!("cannot store request: {e}");
            None
        }
    }
}

/// The request is closed (by libpurple, or answered): forgets it, frees
/// its fields and emits `request.close`.
pub(crate) fn closed(id: i64) {
    let Some(entry) = state::with(|s| s.requests.remove(&id)) else {
        return;
    };
    if let state::Pending::Fields { fields, .. } = entry.pending {
        fields.destroy();
    }
    events::emit(Event::RequestClose {
        request: id,
        answered: Some(entry.answered),
        reason: None,
    });
}

/// Closes a request after its answer: libpurple's own requests through
/// libpurple (which calls `close_request`, unless the callback already
/// closed it), account requests directly.
pub(crate) fn close_answered(id: i64, kind: Option<super::ffi::PurpleRequestType>) {
    match kind {
        Some(kind) => handles::close_request(kind, id),
        None => closed(id),
    }
}
