//! An [`EventStream`] as an HTTP response body.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{Bytes, BytesMut};
use futures::Stream;
use http_body::{Body, Frame, SizeHint};

use crate::EventStream;

/// Frames that are ready together go out as one body chunk of up to about this size.
///
/// A burst (a client catching up, a busy stream) then costs one chunk and one write per
/// batch instead of per frame: HTTP/1.1 servers write each chunk with its own header, and
/// hyper sends only a few chunks per system call. A frame is never held back to wait for
/// another.
const COALESCE_LIMIT: usize = 64 * 1024;

impl Body for EventStream {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let Some(first) = ready!(self.as_mut().poll_next(cx)) else {
            return Poll::Ready(None);
        };
        let mut batch: Option<BytesMut> = None;
        while batch.as_ref().map_or(first.len(), BytesMut::len) < COALESCE_LIMIT {
            let Poll::Ready(Some(next)) = self.as_mut().poll_next(cx) else {
                break;
            };
            let batch = batch.get_or_insert_with(|| {
                let mut batch = BytesMut::with_capacity(COALESCE_LIMIT + next.len());
                batch.extend_from_slice(&first);
                batch
            });
            batch.extend_from_slice(&next);
        }
        let data = batch.map_or(first, BytesMut::freeze);
        Poll::Ready(Some(Ok(Frame::data(data))))
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use futures::channel::mpsc;
    use futures::{FutureExt, StreamExt};
    use http_body_util::BodyExt;

    use crate::feed::Feed;
    use crate::session::Session;
    use crate::settings::Settings;
    use crate::{Error, Format, Message, PartitionPosition};

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn frames_ready_together_are_one_chunk_and_none_waits() {
        let (feed, source) = mpsc::unbounded::<Result<Message, Error>>();
        let session = Session::new(
            Feed::own(source.boxed().into()),
            vec![PartitionPosition::new("t", 0, 0)],
            &Settings::default(),
            Format::Ndjson,
            None,
            Arc::from("t"),
            None,
        );
        let mut body = EventStream::new(session, Format::Ndjson, "t");
        for offset in 0..3 {
            feed.unbounded_send(Ok(Message::new("t", 0, offset, format!("[{offset}]"))))
                .unwrap();
        }
        let chunk = body.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(chunk, "[0]\n[1]\n[2]\n");

        assert!(body.frame().now_or_never().is_none(), "nothing is ready");
        feed.unbounded_send(Ok(Message::new("t", 0, 3, "[3]")))
            .unwrap();
        let chunk = body.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(chunk, "[3]\n");

        drop(feed);
        tokio::time::advance(Duration::from_millis(1)).await;
        assert!(body.frame().await.is_none(), "the end of the stream");
    }
}
