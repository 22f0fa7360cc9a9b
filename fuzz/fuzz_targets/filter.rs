//! Filter parsing and matching: [`FieldFilter::parse`] on any `filter=` values, and
//! `matches_json` / `matches` on any event.
//!
//! The input is the conditions, one per line, then a NUL byte, then the event bytes (JSON
//! or not). The filter must agree with a model written here from its documentation alone:
//! - `FIELD=VALUE` / `FIELD!=VALUE`, split at the first `=`; a field must be a dotted path
//!   with no empty segment, else 400 `invalid-filter` with one of the library's fixed
//!   reasons, never the client's text;
//! - `=` on the same field: any may match; every `!=` must hold; different fields: all;
//! - a string field matches by its text, any other by its JSON text; a missing field
//!   matches no `=` and every `!=`; an event that is not JSON matches no `=`.
#![no_main]

#[path = "refusal.rs"]
mod refusal;

use std::collections::BTreeMap;
use std::sync::OnceLock;

use kafka_sse::{Error, FieldFilter, Filter, Message};
use libfuzzer_sys::fuzz_target;
use refusal::assert_fixed_refusal;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let (conditions, event) = match data.iter().position(|&b| b == 0) {
        Some(nul) => (&data[..nul], &data[nul + 1..]),
        None => (data, &b""[..]),
    };
    let Ok(conditions) = std::str::from_utf8(conditions) else {
        return;
    };
    let conditions: Vec<&str> = match conditions {
        "" => Vec::new(),
        lines => lines.split('\n').collect(),
    };

    match (FieldFilter::parse(&conditions), Model::parse(&conditions)) {
        (Ok(filter), Some(model)) => {
            assert_eq!(filter.is_empty(), conditions.is_empty());
            let expected = match serde_json::from_slice::<Value>(event) {
                Ok(json) => {
                    let expected = model.matches(&json);
                    assert_eq!(
                        filter.matches_json(&json),
                        expected,
                        "{conditions:?} {json}"
                    );
                    expected
                }
                Err(_) => model.matches_not_json(),
            };
            let message = Message::new("fuzz", 0, 0, event.to_vec());
            assert_eq!(filter.matches(&message, event), expected, "{conditions:?}");
        }
        (Err(error), None) => {
            assert!(
                matches!(error, Error::InvalidFilter { .. }),
                "unexpected error {error:?}"
            );
            assert_fixed_refusal(&error, reasons());
        }
        (parsed, model) => panic!(
            "{conditions:?}: the filter says {parsed:?}, the documented syntax says {model:?}"
        ),
    }
});

/// Every reason `FieldFilter::parse` gives, from conditions that provoke each.
fn reasons() -> &'static [String] {
    static REASONS: OnceLock<Vec<String>> = OnceLock::new();
    REASONS.get_or_init(|| {
        ["no-operator", "=x", "a..b=x"]
            .into_iter()
            .filter_map(|condition| FieldFilter::parse([condition]).err())
            .map(|error| error.problem().detail)
            .collect()
    })
}

/// The documented filter semantics, written independently of the library's code.
#[derive(Debug, Default)]
struct Model {
    /// Per dotted path: the `=` values, then the `!=` values.
    fields: BTreeMap<Vec<String>, (Vec<String>, Vec<String>)>,
}

impl Model {
    fn parse(conditions: &[&str]) -> Option<Model> {
        let mut model = Model::default();
        for condition in conditions {
            let equals = condition.find('=')?;
            let (field, value) = (&condition[..equals], &condition[equals + 1..]);
            let (field, negated) = match field.strip_suffix('!') {
                Some(field) => (field, true),
                None => (field, false),
            };
            let path: Vec<String> = field.split('.').map(str::to_owned).collect();
            if path.iter().any(|segment| segment.is_empty()) {
                return None;
            }
            let (any_of, none_of) = model.fields.entry(path).or_default();
            if negated {
                none_of.push(value.to_owned());
            } else {
                any_of.push(value.to_owned());
            }
        }
        Some(model)
    }

    fn matches(&self, event: &Value) -> bool {
        self.fields.iter().all(|(path, (any_of, none_of))| {
            let mut found = Some(event);
            for key in path {
                found = match found {
                    Some(Value::Object(fields)) => fields.get(key),
                    _ => None,
                };
            }
            match found.map(text_of) {
                None => any_of.is_empty(),
                Some(text) => {
                    (any_of.is_empty() || any_of.contains(&text)) && !none_of.contains(&text)
                }
            }
        })
    }

    fn matches_not_json(&self) -> bool {
        self.fields.values().all(|(any_of, _)| any_of.is_empty())
    }
}

fn text_of(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}
