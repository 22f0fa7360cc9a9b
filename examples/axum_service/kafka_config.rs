//! The Kafka client settings: any librdkafka property, from the `[kafka]` table of the
//! `--config` file and from `--kafka`, `--kafka-from-env` and `--kafka-from-file`.
//!
//! A secret (a password, a key) can come from an environment variable or a file, so that it
//! need not sit in a process listing, a shell history or the config file. No value of a
//! secret-like property is ever shown: not in `Debug`, not in a log line, not in an error.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::fmt;
use std::path::PathBuf;

use anyhow::{bail, Context as _};
use kafka_sse::rdkafka::ClientConfig;

/// Where one property's value comes from.
#[derive(Clone, PartialEq, Eq)]
pub enum Source {
    /// The value itself.
    Literal(String),
    /// The environment variable of this name.
    Env(String),
    /// The file at this path, without one trailing line break.
    File(PathBuf),
}

/// One `--kafka`, `--kafka-from-env` or `--kafka-from-file` argument, as given.
///
/// It is checked when the service starts, not by the flag parser, whose error would echo
/// the whole argument, and with it a value that may be a secret.
#[derive(Clone)]
pub struct KafkaArg {
    flag: &'static str,
    text: String,
}

impl KafkaArg {
    /// `--kafka KEY=VALUE`.
    pub fn literal(text: &str) -> Result<Self, Infallible> {
        Ok(KafkaArg::new("--kafka", text))
    }

    /// `--kafka-from-env KEY=VAR`.
    pub fn env(text: &str) -> Result<Self, Infallible> {
        Ok(KafkaArg::new("--kafka-from-env", text))
    }

    /// `--kafka-from-file KEY=PATH`.
    pub fn file(text: &str) -> Result<Self, Infallible> {
        Ok(KafkaArg::new("--kafka-from-file", text))
    }

    fn new(flag: &'static str, text: &str) -> Self {
        KafkaArg {
            flag,
            text: text.to_owned(),
        }
    }

    /// The property and where its value comes from.
    ///
    /// # Errors
    ///
    /// When there is no `=` or no key; the message names the flag, never the argument.
    fn parse(&self) -> anyhow::Result<(String, Source)> {
        let Some((key, value)) = self.text.split_once('=') else {
            bail!("{} expects KEY=VALUE; an argument has no '='", self.flag);
        };
        let key = key.trim();
        if key.is_empty() {
            bail!("{} expects KEY=VALUE; an argument has no key", self.flag);
        }
        let source = match self.flag {
            "--kafka-from-env" => Source::Env(value.to_owned()),
            "--kafka-from-file" => Source::File(value.into()),
            _ => Source::Literal(value.to_owned()),
        };
        Ok((key.to_owned(), source))
    }
}

impl fmt::Debug for KafkaArg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.parse() {
            Ok((key, source)) => write!(f, "{} {}", self.flag, Shown(&key, &source)),
            Err(_) => write!(f, "{} [malformed]", self.flag),
        }
    }
}

/// The librdkafka properties of the service, with their values read.
///
/// The command line overrides the config file; one property given twice on the command
/// line is an error.
#[derive(Clone, Default)]
pub struct KafkaSettings {
    settings: BTreeMap<String, (Source, String)>,
}

impl KafkaSettings {
    /// The settings of the `[kafka]` table and of the command line's `args`, with every
    /// value from the environment or a file read now.
    ///
    /// # Errors
    ///
    /// A malformed argument or table entry, a property given twice on the command line, an
    /// environment variable that is not set, or a file that cannot be read; each names the
    /// property and where its value was to come from, never a value.
    pub fn new(table: &toml::Table, args: &[&KafkaArg]) -> anyhow::Result<Self> {
        let mut sources = BTreeMap::new();
        flatten(table, "", &mut sources)?;
        let mut on_command_line = BTreeMap::new();
        for arg in args {
            let (key, source) = arg.parse()?;
            if on_command_line.insert(key.clone(), arg.flag).is_some() {
                bail!("kafka property {key} is given twice on the command line");
            }
            if let (Source::Literal(_), true) = (&source, is_secret(&key)) {
                tracing::warn!(
                    "kafka property {key} is given on the command line, where the process \
                     listing shows it; --kafka-from-env or --kafka-from-file keep it out"
                );
            }
            sources.insert(key, source);
        }
        let mut settings = BTreeMap::new();
        for (key, source) in sources {
            let value = read(&key, &source)?;
            settings.insert(key, (source, value));
        }
        Ok(KafkaSettings { settings })
    }

