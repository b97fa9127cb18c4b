//! The gateway every check runs against, with calls and device states in place, and the
//! state of it that a refused request must leave unchanged.

use std::collections::BTreeMap;

use tonic::transport::Channel;
use voice_gateway::grpc::pb;
use voice_gateway::grpc::pb::call_service_client::CallServiceClient;
use voice_gateway::grpc::pb::device_service_client::DeviceServiceClient;

use super::WAIT;
pub use crate::common::state::{GatewayState, USERS};
use crate::common::{TestGateway, as_user};

/// The names, numbers and calls a request may name, for one user of the fixture.
#[derive(Debug, Clone, Default)]
pub struct Subject {
    /// The user.
    pub user: &'static str,
    /// The user's established call (empty when the user has none).
    pub call: String,
    /// Another call of the user (held), or the same call.
    pub other_call: String,
    /// The user's device id.
    pub device: String,
    /// The user's number.
    pub number: String,
    /// A number the user's requests target: a colleague for demo users (transfer, dial,
    /// monitoring, inbound calls), basic1's own number for basic1, which is what a demo
    /// user names to reach across contact centers.
    pub peer: String,
    /// The outside party on `call`.
    pub external: String,
    /// Whether a watch asks for the whole contact center.
    pub whole_center: bool,
}

/// A gateway with calls and device states in place, which every refused request must leave
/// exactly as it is:
/// - agent1: call A to 9165550104, held; call A2 to 9165550105, established; Ready ManualIn;
/// - basic1 (contact center `basic`): call B to 9165550106, established; do-not-disturb on;
/// - supervisor2 listens in on agent2 (all calls, scope Agent).
pub struct Fixture {
    /// The gateway.
    pub gw: TestGateway,
    /// A CallService client.
    pub calls: CallServiceClient<Channel>,
    /// A DeviceService client.
    pub devices: DeviceServiceClient<Channel>,
    /// The channel the raw gRPC attempts use.
    pub channel: Channel,
    /// What each user's requests name.
    pub subjects: BTreeMap<&'static str, Subject>,
    /// A live `JSESSIONID` per user.
    pub sessions: BTreeMap<&'static str, String>,
    /// The HTTP client of the attempts (no cookie store, no redirects).
    pub http: reqwest::Client,
}

impl Fixture {
    /// Starts the gateway with `config` and puts the fixture's state in place.
    pub async fn start(config: voice_gateway::config::Config) -> Self {
        let gw = TestGateway::spawn_with(|c| *c = config).await;
        let endpoint = tonic::transport::Endpoint::from_shared(gw.grpc_url()).unwrap();
        let channel = tokio::time::timeout(WAIT, endpoint.connect())
            .await
            .expect("a gRPC connection within the wait")
            .unwrap();
        let mut fixture = Self {
            calls: CallServiceClient::new(channel.clone()),
            devices: DeviceServiceClient::new(channel.clone()),
            channel,
            gw,
            subjects: BTreeMap::new(),
            sessions: BTreeMap::new(),
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
        };
        // Several calls and waits, each for an answer from the gateway.
        let limit = WAIT * 3;
        tokio::time::timeout(limit, fixture.set_up())
            .await
            .unwrap_or_else(|_| panic!("the fixture was not in place within {limit:?}"));
        fixture
    }

