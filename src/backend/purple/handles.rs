//! Typed handles for libpurple objects: the only code that dereferences a
//! libpurple pointer (as git2-rs wraps libgit2).
//!
//! A handle is a `NonNull` pointer plus a `!Send` marker: it cannot leave
//! the purple thread. Handles are built only from libpurple's own lists
//! (`Account::all`, `Protocol::all`, …) or from the arguments of a libpurple
//! callback (`unsafe fn from_ptr`, used by `uiops`). A handle is valid for
//! the command or callback that obtained it: nothing stores one across a
//! return to the main loop (`PurpleState` holds ids, not handles), except
//! what libpurple keeps alive itself until it tells us otherwise (the
//! fields and callbacks of an open request, closed by `close_request`).
//!
//! Every method is safe; every `unsafe` block says why it holds.

use std::ffi::{c_char, c_int, c_void, CStr};
use std::marker::PhantomData;
use std::ptr::NonNull;

use serde_json::{Map, Value};

use super::ffi;
use super::glue::{self, cstring, UI_ID_C};
use crate::backend::protocol::ConvKind;

/// Key of the Sapphire account id in libpurple's per-UI account settings.
const ID_KEY: &CStr = c"id";

macro_rules! handle {
    ($(#[$m:meta])* $name:ident, $ffi:ty) => {
        $(#[$m])*
        #[derive(Clone, Copy, PartialEq, Eq)]
        pub(crate) struct $name {
            ptr: NonNull<$ffi>,
            _not_send: PhantomData<*mut ()>,
        }

        impl $name {
            /// Wraps a pointer libpurple handed us (`None` for NULL).
            ///
            /// # Safety
            /// On the purple thread; `ptr` is NULL or a live object that
            /// stays alive while the handle is used (see the module docs).
            pub(crate) unsafe fn from_ptr(ptr: *mut $ffi) -> Option<Self> {
                NonNull::new(ptr).map(|ptr| Self {
                    ptr,
                    _not_send: PhantomData,
                })
            }

            /// The raw pointer, for calls in this module only.
            fn raw(self) -> *mut $ffi {
                self.ptr.as_ptr()
            }
        }
    };
}

handle!(
    /// A `PurpleAccount` in libpurple's account list.
    Account,
    ffi::PurpleAccount
);
handle!(
    /// A `PurpleConnection` (an account that is signing on or signed on).
    Connection,
    ffi::PurpleConnection
);
handle!(
    /// A `PurpleConversation` (IM or chat).
    Conversation,
    ffi::PurpleConversation
);
handle!(
    /// A member of a chat (`PurpleConvChatBuddy`).
    ChatBuddy,
    ffi::PurpleConvChatBuddy
);
handle!(
    /// A `PurpleBuddy` in the buddy list.
    Buddy,
    ffi::PurpleBuddy
);
handle!(
    /// A protocol plugin (a `PurplePlugin` with protocol info).
    Protocol,
    ffi::PurplePlugin
);
handle!(
    /// One option a protocol declares for its accounts.
    AccountOption,
    ffi::PurpleAccountOption
);
handle!(
    /// A part of a protocol's user name (e.g. IRC's server).
    UserSplit,
    ffi::PurpleAccountUserSplit
);
handle!(
    /// The fields of an open fields request.
    RequestFields,
    ffi::PurpleRequestFields
);
handle!(
    /// One field of a fields request.
    RequestField,
    ffi::PurpleRequestField
);
handle!(
    /// A DNS query libpurple asked us to resolve.
    DnsQuery,
    ffi::PurpleDnsQueryData
);

/// A C string argument as an owned `String` (`""` for NULL).
fn s(p: *const c_char) -> String {
    // SAFETY: every pointer passed here comes from a libpurple getter on a
    // live object, which returns NULL or a valid string.
    unsafe { glue::string(p) }
}

fn opt_s(p: *const c_char) -> Option<String> {
    // SAFETY: as for `s`.
    unsafe { glue::opt_string(p) }
}

// ---- accounts ---------------------------------------------------------

/// The value of an account option, type-checked against its declaration.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum OptionValue {
    Bool(bool),
    Int(c_int),
    Str(String),
}

impl Account {
    /// Every account libpurple knows.
    pub(crate) fn all() -> Vec<Account> {
        // SAFETY: libpurple's own list of live accounts, not modified while
        // we copy it.
        let all = unsafe { ffi::purple_accounts_get_all() };
        // SAFETY: a valid GList of PurpleAccount.
        let ptrs = unsafe { glue::glist::<ffi::PurpleAccount>(all) };
        ptrs.into_iter()
            // SAFETY: members of the account list are live accounts.
            .filter_map(|p| unsafe { Account::from_ptr(p) })
            .collect()
    }

    /// The account with Sapphire id `id`.
    pub(crate) fn find(id: i64) -> Option<Account> {
        Account::all().into_iter().find(|a| a.id() == id)
    }

    /// The account for `username` on `protocol`, if libpurple has one.
    pub(crate) fn find_by_name(username: &str, protocol: &str) -> Option<Account> {
        let (u, p) = (cstring(username), cstring(protocol));
        // SAFETY: two valid C strings; returns NULL or a listed account.
        let ptr = unsafe { ffi::purple_accounts_find(u.as_ptr(), p.as_ptr()) };
        // SAFETY: NULL or a live account from libpurple's list.
        unsafe { Account::from_ptr(ptr) }
    }

    /// The Sapphire id (0 if it has none yet).
    pub(crate) fn id(self) -> i64 {
        // SAFETY: a live account and two static C strings.
        let id = unsafe {
            ffi::purple_account_get_ui_int(self.raw(), UI_ID_C.as_ptr(), ID_KEY.as_ptr(), 0)
        };
        i64::from(id)
    }

    /// Records the Sapphire id in libpurple's account settings.
    pub(crate) fn set_id(self, id: i64) {
        let id = c_int::try_from(id).unwrap_or(c_int::MAX);
        // SAFETY: a live account and two static C strings.
        unsafe {
            ffi::purple_account_set_ui_int(self.raw(), UI_ID_C.as_ptr(), ID_KEY.as_ptr(), id)
        };
    }

    pub(crate) fn protocol_id(self) -> String {
        // SAFETY: a live account.
        s(unsafe { ffi::purple_account_get_protocol_id(self.raw()) })
    }

    pub(crate) fn username(self) -> String {
        // SAFETY: a live account.
        s(unsafe { ffi::purple_account_get_username(self.raw()) })
    }

    pub(crate) fn alias(self) -> Option<String> {
        // SAFETY: a live account.
        opt_s(unsafe { ffi::purple_account_get_alias(self.raw()) })
    }

    /// The protocol plugin, if it is installed.
    pub(crate) fn protocol(self) -> Option<Protocol> {
        // SAFETY: a live account; the string is libpurple's.
        let id = unsafe { ffi::purple_account_get_protocol_id(self.raw()) };
        // SAFETY: a valid C string; returns NULL or a loaded plugin.
        let plugin = unsafe { ffi::purple_find_prpl(id) };
        // SAFETY: NULL or a plugin that stays loaded for the process.
        unsafe { Protocol::from_ptr(plugin) }.filter(|p| p.has_info())
    }

    /// Enabled for our UI.
    pub(crate) fn enabled(self) -> bool {
        // SAFETY: a live account and a static C string.
        unsafe { ffi::purple_account_get_enabled(self.raw(), UI_ID_C.as_ptr()) != 0 }
    }

    /// Enables or disables the account for our UI (signs it on or off).
    pub(crate) fn set_enabled(self, enabled: bool) {
        // SAFETY: a live account and a static C string.
        unsafe { ffi::purple_account_set_enabled(self.raw(), UI_ID_C.as_ptr(), enabled.into()) };
    }

    /// Its connection, in whatever state.
    pub(crate) fn connection(self) -> Option<Connection> {
        // SAFETY: a live account; returns NULL or its live connection.
        let gc = unsafe { ffi::purple_account_get_connection(self.raw()) };
        // SAFETY: NULL or the account's live connection.
        unsafe { Connection::from_ptr(gc) }
    }

    /// Its connection if it is signed on.
    pub(crate) fn connected(self) -> Option<Connection> {
        self.connection().filter(|c| c.is_connected())
    }

    /// Closes its connection (signed on or still connecting), without an
    /// error report; the account stays enabled.
    pub(crate) fn disconnect(self) {
        // SAFETY: a live account; libpurple checks for a connection.
        unsafe { ffi::purple_account_disconnect(self.raw()) };
    }

    /// Signs on (libpurple ignores this for an account already connecting).
    pub(crate) fn connect(self) {
        // SAFETY: a live account.
        unsafe { ffi::purple_account_connect(self.raw()) };
    }

    pub(crate) fn set_password(self, password: &str) {
        let pw = cstring(password);
        // SAFETY: a live account.
        unsafe { ffi::purple_account_set_remember_password(self.raw(), ffi::GTRUE) };
        // SAFETY: a live account; libpurple copies the string.
        unsafe { ffi::purple_account_set_password(self.raw(), pw.as_ptr()) };
    }

    pub(crate) fn set_alias(self, alias: &str) {
        let alias = cstring(alias);
        // SAFETY: a live account; libpurple copies the string.
        unsafe { ffi::purple_account_set_alias(self.raw(), alias.as_ptr()) };
    }

    /// The current value of a declared option (its default if unset).
    pub(crate) fn option_value(self, opt: AccountOption) -> Option<OptionValue> {
        let setting = opt.setting_c();
        let v = match opt.kind() {
            OptionKind::Bool => {
                // SAFETY: a live account, a valid setting name.
                let b = unsafe {
                    ffi::purple_account_get_bool(self.raw(), setting, opt.default_bool().into())
                };
                OptionValue::Bool(b != 0)
            }
            OptionKind::Int => {
                // SAFETY: a live account, a valid setting name.
                let i =
                    unsafe { ffi::purple_account_get_int(self.raw(), setting, opt.default_int()) };
                OptionValue::Int(i)
            }
            OptionKind::Str | OptionKind::List => {
                let def = opt.default_c();
                // SAFETY: a live account, a valid setting name and default.
                let v = unsafe { ffi::purple_account_get_string(self.raw(), setting, def) };
                OptionValue::Str(s(v))
            }
            OptionKind::Other => return None,
        };
        Some(v)
    }

    /// Sets one option (already validated against its declaration).
    pub(crate) fn set_option(self, setting: &str, value: &OptionValue) {
        let key = cstring(setting);
        match value {
            // SAFETY: a live account, a valid setting name.
            OptionValue::Bool(b) => unsafe {
                ffi::purple_account_set_bool(self.raw(), key.as_ptr(), (*b).into())
            },
            // SAFETY: a live account, a valid setting name.
            OptionValue::Int(i) => unsafe {
                ffi::purple_account_set_int(self.raw(), key.as_ptr(), *i)
            },
            OptionValue::Str(v) => {
                let v = cstring(v);
                // SAFETY: a live account, valid strings (copied by libpurple).
                unsafe { ffi::purple_account_set_string(self.raw(), key.as_ptr(), v.as_ptr()) }
            }
        }
    }

    /// Sets an integer setting (a plugin's, whether or not it is offered).
    pub(crate) fn set_int_setting(self, setting: &str, value: c_int) {
        let key = cstring(setting);
        // SAFETY: a live account and a valid setting name.
        unsafe { ffi::purple_account_set_int(self.raw(), key.as_ptr(), value) };
    }

    /// Removes a setting from the account's stored settings.
    pub(crate) fn remove_setting(self, setting: &str) {
        let key = cstring(setting);
        // SAFETY: a live account and a valid setting name.
        unsafe { ffi::purple_account_remove_setting(self.raw(), key.as_ptr()) };
    }

    /// `name` normalised by the account's protocol (bare JID, IRC nick…).
    pub(crate) fn normalize(self, name: &str) -> String {
        let c = cstring(name);
        self.normalize_c(c.as_ptr())
    }

    fn normalize_c(self, name: *const c_char) -> String {
        // SAFETY: a live account and a valid C string; the result is a
        // static buffer of libpurple's, copied at once.
        s(unsafe { ffi::purple_normalize(self.raw(), name) })
    }

    /// The open conversation of `kind` with `name` on this account.
    pub(crate) fn find_conversation(self, kind: ConvKind, name: &str) -> Option<Conversation> {
        let c = cstring(name);
        // SAFETY: a live account and a valid C string.
        let conv = unsafe {
            ffi::purple_find_conversation_with_account(conv_type(kind), c.as_ptr(), self.raw())
        };
        // SAFETY: NULL or a live conversation.
        unsafe { Conversation::from_ptr(conv) }
    }

    /// The IM conversation with `name`, opened if needed.
    pub(crate) fn im(self, name: &str) -> Option<Conversation> {
        if let Some(c) = self.find_conversation(ConvKind::Im, name) {
            return Some(c);
        }
        let c = cstring(name);
        // SAFETY: a live account and a valid C string; libpurple keeps the
        // new conversation in its list.
        let conv = unsafe {
            ffi::purple_conversation_new(ffi::PURPLE_CONV_TYPE_IM, self.raw(), c.as_ptr())
        };
        // SAFETY: NULL or the new live conversation.
        unsafe { Conversation::from_ptr(conv) }
    }

    /// The buddy `name` in this account's list.
    pub(crate) fn find_buddy(self, name: &str) -> Option<Buddy> {
        let c = cstring(name);
        // SAFETY: a live account and a valid C string.
        let b = unsafe { ffi::purple_find_buddy(self.raw(), c.as_ptr()) };
        // SAFETY: NULL or a live buddy.
        unsafe { Buddy::from_ptr(b) }
    }

    /// Adds buddy `name` to `group` (created if needed) and tells the
    /// server.
    pub(crate) fn add_buddy(self, name: &str, alias: Option<&str>, group: &str) -> Option<Buddy> {
        let cname = cstring(name);
        let calias = alias.map(cstring);
        let cgroup = cstring(group);
        // SAFETY: a valid C string.
        let mut g = unsafe { ffi::purple_find_group(cgroup.as_ptr()) };
        if g.is_null() {
            // SAFETY: a valid C string; a new group.
            g = unsafe { ffi::purple_group_new(cgroup.as_ptr()) };
            // SAFETY: the new group, added at the end of the list.
            unsafe { ffi::purple_blist_add_group(g, std::ptr::null_mut()) };
        }
        let alias_ptr = calias.as_ref().map_or(std::ptr::null(), |a| a.as_ptr());
        // SAFETY: a live account and valid C strings.
        let buddy = unsafe { ffi::purple_buddy_new(self.raw(), cname.as_ptr(), alias_ptr) };
        // SAFETY: a new buddy and a live group; the list takes the buddy.
        unsafe {
            ffi::purple_blist_add_buddy(buddy, std::ptr::null_mut(), g, std::ptr::null_mut())
        };
        // SAFETY: a live account and the buddy just listed.
        unsafe { ffi::purple_account_add_buddy(self.raw(), buddy) };
        // SAFETY: NULL or the listed buddy.
        unsafe { Buddy::from_ptr(buddy) }
    }

    /// Removes `buddy` from the server's and libpurple's lists (frees it).
    pub(crate) fn remove_buddy(self, buddy: Buddy) {
        // SAFETY: a live buddy.
        let group = unsafe { ffi::purple_buddy_get_group(buddy.raw()) };
        // SAFETY: a live account, its live buddy and its group.
        unsafe { ffi::purple_account_remove_buddy(self.raw(), buddy.raw(), group) };
        // SAFETY: a live buddy; freed here, not used afterwards (moved in).
        unsafe { ffi::purple_blist_remove_buddy(buddy.raw()) };
    }

    /// Applies the current saved status to this account.
    pub(crate) fn activate_current_status(self) {
        // SAFETY: no arguments; NULL or libpurple's current saved status.
        let status = unsafe { ffi::purple_savedstatus_get_current() };
        if !status.is_null() {
            // SAFETY: a live saved status and a live account.
            unsafe { ffi::purple_savedstatus_activate_for_account(status, self.raw()) };
        }
    }

    /// Deletes the account, first closing its connection if it has one.
    ///
    /// A fatal connection error (`INVALID_SETTINGS`, a wrong password)
    /// leaves the connection in place with `wants_to_die` set and a
    /// zero-delay `purple_connection_disconnect_cb` timeout holding the
    /// account pointer; `purple_accounts_delete` then skips the disconnect
    /// (disabling returns early for a connection that wants to die) and
    /// frees the account, and the timeout reads freed memory. Disconnecting
    /// first destroys the connection, which removes that timeout.
    pub(crate) fn delete(self) {
        if self.connection().is_some() {
            // SAFETY: a live account with a connection.
            unsafe { ffi::purple_account_disconnect(self.raw()) };
        }
        // SAFETY: a live account; freed here and not used afterwards (the
        // handle is consumed; callers hold no other copy).
        unsafe { ffi::purple_accounts_delete(self.raw()) };
    }
}

/// An account created but not yet in libpurple's list. Dropping it frees it,
/// so a failure between creating and adding cannot leak it.
pub(crate) struct NewAccount {
    ptr: NonNull<ffi::PurpleAccount>,
    _not_send: PhantomData<*mut ()>,
}

impl NewAccount {
    pub(crate) fn new(username: &str, protocol: &str) -> Option<NewAccount> {
        let (u, p) = (cstring(username), cstring(protocol));
        // SAFETY: valid C strings; returns a new account we own.
        let ptr = unsafe { ffi::purple_account_new(u.as_ptr(), p.as_ptr()) };
        NonNull::new(ptr).map(|ptr| NewAccount {
            ptr,
            _not_send: PhantomData,
        })
    }

    /// The account, for setting it up before [`NewAccount::add`].
    pub(crate) fn account(&self) -> Account {
        Account {
            ptr: self.ptr,
            _not_send: PhantomData,
        }
    }

    /// Adds it to libpurple's list, which owns it from then on.
    pub(crate) fn add(self) -> Account {
        let account = self.account();
        std::mem::forget(self);
        // SAFETY: a new account not yet listed; the list takes ownership.
        unsafe { ffi::purple_accounts_add(account.raw()) };
        account
    }
}

impl Drop for NewAccount {
    fn drop(&mut self) {
        // SAFETY: an account we own that no list or connection refers to.
        unsafe { ffi::purple_account_destroy(self.ptr.as_ptr()) };
    }
}

// ---- protocols and their options ---------------------------------------

/// The type an option is declared with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OptionKind {
    Bool,
    Int,
    Str,
    List,
    Other,
}

