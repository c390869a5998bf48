//! Request UI ops (and the account UI ops that ask the user): every
//! prompt becomes a `request.open` event; any client may answer it with
//! `request.answer`. Nothing is ever answered with its default on the
//! user's behalf: an untrusted-certificate prompt (default "Accept") waits
//! for a person. The request id is the `seq` of its `request.open` event.

use std::ffi::{c_char, c_int, c_void};

use serde_json::{json, Value};

use super::super::handles::{
    cast_callback, Account, Callback, FieldKind, IntCb, RequestField, RequestFields, UnitCb,
};
use super::super::state::{Pending, PendingRequest};
use super::super::{accounts, events, ffi, glue, requests};
use crate::backend::event::{Action, Choice, Event, Notice, RequestDetails, RequestOpen};

/// A C string argument of a callback (`None` for NULL).
///
/// # Safety
/// `p` is NULL or a valid C string.
unsafe fn opt(p: *const c_char) -> Option<String> {
    // SAFETY: the caller's contract.
    unsafe { glue::opt_string(p) }
}

/// # Safety
/// `account` is what libpurple passed the callback: NULL or a live account.
unsafe fn account_id(account: *mut ffi::PurpleAccount) -> Option<i64> {
    // SAFETY: the caller's contract.
    unsafe { Account::from_ptr(account) }.map(Account::id)
}

/// # Safety
/// Both are NULL or valid C strings.
unsafe fn ok_cancel(ok_text: *const c_char, cancel_text: *const c_char) -> Vec<Action> {
    vec![
        Action {
            id: 0,
            // SAFETY: the caller's contract.
            label: unsafe { opt(ok_text) }.unwrap_or_else(|| "OK".into()),
        },
        Action {
            id: 1,
            // SAFETY: the caller's contract.
            label: unsafe { opt(cancel_text) }.unwrap_or_else(|| "Cancel".into()),
        },
    ]
}

/// What every prompt has.
struct Common {
    title: Option<String>,
    primary: Option<String>,
    secondary: Option<String>,
    account: Option<i64>,
    who: Option<String>,
}

/// # Safety
/// The arguments are what libpurple passed the request callback.
unsafe fn common(
    title: *const c_char,
    primary: *const c_char,
    secondary: *const c_char,
    account: *mut ffi::PurpleAccount,
    who: *const c_char,
) -> Common {
    Common {
        // SAFETY: libpurple's string arguments, NULL or valid for the call.
        title: unsafe { opt(title) },
        // SAFETY: libpurple's string arguments, NULL or valid for the call.
        primary: unsafe { opt(primary) },
        // SAFETY: libpurple's string arguments, NULL or valid for the call.
        secondary: unsafe { opt(secondary) },
        // SAFETY: the caller's contract.
        account: unsafe { account_id(account) },
        // SAFETY: libpurple's string arguments, NULL or valid for the call.
        who: unsafe { opt(who) },
    }
}

/// libpurple's certificate prompts ("SSL Certificate Verification",
/// "Accept certificate for HOST?") carry no account: the account signing
/// on to that host is found ([`accounts::certificate_account`]), set as
/// `account`, and named first in `secondary`.
fn name_certificate_account(c: &mut Common) {
    if c.account.is_some()
        || !c
            .title
            .as_deref()
            .is_some_and(|t| t.contains("Certificate"))
    {
        return;
    }
    let Some(host) = c
        .primary
        .as_deref()
        .and_then(|p| p.strip_prefix("Accept certificate for "))
        .map(|h| h.trim_end_matches('?').to_owned())
    else {
        return;
    };
    if let Some(account) = accounts::certificate_account(&host) {
        c.account = Some(account.id());
        let named = format!("For the account {}.", account.username());
        c.secondary = Some(match c.secondary.take() {
            Some(s) => format!("{named}\n\n{s}"),
            None => named,
        });
    }
}

fn entry(kind: Option<ffi::PurpleRequestType>, pending: Pending) -> PendingRequest {
    PendingRequest {
        kind,
        pending,
        actions: Vec::new(),
        values: Vec::new(),
        answered: false,
    }
}

