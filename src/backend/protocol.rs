//! Protocol types shared by the server and the libpurple side.
//! The protocol itself is documented in `docs/protocol.md`.

use serde_json::{json, Map, Value};

/// Version of the protocol spoken on the WebSocket (`hello` reply).
pub const PROTOCOL_VERSION: u32 = 2;

/// Largest accepted WebSocket message or frame (close 1009 above it).
pub const MAX_FRAME: usize = 1 << 20;

/// Events a client may have queued before it is closed with 1008.
pub const CLIENT_QUEUE: usize = 1024;

/// Largest message text accepted from a client (bytes).
pub const MAX_TEXT: usize = 64 * 1024;

/// Largest text from an IM network kept in an event (bytes); longer text is
/// cut at a character boundary and marked `"truncated": true`.
pub const MAX_INCOMING_TEXT: usize = 256 * 1024;

/// A failed request: a machine-readable code and a message for people.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct OpError {
    pub code: &'static str,
    pub message: String,
}

impl OpError {
    pub fn new(code: &'static str, message: impl Into<String>) -> OpError {
        OpError {
            code,
            message: message.into(),
        }
    }
    pub fn bad_request(message: impl Into<String>) -> OpError {
        OpError::new("bad_request", message)
    }
    pub fn internal(message: impl std::fmt::Display) -> OpError {
        OpError::new("internal", message.to_string())
    }
}

pub type OpResult = Result<Value, OpError>;

/// Reply for a request id.
pub fn reply_ok(id: &Value, result: Value) -> String {
    let mut m = match result {
        Value::Object(m) => m,
        Value::Null => Map::new(),
        other => {
            let mut m = Map::new();
            m.insert("result".into(), other);
            m
        }
    };
    m.insert("re".into(), id.clone());
    m.insert("ok".into(), Value::Bool(true));
    Value::Object(m).to_string()
}

pub fn reply_err(id: &Value, err: &OpError) -> String {
    json!({"re": id, "ok": false, "error": {"code": err.code, "message": err.message}}).to_string()
}

/// Typed access to request parameters with precise error replies.
pub struct Params<'a>(pub &'a Map<String, Value>);

impl<'a> Params<'a> {
    pub fn opt(&self, key: &str) -> Option<&'a Value> {
        self.0.get(key).filter(|v| !v.is_null())
    }

    pub fn str(&self, key: &str) -> Result<&'a str, OpError> {
        match self.opt(key) {
            Some(Value::String(s)) => Ok(s),
            Some(_) => Err(OpError::bad_request(format!("'{key}' must be a string"))),
            None => Err(OpError::bad_request(format!("'{key}' is required"))),
        }
    }

    pub fn opt_str(&self, key: &str) -> Result<Option<&'a str>, OpError> {
        match self.opt(key) {
            None => Ok(None),
            Some(_) => self.str(key).map(Some),
        }
    }

    pub fn bool(&self, key: &str) -> Result<bool, OpError> {
        match self.opt(key) {
            Some(Value::Bool(b)) => Ok(*b),
            Some(_) => Err(OpError::bad_request(format!("'{key}' must be a boolean"))),
            None => Err(OpError::bad_request(format!("'{key}' is required"))),
        }
    }

    pub fn u64(&self, key: &str) -> Result<u64, OpError> {
        match self.opt(key) {
            Some(v) => v.as_u64().ok_or_else(|| {
                OpError::bad_request(format!("'{key}' must be a non-negative integer"))
            }),
            None => Err(OpError::bad_request(format!("'{key}' is required"))),
        }
    }

    pub fn opt_u64(&self, key: &str) -> Result<Option<u64>, OpError> {
        match self.opt(key) {
            None => Ok(None),
            Some(_) => self.u64(key).map(Some),
        }
    }

    pub fn i64(&self, key: &str) -> Result<i64, OpError> {
        match self.opt(key) {
            Some(v) => v
                .as_i64()
                .ok_or_else(|| OpError::bad_request(format!("'{key}' must be an integer"))),
            None => Err(OpError::bad_request(format!("'{key}' is required"))),
        }
    }

    pub fn object(&self, key: &str) -> Result<Option<&'a Map<String, Value>>, OpError> {
        match self.opt(key) {
            None => Ok(None),
            Some(Value::Object(m)) => Ok(Some(m)),
            Some(_) => Err(OpError::bad_request(format!("'{key}' must be an object"))),
        }
    }

    /// `conversation: {kind: "im"|"chat", name}`.
    pub fn conversation(&self) -> Result<(ConvKind, &'a str), OpError> {
        let conv = self
            .object("conversation")?
            .ok_or_else(|| OpError::bad_request("'conversation' is required"))?;
        let p = Params(conv);
        let kind = match p.str("kind")? {
            "im" => ConvKind::Im,
            "chat" => ConvKind::Chat,
            _ => {
                return Err(OpError::bad_request(
                    "conversation kind must be 'im' or 'chat'",
                ))
            }
        };
        let name = p.str("name")?;
        if name.is_empty() || name.len() > 1024 || name.contains('\0') {
            return Err(OpError::bad_request("bad conversation name"));
        }
        Ok((kind, name))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ConvKind {
    Im,
    Chat,
}

impl ConvKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ConvKind::Im => "im",
            ConvKind::Chat => "chat",
        }
    }
}

/// Makes text from an IM network safe to store and show: valid UTF-8 (the
/// caller converts lossily), no NUL, bounded length.
pub fn clean_incoming(mut text: String) -> (String, bool) {
    if text.contains('\0') {
        text = text.replace('\0', "\u{FFFD}");
    }
    if text.len() <= MAX_INCOMING_TEXT {
        return (text, false);
    }
    let mut cut = MAX_INCOMING_TEXT;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    text.truncate(cut);
    (text, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_incoming_bounds_text() {
        let (t, cut) = clean_incoming("a\0b".into());
        assert_eq!(t, "a\u{FFFD}b");
        assert!(!cut);
        let long = "é".repeat(MAX_INCOMING_TEXT);
        let (t, cut) = clean_incoming(long);
        assert!(cut);
        assert!(t.len() <= MAX_INCOMING_TEXT);
    }

    #[test]
    fn params_report_precise_errors() {
        let v = json!({"a": 1, "s": "x", "c": {"kind": "group", "name": "n"}});
        let p = Params(v.as_object().unwrap());
        assert_eq!(p.str("a").unwrap_err().message, "'a' must be a string");
        assert_eq!(p.str("zz").unwrap_err().message, "'zz' is required");
        assert_eq!(p.u64("a").unwrap(), 1);
        assert!(p.conversation().is_err());
    }
}
