//! The one task that feeds CometD from the core: it reads the whole event stream
//! (`WatchScope::All`, calls and devices) once and hands each event to the sessions of the
//! user it belongs to, instead of one core watch per session, so 10,000 long-polls cost one
//! broadcast reader.
//!
//! Channels (spec §8.2): a call event goes on `/v2/me/calls` (CallStateChangeMessage), and
//! so does an asynchronous error (the Voice `ErrorMessage`: an operation of that user's
//! that failed after it was accepted, see [`crate::core::ErrorEvent`]); a device event on `/v2/me/devices` (DeviceStateChangeMessage) and, when it changed the
//! agent state or do-not-disturb, also on `/v2/me/channels` (ChannelStateChangeMessageV2).
//! The JSON comes from the wing's one renderer ([`crate::gws::render`]), so a notification
//! shows a resource exactly as the JSON API's GET does.

use std::sync::Arc;

use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::channel::{CALLS_CHANNEL, CHANNELS_CHANNEL, DEVICES_CHANNEL};
use super::registry::BayeuxRegistry;
use super::session::{BayeuxMessages, BayeuxRemoval};
use crate::core::{
    CallControl, CallEvent, DeviceChange, DeviceEvent, ErrorEvent, Event, EventWatch, WatchError,
    WatchScope,
};
use crate::gws::render::{
    CallStateChangeJson, ChannelStateChangeJson, DeviceStateChangeJson, ErrorMessageJson,
};

/// A delivered message: `{"channel": channel, "data": data}`.
#[derive(Serialize)]
struct Envelope<'a, T> {
    channel: &'a str,
    data: T,
}

/// Serializes `{"channel": channel, "data": data}` straight from `data` (a `json!` here
/// built a `Value` tree of the whole resource first: 7.7 % of the gateway's CPU in figure 3
/// against Faye went to rendering, bench/FINDINGS.md), into a buffer sized for a call
/// message (`serde_json::to_string` starts at 128 bytes and grew five times per call
/// message), with sonic-rs, whose string escaping is vectorised: serde_json's byte-by-byte
/// escaping was 12k of the 137k instructions of a delivered message (session 11). The
/// bytes are serde_json's (a test compares them), so a notification reads as the JSON
/// API's GET of the same resource.
fn envelope(channel: &str, data: impl Serialize) -> Option<Arc<str>> {
    let mut json = Vec::with_capacity(RENDERED_CAPACITY);
    sonic_rs::to_writer(&mut json, &Envelope { channel, data }).ok()?;
    // Always UTF-8 (strings from `&str`, escapes in ASCII); checked rather than assumed.
    String::from_utf8(json).ok().map(Into::into)
}

/// The buffer [`envelope`] starts with: a call message of two parties is 2 to 3 KiB.
const RENDERED_CAPACITY: usize = 4096;

/// Renders a call event as the `/v2/me/calls` message (spec §8.3) for one base URL.
pub fn render_call_event(event: &CallEvent, base_url: &str) -> Option<Arc<str>> {
    envelope(
        CALLS_CHANNEL,
        CallStateChangeJson::from_event(event, base_url),
    )
}

/// Renders an asynchronous error as the `/v2/me/calls` `ErrorMessage` for one base URL.
pub fn render_error_event(event: &ErrorEvent, base_url: &str) -> Option<Arc<str>> {
    envelope(CALLS_CHANNEL, ErrorMessageJson::from_event(event, base_url))
}

/// Renders a device event as the `/v2/me/devices` message (spec §8.4) for one base URL.
pub fn render_device_event(event: &DeviceEvent, base_url: &str) -> Option<Arc<str>> {
    envelope(
        DEVICES_CHANNEL,
        DeviceStateChangeJson::from_device(&event.device, base_url),
    )
}

/// Renders a device event as the `/v2/me/channels` message (spec §8.2); it holds no URI,
/// so one rendering serves every base URL.
pub fn render_channel_event(event: &DeviceEvent) -> Option<Arc<str>> {
    envelope(
        CHANNELS_CHANNEL,
        ChannelStateChangeJson::from_device(&event.device),
    )
}

/// Returns whether a device change is also a voice-channel change (`/v2/me/channels`).
pub fn changes_channel(change: DeviceChange) -> bool {
    match change {
        DeviceChange::AgentState | DeviceChange::DoNotDisturb => true,
        DeviceChange::Device => false,
    }
}

/// Renders the messages of one event for one base URL, each `(channel, json)`: a call
/// event or error on `/v2/me/calls`; a device event on `/v2/me/devices`, and on
/// `/v2/me/channels` when it changed the voice channel.
pub fn messages(event: &Event, base_url: &str) -> BayeuxMessages {
    let rendered = match event {
        Event::Call(call) => vec![(CALLS_CHANNEL, render_call_event(call, base_url))],
        Event::Error(error) => vec![(CALLS_CHANNEL, render_error_event(error, base_url))],
        Event::Device(device) => {
            let mut both = vec![(DEVICES_CHANNEL, render_device_event(device, base_url))];
            if changes_channel(device.change) {
                both.push((CHANNELS_CHANNEL, render_channel_event(device)));
            }
            both
        }
    };
    rendered
        .into_iter()
        .filter_map(|(channel, json)| Some((channel, json?)))
        .collect()
}

