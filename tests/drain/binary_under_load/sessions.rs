//! The CometD sessions of the drain under load: [`SESSIONS`] sessions, half long-polling and
//! half WebSocket, each with a connect the gateway holds; and the wait until the gateway
//! holds every session and watch stream (read from its metrics).

use std::sync::Arc;
use std::time::Instant;

use futures::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::Message;

use super::{OPENING, SESSIONS, SETUP_BOUND, USERS, WATCHERS, basic};
use crate::common::binary::Binary;

/// What a held CometD connect was answered with: the connect reply, and for a
/// WebSocket the close code that followed.
pub(super) struct CometdEnd {
    pub(super) reply: Value,
    pub(super) close: Option<u16>,
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
pub(super) fn open_sessions(gw: &Binary, ends: &mut JoinSet<CometdEnd>) {
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
pub(super) async fn until_all_held(gw: &Binary, sessions: &mut JoinSet<CometdEnd>) {
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
            last = format!("{long_polls} long-polls and {sockets} sockets held, {streams} streams");
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
