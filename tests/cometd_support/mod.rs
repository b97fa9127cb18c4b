//! Helpers of the CometD tests: a raw long-polling client that keeps cookies like a browser,
//! and (in [`node`]) the real Node clients. The gateway is `common::TestGateway`, the
//! desktop's HTTP side `common::desktop::Agent`.
#![allow(dead_code, unreachable_pub)]

pub mod node;

use std::time::Duration;

use serde_json::{Value, json};

use crate::common::TestGateway;

/// A long-polling client with its own cookie store (its own "browser").
pub struct LpClient {
    /// The HTTP client.
    pub http: reqwest::Client,
    /// The notifications URL.
    pub url: String,
    /// The `clientId` after a handshake.
    pub client_id: String,
    next_id: u64,
    auth: Option<String>,
}

impl LpClient {
    /// Builds a client for the gateway, sending `auth` as the Authorization header.
    pub fn new(gateway: &TestGateway, auth: Option<String>) -> Self {
        Self {
            http: reqwest::Client::builder()
                .cookie_store(true)
                // Longer than any held connect of the tests (cometd.timeout_ms 5 s), shorter than a
                // test may take.
                .timeout(Duration::from_secs(8))
                .build()
                .unwrap(),
            url: gateway.url(),
            client_id: String::new(),
            next_id: 0,
            auth,
        }
    }

    /// Sets the Authorization header of the next requests (`None`: none).
    pub fn set_auth(&mut self, auth: Option<String>) {
        self.auth = auth;
    }

    /// Returns a fresh message id.
    pub fn id(&mut self) -> String {
        self.next_id += 1;
        self.next_id.to_string()
    }

    /// POSTs a raw body to `url + suffix`; returns the status, and the body as JSON when
    /// it parses (else as a string).
    pub async fn post_raw(&self, suffix: &str, body: String) -> (u16, Value) {
        let mut request = self
            .http
            .post(format!("{}{suffix}", self.url))
            .header("content-type", "application/json")
            .body(body);
        if let Some(auth) = &self.auth {
            request = request.header("authorization", auth);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// POSTs a batch and expects 200 with a JSON array.
    pub async fn post(&self, suffix: &str, batch: Value) -> Vec<Value> {
        let (status, body) = self.post_raw(suffix, batch.to_string()).await;
        assert_eq!(status, 200, "{body}");
        body.as_array().expect("a JSON array").clone()
    }

    /// Handshakes (with `ext` if given); returns the reply and stores the `clientId`.
    pub async fn handshake(&mut self, ext: Option<Value>) -> Value {
        let mut message = json!({
            "id": self.id(), "channel": "/meta/handshake", "version": "1.0",
            "minimumVersion": "1.0", "supportedConnectionTypes": ["long-polling"],
            "advice": {"timeout": 60000, "interval": 0}
        });
        if let Some(ext) = ext {
            message["ext"] = ext;
        }
        let reply = self.post("/handshake", json!([message])).await.remove(0);
        if let Some(id) = reply["clientId"].as_str() {
            self.client_id = id.to_owned();
        }
        reply
    }

    /// Sends a connect (with optional advice timeout and ack); returns the whole response.
    pub async fn connect(&mut self, timeout: Option<u64>, ack: Option<u64>) -> Vec<Value> {
        let mut message = json!({
            "id": self.id(), "channel": "/meta/connect",
            "connectionType": "long-polling", "clientId": self.client_id
        });
        if let Some(timeout) = timeout {
            message["advice"] = json!({ "timeout": timeout });
        }
        if let Some(ack) = ack {
            message["ext"] = json!({ "ack": ack });
        }
        self.post("/connect", json!([message])).await
    }

    /// Subscribes; returns the reply.
    pub async fn subscribe(&mut self, subscription: Value) -> Value {
        let message = json!({
            "id": self.id(), "channel": "/meta/subscribe",
            "clientId": self.client_id, "subscription": subscription
        });
        self.post("/", json!([message])).await.remove(0)
    }

    /// Handshakes, connects once (answered at once) and subscribes to `channel`.
    pub async fn ready(&mut self, channel: &str) {
        let reply = self.handshake(None).await;
        assert_eq!(reply["successful"], true, "{reply}");
        let first = self.connect(Some(0), None).await;
        assert_eq!(first.last().unwrap()["successful"], true);
        let sub = self.subscribe(json!(channel)).await;
        assert_eq!(sub["successful"], true, "{sub}");
    }
}

/// Splits a connect response into the delivered events and the connect reply.
pub fn split(response: &[Value]) -> (Vec<Value>, Value) {
    let reply = response
        .iter()
        .find(|m| m["channel"] == "/meta/connect")
        .cloned()
        .expect("a connect reply");
    let events = response
        .iter()
        .filter(|m| m.get("data").is_some())
        .cloned()
        .collect();
    (events, reply)
}

impl LpClient {
    /// A second client of the same browser (cookie store) and session, to hold a connect
    /// while this one sends other messages.
    pub fn same_session(&self, gateway: &TestGateway) -> Self {
        let mut other = Self::new(gateway, None);
        other.http = self.http.clone();
        other.client_id = self.client_id.clone();
        other
    }

    /// Sends connects until an event satisfies `wanted`; returns every event read, in
    /// order. Fails after [`crate::common::WAIT`].
    pub async fn connect_until(&mut self, wanted: impl Fn(&Value) -> bool) -> Vec<Value> {
        let mut events = Vec::new();
        let read = async {
            loop {
                let response = self.connect(None, None).await;
                let (got, reply) = split(&response);
                assert_eq!(reply["successful"], true, "{reply}");
                for event in got {
                    let done = wanted(&event);
                    events.push(event);
                    if done {
                        return;
                    }
                }
            }
        };
        if tokio::time::timeout(crate::common::WAIT, read)
            .await
            .is_err()
        {
            panic!("no wanted CometD event within the wait; got {events:#?}");
        }
        events
    }
}

/// Waits until the gateway holds a connect of session `client_id`: then, and only then, an
/// event or a message sent is known to find the connect waiting.
pub async fn connect_held(gateway: &TestGateway, client_id: &str) {
    crate::common::eventually("the gateway holds the connect", || {
        gateway
            .registry
            .get(client_id)
            .is_some_and(|session| session.is_held())
    })
    .await;
}

/// Whether `event` is the CallRecordingStateChange that says the recording stopped.
pub fn is_recording_stop(event: &Value) -> bool {
    event["data"]["notificationType"] == "CallRecordingStateChange"
        && event["data"]["call"]["recordingState"] == "Stopped"
}