impl Protocol {
    /// Every installed protocol plugin.
    pub(crate) fn all() -> Vec<Protocol> {
        // SAFETY: libpurple's list of loaded protocol plugins.
        let list = unsafe { ffi::purple_plugins_get_protocols() };
        // SAFETY: a valid GList of PurplePlugin.
        let ptrs = unsafe { glue::glist::<ffi::PurplePlugin>(list) };
        ptrs.into_iter()
            // SAFETY: loaded plugins stay loaded for the process.
            .filter_map(|p| unsafe { Protocol::from_ptr(p) })
            .filter(|p| p.has_info())
            .collect()
    }

    /// Loads the installed general (non-protocol) plugin `id`; `Err` says
    /// why not. Protocol plugins are refused (the admin's protocol list
    /// decides those).
    pub(crate) fn load_general(id: &str) -> Result<(), &'static str> {
        let c = cstring(id);
        // SAFETY: a valid C string.
        let p = unsafe { ffi::purple_plugins_find_with_id(c.as_ptr()) };
        if p.is_null() {
            return Err("not installed");
        }
        // SAFETY: a plugin from libpurple's list, alive for the process.
        let info = unsafe { (*p).info };
        // SAFETY: a non-NULL info of that plugin.
        if info.is_null() || unsafe { (*info).type_ } == ffi::PURPLE_PLUGIN_PROTOCOL {
            return Err("not a general plugin");
        }
        // SAFETY: as above.
        if unsafe { ffi::purple_plugin_is_loaded(p) } != ffi::GFALSE {
            return Ok(());
        }
        // SAFETY: as above; on the purple thread after core init.
        if unsafe { ffi::purple_plugin_load(p) } == ffi::GFALSE {
            return Err("it failed to load");
        }
        Ok(())
    }

    /// The installed protocol `id`.
    pub(crate) fn find(id: &str) -> Option<Protocol> {
        let c = cstring(id);
        // SAFETY: a valid C string.
        let p = unsafe { ffi::purple_find_prpl(c.as_ptr()) };
        // SAFETY: NULL or a loaded plugin.
        unsafe { Protocol::from_ptr(p) }.filter(|p| p.has_info())
    }

    fn info_ptr(self) -> *mut ffi::PurplePluginProtocolInfo {
        // SAFETY: a live plugin.
        let info = unsafe { (*self.raw()).info };
        if info.is_null() {
            return std::ptr::null_mut();
        }
        // SAFETY: a non-NULL plugin info; extra_info of a protocol plugin is
        // its PurplePluginProtocolInfo.
        unsafe { (*info).extra_info as *mut ffi::PurplePluginProtocolInfo }
    }

    fn has_info(self) -> bool {
        !self.info_ptr().is_null()
    }

    fn info(self) -> &'static ffi::PurplePluginProtocolInfo {
        let info = self.info_ptr();
        // SAFETY: checked non-NULL when the handle was made (`has_info`);
        // plugin info is static data of a plugin that stays loaded.
        unsafe { &*info }
    }

    pub(crate) fn id(self) -> String {
        // SAFETY: a live plugin.
        s(unsafe { ffi::purple_plugin_get_id(self.raw()) })
    }

    pub(crate) fn name(self) -> String {
        // SAFETY: a live plugin.
        s(unsafe { ffi::purple_plugin_get_name(self.raw()) })
    }

    /// The options its accounts have.
    pub(crate) fn options(self) -> Vec<AccountOption> {
        // SAFETY: the plugin's static list of options.
        let ptrs = unsafe { glue::glist::<ffi::PurpleAccountOption>(self.info().protocol_options) };
        ptrs.into_iter()
            // SAFETY: options live as long as the plugin.
            .filter_map(|p| unsafe { AccountOption::from_ptr(p) })
            .collect()
    }

    /// The declared option `setting`.
    pub(crate) fn option(self, setting: &str) -> Option<AccountOption> {
        self.options().into_iter().find(|o| o.setting() == setting)
    }

    pub(crate) fn user_splits(self) -> Vec<UserSplit> {
        // SAFETY: the plugin's static list of user splits.
        let ptrs = unsafe { glue::glist::<ffi::PurpleAccountUserSplit>(self.info().user_splits) };
        ptrs.into_iter()
            // SAFETY: splits live as long as the plugin.
            .filter_map(|p| unsafe { UserSplit::from_ptr(p) })
            .collect()
    }

    /// `OPT_PROTO_*` flags.
    pub(crate) fn flags(self) -> ffi::PurpleProtocolOptions {
        self.info().options
    }
}