/// Emits `request.open`, records the entry and returns libpurple's handle
/// for the request (its id), NULL if it could not be stored.
fn open(
    c: Common,
    actions: Vec<Action>,
    details: RequestDetails,
    entry: PendingRequest,
) -> *mut c_void {
    let make = move |seq| RequestOpen {
        request: seq,
        title: c.title,
        primary: c.primary,
        secondary: c.secondary,
        account: c.account,
        who: c.who,
        actions,
        details,
    };
    match requests::open(make, entry) {
        Some(id) => id as usize as *mut c_void,
        None => std::ptr::null_mut(),
    }
}

/// # Safety
/// `cb` is NULL or a callback of type `F` for `user_data`'s request.
unsafe fn callback<F: Copy>(cb: ffi::GCallback, user_data: *mut c_void) -> Option<Callback<F>> {
    // SAFETY: the caller's contract.
    let f = unsafe { cast_callback::<F>(cb) }?;
    // SAFETY: libpurple's callback with its user data for an open request.
    Some(unsafe { Callback::new(f, user_data) })
}

/// The answer of a prompt answered with text (input, file, folder): OK
/// with the text, or Cancel.
///
/// # Safety
/// `ok_cb` and `cancel_cb` are NULL or the prompt's callbacks taking
/// (`user_data`, text): `PurpleRequestInputCb` or `PurpleRequestFileCb`.
unsafe fn text_answer(
    ok_cb: ffi::GCallback,
    cancel_cb: ffi::GCallback,
    user_data: *mut c_void,
) -> Pending {
    Pending::Text {
        // SAFETY: the caller's contract.
        ok: unsafe { callback(ok_cb, user_data) },
        // SAFETY: as above.
        cancel: unsafe { callback(cancel_cb, user_data) },
    }
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
    let details = RequestDetails::Input {
        // SAFETY: libpurple's string arguments, NULL or valid for the call.
        default_value: unsafe { opt(default_value) },
        multiline: multiline != 0,
        masked: masked != 0,
        // SAFETY: libpurple's string arguments, NULL or valid for the call.
        hint: unsafe { opt(hint) },
    };
    // SAFETY: input callbacks are PurpleRequestInputCb.
    let pending = unsafe { text_answer(ok_cb, cancel_cb, user_data) };
    open(
        // SAFETY: the callback\'s own arguments.
        unsafe { common(title, primary, secondary, account, who) },
        // SAFETY: libpurple's string arguments, NULL or valid for the call.
        unsafe { ok_cancel(ok_text, cancel_text) },
        details,
        entry(Some(ffi::PURPLE_REQUEST_INPUT), pending),
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
    // SAFETY: the shim passes `count` texts, valid for the call.
    let texts = unsafe { std::slice::from_raw_parts(texts, count) };
    // SAFETY: and `count` values.
    let values = unsafe { std::slice::from_raw_parts(values, count) };
    for (&text, &value) in texts.iter().zip(values) {
        choices.push(Choice {
            value,
            // SAFETY: libpurple's string arguments, NULL or valid for the call.
            label: unsafe { opt(text) }.unwrap_or_default(),
        });
        vals.push(value);
    }
    let pending = Pending::Choice {
        // SAFETY: choice callbacks are PurpleRequestChoiceCb.
        ok: unsafe { callback(ok_cb, user_data) },
        // SAFETY: as above.
        cancel: unsafe { callback(cancel_cb, user_data) },
        default: default_value,
    };
    let mut e = entry(Some(ffi::PURPLE_REQUEST_CHOICE), pending);
    e.values = vals;
    open(
        // SAFETY: the callback\'s own arguments.
        unsafe { common(title, primary, secondary, account, who) },
        // SAFETY: libpurple's string arguments, NULL or valid for the call.
        unsafe { ok_cancel(ok_text, cancel_text) },
        RequestDetails::Choice {
            choices,
            default: default_value,
        },
        e,
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
    let mut cbs: Vec<Option<IntCb>> = Vec::with_capacity(count);
    // SAFETY: the shim passes `count` texts, valid for the call.
    let texts = unsafe { std::slice::from_raw_parts(texts, count) };
    // SAFETY: and `count` callbacks.
    let callbacks = unsafe { std::slice::from_raw_parts(callbacks, count) };
    for (i, (&text, &cb)) in texts.iter().zip(callbacks).enumerate() {
        // SAFETY: libpurple's string arguments, NULL or valid for the call.
        let label = unsafe { opt(text) }.unwrap_or_default().replace('_', "");
        actions.push(Action { id: i, label });
        // SAFETY: action callbacks are PurpleRequestActionCb.
        cbs.push(unsafe { callback(cb, user_data) });
    }
    // SAFETY: the callback's own arguments.
    let mut c = unsafe { common(title, primary, secondary, account, who) };
    // A rejoin that created a vanished room: no prompt, the room is left.
    if let Some((id, room)) = accounts::vanished_room(c.account, c.title.as_deref()) {
        accounts::abandon_vanished_room(id, room);
        return std::ptr::null_mut();
    }
    name_certificate_account(&mut c);
    let mut e = entry(Some(ffi::PURPLE_REQUEST_ACTION), Pending::Action);
    e.actions = cbs;
    open(c, actions, RequestDetails::Action { default_action }, e)
}

// The shim's callbacks have the types csrc/purple-wrapper.h declares.
const _: ffi::SapphireRequestChoiceRs = Some(sapphire_request_choice_rs);
const _: ffi::SapphireRequestActionRs = Some(sapphire_request_action_rs);

/// The `groups` of a fields request.
pub(crate) fn fields_json(fields: RequestFields) -> Value {
    let groups: Vec<Value> = fields
        .groups()
        .into_iter()
        .map(|(title, fields)| {
            let items: Vec<Value> = fields.into_iter().map(field_json).collect();
            json!({"title": title, "fields": items})
        })
        .collect();
    Value::Array(groups)
}

fn field_json(f: RequestField) -> Value {
    let mut j = json!({
        "id": f.id(),
        "label": f.label(),
        "required": f.required(),
        "visible": f.visible(),
    });
    match f.kind() {
        FieldKind::String => {
            j["type"] = json!("string");
            j["value"] = json!(f.string_value());
            j["masked"] = json!(f.string_masked());
            j["multiline"] = json!(f.string_multiline());
        }
        FieldKind::Integer => {
            j["type"] = json!("integer");
            j["value"] = json!(f.int_value());
        }
        FieldKind::Boolean => {
            j["type"] = json!("boolean");
            j["value"] = json!(f.bool_value());
        }
        FieldKind::Choice => {
            j["type"] = json!("choice");
            j["value"] = json!(f.choice_value());
            j["choices"] = json!(f.choice_labels());
        }
        FieldKind::List => {
            j["type"] = json!("list");
            j["multi"] = json!(f.list_multi());
            j["items"] = json!(f.list_items());
            j["selected"] = json!(f.list_selected());
        }
        FieldKind::Label => j["type"] = json!("label"),
        FieldKind::Image => j["type"] = json!("image"),
        FieldKind::Account => {
            j["type"] = json!("account");
            if let Some(a) = f.account_value() {
                j["value"] = json!(a.id());
            }
        }
        FieldKind::Unknown => j["type"] = json!("unknown"),
    }
    j
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
    // SAFETY: the request's fields, ours until close_request frees them.
    let Some(fields) = (unsafe { RequestFields::from_ptr(fields) }) else {
        return std::ptr::null_mut();
    };
    let groups = fields_json(fields);
    let pending = Pending::Fields {
        // SAFETY: fields callbacks are PurpleRequestFieldsCb.
        ok: unsafe { callback::<_>(ok_cb, user_data) },
        // SAFETY: as above.
        cancel: unsafe { callback::<_>(cancel_cb, user_data) },
        fields,
    };
    open(
        // SAFETY: the callback\'s own arguments.
        unsafe { common(title, primary, secondary, account, who) },
        // SAFETY: libpurple's string arguments, NULL or valid for the call.
        unsafe { ok_cancel(ok_text, cancel_text) },
        RequestDetails::Fields { groups },
        entry(Some(ffi::PURPLE_REQUEST_FIELDS), pending),
    )
}

/// A file or folder prompt: a title, OK and Cancel, answered with a path
/// (`kind` and `details` say which).
///
/// # Safety
/// `title`, `account` and `who` are what libpurple passed the request
/// callback.
unsafe fn open_path_prompt(
    title: *const c_char,
    account: *mut ffi::PurpleAccount,
    who: *const c_char,
    kind: ffi::PurpleRequestType,
    details: RequestDetails,
    pending: Pending,
) -> *mut c_void {
    let null = std::ptr::null();
    open(
        // SAFETY: the caller's contract; NULL for the other texts.
        unsafe { common(title, null, null, account, who) },
        // SAFETY: NULL for both labels (OK and Cancel).
        unsafe { ok_cancel(null, null) },
        details,
        entry(Some(kind), pending),
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
    let details = RequestDetails::File {
        // SAFETY: libpurple's string arguments, NULL or valid for the call.
        filename: unsafe { opt(filename) },
        save: savedialog != 0,
    };
    // SAFETY: file callbacks are PurpleRequestFileCb (data, filename).
    let pending = unsafe { text_answer(ok_cb, cancel_cb, user_data) };
    // SAFETY: the callback's own arguments.
    unsafe {
        open_path_prompt(
            title,
            account,
            who,
            ffi::PURPLE_REQUEST_FILE,
            details,
            pending,
        )
    }
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
    let details = RequestDetails::Folder {
        // SAFETY: libpurple's string arguments, NULL or valid for the call.
        dirname: unsafe { opt(dirname) },
    };
    // SAFETY: folder callbacks are PurpleRequestFileCb (data, dirname).
    let pending = unsafe { text_answer(ok_cb, cancel_cb, user_data) };
    // SAFETY: the callback's own arguments.
    unsafe {
        open_path_prompt(
            title,
            account,
            who,
            ffi::PURPLE_REQUEST_FOLDER,
            details,
            pending,
        )
    }
}

unsafe extern "C" fn close_request(_kind: ffi::PurpleRequestType, handle: *mut c_void) {
    requests::closed(handle as usize as i64);
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

pub(super) fn install() {
    let (request_ops, account_ops) = (&raw mut REQUEST_OPS, &raw mut ACCOUNT_OPS);
    // SAFETY: statics that live for the process; libpurple only reads them.
    unsafe { ffi::purple_request_set_ui_ops(request_ops) };
    // SAFETY: as above.
    unsafe { ffi::purple_accounts_set_ui_ops(account_ops) };
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
    // SAFETY: libpurple's string arguments, NULL or valid for the call.
    let who = unsafe { opt(remote_user) }.unwrap_or_default();
    let c = Common {
        title: Some("Authorization request".into()),
        primary: Some(format!("{who} wants to add you to their contact list")),
        secondary: None,
        // SAFETY: the callback's own account.
        account: unsafe { account_id(account) },
        // SAFETY: libpurple's string arguments, NULL or valid for the call.
        who: unsafe { opt(remote_user) },
    };
    let pending = Pending::Authorize {
        // SAFETY: libpurple's callbacks for this request with its data.
        allow: allow.map(|f| unsafe { UnitCb::new(f, user_data) }),
        // SAFETY: as above.
        deny: deny.map(|f| unsafe { UnitCb::new(f, user_data) }),
    };
    open(
        c,
        vec![
            Action {
                id: 0,
                label: "Authorize".into(),
            },
            Action {
                id: 1,
                label: "Deny".into(),
            },
        ],
        RequestDetails::Authorize {
            // SAFETY: libpurple's string arguments, NULL or valid for the call.
            alias: unsafe { opt(alias) },
            // SAFETY: libpurple's string arguments, NULL or valid for the call.
            message: unsafe { opt(message) },
            on_list: on_list != 0,
        },
        entry(None, pending),
    )
}

unsafe extern "C" fn close_account_request(handle: *mut c_void) {
    requests::closed(handle as usize as i64);
}

unsafe extern "C" fn request_add(
    account: *mut ffi::PurpleAccount,
    remote_user: *const c_char,
    _id: *const c_char,
    alias: *const c_char,
    message: *const c_char,
) {
    events::emit(Event::Notice(Notice {
        level: "info",
        kind: Some("added_you"),
        // SAFETY: the callback's own account.
        account: unsafe { account_id(account) },
        // SAFETY: libpurple's string arguments, NULL or valid for the call.
        who: unsafe { opt(remote_user) },
        // SAFETY: libpurple's string arguments, NULL or valid for the call.
        alias: unsafe { opt(alias) },
        // SAFETY: libpurple's string arguments, NULL or valid for the call.
        message: unsafe { opt(message) },
        ..Notice::default()
    }));
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