    async fn set_up(&mut self) {
        let a = self.dial_established("agent1", "9165550104").await;
        let hold = pb::HoldRequest { call_id: a.clone() };
        self.calls.hold(as_user("agent1", hold)).await.unwrap();
        let a2 = self.dial_established("agent1", "9165550105").await;
        let b = self.dial_established("basic1", "9165550106").await;
        let ready = pb::ReadyRequest {
            workmode: "ManualIn".into(),
        };
        self.devices.ready(as_user("agent1", ready)).await.unwrap();
        let dnd = pb::DoNotDisturbOnRequest::default();
        self.devices
            .do_not_disturb_on(as_user("basic1", dnd))
            .await
            .unwrap();
        let listen = pb::ListenInRequest {
            target: Some(pb::MonitorTarget {
                phone_number: "15001".into(),
                mode: "AllCalls".into(),
                scope: "Agent".into(),
                ..Default::default()
            }),
        };
        self.devices
            .listen_in(as_user("supervisor2", listen))
            .await
            .unwrap();
        for user in USERS {
            let device = self.device_of(user).await;
            let subject = Subject {
                user,
                number: device.phone_number.clone(),
                device: device.id,
                ..Subject::default()
            };
            self.subjects.insert(user, subject);
        }
        let with_calls = |s: &mut Subject, call: &str, other: &str, external: &str| {
            s.call = call.to_owned();
            s.other_call = other.to_owned();
            s.external = external.to_owned();
        };
        for (user, peer) in [
            ("agent1", "15002"),
            ("supervisor1", "15002"),
            ("supervisor2", "15001"),
            ("admin", "15002"),
            ("basic1", "16000"),
        ] {
            self.subjects.get_mut(user).unwrap().peer = peer.to_owned();
        }
        with_calls(self.subject_mut("agent1"), &a2, &a, "9165550105");
        // The simulator's admin names agent1's outside call: a call of its contact center.
        with_calls(self.subject_mut("admin"), &a2, &a, "9165550105");
        with_calls(self.subject_mut("basic1"), &b, &b, "9165550106");
        for user in ["agent1", "supervisor1", "supervisor2", "admin"] {
            let session = self.open_session(user).await;
            self.sessions.insert(user, session);
        }
    }

    fn subject_mut(&mut self, user: &str) -> &mut Subject {
        self.subjects.get_mut(user).unwrap()
    }

    /// Returns what `user`'s requests name, asking for the whole contact center if told.
    pub fn subject(&self, user: &str, whole_center: bool) -> Subject {
        Subject {
            whole_center,
            ..self.subjects[user].clone()
        }
    }

    /// Dials an outside number as `user` and waits until it answered.
    async fn dial_established(&mut self, user: &str, number: &str) -> String {
        let mut watch = self
            .calls
            .watch_calls(as_user(user, pb::WatchCallsRequest::default()))
            .await
            .unwrap()
            .into_inner();
        let dial = pb::DialRequest {
            destination: number.into(),
            ..Default::default()
        };
        let id = self
            .calls
            .dial(as_user(user, dial))
            .await
            .unwrap()
            .into_inner()
            .call
            .unwrap()
            .id;
        let established = async {
            while let Some(message) = watch.message().await.unwrap() {
                if let Some(pb::watch_calls_response::Kind::Event(event)) = message.kind
                    && let Some(call) = event.call
                    && call.id == id
                    && call.state() == pb::CallState::Established
                {
                    return;
                }
            }
            panic!("{user}'s watch ended before call {id} was answered");
        };
        tokio::time::timeout(WAIT, established)
            .await
            .unwrap_or_else(|_| panic!("{number} did not answer {user}'s call within {WAIT:?}"));
        id
    }

    async fn device_of(&mut self, user: &str) -> pb::Device {
        let devices = self
            .devices
            .list_devices(as_user(user, pb::ListDevicesRequest {}))
            .await
            .unwrap()
            .into_inner()
            .devices;
        devices.into_iter().next().unwrap()
    }

    /// Opens a legacy HTTP session as `user`; returns its `JSESSIONID`.
    async fn open_session(&self, user: &str) -> String {
        let response = self
            .http
            .get(format!("{}/api/v2/me", self.gw.http_url()))
            .basic_auth(user, Some(crate::common::DEMO_PASSWORD))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "GET /api/v2/me as {user}");
        let cookie = response.headers()["set-cookie"].to_str().unwrap();
        let value = cookie
            .strip_prefix("JSESSIONID=")
            .and_then(|rest| rest.split(';').next())
            .unwrap_or_else(|| panic!("no JSESSIONID in {cookie}"));
        value.to_owned()
    }

    /// Reads everything a refused request must leave unchanged.
    pub async fn state(&self) -> GatewayState {
        GatewayState::read_with(&self.calls, &self.devices).await
    }
}
