//! libpurple requests (prompts) forwarded to the clients.
//!
//! Every request kind libpurple has (input, choice, action, fields, file,
//! folder) becomes a `request.open` event; any client may answer it with
//! `request.answer`. Nothing is ever answered with its default on the
//! user's behalf: an untrusted-certificate prompt (default "Accept") waits
//! for a person. The request id is the `seq` of its `request.open` event.

use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::{c_char, c_int, c_void};

use serde_json::{json, Map, Value};

use super::ops::account_id;
use super::{ffi, glue, hub};
use crate::backend::protocol::{OpError, OpResult, Params};

#[derive(Clone, Copy)]
enum Pending {
    Input {
        ok: ffi::GCallback,
        cancel: ffi::GCallback,
    },
    Choice {
        ok: ffi::GCallback,
        cancel: ffi::GCallback,
        default: c_int,
    },
    Action,
    Fields {
        ok: ffi::GCallback,
        cancel: ffi::GCallback,
        fields: *mut ffi::PurpleRequestFields,
    },
    File {
        ok: ffi::GCallback,
        cancel: ffi::GCallback,
    },
    /// A contact asks to see our presence (account UI ops).
    Authorize {
        allow: ffi::PurpleAccountRequestAuthorizationCb,
        deny: ffi::PurpleAccountRequestAuthorizationCb,
    },
}

struct Entry {
    /// libpurple's request type (`None` for account requests).
    kind: Option<ffi::PurpleRequestType>,
    pending: Pending,
    user_data: *mut c_void,
    /// For action requests: one callback per action.
    actions: Vec<ffi::GCallback>,
    /// Valid values for choice requests.
    values: Vec<c_int>,
    answered: bool,
}

thread_local! {
    static PENDING: RefCell<HashMap<i64, Entry>> = RefCell::new(HashMap::new());
}

fn opt(p: *const c_char) -> Value {
    unsafe { glue::opt_string(p) }.map_or(Value::Null, Value::String)
}

/// Emits `request.open` and records the entry; returns libpurple's handle.
#[allow(clippy::too_many_arguments)]
fn open(
    kind_name: &str,
    title: *const c_char,
    primary: *const c_char,
    secondary: *const c_char,
    account: *mut ffi::PurpleAccount,
    who: *const c_char,
    mut extra: Map<String, Value>,
    entry: Entry,
) -> *mut c_void {
    extra.insert("op".into(), json!("request.open"));
    extra.insert("kind".into(), json!(kind_name));
    extra.insert("title".into(), opt(title));
    extra.insert("primary".into(), opt(primary));
    extra.insert("secondary".into(), opt(secondary));
    if !account.is_null() {
        extra.insert("account".into(), json!(unsafe { account_id(account) }));
    }
    if !who.is_null() {
        extra.insert("who".into(), opt(who));
    }
    let result = hub().emit_with(move |seq| {
        extra.insert("request".into(), json!(seq));
        Value::Object(extra)
    });
    match result {
        Ok(id) => {
            let id = id as i64;
            PENDING.with(|p| p.borrow_mut().insert(id, entry));
            id as usize as *mut c_void
        }
        Err(e) => {
            tracing::error!("cannot store request: {e}");
            // NULL: libpurple treats the request as not shown.
            std::ptr::null_mut()
        }
    }
}

fn ok_cancel(ok_text: *const c_char, cancel_text: *const c_char) -> Value {
    let ok = unsafe { glue::opt_string(ok_text) }.unwrap_or_else(|| "OK".into());
    let cancel = unsafe { glue::opt_string(cancel_text) }.unwrap_or_else(|| "Cancel".into());
    json!([{"id": 0, "label": ok}, {"id": 1, "label": cancel}])
}

