//! The events the backend emits (`docs/protocol.md`, "Events"), as one
//! type: built by the producers (the purple layer, `mark_read`, the hub at
//! start-up), folded into the live snapshot by the hub and persisted by the
//! store. Serialised with its `op` tag; the hub adds `seq` and `time`.

use serde::Serialize;
use serde_json::{Map, Value};

use super::protocol::ConvKind;

/// `{kind, name}` of a conversation (with a separate `account`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub(crate) struct ConvRef {
    pub(crate) kind: ConvKind,
    pub(crate) name: String,
}

impl ConvRef {
    pub(crate) fn chat(name: impl Into<String>) -> ConvRef {
        ConvRef {
            kind: ConvKind::Chat,
            name: name.into(),
        }
    }
    pub(crate) fn im(name: impl Into<String>) -> ConvRef {
        ConvRef {
            kind: ConvKind::Im,
            name: name.into(),
        }
    }
}

fn is_false(b: &bool) -> bool {
    !b
}

/// A `message` event.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Message {
    pub(crate) account: i64,
    pub(crate) conversation: ConvRef,
    pub(crate) sender: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) alias: Option<String>,
    pub(crate) text: String,
    pub(crate) direction: Direction,
    #[serde(skip_serializing_if = "is_false")]
    pub(crate) truncated: bool,
    #[serde(skip_serializing_if = "is_false")]
    pub(crate) mention: bool,
    /// A `/me` action (IRC CTCP ACTION, XMPP `/me`): `text` is without the
    /// `/me ` prefix.
    #[serde(skip_serializing_if = "is_false")]
    pub(crate) action: bool,
    #[serde(skip_serializing_if = "is_false")]
    pub(crate) delayed: bool,
    /// Unix ms it was originally sent (with `delayed`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) sent: Option<i64>,
    /// An outgoing line still waiting for the account's pace (IRC): a
    /// `message.sent` event naming this one's `seq` follows when it is
    /// handed to the network.
    #[serde(skip_serializing_if = "is_false")]
    pub(crate) queued: bool,
}

impl Message {
    /// A message as it is most often: no alias, not truncated, none of the
    /// flags (`mention`, `action`, `delayed`, `queued`) and no original
    /// time. Others start here with struct update syntax.
    pub(crate) fn plain(
        account: i64,
        conversation: ConvRef,
        sender: impl Into<String>,
        text: impl Into<String>,
        direction: Direction,
    ) -> Message {
        Message {
            account,
            conversation,
            sender: sender.into(),
            alias: None,
            text: text.into(),
            direction,
            truncated: false,
            mention: false,
            action: false,
            delayed: false,
            sent: None,
            queued: false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Direction {
    In,
    Out,
    System,
}

impl Direction {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Direction::In => "in",
            Direction::Out => "out",
            Direction::System => "system",
        }
    }
}

/// A chat member.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Member {
    pub(crate) name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) alias: Option<String>,
    pub(crate) flags: Vec<&'static str>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Renamed {
    pub(crate) from: String,
    pub(crate) to: String,
}

/// The buddy object (`buddy.added`, `buddy.presence`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct BuddyInfo {
    pub(crate) account: i64,
    pub(crate) name: String,
    pub(crate) alias: String,
    pub(crate) online: bool,
    pub(crate) status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) message: Option<String>,
}

/// A `notice` event: `level` and some of the other fields.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub(crate) struct Notice {
    pub(crate) level: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) kind: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) account: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) title: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) primary: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) secondary: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) text: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) who: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) uri: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) alias: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) message: Option<String>,
}

/// An action of a prompt.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Action {
    pub(crate) id: usize,
    pub(crate) label: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Choice {
    pub(crate) value: i32,
    pub(crate) label: String,
}

/// What is particular to each kind of prompt.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub(crate) enum RequestDetails {
    Input {
        default_value: Option<String>,
        multiline: bool,
        masked: bool,
        hint: Option<String>,
    },
    Choice {
        choices: Vec<Choice>,
        default: i32,
    },
    Action {
        default_action: i32,
    },
    Fields {
        /// `[{title, fields: [...]}]` (see the protocol).
        groups: Value,
    },
    File {
        filename: Option<String>,
        save: bool,
    },
    Folder {
        dirname: Option<String>,
    },
    Authorize {
        alias: Option<String>,
        message: Option<String>,
        on_list: bool,
    },
}

