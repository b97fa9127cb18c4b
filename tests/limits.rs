//! The listeners' bounds end to end (`[server]`, `src/server`, `src/shed.rs`): requests in
//! flight beyond a listener's or a connection's bound are refused at once, in each front's
//! vocabulary, and change nothing; a full listener closes new connections; a client that
//! does not send its request head in time is disconnected; HTTP/2 clients see the stream
//! bound in SETTINGS and an aged connection's GOAWAY.
//!
//! Requests are held in flight with raw sockets (an HTTP/1.1 body or an HTTP/2 stream left
//! open), so the bounds are reached without any sleep; every wait gives up after [`BOUND`].

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{Request, StatusCode};
use common::desktop::Agent;
use common::{TestGateway, as_user, gws_status, pb};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// Every wait of this file gives up after this long, failing with a message.
const BOUND: Duration = Duration::from_secs(5);

/// Runs `what` under [`BOUND`], failing with `doing` if it takes longer.
async fn within<T>(doing: &str, what: impl Future<Output = T>) -> T {
    tokio::time::timeout(BOUND, what)
        .await
        .unwrap_or_else(|_| panic!("{doing}: nothing after {BOUND:?}"))
}

/// Sends the head of agent1's JSON POST and one byte of its 100-byte body: the request
/// stays in flight (its handler reads the body) until the socket is dropped.
async fn hold_json(addr: SocketAddr) -> TcpStream {
    use base64::Engine as _;
    let basic = base64::engine::general_purpose::STANDARD.encode("agent1:demo");
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /api/v2/me/calls/held HTTP/1.1\r\nHost: gw\r\nAuthorization: Basic {basic}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{"
    );
    tcp.write_all(head.as_bytes()).await.unwrap();
    tcp
}

/// An HTTP/2 connection whose driver runs in a task of its own; the task returns how the
/// connection ended.
async fn h2_connect(
    addr: SocketAddr,
) -> (
    h2::client::SendRequest<Bytes>,
    tokio::task::JoinHandle<Result<(), h2::Error>>,
) {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (sender, connection) = h2::client::handshake(tcp).await.unwrap();
    (sender, tokio::spawn(connection))
}

