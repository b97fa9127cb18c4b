//! Parsing of `{"operationName": ..., params...}` bodies into a [`LegacyOperation`]: one
//! `match` on the name, a typed error for unknown names, and strict parameter types.
//!
//! Parameter choices (spec §6, points it marks inferred):
//! - `destination` is the object `{"phoneNumber":"<digits>"}` on every call operation; a
//!   plain string or a number is refused as mistyped (400/2) rather than guessed at.
//! - `userData` is a flat object whose values are strings or integers (GWS key/value lists
//!   hold nothing else); floats, booleans, null, arrays and objects are refused (400/2).
//! - `consultCallUri` and `otherCallUri` accept an absolute URI
//!   (`http://host/api/v2/me/calls/{id}`), a path (`/api/v2/me/calls/{id}` or
//!   `/calls/{id}`) or a bare call id. The host of an absolute URI is not compared with
//!   ours: proxies rewrite it, and the id alone names the call.
//! - `outboundCallerId` and `outboundRecord` on Dial are refused (400/2): the gateway
//!   cannot honour them, and silently dropping them would place a different call.
//! - `callUri` and `callUuid` of SetCallDisposition are ignored: the URL names the call.
//! - Other unknown fields are ignored, as JSON clients expect.
//!
//! Agent-state and device operations (spec §6.5, §6.6) are parsed by `device_params`,
//! whose module docs list their parameter choices.

mod device_params;

use serde_json::{Map, Value};

use crate::core::{
    CallId, CallOperation, CoreError, CoreResult, Destination, DeviceRequest, DialRequest,
    MonitorKind, UserData, UserDataValue,
};

/// A parsed legacy operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LegacyOperation {
    /// Starts a contact-center session on channels.
    StartContactCenterSession {
        /// The channels (`["voice"]`).
        channels: Vec<String>,
        /// The place, when named.
        place: Option<String>,
    },
    /// Ends the contact-center session and the HTTP session.
    EndContactCenterSession,
    /// Places a call; the device comes from the URL.
    Dial(DialRequest),
    /// An operation on a call.
    Call(CallOperation),
    /// An agent-state operation, posted to the voice channel (Ready, NotReady,
    /// AfterCallWork, AuxWork).
    AgentState(DeviceRequest),
    /// An operation on the user's device (do-not-disturb, forwarding, supervisor
    /// monitoring).
    Device(DeviceRequest),
}

