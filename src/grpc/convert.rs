//! Conversions between `voice.v1` wire types and core types: `TryFrom` going in (parameter
//! validation lives in the core; here only the wire shape is checked) and `From` coming out,
//! plus the one place where a [`CoreError`] becomes a [`Status`].

use tonic::metadata::{MetadataMap, MetadataValue};
use tonic::{Code, Status};

use super::pb;
use crate::core::{
    CallEvent, CallId, CallOperation, CallSnapshot, CallState, CallType, CallWatchEvent, CoreError,
    Destination, ErrorEvent, ErrorKind, NotificationType, Participant, RecordingState, ResumePoint,
    UserData, UserDataValue,
};

/// Metadata key (a trailer on errors) carrying the GWS statusCode of a failure.
pub const GWS_STATUS_CODE: &str = "gws-status-code";
/// Trailer telling a refused client how long to wait before retrying, in milliseconds.
pub const RETRY_PUSHBACK_MS: &str = "grpc-retry-pushback-ms";

/// Returns the gRPC code of a class of core errors.
fn code_of(kind: ErrorKind) -> Code {
    match kind {
        ErrorKind::Unauthenticated => Code::Unauthenticated,
        ErrorKind::PermissionDenied => Code::PermissionDenied,
        ErrorKind::NotFound => Code::NotFound,
        ErrorKind::FailedPrecondition => Code::FailedPrecondition,
        ErrorKind::InvalidArgument => Code::InvalidArgument,
        ErrorKind::OutOfRange => Code::OutOfRange,
        ErrorKind::Unavailable => Code::Unavailable,
        ErrorKind::ResourceExhausted => Code::ResourceExhausted,
        ErrorKind::Internal => Code::Internal,
    }
}

impl From<CoreError> for Status {
    fn from(error: CoreError) -> Self {
        let code = code_of(error.kind());
        let mut metadata = MetadataMap::new();
        metadata.insert(GWS_STATUS_CODE, MetadataValue::from(error.status_code()));
        if let Some(after) = error.retry_after() {
            // gRPC's own retry pushback (the retry design A6): clients with a retry policy
            // wait this long; others can read it.
            let millis = u64::try_from(after.as_millis()).unwrap_or(u64::MAX);
            metadata.insert(RETRY_PUSHBACK_MS, MetadataValue::from(millis));
        }
        Status::with_metadata(code, error.to_string(), metadata)
    }
}

impl From<crate::shed::Refused> for Status {
    /// A load-shedding refusal: `RESOURCE_EXHAUSTED` (what tonic's own load shedding
    /// answers), the GWS statusCode 4 of the JSON API's 503, and the retry pushback.
    fn from(refused: crate::shed::Refused) -> Self {
        let mut metadata = MetadataMap::new();
        metadata.insert(GWS_STATUS_CODE, MetadataValue::from(4u32));
        let millis = u64::try_from(crate::shed::RETRY_AFTER.as_millis()).unwrap_or(u64::MAX);
        metadata.insert(RETRY_PUSHBACK_MS, MetadataValue::from(millis));
        Status::with_metadata(Code::ResourceExhausted, refused.to_string(), metadata)
    }
}

/// Returns where a watch resumes: `from_sequence` of `epoch` (empty: no epoch given, as
/// older clients send), or `None` for a watch that starts with a snapshot.
pub fn resume_point(from_sequence: Option<u64>, epoch: String) -> Option<ResumePoint> {
    from_sequence.map(|sequence| ResumePoint {
        sequence,
        epoch: non_empty(epoch),
    })
}

/// A call id and the operation to carry out on it, converted from a request message.
#[derive(Debug)]
pub struct CallRequest {
    /// The call.
    pub call_id: CallId,
    /// The operation.
    pub operation: CallOperation,
}

/// Converts a required call id.
pub fn call_id(id: String, name: &'static str) -> Result<CallId, CoreError> {
    if id.is_empty() {
        return Err(CoreError::MissingParameter(name));
    }
    Ok(CallId::new(id))
}

fn optional_call_id(id: String) -> Option<CallId> {
    (!id.is_empty()).then(|| CallId::new(id))
}