unsafe extern "C" fn request_input(
    title: *const c_char,
    primary: *const c_char,
    secondary: *const c_char,
    default_value: *const c_char,
    multiline: ffi::gboolean,
    masked: ffi::gboolean,
    hint: *mut c_char,
    ok_text: *const c_char,
    ok_cb: ffi::GCallback,
    cancel_text: *const c_char,
    cancel_cb: ffi::GCallback,
    account: *mut ffi::PurpleAccount,
    who: *const c_char,
    _conv: *mut ffi::PurpleConversation,
    user_data: *mut c_void,
) -> *mut c_void {
    let mut extra = Map::new();
    extra.insert("actions".into(), ok_cancel(ok_text, cancel_text));
    extra.insert("default_value".into(), opt(default_value));
    extra.insert("multiline".into(), json!(multiline != 0));
    extra.insert("masked".into(), json!(masked != 0));
    extra.insert("hint".into(), opt(hint));
    let entry = Entry {
        kind: Some(ffi::PURPLE_REQUEST_INPUT),
        pending: Pending::Input {
            ok: ok_cb,
            cancel: cancel_cb,
        },
        user_data,
        actions: Vec::new(),
        values: Vec::new(),
        answered: false,
    };
    open(
        "input", title, primary, secondary, account, who, extra, entry,
    )
}

/// Called by the C shim with the `va_list` choices as arrays.
#[no_mangle]
unsafe extern "C" fn sapphire_request_choice_rs(
    title: *const c_char,
    primary: *const c_char,
    secondary: *const c_char,
    default_value: c_int,
    ok_text: *const c_char,
    ok_cb: ffi::GCallback,
    cancel_text: *const c_char,
    cancel_cb: ffi::GCallback,
    account: *mut ffi::PurpleAccount,
    who: *const c_char,
    _conv: *mut ffi::PurpleConversation,
    user_data: *mut c_void,
    count: usize,
    texts: *const *const c_char,
    values: *const c_int,
) -> *mut c_void {
    let mut choices = Vec::with_capacity(count);
    let mut vals = Vec::with_capacity(count);
    for i in 0..count {
        let (text, value) = unsafe { (*texts.add(i), *values.add(i)) };
        choices.push(json!({"value": value, "label": unsafe { glue::string(text) }}));
        vals.push(value);
    }
    let mut extra = Map::new();
    extra.insert("actions".into(), ok_cancel(ok_text, cancel_text));
    extra.insert("choices".into(), Value::Array(choices));
    extra.insert("default".into(), json!(default_value));
    let entry = Entry {
        kind: Some(ffi::PURPLE_REQUEST_CHOICE),
        pending: Pending::Choice {
            ok: ok_cb,
            cancel: cancel_cb,
            default: default_value,
        },
        user_data,
        actions: Vec::new(),
        values: vals,
        answered: false,
    };
    open(
        "choice", title, primary, secondary, account, who, extra, entry,
    )
}

/// Called by the C shim with the `va_list` actions as arrays.
#[no_mangle]
unsafe extern "C" fn sapphire_request_action_rs(
    title: *const c_char,
    primary: *const c_char,
    secondary: *const c_char,
    default_action: c_int,
    account: *mut ffi::PurpleAccount,
    who: *const c_char,
    _conv: *mut ffi::PurpleConversation,
    user_data: *mut c_void,
    count: usize,
    texts: *const *const c_char,
    callbacks: *const ffi::GCallback,
) -> *mut c_void {
    let mut actions = Vec::with_capacity(count);
    let mut cbs = Vec::with_capacity(count);
    for i in 0..count {
        let (text, cb) = unsafe { (*texts.add(i), *callbacks.add(i)) };
        let label = unsafe { glue::string(text) }.replace('_', "");
        actions.push(json!({"id": i, "label": label}));
        cbs.push(cb);
    }
    let mut extra = Map::new();
    extra.insert("actions".into(), Value::Array(actions));
    extra.insert("default_action".into(), json!(default_action));
    let entry = Entry {
        kind: Some(ffi::PURPLE_REQUEST_ACTION),
        pending: Pending::Action,
        user_data,
        actions: cbs,
        values: Vec::new(),
        answered: false,
    };
    open(
        "action", title, primary, secondary, account, who, extra, entry,
    )
}

unsafe fn fields_json(fields: *mut ffi::PurpleRequestFields) -> Value {
    let mut groups = Vec::new();
    for group in unsafe {
        glue::glist::<ffi::PurpleRequestFieldGroup>(ffi::purple_request_fields_get_groups(fields))
    } {
        let mut items = Vec::new();
        for field in unsafe {
            glue::glist::<ffi::PurpleRequestField>(ffi::purple_request_field_group_get_fields(
                group,
            ))
        } {
            items.push(unsafe { field_json(field) });
        }
        groups.push(json!({
            "title": opt(unsafe { ffi::purple_request_field_group_get_title(group) }),
            "fields": items,
        }));
    }
    Value::Array(groups)
}

