//! The call resource (spec §5.1) with its participants and user data, as a GET and a
//! `CallStateChangeMessage` render it, and the Voice `ErrorMessage` that carries a call.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Serialize, Serializer};
use serde_json::{Map, Value};

use crate::core::{
    CallEvent, CallId, CallSnapshot, ErrorEvent, Operation, Participant, UserData, UserDataValue,
};

use super::{CALLS_PATH, DEVICES_PATH, on_off};

/// User data as a flat JSON object, serialized from the call's pairs without copying
/// them. Keys come out sorted, and a key that repeats (AttachUserData keeps duplicates)
/// shows its last value, as a JSON object cannot hold a key twice: what collecting the
/// pairs into a `serde_json::Map` gave before.
#[derive(Debug, Clone, Copy)]
pub struct UserDataJson<'a>(&'a UserData);

impl UserDataJson<'_> {
    fn is_empty(&self) -> bool {
        self.0.pairs().is_empty()
    }
}

impl Serialize for UserDataJson<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        enum Item<'v> {
            Str(&'v str),
            Int(i64),
        }
        impl Serialize for Item<'_> {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                match self {
                    Item::Str(s) => serializer.serialize_str(s),
                    Item::Int(i) => serializer.serialize_i64(*i),
                }
            }
        }
        // serde_json's `Map` (no `preserve_order`) is a `BTreeMap`: sorted keys, a later
        // insert replacing an earlier one. The same here, over borrowed pairs.
        let pairs: BTreeMap<&str, Item<'_>> = self
            .0
            .pairs()
            .iter()
            .map(|(key, value)| {
                let item = match value {
                    UserDataValue::Str(s) => Item::Str(s),
                    UserDataValue::Int(i) => Item::Int(*i),
                };
                (key.as_str(), item)
            })
            .collect();
        serializer.collect_map(pairs)
    }
}

/// A link, `{base}{path}{id}`, written into the JSON as it is serialized rather than
/// built as a `String` first.
#[derive(Debug, Clone, Copy)]
pub struct LinkJson<'a> {
    base: &'a str,
    path: &'static str,
    id: &'a str,
}

impl fmt::Display for LinkJson<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.base)?;
        f.write_str(self.path)?;
        f.write_str(self.id)
    }
}

impl Serialize for LinkJson<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// A participant object (spec §5.2).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ParticipantJson<'a> {
    /// The number.
    pub phone_number: &'a str,
    /// The digits.
    pub digits: &'a str,
    /// Display form.
    pub formatted_phone_number: FormattedNumber<'a>,
    /// E.164 form, empty for internal numbers.
    pub e164_number: &'a str,
    /// Where the number is (the country's name, see [`crate::core::country`]); omitted for
    /// internal numbers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<&'a str>,
    /// The number's country; omitted for internal numbers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub country: Option<CountryJson<'a>>,
}

/// A participant's number as [`Participant::formatted_phone_number`] shows it, written
/// into the JSON without an intermediate `String`.
#[derive(Debug, Clone, Copy)]
pub struct FormattedNumber<'a>(&'a Participant);

impl Serialize for FormattedNumber<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0.north_american_parts() {
            Some((area, exchange, line)) => {
                serializer.collect_str(&format_args!("({area}) {exchange}-{line}"))
            }
            None => serializer.serialize_str(&self.0.phone_number),
        }
    }
}

/// A participant's `country` (spec §5.2).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CountryJson<'a> {
    /// English short name.
    pub name: &'a str,
    /// ISO 3166-1 alpha-2 code.
    pub code: &'a str,
    /// Calling code without `+`.
    pub calling_code: &'a str,
}

impl<'a> From<&'a Participant> for ParticipantJson<'a> {
    fn from(p: &'a Participant) -> Self {
        Self {
            phone_number: &p.phone_number,
            digits: p.digits(),
            formatted_phone_number: FormattedNumber(p),
            e164_number: &p.e164_number,
            location: p.location.as_deref(),
            country: p.country.as_ref().map(|c| CountryJson {
                name: &c.name,
                code: &c.code,
                calling_code: &c.calling_code,
            }),
        }
    }
}

