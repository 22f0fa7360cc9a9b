//! Filters: which events a client receives.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::Value;

use crate::{Error, Message};

/// Decides whether an event is sent to the client.
///
/// Filters run after the [`Deserializer`](crate::Deserializer), on the event data. A dropped
/// event still moves the client's position forward, and while a filter drops everything the
/// stream sends an id-only frame at most once per heartbeat interval, so a reconnect does not
/// re-read what was already skipped.
///
/// Ready-made: [`FieldFilter`]; [`filter_fn`] adapts a closure.
pub trait Filter: Send + Sync + 'static {
    /// Whether to send the event whose data is `data`.
    fn matches(&self, message: &Message, data: &[u8]) -> bool;
}

/// A [`Filter`] from a closure.
///
/// ```
/// use kafka_sse::{filter_fn, Filter, Message};
///
/// let even_offsets = filter_fn(|message: &Message, _data: &[u8]| message.offset() % 2 == 0);
/// assert!(even_offsets.matches(&Message::new("t", 0, 2, "{}"), b"{}"));
/// ```
pub fn filter_fn<F>(matches: F) -> FilterFn<F>
where
    F: Fn(&Message, &[u8]) -> bool + Send + Sync + 'static,
{
    FilterFn(matches)
}

/// The filter returned by [`filter_fn`].
#[derive(Clone, Copy)]
pub struct FilterFn<F>(F);

impl<F> Filter for FilterFn<F>
where
    F: Fn(&Message, &[u8]) -> bool + Send + Sync + 'static,
{
    fn matches(&self, message: &Message, data: &[u8]) -> bool {
        (self.0)(message, data)
    }
}

impl<F> fmt::Debug for FilterFn<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FilterFn").finish_non_exhaustive()
    }
}

/// Field conditions on the event JSON, in the `filter=FIELD=VALUE` / `filter=FIELD!=VALUE`
/// query syntax.
///
/// `FIELD` is a dotted path into the event (`meta.domain`). Conditions on the same field
/// with `=` are alternatives (any may match); every `!=` must hold; conditions on different
/// fields must all hold. A value matches a string field by its text and any other field by
/// its JSON text (`bot=true`, `namespace=0`). A missing field matches no `=` and every `!=`.
/// Events that are not JSON match no `=` condition.
///
/// ```
/// use kafka_sse::{FieldFilter, Filter, Message};
///
/// let filter = FieldFilter::parse(["wiki=enwiki", "wiki=dewiki", "bot!=true"]).unwrap();
/// let event = br#"{"wiki":"dewiki","bot":false}"#;
/// assert!(filter.matches(&Message::new("rc", 0, 0, &event[..]), event));
/// let bot = br#"{"wiki":"enwiki","bot":true}"#;
/// assert!(!filter.matches(&Message::new("rc", 0, 1, &bot[..]), bot));
/// assert!(FieldFilter::parse(["no-operator"]).is_err());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldFilter {
    fields: BTreeMap<Vec<String>, FieldCondition>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct FieldCondition {
    any_of: Vec<String>,
    none_of: Vec<String>,
}

impl FieldFilter {
    /// Parses conditions like `meta.domain=en.wikipedia.org` or `bot!=true`.
    ///
    /// An empty list gives a filter that matches everything.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidFilter`] for a condition without `=`, or with an empty field or an
    /// empty path segment.
    pub fn parse<I, S>(conditions: I) -> Result<Self, Error>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut filter = FieldFilter::default();
        for condition in conditions {
            filter.add(condition.as_ref())?;
        }
        Ok(filter)
    }

    /// Whether the filter has no condition and so matches everything.
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    fn add(&mut self, condition: &str) -> Result<(), Error> {
        let (field, negated, value) = match condition.split_once('=') {
            Some((field, value)) => match field.strip_suffix('!') {
                Some(field) => (field, true, value),
                None => (field, false, value),
            },
            None => {
                return Err(Error::invalid_filter(
                    "expected FIELD=VALUE or FIELD!=VALUE",
                ))
            }
        };
        let path: Vec<String> = field.split('.').map(str::to_owned).collect();
        if path.iter().any(String::is_empty) {
            return Err(Error::invalid_filter(
                "the field must be a dotted path such as meta.domain",
            ));
        }
        let entry = self.fields.entry(path).or_default();
        if negated {
            entry.none_of.push(value.to_owned());
        } else {
            entry.any_of.push(value.to_owned());
        }
        Ok(())
    }

    /// Whether the event JSON satisfies every condition.
    pub fn matches_json(&self, event: &Value) -> bool {
        self.fields.iter().all(|(path, condition)| {
            let found = path.iter().try_fold(event, |value, key| value.get(key));
            let text = found.map(|value| match value {
                Value::String(text) => text.clone(),
                other => other.to_string(),
            });
            let any = condition.any_of.is_empty()
                || text.as_ref().is_some_and(|t| condition.any_of.contains(t));
            let none = text.as_ref().is_none_or(|t| !condition.none_of.contains(t));
            any && none
        })
    }
}

impl Filter for FieldFilter {
    fn matches(&self, _message: &Message, data: &[u8]) -> bool {
        if self.is_empty() {
            return true;
        }
        match serde_json::from_slice::<Value>(data) {
            Ok(event) => self.matches_json(&event),
            Err(_) => self.fields.values().all(|c| c.any_of.is_empty()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn matches(conditions: &[&str], event: Value) -> bool {
        FieldFilter::parse(conditions).unwrap().matches_json(&event)
    }

    #[test]
    fn same_field_is_or_and_different_fields_are_and() {
        let event = json!({"wiki": "enwiki", "type": "edit"});
        assert!(matches(&["wiki=dewiki", "wiki=enwiki"], event.clone()));
        assert!(!matches(&["wiki=enwiki", "type=new"], event.clone()));
        assert!(matches(&["wiki=enwiki", "type=edit"], event));
    }

    #[test]
    fn dotted_paths_numbers_and_booleans() {
        let event = json!({"meta": {"domain": "canary"}, "namespace": 0, "bot": false});
        assert!(!matches(&["meta.domain!=canary"], event.clone()));
        assert!(matches(&["namespace=0", "bot=false"], event.clone()));
        assert!(matches(&["missing.field!=x"], event.clone()));
        assert!(!matches(&["missing.field=x"], event));
    }

    #[test]
    fn malformed_conditions_are_client_errors() {
        for bad in ["wiki", "=x", "meta..domain=x", ".a=b", "!=x"] {
            let err = FieldFilter::parse([bad]).unwrap_err();
            assert!(err.is_client_error(), "{bad}");
        }
    }

    #[test]
    fn values_may_contain_equals_signs() {
        assert!(matches(&["title=a=b"], json!({"title": "a=b"})));
        assert!(matches(&["title="], json!({"title": ""})));
    }

    #[test]
    fn non_json_events_match_only_negations() {
        let message = Message::new("t", 0, 0, "x");
        assert!(!FieldFilter::parse(["a=b"])
            .unwrap()
            .matches(&message, b"not json"));
        assert!(FieldFilter::parse(["a!=b"])
            .unwrap()
            .matches(&message, b"not json"));
    }
}