/// A gRPC request head for `method` of agent1, without its body.
fn grpc_head(addr: SocketAddr, method: &str) -> Request<()> {
    use base64::Engine as _;
    let basic = base64::engine::general_purpose::STANDARD.encode("agent1:demo");
    Request::post(format!("http://{addr}/voice.v1.CallService/{method}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header("authorization", format!("Basic {basic}"))
        .body(())
        .unwrap()
}

/// Opens a `ListCalls` stream and sends no body: the call stays in flight until the
/// returned halves are dropped.
async fn hold_grpc(
    sender: &h2::client::SendRequest<Bytes>,
    addr: SocketAddr,
) -> (h2::client::ResponseFuture, h2::SendStream<Bytes>) {
    let mut ready = sender.clone().ready().await.unwrap();
    ready
        .send_request(grpc_head(addr, "ListCalls"), false)
        .unwrap()
}

/// Sends one `ListCalls` on the HTTP/2 connection and returns its `grpc-status` and
/// `grpc-message` (from the trailers-only head or the trailers).
async fn list_calls_on(
    sender: &h2::client::SendRequest<Bytes>,
    addr: SocketAddr,
) -> (String, String) {
    let mut ready = sender.clone().ready().await.unwrap();
    let (response, mut body) = ready
        .send_request(grpc_head(addr, "ListCalls"), false)
        .unwrap();
    body.send_data(Bytes::from_static(&[0, 0, 0, 0, 0]), true)
        .unwrap();
    let response = within("a ListCalls reply", response).await.unwrap();
    let read = |headers: &axum::http::HeaderMap, key: &str| {
        headers
            .get(key)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default()
    };
    if let Some(status) = response.headers().get("grpc-status") {
        let status = status.to_str().unwrap().to_owned();
        return (status, read(response.headers(), "grpc-message"));
    }
    let mut body = response.into_body();
    while let Some(chunk) = body.data().await {
        let _ = body.flow_control().release_capacity(chunk.unwrap().len());
    }
    let trailers = body.trailers().await.unwrap().unwrap();
    (
        read(&trailers, "grpc-status"),
        read(&trailers, "grpc-message"),
    )
}

/// Sends `GET /healthz` on the HTTP/2 connection and waits for the response head (either
/// listener answers it: the HTTP one with 200, the gRPC one with `UNIMPLEMENTED`).
async fn exchange(sender: &h2::client::SendRequest<Bytes>, addr: SocketAddr) {
    let mut ready = sender.clone().ready().await.unwrap();
    let request = Request::get(format!("http://{addr}/healthz"))
        .body(())
        .unwrap();
    let (response, _) = ready.send_request(request, true).unwrap();
    within("a reply on the new connection", response)
        .await
        .unwrap();
}

/// Waits until the connection closes without a reply: the server closed it (end of file or
/// a reset), whatever it wrote before.
async fn closed_by_server(tcp: &mut TcpStream, doing: &str) {
    within(doing, async {
        let mut buf = [0u8; 1024];
        loop {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
}

/// Sends GET `/api/v2/me/calls` until the gateway refuses it (503), keeping `held` JSON
/// requests in flight on `addr`. [`hold_json`] returns once its head is written, not read:
/// a held request that reaches the gateway while a GET is in flight is refused itself, so
/// one the gateway answered is sent again.
async fn refused_while_holding(agent: &Agent, addr: SocketAddr, held: &mut [TcpStream]) -> Value {
    within(
        "GET /api/v2/me/calls refused while requests are held",
        async {
            loop {
                for tcp in held.iter_mut() {
                    let mut byte = [0u8; 1];
                    match tcp.try_read(&mut byte) {
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                        _answered_or_closed => *tcp = hold_json(addr).await,
                    }
                }
                let response = agent.get_raw("/api/v2/me/calls").await;
                if response.status() == StatusCode::SERVICE_UNAVAILABLE {
                    return response.json().await.unwrap();
                }
            }
        },
    )
    .await
}

/// Sends GET `/api/v2/me/calls` until the gateway answers it with `status`.
async fn until_json_status(agent: &Agent, status: StatusCode) -> Value {
    within(&format!("GET /api/v2/me/calls answered {status}"), async {
        loop {
            let response = agent.get_raw("/api/v2/me/calls").await;
            if response.status() == status {
                return response.json().await.unwrap();
            }
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_requests_beyond_the_listener_bound_are_refused_at_once_and_change_nothing() {
    let gw = TestGateway::spawn_with(|c| c.server.max_requests = 2).await;
    let agent = Agent::new(&gw.http_url(), "agent1");
    let device = agent.device_id().await;
    let mut held = [hold_json(gw.http_addr).await, hold_json(gw.http_addr).await];
    // The held requests are admitted once their heads are read: from then on every request
    // is refused.
    let refusal = refused_while_holding(&agent, gw.http_addr, &mut held).await;
    let message = "overloaded: 2 requests in flight on this listener; retry later";
    assert_eq!(refusal, json!({"statusCode": 4, "statusMessage": message}));

    let dial = json!({"operationName": "Dial", "destination": {"phoneNumber": "15001"}});
    let response = within(
        "the refused Dial",
        agent.post_raw(&format!("/api/v2/me/devices/{device}/calls"), &dial),
    )
    .await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(response.headers()["retry-after"], "1");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body, json!({"statusCode": 4, "statusMessage": message}));
    // Probes are not bounded.
    let health = reqwest::get(format!("{}/healthz", gw.http_url()))
        .await
        .unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    // Nothing was dialed (read on the gRPC listener, which has bounds of its own).
    let mut calls = gw.calls().await;
    let listed = calls
        .list_calls(as_user("agent1", pb::ListCallsRequest::default()))
        .await
        .unwrap();
    assert!(
        listed.into_inner().calls.is_empty(),
        "the refused Dial made no call"
    );
    drop(held);
    let listed = until_json_status(&agent, StatusCode::OK).await;
    assert_eq!(listed["uris"], json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_calls_beyond_the_listener_bound_are_refused_at_once_and_change_nothing() {
    let gw = TestGateway::spawn_with(|c| c.server.max_requests = 2).await;
    let (sender, _driver) = h2_connect(gw.grpc_addr).await;
    let mut held = [
        hold_grpc(&sender, gw.grpc_addr).await,
        hold_grpc(&sender, gw.grpc_addr).await,
    ];
    let mut client = gw.calls().await;
    let message = "overloaded: 2 requests in flight on this listener; retry later";
    within("ListCalls refused while calls are held", async {
        loop {
            // A held call is sent, not yet read, when `hold_grpc` returns: one that reached
            // the gateway while a ListCalls was in flight was refused itself; send it again.
            for (response, body) in held.iter_mut() {
                if futures::FutureExt::now_or_never(&mut *response).is_some() {
                    (*response, *body) = hold_grpc(&sender, gw.grpc_addr).await;
                }
            }
            let list = as_user("agent1", pb::ListCallsRequest::default());
            if let Err(status) = client.list_calls(list).await {
                assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");
                assert_eq!(status.message(), message);
                return;
            }
        }
    })
    .await;
    let dial = pb::DialRequest {
        destination: "15001".into(),
        ..Default::default()
    };
    let refused = within("the refused Dial", client.dial(as_user("agent1", dial)))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::ResourceExhausted);
    assert_eq!(gws_status(&refused), 4);
    assert_eq!(
        refused.metadata().get("grpc-retry-pushback-ms").unwrap(),
        "1000"
    );
    // Health checks are not bounded.
    let channel = tonic::transport::Endpoint::from_shared(gw.grpc_url())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
    let check = tonic_health::pb::HealthCheckRequest::default();
    let serving = within("a health check", health.check(check)).await.unwrap();
    assert_eq!(serving.into_inner().status, 1, "SERVING");
    // Nothing was dialed (read on the HTTP listener).
    let agent = Agent::new(&gw.http_url(), "agent1");
    assert_eq!(agent.call_ids().await, Vec::<String>::new());
    drop(held);
    within("ListCalls admitted again", async {
        loop {
            let list = as_user("agent1", pb::ListCallsRequest::default());
            if client.list_calls(list).await.is_ok() {
                return;
            }
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_beyond_its_own_bound_is_refused_and_the_others_are_served() {
    let gateways = [
        TestGateway::spawn_single_port_with(|c| c.server.max_requests_per_connection = 2).await,
        TestGateway::spawn_with(|c| c.server.max_requests_per_connection = 2).await,
    ];
    let message = "overloaded: 2 requests in flight on this connection; retry later";
    for gw in gateways {
        let (sender, _driver) = h2_connect(gw.grpc_addr).await;
        let _held = [
            hold_grpc(&sender, gw.grpc_addr).await,
            hold_grpc(&sender, gw.grpc_addr).await,
        ];
        within("a third call on the connection refused", async {
            loop {
                let (status, text) = list_calls_on(&sender, gw.grpc_addr).await;
                if status == "8" {
                    assert_eq!(text, message.replace(' ', "%20"));
                    return;
                }
            }
        })
        .await;
        let mut other = gw.calls().await;
        let list = as_user("agent1", pb::ListCallsRequest::default());
        within("a call on another connection", other.list_calls(list))
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_listener_closes_new_connections_until_one_leaves() {
    let gw = TestGateway::spawn_with(|c| c.server.max_connections = 2).await;
    for (name, addr) in [("HTTP", gw.http_addr), ("gRPC", gw.grpc_addr)] {
        let first = TcpStream::connect(addr).await.unwrap();
        let _second = TcpStream::connect(addr).await.unwrap();
        // Accepted in order: the third finds the listener full.
        let mut third = TcpStream::connect(addr).await.unwrap();
        closed_by_server(&mut third, &format!("the third {name} connection closed")).await;
        drop(first);
        within(&format!("a new {name} connection served"), async {
            loop {
                let mut tcp = TcpStream::connect(addr).await.unwrap();
                // An HTTP/2 preface: both listeners answer it with their SETTINGS.
                let _ = tcp.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").await;
                let mut buf = [0u8; 9];
                if tcp.read_exact(&mut buf).await.is_ok() {
                    assert_eq!(buf[3], 4, "a SETTINGS frame");
                    return;
                }
            }
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_does_not_send_its_request_head_in_time_is_disconnected() {
    let gw = TestGateway::spawn_with(|c| c.server.header_timeout_ms = 500).await;
    let silent = |addr: SocketAddr, name: &'static str| async move {
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        closed_by_server(&mut tcp, &format!("a silent {name} client closed")).await;
    };
    let half_preface = |addr: SocketAddr, name: &'static str| async move {
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        tcp.write_all(b"PRI * HTTP/2.0").await.unwrap();
        closed_by_server(&mut tcp, &format!("half a preface on {name} closed")).await;
    };
    // On HTTP/1.1, a head never finished, and a keep-alive connection left idle after its
    // reply.
    let unfinished = async {
        let mut tcp = TcpStream::connect(gw.http_addr).await.unwrap();
        tcp.write_all(b"GET /healthz HTTP/1.1\r\nHost: gw\r\nX-Slow: ")
            .await
            .unwrap();
        closed_by_server(&mut tcp, "an unfinished head closed").await;
    };
    let idle = async {
        let mut tcp = TcpStream::connect(gw.http_addr).await.unwrap();
        tcp.write_all(b"GET /healthz HTTP/1.1\r\nHost: gw\r\n\r\n")
            .await
            .unwrap();
        closed_by_server(&mut tcp, "an idle keep-alive connection closed").await;
    };
    tokio::join!(
        silent(gw.http_addr, "HTTP"),
        silent(gw.grpc_addr, "gRPC"),
        half_preface(gw.http_addr, "HTTP"),
        half_preface(gw.grpc_addr, "gRPC"),
        unfinished,
        idle,
    );
    // A client that sends its request in time is served.
    let health = reqwest::get(format!("{}/healthz", gw.http_url()))
        .await
        .unwrap();
    assert_eq!(health.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_clients_see_the_stream_bound_and_the_goaway_of_an_aged_connection() {
    let configure = |c: &mut voice_gateway::config::Config| {
        c.server.http2_max_streams = 7;
        c.server.max_connection_age_ms = 1_000;
    };
    let one_port = TestGateway::spawn_single_port_with(configure).await;
    let two_ports = TestGateway::spawn_with(configure).await;
    let check = async |addr: SocketAddr| {
        let (sender, driver) = h2_connect(addr).await;
        // A first exchange makes sure the server's SETTINGS were read.
        exchange(&sender, addr).await;
        assert_eq!(sender.current_max_send_streams(), 7, "on {addr}");
        let ended = within(&format!("the aged connection to {addr} ends"), driver).await;
        ended.unwrap().unwrap();
        let usable = within("the sender's last readiness", sender.ready())
            .await
            .and_then(|mut ready| ready.send_request(grpc_head(addr, "ListCalls"), true));
        assert!(usable.is_err(), "a closed connection takes no new stream");
    };
    tokio::join!(
        check(one_port.grpc_addr),
        check(two_ports.grpc_addr),
        check(two_ports.http_addr),
    );
}
