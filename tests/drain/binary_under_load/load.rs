//! The unary load of the drain under load: gRPC calls back to back on a few HTTP/2
//! connections, each call's outcome tallied (replied, refused before it was taken, or lost).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::body::Bytes;
use axum::http::Request;
use tokio::sync::Semaphore;

use super::basic;
use crate::common::pb;

/// What the unary load saw: calls whose stream was opened on the wire, replies (any
/// gRPC status: the gateway ran the call and answered), refusals the gateway signalled
/// before taking the call (a stream above the GOAWAY's last id, REFUSED_STREAM), and
/// calls lost (an accepted stream that broke before its reply).
#[derive(Default)]
pub(super) struct LoadTally {
    pub(super) sent: AtomicU64,
    pub(super) replied: AtomicU64,
    pub(super) refused: AtomicU64,
    pub(super) lost: AtomicU64,
    pub(super) first_lost: std::sync::Mutex<Option<String>>,
}

enum Outcome {
    NotSent,
    Replied,
    Refused,
    Lost(String),
}

/// Sends one unary call and reads it to its end.
async fn unary(
    sender: &h2::client::SendRequest<Bytes>,
    request: Request<()>,
    body: Bytes,
) -> Outcome {
    let Ok(mut ready) = sender.clone().ready().await else {
        return Outcome::NotSent;
    };
    let Ok((response, mut stream)) = ready.send_request(request, false) else {
        return Outcome::NotSent;
    };
    // A failure here shows in the response below.
    let _ = stream.send_data(body, true);
    let refused = |e: &h2::Error| {
        (e.is_go_away() && e.is_remote()) || e.reason() == Some(h2::Reason::REFUSED_STREAM)
    };
    let response = match response.await {
        Ok(response) => response,
        Err(e) if refused(&e) => return Outcome::Refused,
        Err(e) => return Outcome::Lost(format!("before the reply's head: {e}")),
    };
    if response.headers().contains_key("grpc-status") {
        return Outcome::Replied;
    }
    let mut body = response.into_body();
    while let Some(chunk) = body.data().await {
        match chunk {
            Ok(chunk) => {
                let _ = body.flow_control().release_capacity(chunk.len());
            }
            Err(e) => return Outcome::Lost(format!("in the reply's body: {e}")),
        }
    }
    match body.trailers().await {
        Ok(Some(trailers)) if trailers.contains_key("grpc-status") => Outcome::Replied,
        other => Outcome::Lost(format!("no grpc-status trailer: {other:?}")),
    }
}

/// One in-flight slot of the load: ListCalls, and every fourth call an AttachUserData
/// on `call`, back to back, until its connection takes no more.
pub(super) async fn load_slot(
    sender: h2::client::SendRequest<Bytes>,
    addr: std::net::SocketAddr,
    call: String,
    tally: Arc<LoadTally>,
    warm: Arc<Semaphore>,
) {
    use prost::Message as _;
    let frame = |message: &dyn Fn() -> Vec<u8>| {
        let body = message();
        let mut frame = vec![0u8];
        frame.extend_from_slice(&u32::try_from(body.len()).unwrap().to_be_bytes());
        frame.extend_from_slice(&body);
        Bytes::from(frame)
    };
    let list = frame(&|| pb::ListCallsRequest::default().encode_to_vec());
    let attach = frame(&|| {
        pb::AttachUserDataRequest {
            call_id: call.clone(),
            user_data: vec![pb::KeyValue {
                key: "drain".into(),
                value: Some(pb::key_value::Value::StringValue("load".into())),
            }],
        }
        .encode_to_vec()
    });
    for turn in 0u64.. {
        let (method, body) = if turn % 4 == 3 {
            ("AttachUserData", attach.clone())
        } else {
            ("ListCalls", list.clone())
        };
        let request = Request::post(format!("http://{addr}/voice.v1.CallService/{method}"))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .header("authorization", basic("agent1"))
            .body(())
            .unwrap();
        let outcome = unary(&sender, request, body).await;
        if !matches!(outcome, Outcome::NotSent) {
            tally.sent.fetch_add(1, Ordering::Relaxed);
        }
        match outcome {
            Outcome::NotSent => return,
            Outcome::Replied => {
                tally.replied.fetch_add(1, Ordering::Relaxed);
                warm.add_permits(1);
            }
            Outcome::Refused => {
                tally.refused.fetch_add(1, Ordering::Relaxed);
            }
            Outcome::Lost(why) => {
                tally.lost.fetch_add(1, Ordering::Relaxed);
                tally.first_lost.lock().unwrap().get_or_insert(why);
            }
        }
    }
}
