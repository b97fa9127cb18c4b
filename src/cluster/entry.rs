//! The encoding of one shared-log entry: one core [`Event`] as zlib-deflated JSON, carrying
//! everything another instance needs to apply it without ever having seen the user: the
//! full [`UserRef`](crate::core::UserRef), the call or device with its `upstream_fields`,
//! the notification type, the digits, the error's kind, `statusCode` and message, and the
//! owner's commit time (so every instance renders the same `commit_time`). The sequence is
//! not in the entry: it is the log's.
//!
//! Deflated because the payloads are the engine's memory (`cluster::redis`: about payload +
//! 80 bytes per entry): call events of 560 to 930 bytes of JSON deflate to 350 to 500
//! (level 6), which brings a 100,000-entry log from about 83 MB to under 64 MB, for some
//! tens of microseconds per entry on the owner and a few on each reader. zlib rather than a
//! raw stream so that an entry of plain JSON (a `{`, which no zlib header starts with) is
//! still read: instances of the previous encoding can share a log during an upgrade.
//! Inflating stops at [`MAX_ENTRY_JSON`] bytes: an entry is a few KiB of JSON, so more is
//! refused as unreadable rather than allocated.
//!
//! This file is the entry itself: the event's envelope (its kind, notification or change,
//! error and commit time), the deflating and the bounded inflating. The snapshots inside it
//! (user, call, device) have their wire forms in `entry/snapshot.rs`.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::core::{
    CallEvent, CoreError, DeviceChange, DeviceEvent, ErrorEvent, ErrorKind, Event,
    NotificationType, Operation,
};

mod snapshot;

use snapshot::{CallJson, DeviceJson, UserJson};

/// Why an entry could not be read back.
#[derive(Debug, thiserror::Error)]
#[error("unreadable shared-log entry: {0}")]
pub struct EntryError(String);

fn bad(what: impl std::fmt::Display) -> EntryError {
    EntryError(what.to_string())
}

/// Encodes an event (its sequence left out).
pub fn encode(event: &Event) -> Vec<u8> {
    let entry = match event {
        Event::Call(e) => EntryJson::Call {
            notification: e.notification.as_str().into(),
            call: CallJson::from_core(&e.call),
            digits: e.digits.clone(),
            at_ms: millis(e.committed_at),
        },
        Event::Device(e) => EntryJson::Device {
            change: change_name(e.change).into(),
            device: DeviceJson::from_core(&e.device),
            at_ms: millis(e.committed_at),
        },
        Event::Error(e) => EntryJson::Error {
            user: UserJson::from_core(&e.user),
            operation: e.operation.map(|o| o.as_str().into()),
            kind: kind_name(e.error.kind()).into(),
            status_code: e.error.status_code(),
            message: e.error.to_string(),
            call: e.call.as_ref().map(CallJson::from_core),
            at_ms: millis(e.committed_at),
        },
    };
    let json = serde_json::to_vec(&entry).expect("entries are plain JSON");
    let mut deflate = flate2::write::ZlibEncoder::new(
        Vec::with_capacity(json.len() / 2),
        flate2::Compression::default(),
    );
    std::io::Write::write_all(&mut deflate, &json).expect("writing to a Vec cannot fail");
    deflate.finish().expect("writing to a Vec cannot fail")
}

/// The most JSON one entry may inflate to.
pub const MAX_ENTRY_JSON: u64 = 1 << 20;

/// The JSON of an entry: inflated, or as it is when it is plain JSON.
fn inflate(payload: &[u8]) -> Result<std::borrow::Cow<'_, [u8]>, EntryError> {
    use std::io::Read as _;
    if payload.first() == Some(&b'{') {
        return Ok(std::borrow::Cow::Borrowed(payload));
    }
    let mut json = Vec::with_capacity(payload.len() * 3);
    flate2::read::ZlibDecoder::new(payload)
        .take(MAX_ENTRY_JSON + 1)
        .read_to_end(&mut json)
        .map_err(bad)?;
    if json.len() as u64 > MAX_ENTRY_JSON {
        return Err(bad(format_args!(
            "more than {MAX_ENTRY_JSON} bytes inflated"
        )));
    }
    Ok(std::borrow::Cow::Owned(json))
}

