//! What identifies a call event on both fronts: a call reduced to its id, state,
//! capabilities, recording state, other parties and the driver's mark (the user-data value
//! `n` that every UpdateUserData of the driver changes), plus the notification type. Read from a gRPC
//! `CallEvent` and from a GWS `CallStateChangeMessage` alike, so a CometD delivery, which
//! carries no sequence number, is found in the log of the gRPC reference watcher.
//!
//! The driver makes these keys unique per user (each operation changes the state, the
//! recording state or the mark of the call it acts on), and the verifier checks that they
//! are before relying on it.

use std::collections::{BTreeSet, HashMap};

use serde_json::Value;
use voice_gateway::grpc::pb;

/// The user-data key whose value the driver changes on every UpdateUserData.
pub const MARK: &str = "n";

/// A call as one user sees it, reduced to what the driver changes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CallView {
    /// The call id.
    pub id: String,
    /// GWS state name (`Established`).
    pub state: String,
    /// The operations the user may carry out now, as GWS names them.
    pub capabilities: Vec<String>,
    /// GWS recording state name, when recording applies.
    pub recording: Option<String>,
    /// The driver's mark ([`MARK`] in the user data).
    pub mark: Option<String>,
    /// The other parties' numbers.
    pub participants: Vec<String>,
}

/// One event of `/v2/me/calls` as one user receives it: a call notification, or an
/// asynchronous error (an operation that failed after it was accepted).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EventKey {
    /// GWS notification type (`AttachedDataChanged`), or for an error
    /// `ErrorMessage <errorCode> <operationName>`.
    pub notification: String,
    /// The call after the change (for an error, as the user sees it after the failure;
    /// empty when it concerns no call).
    pub view: CallView,
}

/// The prefix of an error's [`EventKey::notification`].
const ERROR: &str = "ErrorMessage";

/// Returns the GWS name of a protobuf enum value name: `CALL_STATE_ESTABLISHED` with the
/// prefix `CALL_STATE_` gives `Established`.
fn gws_name(proto_name: &str, prefix: &str) -> String {
    proto_name
        .strip_prefix(prefix)
        .unwrap_or(proto_name)
        .split('_')
        .map(|word| {
            let mut chars = word.chars();
            match chars.next() {
                Some(first) => first.to_string() + &chars.as_str().to_lowercase(),
                None => String::new(),
            }
        })
        .collect()
}

fn json_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

impl CallView {
    /// Reads a call of the gRPC front.
    pub fn from_pb(call: &pb::Call) -> Self {
        let state = pb::CallState::try_from(call.state).unwrap_or(pb::CallState::Unspecified);
        let recording = pb::RecordingState::try_from(call.recording_state)
            .unwrap_or(pb::RecordingState::Unspecified);
        let mark = call
            .user_data
            .iter()
            .rev()
            .find(|pair| pair.key == MARK)
            .and_then(|pair| match &pair.value {
                Some(pb::key_value::Value::StringValue(s)) => Some(s.clone()),
                Some(pb::key_value::Value::IntValue(i)) => Some(i.to_string()),
                None => None,
            });
        Self {
            id: call.id.clone(),
            state: gws_name(state.as_str_name(), "CALL_STATE_"),
            capabilities: call.capabilities.clone(),
            recording: (recording != pb::RecordingState::Unspecified)
                .then(|| gws_name(recording.as_str_name(), "RECORDING_STATE_")),
            mark,
            participants: call
                .participants
                .iter()
                .map(|p| p.phone_number.clone())
                .collect(),
        }
    }

