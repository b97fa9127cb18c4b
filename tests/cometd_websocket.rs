//! Wire tests of the `websocket` transport with a raw tokio-tungstenite client.

mod cometd_support;
mod common;

use std::time::Duration;

use cometd_support::{LpClient, connect_held, is_recording_stop};
use common::{TestGateway, basic, eventually, within};
use futures::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

async fn open(gw: &TestGateway, auth: Option<&str>) -> Ws {
    let mut request = gw.ws_url().into_client_request().unwrap();
    if let Some(user) = auth {
        request
            .headers_mut()
            .insert("authorization", basic(user).parse().unwrap());
    }
    tokio_tungstenite::connect_async(request).await.unwrap().0
}

async fn send(ws: &mut Ws, batch: Value) {
    ws.send(Message::text(batch.to_string())).await.unwrap();
}

/// Reads the next text frame as a JSON array (within 3 s).
async fn recv(ws: &mut Ws) -> Vec<Value> {
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(3), ws.next())
            .await
            .expect("a frame within 3 s")
            .expect("the socket is open")
            .unwrap();
        if let Message::Text(text) = frame {
            return serde_json::from_str::<Value>(&text)
                .unwrap()
                .as_array()
                .unwrap()
                .clone();
        }
        assert!(!frame.is_close(), "closed: {frame:?}");
    }
}

async fn handshake(ws: &mut Ws, ext: Value) -> String {
    send(
        ws,
        json!([{"id": "1", "channel": "/meta/handshake", "version": "1.0",
        "supportedConnectionTypes": ["websocket", "long-polling"], "ext": ext}]),
    )
    .await;
    let reply = recv(ws).await.remove(0);
    assert_eq!(reply["successful"], true, "{reply}");
    reply["clientId"].as_str().unwrap().to_owned()
}