/// A call's participants, serialized from the snapshot's list.
#[derive(Debug, Clone, Copy)]
pub struct ParticipantsJson<'a>(&'a [Participant]);

impl Serialize for ParticipantsJson<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter().map(ParticipantJson::from))
    }
}

/// A call's capabilities by operation name, serialized from the snapshot's list.
#[derive(Debug, Clone, Copy)]
pub struct CapabilitiesJson<'a>(&'a [Operation]);

impl Serialize for CapabilitiesJson<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter().map(|op| op.as_str()))
    }
}

/// The call resource (spec §5.1), borrowed from the call view it renders: links, lists and
/// user data are written as the resource is serialized, so a render allocates only for
/// the upstream's pass-through fields (bridge mode).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CallJson<'a> {
    /// Call id.
    pub id: &'a str,
    /// Call UUID (the id).
    pub call_uuid: &'a str,
    /// Connection id.
    pub conn_id: &'a str,
    /// State name.
    pub state: &'static str,
    /// Call type name.
    pub call_type: &'static str,
    /// The dialed number.
    pub dnis: &'a str,
    /// The calling number of a call from an outside number; omitted on calls an agent made.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ani: Option<&'a str>,
    /// [`device_uri`](super::device_uri) of the user's device.
    pub device_uri: LinkJson<'a>,
    /// Other parties.
    pub participants: ParticipantsJson<'a>,
    /// Operation names.
    pub capabilities: CapabilitiesJson<'a>,
    /// Attached data; omitted when empty.
    #[serde(skip_serializing_if = "UserDataJson::is_empty")]
    pub user_data: UserDataJson<'a>,
    /// Seconds since the start, as a string.
    #[serde(serialize_with = "as_string")]
    pub duration: u64,
    /// `On` / `Off`.
    pub mute: &'static str,
    /// Recording state; omitted when recording does not apply.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recording_state: Option<&'static str>,
    /// A supervisor listens in.
    pub supervisor_listening_in: bool,
    /// A supervisor muted the monitored user.
    pub monitored_user_muted: bool,
    /// A supervisor's monitoring leg.
    pub monitoring: bool,
    /// Absolute URI of the parent call, on consult calls.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent_call_uri: Option<LinkJson<'a>>,
    /// Relative path of the parent call, on consult calls.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent_call_path: Option<LinkJson<'a>>,
    /// Absolute URI of the call.
    pub uri: LinkJson<'a>,
    /// `/calls/{id}`.
    pub path: LinkJson<'a>,
    /// Bridge mode: the fields the upstream GWS sent that the core does not model, passed
    /// through unchanged.
    #[serde(flatten)]
    pub upstream: Map<String, Value>,
}

fn as_string<S: Serializer>(value: &u64, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_str(value)
}

impl<'a> CallJson<'a> {
    /// Renders a call view with links under `base_url` ([`crate::gws::base_url`]).
    pub fn from_snapshot(call: &'a CallSnapshot, base_url: &'a str) -> Self {
        let id = call.id.as_str();
        let link = |path, id| LinkJson {
            base: base_url,
            path,
            id,
        };
        let parent = call.parent_call_id.as_ref().map(CallId::as_str);
        Self {
            id,
            call_uuid: id,
            conn_id: &call.conn_id,
            state: call.state.as_str(),
            call_type: call.call_type.as_str(),
            dnis: &call.dnis,
            ani: call.ani.as_deref(),
            device_uri: link(DEVICES_PATH, &call.user.device_id),
            participants: ParticipantsJson(&call.participants),
            capabilities: CapabilitiesJson(&call.capabilities),
            user_data: UserDataJson(&call.user_data),
            duration: call.duration_secs,
            mute: on_off(call.muted),
            recording_state: call.recording_state.map(|r| r.as_str()),
            supervisor_listening_in: call.supervisor_listening_in,
            monitored_user_muted: call.monitored_user_muted,
            monitoring: call.monitoring,
            parent_call_uri: parent.map(|p| link(CALLS_PATH, p)),
            parent_call_path: parent.map(|p| LinkJson {
                base: "",
                path: "/calls/",
                id: p,
            }),
            uri: link(CALLS_PATH, id),
            path: LinkJson {
                base: "",
                path: "/calls/",
                id,
            },
            upstream: call
                .upstream_fields
                .as_deref()
                .and_then(|text| serde_json::from_str(text).ok())
                .unwrap_or_default(),
        }
    }
}

