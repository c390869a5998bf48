//! `request.answer {request, action, value?, fields?}`.
//!
//! Everything is checked before any callback runs or any field changes:
//! the request is open, the action exists, the value is valid, every field
//! value fits its field; and a fields answer that leaves a required field
//! empty changes nothing.

use std::ffi::c_int;

use serde_json::{json, Map, Value};

use super::super::handles::{FieldKind, RequestField, RequestFields};
use super::super::state::{self, Pending};
use super::super::{glue, requests};
use crate::backend::protocol::{OpError, OpResult, Params};

pub(super) fn answer(p: &Params) -> OpResult {
    let id = p.i64("request")?;
    let action = p.u64("action")? as usize;
    let (kind, pending, action_cb, values) = state::with(|s| {
        let e = s
            .requests
            .get(&id)
            .filter(|e| !e.answered)
            .ok_or_else(|| OpError::new("no_such_request", "no such open request"))?;
        let cb = match e.pending {
            Pending::Action => Some(
                *e.actions
                    .get(action)
                    .ok_or_else(|| OpError::bad_request("no such action"))?,
            ),
            _ if action > 1 => {
                return Err(OpError::bad_request("action must be 0 (ok) or 1 (cancel)"))
            }
            _ => None,
        };
        Ok((e.kind, e.pending, cb, e.values.clone()))
    })?;
    let ok = action == 0;

    // Validate and prepare before calling anything.
    let mut text = None;
    let mut choice_value = 0;
    match pending {
        Pending::Text { .. } if ok => text = Some(glue::cstring(p.str("value")?)),
        Pending::Choice { default, .. } => {
            choice_value = if ok {
                let v = c_int::try_from(p.i64("value")?)
                    .map_err(|_| OpError::bad_request("bad choice"))?;
                if !values.contains(&v) {
                    return Err(OpError::bad_request("value is not one of the choices"));
                }
                v
            } else {
                default
            };
        }
        Pending::Fields { fields, .. } => {
            let plan = match p.object("fields")? {
                Some(values) => plan_fields(fields, values)?,
                None => Vec::new(),
            };
            set_fields(fields, plan, ok)?;
        }
        _ => {}
    }

    state::with(|s| {
        if let Some(e) = s.requests.get_mut(&id) {
            e.answered = true;
        }
    });
    match pending {
        Pending::Action => {
            if let Some(Some(cb)) = action_cb {
                cb.call(action as c_int);
            }
        }
        Pending::Text { ok: yes, cancel } => {
            if let Some(cb) = if ok { yes } else { cancel } {
                cb.call(text.as_deref());
            }
        }
        Pending::Choice {
            ok: yes, cancel, ..
        } => {
            if let Some(cb) = if ok { yes } else { cancel } {
                cb.call(choice_value);
            }
        }
        Pending::Fields {
            ok: yes,
            cancel,
            fields,
        } => {
            if let Some(cb) = if ok { yes } else { cancel } {
                cb.call(fields);
            }
        }
        Pending::Authorize { allow, deny } => {
            if let Some(cb) = if ok { allow } else { deny } {
                cb.call();
            }
        }
    }
    requests::close_answered(id, kind);
    Ok(json!({}))
}

/// A value for one field.
#[derive(Debug, Clone, PartialEq)]
enum FieldValue {
    Str(Option<String>),
    Int(c_int),
    Bool(bool),
    Choice(c_int),
    List(Vec<String>),
}

fn current(f: RequestField) -> Option<FieldValue> {
    Some(match f.kind() {
        FieldKind::String => FieldValue::Str(f.string_value()),
        FieldKind::Integer => FieldValue::Int(f.int_value()),
        FieldKind::Boolean => FieldValue::Bool(f.bool_value()),
        FieldKind::Choice => FieldValue::Choice(f.choice_value()),
        FieldKind::List => FieldValue::List(f.list_selected()),
        _ => return None,
    })
}

fn set(f: RequestField, v: &FieldValue) {
    match v {
        FieldValue::Str(s) => f.set_string(s.as_deref().unwrap_or("")),
        FieldValue::Int(i) => f.set_int(*i),
        FieldValue::Bool(b) => f.set_bool(*b),
        FieldValue::Choice(c) => f.set_choice(*c),
        FieldValue::List(items) => f.set_list_selected(items),
    }
}

