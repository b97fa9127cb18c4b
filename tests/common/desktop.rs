//! The suite's one agent desktop client: speaks the GWS JSON API over a real socket with
//! reqwest, with Basic on every request (`new`), a cookie store (`with_cookies`), or as a
//! browser does after its login: Basic once, then only the `JSESSIONID` cookie (`login`).

use reqwest::StatusCode;
use serde_json::{Value, json};

use super::within;

/// One agent's HTTP client.
pub struct Agent {
    /// The client.
    pub client: reqwest::Client,
    /// `http://host:port`.
    pub base: String,
    /// Login name.
    pub user: String,
    /// Whether to send Basic credentials.
    pub basic: bool,
    /// The session id the login set (empty unless built by [`Agent::login`]).
    pub jsessionid: String,
}

impl Agent {
    /// Builds an agent sending Basic credentials and keeping no cookies.
    pub fn new(base: &str, user: &str) -> Self {
        Self {
            client: reqwest::Client::new(),
            base: base.to_owned(),
            user: user.to_owned(),
            basic: true,
            jsessionid: String::new(),
        }
    }

    /// Logs `user` in with Basic (`GET /api/v2/me`, which sets `JSESSIONID`) and builds an
    /// agent that sends only that session cookie from then on, as a browser does.
    pub async fn login(base: &str, user: &str) -> Self {
        let response = within(
            "a login",
            reqwest::Client::new()
                .get(format!("{base}/api/v2/me"))
                .basic_auth(user, Some("demo"))
                .send(),
        )
        .await
        .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{user} logs in");
        let jsessionid = response
            .cookies()
            .find(|c| c.name() == "JSESSIONID")
            .expect("the login sets JSESSIONID")
            .value()
            .to_owned();
        let mut headers = reqwest::header::HeaderMap::new();
        let cookie = format!("JSESSIONID={jsessionid}");
        headers.insert("cookie", cookie.parse().unwrap());
        Self {
            client: reqwest::Client::builder()
                .default_headers(headers)
                .build()
                .unwrap(),
            basic: false,
            jsessionid,
            ..Self::new(base, user)
        }
    }

    /// Builds an agent with a cookie store.
    pub fn with_cookies(base: &str, user: &str) -> Self {
        Self {
            client: reqwest::Client::builder()
                .cookie_store(true)
                .build()
                .unwrap(),
            ..Self::new(base, user)
        }
    }

    fn auth(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        if self.basic {
            request.basic_auth(&self.user, Some("demo"))
        } else {
            request
        }
    }

    /// Sends a GET and returns the response.
    pub async fn get_raw(&self, path: &str) -> reqwest::Response {
        let request = self.client.get(format!("{}{path}", self.base));
        within("a GET", self.auth(request).send()).await.unwrap()
    }

    /// Sends a GET; returns the status and the JSON body.
    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        decode(self.get_raw(path).await).await
    }

    /// GETs a path; expects 200 and returns the JSON body.
    pub async fn get_ok(&self, path: &str) -> Value {
        let (status, body) = self.get(path).await;
        assert_eq!(status, StatusCode::OK, "GET {path}: {body}");
        body
    }

    /// POSTs JSON and returns the response.
    pub async fn post_raw(&self, path: &str, body: &Value) -> reqwest::Response {
        let request = self.client.post(format!("{}{path}", self.base)).json(body);
        within("a POST", self.auth(request).send()).await.unwrap()
    }

    /// POSTs JSON; returns the status and the JSON body.
    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        decode(self.post_raw(path, &body).await).await
    }

    /// POSTs JSON; expects `{"statusCode":0}`.
    pub async fn post_ok(&self, path: &str, body: Value) {
        let (status, reply) = self.post(path, body.clone()).await;
        assert_eq!(
            (status, &reply),
            (StatusCode::OK, &json!({"statusCode": 0})),
            "POST {path} {body}"
        );
    }

    /// POSTs an operation to a call and asserts `{"statusCode":0}`.
    pub async fn op(&self, call: &str, body: Value) {
        self.post_ok(&format!("/api/v2/me/calls/{call}"), body)
            .await;
    }

    /// Sends `operationName` on a call; expects `{"statusCode":0}`.
    pub async fn call_op(&self, call: &str, operation: &str) {
        self.op(call, json!({ "operationName": operation })).await;
    }

    /// Returns the agent's device id and its JSON resource.
    pub async fn device(&self) -> (String, Value) {
        let body = self.get_ok("/api/v2/me/devices?fields=*").await;
        let device = body["devices"][0].clone();
        (device["id"].as_str().unwrap().to_owned(), device)
    }

    /// Returns the agent's device id.
    pub async fn device_id(&self) -> String {
        self.device().await.0
    }

    /// Returns the ids of the agent's active calls.
    pub async fn call_ids(&self) -> Vec<String> {
        let (status, body) = self.get("/api/v2/me/calls").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["uris"]
            .as_array()
            .unwrap()
            .iter()
            .map(|uri| uri.as_str().unwrap().rsplit('/').next().unwrap().to_owned())
            .collect()
    }

    /// Dials a number from the agent's device; returns the new call's id.
    pub async fn dial(&self, number: &str) -> String {
        let before = self.call_ids().await;
        let device = self.device_id().await;
        let body = json!({"operationName": "Dial", "destination": {"phoneNumber": number}});
        let (status, reply) = self
            .post(&format!("/api/v2/me/devices/{device}/calls"), body)
            .await;
        assert_eq!((status, reply), (StatusCode::OK, json!({"statusCode": 0})));
        let after = self.call_ids().await;
        let new: Vec<_> = after
            .into_iter()
            .filter(|id| !before.contains(id))
            .collect();
        assert_eq!(new.len(), 1, "one new call");
        new[0].clone()
    }

    /// Returns the call resource as the agent sees it.
    pub async fn call(&self, id: &str) -> Value {
        let (status, body) = self.get(&format!("/api/v2/me/calls/{id}")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["statusCode"], 0);
        body["call"].clone()
    }
}

async fn decode(response: reqwest::Response) -> (StatusCode, Value) {
    let status = response.status();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned());
    let text = response.text().await.unwrap();
    assert_eq!(
        content_type.as_deref(),
        Some("application/json"),
        "every legacy reply is JSON: {status} {text}"
    );
    (status, serde_json::from_str(&text).unwrap())
}

/// Returns a reply or call resource without any `duration`, which changes with time alone.
pub fn stable(value: &Value) -> Value {
    match value {
        Value::Object(object) => Value::Object(
            object
                .iter()
                .filter(|(k, _)| *k != "duration")
                .map(|(k, v)| (k.clone(), stable(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(stable).collect()),
        other => other.clone(),
    }
}

/// Asserts an error reply: HTTP status, `statusCode`, a message, nothing else.
pub fn assert_error(reply: &(StatusCode, Value), status: u16, code: u64) {
    let (got, body) = reply;
    assert_eq!(got.as_u16(), status, "{body}");
    assert_eq!(body["statusCode"], code, "{body}");
    assert!(
        body["statusMessage"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    assert_eq!(body.as_object().unwrap().len(), 2, "{body}");
}