/// The `data` of a `CallStateChangeMessage` notification (spec §8.3).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CallStateChangeJson<'a> {
    /// Always `CallStateChangeMessage`.
    pub message_type: &'static str,
    /// The GWS notificationType.
    pub notification_type: &'static str,
    /// The user's own DN.
    pub phone_number: &'a str,
    /// The call as the user sees it.
    pub call: CallJson<'a>,
    /// DTMF digits, on `DtmfSent`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digits: Option<&'a str>,
}

impl<'a> CallStateChangeJson<'a> {
    /// Renders a core event for the user it belongs to.
    pub fn from_event(event: &'a CallEvent, base_url: &'a str) -> Self {
        Self {
            message_type: "CallStateChangeMessage",
            notification_type: event.notification.as_str(),
            phone_number: &event.call.user.phone_number,
            call: CallJson::from_snapshot(&event.call, base_url),
            digits: event.digits.as_deref(),
        }
    }
}

/// The Voice `ErrorMessage` of `/v2/me/calls`: an operation that failed after it was
/// accepted (spec §3.2). Its shape is the spec's proposal (§8.4, inferred): `errorCode` and
/// `errorMessage` as T-Server's EventError names them, the call when there is one, and the
/// user's DN as in a `CallStateChangeMessage`; `operationName` names the failed operation
/// in the request vocabulary. `errorCode` holds the GWS statusCode of the failure (see
/// `crate::core::ErrorEvent` for the choices).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorMessageJson<'a> {
    /// Always `ErrorMessage`.
    pub message_type: &'static str,
    /// The GWS statusCode of the failure (in bridge mode, the upstream's `errorCode`).
    pub error_code: u32,
    /// What failed, in words.
    pub error_message: String,
    /// The operation that failed; omitted when an upstream did not name it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operation_name: Option<&'static str>,
    /// The user's own DN.
    pub phone_number: &'a str,
    /// The call as the user sees it after the failure; omitted when it concerns no call.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub call: Option<CallJson<'a>>,
}