impl AccountOption {
    fn setting_c(self) -> *const c_char {
        // SAFETY: a live option.
        unsafe { ffi::purple_account_option_get_setting(self.raw()) }
    }

    pub(crate) fn setting(self) -> String {
        s(self.setting_c())
    }

    pub(crate) fn text(self) -> String {
        // SAFETY: a live option.
        s(unsafe { ffi::purple_account_option_get_text(self.raw()) })
    }

    pub(crate) fn kind(self) -> OptionKind {
        // SAFETY: a live option.
        match unsafe { ffi::purple_account_option_get_type(self.raw()) } {
            ffi::PURPLE_PREF_BOOLEAN => OptionKind::Bool,
            ffi::PURPLE_PREF_INT => OptionKind::Int,
            ffi::PURPLE_PREF_STRING => OptionKind::Str,
            ffi::PURPLE_PREF_STRING_LIST => OptionKind::List,
            _ => OptionKind::Other,
        }
    }

    pub(crate) fn default_bool(self) -> bool {
        // SAFETY: a live option (asked only of boolean options).
        unsafe { ffi::purple_account_option_get_default_bool(self.raw()) != 0 }
    }

    pub(crate) fn default_int(self) -> c_int {
        // SAFETY: a live option (asked only of int options).
        unsafe { ffi::purple_account_option_get_default_int(self.raw()) }
    }