pub(super) fn non_empty(value: String) -> Option<String> {
    (!value.is_empty()).then_some(value)
}

/// Converts wire user data.
pub fn user_data(pairs: Vec<pb::KeyValue>) -> Result<UserData, CoreError> {
    pairs
        .into_iter()
        .map(|kv| {
            if kv.key.is_empty() {
                return Err(CoreError::invalid("user_data", "a key is empty"));
            }
            let value = match kv.value {
                Some(pb::key_value::Value::StringValue(s)) => UserDataValue::Str(s),
                Some(pb::key_value::Value::IntValue(i)) => UserDataValue::Int(i),
                None => {
                    return Err(CoreError::invalid(
                        "user_data",
                        format!("key {} has no value", kv.key),
                    ));
                }
            };
            Ok((kv.key, value))
        })
        .collect::<Result<Vec<_>, _>>()
        .map(UserData::from_pairs)
}

fn destination(
    number: String,
    location: String,
    data: Vec<pb::KeyValue>,
) -> Result<Destination, CoreError> {
    Ok(Destination {
        number,
        location: non_empty(location),
        user_data: user_data(data)?,
    })
}

/// Implements `TryFrom<pb::XRequest> for CallRequest` for requests that carry only a call id.
macro_rules! plain_requests {
    ($($request:ident => $operation:ident,)*) => {$(
        impl TryFrom<pb::$request> for CallRequest {
            type Error = CoreError;
            fn try_from(request: pb::$request) -> Result<Self, CoreError> {
                Ok(Self { call_id: call_id(request.call_id, "call_id")?, operation: CallOperation::$operation })
            }
        }
    )*};
}

plain_requests! {
    AnswerRequest => Answer,
    RejectRequest => Reject,
    HangupRequest => Hangup,
    ClearCallRequest => ClearCall,
    HoldRequest => Hold,
    RetrieveRequest => Retrieve,
    MuteCallRequest => MuteCall,
    UnmuteCallRequest => UnmuteCall,
    DeleteUserDataRequest => DeleteUserData,
    StartCallRecordingRequest => StartCallRecording,
    StopCallRecordingRequest => StopCallRecording,
    PauseCallRecordingRequest => PauseCallRecording,
    ResumeCallRecordingRequest => ResumeCallRecording,
    SwitchToListenInRequest => SwitchToListenIn,
    SwitchToBargeInRequest => SwitchToBargeIn,
    MuteMonitoredUserRequest => MuteMonitoredUser,
    UnmuteMonitoredUserRequest => UnmuteMonitoredUser,
}

/// Implements the conversion for requests with a destination, location and user data.
macro_rules! destination_requests {
    ($($request:ident => $operation:ident,)*) => {$(
        impl TryFrom<pb::$request> for CallRequest {
            type Error = CoreError;
            fn try_from(r: pb::$request) -> Result<Self, CoreError> {
                Ok(Self {
                    call_id: call_id(r.call_id, "call_id")?,
                    operation: CallOperation::$operation(destination(r.destination, r.location, r.user_data)?),
                })
            }
        }
    )*};
}

destination_requests! {
    SingleStepTransferRequest => SingleStepTransfer,
    InitiateTransferRequest => InitiateTransfer,
    InitiateConferenceRequest => InitiateConference,
    SingleStepConferenceRequest => SingleStepConference,
}

/// Implements the conversion for requests whose extra fields map by a closure.
macro_rules! mapped_requests {
    ($($request:ident => |$r:ident| $body:expr,)*) => {$(
        impl TryFrom<pb::$request> for CallRequest {
            type Error = CoreError;
            fn try_from(mut $r: pb::$request) -> Result<Self, CoreError> {
                let call_id = call_id(std::mem::take(&mut $r.call_id), "call_id")?;
                let operation = $body;
                Ok(Self { call_id, operation })
            }
        }
    )*};
}