    /// The value of `key`, if set.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.settings.get(key).map(|(_, value)| value.as_str())
    }

    /// Whether no property is set.
    pub fn is_empty(&self) -> bool {
        self.settings.is_empty()
    }

    /// Sets every property on `config`.
    pub fn apply(&self, config: &mut ClientConfig) {
        for (key, (_, value)) in &self.settings {
            config.set(key, value);
        }
    }
}

impl fmt::Display for KafkaSettings {
    /// `key=value, ...`, with the values of secret-like properties redacted and the others
    /// shown, or where they come from.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (n, (key, (source, _))) in self.settings.iter().enumerate() {
            if n > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{}", Shown(key, source))?;
        }
        Ok(())
    }
}

impl fmt::Debug for KafkaSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KafkaSettings({self})")
    }
}

/// A property as logs show it: `key=value`, `key=env:VAR`, `key=file:PATH`, or
/// `key=[redacted]` for the literal value of a secret-like property.
struct Shown<'a>(&'a str, &'a Source);

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Shown(key, source) = self;
        match source {
            Source::Literal(_) if is_secret(key) => write!(f, "{key}=[redacted]"),
            Source::Literal(value) => write!(f, "{key}={value}"),
            Source::Env(name) => write!(f, "{key}=env:{name}"),
            Source::File(path) => write!(f, "{key}=file:{}", path.display()),
        }
    }
}

/// Whether a property may hold a credential (as the library redacts them): passwords,
/// secrets, tokens, private keys, JAAS and OAUTHBEARER configurations; not the paths of
/// files (`*.location`), which are shown.
pub fn is_secret(key: &str) -> bool {
    let hints = [
        "password",
        "secret",
        "token",
        "jaas",
        "credential",
        "key",
        "oauthbearer.config",
    ];
    !key.ends_with(".location") && hints.iter().any(|hint| key.contains(hint))
}

/// Collects the `[kafka]` table's entries: `"sasl.password" = "..."`, or dotted keys
/// written bare (`sasl.mechanism = "..."`, which TOML reads as nested tables), with string,
/// integer or boolean values, or `{ env = "VAR" }` / `{ file = "PATH" }`.
fn flatten(
    table: &toml::Table,
    prefix: &str,
    out: &mut BTreeMap<String, Source>,
) -> anyhow::Result<()> {
    for (name, value) in table {
        let key = format!("{prefix}{name}");
        let source = match value {
            toml::Value::String(text) => Source::Literal(text.clone()),
            toml::Value::Integer(n) => Source::Literal(n.to_string()),
            toml::Value::Boolean(b) => Source::Literal(b.to_string()),
            toml::Value::Table(inner) => match reference(inner) {
                Some(source) => source,
                None => {
                    flatten(inner, &format!("{key}."), out)?;
                    continue;
                }
            },
            _ => bail!(
                "[kafka] {key} must be a string, an integer, a boolean, or \
                 {{ env = \"VAR\" }} / {{ file = \"PATH\" }}"
            ),
        };
        out.insert(key, source);
    }
    Ok(())
}

/// `{ env = "VAR" }` or `{ file = "PATH" }`.
fn reference(table: &toml::Table) -> Option<Source> {
    if table.len() != 1 {
        return None;
    }
    match table.iter().next()? {
        (name, toml::Value::String(var)) if name == "env" => Some(Source::Env(var.clone())),
        (name, toml::Value::String(path)) if name == "file" => Some(Source::File(path.into())),
        _ => None,
    }
}

/// The value of `key` from `source`.
fn read(key: &str, source: &Source) -> anyhow::Result<String> {
    match source {
        Source::Literal(value) => Ok(value.clone()),
        Source::Env(name) => std::env::var(name).with_context(|| {
            format!("kafka property {key}: environment variable {name} is not set or not UTF-8")
        }),
        Source::File(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("kafka property {key}: reading {}", path.display()))?;
            let value = text.strip_suffix('\n').unwrap_or(&text);
            Ok(value.strip_suffix('\r').unwrap_or(value).to_owned())
        }
    }
}