    fn default_c(self) -> *const c_char {
        match self.kind() {
            // SAFETY: a live string option.
            OptionKind::Str => unsafe { ffi::purple_account_option_get_default_string(self.raw()) },
            // SAFETY: a live list option.
            OptionKind::List => unsafe {
                ffi::purple_account_option_get_default_list_value(self.raw())
            },
            _ => std::ptr::null(),
        }
    }

    /// The default of a string or list option.
    pub(crate) fn default_string(self) -> String {
        s(self.default_c())
    }

    /// Whether a string option is masked (only string options have the
    /// flag: libpurple asserts when asked about the others).
    pub(crate) fn masked(self) -> bool {
        self.kind() == OptionKind::Str
            // SAFETY: a live string option.
            && unsafe { ffi::purple_account_option_get_masked(self.raw()) != 0 }
    }

    /// `(label, value)` choices of a list option.
    pub(crate) fn choices(self) -> Vec<(String, String)> {
        if self.kind() != OptionKind::List {
            return Vec::new();
        }
        // SAFETY: a live list option; its list of key/value pairs.
        let list = unsafe { ffi::purple_account_option_get_list(self.raw()) };
        // SAFETY: a valid GList of PurpleKeyValuePair.
        let pairs = unsafe { glue::glist::<ffi::PurpleKeyValuePair>(list) };
        pairs
            .into_iter()
            .map(|kv| {
                // SAFETY: a valid pair owned by the option; for list options
                // both key and value are strings.
                let kv = unsafe { &*kv };
                (s(kv.key), s(kv.value as *const c_char))
            })
            .collect()
    }

    /// Checks `value` against the declared type.
    pub(crate) fn check(self, value: &Value) -> Option<OptionValue> {
        match self.kind() {
            OptionKind::Bool => value.as_bool().map(OptionValue::Bool),
            OptionKind::Int => value
                .as_i64()
                .and_then(|v| c_int::try_from(v).ok())
                .map(OptionValue::Int),
            OptionKind::Str | OptionKind::List => value
                .as_str()
                .filter(|s| s.len() <= 4096 && !s.contains('\0'))
                .map(|s| OptionValue::Str(s.to_owned())),
            OptionKind::Other => None,
        }
    }
}

impl UserSplit {
    pub(crate) fn text(self) -> String {
        // SAFETY: a live split.
        s(unsafe { ffi::purple_account_user_split_get_text(self.raw()) })
    }

    pub(crate) fn default_value(self) -> String {
        // SAFETY: a live split.
        s(unsafe { ffi::purple_account_user_split_get_default_value(self.raw()) })
    }

    pub(crate) fn separator(self) -> char {
        // SAFETY: a live split.
        let c = unsafe { ffi::purple_account_user_split_get_separator(self.raw()) };
        c as u8 as char
    }
}

// ---- XML (the XMPP plugin's signals) ------------------------------------

handle!(
    /// An XML element the XMPP plugin hands a signal handler (valid for
    /// the call).
    XmlNode,
    ffi::xmlnode
);

impl XmlNode {
    /// The first child element `name`.
    pub(crate) fn child(self, name: &str) -> Option<XmlNode> {
        let n = cstring(name);
        // SAFETY: a live node and a valid C string.
        let c = unsafe { ffi::xmlnode_get_child(self.raw(), n.as_ptr()) };
        // SAFETY: NULL or its live child.
        unsafe { XmlNode::from_ptr(c) }
    }

    /// The first child element `name` in namespace `ns`.
    pub(crate) fn child_ns(self, name: &str, ns: &str) -> Option<XmlNode> {
        let (n, x) = (cstring(name), cstring(ns));
        // SAFETY: a live node and valid C strings.
        let c =
            unsafe { ffi::xmlnode_get_child_with_namespace(self.raw(), n.as_ptr(), x.as_ptr()) };
        // SAFETY: NULL or its live child.
        unsafe { XmlNode::from_ptr(c) }
    }

    /// The element's name.
    pub(crate) fn name(self) -> String {
        // SAFETY: a live node; its name is NULL or its own string.
        s(unsafe { (*self.raw()).name })
    }

    /// The first child element (any name).
    pub(crate) fn first_element(self) -> Option<XmlNode> {
        // SAFETY: a live node; its children are NULL or live nodes.
        let mut c = unsafe { (*self.raw()).child };
        while !c.is_null() {
            // SAFETY: a live child node.
            if unsafe { (*c).type_ } == ffi::XMLNODE_TYPE_TAG {
                // SAFETY: as above.
                return unsafe { XmlNode::from_ptr(c) };
            }
            // SAFETY: as above.
            c = unsafe { (*c).next };
        }
        None
    }

    /// Its text (all data children).
    pub(crate) fn text(self) -> Option<String> {
        // SAFETY: a live node; returns a new g_malloc'd string or NULL.
        let data = unsafe { ffi::xmlnode_get_data(self.raw()) };
        // SAFETY: ours to free.
        unsafe { glue::take_gstring(data) }
    }
}

// ---- connections ------------------------------------------------------

impl Connection {
    /// Makes the IRC plugin's send-queue timer fire now instead of at its
    /// next one-second tick (see `docs/irc.md`): the plugin's
    /// `g_timeout_add_seconds(1, irc_send_handler_cb, irc)` is the only
    /// GLib source whose user data is the connection's `proto_data` (the
    /// event-loop UI ops wrap every timeout libpurple asks for). Returns
    /// whether the source was found. Only meaningful for `prpl-irc`.
    pub(crate) fn kick_irc_send_queue(self) -> bool {
        // SAFETY: a live connection; reading its plugin data pointer.
        let data = unsafe { (*self.raw()).proto_data };
        if data.is_null() {
            return false;
        }
        // SAFETY: the default context (NULL) and an opaque pointer.
        let source =
            unsafe { ffi::g_main_context_find_source_by_user_data(std::ptr::null_mut(), data) };
        if source.is_null() {
            return false;
        }
        // SAFETY: a live source of the default context, on its owner thread.
        unsafe { ffi::g_source_set_ready_time(source, 0) };
        true
    }

    /// The name the network knows us by (the IRC nick), if set.
    pub(crate) fn display_name(self) -> Option<String> {
        // SAFETY: a live connection; the string is libpurple's, copied.
        opt_s(unsafe { ffi::purple_connection_get_display_name(self.raw()) })
    }

    pub(crate) fn account(self) -> Option<Account> {
        // SAFETY: a live connection.
        let a = unsafe { ffi::purple_connection_get_account(self.raw()) };
        // SAFETY: NULL or the connection's live account.
        unsafe { Account::from_ptr(a) }
    }

    pub(crate) fn is_connected(self) -> bool {
        // SAFETY: a live connection.
        unsafe { ffi::purple_connection_get_state(self.raw()) == ffi::PURPLE_CONNECTED }
    }

