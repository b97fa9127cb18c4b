//! The drain on shutdown (`src/server`): watch streams end with `UNAVAILABLE` naming where
//! to resume, the gRPC health service turns `NOT_SERVING`, requests in flight finish and
//! get their replies while new connections are refused, and what is still open after
//! `server.shutdown_grace_ms` is cut.
//!
//! In process, on port-0 listeners; every wait gives up after [`BOUND`].

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use axum::body::Bytes;
use axum::http::Request;
use common::desktop::Agent;
use common::{TestGateway, as_user, pb, snapshot};
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

/// Reads a watch stream to its end; returns the sequences of the events it carried and
/// the status it ended with.
async fn read_to_end<M>(
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
fn resume_position(status: &tonic::Status) -> (u64, String) {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_streams_end_with_unavailable_naming_where_to_resume() {
    let gw = TestGateway::spawn().await;
    let mut calls = gw.calls().await;
    let mut devices = gw.devices().await;
    let watch = |user: &str| as_user(user, pb::WatchCallsRequest::default());
    let mut quiet = calls
        .watch_calls(watch("agent1"))
        .await
        .unwrap()
        .into_inner();
    let epoch = snapshot(&mut quiet).await.epoch;
    let mut busy = calls
        .watch_calls(watch("agent2"))
        .await
        .unwrap()
        .into_inner();
    snapshot(&mut busy).await;
    let device_watch = as_user("agent1", pb::WatchDevicesRequest::default());
    let mut device_stream = devices
        .watch_devices(device_watch)
        .await
        .unwrap()
        .into_inner();
    device_stream.message().await.unwrap().unwrap();
    // agent2 calls agent3, who answers: events of their scopes only.
    let dial = pb::DialRequest {
        destination: "15002".into(),
        ..Default::default()
    };
    let call = calls
        .dial(as_user("agent2", dial))
        .await
        .unwrap()
        .into_inner();
    let answer = pb::AnswerRequest {
        call_id: call.call.unwrap().id,
    };
    calls.answer(as_user("agent3", answer)).await.unwrap();
    // The last committed sequence, read from a new watch's snapshot.
    let mut probe = calls
        .watch_calls(watch("admin"))
        .await
        .unwrap()
        .into_inner();
    let last = snapshot(&mut probe).await.sequence;
    gw.shutdown.cancel();

    let event_sequence = |m: &pb::WatchCallsResponse| match &m.kind {
        Some(pb::watch_calls_response::Kind::Event(event)) => Some(event.sequence),
        _ => None,
    };
    let (seen, status) = read_to_end(&mut quiet, event_sequence).await;
    assert!(seen.is_empty(), "agent1 had no event: {seen:?}");
    assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
    assert_eq!(resume_position(&status), (last, epoch.clone()));
    assert_eq!(
        status.message(),
        format!("the gateway is shutting down; resume from sequence {last} of epoch {epoch}")
    );
    // agent2's watch had events; it names a position at or after the last one it got, and
    // no later than the log's end.
    let (seen, status) = read_to_end(&mut busy, event_sequence).await;
    assert!(!seen.is_empty(), "agent2 saw its call");
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "in order: {seen:?}");
    assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
    let (resume, resume_epoch) = resume_position(&status);
    assert!(
        *seen.last().unwrap() <= resume && resume <= last,
        "{seen:?} {resume} {last}"
    );
    assert_eq!(resume_epoch, epoch);
    let (_, status) = read_to_end(&mut device_stream, |_| None).await;
    assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
    assert_eq!(resume_position(&status), (last, epoch));
    within("the gateway stops", gw.stop()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_turns_not_serving_at_once_and_its_watch_ends() {
    use tonic_health::pb::health_check_response::ServingStatus;
    let gw = TestGateway::spawn().await;
    let channel = tonic::transport::Endpoint::from_shared(gw.grpc_url())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
    let mut watches = Vec::new();
    for service in ["", "voice.v1.CallService", "voice.v1.DeviceService"] {
        let request = tonic_health::pb::HealthCheckRequest {
            service: service.into(),
        };
        let mut watch = health.watch(request).await.unwrap().into_inner();
        let first = watch.message().await.unwrap().unwrap();
        assert_eq!(first.status, ServingStatus::Serving as i32, "{service:?}");
        watches.push((service, watch));
    }
    gw.shutdown.cancel();
    for (service, mut watch) in watches {
        let next = within("NOT_SERVING", watch.message())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(next.status, ServingStatus::NotServing as i32, "{service:?}");
        let end = within("the health watch's end", watch.message()).await;
        assert!(matches!(end, Ok(None)), "the health watch ends: {end:?}");
    }
    within("the gateway stops", gw.stop()).await.unwrap();
}

/// agent1's Basic credentials.
fn basic() -> String {
    use base64::Engine as _;
    let token = base64::engine::general_purpose::STANDARD.encode("agent1:demo");
    format!("Basic {token}")
}

/// Sends agent1's Dial of 15001 on `device` up to its body's last byte, which it holds back:
/// the request is in flight until the returned byte is sent.
async fn held_json_dial(addr: SocketAddr, device: &str) -> (TcpStream, &'static [u8]) {
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
async fn held_grpc(
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
async fn json_dial_in_flight(gw: &TestGateway, device: &str) -> (TcpStream, &'static [u8]) {
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
async fn grpc_call_in_flight(
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
async fn until_refused(addr: SocketAddr) {
    within(&format!("{addr} refusing connections"), async {
        while TcpStream::connect(addr).await.is_ok() {
            tokio::task::yield_now().await;
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_in_flight_finish_while_new_connections_are_refused() {
    let gw = TestGateway::spawn_with(|c| c.server.max_requests = 1).await;
    let device = Agent::new(&gw.http_url(), "agent1").device_id().await;
    let (mut json, last_byte) = json_dial_in_flight(&gw, &device).await;
    let (sender, response, mut body) = grpc_call_in_flight(&gw).await;
    gw.shutdown.cancel();
    until_refused(gw.http_addr).await;
    until_refused(gw.grpc_addr).await;

    json.write_all(last_byte).await.unwrap();
    let mut reply = String::new();
    within("the held Dial's reply", json.read_to_string(&mut reply))
        .await
        .unwrap();
    assert!(reply.starts_with("HTTP/1.1 200 OK"), "{reply}");
    assert!(reply.ends_with(r#"{"statusCode":0}"#), "{reply}");

    body.send_data(Bytes::from_static(&[0, 0, 0, 0, 0]), true)
        .unwrap();
    let response = within("the held ListCalls' reply", response).await.unwrap();
    let mut response = response.into_body();
    while let Some(chunk) = within("the reply's body", response.data()).await {
        chunk.unwrap();
    }
    let trailers = response.trailers().await.unwrap().unwrap();
    assert_eq!(trailers["grpc-status"], "0");
    // The connection got its GOAWAY: it takes no new stream.
    let usable = within("the sender's readiness", sender.ready())
        .await
        .and_then(|mut ready| {
            let request = Request::get("http://gw/").body(()).unwrap();
            ready.send_request(request, true)
        });
    assert!(usable.is_err(), "no stream after the GOAWAY");
    within("the gateway stops", gw.stop()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_is_still_open_after_the_grace_is_cut() {
    let gw = TestGateway::spawn_with(|c| {
        c.server.shutdown_grace_ms = 300;
        c.server.max_requests = 1;
    })
    .await;
    let device = Agent::new(&gw.http_url(), "agent1").device_id().await;
    let (mut json, _never_sent) = json_dial_in_flight(&gw, &device).await;
    let held_grpc = grpc_call_in_flight(&gw).await;
    let started = tokio::time::Instant::now();
    // The gateway returns at the cut, although neither request can finish.
    within("the gateway stops at the cut", gw.stop())
        .await
        .unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "not before the grace"
    );
    let mut rest = Vec::new();
    let closed = within(
        "the held HTTP connection closed",
        json.read_to_end(&mut rest),
    )
    .await;
    assert!(
        closed.is_err() || rest.is_empty(),
        "cut without a reply: {:?}",
        String::from_utf8_lossy(&rest)
    );
    drop(held_grpc);
}

/// The binary's drain under load (issue 14): SIGTERM while [`WATCHERS`] watch streams and
/// [`SESSIONS`] CometD sessions are held and unary calls run back to back.
///
/// The slowest test of the suite: 12 s on 2 cores at a load average of 8, 17 to 26 s at 9
/// to 14 with two busy loops beside it, nearly all of it opening 2,000 clients (debug
/// builds, the gateway's and the test's); the drain itself took 1.3 to 3.8 s.
mod binary_under_load {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::Instant;

    use axum::body::Bytes;
    use axum::http::Request;
    use futures::{SinkExt as _, StreamExt as _};
    use serde_json::{Value, json};
    use tokio::net::TcpStream;
    use tokio::sync::Semaphore;
    use tokio::task::JoinSet;
    use tokio_tungstenite::tungstenite::Message;

    use super::{common, within};
    use common::binary::Binary;
    use common::{as_user, pb};

    /// Watch streams held (WatchCalls and WatchDevices), over [`WATCH_CHANNELS`] HTTP/2
    /// connections.
    const WATCHERS: usize = 1_000;
    const WATCH_CHANNELS: usize = 10;
    /// CometD sessions with a held connect: half long-polling, half WebSocket.
    const SESSIONS: usize = 1_000;
    /// Unary load: HTTP/2 connections, and calls in flight on each.
    const LOAD_CONNECTIONS: usize = 4;
    const LOAD_IN_FLIGHT: usize = 8;
    /// Replies the load must have had before the signal: every slot has had two on
    /// average, so the load runs back to back when the signal comes.
    const WARM_REPLIES: u32 = 2 * (LOAD_CONNECTIONS * LOAD_IN_FLIGHT) as u32;
    /// CometD sessions opening at once. Opened all together on a loaded machine, a
    /// session's first connect could come more than `cometd.max_interval_ms` (10 s) after
    /// its handshake, and the gateway rightly forgot it (`402::Unknown client`).
    const OPENING: usize = 64;
    /// How long opening every watcher and session may take (a shared, busy machine runs
    /// the debug binary far slower than an idle one).
    const SETUP_BOUND: std::time::Duration = std::time::Duration::from_secs(60);
    /// The test gateway's `server.shutdown_grace_ms`: twice the default (5 s). This
    /// gateway is a debug build draining 2,000 clients on a machine the test shares with
    /// its own clients and other jobs: on 2 cores at a load average of 11 to 14 its drain
    /// took 2.5 to 4.3 s (five runs), too close to the default for a test that must not
    /// fail on a busy machine. The checks are the issue's: exit 0 within the grace, every
    /// client answered before it.
    const GRACE: std::time::Duration = std::time::Duration::from_secs(10);
    /// Users of the demo configuration the watchers and sessions are spread over.
    const USERS: [&str; 6] = [
        "agent1",
        "agent2",
        "agent3",
        "supervisor1",
        "supervisor2",
        "basic1",
    ];

    fn basic(user: &str) -> String {
        use base64::Engine as _;
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:demo"));
        format!("Basic {token}")
    }

    /// How a watch stream ended: its snapshot's epoch, the last event it carried, and its
    /// status.
    struct WatchEnd {
        epoch: String,
        last_event: u64,
        status: tonic::Status,
    }

    /// Opens `WATCHERS` watch streams; returns once each has had its snapshot.
    async fn open_watchers(gw: &Binary, ends: &mut JoinSet<WatchEnd>) {
        let ready = Arc::new(Semaphore::new(0));
        let mut channels = Vec::new();
        for _ in 0..WATCH_CHANNELS {
            let channel = tonic::transport::Endpoint::from_shared(gw.grpc_url())
                .unwrap()
                .connect()
                .await
                .unwrap();
            channels.push(channel);
        }
        for i in 0..WATCHERS {
            let channel = channels[i % WATCH_CHANNELS].clone();
            let user = USERS[i % USERS.len()];
            let ready = ready.clone();
            if i % 3 == 2 {
                ends.spawn(async move {
                    let mut client = pb::device_service_client::DeviceServiceClient::new(channel);
                    let request = as_user(user, pb::WatchDevicesRequest::default());
                    let mut stream = client.watch_devices(request).await.unwrap().into_inner();
                    let epoch = match stream.message().await.unwrap().unwrap().kind {
                        Some(pb::watch_devices_response::Kind::Snapshot(s)) => s.epoch,
                        other => panic!("expected a snapshot, got {other:?}"),
                    };
                    ready.add_permits(1);
                    let mut last_event = 0;
                    loop {
                        match stream.message().await {
                            Ok(Some(message)) => {
                                if let Some(pb::watch_devices_response::Kind::Event(e)) =
                                    message.kind
                                {
                                    last_event = e.sequence;
                                }
                            }
                            Ok(None) => panic!("a device watch ended without a status"),
                            Err(status) => {
                                return WatchEnd {
                                    epoch,
                                    last_event,
                                    status,
                                };
                            }
                        }
                    }
                });
            } else {
                ends.spawn(async move {
                    let mut client = pb::call_service_client::CallServiceClient::new(channel);
                    let request = as_user(user, pb::WatchCallsRequest::default());
                    let mut stream = client.watch_calls(request).await.unwrap().into_inner();
                    let epoch = match stream.message().await.unwrap().unwrap().kind {
                        Some(pb::watch_calls_response::Kind::Snapshot(s)) => s.epoch,
                        other => panic!("expected a snapshot, got {other:?}"),
                    };
                    ready.add_permits(1);
                    let mut last_event = 0;
                    loop {
                        match stream.message().await {
                            Ok(Some(message)) => {
                                if let Some(pb::watch_calls_response::Kind::Event(e)) = message.kind
                                {
                                    last_event = e.sequence;
                                }
                            }
                            Ok(None) => panic!("a call watch ended without a status"),
                            Err(status) => {
                                return WatchEnd {
                                    epoch,
                                    last_event,
                                    status,
                                };
                            }
                        }
                    }
                });
            }
        }
        let all = u32::try_from(WATCHERS).unwrap();
        within("every watcher's snapshot", ready.acquire_many(all))
            .await
            .unwrap()
            .forget();
    }

    /// What a held CometD connect was answered with: the connect reply, and for a
    /// WebSocket the close code that followed.
    struct CometdEnd {
        reply: Value,
        close: Option<u16>,
    }

    /// A long-polling session: handshakes as `user`, connects once (answered at once), then
    /// sends the connect the gateway holds; the task returns its answer.
    async fn long_poll(
        http: reqwest::Client,
        url: String,
        user: &str,
        opening: Arc<Semaphore>,
    ) -> CometdEnd {
        let opening = opening.acquire_owned().await.unwrap();
        let handshake = json!([{"id": "1", "channel": "/meta/handshake", "version": "1.0",
            "supportedConnectionTypes": ["long-polling"]}]);
        let response = http
            .post(&url)
            .header("authorization", basic(user))
            .json(&handshake)
            .send()
            .await
            .unwrap();
        let cookie = response.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_owned();
        let reply: Value = response.json().await.unwrap();
        let client_id = reply[0]["clientId"].as_str().unwrap().to_owned();
        let connect = |id: &str, timeout: Option<u64>| {
            let mut message = json!({"id": id, "channel": "/meta/connect",
                "connectionType": "long-polling", "clientId": client_id});
            if let Some(timeout) = timeout {
                message["advice"] = json!({ "timeout": timeout });
            }
            json!([message])
        };
        let post = |batch: Value| {
            http.post(&url)
                .header("cookie", &cookie)
                .json(&batch)
                .send()
        };
        let first: Value = post(connect("2", Some(0)))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(first[0]["successful"], true, "{first}");
        drop(opening);
        let held = post(connect("3", None))
            .await
            .expect("the held connect's answer");
        assert_eq!(held.status(), 200);
        let batch: Value = held.json().await.unwrap();
        let reply = batch
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["channel"] == "/meta/connect")
            .cloned()
            .unwrap_or_else(|| panic!("no connect reply in {batch}"));
        CometdEnd { reply, close: None }
    }

    /// A WebSocket session: handshakes as `user`, connects once, then sends the connect the
    /// gateway holds; the task returns its answer and the close code that follows.
    async fn websocket(url: String, user: &str, opening: Arc<Semaphore>) -> CometdEnd {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
        let opening = opening.acquire_owned().await.unwrap();
        let mut request = url.into_client_request().unwrap();
        request
            .headers_mut()
            .insert("authorization", basic(user).parse().unwrap());
        let (mut ws, _) = tokio_tungstenite::connect_async(request).await.unwrap();
        let send = async |batch: Value, ws: &mut tokio_tungstenite::WebSocketStream<_>| {
            ws.send(Message::text(batch.to_string())).await.unwrap();
        };
        let handshake = json!([{"id": "1", "channel": "/meta/handshake", "version": "1.0",
            "supportedConnectionTypes": ["websocket"]}]);
        send(handshake, &mut ws).await;
        let reply = next_batch(&mut ws).await.expect("a handshake reply");
        let client_id = reply[0]["clientId"].as_str().unwrap().to_owned();
        let connect = |id: &str, advice: Value| {
            json!([{"id": id, "channel": "/meta/connect", "connectionType": "websocket",
                "clientId": client_id, "advice": advice}])
        };
        send(connect("2", json!({"timeout": 0})), &mut ws).await;
        let first = next_batch(&mut ws)
            .await
            .expect("the first connect's reply");
        assert_eq!(first[0]["successful"], true, "{first}");
        drop(opening);
        send(connect("3", json!({})), &mut ws).await;
        let mut reply = None;
        loop {
            match ws.next().await {
                Some(Ok(Message::Text(text))) => {
                    let batch: Value = serde_json::from_str(&text).unwrap();
                    reply = batch
                        .as_array()
                        .unwrap()
                        .iter()
                        .find(|m| m["channel"] == "/meta/connect")
                        .cloned()
                        .or(reply);
                }
                Some(Ok(Message::Close(frame))) => {
                    return CometdEnd {
                        reply: reply.expect("the held connect answered before the close"),
                        close: frame.map(|f| u16::from(f.code)),
                    };
                }
                Some(Ok(_)) => {}
                Some(Err(error)) => panic!("the socket failed before its close: {error}"),
                None => panic!("the socket ended without a close frame"),
            }
        }
    }

    async fn next_batch<S>(ws: &mut S) -> Option<Value>
    where
        S: futures::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
    {
        while let Some(frame) = ws.next().await {
            if let Message::Text(text) = frame.ok()? {
                return serde_json::from_str(&text).ok();
            }
        }
        None
    }

    /// Opens `SESSIONS` CometD sessions, [`OPENING`] at a time, each with a connect the
    /// gateway then holds.
    fn open_sessions(gw: &Binary, ends: &mut JoinSet<CometdEnd>) {
        let opening = Arc::new(Semaphore::new(OPENING));
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(SESSIONS)
            .build()
            .unwrap();
        let url = format!("{}/api/v2/notifications", gw.http_url());
        let ws_url = format!("ws://{}/api/v2/notifications", gw.http);
        for i in 0..SESSIONS {
            let user = USERS[i % USERS.len()];
            if i % 2 == 0 {
                ends.spawn(long_poll(http.clone(), url.clone(), user, opening.clone()));
            } else {
                ends.spawn(websocket(ws_url.clone(), user, opening.clone()));
            }
        }
    }

    /// Reads a gauge's value from the admin listener's `/metrics` text.
    fn gauge(text: &str, series: &str) -> f64 {
        text.lines()
            .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
            .unwrap_or(0.0)
    }

    /// Waits until the gateway holds every watch stream and every CometD connect: then a
    /// held connect's answer can only come from the drain.
    async fn until_all_held(gw: &Binary, sessions: &mut JoinSet<CometdEnd>) {
        let url = format!("{}/metrics", gw.admin_url());
        let mut last = String::new();
        let started = Instant::now();
        let held = tokio::time::timeout(SETUP_BOUND, async {
            loop {
                // A session that failed to open fails the test now, not at the bound.
                if let Some(ended) = sessions.try_join_next() {
                    panic!(
                        "a CometD session ended before the signal: {:?}",
                        ended.err()
                    );
                }
                let text = reqwest::get(&url).await.unwrap().text().await.unwrap();
                let held = |transport: &str| {
                    let series =
                        format!("voice_gateway_cometd_connects_held{{transport=\"{transport}\"}}");
                    gauge(&text, &series)
                };
                let streams = gauge(&text, "voice_gateway_watch_streams{rpc=\"WatchCalls\"}")
                    + gauge(&text, "voice_gateway_watch_streams{rpc=\"WatchDevices\"}");
                let (long_polls, sockets) = (held("long-polling"), held("websocket"));
                last = format!(
                    "{long_polls} long-polls and {sockets} sockets held, {streams} streams"
                );
                if (long_polls + sockets) as usize == SESSIONS && streams as usize == WATCHERS {
                    return;
                }
                // Paced, so that the scrapes do not compete with the sessions for the
                // gateway; the condition is read, not assumed after a delay.
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        })
        .await;
        assert!(
            held.is_ok(),
            "not everything held after {SETUP_BOUND:?}: {last}"
        );
        eprintln!(
            "everything held {:?} after the sessions started",
            started.elapsed()
        );
    }

    /// What the unary load saw: calls whose stream was opened on the wire, replies (any
    /// gRPC status: the gateway ran the call and answered), refusals the gateway signalled
    /// before taking the call (a stream above the GOAWAY's last id, REFUSED_STREAM), and
    /// calls lost (an accepted stream that broke before its reply).
    #[derive(Default)]
    struct LoadTally {
        sent: AtomicU64,
        replied: AtomicU64,
        refused: AtomicU64,
        lost: AtomicU64,
        first_lost: std::sync::Mutex<Option<String>>,
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
    async fn load_slot(
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

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sigterm_under_load_answers_every_watcher_and_session_and_exits_0_within_the_grace() {
        let began = Instant::now();
        let config = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("drain-under-load-{}.toml", std::process::id()));
        let demo = include_str!("../config/demo.toml");
        let grace = format!("\n[server]\nshutdown_grace_ms = {}\n", GRACE.as_millis());
        std::fs::write(&config, format!("{demo}{grace}")).unwrap();
        let mut gw = Binary::launch()
            .admin()
            .args(&["--config", &config.display().to_string()])
            .start()
            .await;
        let mut calls = gw.calls().await;
        let call = common::established_call(&mut calls).await;

        let mut watch_ends = JoinSet::new();
        open_watchers(&gw, &mut watch_ends).await;
        eprintln!("every watcher open {:?} after the start", began.elapsed());
        let mut session_ends = JoinSet::new();
        open_sessions(&gw, &mut session_ends);
        until_all_held(&gw, &mut session_ends).await;

        let tally = Arc::new(LoadTally::default());
        let warm = Arc::new(Semaphore::new(0));
        let mut load = JoinSet::new();
        for _ in 0..LOAD_CONNECTIONS {
            let tcp = TcpStream::connect(gw.grpc).await.unwrap();
            let (sender, connection) = h2::client::handshake(tcp).await.unwrap();
            tokio::spawn(connection);
            for _ in 0..LOAD_IN_FLIGHT {
                let slot = load_slot(
                    sender.clone(),
                    gw.grpc,
                    call.clone(),
                    tally.clone(),
                    warm.clone(),
                );
                load.spawn(slot);
            }
        }
        within("the load's first replies", warm.acquire_many(WARM_REPLIES))
            .await
            .unwrap()
            .forget();

        eprintln!("the load warm {:?} after the start", began.elapsed());
        let signalled = Instant::now();
        gw.sigterm();
        let status = gw.wait_with_timeout(GRACE * 2).await;
        let took = signalled.elapsed();
        assert!(status.success(), "exit status 0 after SIGTERM: {status}");
        assert!(
            took < GRACE,
            "exited {took:?} after SIGTERM, within the grace of {GRACE:?}"
        );

        // Every watcher was told where to resume.
        let mut told = 0;
        while let Some(end) = within("the watchers' ends", watch_ends.join_next()).await {
            let WatchEnd {
                epoch,
                last_event,
                status,
            } = end.unwrap();
            assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
            let read = |key: &str| {
                status
                    .metadata()
                    .get(key)
                    .map(|v| v.to_str().unwrap().to_owned())
            };
            let sequence: u64 = read("resume-sequence")
                .expect("resume-sequence")
                .parse()
                .unwrap();
            assert_eq!(
                read("resume-epoch").as_deref(),
                Some(epoch.as_str()),
                "{status:?}"
            );
            assert!(
                sequence >= last_event,
                "resume from {sequence}, after event {last_event}"
            );
            told += 1;
        }
        assert_eq!(told, WATCHERS);

        // Every held connect was answered with the advice to handshake again.
        let (mut long_polls, mut sockets) = (0, 0);
        while let Some(end) = within("the sessions' ends", session_ends.join_next()).await {
            let CometdEnd { reply, close } = end.unwrap();
            assert_eq!(reply["advice"]["reconnect"], "handshake", "{reply}");
            match close {
                None => long_polls += 1,
                Some(code) => {
                    assert_eq!(code, 1001, "a WebSocket closed as going away");
                    sockets += 1;
                }
            }
        }
        assert_eq!((long_polls, sockets), (SESSIONS / 2, SESSIONS / 2));

        // No call the gateway took was lost: each was answered, or refused before it was
        // taken.
        while let Some(slot) = within("the load's end", load.join_next()).await {
            slot.unwrap();
        }
        let read = |n: &AtomicU64| n.load(Ordering::Relaxed);
        let (sent, replied, refused, lost) = (
            read(&tally.sent),
            read(&tally.replied),
            read(&tally.refused),
            read(&tally.lost),
        );
        let first_lost = tally.first_lost.lock().unwrap().clone();
        assert_eq!(
            lost, 0,
            "calls lost: {lost} of {sent}, first: {first_lost:?}"
        );
        assert_eq!(sent, replied + refused);
        assert!(replied >= u64::from(WARM_REPLIES));
        eprintln!(
            "load: {sent} sent, {replied} replied, {refused} refused before being taken; drain took {took:?}"
        );
    }
}
