//! The streams a service offers, and how a request's comma-separated names and filters
//! become the library's allow-list and filter.
//!
//! A stream may have aliases: other names for the same stream, as EventStreams serves
//! `recentchange` also as `mediawiki.recentchange`. A request may mix names and aliases;
//! each stream, and each topic, is read once.

use std::collections::BTreeSet;

use anyhow::bail;
use http::StatusCode;
use kafka_sse::{FieldFilter, Filter, Message, Problem};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::cli::Cli;

/// The most streams one request may name in `/v2/stream/{a,b,...}`.
pub const MAX_STREAMS_PER_REQUEST: usize = 16;

/// One named stream: what `/v2/streams` lists and `/v2/stream/{name}` reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = Stream)]
pub struct StreamDef {
    /// The name clients use in the URL.
    pub name: String,
    /// Other names that serve the same stream.
    #[serde(default)]
    pub aliases: Vec<String>,
    /// The Kafka topics it reads.
    pub topics: Vec<String>,
    /// A sentence for people choosing a stream.
    #[serde(default)]
    pub description: String,
    /// Whether canary events (`meta.domain == "canary"`, written by monitoring to prove the
    /// pipeline is alive) are kept from clients.
    #[serde(default)]
    pub drop_canary: bool,
}

/// The streams of one service, in the order they were configured.
#[derive(Debug, Clone)]
pub struct Catalog {
    streams: Vec<StreamDef>,
}

/// What one request's stream names resolve to.
#[derive(Debug, Clone)]
pub struct Selection {
    /// The streams' names (not the aliases asked for), joined by commas: the stream label
    /// in logs and metrics.
    pub label: String,
    /// The union of the streams' topics: the request's allow-list.
    pub topics: Vec<String>,
    /// The topics of the selected streams that drop canary events.
    pub drop_canary_on: BTreeSet<String>,
}

impl Catalog {
    /// The streams of the `--config` file (`from_file`) and of `--stream`, or `defaults`
    /// when neither gives any.
    ///
    /// # Errors
    ///
    /// A name, alias or topic that is empty or not `[A-Za-z0-9._-]`, or a name or alias
    /// used twice.
    pub fn from_cli(
        cli: &Cli,
        from_file: Vec<StreamDef>,
        defaults: Vec<StreamDef>,
    ) -> anyhow::Result<Catalog> {
        let mut streams = from_file;
        streams.extend(cli.streams.iter().map(|arg| StreamDef {
            name: arg.name.clone(),
            aliases: arg.aliases.clone(),
            topics: arg.topics.clone(),
            description: String::new(),
            drop_canary: false,
        }));
        if streams.is_empty() {
            streams = defaults;
        }
        Catalog::new(streams)
    }

    /// Checks and keeps `streams`.
    ///
    /// # Errors
    ///
    /// See [`Catalog::from_cli`].
    pub fn new(streams: Vec<StreamDef>) -> anyhow::Result<Catalog> {
        let mut names = BTreeSet::new();
        for stream in &streams {
            check_name("stream name", &stream.name)?;
            if stream.topics.is_empty() {
                bail!("stream {:?} has no topics", stream.name);
            }
            for topic in &stream.topics {
                check_name("topic", topic)?;
            }
            if !names.insert(&stream.name) {
                bail!("stream {:?} is defined twice", stream.name);
            }
            for alias in &stream.aliases {
                check_name("stream alias", alias)?;
                if !names.insert(alias) {
                    bail!(
                        "{alias:?}, an alias of stream {:?}, is defined twice",
                        stream.name
                    );
                }
            }
        }
        Ok(Catalog { streams })
    }

    /// Every stream, in configuration order.
    pub fn streams(&self) -> &[StreamDef] {
        &self.streams
    }

    /// The stream named `name`, by its name or one of its aliases.
    pub fn find(&self, name: &str) -> Option<&StreamDef> {
        self.streams
            .iter()
            .find(|s| s.name == name || s.aliases.iter().any(|a| a == name))
    }

    /// Resolves `a,b,...`, names or aliases, to the union of those streams' topics.
    ///
    /// # Errors
    ///
    /// A 404 problem naming the first unknown stream, or a 400 for more than
    /// [`MAX_STREAMS_PER_REQUEST`] names.
    pub fn select(&self, names: &str) -> Result<Selection, Problem> {
        if names.split(',').count() > MAX_STREAMS_PER_REQUEST {
            return Err(Problem::new(
                StatusCode::BAD_REQUEST,
                "too-many-streams-requested",
                format!("a request may name at most {MAX_STREAMS_PER_REQUEST} streams"),
            ));
        }
        let mut selection = Selection {
            label: String::new(),
            topics: Vec::new(),
            drop_canary_on: BTreeSet::new(),
        };
        let mut seen = BTreeSet::new();
        for name in names.split(',') {
            let Some(stream) = self.find(name) else {
                return Err(Problem::new(
                    StatusCode::NOT_FOUND,
                    "unknown-stream",
                    format!("there is no stream named {name:?}; GET /v2/streams lists them"),
                ));
            };
            if !seen.insert(&stream.name) {
                continue;
            }
            if !selection.label.is_empty() {
                selection.label.push(',');
            }
            selection.label.push_str(&stream.name);
            for topic in &stream.topics {
                if !selection.topics.contains(topic) {
                    selection.topics.push(topic.clone());
                }
                if stream.drop_canary {
                    selection.drop_canary_on.insert(topic.clone());
                }
            }
        }
        Ok(selection)
    }
}

fn check_name(what: &str, name: &str) -> anyhow::Result<()> {
    let valid = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    if name.is_empty() || !name.chars().all(valid) {
        bail!("{what} {name:?} must be non-empty and use only letters, digits, '.', '_' and '-'");
    }
    Ok(())
}

/// The filter of one request: the client's `filter=` conditions, and canary events dropped
/// on the topics of streams configured to drop them.
///
/// Each event is parsed once for both.
#[derive(Debug)]
pub struct EventFilter {
    fields: FieldFilter,
    drop_canary_on: BTreeSet<String>,
}

impl EventFilter {
    /// The filter for `conditions` (the `filter` query values) on `selection`, or `None`
    /// when it would let every event through.
    ///
    /// # Errors
    ///
    /// [`kafka_sse::Error::InvalidFilter`] for a malformed condition.
    pub fn new(
        conditions: &[String],
        selection: &Selection,
    ) -> Result<Option<EventFilter>, kafka_sse::Error> {
        let fields = FieldFilter::parse(conditions)?;
        if fields.is_empty() && selection.drop_canary_on.is_empty() {
            return Ok(None);
        }
        Ok(Some(EventFilter {
            fields,
            drop_canary_on: selection.drop_canary_on.clone(),
        }))
    }
}

impl Filter for EventFilter {
    fn matches(&self, message: &Message, data: &[u8]) -> bool {
        let drop_canary = self.drop_canary_on.contains(message.topic());
        if !drop_canary {
            return self.fields.matches(message, data);
        }
        match serde_json::from_slice::<Value>(data) {
            Ok(event) => {
                let canary =
                    event.pointer("/meta/domain").and_then(Value::as_str) == Some("canary");
                !canary && self.fields.matches_json(&event)
            }
            Err(_) => self.fields.matches(message, data),
        }
    }
}
