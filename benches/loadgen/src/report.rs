//! Results: percentiles (by sorting), one JSON object per measurement, and Markdown tables
//! built from them.

use std::io::Write as _;
use std::time::Duration;

use anyhow::Context as _;
use serde_json::{json, Value};

/// `amount / secs`, 0 when no time passed.
pub fn rate(amount: f64, secs: f64) -> f64 {
    if secs > 0.0 {
        amount / secs
    } else {
        0.0
    }
}

/// Percentiles of a set of durations, in milliseconds.
#[derive(Debug, Clone, Copy, Default)]
pub struct Percentiles {
    pub count: usize,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
}

impl Percentiles {
    /// Sorts `micros` (durations in microseconds) and reads the percentiles off it, by the
    /// nearest-rank method.
    pub fn of_micros(micros: &mut [u32]) -> Percentiles {
        if micros.is_empty() {
            return Percentiles::default();
        }
        micros.sort_unstable();
        let at = |q: f64| {
            let rank = ((q * micros.len() as f64).ceil() as usize).clamp(1, micros.len());
            f64::from(micros[rank - 1]) / 1e3
        };
        Percentiles {
            count: micros.len(),
            p50: at(0.50),
            p90: at(0.90),
            p99: at(0.99),
            max: at(1.0),
        }
    }

    pub fn of_durations(durations: &[Duration]) -> Percentiles {
        let mut micros: Vec<u32> = durations
            .iter()
            .map(|d| d.as_micros().min(u128::from(u32::MAX)) as u32)
            .collect();
        Percentiles::of_micros(&mut micros)
    }

    /// The percentiles as `{prefix}_p50_ms`, ... entries of `object`.
    pub fn put(&self, object: &mut Value, prefix: &str) {
        let map = object.as_object_mut().expect("a JSON object");
        for (name, value) in [
            ("p50", self.p50),
            ("p90", self.p90),
            ("p99", self.p99),
            ("max", self.max),
        ] {
            map.insert(format!("{prefix}_{name}_ms"), json!(value));
        }
    }
}

/// Prints a result as indented JSON on stdout and appends it as one line to `file`. The
/// machine's one-minute load average at the end of the measurement is added as `loadavg`:
/// on a shared machine it says how far to trust the figures.
pub fn emit(result: &Value, file: Option<&str>) -> anyhow::Result<()> {
    let mut result = result.clone();
    if let (Some(object), Some(load)) = (result.as_object_mut(), load_average()) {
        object.entry("loadavg").or_insert(json!(load));
    }
    let result = &result;
    println!("{}", serde_json::to_string_pretty(result)?);
    if let Some(path) = file {
        let mut out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("opening {path}"))?;
        writeln!(out, "{result}")?;
    }
    Ok(())
}

/// The one-minute load average (Linux).
pub fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Renders the JSON lines of `input` as a Markdown table. A column is `KEY` or
/// `KEY=Title`; `ratio` adds, per `KEY:LABEL`, a column with each row's KEY divided by the
/// KEY of the row whose label is LABEL.
pub fn table(input: &str, columns: &[String], ratios: &[String]) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(input).with_context(|| format!("reading {input}"))?;
    let rows: Vec<Value> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()
        .context("a result line is not JSON")?;
    let mut headers = Vec::new();
    let mut cells: Vec<Vec<String>> = vec![Vec::new(); rows.len()];
    for column in columns {
        let (key, title) = column.split_once('=').unwrap_or((column, column));
        headers.push(title.to_owned());
        for (row, out) in rows.iter().zip(&mut cells) {
            out.push(cell(lookup(row, key)));
        }
    }
    for ratio in ratios {
        let (key, label) = ratio
            .split_once(':')
            .with_context(|| format!("expected KEY:LABEL, got {ratio}"))?;
        headers.push(format!("vs {label}"));
        let base = rows
            .iter()
            .find(|r| r["label"] == label)
            .and_then(|r| lookup(r, key).as_f64());
        for (row, out) in rows.iter().zip(&mut cells) {
            out.push(match (lookup(row, key).as_f64(), base) {
                (Some(value), Some(base)) if base > 0.0 => format!("{:.2}x", value / base),
                _ => "–".to_owned(),
            });
        }
    }
    let mut markdown = format!("| {} |\n", headers.join(" | "));
    markdown.push_str(&format!(
        "|{}\n",
        headers.iter().map(|_| "---|").collect::<String>()
    ));
    for row in cells {
        markdown.push_str(&format!("| {} |\n", row.join(" | ")));
    }
    Ok(markdown)
}

/// A dotted path into a JSON object.
fn lookup<'a>(value: &'a Value, key: &str) -> &'a Value {
    key.split('.').fold(value, |v, k| &v[k])
}

fn cell(value: &Value) -> String {
    match value {
        Value::Null => "–".to_owned(),
        Value::String(s) => s.clone(),
        Value::Number(n) => match (n.as_u64(), n.as_i64(), n.as_f64()) {
            (Some(u), _, _) => thousands(u),
            (_, Some(i), _) => i.to_string(),
            (_, _, Some(f)) if f.abs() >= 1000.0 => thousands(f.round() as u64),
            (_, _, Some(f)) if f.abs() >= 10.0 => format!("{f:.1}"),
            (_, _, Some(f)) => format!("{f:.2}"),
            _ => n.to_string(),
        },
        other => other.to_string(),
    }
}

fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, d) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(d);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let mut micros: Vec<u32> = (1..=100).map(|ms| ms * 1000).collect();
        let p = Percentiles::of_micros(&mut micros);
        assert_eq!((p.p50, p.p99, p.max), (50.0, 99.0, 100.0));
    }

    #[test]
    fn numbers_are_grouped() {
        assert_eq!(thousands(1234567), "1,234,567");
        assert_eq!(cell(&json!(12.345)), "12.3");
    }
}
