//! Every client mistake gets a GWS error body with the HTTP status and statusCode of the
//! mapping in `gws::json::error`, and leaves the call exactly as it was.

mod common;

use common::TestGateway;
use common::desktop::{Agent, assert_error, stable};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// A gateway with agent1 and agent2 on an established call.
struct Fixture {
    gw: TestGateway,
    a1: Agent,
    a2: Agent,
    id: String,
}

impl Fixture {
    async fn new() -> Self {
        let gw = TestGateway::spawn().await;
        let a1 = Agent::new(&gw.http_url(), "agent1");
        let a2 = Agent::new(&gw.http_url(), "agent2");
        let id = gw.established_call("agent1", "agent2", "15001").await;
        Self { gw, a1, a2, id }
    }

    fn call_path(&self) -> String {
        format!("/api/v2/me/calls/{}", self.id)
    }

    /// Both parties' views of the call and their call lists.
    async fn views(&self) -> Value {
        json!([
            stable(&self.a1.call(&self.id).await),
            stable(&self.a2.call(&self.id).await),
            self.a1.call_ids().await,
            self.a2.call_ids().await,
        ])
    }

    /// Runs `attempt`, asserts the error it gets and that nothing changed.
    async fn refused<F, Fut>(&self, status: u16, code: u64, attempt: F)
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = (StatusCode, Value)>,
    {
        let before = self.views().await;
        let reply = attempt().await;
        assert_error(&reply, status, code);
        assert_eq!(
            self.views().await,
            before,
            "the call changed after {reply:?}"
        );
    }

    async fn post_op(&self, body: Value) -> (StatusCode, Value) {
        self.a1.post(&self.call_path(), body).await
    }

