//! The Kafka client settings: any librdkafka property, from the `[kafka]` table of the
//! `--config` file and from `--kafka`, `--kafka-from-env` and `--kafka-from-file`.
//!
//! A secret (a password, a key) can come from an environment variable or a file, so that it
//! need not sit in a process listing, a shell history or the config file. Values are never
//! shown, in `Debug`, a log line or an error, except those of a few harmless properties
//! (the brokers, the security protocol, the user name, file paths).

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
            if let (Source::Literal(_), true) = (&source, is_credential(&key)) {
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
    /// `key=value, ...`, each value shown only when it is harmless (see [`SHOWN`]) and
    /// otherwise redacted, or where it comes from.
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

/// A property as logs show it: `key=value` for the few in [`SHOWN`], `key=env:VAR`,
/// `key=file:PATH`, or `key=[redacted]`.
struct Shown<'a>(&'a str, &'a Source);

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Shown(key, source) = self;
        match source {
            Source::Literal(_) if is_hidden(key) => write!(f, "{key}=[redacted]"),
            Source::Literal(value) => write!(f, "{key}={value}"),
            Source::Env(name) => write!(f, "{key}=env:{name}"),
            Source::File(path) => write!(f, "{key}=file:{}", path.display()),
        }
    }
}

/// The properties whose literal values logs and `Debug` show. Every other value is
/// `[redacted]`, a misspelt secret property (`sasl.pasword`) included.
const SHOWN: [&str; 20] = [
    "bootstrap.servers",
    "client.id",
    "client.rack",
    "debug",
    "security.protocol",
    "sasl.mechanism",
    "sasl.mechanisms",
    "sasl.username",
    "sasl.kerberos.service.name",
    "sasl.kerberos.principal",
    "sasl.oauthbearer.method",
    "sasl.oauthbearer.client.id",
    "sasl.oauthbearer.scope",
    "sasl.oauthbearer.token.endpoint.url",
    "ssl.ca.location",
    "ssl.certificate.location",
    "ssl.key.location",
    "ssl.endpoint.identification.algorithm",
    "enable.ssl.certificate.verification",
    "fetch.wait.max.ms",
];

/// Whether logs and `Debug` hide the literal value of `key`.
fn is_hidden(key: &str) -> bool {
    !SHOWN.contains(&key)
}

/// Whether a property holds a credential (the library's [`kafka_sse::is_credential_property`])
/// that is not among the shown ones: such values should not be given on the command line.
fn is_credential(key: &str) -> bool {
    kafka_sse::is_credential_property(key) && is_hidden(key)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_show_where_values_come_from_but_no_secret() {
        let args = [
            KafkaArg::literal("sasl.password=pw-1f0e").unwrap(),
            KafkaArg::literal("sasl.pasword=pw-2b7c").unwrap(),
            KafkaArg::literal("sasl.username=alice").unwrap(),
            KafkaArg::env("ssl.key.password=KEY_PW").unwrap(),
            KafkaArg::literal("malformed:pw-93aa").unwrap(),
        ];
        let debug = format!("{args:?}");
        assert!(
            debug.contains("--kafka-from-env ssl.key.password=env:KEY_PW"),
            "{debug}"
        );
        assert!(debug.contains("sasl.username=alice"), "{debug}");
        assert!(!debug.contains("pw-"), "{debug}");

        std::env::set_var("KAFKA_CONFIG_TEST_KEY_PW", "pw-6d51");
        let table: toml::Table = toml::from_str(
            "sasl.password = \"pw-0c4d\"\n\
             ssl.key.password = { env = \"KAFKA_CONFIG_TEST_KEY_PW\" }\n\
             fetch.wait.max.ms = 50\n",
        )
        .unwrap();
        let settings = KafkaSettings::new(&table, &[&args[2]]).unwrap();
        assert_eq!(settings.get("ssl.key.password"), Some("pw-6d51"));
        assert_eq!(settings.get("fetch.wait.max.ms"), Some("50"));
        let shown = format!("{settings} {settings:?}");
        assert!(
            shown.contains("ssl.key.password=env:KAFKA_CONFIG_TEST_KEY_PW"),
            "{shown}"
        );
        assert!(!shown.contains("pw-"), "{shown}");
    }
}
