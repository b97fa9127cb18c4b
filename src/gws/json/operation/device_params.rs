//! Parameters of the agent-state and device operations (spec §6.5, §6.6).
//!
//! Choices where the spec is silent or marked inferred:
//! - `workmode` (Ready) is `ManualIn` or `AutoIn`, spelled exactly; anything else, the empty
//!   string included, is refused (400/2).
//! - `wrapUpTime` (AfterCallWork) is a whole number of seconds, as a string (GWS passes it
//!   through as one) or an integer, from 0 to 4294967295 (the range gRPC's `uint32` takes).
//!   0, like an absent value, means no wrap-up time: the agent stays in AfterCallWork.
//!   Negative numbers, fractions, other strings and other types are refused (400/2).
//! - `destination` of ForwardCallsOn is a plain string of digits (spec §6.5), unlike the
//!   `{"phoneNumber":...}` object of call operations; an object or a number is refused
//!   (400/2) rather than guessed at.
//! - ListenIn, Coach and BargeIn name the monitored device with `targetDeviceUri` (an
//!   absolute URI, a `/devices/{id}` path or a bare id; see
//!   [`device_id_from_uri`]) or, when it is absent, with
//!   `phoneNumber`. When both are given, `targetDeviceUri` names the target, as GWS clients
//!   send the monitored number alongside it. Neither is 400/1 for `targetDeviceUri`.
//! - `supervisorMonitoringScope` is `Agent` or `Call` (default Call),
//!   `supervisorMonitoringMode` `NextCall` or `AllCalls` (default AllCalls); other values are
//!   refused (400/2).

use std::time::Duration;

use serde_json::Value;

use super::{Params, device_id_from_uri};
use crate::core::{
    CoreError, CoreResult, DeviceRequest, MonitorKind, MonitorMode, MonitorScope, MonitorTarget,
    WorkMode,
};

