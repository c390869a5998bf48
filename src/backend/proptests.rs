//! Property tests of the parsers that see hostile input first: request
//! parameters, text from IM networks, option names, `backend.toml`, user
//! names. Each property holds for every input proptest generates: no
//! panic, and the output keeps its promise.

use proptest::prelude::*;
use serde_json::{Map, Value};

use super::config::BackendConfig;
use super::policy::option_refused;
use super::protocol::{clean_incoming, Params, MAX_INCOMING_TEXT};

/// Any JSON value, nested a few levels.
fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        ".{0,40}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map("[a-z_]{1,12}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

const KEYS: &[&str] = &[
    "account",
    "conversation",
    "name",
    "text",
    "enabled",
    "options",
    "since",
    "limit",
];

proptest! {
    #[test]
    fn params_answer_every_shape_without_panicking(values in prop::collection::vec(json(), 8)) {
        let map: Map<String, Value> = KEYS.iter().map(|k| k.to_string()).zip(values).collect();
        let p = Params(&map);
        for key in KEYS {
            let _ = p.str(key);
            let _ = p.opt_str(key);
            let _ = p.bool(key);
            let _ = p.u64(key);
            let _ = p.opt_u64(key);
            let _ = p.i64(key);
            let _ = p.object(key);
        }
        if let Ok((_, name)) = p.conversation() {
            prop_assert!(map["conversation"]["name"].as_str() == Some(name));
        }
    }

    #[test]
    fn incoming_text_is_bounded_and_free_of_nul(s in ".{0,200}", repeat in 0usize..3000) {
        let text = s.repeat(repeat);
        let (clean, truncated) = clean_incoming(text.clone());
        prop_assert!(clean.len() <= MAX_INCOMING_TEXT);
        prop_assert!(!clean.contains('\0'));
        prop_assert_eq!(truncated, text.replace('\0', "\u{FFFD}").len() > MAX_INCOMING_TEXT);
    }

    #[test]
    fn option_names_never_panic_and_commands_are_always_refused(
        prefix in "[a-zA-Z_]{0,10}", suffix in "[a-zA-Z_]{0,10}"
    ) {
        let _ = option_refused("prpl-x", &format!("{prefix}{suffix}"));
        let name = format!("{prefix}_command_{suffix}");
        prop_assert!(option_refused("prpl-x", &name).is_some(), "{}", name);
    }

    #[test]
    fn any_backend_toml_parses_or_names_an_error(text in ".{0,200}") {
        match BackendConfig::parse(std::path::Path::new("b.toml"), &text) {
            Ok(_) => {}
            Err(e) => prop_assert!(e.to_string().starts_with("b.toml")),
        }
    }

    #[test]
    fn user_names_accepted_are_safe_as_unit_and_file_names(s in ".{0,40}") {
        if let Ok(u) = crate::username::Username::parse(&s) {
            let name = u.as_str();
            prop_assert!(!name.is_empty() && name.len() <= 32);
            prop_assert!(name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-'));
            prop_assert!(!name.starts_with('-'));
        }
    }
}
