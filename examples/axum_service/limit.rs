//! The limits on open streams, per client address and in all: a slot per open stream,
//! held by the stream ([`kafka_sse::EventStream::hold`]) until the client goes away.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use http::header::RETRY_AFTER;
use http::{HeaderValue, Response, StatusCode};
use kafka_sse::{Format, Problem, ResponseBody};

/// How long a refused client is told to wait, in seconds.
const RETRY_AFTER_SECONDS: u64 = 5;

/// Counts the streams open in all and per client IP address.
#[derive(Debug, Clone)]
pub struct ConnectionLimits {
    max_per_ip: Option<usize>,
    max_total: Option<usize>,
    open: Arc<Mutex<Open>>,
}

#[derive(Debug, Default)]
struct Open {
    per_ip: HashMap<IpAddr, usize>,
    total: usize,
}

/// One open stream's slot; dropping it frees the slot.
#[derive(Debug)]
pub struct Slot {
    ip: IpAddr,
    open: Arc<Mutex<Open>>,
}

impl ConnectionLimits {
    /// Limits of `max_per_ip` streams per address and `max_total` in all; `None` counts
    /// but never refuses.
    pub fn new(max_per_ip: Option<usize>, max_total: Option<usize>) -> Self {
        ConnectionLimits {
            max_per_ip,
            max_total,
            open: Arc::default(),
        }
    }

    /// Takes a slot for `ip`.
    ///
    /// # Errors
    ///
    /// [`Refused`] when `ip`, or the service, holds the most streams allowed.
    pub fn acquire(&self, ip: IpAddr) -> Result<Slot, Refused> {
        let mut open = self.open.lock().expect("connection count lock");
        if let Some(max) = self.max_total.filter(|&max| open.total >= max) {
            return Err(refuse(Refused::Total { max }, ip));
        }
        let count = open.per_ip.get(&ip).copied().unwrap_or_default();
        if let Some(max) = self.max_per_ip.filter(|&max| count >= max) {
            return Err(refuse(Refused::PerIp { max }, ip));
        }
        *open.per_ip.entry(ip).or_default() += 1;
        open.total += 1;
        metrics::gauge!("http_streams_open").set(open.total as f64);
        Ok(Slot {
            ip,
            open: self.open.clone(),
        })
    }
}

fn refuse(refused: Refused, ip: IpAddr) -> Refused {
    metrics::counter!("http_streams_refused_total", "reason" => refused.reason()).increment(1);
    tracing::debug!(%ip, ?refused, "refused a stream");
    refused
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.open.lock().expect("connection count lock");
        open.total -= 1;
        metrics::gauge!("http_streams_open").set(open.total as f64);
        if let Some(count) = open.per_ip.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                open.per_ip.remove(&self.ip);
            }
        }
    }
}

/// A stream refused because a limit is reached.
#[derive(Debug, Clone, Copy)]
pub enum Refused {
    /// The client's address holds `max` streams already: 429.
    PerIp { max: usize },
    /// The service holds `max` streams already: 503.
    Total { max: usize },
}

impl Refused {
    fn reason(self) -> &'static str {
        match self {
            Refused::PerIp { .. } => "per_ip_limit",
            Refused::Total { .. } => "total_limit",
        }
    }

    /// The refusal for a client reading `format`: a 429 with `Retry-After` for the
    /// address limit, and for the service limit the library's form for a passing cause.
    pub fn to_http_response_for(self, format: Format) -> Response<ResponseBody> {
        let problem = match self {
            Refused::PerIp { max } => Problem::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too-many-streams",
                format!(
                    "this address already has {max} open streams, the most allowed; close one \
                     or retry in {RETRY_AFTER_SECONDS} seconds"
                ),
            ),
            Refused::Total { max } => Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "server-full",
                format!(
                    "the service holds {max} open streams, the most it allows; retry in \
                     {RETRY_AFTER_SECONDS} seconds"
                ),
            ),
        };
        let mut response = problem.to_http_response_for(format);
        if response.status() == StatusCode::TOO_MANY_REQUESTS {
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECONDS));
        }
        response
    }
}
