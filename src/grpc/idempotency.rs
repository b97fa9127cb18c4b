//! Idempotent retries on the gRPC front: a unary operation sent with `idempotency-key`
//! metadata runs once per user and key; a retry gets the first reply (status included), the
//! same key with another request gets FAILED_PRECONDITION. The rules, the bound and the
//! store are the core's ([`crate::core::idempotency`]). Reads and watches ignore the key:
//! they change nothing.

use std::future::Future;

use prost::Message;
use tonic::metadata::MetadataMap;
use tonic::{Code, Status};

use crate::core::idempotency::{Fingerprint, owner};
use crate::core::{CallControl, CoreError, Principal};

/// The metadata key of an idempotency key.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// A request's idempotency key and fingerprint.
#[derive(Debug)]
pub struct Retry {
    key: String,
    fingerprint: Fingerprint,
}

/// Returns the `idempotency-key` metadata of a request, if any.
pub fn key(metadata: &MetadataMap) -> Result<Option<String>, Status> {
    metadata
        .get(IDEMPOTENCY_KEY)
        .map(|value| {
            value.to_str().map(str::to_owned).map_err(|_| {
                Status::from(CoreError::invalid(
                    "idempotency-key",
                    "must be visible ASCII characters",
                ))
            })
        })
        .transpose()
}

/// Returns the retry identity of a request of `method` carrying `key`: the fingerprint is
/// a hash of the method and the message's protobuf encoding (deterministic: the request
/// messages have no map fields).
pub fn retry<M: Message>(key: Option<String>, method: &str, message: &M) -> Option<Retry> {
    key.map(|key| Retry {
        key,
        fingerprint: Fingerprint::of("grpc", method, &message.encode_to_vec()),
    })
}

/// Runs `operation` once per `who` and key (without a key, just runs it).
pub async fn once<R, F>(
    core: &CallControl,
    who: &Principal,
    retry: Option<Retry>,
    operation: F,
) -> Result<R, Status>
where
    R: Clone + Send + Sync + 'static,
    F: Future<Output = Result<R, Status>> + Send + 'static,
{
    let Some(Retry { key, fingerprint }) = retry else {
        return operation.await;
    };
    core.replies()
        .run(&owner(who), &key, fingerprint, keep, operation)
        .await?
}

/// Keeps every reply but the refusals that did nothing and ask to retry later.
fn keep<R>(reply: &Result<R, Status>) -> bool {
    !matches!(reply, Err(status) if matches!(status.code(), Code::Unavailable | Code::ResourceExhausted))
}