    /// POSTs raw bytes with a content type as agent1.
    async fn post_bytes(
        &self,
        path: &str,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> (StatusCode, Value) {
        let mut request = self
            .a1
            .client
            .post(format!("{}{path}", self.gw.http_url()))
            .basic_auth("agent1", Some("demo"))
            .body(body);
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        (status, response.json().await.unwrap())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_operation_names_are_400_with_status_code_2() {
    let f = Fixture::new().await;
    f.refused(400, 2, || f.post_op(json!({"operationName": "Fly"})))
        .await;
    f.refused(400, 2, || f.post_op(json!({"operationName": "hangup"})))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_parameters_are_400_with_status_code_1() {
    let f = Fixture::new().await;
    f.refused(400, 1, || f.post_op(json!({"operationName": "SendDtmf"})))
        .await;
    f.refused(400, 1, || {
        f.post_op(json!({"operationName": "SingleStepTransfer"}))
    })
    .await;
    f.refused(400, 1, || {
        f.post_op(json!({"operationName": "InitiateConference", "destination": {}}))
    })
    .await;
    f.refused(400, 1, || {
        f.post_op(json!({"operationName": "DeleteUserDataPair"}))
    })
    .await;
    f.refused(400, 1, || f.post_op(json!({"operationName": "SwapCalls"})))
        .await;
    f.refused(400, 1, || f.post_op(json!({"digits": "1"})))
        .await;
    let device = f.a1.device_id().await;
    let dial = format!("/api/v2/me/devices/{device}/calls");
    f.refused(400, 1, || {
        f.a1.post(&dial, json!({"operationName": "Dial"}))
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mistyped_parameters_are_400_with_status_code_2() {
    let f = Fixture::new().await;
    f.refused(400, 2, || {
        f.post_op(json!({"operationName": "SendDtmf", "digits": 12}))
    })
    .await;
    f.refused(400, 2, || {
        f.post_op(json!({"operationName": "SendDtmf", "digits": "12a"}))
    })
    .await;
    f.refused(400, 2, || {
        f.post_op(json!({"operationName": "SingleStepTransfer", "destination": "15002"}))
    })
    .await;
    f.refused(400, 2, || f.post_op(json!({"operationName": "SingleStepTransfer", "destination": {"phoneNumber": "15-002"}}))).await;
    f.refused(400, 2, || {
        f.post_op(json!({"operationName": "UpdateUserData", "userData": {"a": true}}))
    })
    .await;
    f.refused(400, 2, || {
        f.post_op(json!({"operationName": "UpdateUserData", "userData": ["a"]}))
    })
    .await;
    f.refused(400, 2, || {
        f.post_op(json!({"operationName": "SwapCalls", "otherCallUri": "/devices/x"}))
    })
    .await;
    f.refused(400, 2, || f.post_op(json!({"operationName": 5})))
        .await;
    let device = f.a1.device_id().await;
    let dial = format!("/api/v2/me/devices/{device}/calls");
    let body = json!({"operationName": "Dial", "destination": {"phoneNumber": 15002}});
    f.refused(400, 2, || f.a1.post(&dial, body)).await;
    // An operation posted to a resource it does not act on.
    let body = json!({"operationName": "Dial", "destination": {"phoneNumber": "15002"}});
    f.refused(400, 2, || f.post_op(body)).await;
    let body = json!({"operationName": "Hangup"});
    f.refused(400, 2, || f.a1.post(&dial, body)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operations_outside_the_capabilities_are_400_with_status_code_2() {
    let f = Fixture::new().await;
    f.refused(400, 2, || f.post_op(json!({"operationName": "Retrieve"})))
        .await;
    f.refused(400, 2, || f.post_op(json!({"operationName": "Answer"})))
        .await;
    f.refused(400, 2, || {
        f.post_op(json!({"operationName": "StopCallRecording"}))
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_call_and_device_ids_are_404_with_status_code_6() {
    let f = Fixture::new().await;
    let hangup = json!({"operationName": "Hangup"});
    f.refused(404, 6, || f.a1.post("/api/v2/me/calls/NOSUCHCALL", hangup))
        .await;
    f.refused(404, 6, || f.a1.get("/api/v2/me/calls/NOSUCHCALL"))
        .await;
    f.refused(404, 6, || f.a1.get("/api/v2/me/devices/no-such-device"))
        .await;
    let dial = json!({"operationName": "Dial", "destination": {"phoneNumber": "15002"}});
    f.refused(404, 6, || {
        f.a1.post("/api/v2/me/devices/no-such-device/calls", dial)
    })
    .await;
    // agent2's device is not agent1's.
    let other = f.a2.device_id().await;
    let dial = json!({"operationName": "Dial", "destination": {"phoneNumber": "15002"}});
    let path = format!("/api/v2/me/devices/{other}/calls");
    f.refused(404, 6, || f.a1.post(&path, dial)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_feature_is_403_with_status_code_3() {
    let gw = TestGateway::spawn().await;
    let basic = Agent::new(&gw.http_url(), "basic1");
    let a2 = Agent::new(&gw.http_url(), "agent2");
    let id = basic.dial("15001").await;
    a2.op(&id, json!({"operationName": "Answer"})).await;
    let before = stable(&basic.call(&id).await);
    assert_eq!(before["state"], "Established");
    assert!(before.get("recordingState").is_none());
    let reply = basic
        .post(
            &format!("/api/v2/me/calls/{id}"),
            json!({"operationName": "StartCallRecording"}),
        )
        .await;
    assert_error(&reply, 403, 3);
    assert!(
        reply.1["statusMessage"]
            .as_str()
            .unwrap()
            .contains("api-voice-recording")
    );
    assert_eq!(stable(&basic.call(&id).await), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_json_is_400_with_status_code_2() {
    let f = Fixture::new().await;
    let path = f.call_path();
    let json = Some("application/json");
    f.refused(400, 2, || {
        f.post_bytes(&path, json, b"{\"operationName\":".to_vec())
    })
    .await;
    f.refused(400, 2, || {
        f.post_bytes(&path, json, b"[\"Hangup\"]".to_vec())
    })
    .await;
    f.refused(400, 2, || f.post_bytes(&path, json, Vec::new()))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_is_not_json_is_415_with_status_code_2() {
    let f = Fixture::new().await;
    let path = f.call_path();
    let body = br#"{"operationName":"Hangup"}"#.to_vec();
    f.refused(415, 2, || {
        f.post_bytes(&path, Some("text/plain"), body.clone())
    })
    .await;
    f.refused(415, 2, || {
        f.post_bytes(
            &path,
            Some("application/x-www-form-urlencoded"),
            body.clone(),
        )
    })
    .await;
    f.refused(415, 2, || f.post_bytes(&path, None, body)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_body_is_413_with_status_code_2() {
    let f = Fixture::new().await;
    let big = "x".repeat(100 * 1024);
    let body = json!({"operationName": "UpdateUserData", "userData": {"big": big}});
    f.refused(413, 2, || f.post_op(body)).await;
    // Just under the limit is fine: the limit is on bytes, not on the operation.
    let fits = "x".repeat(60 * 1024);
    f.a1.op(
        &f.id,
        json!({"operationName": "UpdateUserData", "userData": {"big": fits}}),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_routes_are_404_and_wrong_methods_405() {
    let f = Fixture::new().await;
    f.refused(404, 6, || f.a1.get("/api/v2/me/nothing")).await;
    f.refused(404, 6, || f.a1.get("/api/v1/me")).await;
    f.refused(404, 6, || f.a1.get("/api")).await;
    let hangup = json!({"operationName": "Hangup"});
    let without_me = format!("/api/v2/calls/{}", f.id);
    f.refused(404, 6, || f.a1.post(&without_me, hangup)).await;
    let put = || async {
        let response =
            f.a1.client
                .put(format!("{}{}", f.gw.http_url(), f.call_path()))
                .basic_auth("agent1", Some("demo"))
                .json(&json!({"operationName": "Hangup"}))
                .send()
                .await
                .unwrap();
        (response.status(), response.json().await.unwrap())
    };
    f.refused(405, 3, put).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_or_bad_credentials_are_401_with_status_code_20() {
    let f = Fixture::new().await;
    let url = format!("{}{}", f.gw.http_url(), f.call_path());
    let hangup = json!({"operationName": "Hangup"});
    let client = reqwest::Client::new();
    let send = |request: reqwest::RequestBuilder| async move {
        let response = request.send().await.unwrap();
        let challenge = response.headers().get("www-authenticate").cloned();
        assert!(challenge.is_some_and(|c| c.to_str().unwrap().starts_with("Basic")));
        (response.status(), response.json::<Value>().await.unwrap())
    };
    f.refused(401, 20, || send(client.post(&url).json(&hangup)))
        .await;
    f.refused(401, 20, || {
        send(
            client
                .post(&url)
                .basic_auth("agent1", Some("nope"))
                .json(&hangup),
        )
    })
    .await;
    f.refused(401, 20, || {
        send(
            client
                .post(&url)
                .basic_auth("nobody", Some("demo"))
                .json(&hangup),
        )
    })
    .await;
    f.refused(401, 20, || {
        send(client.post(&url).bearer_auth("demo-token").json(&hangup))
    })
    .await;
    f.refused(401, 20, || {
        send(
            client
                .post(&url)
                .header("authorization", "Basic !!!")
                .json(&hangup),
        )
    })
    .await;
    f.refused(401, 20, || send(client.get(&url))).await;
    let (_, body) = send(client.get(&url)).await;
    assert_eq!(body["statusMessage"], "Access denied");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_users_call_is_403_with_status_code_5() {
    let f = Fixture::new().await;
    let a3 = Agent::new(&f.gw.http_url(), "agent3");
    let path = f.call_path();
    f.refused(403, 5, || {
        a3.post(&path, json!({"operationName": "Hangup"}))
    })
    .await;
    f.refused(403, 5, || a3.get(&path)).await;
}