/// A `request.open` event.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct RequestOpen {
    /// Its id: the `seq` of this event.
    pub(crate) request: u64,
    pub(crate) title: Option<String>,
    pub(crate) primary: Option<String>,
    pub(crate) secondary: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) account: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) who: Option<String>,
    pub(crate) actions: Vec<Action>,
    #[serde(flatten)]
    pub(crate) details: RequestDetails,
}

/// Every event, tagged by `op` on the wire.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "op")]
pub(crate) enum Event {
    #[serde(rename = "account.added")]
    AccountAdded { account: i64, info: Value },
    #[serde(rename = "account.updated")]
    AccountUpdated { account: i64, info: Value },
    #[serde(rename = "account.removed")]
    AccountRemoved { account: i64 },
    #[serde(rename = "account.status")]
    AccountStatus {
        account: i64,
        status: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        message: Option<String>,
    },
    /// After `status.set`.
    #[serde(rename = "status")]
    Status {
        status: String,
        message: Option<String>,
    },
    #[serde(rename = "message")]
    Message(Message),
    /// A queued outgoing line was handed to the network (`message`: the
    /// `seq` of its `message` event), or could not be (`error`).
    #[serde(rename = "message.sent")]
    MessageSent {
        account: i64,
        conversation: ConvRef,
        message: u64,
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
    /// A `chat.join` the server refused (IRC 403/405/471/473/474/475/477…):
    /// `message` is the server's reason.
    #[serde(rename = "chat.join_failed")]
    ChatJoinFailed {
        account: i64,
        conversation: ConvRef,
        message: String,
    },
    #[serde(rename = "read")]
    Read {
        account: i64,
        conversation: ConvRef,
        read_seq: u64,
    },
    #[serde(rename = "chat.joined")]
    ChatJoined { account: i64, conversation: ConvRef },
    #[serde(rename = "chat.left")]
    ChatLeft {
        account: i64,
        conversation: ConvRef,
        #[serde(skip_serializing_if = "Option::is_none")]
        reason: Option<&'static str>,
    },
    #[serde(rename = "chat.topic")]
    ChatTopic {
        account: i64,
        conversation: ConvRef,
        topic: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        by: Option<String>,
    },
    #[serde(rename = "chat.members")]
    ChatMembers {
        account: i64,
        conversation: ConvRef,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        added: Vec<Member>,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        removed: Vec<String>,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        renamed: Vec<Renamed>,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        updated: Vec<Member>,
    },
    #[serde(rename = "buddy.added")]
    BuddyAdded(BuddyInfo),
    #[serde(rename = "buddy.presence")]
    BuddyPresence(BuddyInfo),
    #[serde(rename = "buddy.removed")]
    BuddyRemoved { account: i64, name: String },
    #[serde(rename = "typing")]
    Typing {
        account: i64,
        conversation: ConvRef,
        state: &'static str,
    },
    #[serde(rename = "request.open")]
    RequestOpen(RequestOpen),
    #[serde(rename = "request.close")]
    RequestClose {
        request: i64,
        #[serde(skip_serializing_if = "Option::is_none")]
        answered: Option<bool>,
        #[serde(skip_serializing_if = "Option::is_none")]
        reason: Option<&'static str>,
    },
    #[serde(rename = "notice")]
    Notice(Notice),
    /// The whole notification settings after a change (`backend::notify`).
    #[serde(rename = "notify.changed")]
    NotifyChanged { levels: Value, highlights: Value },
}

impl Event {
    /// The `op` on the wire.
    pub(crate) fn op(&self) -> &'static str {
        match self {
            Event::AccountAdded { .. } => "account.added",
            Event::AccountUpdated { .. } => "account.updated",
            Event::AccountRemoved { .. } => "account.removed",
            Event::AccountStatus { .. } => "account.status",
            Event::Status { .. } => "status",
            Event::Message(_) => "message",
            Event::MessageSent { .. } => "message.sent",
            Event::ChatJoinFailed { .. } => "chat.join_failed",
            Event::Read { .. } => "read",
            Event::ChatJoined { .. } => "chat.joined",
            Event::ChatLeft { .. } => "chat.left",
            Event::ChatTopic { .. } => "chat.topic",
            Event::ChatMembers { .. } => "chat.members",
            Event::BuddyAdded(_) => "buddy.added",
            Event::BuddyPresence(_) => "buddy.presence",
            Event::BuddyRemoved { .. } => "buddy.removed",
            Event::Typing { .. } => "typing",
            Event::RequestOpen(_) => "request.open",
            Event::RequestClose { .. } => "request.close",
            Event::Notice(_) => "notice",
            Event::NotifyChanged { .. } => "notify.changed",
        }
    }

