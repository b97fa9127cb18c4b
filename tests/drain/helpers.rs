//! Shared helpers of the in-process drain tests: reading a watch stream to its end and the
//! resume position it names, and requests held in flight (a JSON Dial short of its last
//! byte, a gRPC call short of its body) on a gateway that takes one request at a time.

use std::net::SocketAddr;

use axum::body::Bytes;
use axum::http::Request;
use tokio::io::AsyncWriteExt as _;
use tokio::net::TcpStream;

use crate::common::desktop::Agent;
use crate::common::{TestGateway, as_user, pb};
use crate::within;

/// Reads a watch stream to its end; returns the sequences of the events it carried and
/// the status it ended with.
pub(crate) async fn read_to_end<M>(
    stream: &mut tonic::Streaming<M>,
    sequence: impl Fn(&M) -> Option<u64>,
) -> (Vec<u64>, tonic::Status) {
    let mut seen = Vec::new();
    loop {
        match within("the watch stream's end", stream.message()).await {
            Ok(Some(message)) => seen.extend(sequence(&message)),
            Ok(None) => panic!("the stream ended without a status"),
            Err(status) => return (seen, status),
        }
    }
}

/// Returns the resume position an ended watch names in its trailers.
pub(crate) fn resume_position(status: &tonic::Status) -> (u64, String) {
    let read = |key: &str| {
        status
            .metadata()
            .get(key)
            .unwrap_or_else(|| panic!("no {key} on {status:?}"))
            .to_str()
            .unwrap()
            .to_owned()
    };
    (
        read("resume-sequence").parse().unwrap(),
        read("resume-epoch"),
    )
}

/// agent1's Basic credentials.
pub(crate) fn basic() -> String {
    use base64::Engine as _;
    let token = base64::engine::general_purpose::STANDARD.encode("agent1:demo");
    format!("Basic {token}")
}

/// Sends agent1's Dial of 15001 on `device` up to its body's last byte, which it holds back:
/// the request is in flight until the returned byte is sent.
pub(crate) async fn held_json_dial(addr: SocketAddr, device: &str) -> (TcpStream, &'static [u8]) {
    let body = br#"{"operationName":"Dial","destination":{"phoneNumber":"15001"}}"#;
    let head = format!(
        "POST /api/v2/me/devices/{device}/calls HTTP/1.1\r\nHost: gw\r\n\
         Authorization: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        basic(),
        body.len()
    );
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(head.as_bytes()).await.unwrap();
    tcp.write_all(&body[..body.len() - 1]).await.unwrap();
    (tcp, &body[body.len() - 1..])
}

/// Opens an HTTP/2 connection to `addr` and sends the head of agent1's gRPC `method`,
/// holding its body back.
pub(crate) async fn held_grpc(
    addr: SocketAddr,
    method: &str,
) -> (
    h2::client::SendRequest<Bytes>,
    h2::client::ResponseFuture,
    h2::SendStream<Bytes>,
) {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (sender, connection) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(connection);
    let request = Request::post(format!("http://{addr}/voice.v1.CallService/{method}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header("authorization", basic())
        .body(())
        .unwrap();
    let mut ready = sender.clone().ready().await.unwrap();
    let (response, body) = ready.send_request(request, false).unwrap();
    (sender, response, body)
}

/// [`held_json_dial`] on a gateway with `server.max_requests = 1`, returned once the Dial is
/// in flight: a GET is refused. The held head is written, not yet read, when the GET goes
/// out; one that reached the gateway while a GET was in flight was refused itself (it was
/// answered), and is sent again.
pub(crate) async fn json_dial_in_flight(
    gw: &TestGateway,
    device: &str,
) -> (TcpStream, &'static [u8]) {
    let agent = Agent::new(&gw.http_url(), "agent1");
    within("the held JSON request in flight", async {
        let mut held = held_json_dial(gw.http_addr, device).await;
        loop {
            if agent.get_raw("/api/v2/me/calls").await.status() == 503 {
                return held;
            }
            let mut byte = [0u8; 1];
            match held.0.try_read(&mut byte) {
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                _answered => held = held_json_dial(gw.http_addr, device).await,
            }
        }
    })
    .await
}

/// [`held_grpc`] `ListCalls` on a gateway with `server.max_requests = 1`, returned once the
/// call is in flight: another is refused (a held call refused itself is sent again, as in
/// [`json_dial_in_flight`]).
pub(crate) async fn grpc_call_in_flight(
    gw: &TestGateway,
) -> (
    h2::client::SendRequest<Bytes>,
    h2::client::ResponseFuture,
    h2::SendStream<Bytes>,
) {
    let mut calls = gw.calls().await;
    within("the held gRPC call in flight", async {
        let mut held = held_grpc(gw.grpc_addr, "ListCalls").await;
        loop {
            let list = as_user("agent1", pb::ListCallsRequest::default());
            if calls.list_calls(list).await.is_err() {
                return held;
            }
            if futures::FutureExt::now_or_never(&mut held.1).is_some() {
                held = held_grpc(gw.grpc_addr, "ListCalls").await;
            }
        }
    })
    .await
}

/// Waits until the listener at `addr` refuses connections.
pub(crate) async fn until_refused(addr: SocketAddr) {
    within(&format!("{addr} refusing connections"), async {
        while TcpStream::connect(addr).await.is_ok() {
            tokio::task::yield_now().await;
        }
    })
    .await;
}