unsafe fn field_json(f: *mut ffi::PurpleRequestField) -> Value {
    unsafe {
        let mut j = json!({
            "id": glue::string(ffi::purple_request_field_get_id(f)),
            "label": opt(ffi::purple_request_field_get_label(f)),
            "required": ffi::purple_request_field_is_required(f) != 0,
            "visible": ffi::purple_request_field_is_visible(f) != 0,
        });
        match ffi::purple_request_field_get_type(f) {
            ffi::PURPLE_REQUEST_FIELD_STRING => {
                j["type"] = json!("string");
                j["value"] = opt(ffi::purple_request_field_string_get_value(f));
                j["masked"] = json!(ffi::purple_request_field_string_is_masked(f) != 0);
                j["multiline"] = json!(ffi::purple_request_field_string_is_multiline(f) != 0);
            }
            ffi::PURPLE_REQUEST_FIELD_INTEGER => {
                j["type"] = json!("integer");
                j["value"] = json!(ffi::purple_request_field_int_get_value(f));
            }
            ffi::PURPLE_REQUEST_FIELD_BOOLEAN => {
                j["type"] = json!("boolean");
                j["value"] = json!(ffi::purple_request_field_bool_get_value(f) != 0);
            }
            ffi::PURPLE_REQUEST_FIELD_CHOICE => {
                j["type"] = json!("choice");
                j["value"] = json!(ffi::purple_request_field_choice_get_value(f));
                let labels: Vec<String> =
                    glue::glist::<c_char>(ffi::purple_request_field_choice_get_labels(f))
                        .into_iter()
                        .map(|p| glue::string(p))
                        .collect();
                j["choices"] = json!(labels);
            }
            ffi::PURPLE_REQUEST_FIELD_LIST => {
                j["type"] = json!("list");
                j["multi"] = json!(ffi::purple_request_field_list_get_multi_select(f) != 0);
                let items: Vec<String> =
                    glue::glist::<c_char>(ffi::purple_request_field_list_get_items(f))
                        .into_iter()
                        .map(|p| glue::string(p))
                        .collect();
                let selected: Vec<String> =
                    glue::glist::<c_char>(ffi::purple_request_field_list_get_selected(f))
                        .into_iter()
                        .map(|p| glue::string(p))
                        .collect();
                j["items"] = json!(items);
                j["selected"] = json!(selected);
            }
            ffi::PURPLE_REQUEST_FIELD_LABEL => j["type"] = json!("label"),
            ffi::PURPLE_REQUEST_FIELD_IMAGE => j["type"] = json!("image"),
            ffi::PURPLE_REQUEST_FIELD_ACCOUNT => {
                j["type"] = json!("account");
                let a = ffi::purple_request_field_account_get_value(f);
                if !a.is_null() {
                    j["value"] = json!(account_id(a));
                }
            }
            _ => j["type"] = json!("unknown"),
        }
        j
    }
}

unsafe extern "C" fn request_fields(
    title: *const c_char,
    primary: *const c_char,
    secondary: *const c_char,
    fields: *mut ffi::PurpleRequestFields,
    ok_text: *const c_char,
    ok_cb: ffi::GCallback,
    cancel_text: *const c_char,
    cancel_cb: ffi::GCallback,
    account: *mut ffi::PurpleAccount,
    who: *const c_char,
    _conv: *mut ffi::PurpleConversation,
    user_data: *mut c_void,
) -> *mut c_void {
    let mut extra = Map::new();
    extra.insert("actions".into(), ok_cancel(ok_text, cancel_text));
    extra.insert("groups".into(), unsafe { fields_json(fields) });
    let entry = Entry {
        kind: Some(ffi::PURPLE_REQUEST_FIELDS),
        pending: Pending::Fields {
            ok: ok_cb,
            cancel: cancel_cb,
            fields,
        },
        user_data,
        actions: Vec::new(),
        values: Vec::new(),
        answered: false,
    };
    open(
        "fields", title, primary, secondary, account, who, extra, entry,
    )
}