    /// Whether it changes an account (the status line may change).
    pub(crate) fn is_account_event(&self) -> bool {
        self.op().starts_with("account.")
    }

    /// The JSON object sent to clients, with its `seq` and `time`.
    pub(crate) fn to_wire(&self, seq: u64, time: i64) -> Map<String, Value> {
        let mut m = match serde_json::to_value(self) {
            Ok(Value::Object(m)) => m,
            // Every variant serialises to an object with `op`.
            _ => unreachable!("an event is a JSON object"),
        };
        m.insert("seq".into(), seq.into());
        m.insert("time".into(), time.into());
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn wire(e: &Event) -> Value {
        Value::Object(e.to_wire(7, 1000))
    }

    #[test]
    fn events_serialise_as_documented() {
        let m = Event::Message(Message {
            mention: true,
            ..Message::plain(1, ConvRef::chat("#a"), "bob", "hi", Direction::In)
        });
        assert_eq!(
            wire(&m),
            json!({"op": "message", "seq": 7, "time": 1000, "account": 1,
                "conversation": {"kind": "chat", "name": "#a"}, "sender": "bob",
                "text": "hi", "direction": "in", "mention": true})
        );
        let q = Event::MessageSent {
            account: 1,
            conversation: ConvRef::chat("#a"),
            message: 5,
            error: None,
        };
        assert_eq!(
            wire(&q),
            json!({"op": "message.sent", "seq": 7, "time": 1000, "account": 1,
                "conversation": {"kind": "chat", "name": "#a"}, "message": 5})
        );
        let s = Event::Status {
            status: "away".into(),
            message: None,
        };
        assert_eq!(
            wire(&s),
            json!({"op": "status", "seq": 7, "time": 1000, "status": "away", "message": null})
        );
        let r = Event::RequestOpen(RequestOpen {
            request: 7,
            title: Some("t".into()),
            primary: None,
            secondary: None,
            account: Some(2),
            who: None,
            actions: vec![Action {
                id: 0,
                label: "OK".into(),
            }],
            details: RequestDetails::Input {
                default_value: None,
                multiline: false,
                masked: true,
                hint: None,
            },
        });
        assert_eq!(
            wire(&r),
            json!({"op": "request.open", "seq": 7, "time": 1000, "request": 7,
                "kind": "input", "title": "t", "primary": null, "secondary": null,
                "account": 2, "actions": [{"id": 0, "label": "OK"}],
                "default_value": null, "multiline": false, "masked": true, "hint": null})
        );
        let c = Event::ChatMembers {
            account: 1,
            conversation: ConvRef::chat("#a"),
            added: vec![],
            removed: vec!["x".into()],
            renamed: vec![],
            updated: vec![],
        };
        assert_eq!(
            wire(&c),
            json!({"op": "chat.members", "seq": 7, "time": 1000, "account": 1,
                "conversation": {"kind": "chat", "name": "#a"}, "removed": ["x"]})
        );
        let b = Event::BuddyPresence(BuddyInfo {
            account: 1,
            name: "bob".into(),
            alias: "Bob".into(),
            online: false,
            status: None,
            message: None,
        });
        assert_eq!(
            wire(&b),
            json!({"op": "buddy.presence", "seq": 7, "time": 1000, "account": 1,
                "name": "bob", "alias": "Bob", "online": false, "status": null})
        );
    }
}