/// Checks every value against its field; changes nothing.
fn plan_fields(
    fields: RequestFields,
    values: &Map<String, Value>,
) -> Result<Vec<(RequestField, FieldValue)>, OpError> {
    let mut plan = Vec::with_capacity(values.len());
    for (key, value) in values {
        let f = fields
            .field(key)
            .ok_or_else(|| OpError::bad_request(format!("no field '{key}'")))?;
        let bad = || OpError::bad_request(format!("bad value for field '{key}'"));
        let v = match f.kind() {
            FieldKind::String => FieldValue::Str(Some(value.as_str().ok_or_else(bad)?.to_owned())),
            FieldKind::Integer => FieldValue::Int(
                value
                    .as_i64()
                    .and_then(|v| c_int::try_from(v).ok())
                    .ok_or_else(bad)?,
            ),
            FieldKind::Boolean => FieldValue::Bool(value.as_bool().ok_or_else(bad)?),
            FieldKind::Choice => {
                let n = f.choice_labels().len();
                let v = value
                    .as_u64()
                    .filter(|v| (*v as usize) < n)
                    .ok_or_else(bad)?;
                FieldValue::Choice(v as c_int)
            }
            FieldKind::List => {
                let items = f.list_items();
                let wanted = value
                    .as_array()
                    .ok_or_else(bad)?
                    .iter()
                    .map(|v| {
                        v.as_str()
                            .filter(|s| items.iter().any(|i| i == s))
                            .map(str::to_owned)
                            .ok_or_else(bad)
                    })
                    .collect::<Result<_, _>>()?;
                FieldValue::List(wanted)
            }
            _ => return Err(OpError::bad_request(format!("field '{key}' cannot be set"))),
        };
        plan.push((f, v));
    }
    Ok(plan)
}

/// Sets the planned values; for an OK answer that leaves a required field
/// empty, puts the old values back and refuses.
fn set_fields(
    fields: RequestFields,
    plan: Vec<(RequestField, FieldValue)>,
    ok: bool,
) -> Result<(), OpError> {
    let old: Vec<(RequestField, FieldValue)> = plan
        .iter()
        .filter_map(|(f, _)| Some((*f, current(*f)?)))
        .collect();
    for (f, v) in &plan {
        set(*f, v);
    }
    if ok && !fields.all_required_filled() {
        for (f, v) in old.iter().rev() {
            set(*f, v);
        }
        return Err(OpError::new(
            "required_missing",
            "a required field is empty",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::purple::ffi;

    /// Builds `{name: string (required), port: integer}` fields; libpurple's
    /// request fields are plain data (no core needed).
    fn fields() -> RequestFields {
        // SAFETY: new, empty fields.
        let fields = unsafe { ffi::purple_request_fields_new() };
        // SAFETY: a new group with a static title.
        let group = unsafe { ffi::purple_request_field_group_new(c"g".as_ptr()) };
        // SAFETY: adding our new group to our new fields.
        unsafe { ffi::purple_request_fields_add_group(fields, group) };
        // SAFETY: a new string field with static strings.
        let name = unsafe {
            ffi::purple_request_field_string_new(
                c"name".as_ptr(),
                c"Name".as_ptr(),
                c"old".as_ptr(),
                ffi::GFALSE,
            )
        };
        // SAFETY: our new field.
        unsafe { ffi::purple_request_field_set_required(name, ffi::GTRUE) };
        // SAFETY: adding it to our group.
        unsafe { ffi::purple_request_field_group_add_field(group, name) };
        // SAFETY: a new integer field with static strings.
        let port =
            unsafe { ffi::purple_request_field_int_new(c"port".as_ptr(), c"Port".as_ptr(), 5) };
        // SAFETY: adding it to our group.
        unsafe { ffi::purple_request_field_group_add_field(group, port) };
        // SAFETY: the fields we just made, used only in this test.
        unsafe { RequestFields::from_ptr(fields) }.unwrap()
    }

    fn values(f: RequestFields) -> (Option<String>, c_int) {
        let name = f.field("name").unwrap().string_value();
        (name, f.field("port").unwrap().int_value())
    }

    fn answer(f: RequestFields, v: Value, ok: bool) -> Result<(), OpError> {
        let plan = plan_fields(f, v.as_object().unwrap())?;
        set_fields(f, plan, ok)
    }

    #[test]
    fn a_bad_field_value_changes_no_field() {
        let f = fields();
        let r = answer(f, json!({"name": "new", "port": "many"}), true);
        assert_eq!(r.unwrap_err().code, "bad_request");
        assert_eq!(values(f), (Some("old".into()), 5));
        let r = answer(f, json!({"port": 6, "nosuch": 1}), true);
        assert_eq!(r.unwrap_err().code, "bad_request");
        assert_eq!(values(f), (Some("old".into()), 5));
        f.destroy();
    }

    #[test]
    fn a_missing_required_field_changes_no_field() {
        let f = fields();
        let r = answer(f, json!({"port": 6, "name": ""}), true);
        assert_eq!(r.unwrap_err().code, "required_missing");
        assert_eq!(values(f), (Some("old".into()), 5));
        answer(f, json!({"port": 6, "name": "new"}), true).unwrap();
        assert_eq!(values(f), (Some("new".into()), 6));
        f.destroy();
    }
}