/// Decodes an entry as the event of `sequence`.
pub fn decode(sequence: u64, payload: &[u8]) -> Result<Event, EntryError> {
    let entry: EntryJson = serde_json::from_slice(&inflate(payload)?).map_err(bad)?;
    Ok(match entry {
        EntryJson::Call {
            notification,
            call,
            digits,
            at_ms,
        } => Event::Call(Arc::new(CallEvent {
            sequence,
            notification: named(NotificationType::from_name, &notification)?,
            call: call.into_core()?,
            digits,
            committed_at: time(at_ms),
        })),
        EntryJson::Device {
            change,
            device,
            at_ms,
        } => Event::Device(Arc::new(DeviceEvent {
            sequence,
            change: change_of(&change)?,
            device: device.into_core()?,
            committed_at: time(at_ms),
        })),
        EntryJson::Error {
            user,
            operation,
            kind,
            status_code,
            message,
            call,
            at_ms,
        } => Event::Error(Arc::new(ErrorEvent {
            sequence,
            user: user.into_core(),
            operation: operation
                .as_deref()
                .map(|o| named(Operation::from_name, o))
                .transpose()?,
            error: CoreError::Upstream {
                kind: kind_of(&kind)?,
                status_code,
                message,
            },
            call: call.map(CallJson::into_core).transpose()?,
            committed_at: time(at_ms),
        })),
    })
}

fn millis(at: SystemTime) -> u64 {
    at.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn time(ms: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_millis(ms)
}

fn named<T>(parse: impl Fn(&str) -> Option<T>, name: &str) -> Result<T, EntryError> {
    parse(name).ok_or_else(|| bad(format!("unknown name {name:?}")))
}

fn change_name(change: DeviceChange) -> &'static str {
    match change {
        DeviceChange::AgentState => "AgentState",
        DeviceChange::DoNotDisturb => "DoNotDisturb",
        DeviceChange::Device => "Device",
    }
}

fn change_of(name: &str) -> Result<DeviceChange, EntryError> {
    [
        DeviceChange::AgentState,
        DeviceChange::DoNotDisturb,
        DeviceChange::Device,
    ]
    .into_iter()
    .find(|c| change_name(*c) == name)
    .ok_or_else(|| bad(format!("unknown device change {name:?}")))
}

const KINDS: [(ErrorKind, &str); 9] = [
    (ErrorKind::Unauthenticated, "Unauthenticated"),
    (ErrorKind::PermissionDenied, "PermissionDenied"),
    (ErrorKind::NotFound, "NotFound"),
    (ErrorKind::FailedPrecondition, "FailedPrecondition"),
    (ErrorKind::InvalidArgument, "InvalidArgument"),
    (ErrorKind::OutOfRange, "OutOfRange"),
    (ErrorKind::Unavailable, "Unavailable"),
    (ErrorKind::ResourceExhausted, "ResourceExhausted"),
    (ErrorKind::Internal, "Internal"),
];

fn kind_name(kind: ErrorKind) -> &'static str {
    KINDS
        .iter()
        .find(|(k, _)| *k == kind)
        .map_or("Internal", |(_, name)| name)
}