mapped_requests! {
    SendDtmfRequest => |r| CallOperation::SendDtmf { digits: r.digits },
    CompleteTransferRequest => |r| CallOperation::CompleteTransfer { consult: optional_call_id(r.consult_call_id) },
    CompleteConferenceRequest => |r| CallOperation::CompleteConference { consult: optional_call_id(r.consult_call_id) },
    RemoveParticipantFromConferenceRequest => |r| CallOperation::RemoveParticipantFromConference { participant: r.participant },
    SwapCallsRequest => |r| CallOperation::SwapCalls { other: call_id(r.other_call_id, "other_call_id")? },
    AttachUserDataRequest => |r| CallOperation::AttachUserData(user_data(r.user_data)?),
    UpdateUserDataRequest => |r| CallOperation::UpdateUserData(user_data(r.user_data)?),
    DeleteUserDataPairRequest => |r| CallOperation::DeleteUserDataPair { key: r.key },
    SetCallDispositionRequest => |r| CallOperation::SetCallDisposition {
        disposition: r.disposition,
        key: non_empty(r.disposition_key),
    },
}

impl From<CallState> for pb::CallState {
    fn from(state: CallState) -> Self {
        match state {
            CallState::Dialing => Self::Dialing,
            CallState::Ringing => Self::Ringing,
            CallState::Established => Self::Established,
            CallState::Held => Self::Held,
            CallState::Released => Self::Released,
        }
    }
}

impl From<CallType> for pb::CallType {
    fn from(call_type: CallType) -> Self {
        match call_type {
            CallType::Internal => Self::Internal,
            CallType::Inbound => Self::Inbound,
            CallType::Outbound => Self::Outbound,
            CallType::Consult => Self::Consult,
        }
    }
}

impl From<Option<RecordingState>> for pb::RecordingState {
    fn from(state: Option<RecordingState>) -> Self {
        match state {
            None => Self::Unspecified,
            Some(RecordingState::Stopped) => Self::Stopped,
            Some(RecordingState::Recording) => Self::Recording,
            Some(RecordingState::Paused) => Self::Paused,
        }
    }
}

impl From<NotificationType> for pb::NotificationType {
    fn from(n: NotificationType) -> Self {
        match n {
            NotificationType::StatusChange => Self::StatusChange,
            NotificationType::ParticipantsUpdated => Self::ParticipantsUpdated,
            NotificationType::AttachedDataChanged => Self::AttachedDataChanged,
            NotificationType::CallRecordingStateChange => Self::CallRecordingStateChange,
            NotificationType::DtmfSent => Self::DtmfSent,
            NotificationType::MonitoredUserMutedStateChange => Self::MonitoredUserMutedStateChange,
        }
    }
}

impl From<&Participant> for pb::Participant {
    fn from(p: &Participant) -> Self {
        Self {
            phone_number: p.phone_number.to_string(),
            digits: p.digits().to_owned(),
            formatted_phone_number: p.formatted_phone_number(),
            e164_number: p.e164_number.to_string(),
            country: p.country.as_ref().map(|c| pb::Country {
                name: c.name.to_string(),
                code: c.code.to_string(),
                calling_code: c.calling_code.to_string(),
            }),
            location: p.location.as_deref().unwrap_or_default().to_owned(),
        }
    }
}

/// Renders user data on the wire.
pub fn user_data_to_pb(data: &UserData) -> Vec<pb::KeyValue> {
    data.pairs()
        .iter()
        .map(|(key, value)| pb::KeyValue {
            key: key.clone(),
            value: Some(match value {
                UserDataValue::Str(s) => pb::key_value::Value::StringValue(s.clone()),
                UserDataValue::Int(i) => pb::key_value::Value::IntValue(*i),
            }),
        })
        .collect()
}

impl From<&CallSnapshot> for pb::Call {
    fn from(call: &CallSnapshot) -> Self {
        Self {
            id: call.id.to_string(),
            call_uuid: call.id.to_string(),
            conn_id: call.conn_id.to_string(),
            state: pb::CallState::from(call.state).into(),
            call_type: pb::CallType::from(call.call_type).into(),
            capabilities: call
                .capabilities
                .iter()
                .map(|op| op.as_str().to_owned())
                .collect(),
            participants: call
                .participants
                .iter()
                .map(pb::Participant::from)
                .collect(),
            dnis: call.dnis.to_string(),
            user_data: user_data_to_pb(&call.user_data),
            duration_seconds: i64::try_from(call.duration_secs).unwrap_or(i64::MAX),
            muted: call.muted,
            recording_state: pb::RecordingState::from(call.recording_state).into(),
            supervisor_listening_in: call.supervisor_listening_in,
            monitored_user_muted: call.monitored_user_muted,
            monitoring: call.monitoring,
            parent_call_id: call
                .parent_call_id
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default(),
            phone_number: call.user.phone_number.to_string(),
            device_id: call.user.device_id.to_string(),
            user_name: call.user.name.to_string(),
            ani: call.ani.as_deref().unwrap_or_default().to_owned(),
        }
    }
}

