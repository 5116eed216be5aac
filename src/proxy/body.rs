//! A client's request body as the proxy forwards it: streamed as it comes, and cut off once
//! it sends nothing for [`BODY_IDLE`], with what went wrong kept for the answer.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use http_body_util::{BodyExt, combinators::BoxBody};
use hyper::body::{Bytes, Frame, Incoming};

/// A body's error, whichever side it came from.
pub type BodyError = Box<dyn std::error::Error + Send + Sync>;
pub type Body = BoxBody<Bytes, BodyError>;

/// How long a request body may send nothing before the request is answered 408 and its
/// connection closed (or `ports.proxyTimeout`, if that is shorter): a client that stops
/// halfway never holds a server connection forever.
pub const BODY_IDLE: Duration = Duration::from_secs(30);

/// What became of a client's request body.
pub const BODY_OK: u8 = 0;
pub const BODY_MALFORMED: u8 = 1;
pub const BODY_IDLE_TOO_LONG: u8 = 2;

/// A client's request body, cut off once it sends nothing for [`BODY_IDLE`] while the
/// server waits for more; what went wrong is kept in `fault` for the answer.
struct Watched {
    inner: Incoming,
    limit: Duration,
    idle: Pin<Box<tokio::time::Sleep>>,
    /// A frame went out since the last poll: the idle time starts again.
    fresh: bool,
    state: Arc<State>,
}

/// What a watched body and the request sending it share.
struct State {
    fault: AtomicU8,
    /// The whole body has gone through.
    finished: AtomicBool,
}

#[derive(Debug)]
struct BodyFault(&'static str);

impl std::fmt::Display for BodyFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for BodyFault {}

impl hyper::body::Body for Watched {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = &mut *self;
        if this.fresh {
            this.fresh = false;
            this.idle
                .as_mut()
                .reset(tokio::time::Instant::now() + this.limit);
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                this.fresh = true;
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                this.state.fault.store(BODY_MALFORMED, Ordering::Relaxed);
                Poll::Ready(Some(Err(Box::new(e))))
            }
            Poll::Ready(None) => {
                this.state.finished.store(true, Ordering::Relaxed);
                Poll::Ready(None)
            }
            Poll::Pending => match this.idle.as_mut().poll(cx) {
                Poll::Ready(()) => {
                    this.state
                        .fault
                        .store(BODY_IDLE_TOO_LONG, Ordering::Relaxed);
                    Poll::Ready(Some(Err(Box::new(BodyFault(
                        "the request body sent nothing for too long",
                    )))))
                }
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

/// What a watched body tells the request that sends it: what went wrong, and whether it
/// has all gone through. A request without a body has nothing to watch.
pub struct Watch(Option<Arc<State>>);

impl Watch {
    pub fn fault(&self) -> u8 {
        self.0
            .as_ref()
            .map_or(BODY_OK, |s| s.fault.load(Ordering::Relaxed))
    }

    pub fn finished(&self) -> bool {
        self.0
            .as_ref()
            .is_none_or(|s| s.finished.load(Ordering::Relaxed))
    }
}

/// `body` as the proxy forwards it. A body that is over before it starts (most requests:
/// a GET) goes as an empty one, with no timer to keep.
pub fn watched(body: Incoming, limit: Duration) -> (Body, Watch) {
    if hyper::body::Body::is_end_stream(&body) {
        let empty = http_body_util::Empty::<Bytes>::new().map_err(|never| match never {});
        return (empty.boxed(), Watch(None));
    }
    let state = Arc::new(State {
        fault: AtomicU8::new(BODY_OK),
        finished: AtomicBool::new(false),
    });
    let w = Watched {
        inner: body,
        limit,
        idle: Box::pin(tokio::time::sleep(limit)),
        fresh: false,
        state: state.clone(),
    };
    (w.boxed(), Watch(Some(state)))
}
