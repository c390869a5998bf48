//! Small helpers for crossing the C boundary (purple thread only).

use std::ffi::{c_char, CStr, CString};

use super::ffi;

pub const UI_ID_C: &CStr = c"sapphire";

/// A C string from Rust text; interior NULs (refused earlier by request
/// validation) are replaced rather than panicking.
pub fn cstring(s: &str) -> CString {
    CString::new(s.replace('\0', "\u{FFFD}")).expect("no NUL left")
}

/// Owned, lossily decoded copy of a C string (`None` for NULL).
///
/// # Safety
/// `p` is NULL or a valid NUL-terminated string.
pub unsafe fn opt_string(p: *const c_char) -> Option<String> {
    if p.is_null() {
        None
    } else {
        Some(unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned())
    }
}

/// Like [`opt_string`], with `""` for NULL.
///
/// # Safety
/// `p` is NULL or a valid NUL-terminated string.
pub unsafe fn string(p: *const c_char) -> String {
    unsafe { opt_string(p) }.unwrap_or_default()
}

/// Takes ownership of a g_malloc'd string.
///
/// # Safety
/// `p` is NULL or a g_malloc'd NUL-terminated string nobody else frees.
pub unsafe fn take_gstring(p: *mut c_char) -> Option<String> {
    let s = unsafe { opt_string(p) };
    if !p.is_null() {
        unsafe { ffi::g_free(p as ffi::gpointer) };
    }
    s
}

/// The data pointers of a GList.
///
/// # Safety
/// `list` is NULL or a valid GList that is not modified while iterating.
pub unsafe fn glist<T>(mut list: *mut ffi::GList) -> Vec<*mut T> {
    let mut out = Vec::new();
    while !list.is_null() {
        unsafe {
            out.push((*list).data as *mut T);
            list = (*list).next;
        }
    }
    out
}

/// Plain text from libpurple's HTML-ish message markup.
///
/// # Safety
/// `p` is NULL or a valid NUL-terminated string.
pub unsafe fn markup_to_text(p: *const c_char) -> String {
    if p.is_null() {
        return String::new();
    }
    unsafe { take_gstring(ffi::purple_markup_strip_html(p)) }.unwrap_or_default()
}

/// libpurple markup from plain text: escaped, newlines as `<br>`.
pub fn text_to_markup(text: &str) -> CString {
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