/// Renders a call event of the event log named `epoch`.
pub fn call_event_to_pb(event: &CallEvent, epoch: &str) -> pb::CallEvent {
    pb::CallEvent {
        sequence: event.sequence,
        epoch: epoch.to_owned(),
        notification_type: pb::NotificationType::from(event.notification).into(),
        call: Some(pb::Call::from(&event.call)),
        phone_number: event.call.user.phone_number.to_string(),
        digits: event.digits.clone().unwrap_or_default(),
        commit_time: Some(prost_types::Timestamp::from(event.committed_at)),
    }
}

/// Renders an asynchronous error of the event log named `epoch`: the error keeps the gRPC
/// code and GWS statusCode a refusal of the request would have had.
pub fn error_event_to_pb(event: &ErrorEvent, epoch: &str) -> pb::CallError {
    pb::CallError {
        sequence: event.sequence,
        epoch: epoch.to_owned(),
        operation_name: event
            .operation
            .map(|o| o.as_str().to_owned())
            .unwrap_or_default(),
        grpc_code: code_of(event.error.kind()).into(),
        status_code: event.error.status_code(),
        message: event.error.to_string(),
        call: event.call.as_ref().map(pb::Call::from),
        phone_number: event.user.phone_number.to_string(),
        commit_time: Some(prost_types::Timestamp::from(event.committed_at)),
    }
}

/// Renders what a call watch delivers as one WatchCalls message.
pub fn watch_event_to_pb(event: &CallWatchEvent, epoch: &str) -> pb::WatchCallsResponse {
    use pb::watch_calls_response::Kind;
    let kind = match event {
        CallWatchEvent::Call(event) => Kind::Event(call_event_to_pb(event, epoch)),
        CallWatchEvent::Error(event) => Kind::Error(error_event_to_pb(event, epoch)),
    };
    pb::WatchCallsResponse { kind: Some(kind) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_carry_the_gws_status_code() {
        let status = Status::from(CoreError::MissingParameter("destination"));
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(status.metadata().get(GWS_STATUS_CODE).unwrap(), "1");
        let status = Status::from(CoreError::CallNotFound(CallId::new("x")));
        assert_eq!(status.code(), Code::NotFound);
        assert_eq!(status.message(), "call x not found");
    }

    #[test]
    fn a_load_shedding_refusal_is_resource_exhausted_with_status_code_4() {
        let refused = crate::shed::Refused {
            scope: crate::shed::Scope::Connection,
            limit: 3,
        };
        let status = Status::from(refused);
        assert_eq!(status.code(), Code::ResourceExhausted);
        assert_eq!(status.metadata().get(GWS_STATUS_CODE).unwrap(), "4");
        assert_eq!(status.metadata().get(RETRY_PUSHBACK_MS).unwrap(), "1000");
        assert_eq!(
            status.message(),
            "overloaded: 3 requests in flight on this connection; retry later"
        );
    }

    #[test]
    fn requests_without_a_call_id_are_refused() {
        let err = CallRequest::try_from(pb::HoldRequest {
            call_id: String::new(),
        })
        .unwrap_err();
        assert_eq!(err, CoreError::MissingParameter("call_id"));
    }

    #[test]
    fn user_data_needs_values() {
        let err = user_data(vec![pb::KeyValue {
            key: "k".into(),
            value: None,
        }])
        .unwrap_err();
        assert!(matches!(
            err,
            CoreError::InvalidParameter {
                name: "user_data",
                ..
            }
        ));
    }
}
