//! The operations clients call that act on libpurple (purple thread
//! only): one file per op or small family, and [`OPS`], the one table of
//! names that drives both [`dispatch`] and the server's list of ops.
//!
//! Commands validate every parameter before they call libpurple or write
//! anything, write the durable copy (the store) before they change
//! libpurple, and answer an error when the store refuses a write.

mod account;
mod buddy;
mod chat;
mod conversation;
mod protocols;
mod request;
mod status;

use serde_json::{Map, Value};

use crate::backend::protocol::{OpError, OpResult, Params};

type Command = fn(&Params) -> OpResult;

/// Every op the purple thread handles.
const OPS: &[(&str, Command)] = &[
    ("protocols", protocols::list),
    ("account.add", account::add),
    ("account.remove", account::remove),
    ("account.set_enabled", account::set_enabled),
    ("account.update", account::update),
    ("status.set", status::set),
    ("buddy.add", buddy::add),
    ("buddy.remove", buddy::remove),
    ("conversation.send", conversation::send),
    ("commands", conversation::commands),
    ("chat.join", chat::join),
    ("chat.leave", chat::leave),
    ("chat.topic", chat::topic),
    ("chat.invite", chat::invite),
    ("typing", conversation::typing),
    ("request.answer", request::answer),
];

/// Ops that reach an IM network or emit events, checked first like
/// `conversation.send` (which checks with its text's size itself): when the
/// state directory cannot keep what they cause they are refused
/// (`storage_full` / `internal`) and do nothing ("durable or refused").
const CHECKED: &[&str] = &[
    "account.add",
    "account.remove",
    "account.set_enabled",
    "account.update",
    "status.set",
    "buddy.add",
    "buddy.remove",
    "chat.join",
    "chat.leave",
    "chat.topic",
    "chat.invite",
    "request.answer",
];

/// Whether `op` is one of the purple thread's ops.
pub(crate) fn is_op(op: &str) -> bool {
    OPS.iter().any(|(name, _)| *name == op)
}

/// Runs `op` (purple thread).
pub(crate) fn dispatch(op: &str, params: &Map<String, Value>) -> OpResult {
    match OPS.iter().find(|(name, _)| *name == op) {
        Some((_, command)) => {
            if CHECKED.contains(&op) {
                super::state::hub()
                    .writable(0)
                    .map_err(super::accounts::store_failed)?;
            }
            command(&Params(params))
        }
        None => Err(OpError::new("unknown_op", format!("unknown op '{op}'"))),
    }
}

/// A non-empty text of at most `max` bytes without NUL.
fn check_text(s: &str, what: &str, max: usize) -> Result<(), OpError> {
    if s.is_empty() {
        return Err(OpError::bad_request(format!("'{what}' is empty")));
    }
    if s.len() > max {
        return Err(OpError::new(
            "too_long",
            format!("'{what}' is longer than {max} bytes"),
        ));
    }
    if s.contains('\0') {
        return Err(OpError::bad_request(format!("'{what}' contains NUL")));
    }
    Ok(())
}

/// The account named by the `account` parameter.
fn param_account(p: &Params) -> Result<super::handles::Account, OpError> {
    super::accounts::find(p.i64("account")?)
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_op_is_listed_once() {
        let mut names: Vec<&str> = super::OPS.iter().map(|(n, _)| *n).collect();
        let n = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), n);
        assert!(super::is_op("account.add"));
        assert!(super::CHECKED.iter().all(|op| super::is_op(op)));
        assert!(!super::is_op("hello"));
    }
}