    fn prpl(self) -> Option<&'static ffi::PurplePluginProtocolInfo> {
        // SAFETY: a live connection.
        let plugin = unsafe { ffi::purple_connection_get_prpl(self.raw()) };
        // SAFETY: NULL or its loaded plugin.
        unsafe { Protocol::from_ptr(plugin) }
            .filter(|p| p.has_info())
            .map(Protocol::info)
    }

    /// Asks the server to join chat `name` with protocol `fields`
    /// (strings). `false` if the protocol has no chats.
    pub(crate) fn join_chat(self, name: &str, fields: &Map<String, Value>) -> bool {
        let Some(defaults) = self.prpl().and_then(|i| i.chat_info_defaults) else {
            return false;
        };
        let cname = cstring(name);
        // SAFETY: the protocol's own function on its live connection; it
        // returns a new table of g_malloc'd strings (or NULL).
        let mut table = unsafe { defaults(self.raw(), cname.as_ptr()) };
        if table.is_null() {
            // SAFETY: GLib's string hash functions; keys and values are
            // g_malloc'd strings freed by the table.
            table = unsafe {
                ffi::g_hash_table_new_full(
                    Some(ffi::g_str_hash),
                    Some(ffi::g_str_equal),
                    Some(ffi::g_free),
                    Some(ffi::g_free),
                )
            };
        }
        for (k, v) in fields {
            let k = cstring(k);
            let v = cstring(v.as_str().unwrap_or(""));
            // SAFETY: a valid C string; a new g_malloc'd copy.
            let key = unsafe { ffi::g_strdup(k.as_ptr()) };
            // SAFETY: a valid C string; a new g_malloc'd copy.
            let value = unsafe { ffi::g_strdup(v.as_ptr()) };
            // SAFETY: the table owns both copies from here.
            unsafe {
                ffi::g_hash_table_replace(table, key as ffi::gpointer, value as ffi::gpointer)
            };
        }
        // SAFETY: a live connection and a valid table (libpurple copies it).
        unsafe { ffi::serv_join_chat(self.raw(), table) };
        // SAFETY: our table, not used afterwards.
        unsafe { ffi::g_hash_table_destroy(table) };
        true
    }

    /// Sets a chat's topic; `false` if the protocol cannot.
    pub(crate) fn set_chat_topic(self, chat: Conversation, topic: &str) -> bool {
        let Some(set) = self.prpl().and_then(|i| i.set_chat_topic) else {
            return false;
        };
        let Some(id) = chat.chat_id() else {
            return false;
        };
        let t = cstring(topic);
        // SAFETY: the protocol's own function on its live connection.
        unsafe { set(self.raw(), id, t.as_ptr()) };
        true
    }

    /// Invites `who` to a joined chat.
    pub(crate) fn chat_invite(self, chat: Conversation, who: &str, message: &str) {
        let Some(id) = chat.chat_id() else {
            return;
        };
        let (who, message) = (cstring(who), cstring(message));
        // SAFETY: a live connection and valid C strings.
        unsafe { ffi::serv_chat_invite(self.raw(), id, message.as_ptr(), who.as_ptr()) };
    }

    /// Tells `name` our typing state.
    pub(crate) fn send_typing(self, name: &str, state: ffi::PurpleTypingState) {
        let c = cstring(name);
        // SAFETY: a live connection and a valid C string.
        unsafe { ffi::serv_send_typing(self.raw(), c.as_ptr(), state) };
    }
}

/// Whether libpurple gives up on a connection after this error.
pub(crate) fn error_is_fatal(reason: ffi::PurpleConnectionError) -> bool {
    // SAFETY: a pure function of an enum value.
    unsafe { ffi::purple_connection_error_is_fatal(reason) != ffi::GFALSE }
}

// ---- conversations ----------------------------------------------------

fn conv_type(kind: ConvKind) -> ffi::PurpleConversationType {
    match kind {
        ConvKind::Im => ffi::PURPLE_CONV_TYPE_IM,
        ConvKind::Chat => ffi::PURPLE_CONV_TYPE_CHAT,
    }
}

/// Roles of a chat member, as the protocol names them.
const ROLES: &[(ffi::PurpleConvChatBuddyFlags, &str)] = &[
    (ffi::PURPLE_CBFLAGS_FOUNDER, "founder"),
    (ffi::PURPLE_CBFLAGS_OP, "op"),
    (ffi::PURPLE_CBFLAGS_HALFOP, "halfop"),
    (ffi::PURPLE_CBFLAGS_VOICE, "voice"),
    (ffi::PURPLE_CBFLAGS_TYPING, "typing"),
    (ffi::PURPLE_CBFLAGS_AWAY, "away"),
];

/// What libpurple's command table did with a slash command.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum CmdResult {
    Ok,
    NotFound,
    WrongArgs,
    /// Registered, but not for this protocol or this kind of conversation.
    NotHere,
    Failed(Option<String>),
}

/// Every conversation libpurple has open, all accounts.
pub(crate) fn all_conversations() -> Vec<Conversation> {
    // SAFETY: libpurple's own list of live conversations (not ours to free).
    let list = unsafe { ffi::purple_get_conversations() };
    // SAFETY: a valid GList of PurpleConversation.
    let ptrs = unsafe { glue::glist::<ffi::PurpleConversation>(list) };
    ptrs.into_iter()
        // SAFETY: members of the list are live conversations.
        .filter_map(|p| unsafe { Conversation::from_ptr(p) })
        .collect()
}

impl Conversation {
    pub(crate) fn account(self) -> Option<Account> {
        // SAFETY: a live conversation.
        let a = unsafe { ffi::purple_conversation_get_account(self.raw()) };
        // SAFETY: NULL or its live account.
        unsafe { Account::from_ptr(a) }
    }

    pub(crate) fn kind(self) -> Option<ConvKind> {
        // SAFETY: a live conversation.
        match unsafe { ffi::purple_conversation_get_type(self.raw()) } {
            ffi::PURPLE_CONV_TYPE_IM => Some(ConvKind::Im),
            ffi::PURPLE_CONV_TYPE_CHAT => Some(ConvKind::Chat),
            _ => None,
        }
    }

    /// libpurple's name for it (not normalised).
    pub(crate) fn name(self) -> String {
        // SAFETY: a live conversation.
        s(unsafe { ffi::purple_conversation_get_name(self.raw()) })
    }

    /// Its account, kind and the name clients see (IM names normalised by
    /// the protocol, e.g. bare JIDs, lower-case IRC nicks).
    pub(crate) fn key(self) -> Option<(Account, ConvKind, String)> {
        let account = self.account()?;
        let kind = self.kind()?;
        let name = match kind {
            ConvKind::Im => {
                // SAFETY: a live conversation; its name string is libpurple's.
                let n = unsafe { ffi::purple_conversation_get_name(self.raw()) };
                account.normalize_c(n)
            }
            ConvKind::Chat => self.name(),
        };
        Some((account, kind, name))
    }

    fn chat_data(self) -> *mut ffi::PurpleConvChat {
        if self.kind() != Some(ConvKind::Chat) {
            return std::ptr::null_mut();
        }
        // SAFETY: a live chat conversation.
        unsafe { ffi::purple_conversation_get_chat_data(self.raw()) }
    }

    fn chat_id(self) -> Option<c_int> {
        let chat = self.chat_data();
        // SAFETY: a live chat's data.
        (!chat.is_null()).then(|| unsafe { ffi::purple_conv_chat_get_id(chat) })
    }

    /// A chat we are in (not marked left).
    pub(crate) fn is_joined_chat(self) -> bool {
        let chat = self.chat_data();
        // SAFETY: a live chat's data.
        !chat.is_null() && unsafe { ffi::purple_conv_chat_has_left(chat) } == 0
    }

    pub(crate) fn topic(self) -> Option<String> {
        let chat = self.chat_data();
        if chat.is_null() {
            return None;
        }
        // SAFETY: a live chat's data.
        opt_s(unsafe { ffi::purple_conv_chat_get_topic(chat) })
    }

    /// The chat member `name`.
    pub(crate) fn member(self, name: &str) -> Option<ChatBuddy> {
        let c = cstring(name);
        self.member_c(c.as_ptr())
    }

    fn member_c(self, name: *const c_char) -> Option<ChatBuddy> {
        let chat = self.chat_data();
        if chat.is_null() {
            return None;
        }
        // SAFETY: a live chat's data and a valid C string.
        let cb = unsafe { ffi::purple_conv_chat_cb_find(chat, name) };
        // SAFETY: NULL or a live member of the chat.
        unsafe { ChatBuddy::from_ptr(cb) }
    }

    /// Sends markup to an IM; `false` for a chat.
    pub(crate) fn send_im(self, markup: &CStr) -> bool {
        if self.kind() != Some(ConvKind::Im) {
            return false;
        }
        // SAFETY: a live IM conversation.
        let im = unsafe { ffi::purple_conversation_get_im_data(self.raw()) };
        if im.is_null() {
            return false;
        }
        // SAFETY: its live IM data and a valid C string.
        unsafe { ffi::purple_conv_im_send(im, markup.as_ptr()) };
        true
    }

