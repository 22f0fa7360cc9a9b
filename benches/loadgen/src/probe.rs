//! What the server process uses, read from `/proc` (Linux): resident memory, threads,
//! librdkafka client handles, and TCP connections to the broker.

use std::collections::HashSet;

use serde_json::json;

/// One look at the server process.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sample {
    /// `VmRSS`, in KiB.
    pub rss_kib: u64,
    pub threads: u64,
    /// Threads named `rdk:main`: every librdkafka client handle (consumer, producer or
    /// admin) runs exactly one, so this counts Kafka clients.
    pub kafka_clients: u64,
    /// Established TCP connections from the process to the broker port.
    pub broker_connections: u64,
}

impl Sample {
    pub fn to_json(self) -> serde_json::Value {
        json!({
            "rss_kib": self.rss_kib,
            "threads": self.threads,
            "kafka_clients": self.kafka_clients,
            "broker_connections": self.broker_connections,
        })
    }
}

/// A server process to watch, and the broker port whose connections count.
#[derive(Debug, Clone, Copy)]
pub struct Probe {
    pub pid: u32,
    pub broker_port: Option<u16>,
}

impl Probe {
    /// Reads the process's figures on the blocking pool, so that a server with thousands
    /// of threads and sockets does not stall the load generator's own tasks; `None` when
    /// that takes longer than `limit`.
    pub async fn sample_within(&self, limit: std::time::Duration) -> Option<Sample> {
        let probe = *self;
        tokio::time::timeout(limit, tokio::task::spawn_blocking(move || probe.sample()))
            .await
            .ok()?
            .ok()
    }

    /// Reads the process's figures now; zeros for what cannot be read.
    pub fn sample(&self) -> Sample {
        let task_dir = format!("/proc/{}/task", self.pid);
        let (mut threads, mut kafka_clients) = (0, 0);
        if let Ok(tasks) = std::fs::read_dir(task_dir) {
            for task in tasks.flatten() {
                threads += 1;
                let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
                if comm.trim_end() == "rdk:main" {
                    kafka_clients += 1;
                }
            }
        }
        Sample {
            rss_kib: rss_kib(self.pid).unwrap_or_default(),
            threads,
            kafka_clients,
            broker_connections: self
                .broker_port
                .map_or(0, |port| connections_to(self.pid, port)),
        }
    }
}

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Established connections owned by `pid` (its socket inodes, from `/proc/PID/fd`) whose
/// remote port is `port`, from `/proc/PID/net/tcp` and `tcp6`.
fn connections_to(pid: u32, port: u16) -> u64 {
    let mut inodes = HashSet::new();
    if let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) {
        for fd in fds.flatten() {
            if let Ok(target) = std::fs::read_link(fd.path()) {
                let target = target.to_string_lossy();
                if let Some(inode) = target
                    .strip_prefix("socket:[")
                    .and_then(|s| s.strip_suffix(']'))
                {
                    inodes.insert(inode.to_owned());
                }
            }
        }
    }
    let mut count = 0;
    for table in ["tcp", "tcp6"] {
        let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/net/{table}")) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
            if fields.len() < 10 || fields[3] != "01" {
                continue;
            }
            let remote_port = fields[2]
                .rsplit(':')
                .next()
                .and_then(|p| u16::from_str_radix(p, 16).ok());
            if remote_port == Some(port) && inodes.contains(fields[9]) {
                count += 1;
            }
        }
    }
    count
}

/// CPU time (user + system) the process has used so far, in seconds.
pub fn cpu_seconds(pid: Option<u32>) -> Option<f64> {
    let path = pid.map_or_else(
        || "/proc/self/stat".to_owned(),
        |pid| format!("/proc/{pid}/stat"),
    );
    let stat = std::fs::read_to_string(path).ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // USER_HZ is 100 on every Linux this runs on.
    Some(ticks as f64 / 100.0)
}

/// The port of the first broker in a bootstrap list.
pub fn broker_port(brokers: &str) -> Option<u16> {
    brokers.split(',').next()?.rsplit(':').next()?.parse().ok()
}
