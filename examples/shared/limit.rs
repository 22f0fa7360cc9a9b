//! The per-IP limit on open streams: a slot per open stream, held by the stream
//! ([`kafka_sse::EventStream::hold`]) until the client goes away.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::header::RETRY_AFTER;
use http::{HeaderValue, Response, StatusCode};
use kafka_sse::Problem;

/// How long a refused client is told to wait, in seconds.
const RETRY_AFTER_SECONDS: u64 = 5;

/// Counts the streams each client IP address holds open.
#[derive(Debug, Clone)]
pub struct ConnectionLimits {
    max_per_ip: Option<usize>,
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

/// One open stream's slot; dropping it frees the slot.
#[derive(Debug)]
pub struct Slot {
    ip: IpAddr,
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl ConnectionLimits {
    /// Limits for `max_per_ip` streams per address; `None` counts but never refuses.
    pub fn new(max_per_ip: Option<usize>) -> Self {
        ConnectionLimits {
            max_per_ip,
            open: Arc::default(),
        }
    }

    /// Takes a slot for `ip`.
    ///
    /// # Errors
    ///
    /// [`Refused`] when `ip` holds the most streams allowed.
    pub fn acquire(&self, ip: IpAddr) -> Result<Slot, Refused> {
        let mut open = self.open.lock().expect("connection count lock");
        let count = open.entry(ip).or_default();
        if let Some(max) = self.max_per_ip {
            if *count >= max {
                metrics::counter!("http_streams_refused_total", "reason" => "per_ip_limit")
                    .increment(1);
                tracing::debug!(%ip, max, "refused a stream: per-IP connection limit");
                return Err(Refused { max });
            }
        }
        *count += 1;
        Ok(Slot {
            ip,
            open: self.open.clone(),
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.open.lock().expect("connection count lock");
        if let Some(count) = open.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

/// A stream refused because its client holds `max` streams already.
#[derive(Debug, Clone, Copy)]
pub struct Refused {
    max: usize,
}

impl Refused {
    /// The 429 problem response, with `Retry-After`.
    pub fn to_http_response(self) -> Response<Bytes> {
        let detail = format!(
            "this address already has {} open streams, the most allowed; close one or retry \
             in {RETRY_AFTER_SECONDS} seconds",
            self.max
        );
        let problem = Problem::new(StatusCode::TOO_MANY_REQUESTS, "too-many-streams", detail);
        let mut response = problem.to_http_response();
        response
            .headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECONDS));
        response
    }
}