impl Params<'_> {
    /// Reads an optional parameter naming one value of a closed set.
    fn optional_named<T>(
        &self,
        name: &'static str,
        from_name: fn(&str) -> Option<T>,
        expected: &str,
    ) -> CoreResult<Option<T>> {
        self.optional_str(name)?
            .map(|value| {
                from_name(value)
                    .ok_or_else(|| CoreError::invalid(name, format!("{value:?} is not {expected}")))
            })
            .transpose()
    }

    pub(super) fn work_mode(&self) -> CoreResult<Option<WorkMode>> {
        self.optional_named("workmode", WorkMode::from_name, "ManualIn or AutoIn")
    }

    pub(super) fn wrap_up_time(&self) -> CoreResult<Option<Duration>> {
        const NAME: &str = "wrapUpTime";
        let seconds = match self.get(NAME) {
            None => return Ok(None),
            Some(Value::String(s)) => s.parse::<u32>().ok(),
            Some(Value::Number(n)) => n.as_u64().and_then(|n| u32::try_from(n).ok()),
            Some(_) => None,
        };
        let seconds = seconds.ok_or_else(|| {
            CoreError::invalid(
                NAME,
                "must be a whole number of seconds from 0 to 4294967295, as a string or an integer",
            )
        })?;
        Ok((seconds > 0).then(|| Duration::from_secs(seconds.into())))
    }

    pub(super) fn forward_destination(&self) -> CoreResult<String> {
        match self.get("destination") {
            None => Err(CoreError::MissingParameter("destination")),
            Some(Value::String(number)) => Ok(number.clone()),
            Some(_) => Err(CoreError::invalid(
                "destination",
                "must be a string of digits such as \"15002\" on ForwardCallsOn",
            )),
        }
    }

    pub(super) fn monitor(&self, kind: MonitorKind) -> CoreResult<DeviceRequest> {
        let uri_opt = self.optional_str("targetDeviceUri")?;
        let number_opt = self.optional_str("phoneNumber")?;
        let target = match (uri_opt, number_opt) {
            (Some(uri), _) => MonitorTarget::Device(device_id_from_uri("targetDeviceUri", uri)?),
            (None, Some(number)) => MonitorTarget::PhoneNumber(number.to_owned()),
            (None, None) => return Err(CoreError::MissingParameter("targetDeviceUri")),
        };
        let mode = self.optional_named(
            "supervisorMonitoringMode",
            MonitorMode::from_name,
            "NextCall or AllCalls",
        )?;
        let scope = self.optional_named(
            "supervisorMonitoringScope",
            MonitorScope::from_name,
            "Agent or Call",
        )?;
        Ok(DeviceRequest::Monitor {
            kind,
            target,
            mode: mode.unwrap_or(MonitorMode::AllCalls),
            scope: scope.unwrap_or(MonitorScope::Call),
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::LegacyOperation;
    use super::*;
    use crate::core::DeviceOperation;

    fn parse(body: Value) -> CoreResult<LegacyOperation> {
        LegacyOperation::from_body(body.as_object().unwrap())
    }

    fn agent_state(body: Value) -> DeviceRequest {
        match parse(body) {
            Ok(LegacyOperation::AgentState(request)) => request,
            other => panic!("{other:?}"),
        }
    }

    fn device(body: Value) -> DeviceRequest {
        match parse(body) {
            Ok(LegacyOperation::Device(request)) => request,
            other => panic!("{other:?}"),
        }
    }

    fn status(body: Value) -> u32 {
        parse(body.clone())
            .map(|op| panic!("{body} parsed as {op:?}"))
            .unwrap_err()
            .status_code()
    }

    #[test]
    fn agent_state_and_device_operations_land_on_their_resource() {
        let target = json!("/devices/d1");
        for op in DeviceOperation::ALL {
            let body = json!({"operationName": op.as_str(), "targetDeviceUri": target,
                "destination": "15002", "channels": ["voice"]});
            let parsed = parse(body).unwrap();
            assert_eq!(parsed.name(), op.as_str());
            let expected = match op {
                DeviceOperation::StartContactCenterSession
                | DeviceOperation::EndContactCenterSession => continue,
                DeviceOperation::Ready
                | DeviceOperation::NotReady
                | DeviceOperation::AfterCallWork
                | DeviceOperation::AuxWork => "agent state",
                _ => "device",
            };
            let got = match parsed {
                LegacyOperation::AgentState(_) => "agent state",
                LegacyOperation::Device(_) => "device",
                other => panic!("{other:?}"),
            };
            assert_eq!(got, expected, "{op}");
        }
    }

    #[test]
    fn ready_takes_an_exact_workmode() {
        let ready = |mode: Value| json!({"operationName": "Ready", "workmode": mode});
        assert_eq!(
            agent_state(ready(json!("AutoIn"))),
            DeviceRequest::Ready {
                work_mode: Some(WorkMode::AutoIn)
            }
        );
        assert_eq!(
            agent_state(json!({"operationName": "Ready"})),
            DeviceRequest::Ready { work_mode: None }
        );
        for bad in [json!("Turbo"), json!("manualin"), json!(""), json!(1)] {
            assert_eq!(status(ready(bad)), 2);
        }
    }

    #[test]
    fn wrap_up_time_is_whole_seconds_as_a_string_or_an_integer() {
        let acw = |time: Value| json!({"operationName": "AfterCallWork", "wrapUpTime": time});
        let wrap_up = |time: Value| match agent_state(acw(time)) {
            DeviceRequest::AfterCallWork { wrap_up } => wrap_up,
            other => panic!("{other:?}"),
        };
        assert_eq!(wrap_up(json!("30")), Some(Duration::from_secs(30)));
        assert_eq!(wrap_up(json!(30)), Some(Duration::from_secs(30)));
        assert_eq!(wrap_up(json!("0")), None);
        assert_eq!(wrap_up(Value::Null), None);
        let bad = [
            json!("-1"),
            json!(-1),
            json!("1.5"),
            json!(1.5),
            json!("soon"),
            json!(""),
            json!("4294967296"),
            json!(true),
            json!({"seconds": 1}),
        ];
        for time in bad {
            assert_eq!(status(acw(time)), 2);
        }
    }

    #[test]
    fn forwarding_takes_a_plain_string() {
        let fwd = |destination: Value| json!({"operationName": "ForwardCallsOn", "destination": destination});
        assert_eq!(
            device(fwd(json!("15002"))),
            DeviceRequest::ForwardCallsOn {
                destination: "15002".into()
            }
        );
        assert_eq!(status(fwd(json!({"phoneNumber": "15002"}))), 2);
        assert_eq!(status(fwd(json!(15002))), 2);
        assert_eq!(status(json!({"operationName": "ForwardCallsOn"})), 1);
    }

    #[test]
    fn monitoring_names_a_device_or_a_number_with_defaults() {
        let listen = |extra: Value| {
            let mut body = json!({"operationName": "ListenIn"});
            body.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            body
        };
        for uri in [
            "http://gw:8080/api/v2/devices/d1",
            "https://gw/api/v2/me/devices/d1/",
            "/api/v2/devices/d1",
            "/devices/d1",
            "d1",
        ] {
            assert_eq!(
                device(listen(
                    json!({"targetDeviceUri": uri, "phoneNumber": "15000"})
                )),
                DeviceRequest::Monitor {
                    kind: MonitorKind::ListenIn,
                    target: MonitorTarget::Device("d1".into()),
                    mode: MonitorMode::AllCalls,
                    scope: MonitorScope::Call,
                },
                "{uri}"
            );
        }
        assert_eq!(
            device(json!({"operationName": "Coach", "phoneNumber": "15000",
                "supervisorMonitoringMode": "NextCall", "supervisorMonitoringScope": "Agent"})),
            DeviceRequest::Monitor {
                kind: MonitorKind::Coach,
                target: MonitorTarget::PhoneNumber("15000".into()),
                mode: MonitorMode::NextCall,
                scope: MonitorScope::Agent,
            }
        );
        assert_eq!(status(listen(json!({}))), 1);
        for bad in [
            json!({"targetDeviceUri": "/api/v2/me/calls/c1"}),
            json!({"targetDeviceUri": "http://gw"}),
            json!({"targetDeviceUri": 7}),
            json!({"phoneNumber": 15000}),
            json!({"targetDeviceUri": "d1", "supervisorMonitoringMode": "Sometimes"}),
            json!({"targetDeviceUri": "d1", "supervisorMonitoringScope": "call"}),
        ] {
            assert_eq!(status(listen(bad)), 2);
        }
    }
}