    /// Sends markup to a joined chat; `false` if not joined.
    pub(crate) fn send_chat(self, markup: &CStr) -> bool {
        if !self.is_joined_chat() {
            return false;
        }
        // SAFETY: a joined chat's live data and a valid C string.
        unsafe { ffi::purple_conv_chat_send(self.chat_data(), markup.as_ptr()) };
        true
    }

    /// Runs `cmdline` (without its leading `/`) through libpurple's command
    /// table for this conversation's protocol.
    pub(crate) fn run_command(self, cmdline: &str, markup: &str) -> CmdResult {
        let cmd = cstring(cmdline);
        let m = cstring(markup);
        let mut error: *mut c_char = std::ptr::null_mut();
        // SAFETY: a live conversation, valid C strings, and an out pointer
        // libpurple may set to a string we then own.
        let status =
            unsafe { ffi::purple_cmd_do_command(self.raw(), cmd.as_ptr(), m.as_ptr(), &mut error) };
        // SAFETY: NULL or a string allocated for us.
        let message = unsafe { glue::take_gstring(error) };
        match status {
            ffi::PURPLE_CMD_STATUS_OK => CmdResult::Ok,
            ffi::PURPLE_CMD_STATUS_NOT_FOUND => CmdResult::NotFound,
            ffi::PURPLE_CMD_STATUS_WRONG_ARGS => CmdResult::WrongArgs,
            ffi::PURPLE_CMD_STATUS_WRONG_PRPL | ffi::PURPLE_CMD_STATUS_WRONG_TYPE => {
                CmdResult::NotHere
            }
            _ => CmdResult::Failed(message),
        }
    }

    /// Help texts of command `name` here (empty if there is none).
    pub(crate) fn command_help(self, name: &str) -> Vec<String> {
        let n = cstring(name);
        // SAFETY: a live conversation and a valid C string; a new list of
        // libpurple's own strings, ours to free (not its strings).
        let list = unsafe { ffi::purple_cmd_help(self.raw(), n.as_ptr()) };
        // SAFETY: a valid GList of valid C strings.
        let out = unsafe { glue::glist_strings(list) };
        // SAFETY: the list (not its data) is ours.
        unsafe { ffi::g_list_free(list) };
        out
    }

    /// Names of the commands available here.
    pub(crate) fn command_names(self) -> Vec<String> {
        // SAFETY: a live conversation; a new list of libpurple's strings.
        let list = unsafe { ffi::purple_cmd_list(self.raw()) };
        // SAFETY: a valid GList of valid C strings.
        let out = unsafe { glue::glist_strings(list) };
        // SAFETY: the list (not its data) is ours.
        unsafe { ffi::g_list_free(list) };
        out
    }

    /// Closes the conversation (leaving a chat); frees it.
    pub(crate) fn destroy(self) {
        // SAFETY: a live conversation, not used afterwards (consumed).
        unsafe { ffi::purple_conversation_destroy(self.raw()) };
    }
}

impl ChatBuddy {
    /// Name, alias and roles.
    pub(crate) fn describe(self) -> (String, Option<String>, Vec<&'static str>) {
        // SAFETY: a live member.
        let cb = unsafe { &*self.raw() };
        let roles = ROLES
            .iter()
            .filter(|(bit, _)| cb.flags & bit != 0)
            .map(|(_, n)| *n)
            .collect();
        (s(cb.name), opt_s(cb.alias), roles)
    }
}

// ---- buddies ----------------------------------------------------------

/// What a buddy's presence says.
pub(crate) struct Presence {
    pub(crate) online: bool,
    pub(crate) status: Option<String>,
    pub(crate) message: Option<String>,
}

impl Buddy {
    /// Every buddy in the list.
    pub(crate) fn all() -> Vec<Buddy> {
        // SAFETY: a new GSList of the listed buddies, ours to free.
        let list = unsafe { ffi::purple_blist_get_buddies() };
        // SAFETY: a valid GSList we own.
        let ptrs = unsafe { glue::take_gslist::<ffi::PurpleBuddy>(list) };
        ptrs.into_iter()
            // SAFETY: listed buddies are live.
            .filter_map(|p| unsafe { Buddy::from_ptr(p) })
            .collect()
    }

    pub(crate) fn account(self) -> Option<Account> {
        // SAFETY: a live buddy.
        let a = unsafe { ffi::purple_buddy_get_account(self.raw()) };
        // SAFETY: NULL or its live account.
        unsafe { Account::from_ptr(a) }
    }

    pub(crate) fn name(self) -> String {
        // SAFETY: a live buddy.
        s(unsafe { ffi::purple_buddy_get_name(self.raw()) })
    }

    pub(crate) fn alias(self) -> String {
        // SAFETY: a live buddy.
        s(unsafe { ffi::purple_buddy_get_alias(self.raw()) })
    }

    pub(crate) fn presence(self) -> Presence {
        // SAFETY: a live buddy.
        let presence = unsafe { ffi::purple_buddy_get_presence(self.raw()) };
        let status = if presence.is_null() {
            std::ptr::null_mut()
        } else {
            // SAFETY: the buddy's live presence.
            unsafe { ffi::purple_presence_get_active_status(presence) }
        };
        if status.is_null() {
            return Presence {
                online: false,
                status: None,
                message: None,
            };
        }
        // SAFETY: a live status (here and in the next two blocks).
        let online = unsafe { ffi::purple_status_is_online(status) } != 0;
        // SAFETY: as above.
        let id = s(unsafe { ffi::purple_status_get_id(status) });
        // SAFETY: as above, with a static attribute name.
        let message =
            opt_s(unsafe { ffi::purple_status_get_attr_string(status, c"message".as_ptr()) });
        Presence {
            online,
            status: Some(id),
            message,
        }
    }
}

// ---- requests ---------------------------------------------------------

/// The type of a request field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FieldKind {
    String,
    Integer,
    Boolean,
    Choice,
    List,
    Label,
    Image,
    Account,
    Unknown,
}

impl RequestFields {
    /// `(title, fields)` of each group.
    pub(crate) fn groups(self) -> Vec<(Option<String>, Vec<RequestField>)> {
        // SAFETY: live fields; their list of groups.
        let groups = unsafe { ffi::purple_request_fields_get_groups(self.raw()) };
        // SAFETY: a valid GList of groups owned by the fields.
        let groups = unsafe { glue::glist::<ffi::PurpleRequestFieldGroup>(groups) };
        groups
            .into_iter()
            .map(|g| {
                // SAFETY: a live group of these fields.
                let title = opt_s(unsafe { ffi::purple_request_field_group_get_title(g) });
                // SAFETY: as above.
                let fields = unsafe { ffi::purple_request_field_group_get_fields(g) };
                // SAFETY: a valid GList of the group's fields.
                let fields = unsafe { glue::glist::<ffi::PurpleRequestField>(fields) };
                let fields = fields
                    .into_iter()
                    // SAFETY: live fields of a live group.
                    .filter_map(|f| unsafe { RequestField::from_ptr(f) })
                    .collect();
                (title, fields)
            })
            .collect()
    }

    /// The field with id `id`.
    pub(crate) fn field(self, id: &str) -> Option<RequestField> {
        let c = cstring(id);
        // SAFETY: live fields and a valid C string.
        let f = unsafe { ffi::purple_request_fields_get_field(self.raw(), c.as_ptr()) };
        // SAFETY: NULL or a live field of these fields.
        unsafe { RequestField::from_ptr(f) }
    }

    pub(crate) fn all_required_filled(self) -> bool {
        // SAFETY: live fields.
        unsafe { ffi::purple_request_fields_all_required_filled(self.raw()) != 0 }
    }

    /// Frees the fields (when their request closes).
    pub(crate) fn destroy(self) {
        // SAFETY: fields handed to us by request_fields, freed once when
        // the request closes; not used afterwards.
        unsafe { ffi::purple_request_fields_destroy(self.raw()) };
    }

    /// The raw pointer, for the fields callback of this request.
    fn ptr(self) -> *mut ffi::PurpleRequestFields {
        self.raw()
    }
}

impl RequestField {
    pub(crate) fn id(self) -> String {
        // SAFETY: a live field.
        s(unsafe { ffi::purple_request_field_get_id(self.raw()) })
    }

