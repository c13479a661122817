//! Whether a failed NATS call may succeed if tried again shortly: the server
//! unreachable for a moment, a clustered stream between leaders, a cluster
//! still forming. Told by async-nats' error kinds and JetStream's error
//! codes, walking an error's sources (a KV put fails as `Publish` or `Ack`
//! around the publish error that says why), never by an error's text.

use std::error::Error as StdError;

use async_nats::StatusCode;
use async_nats::jetstream::context::{
    CreateStreamError, CreateStreamErrorKind, GetStreamError, GetStreamErrorKind, PublishError,
    PublishErrorKind, RequestError, RequestErrorKind,
};
use async_nats::jetstream::kv::{
    EntryError, EntryErrorKind, StatusError, StatusErrorKind, UpdateError, UpdateErrorKind,
    WatchError, WatchErrorKind,
};
use async_nats::jetstream::stream::{
    ConsumerError, ConsumerErrorKind, DirectGetError, DirectGetErrorKind, LastRawMessageError,
    LastRawMessageErrorKind, PurgeError, PurgeErrorKind,
};
use async_nats::jetstream::{self, ErrorCode};

/// JetStream answers that mean "not now": the cluster has no leader, no
/// peers or not enough of them yet.
pub fn is_transient_code(code: ErrorCode) -> bool {
    [
        ErrorCode::CLUSTER_NOT_AVAILABLE,
        ErrorCode::CLUSTER_NO_PEERS,
        ErrorCode::INSUFFICIENT_RESOURCES,
        ErrorCode::CLUSTER_NOT_LEADER,
        ErrorCode::CLUSTER_INCOMPLETE,
    ]
    .contains(&code)
}