impl<'a> ErrorMessageJson<'a> {
    /// Renders a core error event for the user it belongs to.
    pub fn from_event(event: &'a ErrorEvent, base_url: &'a str) -> Self {
        Self {
            message_type: "ErrorMessage",
            error_code: event.error.status_code(),
            error_message: event.error.to_string(),
            operation_name: event.operation.map(|o| o.as_str()),
            phone_number: &event.user.phone_number,
            call: event
                .call
                .as_ref()
                .map(|call| CallJson::from_snapshot(call, base_url)),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::core::country::Country;
    use crate::core::{
        CallId, CallState, CallType, NotificationType, Operation, RecordingState, UserRef,
    };

    /// A consult call seen by agent1, with every optional part present: an outside
    /// North-American party with its country, an internal one, repeated user-data keys of
    /// both kinds, a parent call and an upstream's pass-through fields.
    fn full_call() -> CallSnapshot {
        CallSnapshot {
            id: CallId::new("C2"),
            conn_id: "0071000000000002".into(),
            state: CallState::Established,
            call_type: CallType::Consult,
            capabilities: vec![Operation::Hangup, Operation::StartCallRecording],
            participants: vec![
                Participant {
                    phone_number: "9165550104".into(),
                    e164_number: "+19165550104".into(),
                    country: Some(Country {
                        name: "United States of America".into(),
                        code: "US".into(),
                        calling_code: "1".into(),
                    }),
                    location: Some("United States of America".into()),
                },
                Participant {
                    phone_number: "15002".into(),
                    e164_number: "".into(),
                    country: None,
                    location: None,
                },
            ],
            dnis: "9165550104".into(),
            ani: Some("15002".into()),
            user_data: UserData::from_pairs(vec![
                ("b".into(), UserDataValue::Str("first \"quoted\"".into())),
                ("a".into(), UserDataValue::Int(-7)),
                ("b".into(), UserDataValue::Str("last".into())),
            ]),
            duration_secs: 42,
            muted: true,
            recording_state: Some(RecordingState::Paused),
            supervisor_listening_in: false,
            monitored_user_muted: true,
            monitoring: false,
            parent_call_id: Some(CallId::new("C1")),
            user: UserRef {
                name: "agent1".into(),
                contact_center: "cc".into(),
                phone_number: "15001".into(),
                device_id: "d-15001".into(),
            },
            upstream_fields: Some(Arc::from(r#"{"zeta":"z","extra":{"n":1}}"#)),
        }
    }

    /// The borrowed renderer writes what the owned one (`String` fields, user data and the
    /// upstream's fields collected into `serde_json::Map`s) wrote, byte for byte: the text
    /// below is that renderer's output for [`full_call`], kept as the reference.
    #[test]
    fn a_call_renders_as_the_owned_renderer_wrote_it() {
        let call = full_call();
        let event = CallEvent {
            sequence: 9,
            notification: NotificationType::StatusChange,
            call: call.clone(),
            digits: Some("12#".into()),
            committed_at: std::time::SystemTime::UNIX_EPOCH,
        };
        let rendered =
            serde_json::to_string(&CallStateChangeJson::from_event(&event, "http://gw")).unwrap();
        assert_eq!(rendered, EXPECTED);

        let mut plain = call;
        plain.participants.clear();
        plain.user_data = UserData::from_pairs(Vec::new());
        plain.parent_call_id = None;
        plain.upstream_fields = None;
        plain.ani = None;
        plain.recording_state = None;
        let rendered = serde_json::to_string(&CallJson::from_snapshot(&plain, "")).unwrap();
        assert_eq!(rendered, EXPECTED_PLAIN);
    }

    const EXPECTED: &str = r#"{"messageType":"CallStateChangeMessage","notificationType":"StatusChange","phoneNumber":"15001","call":{"id":"C2","callUuid":"C2","connId":"0071000000000002","state":"Established","callType":"Consult","dnis":"9165550104","ani":"15002","deviceUri":"http://gw/api/v2/devices/d-15001","participants":[{"phoneNumber":"9165550104","digits":"9165550104","formattedPhoneNumber":"(916) 555-0104","e164Number":"+19165550104","location":"United States of America","country":{"name":"United States of America","code":"US","callingCode":"1"}},{"phoneNumber":"15002","digits":"15002","formattedPhoneNumber":"15002","e164Number":""}],"capabilities":["Hangup","StartCallRecording"],"userData":{"a":-7,"b":"last"},"duration":"42","mute":"On","recordingState":"Paused","supervisorListeningIn":false,"monitoredUserMuted":true,"monitoring":false,"parentCallUri":"http://gw/api/v2/me/calls/C1","parentCallPath":"/calls/C1","uri":"http://gw/api/v2/me/calls/C2","path":"/calls/C2","extra":{"n":1},"zeta":"z"},"digits":"12#"}"#;
    const EXPECTED_PLAIN: &str = r#"{"id":"C2","callUuid":"C2","connId":"0071000000000002","state":"Established","callType":"Consult","dnis":"9165550104","deviceUri":"/api/v2/devices/d-15001","participants":[],"capabilities":["Hangup","StartCallRecording"],"duration":"42","mute":"On","supervisorListeningIn":false,"monitoredUserMuted":true,"monitoring":false,"uri":"/api/v2/me/calls/C2","path":"/calls/C2"}"#;
}
