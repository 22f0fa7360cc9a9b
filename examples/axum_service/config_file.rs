//! The `--config` file: `[[stream]]` tables and a `[kafka]` table of librdkafka properties.

use std::path::Path;

use anyhow::Context as _;
use serde::Deserialize;

use crate::catalog::StreamDef;

/// What the `--config` file holds; empty without one.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// The `[[stream]]` tables.
    #[serde(default, rename = "stream")]
    pub streams: Vec<StreamDef>,
    /// The `[kafka]` table, read by [`KafkaSettings`](crate::kafka_config::KafkaSettings).
    #[serde(default)]
    kafka: toml::Table,
}

impl ConfigFile {
    /// Reads the file at `path`, or nothing without one.
    ///
    /// # Errors
    ///
    /// An unreadable file, or one that is not TOML of this shape. The message names the
    /// line and the key, and quotes no value: the `[kafka]` table may hold secrets.
    pub fn read(path: Option<&Path>) -> anyhow::Result<ConfigFile> {
        let Some(path) = path else {
            return Ok(ConfigFile::default());
        };
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the config file {}", path.display()))?;
        toml::from_str(&text).map_err(|error| {
            let line = error
                .span()
                .map(|span| 1 + text[..span.start].matches('\n').count());
            let at = line
                .map(|line| format!(", line {line}"))
                .unwrap_or_default();
            anyhow::anyhow!(
                "parsing the config file {}{at}: {}",
                path.display(),
                error.message()
            )
        })
    }

    /// The `[kafka]` table.
    pub fn kafka(&self) -> &toml::Table {
        &self.kafka
    }
}