unsafe extern "C" fn request_file(
    title: *const c_char,
    filename: *const c_char,
    savedialog: ffi::gboolean,
    ok_cb: ffi::GCallback,
    cancel_cb: ffi::GCallback,
    account: *mut ffi::PurpleAccount,
    who: *const c_char,
    _conv: *mut ffi::PurpleConversation,
    user_data: *mut c_void,
) -> *mut c_void {
    let mut extra = Map::new();
    extra.insert(
        "actions".into(),
        ok_cancel(std::ptr::null(), std::ptr::null()),
    );
    extra.insert("filename".into(), opt(filename));
    extra.insert("save".into(), json!(savedialog != 0));
    let entry = Entry {
        kind: Some(ffi::PURPLE_REQUEST_FILE),
        pending: Pending::File {
            ok: ok_cb,
            cancel: cancel_cb,
        },
        user_data,
        actions: Vec::new(),
        values: Vec::new(),
        answered: false,
    };
    let null = std::ptr::null();
    open("file", title, null, null, account, who, extra, entry)
}

unsafe extern "C" fn request_folder(
    title: *const c_char,
    dirname: *const c_char,
    ok_cb: ffi::GCallback,
    cancel_cb: ffi::GCallback,
    account: *mut ffi::PurpleAccount,
    who: *const c_char,
    _conv: *mut ffi::PurpleConversation,
    user_data: *mut c_void,
) -> *mut c_void {
    let mut extra = Map::new();
    extra.insert(
        "actions".into(),
        ok_cancel(std::ptr::null(), std::ptr::null()),
    );
    extra.insert("dirname".into(), opt(dirname));
    let entry = Entry {
        kind: Some(ffi::PURPLE_REQUEST_FOLDER),
        pending: Pending::File {
            ok: ok_cb,
            cancel: cancel_cb,
        },
        user_data,
        actions: Vec::new(),
        values: Vec::new(),
        answered: false,
    };
    let null = std::ptr::null();
    open("folder", title, null, null, account, who, extra, entry)
}

unsafe extern "C" fn close_request(_kind: ffi::PurpleRequestType, handle: *mut c_void) {
    let id = handle as usize as i64;
    let entry = PENDING.with(|p| p.borrow_mut().remove(&id));
    if let Some(entry) = entry {
        if let Pending::Fields { fields, .. } = entry.pending {
            unsafe { ffi::purple_request_fields_destroy(fields) };
        }
        let e = json!({"op": "request.close", "request": id, "answered": entry.answered});
        super::uiops::emit(e);
    }
}

static mut REQUEST_OPS: ffi::PurpleRequestUiOps = ffi::PurpleRequestUiOps {
    request_input: Some(request_input),
    request_choice: Some(ffi::sapphire_request_choice),
    request_action: Some(ffi::sapphire_request_action),
    request_fields: Some(request_fields),
    request_file: Some(request_file),
    close_request: Some(close_request),
    request_folder: Some(request_folder),
    request_action_with_icon: Some(ffi::sapphire_request_action_with_icon),
    request_screenshare_media: None,
    _purple_reserved1: None,
    _purple_reserved2: None,
};

/// # Safety
/// Purple thread only.
pub unsafe fn install() {
    unsafe {
        ffi::purple_request_set_ui_ops(std::ptr::addr_of_mut!(REQUEST_OPS));
        ffi::purple_accounts_set_ui_ops(std::ptr::addr_of_mut!(ACCOUNT_OPS));
    }
}

