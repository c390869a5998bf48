//! Small helpers for crossing the C boundary (purple thread only): C
//! strings and GLib lists. Used by [`super::handles`] and the UI-ops
//! callbacks, which receive C strings from libpurple.

use std::ffi::{c_char, CStr, CString};

use super::ffi;

pub(crate) const UI_ID_C: &CStr = c"sapphire";

/// A C string from Rust text; interior NULs (refused earlier by request
/// validation) are replaced rather than panicking.
pub(crate) fn cstring(s: &str) -> CString {
    CString::new(s.replace('\0', "\u{FFFD}")).expect("no NUL left")
}

/// Owned, lossily decoded copy of a C string (`None` for NULL).
///
/// # Safety
/// `p` is NULL or a valid NUL-terminated string.
pub(crate) unsafe fn opt_string(p: *const c_char) -> Option<String> {
    if p.is_null() {
        None
    } else {
        // SAFETY: not NULL, and valid per the caller's contract.
        let s = unsafe { CStr::from_ptr(p) };
        Some(s.to_string_lossy().into_owned())
    }
}

/// Like [`opt_string`], with `""` for NULL.
///
/// # Safety
/// `p` is NULL or a valid NUL-terminated string.
pub(crate) unsafe fn string(p: *const c_char) -> String {
    // SAFETY: the caller's contract is opt_string's.
    unsafe { opt_string(p) }.unwrap_or_default()
}

/// Takes ownership of a g_malloc'd string.
///
/// # Safety
/// `p` is NULL or a g_malloc'd NUL-terminated string nobody else frees.
pub(crate) unsafe fn take_gstring(p: *mut c_char) -> Option<String> {
    // SAFETY: valid string per the caller's contract.
    let s = unsafe { opt_string(p) };
    if !p.is_null() {
        // SAFETY: g_malloc'd and ours to free (caller's contract).
        unsafe { ffi::g_free(p as ffi::gpointer) };
    }
    s
}

/// The data pointers of a GList (the list itself is not freed).
///
/// # Safety
/// `list` is NULL or a valid GList that is not modified while iterating.
pub(crate) unsafe fn glist<T>(mut list: *mut ffi::GList) -> Vec<*mut T> {
    let mut out = Vec::new();
    while !list.is_null() {
        // SAFETY: a valid, non-NULL list node (caller's contract).
        let node = unsafe { &*list };
        out.push(node.data as *mut T);
        list = node.next;
    }
    out
}

/// The data pointers of a GSList, which is then freed (not its data).
///
/// # Safety
/// `list` is NULL or a valid GSList owned by the caller.
pub(crate) unsafe fn take_gslist<T>(list: *mut ffi::GSList) -> Vec<*mut T> {
    let mut out = Vec::new();
    let mut l = list;
    while !l.is_null() {
        // SAFETY: a valid, non-NULL list node (caller's contract).
        let node = unsafe { &*l };
        out.push(node.data as *mut T);
        l = node.next;
    }
    // SAFETY: the caller owns the list; its data is not freed.
    unsafe { ffi::g_slist_free(list) };
    out
}

/// The strings of a GList of C strings.
///
/// # Safety
/// `list` is NULL or a valid GList of valid C strings.
pub(crate) unsafe fn glist_strings(list: *mut ffi::GList) -> Vec<String> {
    // SAFETY: caller's contract.
    let items = unsafe { glist::<c_char>(list) };
    items
        .into_iter()
        // SAFETY: every item is a valid C string (caller's contract).
        .map(|p| unsafe { string(p) })
        .collect()
}

/// Plain text from libpurple's HTML-ish message markup.
///
/// # Safety
/// `p` is NULL or a valid NUL-terminated string.
pub(crate) unsafe fn markup_to_text(p: *const c_char) -> String {
    if p.is_null() {
        return String::new();
    }
    // SAFETY: a valid string; the result is a new g_malloc'd string.
    let stripped = unsafe { ffi::purple_markup_strip_html(p) };
    // SAFETY: g_malloc'd by libpurple for us.
    unsafe { take_gstring(stripped) }.unwrap_or_default()
}

/// Plain text from libpurple markup held in a Rust string.
pub(crate) fn markup_str_to_text(markup: &str) -> String {
    let c = cstring(markup);
    // SAFETY: a valid C string that outlives the call.
    unsafe { markup_to_text(c.as_ptr()) }
}

/// libpurple markup from plain text: escaped, newlines as `<br>`.
pub(crate) fn text_to_markup(text: &str) -> CString {
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\n' => out.push_str("<br>"),
            '\r' | '\0' => {}
            c => out.push(c),
        }
    }
    cstring(&out)
}