impl LegacyOperation {
    /// Parses a request body.
    pub fn from_body(body: &Map<String, Value>) -> CoreResult<Self> {
        let p = Params(body);
        let name = p.required_str("operationName")?;
        use CallOperation as C;
        use DeviceRequest as D;
        let op = match name {
            "StartContactCenterSession" => Self::StartContactCenterSession {
                channels: p.channels()?,
                place: p.optional_str("place")?.map(str::to_owned),
            },
            "EndContactCenterSession" => Self::EndContactCenterSession,
            "Dial" => Self::Dial(p.dial()?),
            "Answer" => Self::Call(C::Answer),
            "Reject" => Self::Call(C::Reject),
            "Hangup" => Self::Call(C::Hangup),
            "ClearCall" => Self::Call(C::ClearCall),
            "Hold" => Self::Call(C::Hold),
            "Retrieve" => Self::Call(C::Retrieve),
            "SendDtmf" => Self::Call(C::SendDtmf {
                digits: p.required_str("digits")?.to_owned(),
            }),
            "MuteCall" => Self::Call(C::MuteCall),
            "UnmuteCall" => Self::Call(C::UnmuteCall),
            "SingleStepTransfer" => Self::Call(C::SingleStepTransfer(p.destination()?)),
            "InitiateTransfer" => Self::Call(C::InitiateTransfer(p.destination()?)),
            "CompleteTransfer" => Self::Call(C::CompleteTransfer {
                consult: p.optional_call("consultCallUri")?,
            }),
            "InitiateConference" => Self::Call(C::InitiateConference(p.destination()?)),
            "CompleteConference" => Self::Call(C::CompleteConference {
                consult: p.optional_call("consultCallUri")?,
            }),
            "SingleStepConference" => Self::Call(C::SingleStepConference(p.destination()?)),
            "RemoveParticipantFromConference" => Self::Call(C::RemoveParticipantFromConference {
                participant: p.required_str("participant")?.to_owned(),
            }),
            "SwapCalls" => Self::Call(C::SwapCalls {
                other: p
                    .optional_call("otherCallUri")?
                    .ok_or(CoreError::MissingParameter("otherCallUri"))?,
            }),
            "AttachUserData" => Self::Call(C::AttachUserData(p.required_user_data()?)),
            "UpdateUserData" => Self::Call(C::UpdateUserData(p.required_user_data()?)),
            "DeleteUserData" => Self::Call(C::DeleteUserData),
            "DeleteUserDataPair" => Self::Call(C::DeleteUserDataPair {
                key: p.required_str("key")?.to_owned(),
            }),
            "SetCallDisposition" => Self::Call(C::SetCallDisposition {
                disposition: p.required_str("disposition")?.to_owned(),
                key: p.optional_str("dispositionKey")?.map(str::to_owned),
            }),
            "StartCallRecording" => Self::Call(C::StartCallRecording),
            "StopCallRecording" => Self::Call(C::StopCallRecording),
            "PauseCallRecording" => Self::Call(C::PauseCallRecording),
            "ResumeCallRecording" => Self::Call(C::ResumeCallRecording),
            "SwitchToListenIn" => Self::Call(C::SwitchToListenIn),
            "SwitchToBargeIn" => Self::Call(C::SwitchToBargeIn),
            "MuteMonitoredUser" => Self::Call(C::MuteMonitoredUser),
            "UnmuteMonitoredUser" => Self::Call(C::UnmuteMonitoredUser),
            "Ready" => Self::AgentState(D::Ready {
                work_mode: p.work_mode()?,
            }),
            "NotReady" => Self::AgentState(D::NotReady),
            "AfterCallWork" => Self::AgentState(D::AfterCallWork {
                wrap_up: p.wrap_up_time()?,
            }),
            "AuxWork" => Self::AgentState(D::AuxWork),
            "DoNotDisturbOn" => Self::Device(D::DoNotDisturbOn),
            "DoNotDisturbOff" => Self::Device(D::DoNotDisturbOff),
            "ForwardCallsOn" => Self::Device(D::ForwardCallsOn {
                destination: p.forward_destination()?,
            }),
            "ForwardCallsOff" => Self::Device(D::ForwardCallsOff),
            "ListenIn" => Self::Device(p.monitor(MonitorKind::ListenIn)?),
            "Coach" => Self::Device(p.monitor(MonitorKind::Coach)?),
            "BargeIn" => Self::Device(p.monitor(MonitorKind::BargeIn)?),
            "CancelSupervisorMonitoring" => Self::Device(D::CancelSupervisorMonitoring),
            other => return Err(CoreError::UnknownOperation(other.to_owned())),
        };
        Ok(op)
    }

    /// Returns the operation's GWS name.
    pub fn name(&self) -> &'static str {
        match self {
            Self::StartContactCenterSession { .. } => "StartContactCenterSession",
            Self::EndContactCenterSession => "EndContactCenterSession",
            Self::Dial(_) => "Dial",
            Self::Call(op) => op.operation().as_str(),
            Self::AgentState(request) | Self::Device(request) => request.operation().as_str(),
        }
    }

    /// Returns the error for an operation posted to a resource it does not act on
    /// (Dial on a call, Hangup on `/me`, ...): 400/2.
    pub fn misplaced(&self) -> CoreError {
        CoreError::invalid(
            "operationName",
            format!("{} cannot be posted to this resource", self.name()),
        )
    }
}

/// Extracts a call id from a call URI, a path or a bare id.
pub fn call_id_from_uri(name: &'static str, uri: &str) -> CoreResult<CallId> {
    id_from_uri(name, uri, "call").map(CallId::new)
}

/// Extracts a device id from a device URI (`http://host/api/v2/devices/{id}`, as a call's
/// `deviceUri` names it, or `.../api/v2/me/devices/{id}`), a `/devices/{id}` path or a bare
/// id.
pub fn device_id_from_uri(name: &'static str, uri: &str) -> CoreResult<String> {
    id_from_uri(name, uri, "device").map(str::to_owned)
}

/// Returns the last segment after `/{kind}s/` of a URI or path, or a bare id. The host of
/// an absolute URI is not compared with ours: proxies rewrite it.
fn id_from_uri<'a>(name: &'static str, uri: &'a str, kind: &str) -> CoreResult<&'a str> {
    let path = match uri.split_once("://") {
        Some((_, rest)) => rest.find('/').map_or("", |slash| &rest[slash..]),
        None => uri,
    };
    let id = match path.rsplit_once(&format!("/{kind}s/")) {
        Some((_, id)) => id.trim_end_matches('/'),
        None => path,
    };
    if id.is_empty() || id.contains(['/', '?', '#']) || id.chars().any(char::is_whitespace) {
        return Err(CoreError::invalid(
            name,
            format!("{uri:?} is not a {kind} URI, a /{kind}s/{{id}} path or a {kind} id"),
        ));
    }
    Ok(id)
}

