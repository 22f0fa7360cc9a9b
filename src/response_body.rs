//! One HTTP body type for every answer of a stream route: the event stream, or a whole
//! document such as a problem.

use std::convert::Infallible;
use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

use crate::EventStream;

/// The body of a response from [`KafkaSse::respond`](crate::KafkaSse::respond): the
/// [`EventStream`] on success, the `application/problem+json` document otherwise.
///
/// One type for both, so a handler returns `http::Response<ResponseBody>` whatever happened
/// and needs no `match`: axum takes it as a response as it is, hyper as a service's body.
/// It is an [`http_body::Body`] with `Bytes` data that never fails.
///
/// ```
/// use kafka_sse::{Error, ResponseBody};
///
/// let response = Error::NoTopics.to_http_response();
/// let body: &ResponseBody = response.body();
/// assert!(body.as_whole().is_some_and(|json| json.starts_with(b"{")));
/// ```
#[must_use = "a body does nothing unless sent"]
pub struct ResponseBody {
    kind: Kind,
}

enum Kind {
    Stream(Box<EventStream>),
    /// A whole document, taken when sent.
    Whole(Option<Bytes>),
}

impl ResponseBody {
    /// A body of exactly these bytes, sent in one frame.
    pub fn whole(bytes: impl Into<Bytes>) -> Self {
        ResponseBody {
            kind: Kind::Whole(Some(bytes.into())),
        }
    }

    /// An empty body, as for a `204 No Content`.
    pub fn empty() -> Self {
        ResponseBody::whole(Bytes::new())
    }

    /// The document, when this body is a whole one that has not been sent yet.
    pub fn as_whole(&self) -> Option<&Bytes> {
        match &self.kind {
            Kind::Whole(bytes) => bytes.as_ref(),
            Kind::Stream(_) => None,
        }
    }

    /// The event stream, when this body is one.
    pub fn into_stream(self) -> Option<EventStream> {
        match self.kind {
            Kind::Stream(stream) => Some(*stream),
            Kind::Whole(_) => None,
        }
    }
}

impl From<EventStream> for ResponseBody {
    fn from(stream: EventStream) -> Self {
        ResponseBody {
            kind: Kind::Stream(Box::new(stream)),
        }
    }
}

impl From<Bytes> for ResponseBody {
    fn from(bytes: Bytes) -> Self {
        ResponseBody::whole(bytes)
    }
}

impl From<String> for ResponseBody {
    fn from(text: String) -> Self {
        ResponseBody::whole(text)
    }
}

impl From<&'static str> for ResponseBody {
    fn from(text: &'static str) -> Self {
        ResponseBody::whole(text)
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match &mut self.kind {
            Kind::Stream(stream) => Pin::new(&mut **stream).poll_frame(cx),
            Kind::Whole(bytes) => Poll::Ready(
                bytes
                    .take()
                    .filter(|b| !b.is_empty())
                    .map(|b| Ok(Frame::data(b))),
            ),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Stream(_) => false,
            Kind::Whole(bytes) => bytes.as_ref().is_none_or(Bytes::is_empty),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Stream(stream) => Body::size_hint(&**stream),
            Kind::Whole(bytes) => {
                SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64))
            }
        }
    }
}

impl fmt::Debug for ResponseBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Stream(stream) => f.debug_tuple("ResponseBody").field(stream).finish(),
            Kind::Whole(bytes) => f
                .debug_struct("ResponseBody")
                .field("len", &bytes.as_ref().map_or(0, Bytes::len))
                .finish(),
        }
    }
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;

    use super::*;

    #[tokio::test]
    async fn a_whole_body_is_one_frame_of_known_size() {
        let body = ResponseBody::whole("{\"a\":1}");
        assert_eq!(body.size_hint().exact(), Some(7));
        assert!(!body.is_end_stream());
        let collected = body.collect().await.unwrap().to_bytes();
        assert_eq!(collected, "{\"a\":1}");
    }

    #[tokio::test]
    async fn an_empty_body_ends_at_once() {
        let mut body = ResponseBody::empty();
        assert!(body.is_end_stream());
        assert!(body.frame().await.is_none());
    }
}