unsafe extern "C" fn request_authorize(
    account: *mut ffi::PurpleAccount,
    remote_user: *const c_char,
    _id: *const c_char,
    alias: *const c_char,
    message: *const c_char,
    on_list: ffi::gboolean,
    allow: ffi::PurpleAccountRequestAuthorizationCb,
    deny: ffi::PurpleAccountRequestAuthorizationCb,
    user_data: *mut c_void,
) -> *mut c_void {
    let who = unsafe { glue::string(remote_user) };
    let mut extra = Map::new();
    extra.insert(
        "actions".into(),
        json!([{"id": 0, "label": "Authorize"}, {"id": 1, "label": "Deny"}]),
    );
    extra.insert("alias".into(), opt(alias));
    extra.insert("message".into(), opt(message));
    extra.insert("on_list".into(), json!(on_list != 0));
    let primary = glue::cstring(&format!("{who} wants to add you to their contact list"));
    let entry = Entry {
        kind: None,
        pending: Pending::Authorize { allow, deny },
        user_data,
        actions: Vec::new(),
        values: Vec::new(),
        answered: false,
    };
    open(
        "authorize",
        c"Authorization request".as_ptr(),
        primary.as_ptr(),
        std::ptr::null(),
        account,
        remote_user,
        extra,
        entry,
    )
}

unsafe extern "C" fn close_account_request(handle: *mut c_void) {
    unsafe { close_request(ffi::PURPLE_REQUEST_ACTION, handle) }
}

unsafe extern "C" fn request_add(
    account: *mut ffi::PurpleAccount,
    remote_user: *const c_char,
    _id: *const c_char,
    alias: *const c_char,
    message: *const c_char,
) {
    let mut e = json!({"op": "notice", "level": "info", "kind": "added_you",
        "account": unsafe { account_id(account) }, "who": opt(remote_user)});
    e["alias"] = opt(alias);
    e["message"] = opt(message);
    super::uiops::emit(e);
}

static mut ACCOUNT_OPS: ffi::PurpleAccountUiOps = ffi::PurpleAccountUiOps {
    notify_added: Some(request_add),
    status_changed: None,
    request_add: Some(request_add),
    request_authorize: Some(request_authorize),
    close_account_request: Some(close_account_request),
    _purple_reserved1: None,
    _purple_reserved2: None,
    _purple_reserved3: None,
    _purple_reserved4: None,
};

type InputCb = unsafe extern "C" fn(*mut c_void, *const c_char);
type IntCb = unsafe extern "C" fn(*mut c_void, c_int);
type FieldsCb = unsafe extern "C" fn(*mut c_void, *mut ffi::PurpleRequestFields);

/// `request.answer {request, action, value?, fields?}` (purple thread).
pub fn answer(p: &Params) -> OpResult {
    let id = p.i64("request")?;
    let action = p.u64("action")? as usize;
    let (kind, pending, user_data, action_cb, values) = PENDING.with(|map| {
        let mut map = map.borrow_mut();
        let e = map
            .get_mut(&id)
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
        Ok((e.kind, e.pending, e.user_data, cb, e.values.clone()))
    })?;
    // Validate and prepare before calling anything.
    let value_cstr;
    let mut choice_value = 0;
    match pending {
        Pending::Input { .. } | Pending::File { .. } if action == 0 => {
            value_cstr = Some(glue::cstring(p.str("value")?));
        }
        Pending::Choice { default, .. } => {
            value_cstr = None;
            choice_value = if action == 0 {
                let v = p.i64("value")?;
                let v = c_int::try_from(v).map_err(|_| OpError::bad_request("bad choice"))?;
                if !values.contains(&v) {
                    return Err(OpError::bad_request("value is not one of the choices"));
                }
                v
            } else {
                default
            };
        }
        Pending::Fields { fields, .. } => {
            value_cstr = None;
            if let Some(values) = p.object("fields")? {
                unsafe { set_fields(fields, values)? };
            }
            if action == 0 && unsafe { ffi::purple_request_fields_all_required_filled(fields) } == 0
            {
                return Err(OpError::new(
                    "required_missing",
                    "a required field is empty",
                ));
            }
        }
        _ => value_cstr = None,
    }
    PENDING.with(|map| {
        if let Some(e) = map.borrow_mut().get_mut(&id) {
            e.answered = true;
        }
    });
    let pick = |ok: ffi::GCallback, cancel: ffi::GCallback| if action == 0 { ok } else { cancel };
    // SAFETY: the callbacks and user data are libpurple's for this request,
    // which is still open (close_request has not run for it).
    unsafe {
        match pending {
            Pending::Action => {
                if let Some(Some(cb)) = action_cb {
                    let cb: IntCb = std::mem::transmute::<unsafe extern "C" fn(), IntCb>(cb);
                    cb(user_data, action as c_int);
                }
            }
            Pending::Input { ok, cancel } | Pending::File { ok, cancel } => {
                if let Some(cb) = pick(ok, cancel) {
                    let cb: InputCb = std::mem::transmute::<unsafe extern "C" fn(), InputCb>(cb);
                    let v = value_cstr.as_ref().map_or(std::ptr::null(), |c| c.as_ptr());
                    cb(user_data, v);
                }
            }
            Pending::Choice { ok, cancel, .. } => {
                if let Some(cb) = pick(ok, cancel) {
                    let cb: IntCb = std::mem::transmute::<unsafe extern "C" fn(), IntCb>(cb);
                    cb(user_data, choice_value);
                }
            }
            Pending::Fields { ok, cancel, fields } => {
                if let Some(cb) = pick(ok, cancel) {
                    let cb: FieldsCb = std::mem::transmute::<unsafe extern "C" fn(), FieldsCb>(cb);
                    cb(user_data, fields);
                }
            }
            Pending::Authorize { allow, deny } => {
                if let Some(cb) = if action == 0 { allow } else { deny } {
                    cb(user_data);
                }
            }
        }
        match kind {
            // Closes it unless the callback already did; close_request
            // emits request.close.
            Some(kind) => ffi::purple_request_close(kind, id as usize as *mut c_void),
            // Account requests are closed by answering them.
            None => close_request(ffi::PURPLE_REQUEST_ACTION, id as usize as *mut c_void),
        }
    }
    Ok(json!({}))
}