/// Typed access to the body's parameters.
struct Params<'a>(&'a Map<String, Value>);

impl Params<'_> {
    fn get(&self, name: &str) -> Option<&Value> {
        self.0.get(name).filter(|v| !v.is_null())
    }

    fn optional_str(&self, name: &'static str) -> CoreResult<Option<&str>> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(CoreError::invalid(name, "must be a string")),
        }
    }

    fn required_str(&self, name: &'static str) -> CoreResult<&str> {
        self.optional_str(name)?
            .ok_or(CoreError::MissingParameter(name))
    }

    fn optional_call(&self, name: &'static str) -> CoreResult<Option<CallId>> {
        self.optional_str(name)?
            .map(|uri| call_id_from_uri(name, uri))
            .transpose()
    }

    fn channels(&self) -> CoreResult<Vec<String>> {
        let Some(value) = self.get("channels") else {
            return Err(CoreError::MissingParameter("channels"));
        };
        let Some(list) = value.as_array().filter(|l| !l.is_empty()) else {
            return Err(CoreError::invalid(
                "channels",
                "must be a non-empty array of channel names",
            ));
        };
        // Which channels are served is the core's to say (DeviceRequest::validate).
        list.iter()
            .map(|channel| {
                channel
                    .as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| CoreError::invalid("channels", "must hold strings"))
            })
            .collect()
    }

    fn dial(&self) -> CoreResult<DialRequest> {
        for unsupported in ["outboundCallerId", "outboundRecord"] {
            if self.get(unsupported).is_some() {
                return Err(CoreError::invalid(
                    "operationName",
                    format!("Dial with {unsupported} is not supported by this gateway"),
                ));
            }
        }
        Ok(DialRequest {
            destination: self.destination()?,
            device_id: None,
        })
    }

    fn destination(&self) -> CoreResult<Destination> {
        let object = match self.get("destination") {
            None => return Err(CoreError::MissingParameter("destination")),
            Some(Value::Object(object)) => object,
            Some(_) => {
                return Err(CoreError::invalid(
                    "destination",
                    "must be an object {\"phoneNumber\": \"<digits>\"}",
                ));
            }
        };
        let number = match object.get("phoneNumber") {
            None | Some(Value::Null) => return Err(CoreError::MissingParameter("destination")),
            Some(Value::String(number)) => number.clone(),
            Some(_) => {
                return Err(CoreError::invalid(
                    "destination",
                    "phoneNumber must be a string",
                ));
            }
        };
        Ok(Destination {
            number,
            location: self.optional_str("location")?.map(str::to_owned),
            user_data: self.user_data()?.unwrap_or_default(),
        })
    }

    fn required_user_data(&self) -> CoreResult<UserData> {
        self.user_data()?
            .ok_or(CoreError::MissingParameter("userData"))
    }

    fn user_data(&self) -> CoreResult<Option<UserData>> {
        let object = match self.get("userData") {
            None => return Ok(None),
            Some(Value::Object(object)) => object,
            Some(_) => return Err(CoreError::invalid("userData", "must be an object")),
        };
        let pairs = object
            .iter()
            .map(|(key, value)| {
                let value = match value {
                    Value::String(s) => UserDataValue::Str(s.clone()),
                    Value::Number(n) => n.as_i64().map(UserDataValue::Int).ok_or_else(|| {
                        CoreError::invalid("userData", format!("value of {key} is not an integer"))
                    })?,
                    _ => {
                        return Err(CoreError::invalid(
                            "userData",
                            format!("value of {key} must be a string or an integer"),
                        ));
                    }
                };
                if key.is_empty() {
                    return Err(CoreError::invalid("userData", "keys must not be empty"));
                }
                Ok((key.clone(), value))
            })
            .collect::<CoreResult<Vec<_>>>()?;
        Ok(Some(UserData::from_pairs(pairs)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::Operation;
    use serde_json::json;

    fn parse(body: Value) -> CoreResult<LegacyOperation> {
        LegacyOperation::from_body(body.as_object().unwrap())
    }

    fn with_params(name: &str) -> Value {
        json!({
            "operationName": name,
            "destination": {"phoneNumber": "15002"},
            "digits": "12#",
            "participant": "15002",
            "otherCallUri": "/calls/abc",
            "userData": {"k": "v"},
            "key": "k",
            "disposition": "sale",
        })
    }

    #[test]
    fn every_call_operation_of_the_core_has_a_name_here() {
        for op in Operation::ALL.iter().filter(|op| **op != Operation::Dial) {
            match parse(with_params(op.as_str())) {
                Ok(LegacyOperation::Call(call)) => assert_eq!(call.operation(), *op),
                other => panic!("{op}: {other:?}"),
            }
        }
        assert!(matches!(
            parse(with_params("Dial")),
            Ok(LegacyOperation::Dial(_))
        ));
    }

    #[test]
    fn unknown_missing_and_mistyped_names_are_typed_errors() {
        assert_eq!(
            parse(json!({"operationName": "Fly"})),
            Err(CoreError::UnknownOperation("Fly".into()))
        );
        assert_eq!(
            parse(json!({})),
            Err(CoreError::MissingParameter("operationName"))
        );
        assert_eq!(
            parse(json!({"operationName": 3}))
                .unwrap_err()
                .status_code(),
            2
        );
        assert_eq!(
            parse(json!({"operationName": "hangup"}))
                .unwrap_err()
                .status_code(),
            2
        );
    }

    #[test]
    fn destinations_are_objects_with_a_phone_number() {
        let ok = parse(
            json!({"operationName": "Dial", "destination": {"phoneNumber": "15001"},
            "location": "remote", "userData": {"a": "x", "b": 7}}),
        )
        .unwrap();
        let LegacyOperation::Dial(dial) = ok else {
            panic!()
        };
        assert_eq!(dial.destination.number, "15001");
        assert_eq!(dial.destination.location.as_deref(), Some("remote"));
        assert_eq!(
            dial.destination.user_data.get("b"),
            Some(&UserDataValue::Int(7))
        );
        let missing = parse(json!({"operationName": "Dial"})).unwrap_err();
        assert_eq!(missing, CoreError::MissingParameter("destination"));
        let inner = parse(json!({"operationName": "Dial", "destination": {}})).unwrap_err();
        assert_eq!(inner.status_code(), 1);
        for bad in [json!("15001"), json!(15001), json!({"phoneNumber": 15001})] {
            let error = parse(json!({"operationName": "Dial", "destination": bad})).unwrap_err();
            assert_eq!(error.status_code(), 2, "{error}");
        }
    }

    #[test]
    fn user_data_holds_strings_and_integers_only() {
        for bad in [
            json!({"a": 1.5}),
            json!({"a": true}),
            json!({"a": [1]}),
            json!([1]),
        ] {
            let body = json!({"operationName": "UpdateUserData", "userData": bad});
            assert_eq!(parse(body).unwrap_err().status_code(), 2);
        }
        let missing = parse(json!({"operationName": "AttachUserData"})).unwrap_err();
        assert_eq!(missing, CoreError::MissingParameter("userData"));
    }

    #[test]
    fn call_uris_may_be_absolute_paths_or_ids() {
        for uri in [
            "http://gw:8080/api/v2/me/calls/ABC",
            "https://gw/api/v2/me/calls/ABC/",
            "/api/v2/me/calls/ABC",
            "/calls/ABC",
            "ABC",
        ] {
            assert_eq!(
                call_id_from_uri("otherCallUri", uri),
                Ok(CallId::new("ABC")),
                "{uri}"
            );
        }
        for bad in ["", "http://gw", "/devices/x", "/calls/", "a b"] {
            assert!(call_id_from_uri("otherCallUri", bad).is_err(), "{bad}");
        }
        let missing = parse(json!({"operationName": "SwapCalls"})).unwrap_err();
        assert_eq!(missing, CoreError::MissingParameter("otherCallUri"));
    }

    #[test]
    fn contact_center_sessions_need_a_list_of_channel_names() {
        let ok =
            parse(json!({"operationName": "StartContactCenterSession", "channels": ["voice"]}));
        assert!(matches!(
            ok,
            Ok(LegacyOperation::StartContactCenterSession { .. })
        ));
        let missing = parse(json!({"operationName": "StartContactCenterSession"})).unwrap_err();
        assert_eq!(missing, CoreError::MissingParameter("channels"));
        for bad in [json!("voice"), json!([]), json!([1])] {
            let body = json!({"operationName": "StartContactCenterSession", "channels": bad});
            assert_eq!(parse(body).unwrap_err().status_code(), 2);
        }
    }

    #[test]
    fn misplaced_operations_are_invalid_parameters() {
        let op = parse(json!({"operationName": "Hangup"})).unwrap();
        assert_eq!(op.misplaced().status_code(), 2);
        assert!(op.misplaced().to_string().contains("Hangup"));
    }
}
