//! A CometD desktop that keeps its session through the chaos: the ack extension on, over
//! long-polling or WebSocket, subscribed to `/v2/me/calls`. Each connect goes to its home
//! instance, or to the next one up (what a sticky load balancer does when the instance of
//! the `BAYEUX_BROWSER` cookie dies), with the same `clientId` and `ext.ack`: the cluster
//! adopts the session there. Told `402::Unknown client` it handshakes again (a resync) and
//! starts a new segment. It records every call message of every segment, for
//! [`super::checks::assert_desks`].

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_util::sync::CancellationToken;

use super::watcher::Instances;
use crate::common::basic;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// How long the server may hold a connect (`advice.timeout` the desk asks for).
const HOLD_MS: u64 = 1000;
/// The bound on one request: a held connect and a margin. A paused instance's connect
/// ends here, and the desk goes to the next instance up.
const REQUEST_BOUND: Duration = Duration::from_secs(3);

/// The transport of a desk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    LongPolling,
    WebSocket,
}

/// Everything one desk got.
#[derive(Debug, Default, Clone)]
pub struct DeskRecord {
    /// Per session (the first, then one per re-handshake): the call messages, as
    /// `(call, state)`.
    pub segments: Vec<Vec<(String, String)>>,
    /// Connects that went to another instance than the one before, and were answered
    /// successfully there (the session was adopted).
    pub moves: usize,
    /// `402::Unknown client` answers (each followed by a new handshake).
    pub unknown: usize,
    /// The instance of the last successful connect.
    pub on: usize,
}

impl DeskRecord {
    /// Every call message of every segment, in order.
    pub fn all(&self) -> Vec<(String, String)> {
        self.segments.iter().flatten().cloned().collect()
    }
}

/// A desk of one user.
pub struct Desk {
    pub user: &'static str,
    pub transport: Transport,
    pub first_home: usize,
    pub record: Arc<Mutex<DeskRecord>>,
    home: Arc<AtomicUsize>,
    kick: Arc<Notify>,
}

impl Desk {
    /// Starts a desk of `user` on instance `home`; returns once it is subscribed.
    pub async fn start(
        user: &'static str,
        transport: Transport,
        home: usize,
        http: Arc<Vec<String>>,
        instances: Arc<Instances>,
        stop: CancellationToken,
    ) -> Self {
        let desk = Self {
            user,
            transport,
            first_home: home,
            record: Arc::default(),
            home: Arc::new(AtomicUsize::new(home)),
            kick: Arc::default(),
        };
        let client = Client {
            user,
            transport,
            http,
            instances,
            home: desk.home.clone(),
            record: desk.record.clone(),
            kick: desk.kick.clone(),
            cookies: reqwest::Client::builder()
                .cookie_store(true)
                .timeout(REQUEST_BOUND)
                .build()
                .unwrap(),
            ws: None,
            next_id: 0,
        };
        tokio::spawn(client.run(stop));
        crate::common::eventually(&format!("{user}'s desk subscribed on {home}"), || {
            !desk.record.lock().unwrap().segments.is_empty()
        })
        .await;
        desk
    }

    /// Moves the desk to instance `to` now: its next connect goes there.
    pub fn move_to(&self, to: usize) {
        self.home.store(to, Ordering::SeqCst);
        self.kick.notify_one();
    }

    /// Drops the request in flight (a held connect on an instance that stopped
    /// answering, which a balancer's health check found): the next goes to the instance
    /// up from home.
    pub fn kick(&self) {
        self.kick.notify_one();
    }

    /// What it got so far.
    pub fn record(&self) -> DeskRecord {
        self.record.lock().unwrap().clone()
    }
}

/// The session the desk has.
struct Session {
    client_id: String,
    /// The `ext.ack` of the last successful connect reply.
    position: Option<u64>,
}