/// Whether `err` (or what caused it) is one that goes away by itself. A
/// JetStream error code anywhere in the chain decides; otherwise the first
/// kind that says either way.
pub fn is_transient(err: &(dyn StdError + 'static)) -> bool {
    let mut verdict = None;
    let mut link = Some(err);
    while let Some(e) = link {
        if let Some(code) = jetstream_code(e) {
            return is_transient_code(code);
        }
        if verdict.is_none() {
            verdict = by_kind(e);
        }
        link = e.source();
    }
    verdict.unwrap_or(false)
}

/// The JetStream API error `e` is or carries in its kind.
fn jetstream_code(e: &(dyn StdError + 'static)) -> Option<ErrorCode> {
    if let Some(js) = e.downcast_ref::<jetstream::Error>() {
        return Some(js.error_code());
    }
    // Each error type that can carry a JetStream API error, with the kind
    // that carries it.
    macro_rules! carried {
        ($($error:ty => $kind:path),* $(,)?) => {
            $(
                if let Some(e) = e.downcast_ref::<$error>() {
                    return match e.kind() {
                        $kind(js) => Some(js.error_code()),
                        _ => None,
                    };
                }
            )*
        };
    }
    carried! {
        GetStreamError => GetStreamErrorKind::JetStream,
        CreateStreamError => CreateStreamErrorKind::JetStream,
        ConsumerError => ConsumerErrorKind::JetStream,
        LastRawMessageError => LastRawMessageErrorKind::JetStream,
        PurgeError => PurgeErrorKind::JetStream,
        StatusError => StatusErrorKind::JetStream,
    }
    None
}

/// What `e`'s kind says: `Some(true)` for "not now", `Some(false)` for a
/// failure that repeats, `None` for a kind that only wraps its source.
fn by_kind(e: &(dyn StdError + 'static)) -> Option<bool> {
    if let Some(e) = e.downcast_ref::<PublishError>() {
        return match e.kind() {
            // A publish answered 503: the stream has no leader right now.
            PublishErrorKind::StreamNotFound
            | PublishErrorKind::TimedOut
            | PublishErrorKind::BrokenPipe
            | PublishErrorKind::MaxAckPending => Some(true),
            PublishErrorKind::Other => None,
            _ => Some(false),
        };
    }
    if let Some(e) = e.downcast_ref::<RequestError>() {
        return match e.kind() {
            RequestErrorKind::TimedOut | RequestErrorKind::NoResponders => Some(true),
            RequestErrorKind::Other => None,
            _ => Some(false),
        };
    }
    if let Some(e) = e.downcast_ref::<async_nats::RequestError>() {
        return match e.kind() {
            async_nats::RequestErrorKind::TimedOut | async_nats::RequestErrorKind::NoResponders => {
                Some(true)
            }
            async_nats::RequestErrorKind::Other => None,
            _ => Some(false),
        };
    }
    if let Some(e) = e.downcast_ref::<GetStreamError>() {
        return match e.kind() {
            GetStreamErrorKind::Request => Some(true),
            _ => None,
        };
    }
    if let Some(e) = e.downcast_ref::<CreateStreamError>() {
        return match e.kind() {
            CreateStreamErrorKind::TimedOut | CreateStreamErrorKind::JetStreamUnavailable => {
                Some(true)
            }
            CreateStreamErrorKind::Response => None,
            _ => Some(false),
        };
    }
    if let Some(e) = e.downcast_ref::<DirectGetError>() {
        return match e.kind() {
            DirectGetErrorKind::TimedOut | DirectGetErrorKind::Request => Some(true),
            DirectGetErrorKind::ErrorResponse(status, _) => {
                Some(status == StatusCode::NO_RESPONDERS || status == StatusCode::TIMEOUT)
            }
            DirectGetErrorKind::Other => None,
            _ => Some(false),
        };
    }
    if let Some(e) = e.downcast_ref::<PurgeError>() {
        return Some(matches!(
            e.kind(),
            PurgeErrorKind::Request | PurgeErrorKind::TimedOut
        ));
    }
    if let Some(e) = e.downcast_ref::<ConsumerError>() {
        return match e.kind() {
            ConsumerErrorKind::TimedOut | ConsumerErrorKind::Request => Some(true),
            ConsumerErrorKind::Other => None,
            _ => Some(false),
        };
    }
    if let Some(e) = e.downcast_ref::<EntryError>() {
        return match e.kind() {
            EntryErrorKind::TimedOut => Some(true),
            EntryErrorKind::Other => None,
            _ => Some(false),
        };
    }
    if let Some(e) = e.downcast_ref::<UpdateError>() {
        return match e.kind() {
            UpdateErrorKind::TimedOut => Some(true),
            UpdateErrorKind::Other => None,
            _ => Some(false),
        };
    }
    if let Some(e) = e.downcast_ref::<WatchError>() {
        return match e.kind() {
            WatchErrorKind::TimedOut => Some(true),
            WatchErrorKind::InvalidKey => Some(false),
            _ => None,
        };
    }
    if let Some(e) = e.downcast_ref::<StatusError>() {
        return match e.kind() {
            StatusErrorKind::TimedOut => Some(true),
            _ => None,
        };
    }
    if let Some(e) = e.downcast_ref::<std::io::Error>() {
        use std::io::ErrorKind as Io;
        return Some(matches!(
            e.kind(),
            Io::BrokenPipe
                | Io::ConnectionReset
                | Io::ConnectionAborted
                | Io::NotConnected
                | Io::TimedOut
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_nats::jetstream::kv::{PutError, PutErrorKind};

    #[test]
    fn kinds_and_codes_decide_not_text() {
        let timed_out = PublishError::new(PublishErrorKind::TimedOut);
        assert!(is_transient(&timed_out));
        // A KV put says only that its publish failed; the publish says why.
        let put = PutError::with_source(PutErrorKind::Ack, timed_out);
        assert!(is_transient(&put));
        let too_big = PutError::with_source(
            PutErrorKind::Publish,
            PublishError::new(PublishErrorKind::MaxPayloadExceeded),
        );
        assert!(!is_transient(&too_big));
        assert!(is_transient(&CreateStreamError::new(
            CreateStreamErrorKind::JetStreamUnavailable
        )));
        assert!(!is_transient(&CreateStreamError::new(
            CreateStreamErrorKind::InvalidStreamName
        )));
        assert!(is_transient(&RequestError::new(
            RequestErrorKind::NoResponders
        )));
        assert!(is_transient(&EntryError::new(EntryErrorKind::TimedOut)));
        assert!(!is_transient(&EntryError::new(EntryErrorKind::InvalidKey)));
        // Nothing known in the chain: not transient.
        assert!(!is_transient(&std::fmt::Error));
    }

    #[test]
    fn cluster_codes_are_transient_others_are_not() {
        assert!(is_transient_code(ErrorCode::CLUSTER_NOT_AVAILABLE));
        assert!(is_transient_code(ErrorCode::CLUSTER_NOT_LEADER));
        assert!(!is_transient_code(ErrorCode::STREAM_NOT_FOUND));
    }
}