unsafe fn set_fields(
    fields: *mut ffi::PurpleRequestFields,
    values: &Map<String, Value>,
) -> Result<(), OpError> {
    for (key, value) in values {
        let cid = glue::cstring(key);
        let f = unsafe { ffi::purple_request_fields_get_field(fields, cid.as_ptr()) };
        if f.is_null() {
            return Err(OpError::bad_request(format!("no field '{key}'")));
        }
        let bad = || OpError::bad_request(format!("bad value for field '{key}'"));
        unsafe {
            match ffi::purple_request_field_get_type(f) {
                ffi::PURPLE_REQUEST_FIELD_STRING => {
                    let s = glue::cstring(value.as_str().ok_or_else(bad)?);
                    ffi::purple_request_field_string_set_value(f, s.as_ptr());
                }
                ffi::PURPLE_REQUEST_FIELD_INTEGER => {
                    let v = value
                        .as_i64()
                        .and_then(|v| c_int::try_from(v).ok())
                        .ok_or_else(bad)?;
                    ffi::purple_request_field_int_set_value(f, v);
                }
                ffi::PURPLE_REQUEST_FIELD_BOOLEAN => {
                    let v = value.as_bool().ok_or_else(bad)?;
                    ffi::purple_request_field_bool_set_value(f, v.into());
                }
                ffi::PURPLE_REQUEST_FIELD_CHOICE => {
                    let n =
                        glue::glist::<c_char>(ffi::purple_request_field_choice_get_labels(f)).len();
                    let v = value
                        .as_u64()
                        .filter(|v| (*v as usize) < n)
                        .ok_or_else(bad)?;
                    ffi::purple_request_field_choice_set_value(f, v as c_int);
                }
                ffi::PURPLE_REQUEST_FIELD_LIST => {
                    let items: Vec<String> =
                        glue::glist::<c_char>(ffi::purple_request_field_list_get_items(f))
                            .into_iter()
                            .map(|p| glue::string(p))
                            .collect();
                    let wanted: Vec<&str> = value
                        .as_array()
                        .ok_or_else(bad)?
                        .iter()
                        .map(|v| {
                            v.as_str()
                                .filter(|s| items.iter().any(|i| i == s))
                                .ok_or_else(bad)
                        })
                        .collect::<Result<_, _>>()?;
                    ffi::purple_request_field_list_clear_selected(f);
                    for w in wanted {
                        let c = glue::cstring(w);
                        ffi::purple_request_field_list_add_selected(f, c.as_ptr());
                    }
                }
                _ => return Err(OpError::bad_request(format!("field '{key}' cannot be set"))),
            }
        }
    }
    Ok(())
}