async fn connect(ws: &mut Ws, id: &str, cid: &str, extra: Value) {
    let mut m = json!({"id": id, "channel": "/meta/connect", "clientId": cid, "connectionType": "websocket"});
    if let (Some(m), Some(extra)) = (m.as_object_mut(), extra.as_object()) {
        m.extend(extra.clone());
    }
    send(ws, json!([m])).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_are_pushed_at_once_and_the_held_connect_answers_at_its_timeout() {
    let gw = TestGateway::spawn_with(|c| c.cometd.timeout_ms = 1_500).await;
    let mut ws = open(&gw, Some("agent1")).await;
    let cid = handshake(&mut ws, json!({})).await;
    connect(&mut ws, "2", &cid, json!({"advice": {"timeout": 0}})).await;
    assert_eq!(recv(&mut ws).await[0]["successful"], true);
    send(&mut ws, json!([{"id": "3", "channel": "/meta/subscribe", "clientId": cid, "subscription": "/v2/me/calls"}])).await;
    assert_eq!(recv(&mut ws).await[0]["successful"], true);
    connect(&mut ws, "4", &cid, json!({})).await;
    connect_held(&gw, &cid).await;
    gw.seed_recording_scenario().await;
    // Every event is pushed while the connect stays held: no frame up to the recording
    // stop carries the connect's reply.
    let mut events: Vec<Value> = Vec::new();
    while !events.iter().any(is_recording_stop) {
        let frame = recv(&mut ws).await;
        assert!(
            frame.iter().all(|m| m["channel"] != "/meta/connect"),
            "the connect was answered with the events: {frame:?}"
        );
        events.extend(frame);
    }
    assert_eq!(
        events.len(),
        4,
        "the seed's four notifications: {events:#?}"
    );
    // Then, at its timeout (when exactly: the paused-time unit test
    // a_socket_holds_its_connect_for_the_timeout_and_answers_it_on_shutdown), the reply.
    assert_eq!(
        recv(&mut ws).await,
        [json!({"id": "4", "channel": "/meta/connect", "successful": true})]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socket_adopts_a_session_handshaken_over_http() {
    let gw = TestGateway::spawn_with(|c| c.cometd.timeout_ms = 500).await;
    let mut lp = LpClient::new(&gw, Some(basic("agent1")));
    lp.ready("/v2/me/calls").await;
    let mut ws = open(&gw, None).await;
    connect(&mut ws, "9", &lp.client_id, json!({})).await;
    gw.established_call("agent1", "agent2", "15001").await;
    let frame = recv(&mut ws).await;
    assert_eq!(frame[0]["channel"], "/v2/me/calls", "{frame:?}");
    // A second socket takes the session over: the first is closed with 1000 "Cancel".
    let mut other = open(&gw, None).await;
    connect(&mut other, "10", &lp.client_id, json!({})).await;
    let closed = loop {
        match tokio::time::timeout(Duration::from_secs(3), ws.next())
            .await
            .unwrap()
        {
            Some(Ok(Message::Close(frame))) => break frame.unwrap(),
            Some(Ok(_)) => {}
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(
        (u16::from(closed.code), closed.reason.as_str()),
        (1000, "Cancel")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socket_without_credentials_cannot_handshake() {
    let gw = TestGateway::spawn().await;
    let mut ws = open(&gw, None).await;
    send(&mut ws, json!([{"id": "1", "channel": "/meta/handshake", "version": "1.0", "supportedConnectionTypes": ["websocket"]}])).await;
    let reply = recv(&mut ws).await.remove(0);
    assert_eq!(reply["error"], "403::Handshake denied");
    assert_eq!(reply["advice"]["reconnect"], "none");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_frames_get_errors_and_an_unparseable_one_closes_the_socket() {
    let gw = TestGateway::spawn().await;
    let mut ws = open(&gw, Some("agent1")).await;
    let cid = handshake(&mut ws, json!({})).await;
    send(
        &mut ws,
        json!([{"id": "5", "channel": "/meta/subscribe", "clientId": cid}, {"id": "6"}]),
    )
    .await;
    let replies = recv(&mut ws).await;
    assert_eq!(replies[0]["error"], "403::subscription_missing");
    assert_eq!(replies[1]["error"], "400::channel missing");
    ws.send(Message::text("{oops")).await.unwrap();
    let closed = loop {
        match tokio::time::timeout(Duration::from_secs(3), ws.next())
            .await
            .unwrap()
        {
            Some(Ok(Message::Close(frame))) => break frame.unwrap(),
            Some(Ok(_)) => {}
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(u16::from(closed.code), 1007);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_ack_a_client_that_stops_connecting_hits_its_queue_bound() {
    let gw = TestGateway::spawn_with(|c| {
        c.cometd.max_queue = 2;
        c.cometd.max_interval_ms = 60_000;
    })
    .await;
    let mut ws = open(&gw, Some("agent1")).await;
    let cid = handshake(&mut ws, json!({"ack": true})).await;
    connect(
        &mut ws,
        "2",
        &cid,
        json!({"advice": {"timeout": 0}, "ext": {"ack": 0}}),
    )
    .await;
    let start = recv(&mut ws).await[0]["ext"]["ack"].clone();
    assert!(start.is_u64(), "a position: {start}");
    send(&mut ws, json!([{"id": "3", "channel": "/meta/subscribe", "clientId": cid, "subscription": "/v2/me/calls"}])).await;
    recv(&mut ws).await;
    // With ack, events wait for a connect that never comes: the queue fills up and the
    // session is dropped.
    let session = gw.registry.get(&cid).unwrap();
    gw.seed_recording_scenario().await;
    eventually("the session is dropped at its bound", || {
        session.removed().is_some()
    })
    .await;
    connect(&mut ws, "4", &cid, json!({"ext": {"ack": start}})).await;
    let reply = recv(&mut ws).await.remove(0);
    assert_eq!(reply["error"], "402::Unknown client", "{reply}");
    assert_eq!(reply["advice"]["reconnect"], "handshake");
    // Re-handshaking on the same socket works.
    handshake(&mut ws, json!({"ack": true})).await;
}

/// The HTTP listener serves a WebSocket over HTTP/2 too (RFC 8441 extended CONNECT, which
/// the production server enables): the upgrade is accepted and Bayeux runs over it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_over_http2_extended_connect_carries_bayeux() {
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use tokio_tungstenite::tungstenite::protocol::Role;
    let gw = TestGateway::spawn().await;
    let tcp = TcpStream::connect(gw.http_addr).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
        .handshake(TokioIo::new(tcp))
        .await
        .expect("an HTTP/2 connection (prior knowledge)");
    tokio::spawn(connection);
    let request = axum::http::Request::builder()
        .method(axum::http::Method::CONNECT)
        .uri(gw.url())
        .header("sec-websocket-version", "13")
        .header("authorization", basic("agent1"))
        .extension(hyper::ext::Protocol::from_static("websocket"))
        .body(axum::body::Body::empty())
        .unwrap();
    let response = within("the CONNECT's answer", sender.send_request(request))
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{response:?}");
    let upgraded = within("the upgrade", hyper::upgrade::on(response))
        .await
        .unwrap();
    let mut ws = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Client, None).await;
    ws.send(Message::text(
        json!([{"id": "1", "channel": "/meta/handshake", "version": "1.0",
                "supportedConnectionTypes": ["websocket"]}])
        .to_string(),
    ))
    .await
    .unwrap();
    let frame = within("the handshake reply", ws.next())
        .await
        .expect("the socket is open")
        .unwrap();
    let reply: Value = serde_json::from_str(frame.to_text().unwrap()).unwrap();
    assert_eq!(reply[0]["successful"], true, "{reply}");
    assert!(reply[0]["clientId"].is_string(), "{reply}");
}

/// The socket's read buffer is 8 KiB (`gws::cometd::websocket::READ_BUFFER`); a message
/// several times that size, within `cometd.max_message_size`, is still read whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_larger_than_the_read_buffer_is_read_whole() {
    let gw = TestGateway::spawn().await;
    let mut ws = open(&gw, Some("agent1")).await;
    let cid = handshake(&mut ws, json!({})).await;
    let pad = "x".repeat(40 * 1024);
    send(
        &mut ws,
        json!([{"id": "7", "channel": "/meta/subscribe", "clientId": cid,
            "subscription": "/v2/me/calls", "ext": {"pad": pad}}]),
    )
    .await;
    let reply = recv(&mut ws).await.remove(0);
    assert_eq!(reply["successful"], true, "{reply}");
    assert_eq!(reply["subscription"], "/v2/me/calls");
}