struct Client {
    user: &'static str,
    transport: Transport,
    /// The instances' HTTP URLs.
    http: Arc<Vec<String>>,
    instances: Arc<Instances>,
    home: Arc<AtomicUsize>,
    record: Arc<Mutex<DeskRecord>>,
    kick: Arc<Notify>,
    /// Long-polling: one cookie jar (one browser) for every instance, as behind a balancer.
    cookies: reqwest::Client,
    /// WebSocket: the socket and the instance it is open to.
    ws: Option<(Ws, usize)>,
    next_id: u64,
}

impl Client {
    async fn run(mut self, stop: CancellationToken) {
        let mut session: Option<Session> = None;
        let kick = self.kick.clone();
        loop {
            let on = self.instances.up_from(self.home.load(Ordering::SeqCst));
            let step = async {
                match &mut session {
                    None => self.handshake(on).await.map(Some),
                    Some(current) => self.connect(on, current).await,
                }
            };
            let outcome = tokio::select! {
                () = stop.cancelled() => return,
                () = kick.notified() => None,
                outcome = step => Some(outcome),
            };
            match outcome {
                // Moved: the socket (if any) is closed, the next connect goes home.
                None => self.ws = None,
                Some(Ok(Some(new))) => session = Some(new),
                Some(Ok(None)) => {}
                Some(Err(Failed::Unknown)) => {
                    self.record.lock().unwrap().unknown += 1;
                    session = None;
                }
                Some(Err(Failed::Broken)) => {
                    self.ws = None;
                    // The retry period of a desk whose instance is going away; the test
                    // bounds every wait on what desks saw.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
    }

    fn id(&mut self) -> String {
        self.next_id += 1;
        self.next_id.to_string()
    }

    /// Handshakes on instance `on` and subscribes; starts a new segment.
    async fn handshake(&mut self, on: usize) -> Result<Session, Failed> {
        let id = self.id();
        let handshake = json!([{"id": id, "channel": "/meta/handshake", "version": "1.0",
            "supportedConnectionTypes": ["websocket", "long-polling"],
            "advice": {"timeout": HOLD_MS, "interval": 0}, "ext": {"ack": true}}]);
        let replies = self.exchange(on, handshake, &id).await?;
        let reply = reply_to(&replies, &id)?;
        let client_id = reply["clientId"].as_str().ok_or(Failed::Broken)?.to_owned();
        let id = self.id();
        let subscribe = json!([{"id": id, "channel": "/meta/subscribe",
            "clientId": client_id, "subscription": "/v2/me/calls"}]);
        let replies = self.exchange(on, subscribe, &id).await?;
        reply_to(&replies, &id)?;
        let mut record = self.record.lock().unwrap();
        record.segments.push(Vec::new());
        record.on = on;
        Ok(Session {
            client_id,
            position: None,
        })
    }

    /// Sends one connect acknowledging the session's position to instance `on`; records
    /// the call messages of a successful reply.
    async fn connect(
        &mut self,
        on: usize,
        session: &mut Session,
    ) -> Result<Option<Session>, Failed> {
        let id = self.id();
        let mut connect = json!({"id": id, "channel": "/meta/connect",
            "connectionType": self.connection_type(), "clientId": session.client_id,
            "advice": {"timeout": HOLD_MS}});
        if let Some(position) = session.position {
            connect["ext"] = json!({"ack": position});
        }
        let replies = self.exchange(on, json!([connect]), &id).await?;
        let reply = reply_to(&replies, &id)?;
        let mut record = self.record.lock().unwrap();
        let calls = replies.iter().filter(|m| m["channel"] == "/v2/me/calls");
        let seen = calls.filter_map(|m| {
            let call = &m["data"]["call"];
            Some((
                call["id"].as_str()?.to_owned(),
                call["state"].as_str()?.to_owned(),
            ))
        });
        record.segments.last_mut().expect("a segment").extend(seen);
        if record.on != on {
            record.moves += 1;
            record.on = on;
        }
        if let Some(position) = reply["ext"]["ack"].as_u64() {
            session.position = Some(position);
        }
        if reply["advice"]["reconnect"] == "handshake" {
            return Err(Failed::Unknown);
        }
        Ok(None)
    }

    fn connection_type(&self) -> &'static str {
        match self.transport {
            Transport::LongPolling => "long-polling",
            Transport::WebSocket => "websocket",
        }
    }

    /// Sends `batch` to instance `on` and returns every message received up to the reply
    /// to `id`.
    async fn exchange(&mut self, on: usize, batch: Value, id: &str) -> Result<Vec<Value>, Failed> {
        match self.transport {
            Transport::LongPolling => {
                let url = format!("{}/api/v2/notifications", self.http[on]);
                let response = self
                    .cookies
                    .post(url)
                    .header("authorization", basic(self.user))
                    .header("content-type", "application/json")
                    .body(batch.to_string())
                    .send()
                    .await
                    .map_err(|_| Failed::Broken)?;
                if !response.status().is_success() {
                    return Err(Failed::Broken);
                }
                let body: Value = response.json().await.map_err(|_| Failed::Broken)?;
                body.as_array().cloned().ok_or(Failed::Broken)
            }
            Transport::WebSocket => {
                let ws = self.socket(on).await?;
                ws.send(Message::text(batch.to_string()))
                    .await
                    .map_err(|_| Failed::Broken)?;
                let mut received = Vec::new();
                loop {
                    let frame = tokio::time::timeout(REQUEST_BOUND, ws.next()).await;
                    let Ok(Some(Ok(frame))) = frame else {
                        return Err(Failed::Broken);
                    };
                    match frame {
                        Message::Text(text) => {
                            let batch: Value =
                                serde_json::from_str(&text).map_err(|_| Failed::Broken)?;
                            let messages = batch.as_array().cloned().ok_or(Failed::Broken)?;
                            let done = messages.iter().any(|m| m["id"] == id);
                            received.extend(messages);
                            if done {
                                return Ok(received);
                            }
                        }
                        Message::Close(_) => return Err(Failed::Broken),
                        _ => {}
                    }
                }
            }
        }
    }

    /// The socket to instance `on`, opened if needed (a socket to another instance is
    /// closed: the desk moved).
    async fn socket(&mut self, on: usize) -> Result<&mut Ws, Failed> {
        if self.ws.as_ref().is_some_and(|(_, at)| *at != on) {
            self.ws = None;
        }
        if self.ws.is_none() {
            let url = format!(
                "{}/api/v2/notifications",
                self.http[on].replacen("http://", "ws://", 1)
            );
            let mut request = url.into_client_request().map_err(|_| Failed::Broken)?;
            let auth = basic(self.user).parse().map_err(|_| Failed::Broken)?;
            request.headers_mut().insert("authorization", auth);
            let opened =
                tokio::time::timeout(REQUEST_BOUND, tokio_tungstenite::connect_async(request))
                    .await;
            let Ok(Ok((ws, _))) = opened else {
                return Err(Failed::Broken);
            };
            self.ws = Some((ws, on));
        }
        Ok(&mut self.ws.as_mut().expect("a socket").0)
    }
}

/// Why a step failed.
enum Failed {
    /// No answer (the instance went away): try again, on the instance up.
    Broken,
    /// `402::Unknown client`: handshake again.
    Unknown,
}

/// The reply to `id`: an error for a failed one (`Unknown` for `402`).
fn reply_to<'a>(replies: &'a [Value], id: &str) -> Result<&'a Value, Failed> {
    let reply = replies
        .iter()
        .find(|m| m["id"] == id)
        .ok_or(Failed::Broken)?;
    if reply["successful"] == true {
        return Ok(reply);
    }
    if reply["error"]
        .as_str()
        .is_some_and(|e| e.starts_with("402"))
        || reply["advice"]["reconnect"] == "handshake"
    {
        return Err(Failed::Unknown);
    }
    Err(Failed::Broken)
}