    /// Reads a call resource of the GWS front (a notification's `call`, or one of
    /// `GET /api/v2/me/calls`).
    pub fn from_json(call: &Value) -> Option<Self> {
        let capabilities = call
            .get("capabilities")?
            .as_array()?
            .iter()
            .map(|c| c.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()?;
        let participants = call
            .get("participants")?
            .as_array()?
            .iter()
            .map(|p| p.get("phoneNumber")?.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()?;
        Some(Self {
            participants,
            id: call.get("id")?.as_str()?.to_owned(),
            state: call.get("state")?.as_str()?.to_owned(),
            capabilities,
            recording: call
                .get("recordingState")
                .and_then(Value::as_str)
                .map(str::to_owned),
            mark: call.pointer(&format!("/userData/{MARK}")).map(json_text),
        })
    }

    /// Returns whether the call ended for the user (it leaves snapshots).
    pub fn is_released(&self) -> bool {
        self.state == "Released"
    }
}

impl EventKey {
    /// Returns a short description for messages: notification, call, state and mark.
    pub fn short(&self) -> String {
        let view = &self.view;
        let mark = view.mark.as_deref().unwrap_or("-");
        format!(
            "[{} {} {} n={mark}]",
            self.notification, view.id, view.state
        )
    }

    /// Returns whether this is an error, which changes no call (the call events of the
    /// failure come before it).
    pub fn is_error(&self) -> bool {
        self.notification.starts_with(ERROR)
    }

    /// Reads a gRPC asynchronous error.
    pub fn from_pb_error(error: &pb::CallError) -> Self {
        Self {
            notification: format!("{ERROR} {} {}", error.status_code, error.operation_name),
            view: error
                .call
                .as_ref()
                .map(CallView::from_pb)
                .unwrap_or_default(),
        }
    }

    /// Reads a gRPC call event.
    pub fn from_pb(event: &pb::CallEvent) -> Option<Self> {
        let notification = pb::NotificationType::try_from(event.notification_type).ok()?;
        Some(Self {
            notification: gws_name(notification.as_str_name(), "NOTIFICATION_TYPE_"),
            view: CallView::from_pb(event.call.as_ref()?),
        })
    }

    /// Reads the `data` of a `/v2/me/calls` message (a `CallStateChangeMessage` or an
    /// `ErrorMessage`).
    pub fn from_json(data: &Value) -> Option<Self> {
        if data.get("messageType").and_then(Value::as_str) == Some(ERROR) {
            let code = data.get("errorCode")?.as_u64()?;
            let operation = data
                .get("operationName")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let view = match data.get("call") {
                Some(call) => CallView::from_json(call)?,
                None => CallView::default(),
            };
            return Some(Self {
                notification: format!("{ERROR} {code} {operation}"),
                view,
            });
        }
        Some(Self {
            notification: data.get("notificationType")?.as_str()?.to_owned(),
            view: CallView::from_json(data.get("call")?)?,
        })
    }
}

/// A numbered event of a `WatchCalls` stream: a call event or an error.
#[derive(Debug, Clone)]
pub struct Numbered {
    /// Its sequence number.
    pub seq: u64,
    /// The epoch of the stream.
    pub epoch: String,
    /// The DN of the user it is for.
    pub dn: String,
    /// What identifies it (`None` for a call event without a readable call).
    pub key: Option<EventKey>,
}

impl Numbered {
    /// Reads a stream message that is an event or an error; `None` for anything else.
    pub fn from_pb(kind: pb::watch_calls_response::Kind) -> Option<Self> {
        use pb::watch_calls_response::Kind;
        match kind {
            Kind::Event(event) => Some(Self {
                key: EventKey::from_pb(&event),
                seq: event.sequence,
                epoch: event.epoch,
                dn: event.phone_number,
            }),
            Kind::Error(error) => Some(Self {
                key: Some(EventKey::from_pb_error(&error)),
                seq: error.sequence,
                epoch: error.epoch,
                dn: error.phone_number,
            }),
            Kind::Snapshot(_) => None,
        }
    }
}

/// The calls a user (or a scope of users, keyed by DN) has, as events change them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallBook {
    calls: HashMap<(String, String), CallView>,
}

impl CallBook {
    /// Applies one event for the user with DN `dn`: a released call leaves the book; an
    /// error changes nothing.
    pub fn apply_event(&mut self, dn: &str, key: &EventKey) {
        if !key.is_error() {
            self.apply(dn, &key.view);
        }
    }

    /// Applies a call as the user with DN `dn` now sees it: a released call leaves the book.
    pub fn apply(&mut self, dn: &str, view: &CallView) {
        let key = (dn.to_owned(), view.id.clone());
        if view.is_released() {
            self.calls.remove(&key);
        } else {
            self.calls.insert(key, view.clone());
        }
    }

    /// Returns the book's content in a comparable form.
    pub fn to_set(&self) -> BTreeSet<(String, CallView)> {
        self.calls
            .iter()
            .map(|((dn, _), view)| (dn.clone(), view.clone()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn both_fronts_give_the_same_key() {
        let call = pb::Call {
            id: "c1".into(),
            state: pb::CallState::Established.into(),
            capabilities: vec!["Hold".into(), "Hangup".into()],
            recording_state: pb::RecordingState::Recording.into(),
            user_data: vec![pb::KeyValue {
                key: MARK.into(),
                value: Some(pb::key_value::Value::IntValue(7)),
            }],
            participants: vec![pb::Participant {
                phone_number: "15001".into(),
                ..Default::default()
            }],
            ..Default::default()
        };
        let event = pb::CallEvent {
            notification_type: pb::NotificationType::CallRecordingStateChange.into(),
            call: Some(call),
            ..Default::default()
        };
        let data = json!({
            "messageType": "CallStateChangeMessage",
            "notificationType": "CallRecordingStateChange",
            "call": {"id": "c1", "state": "Established", "capabilities": ["Hold", "Hangup"],
                     "recordingState": "Recording", "userData": {"n": 7},
                     "participants": [{"phoneNumber": "15001"}]}
        });
        assert_eq!(EventKey::from_pb(&event), EventKey::from_json(&data));
        assert_eq!(
            EventKey::from_json(&data).unwrap().notification,
            "CallRecordingStateChange"
        );
    }

    #[test]
    fn an_error_reads_alike_on_both_fronts_and_changes_no_call() {
        let error = pb::CallError {
            operation_name: "SingleStepConference".into(),
            status_code: 19,
            ..Default::default()
        };
        let data = json!({"messageType": "ErrorMessage", "errorCode": 19,
                          "errorMessage": "busy", "operationName": "SingleStepConference"});
        let key = EventKey::from_pb_error(&error);
        assert_eq!(Some(&key), EventKey::from_json(&data).as_ref());
        assert!(key.is_error());
        let mut book = CallBook::default();
        book.apply_event("15000", &key);
        assert!(book.to_set().is_empty());
    }
}
