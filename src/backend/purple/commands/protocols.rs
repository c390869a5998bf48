//! `protocols`: the protocol plugins users may add accounts for.

use serde_json::json;

use super::super::handles::Protocol;
use super::super::{state, view};
use crate::backend::protocol::{OpResult, Params};

pub(super) fn list(_: &Params) -> OpResult {
    let out: Vec<_> = Protocol::all()
        .into_iter()
        .filter(|p| state::protocol_allowed(&p.id()))
        .map(view::protocol_json)
        .collect();
    Ok(json!({"protocols": out}))
}
