//! The CometD checks of the audit, over long-polling (raw HTTP) and WebSocket
//! (tokio-tungstenite). Each returns one outcome per attempt, labelled.

use futures::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;

use super::{Credentials, Fixture, WAIT};

const HANDSHAKE_DENIED: &str = "403::Handshake denied";
const UNKNOWN_CLIENT: &str = "402::Unknown client";
const SUBSCRIBE_DENIED: &str = "403:denied_by_security_policy:subscribe_denied";
const PUBLISH_DENIED: &str = "403::publish denied";

/// Channels outside a user's `/v2/me` family: all of them, other users', supervisors'.
const FOREIGN_CHANNELS: [&str; 6] = [
    "/**",
    "/v2/**",
    "/v2/*",
    "/v2/agent2/calls",
    "/v2/users/agent2/calls",
    "/v2/supervisor/calls",
];

/// What one attempt got.
pub type Outcomes = Vec<(String, Result<(), String>)>;

fn handshake(connection_type: &str) -> Value {
    json!([{"id": "1", "channel": "/meta/handshake", "version": "1.0",
            "supportedConnectionTypes": [connection_type]}])
}

/// The credentials that must not open a session.
fn bad_credentials() -> [(&'static str, Credentials); 4] {
    [
        ("no credentials", Credentials::none()),
        ("a wrong password", Credentials::basic("agent1", "wrong")),
        (
            "malformed Basic credentials",
            Credentials::header("Basic !!!"),
        ),
        (
            "an unknown session cookie",
            Credentials::none().with_session("not-a-session"),
        ),
    ]
}

/// Checks that a reply failed with `error` (and, for a handshake, advises no reconnect).
fn refused(reply: &Value, error: &str) -> Result<(), String> {
    let handshake = reply["channel"] == "/meta/handshake";
    let advice_ok = !handshake || reply["advice"]["reconnect"] == "none";
    if reply["successful"] == false && reply["error"] == error && advice_ok {
        Ok(())
    } else {
        Err(format!("got {reply}; expected {error}"))
    }
}

/// A long-polling exchange: the reply of the batch's first message and any
/// `BAYEUX_BROWSER` cookie set.
async fn post(
    fixture: &Fixture,
    path: &str,
    batch: &Value,
    credentials: &Credentials,
    browser: Option<&str>,
) -> (Value, Option<String>) {
    let mut request = fixture
        .http
        .post(format!("{}{path}", fixture.gw.http_url()))
        .header("content-type", "application/json")
        .body(batch.to_string());
    if let Some(value) = &credentials.authorization {
        request = request.header("authorization", value);
    }
    let cookies: Vec<String> = credentials
        .cookie
        .iter()
        .cloned()
        .chain(browser.map(|b| format!("BAYEUX_BROWSER={b}")))
        .collect();
    if !cookies.is_empty() {
        request = request.header("cookie", cookies.join("; "));
    }
    let exchange = async {
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 200, "POST {path}");
        let browser = response
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(|v| v.strip_prefix("BAYEUX_BROWSER="))
            .map(|v| v.split(';').next().unwrap().to_owned());
        let replies: Vec<Value> = response.json().await.unwrap();
        (replies[0].clone(), browser)
    };
    tokio::time::timeout(WAIT, exchange)
        .await
        .unwrap_or_else(|_| panic!("no Bayeux reply on {path} within {WAIT:?}"))
}

/// Handshakes as `user` with Basic credentials; returns the clientId and browser cookie.
async fn session(fixture: &Fixture, path: &str, user: &str) -> (String, String) {
    let (reply, browser) = post(
        fixture,
        path,
        &handshake("long-polling"),
        &Credentials::user(user),
        None,
    )
    .await;
    assert_eq!(reply["successful"], true, "{user}'s handshake: {reply}");
    let client_id = reply["clientId"].as_str().unwrap().to_owned();
    (client_id, browser.expect("a BAYEUX_BROWSER cookie"))
}

/// Handshakes with bad credentials are denied and mint no browser cookie; a message naming
/// an unknown client is refused.
pub async fn long_polling_auth(fixture: &Fixture, path: &str) -> Outcomes {
    let mut outcomes = Outcomes::new();
    for (label, credentials) in bad_credentials() {
        let (reply, browser) = post(
            fixture,
            path,
            &handshake("long-polling"),
            &credentials,
            None,
        )
        .await;
        let outcome = refused(&reply, HANDSHAKE_DENIED).and_then(|()| match browser {
            None => Ok(()),
            Some(cookie) => Err(format!("a denied handshake set BAYEUX_BROWSER={cookie}")),
        });
        outcomes.push((format!("handshake with {label}"), outcome));
    }
    for channel in ["/meta/connect", "/meta/subscribe"] {
        let batch = json!([{"id": "2", "channel": channel, "clientId": "not-a-client",
                            "connectionType": "long-polling", "subscription": "/v2/me/calls"}]);
        let (reply, _) = post(fixture, path, &batch, &Credentials::none(), None).await;
        outcomes.push((
            format!("{channel} naming an unknown client"),
            refused(&reply, UNKNOWN_CLIENT),
        ));
    }
    outcomes
}