    pub(crate) fn label(self) -> Option<String> {
        // SAFETY: a live field.
        opt_s(unsafe { ffi::purple_request_field_get_label(self.raw()) })
    }

    pub(crate) fn required(self) -> bool {
        // SAFETY: a live field.
        unsafe { ffi::purple_request_field_is_required(self.raw()) != 0 }
    }

    pub(crate) fn visible(self) -> bool {
        // SAFETY: a live field.
        unsafe { ffi::purple_request_field_is_visible(self.raw()) != 0 }
    }

    pub(crate) fn kind(self) -> FieldKind {
        // SAFETY: a live field.
        match unsafe { ffi::purple_request_field_get_type(self.raw()) } {
            ffi::PURPLE_REQUEST_FIELD_STRING => FieldKind::String,
            ffi::PURPLE_REQUEST_FIELD_INTEGER => FieldKind::Integer,
            ffi::PURPLE_REQUEST_FIELD_BOOLEAN => FieldKind::Boolean,
            ffi::PURPLE_REQUEST_FIELD_CHOICE => FieldKind::Choice,
            ffi::PURPLE_REQUEST_FIELD_LIST => FieldKind::List,
            ffi::PURPLE_REQUEST_FIELD_LABEL => FieldKind::Label,
            ffi::PURPLE_REQUEST_FIELD_IMAGE => FieldKind::Image,
            ffi::PURPLE_REQUEST_FIELD_ACCOUNT => FieldKind::Account,
            _ => FieldKind::Unknown,
        }
    }

    pub(crate) fn string_value(self) -> Option<String> {
        // SAFETY: a live string field.
        opt_s(unsafe { ffi::purple_request_field_string_get_value(self.raw()) })
    }

    pub(crate) fn string_masked(self) -> bool {
        // SAFETY: a live string field.
        unsafe { ffi::purple_request_field_string_is_masked(self.raw()) != 0 }
    }

    pub(crate) fn string_multiline(self) -> bool {
        // SAFETY: a live string field.
        unsafe { ffi::purple_request_field_string_is_multiline(self.raw()) != 0 }
    }

    pub(crate) fn int_value(self) -> c_int {
        // SAFETY: a live integer field.
        unsafe { ffi::purple_request_field_int_get_value(self.raw()) }
    }

    pub(crate) fn bool_value(self) -> bool {
        // SAFETY: a live boolean field.
        unsafe { ffi::purple_request_field_bool_get_value(self.raw()) != 0 }
    }

    pub(crate) fn choice_value(self) -> c_int {
        // SAFETY: a live choice field.
        unsafe { ffi::purple_request_field_choice_get_value(self.raw()) }
    }

    pub(crate) fn choice_labels(self) -> Vec<String> {
        // SAFETY: a live choice field; its list of labels.
        let l = unsafe { ffi::purple_request_field_choice_get_labels(self.raw()) };
        // SAFETY: a valid GList of strings.
        unsafe { glue::glist_strings(l) }
    }

    pub(crate) fn list_multi(self) -> bool {
        // SAFETY: a live list field.
        unsafe { ffi::purple_request_field_list_get_multi_select(self.raw()) != 0 }
    }

    pub(crate) fn list_items(self) -> Vec<String> {
        // SAFETY: a live list field.
        let l = unsafe { ffi::purple_request_field_list_get_items(self.raw()) };
        // SAFETY: a valid GList of strings.
        unsafe { glue::glist_strings(l) }
    }

    pub(crate) fn list_selected(self) -> Vec<String> {
        // SAFETY: a live list field.
        let l = unsafe { ffi::purple_request_field_list_get_selected(self.raw()) };
        // SAFETY: a valid GList of strings.
        unsafe { glue::glist_strings(l) }
    }

    pub(crate) fn account_value(self) -> Option<Account> {
        // SAFETY: a live account field.
        let a = unsafe { ffi::purple_request_field_account_get_value(self.raw()) };
        // SAFETY: NULL or a live account.
        unsafe { Account::from_ptr(a) }
    }

    pub(crate) fn set_string(self, v: &str) {
        let c = cstring(v);
        // SAFETY: a live string field; libpurple copies the string.
        unsafe { ffi::purple_request_field_string_set_value(self.raw(), c.as_ptr()) };
    }

    pub(crate) fn set_int(self, v: c_int) {
        // SAFETY: a live integer field.
        unsafe { ffi::purple_request_field_int_set_value(self.raw(), v) };
    }

    pub(crate) fn set_bool(self, v: bool) {
        // SAFETY: a live boolean field.
        unsafe { ffi::purple_request_field_bool_set_value(self.raw(), v.into()) };
    }

    pub(crate) fn set_choice(self, v: c_int) {
        // SAFETY: a live choice field.
        unsafe { ffi::purple_request_field_choice_set_value(self.raw(), v) };
    }

    pub(crate) fn set_list_selected(self, items: &[String]) {
        // SAFETY: a live list field.
        unsafe { ffi::purple_request_field_list_clear_selected(self.raw()) };
        for item in items {
            let c = cstring(item);
            // SAFETY: a live list field; libpurple copies the string.
            unsafe { ffi::purple_request_field_list_add_selected(self.raw(), c.as_ptr()) };
        }
    }
}

/// A libpurple callback with its user data, typed by what it takes. Kept
/// while its request is open (libpurple keeps `user_data` alive until it
/// closes the request).
#[derive(Clone, Copy)]
pub(crate) struct Callback<F: Copy> {
    cb: F,
    user_data: *mut c_void,
}

impl<F: Copy> Callback<F> {
    /// # Safety
    /// `cb` was handed to us by libpurple with `user_data` for the same
    /// request, and may be called with it until the request is closed.
    pub(crate) unsafe fn new(cb: F, user_data: *mut c_void) -> Callback<F> {
        Callback { cb, user_data }
    }
}

/// `void (*)(void *user_data, const char *value)` (input, file, folder).
pub(crate) type StringCb = Callback<unsafe extern "C" fn(*mut c_void, *const c_char)>;
/// `void (*)(void *user_data, int)` (choice, action).
pub(crate) type IntCb = Callback<unsafe extern "C" fn(*mut c_void, c_int)>;
/// `void (*)(void *user_data, PurpleRequestFields *)`.
pub(crate) type FieldsCb =
    Callback<unsafe extern "C" fn(*mut c_void, *mut ffi::PurpleRequestFields)>;
/// `void (*)(void *user_data)` (account authorization).
pub(crate) type UnitCb = Callback<unsafe extern "C" fn(*mut c_void)>;

/// Casts libpurple's generic `GCallback` to the type the request kind
/// documents for it.
///
/// # Safety
/// `cb` really has type `F` (a function pointer type).
pub(crate) unsafe fn cast_callback<F: Copy>(cb: ffi::GCallback) -> Option<F> {
    assert_eq!(
        std::mem::size_of::<F>(),
        std::mem::size_of::<unsafe extern "C" fn()>()
    );
    // SAFETY: `F` is a function pointer type of the same size (asserted)
    // and the function has that type (caller's contract), as C's
    // G_CALLBACK casts assume.
    cb.map(|f| unsafe { std::mem::transmute_copy::<unsafe extern "C" fn(), F>(&f) })
}

impl StringCb {
    pub(crate) fn call(self, value: Option<&CStr>) {
        let v = value.map_or(std::ptr::null(), CStr::as_ptr);
        // SAFETY: libpurple's callback for an open request with its data
        // (constructor's contract).
        unsafe { (self.cb)(self.user_data, v) };
    }
}

impl IntCb {
    pub(crate) fn call(self, value: c_int) {
        // SAFETY: as for StringCb::call.
        unsafe { (self.cb)(self.user_data, value) };
    }
}

impl FieldsCb {
    pub(crate) fn call(self, fields: RequestFields) {
        // SAFETY: as for StringCb::call; the fields are the request's.
        unsafe { (self.cb)(self.user_data, fields.ptr()) };
    }
}

impl UnitCb {
    pub(crate) fn call(self) {
        // SAFETY: as for StringCb::call.
        unsafe { (self.cb)(self.user_data) };
    }
}