fn kind_of(name: &str) -> Result<ErrorKind, EntryError> {
    KINDS
        .iter()
        .find(|(_, n)| *n == name)
        .map(|(kind, _)| *kind)
        .ok_or_else(|| bad(format!("unknown error kind {name:?}")))
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum EntryJson {
    Call {
        notification: String,
        call: CallJson,
        digits: Option<String>,
        at_ms: u64,
    },
    Device {
        change: String,
        device: DeviceJson,
        at_ms: u64,
    },
    Error {
        user: UserJson,
        operation: Option<String>,
        kind: String,
        status_code: u32,
        message: String,
        call: Option<CallJson>,
        at_ms: u64,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::country::Country;
    use crate::core::{
        AgentState, CallId, CallSnapshot, CallState, CallType, DeviceOperation, DeviceSnapshot,
        MonitorKind, MonitorMode, MonitorScope, Monitoring, Participant, RecordingState, UserData,
        UserDataValue, UserRef, WorkMode,
    };

    fn user() -> UserRef {
        UserRef {
            name: "agent1".into(),
            contact_center: "demo".into(),
            phone_number: "15000".into(),
            device_id: "d1".into(),
        }
    }

    fn call() -> CallSnapshot {
        CallSnapshot {
            id: CallId::new("C1"),
            conn_id: "0071000000000001".into(),
            state: CallState::Established,
            call_type: CallType::Internal,
            capabilities: vec![Operation::Hold, Operation::Hangup],
            participants: vec![Participant {
                phone_number: "19165550104".into(),
                e164_number: "+19165550104".into(),
                country: Country::of_e164("+19165550104"),
                location: Some("United States of America".into()),
            }],
            dnis: "15001".into(),
            ani: Some("19165550104".into()),
            user_data: UserData::from_pairs(vec![
                ("k".into(), UserDataValue::Str("v".into())),
                ("n".into(), UserDataValue::Int(7)),
                ("s".into(), UserDataValue::Str("7".into())),
            ]),
            duration_secs: 3,
            muted: true,
            recording_state: Some(RecordingState::Recording),
            supervisor_listening_in: false,
            monitored_user_muted: true,
            monitoring: false,
            parent_call_id: Some(CallId::new("C0")),
            user: user(),
            upstream_fields: Some(r#"{"extra":1}"#.into()),
        }
    }

    fn at() -> SystemTime {
        time(1_700_000_000_123)
    }

    #[test]
    fn every_kind_of_event_comes_back_as_it_went_with_the_logs_sequence() {
        let events = [
            Event::Call(Arc::new(CallEvent {
                sequence: 0,
                notification: NotificationType::DtmfSent,
                call: call(),
                digits: Some("12#".into()),
                committed_at: at(),
            })),
            Event::Device(Arc::new(DeviceEvent {
                sequence: 0,
                change: DeviceChange::DoNotDisturb,
                device: DeviceSnapshot {
                    active: true,
                    agent_state: AgentState::AfterCallWork,
                    work_mode: Some(WorkMode::AutoIn),
                    do_not_disturb: true,
                    forward_to: Some("15009".into()),
                    capabilities: vec![DeviceOperation::Ready],
                    monitoring: Some(Monitoring {
                        kind: MonitorKind::Coach,
                        mode: MonitorMode::AllCalls,
                        scope: MonitorScope::Call,
                        target: "agent2".into(),
                        target_device_id: "d2".into(),
                    }),
                    user: user(),
                    voice_environment_id: "env".into(),
                    upstream_fields: Some("{}".into()),
                },
                committed_at: at(),
            })),
            Event::Error(Arc::new(ErrorEvent {
                sequence: 0,
                user: user(),
                operation: Some(Operation::Dial),
                error: CoreError::Upstream {
                    kind: ErrorKind::NotFound,
                    status_code: 17,
                    message: "15009 cannot be reached".into(),
                },
                call: Some(call()),
                committed_at: at(),
            })),
        ];
        for event in events {
            let back = decode(42, &encode(&event)).unwrap();
            assert_eq!(back.sequence(), 42);
            let renumbered = match event {
                Event::Call(e) => Event::Call(Arc::new(CallEvent {
                    sequence: 42,
                    ..(*e).clone()
                })),
                Event::Device(e) => Event::Device(Arc::new(DeviceEvent {
                    sequence: 42,
                    ..(*e).clone()
                })),
                Event::Error(e) => Event::Error(Arc::new(ErrorEvent {
                    sequence: 42,
                    ..(*e).clone()
                })),
            };
            assert_eq!(back, renumbered);
        }
    }

    #[test]
    fn an_unreadable_entry_is_refused_not_guessed() {
        assert!(decode(1, b"{\"kind\":\"call\"}").is_err());
        assert!(decode(1, b"not json").is_err());
        // Deflated garbage, and a deflated entry over the bound (a megabyte of spaces
        // deflates to a kilobyte).
        let deflated = |bytes: &[u8]| {
            let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
            std::io::Write::write_all(&mut z, bytes).unwrap();
            z.finish().unwrap()
        };
        assert!(decode(1, &deflated(b"not json")).is_err());
        let mut huge = vec![b' '; MAX_ENTRY_JSON as usize];
        huge.extend_from_slice(br#"{"type":"call"}"#);
        let refused = decode(1, &deflated(&huge)).unwrap_err().to_string();
        assert!(refused.contains("more than"), "{refused}");
    }

    #[test]
    fn entries_are_deflated_and_plain_json_entries_are_still_read() {
        let event = Event::Call(Arc::new(CallEvent {
            sequence: 0,
            notification: NotificationType::StatusChange,
            call: call(),
            digits: None,
            committed_at: at(),
        }));
        let payload = encode(&event);
        let mut json = Vec::new();
        std::io::Read::read_to_end(
            &mut flate2::read::ZlibDecoder::new(payload.as_slice()),
            &mut json,
        )
        .unwrap();
        assert_eq!(json.first(), Some(&b'{'), "zlib around the JSON");
        assert!(
            payload.len() * 10 < json.len() * 7,
            "{} bytes deflated from {}",
            payload.len(),
            json.len()
        );
        // An entry written by an instance of the plain-JSON encoding, as during an upgrade.
        assert_eq!(decode(7, &json).unwrap(), decode(7, &payload).unwrap());
        assert_eq!(decode(7, &json).unwrap().sequence(), 7);
    }
}