/// Nobody but the client that handshook (its `BAYEUX_BROWSER` cookie) may use a session,
/// not even another user with valid credentials of its own.
pub async fn long_polling_own_session(fixture: &Fixture, path: &str) -> Outcomes {
    let (client_id, own_browser) = session(fixture, path, "agent1").await;
    let (_, other_browser) = session(fixture, path, "agent2").await;
    let intruders = [
        ("agent2's credentials", Credentials::user("agent2"), None),
        (
            "agent2's credentials and browser cookie",
            Credentials::user("agent2"),
            Some(other_browser.as_str()),
        ),
        ("no credentials", Credentials::none(), None),
        (
            "agent1's credentials without the session's browser cookie",
            Credentials::user("agent1"),
            None,
        ),
    ];
    let mut outcomes = Outcomes::new();
    for (label, credentials, browser) in intruders {
        for channel in ["/meta/connect", "/meta/subscribe"] {
            let batch = json!([{"id": "3", "channel": channel, "clientId": client_id,
                                "connectionType": "long-polling", "subscription": "/v2/me/calls"}]);
            let (reply, _) = post(fixture, path, &batch, &credentials, browser).await;
            outcomes.push((
                format!("{channel} on agent1's session with {label}"),
                refused(&reply, UNKNOWN_CLIENT),
            ));
        }
    }
    // The session itself is alive: its own client may use it.
    let batch = json!([{"id": "4", "channel": "/meta/subscribe", "clientId": client_id,
                        "subscription": "/v2/me/calls"}]);
    let (reply, _) = post(
        fixture,
        path,
        &batch,
        &Credentials::none(),
        Some(&own_browser),
    )
    .await;
    let alive = if reply["successful"] == true {
        Ok(())
    } else {
        Err(format!("agent1's own client was refused: {reply}"))
    };
    outcomes.push(("agent1's own client (control)".into(), alive));
    outcomes
}

fn foreign_messages(client_id: &str) -> Vec<(String, Value, &'static str)> {
    let mut messages: Vec<(String, Value, &'static str)> = FOREIGN_CHANNELS
        .iter()
        .map(|channel| {
            (
                format!("subscribe to {channel}"),
                json!([{"id": "5", "channel": "/meta/subscribe", "clientId": client_id,
                        "subscription": channel}]),
                SUBSCRIBE_DENIED,
            )
        })
        .collect();
    for channel in ["/v2/me/calls", "/v2/agent2/calls"] {
        messages.push((
            format!("publish to {channel}"),
            json!([{"id": "6", "channel": channel, "clientId": client_id,
                    "data": {"notificationType": "StatusChange"}}]),
            PUBLISH_DENIED,
        ));
    }
    messages
}

/// A session may read only its user's `/v2/me` channels, and publish to none.
pub async fn long_polling_channels(fixture: &Fixture, path: &str) -> Outcomes {
    let (client_id, browser) = session(fixture, path, "agent1").await;
    let mut outcomes = Outcomes::new();
    for (label, batch, error) in foreign_messages(&client_id) {
        let (reply, _) = post(fixture, path, &batch, &Credentials::none(), Some(&browser)).await;
        outcomes.push((label, refused(&reply, error)));
    }
    outcomes
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens a WebSocket on `path` with the credentials on the upgrade request.
async fn open(fixture: &Fixture, path: &str, credentials: &Credentials) -> Socket {
    let url = format!("ws://{}{path}", fixture.gw.http_addr);
    let mut request = url.into_client_request().unwrap();
    if let Some(value) = &credentials.authorization {
        request
            .headers_mut()
            .insert("authorization", value.parse().unwrap());
    }
    if let Some(value) = &credentials.cookie {
        request
            .headers_mut()
            .insert("cookie", value.parse().unwrap());
    }
    let connect = tokio_tungstenite::connect_async(request);
    tokio::time::timeout(WAIT, connect)
        .await
        .unwrap_or_else(|_| panic!("no WebSocket upgrade on {path} within {WAIT:?}"))
        .unwrap_or_else(|e| panic!("WebSocket upgrade on {path}: {e}"))
        .0
}

/// Sends a batch and returns the first message of the reply frame.
async fn exchange(socket: &mut Socket, batch: &Value) -> Value {
    socket.send(Message::text(batch.to_string())).await.unwrap();
    let reply = async {
        loop {
            match socket.next().await {
                Some(Ok(Message::Text(text))) => {
                    let replies: Vec<Value> = serde_json::from_str(&text).unwrap();
                    return replies[0].clone();
                }
                Some(Ok(Message::Close(frame))) => panic!("the socket closed: {frame:?}"),
                Some(Ok(_)) => {}
                other => panic!("the socket failed: {other:?}"),
            }
        }
    };
    tokio::time::timeout(WAIT, reply)
        .await
        .expect("a Bayeux reply frame within the wait")
}

/// Over WebSocket, the upgrade request's credentials decide the handshake.
pub async fn websocket_auth(fixture: &Fixture, path: &str) -> Outcomes {
    let mut outcomes = Outcomes::new();
    for (label, credentials) in bad_credentials() {
        let mut socket = open(fixture, path, &credentials).await;
        let reply = exchange(&mut socket, &handshake("websocket")).await;
        outcomes.push((
            format!("handshake with {label}"),
            refused(&reply, HANDSHAKE_DENIED),
        ));
    }
    outcomes
}

/// Over WebSocket too, a session reads only its user's channels.
pub async fn websocket_channels(fixture: &Fixture, path: &str) -> Outcomes {
    let mut socket = open(fixture, path, &Credentials::user("agent1")).await;
    let reply = exchange(&mut socket, &handshake("websocket")).await;
    assert_eq!(reply["successful"], true, "agent1's handshake: {reply}");
    let client_id = reply["clientId"].as_str().unwrap().to_owned();
    let mut outcomes = Outcomes::new();
    for (label, batch, error) in foreign_messages(&client_id) {
        let reply = exchange(&mut socket, &batch).await;
        outcomes.push((label, refused(&reply, error)));
    }
    outcomes
}