/// Closes an open request libpurple made (its handle is our id); libpurple
/// then calls `close_request`.
pub(crate) fn close_request(kind: ffi::PurpleRequestType, id: i64) {
    // SAFETY: the handle we returned for this request; libpurple ignores a
    // handle it no longer knows.
    unsafe { ffi::purple_request_close(kind, id as usize as *mut c_void) };
}

// ---- DNS --------------------------------------------------------------

impl DnsQuery {
    pub(crate) fn host(self) -> String {
        // SAFETY: a live query.
        s(unsafe { ffi::purple_dnsquery_get_host(self.raw()) })
    }

    pub(crate) fn port(self) -> u16 {
        // SAFETY: a live query.
        unsafe { ffi::purple_dnsquery_get_port(self.raw()) }
    }

    /// A number that identifies the query while it is in flight.
    pub(crate) fn key(self) -> usize {
        self.raw() as usize
    }
}

/// A query's result callbacks.
#[derive(Clone, Copy)]
pub(crate) struct DnsCallbacks {
    resolved: ffi::PurpleDnsQueryResolvedCallback,
    failed: ffi::PurpleDnsQueryFailedCallback,
}

impl DnsCallbacks {
    /// # Safety
    /// The callbacks libpurple gave with a query, called only while it is
    /// in flight (not destroyed).
    pub(crate) unsafe fn new(
        resolved: ffi::PurpleDnsQueryResolvedCallback,
        failed: ffi::PurpleDnsQueryFailedCallback,
    ) -> DnsCallbacks {
        DnsCallbacks { resolved, failed }
    }

    /// Hands libpurple the addresses (it frees the list).
    pub(crate) fn resolved(self, query: DnsQuery, addrs: &[std::net::SocketAddr]) {
        let list = hosts_list(addrs);
        if let Some(cb) = self.resolved {
            // SAFETY: the query is in flight (constructor's contract); the
            // list is in the format libpurple expects and frees.
            unsafe { cb(query.raw(), list) };
        }
    }

    pub(crate) fn failed(self, query: DnsQuery, msg: &str) {
        let msg = cstring(msg);
        if let Some(cb) = self.failed {
            // SAFETY: the query is in flight; libpurple copies the message.
            unsafe { cb(query.raw(), msg.as_ptr()) };
        }
    }
}

/// libpurple's result list: alternating `GINT_TO_POINTER(addrlen)` and a
/// g_malloc'd `struct sockaddr` (libpurple frees both).
fn hosts_list(addrs: &[std::net::SocketAddr]) -> *mut ffi::GSList {
    use std::net::SocketAddr;
    let mut list: *mut ffi::GSList = std::ptr::null_mut();
    for addr in addrs {
        let (ptr, len) = match addr {
            SocketAddr::V4(a) => {
                // SAFETY: all-zero is a valid sockaddr_in.
                let mut sa: libc::sockaddr_in = unsafe { std::mem::zeroed() };
                sa.sin_family = libc::AF_INET as libc::sa_family_t;
                sa.sin_port = a.port().to_be();
                sa.sin_addr.s_addr = u32::from_ne_bytes(a.ip().octets());
                let len = std::mem::size_of::<libc::sockaddr_in>();
                (copy_to_glib(&sa), len)
            }
            SocketAddr::V6(a) => {
                // SAFETY: all-zero is a valid sockaddr_in6.
                let mut sa: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
                sa.sin6_family = libc::AF_INET6 as libc::sa_family_t;
                sa.sin6_port = a.port().to_be();
                sa.sin6_addr.s6_addr = a.ip().octets();
                sa.sin6_flowinfo = a.flowinfo();
                sa.sin6_scope_id = a.scope_id();
                let len = std::mem::size_of::<libc::sockaddr_in6>();
                (copy_to_glib(&sa), len)
            }
        };
        // SAFETY: appending to our own list (a length as a pointer, as
        // GINT_TO_POINTER does).
        list = unsafe { ffi::g_slist_append(list, len as ffi::gpointer) };
        // SAFETY: as above, with the g_malloc'd address.
        list = unsafe { ffi::g_slist_append(list, ptr) };
    }
    list
}

/// A g_malloc'd copy of a plain C struct.
fn copy_to_glib<T: Copy>(src: &T) -> ffi::gpointer {
    let len = std::mem::size_of::<T>();
    // SAFETY: g_malloc aborts rather than return NULL for len > 0.
    let dst = unsafe { ffi::g_malloc(len) };
    // SAFETY: `dst` has room for `len` bytes and does not overlap `src`.
    unsafe { std::ptr::copy_nonoverlapping(src as *const T as *const u8, dst as *mut u8, len) };
    dst
}

// ---- core -------------------------------------------------------------

/// Activates a new transient saved status with `primitive` and `message`
/// (markup) for every account.
pub(crate) fn set_global_status(primitive: ffi::PurpleStatusPrimitive, message: Option<&CStr>) {
    let m = message.map_or(std::ptr::null(), CStr::as_ptr);
    // The same status and message as an earlier call reuse its saved
    // status: one per call would grow `status.xml` without bound (#10).
    // SAFETY: core initialised; `m` is NULL or a valid C string.
    let found = unsafe { ffi::purple_savedstatus_find_transient_by_type_and_message(primitive, m) };
    let saved = if found.is_null() {
        // SAFETY: a new transient saved status (NULL title).
        let saved = unsafe { ffi::purple_savedstatus_new(std::ptr::null(), primitive) };
        if !m.is_null() {
            // SAFETY: the live saved status; libpurple copies the message.
            unsafe { ffi::purple_savedstatus_set_message(saved, m) };
        }
        saved
    } else {
        found
    };
    // SAFETY: the live saved status.
    unsafe { ffi::purple_savedstatus_activate(saved) };
    prune_transient_statuses(MAX_TRANSIENT_STATUSES);
}

/// Transient saved statuses kept: libpurple itself prunes them only when
/// it shuts down cleanly, so distinct messages would pile up until then.
pub(crate) const MAX_TRANSIENT_STATUSES: usize = 16;

/// Deletes the oldest transient saved statuses beyond `keep`, never the
/// current, default or idle-away one.
fn prune_transient_statuses(keep: usize) {
    // SAFETY: core initialised; libpurple's own list, not freed by us.
    let all = unsafe { ffi::purple_savedstatuses_get_all() };
    // SAFETY: a valid GList of saved statuses.
    let items = unsafe { glue::glist::<ffi::PurpleSavedStatus>(all) };
    // SAFETY: core initialised.
    let current = unsafe { ffi::purple_savedstatus_get_current() };
    // SAFETY: core initialised.
    let default = unsafe { ffi::purple_savedstatus_get_default() };
    // SAFETY: core initialised.
    let idleaway = unsafe { ffi::purple_savedstatus_get_idleaway() };
    let mut transient: Vec<(ffi::time_t, *mut ffi::PurpleSavedStatus)> = items
        .into_iter()
        .filter(|&p| p != current && p != default && p != idleaway)
        // SAFETY: members of libpurple's live list.
        .filter(|&p| unsafe { ffi::purple_savedstatus_is_transient(p) } != ffi::GFALSE)
        // SAFETY: as above.
        .map(|p| (unsafe { ffi::purple_savedstatus_get_creation_time(p) }, p))
        .collect();
    // The current one is kept besides these.
    let keep = keep.saturating_sub(1);
    if transient.len() <= keep {
        return;
    }
    transient.sort_by_key(|&(t, _)| std::cmp::Reverse(t));
    for &(_, p) in &transient[keep..] {
        // SAFETY: a live saved status that is not in use (checked above);
        // the list pointer taken earlier is not used after this.
        unsafe { ffi::purple_savedstatus_delete_by_status(p) };
    }
}

/// At start-up: go online with the startup status on every account.
pub(crate) fn go_online() {
    // SAFETY: core initialised (start-up runs after purple_core_init).
    unsafe { ffi::purple_network_force_online() };
    // SAFETY: as above; returns libpurple's startup status.
    let startup = unsafe { ffi::purple_savedstatus_get_startup() };
    // SAFETY: as above, with that status.
    unsafe { ffi::purple_savedstatus_activate(startup) };
    // SAFETY: as above.
    unsafe { ffi::purple_accounts_restore_current_statuses() };
}