/// Delivers one event to its user's subscribed sessions; returns how many sessions queued
/// something.
pub fn dispatch(registry: &BayeuxRegistry, event: &Event) -> usize {
    registry.publish_to_user(&event.user().name, event.sequence(), |base| {
        messages(event, base)
    })
}

/// Starts the bridge's watch (resuming after `from` when given); returns `None` (after
/// logging) if the core refuses.
pub fn start_watch(core: &CallControl, from: Option<u64>) -> Option<EventWatch> {
    match core.watch_events_from(WatchScope::All, from) {
        Ok(watch) => Some(watch),
        Err(error) => {
            tracing::error!(%error, "cometd bridge cannot watch the core");
            None
        }
    }
}

/// Runs until `shutdown`. If the bridge falls behind the core's broadcast ring it resumes
/// from the core's history; if that is gone too, every session is dropped (clients get
/// `402` and re-handshake, which tells them to reload their calls and devices) rather
/// than silently missing events.
pub async fn run_bridge(
    core: Arc<CallControl>,
    registry: Arc<BayeuxRegistry>,
    mut watch: EventWatch,
    shutdown: CancellationToken,
) {
    loop {
        let next = tokio::select! {
            () = shutdown.cancelled() => return,
            next = watch.next() => next,
        };
        match next {
            Ok(Some(event)) => {
                dispatch(&registry, &event);
            }
            Ok(None) => return,
            // The shared log started over (cluster mode): every session re-handshakes and
            // reloads, as when the history is gone.
            Err(WatchError::EpochChanged { epoch }) => {
                tracing::warn!(%epoch, "the event stream started over: cometd sessions dropped");
                registry.start_over();
                registry.remove_all(BayeuxRemoval::EventsLost);
                watch = match start_watch(&core, None) {
                    Some(fresh) => fresh,
                    None => return,
                };
                registry.start_dispatch_at(watch.position());
            }
            Err(WatchError::Lagged { last_delivered }) => {
                tracing::warn!(last_delivered, "cometd bridge fell behind the core");
                watch = match start_watch(&core, Some(last_delivered)) {
                    Some(resumed) => resumed,
                    None => {
                        registry.start_over();
                        registry.remove_all(BayeuxRemoval::EventsLost);
                        let Some(fresh) = start_watch(&core, None) else {
                            return;
                        };
                        registry.start_dispatch_at(fresh.position());
                        fresh
                    }
                };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};
    use tokio_util::sync::CancellationToken;

    use super::super::registry::BayeuxNewSession;
    use super::super::session::BayeuxSession;
    use super::*;
    use crate::config::Config;
    use crate::core::{DeviceRequest, WorkMode};
    use crate::gws::render::DeviceJson;

    const BASE: &str = "http://gw.test";

    struct Fixture {
        core: Arc<CallControl>,
        registry: BayeuxRegistry,
        watch: EventWatch,
    }

    impl Fixture {
        fn new() -> Self {
            let state = crate::build_state(Config::demo(), CancellationToken::new()).unwrap();
            let registry = BayeuxRegistry::new(state.config.cometd.clone());
            let watch = start_watch(&state.core, None).unwrap();
            Self {
                core: state.core.clone(),
                registry,
                watch,
            }
        }

        fn session(&self, user: &str, patterns: &[&str]) -> Arc<BayeuxSession> {
            let session = self
                .registry
                .create(BayeuxNewSession {
                    user: user.into(),
                    browser_id: None,
                    base_url: BASE.into(),
                    http_session: None,
                    ack: false,
                })
                .unwrap();
            for pattern in patterns {
                session.subscribe(pattern);
            }
            session
        }

        /// Runs a device operation as `user` and dispatches the one event it produces.
        async fn operate(&mut self, user: &str, request: DeviceRequest) -> Arc<DeviceEvent> {
            let who = self
                .core
                .directory()
                .authenticate_basic(user, "demo", None)
                .unwrap();
            self.core.device_operation(&who, None, request).unwrap();
            let event = self.watch.next().await.unwrap().unwrap();
            dispatch(&self.registry, &event);
            match event {
                Event::Device(device) => device,
                other => panic!("expected a device event, got {other:?}"),
            }
        }
    }

    /// The rendering is sonic-rs's, the JSON API's serde_json's: a notification must read
    /// byte for byte as serde_json writes it, whatever its strings and numbers hold (user
    /// data and an upstream's pass-through fields are anyone's JSON).
    #[test]
    fn a_message_is_rendered_byte_for_byte_as_serde_json_writes_it() {
        #[derive(Serialize)]
        struct Flattened<'a> {
            id: &'a str,
            #[serde(flatten)]
            rest: &'a Value,
        }
        let awkward = json!({
            "quote\"key": "a \"quoted\" \\ back\\slash / slash",
            "controls": "\u{0}\u{1}\u{8}\t\n\u{b}\u{c}\r\u{1f}\u{7f}",
            "unicode": "é ü 日本 \u{2028}\u{2029} 🎧",
            "long": "x".repeat(5000),
            "numbers": [0, -1, u64::MAX, i64::MIN, 0.1, 1.5e-7, 1e300, -0.0, 123456789.125],
            "nested": {"empty": {}, "list": [], "null": null, "t": true, "f": false},
        });
        let flattened = Flattened {
            id: "call-1",
            rest: &awkward,
        };
        assert_renders_as_serde_json(&awkward);
        assert_renders_as_serde_json(&flattened);
    }

    fn assert_renders_as_serde_json(data: &impl Serialize) {
        let ours = envelope("/v2/me/calls", data).expect("rendered");
        let theirs = serde_json::to_string(&Envelope {
            channel: "/v2/me/calls",
            data,
        })
        .unwrap();
        assert_eq!(&*ours, theirs);
    }

    fn taken(session: &BayeuxSession) -> Vec<Value> {
        let (messages, _) = session.take_for_connect();
        messages
            .iter()
            .map(|m| serde_json::from_str(m).unwrap())
            .collect()
    }

    #[tokio::test]
    async fn an_agent_state_change_goes_on_devices_then_channels_once_each_even_under_wildcards() {
        let mut fx = Fixture::new();
        let all = fx.session(
            "agent1",
            &["/v2/me/*", "/v2/me/**", "/v2/me/devices", "/v2/me/channels"],
        );
        let devices_only = fx.session("agent1", &["/v2/me/devices"]);
        let calls_only = fx.session("agent1", &["/v2/me/calls"]);
        let other_user = fx.session("agent2", &["/v2/me/**"]);
        let ready = DeviceRequest::Ready {
            work_mode: Some(WorkMode::AutoIn),
        };
        let event = fx.operate("agent1", ready).await;
        assert_eq!(event.change, DeviceChange::AgentState);

        let device = serde_json::to_value(DeviceJson::from_snapshot(&event.device, BASE)).unwrap();
        let user_state = json!({
            "id": "9430250E-0A1B-421F-B372-F29E69366DED",
            "displayName": "Ready", "state": "Ready", "workMode": "AutoIn"
        });
        assert_eq!(device["userState"], user_state);
        let expected = vec![
            json!({"channel": "/v2/me/devices", "data": {
                "messageType": "DeviceStateChangeMessage", "devices": [device]}}),
            json!({"channel": "/v2/me/channels", "data": {
                "messageType": "ChannelStateChangeMessageV2",
                "channels": [{"channel": "voice", "dndState": "Off", "userState": user_state}]}}),
        ];
        assert_eq!(taken(&all), expected);
        assert_eq!(taken(&devices_only), expected[..1].to_vec());
        assert_eq!(taken(&calls_only), Vec::<Value>::new());
        assert_eq!(taken(&other_user), Vec::<Value>::new());
    }

    #[tokio::test]
    async fn do_not_disturb_is_a_channel_change_and_forwarding_is_not() {
        let mut fx = Fixture::new();
        let session = fx.session("agent2", &["/v2/me/devices", "/v2/me/channels"]);
        let dnd = fx.operate("agent2", DeviceRequest::DoNotDisturbOn).await;
        assert_eq!(dnd.change, DeviceChange::DoNotDisturb);
        let got = taken(&session);
        assert_eq!(got.len(), 2, "{got:?}");
        assert_eq!(got[0]["data"]["devices"][0]["doNotDisturb"], "On");
        assert_eq!(got[1]["data"]["channels"][0]["dndState"], "On");
        assert_eq!(
            got[1]["data"]["channels"][0]["userState"],
            got[0]["data"]["devices"][0]["userState"]
        );

        let forward = DeviceRequest::ForwardCallsOn {
            destination: "15002".into(),
        };
        let fwd = fx.operate("agent2", forward).await;
        assert_eq!(fwd.change, DeviceChange::Device);
        let got = taken(&session);
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(got[0]["channel"], "/v2/me/devices");
        assert_eq!(got[0]["data"]["devices"][0]["forwardTo"], "15002");
        assert!(got[0]["data"].get("notificationType").is_none());
    }

    #[tokio::test]
    async fn a_log_that_started_over_drops_every_session_so_it_handshakes_again() {
        let fixture = Fixture::new();
        let Fixture {
            core,
            registry,
            watch,
        } = fixture;
        let registry = Arc::new(registry);
        registry
            .create(BayeuxNewSession {
                user: "agent1".into(),
                browser_id: None,
                base_url: BASE.into(),
                http_session: None,
                ack: false,
            })
            .unwrap();
        assert_eq!(registry.len(), 1);
        let shutdown = CancellationToken::new();
        let bridge = tokio::spawn(run_bridge(
            core.clone(),
            registry.clone(),
            watch,
            shutdown.clone(),
        ));
        // What cluster mode does when the shared log is a new epoch.
        core.reset_shared("another-epoch", 0);
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
        while !registry.is_empty() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the session was kept"
            );
            tokio::task::yield_now().await;
        }
        shutdown.cancel();
        bridge.await.unwrap();
    }
}
