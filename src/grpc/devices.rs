//! `voice.v1.DeviceService` over the core: conversions of device requests and resources,
//! and the service itself (three steps per RPC, as in `service.rs`).

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};
use tracing::instrument;

use super::auth::authenticate;
use super::convert::{non_empty, resume_point};
use super::idempotency;
use super::pb;
use super::pb::device_service_server::DeviceService;
use super::stream::{WatchStream, watch_stream};
use crate::auth::Authenticator;
use crate::core::{
    AgentState, CallControl, CoreError, DeviceEvent, DeviceRequest, DeviceSnapshot, MonitorKind,
    MonitorMode, MonitorScope, MonitorTarget, Principal, WorkMode,
};

impl From<&DeviceSnapshot> for pb::Device {
    fn from(device: &DeviceSnapshot) -> Self {
        let state = device.agent_state;
        let work_mode = match state {
            AgentState::Ready => device
                .work_mode
                .map(|w| w.as_str().to_owned())
                .unwrap_or_default(),
            AgentState::AfterCallWork | AgentState::AuxWork => state.as_str().to_owned(),
            AgentState::NotReady => String::new(),
        };
        Self {
            id: device.user.device_id.to_string(),
            device_state: if device.active {
                pb::DeviceState::Active
            } else {
                pb::DeviceState::Inactive
            }
            .into(),
            user_state: Some(pb::UserState {
                id: state.id().to_owned(),
                display_name: state.display_name().to_owned(),
                state: state.state_name().to_owned(),
                work_mode,
            }),
            phone_number: device.user.phone_number.to_string(),
            e164_number: device.user.phone_number.to_string(),
            telephony_network: "Private".to_owned(),
            do_not_disturb: device.do_not_disturb,
            forward_to: device.forward_to.clone().unwrap_or_default(),
            capabilities: device
                .capabilities
                .iter()
                .map(|op| op.as_str().to_owned())
                .collect(),
            supervisor_monitoring_state: device.monitoring.as_ref().map(|m| {
                pb::SupervisorMonitoringState {
                    state: m.kind.as_str().to_owned(),
                    mode: m.mode.as_str().to_owned(),
                    scope: m.scope.as_str().to_owned(),
                    target_device_id: m.target_device_id.to_string(),
                }
            }),
            user_name: device.user.name.to_string(),
            voice_environment_id: device.voice_environment_id.to_string(),
        }
    }
}

/// Renders a device event of the event log named `epoch`.
pub fn device_event_to_pb(event: &DeviceEvent, epoch: &str) -> pb::DeviceEvent {
    pb::DeviceEvent {
        sequence: event.sequence,
        device: Some(pb::Device::from(&event.device)),
        phone_number: event.device.user.phone_number.to_string(),
        commit_time: Some(prost_types::Timestamp::from(event.committed_at)),
        epoch: epoch.to_owned(),
    }
}

/// Converts a monitoring request.
fn monitor(
    kind: MonitorKind,
    target: Option<pb::MonitorTarget>,
) -> Result<DeviceRequest, CoreError> {
    let target = target.ok_or(CoreError::MissingParameter("target"))?;
    let mode = match target.mode.as_str() {
        "" => MonitorMode::AllCalls,
        other => MonitorMode::from_name(other).ok_or_else(|| {
            CoreError::invalid("mode", format!("{other:?} is not NextCall or AllCalls"))
        })?,
    };
    let scope = match target.scope.as_str() {
        "" => MonitorScope::Call,
        other => MonitorScope::from_name(other).ok_or_else(|| {
            CoreError::invalid("scope", format!("{other:?} is not Agent or Call"))
        })?,
    };
    let target = match (target.device_id.is_empty(), target.phone_number.is_empty()) {
        (false, _) => MonitorTarget::Device(target.device_id),
        (true, false) => MonitorTarget::PhoneNumber(target.phone_number),
        (true, true) => return Err(CoreError::MissingParameter("target")),
    };
    Ok(DeviceRequest::Monitor {
        kind,
        target,
        mode,
        scope,
    })
}

fn device_id(id: String) -> Option<String> {
    (!id.is_empty()).then_some(id)
}

/// The gRPC device service.
#[derive(Debug, Clone)]
pub struct GrpcDeviceControl {
    core: Arc<CallControl>,
    auth: Arc<Authenticator>,
    shutdown: CancellationToken,
}

impl GrpcDeviceControl {
    /// Builds the service over the core; streams end when `shutdown` is cancelled.
    pub fn new(
        core: Arc<CallControl>,
        auth: Arc<Authenticator>,
        shutdown: CancellationToken,
    ) -> Self {
        Self {
            core,
            auth,
            shutdown,
        }
    }

    async fn authenticate<T>(&self, request: Request<T>) -> Result<(Principal, T), Status> {
        let who = authenticate(&self.auth, &request).await?;
        Ok((who, request.into_inner()))
    }

    /// Runs one device operation: authenticate, convert, execute (once per idempotency
    /// key), render.
    async fn run<T: prost::Message>(
        &self,
        method: &'static str,
        request: Request<T>,
        convert: impl FnOnce(T) -> Result<(Option<String>, DeviceRequest), CoreError>,
    ) -> Result<Option<pb::Device>, Status> {
        let key = idempotency::key(request.metadata())?;
        let (who, message) = self.authenticate(request).await?;
        let retry = idempotency::retry(key, method, &message);
        let (device, request) = convert(message)?;
        let (core, acting) = (self.core.clone(), who.clone());
        idempotency::once(&self.core, &who, retry, async move {
            let device = core
                .submit_device_operation(&acting, device.as_deref(), request)
                .await?;
            Ok(Some(pb::Device::from(&device)))
        })
        .await
    }
}

/// Reads a `workmode`: empty for none, else `ManualIn` or `AutoIn`.
fn work_mode(name: &str) -> Result<Option<WorkMode>, CoreError> {
    match name {
        "" => Ok(None),
        other => Ok(Some(WorkMode::from_name(other).ok_or_else(|| {
            CoreError::invalid("workmode", format!("{other:?} is not ManualIn or AutoIn"))
        })?)),
    }
}

/// The request of ControlAgentState's `operation_name`.
fn agent_state_request(
    name: &str,
    workmode: &str,
    wrap_up_time: u32,
) -> Result<DeviceRequest, CoreError> {
    Ok(match name {
        "" => return Err(CoreError::MissingParameter("operation_name")),
        "Ready" => DeviceRequest::Ready {
            work_mode: work_mode(workmode)?,
        },
        "NotReady" => DeviceRequest::NotReady,
        "AfterCallWork" => DeviceRequest::AfterCallWork {
            wrap_up: (wrap_up_time > 0).then(|| Duration::from_secs(u64::from(wrap_up_time))),
        },
        "AuxWork" => DeviceRequest::AuxWork,
        "EndContactCenterSession" => DeviceRequest::EndContactCenterSession,
        other => {
            return Err(CoreError::invalid(
                "operation_name",
                format!("{other:?} is not an agent-state operation"),
            ));
        }
    })
}

/// The stream type of WatchDevices.
pub type WatchDevicesStream = WatchStream<pb::WatchDevicesResponse>;

/// Generates the DeviceService impl: one method per device operation from its conversion
/// closure, plus the hand-written methods passed in (the async-trait attribute must see
/// every method at once).
macro_rules! device_service {
    ($($method:ident($request:ident) -> $response:ident, |$m:ident| $convert:expr;)* ; $($extra:item)*) => {
        #[tonic::async_trait]
        impl DeviceService for GrpcDeviceControl {
            $(
                #[instrument(level = "debug", skip(self, request))]
                async fn $method(&self, request: Request<pb::$request>) -> Result<Response<pb::$response>, Status> {
                    let device = self.run(stringify!($request), request, |$m: pb::$request| $convert).await?;
                    Ok(Response::new(pb::$response { device }))
                }
            )*
            $($extra)*
        }
    };
}

device_service! {
    start_contact_center_session(StartContactCenterSessionRequest) -> StartContactCenterSessionResponse, |m| Ok((None, DeviceRequest::StartContactCenterSession {
        channels: m.channels,
        place: non_empty(m.place),
        device_path: non_empty(m.device_path),
        queue: non_empty(m.queue),
        login_code: non_empty(m.login_code),
    }));
    end_contact_center_session(EndContactCenterSessionRequest) -> EndContactCenterSessionResponse, |_m| Ok((None, DeviceRequest::EndContactCenterSession));
    ready(ReadyRequest) -> ReadyResponse, |m| Ok((None, DeviceRequest::Ready { work_mode: work_mode(&m.workmode)? }));
    not_ready(NotReadyRequest) -> NotReadyResponse, |_m| Ok((None, DeviceRequest::NotReady));
    after_call_work(AfterCallWorkRequest) -> AfterCallWorkResponse, |m| {
        let wrap_up = (m.wrap_up_time > 0).then(|| Duration::from_secs(u64::from(m.wrap_up_time)));
        Ok((None, DeviceRequest::AfterCallWork { wrap_up }))
    };
    aux_work(AuxWorkRequest) -> AuxWorkResponse, |_m| Ok((None, DeviceRequest::AuxWork));
    do_not_disturb_on(DoNotDisturbOnRequest) -> DoNotDisturbOnResponse, |m| Ok((device_id(m.device_id), DeviceRequest::DoNotDisturbOn));
    do_not_disturb_off(DoNotDisturbOffRequest) -> DoNotDisturbOffResponse, |m| Ok((device_id(m.device_id), DeviceRequest::DoNotDisturbOff));
    forward_calls_on(ForwardCallsOnRequest) -> ForwardCallsOnResponse, |m| Ok((device_id(m.device_id), DeviceRequest::ForwardCallsOn { destination: m.destination }));
    forward_calls_off(ForwardCallsOffRequest) -> ForwardCallsOffResponse, |m| Ok((device_id(m.device_id), DeviceRequest::ForwardCallsOff));
    listen_in(ListenInRequest) -> ListenInResponse, |m| Ok((None, monitor(MonitorKind::ListenIn, m.target)?));
    coach(CoachRequest) -> CoachResponse, |m| Ok((None, monitor(MonitorKind::Coach, m.target)?));
    barge_in(BargeInRequest) -> BargeInResponse, |m| Ok((None, monitor(MonitorKind::BargeIn, m.target)?));
    cancel_supervisor_monitoring(CancelSupervisorMonitoringRequest) -> CancelSupervisorMonitoringResponse, |_m| Ok((None, DeviceRequest::CancelSupervisorMonitoring));
    ;

    #[instrument(level = "debug", skip(self, request))]
    async fn control_agent_state(
        &self,
        request: Request<pb::ControlAgentStateRequest>,
    ) -> Result<Response<pb::ControlAgentStateResponse>, Status> {
        let (who, m) = self.authenticate(request).await?;
        let request = agent_state_request(&m.operation_name, &m.workmode, m.wrap_up_time)?;
        let device = self.core.control_agent(&who, &m.user, request)?;
        Ok(Response::new(pb::ControlAgentStateResponse {
            device: Some(pb::Device::from(&device)),
        }))
    }

    #[instrument(level = "debug", skip(self, request))]
    async fn list_devices(
        &self,
        request: Request<pb::ListDevicesRequest>,
    ) -> Result<Response<pb::ListDevicesResponse>, Status> {
        let (who, _) = self.authenticate(request).await?;
        let devices = self.core.list_devices(&who)?.iter().map(pb::Device::from).collect();
        Ok(Response::new(pb::ListDevicesResponse { devices }))
    }

    type WatchDevicesStream = WatchDevicesStream;

    #[instrument(level = "debug", skip(self, request))]
    async fn watch_devices(
        &self,
        request: Request<pb::WatchDevicesRequest>,
    ) -> Result<Response<WatchDevicesStream>, Status> {
        let (who, message) = self.authenticate(request).await?;
        let scope = self.core.watch_scope(&who, message.contact_center)?;
        let start = self.core.watch_devices(scope, resume_point(message.from_sequence, message.epoch))?;
        let epoch = start.epoch.clone();
        let snapshot = start.snapshot.map(|devices| pb::WatchDevicesResponse {
            kind: Some(pb::watch_devices_response::Kind::Snapshot(pb::DeviceSnapshot {
                sequence: start.sequence,
                devices: devices.iter().map(pb::Device::from).collect(),
                epoch: epoch.to_string(),
            })),
        });
        let render = move |event: &Arc<DeviceEvent>| pb::WatchDevicesResponse {
            kind: Some(pb::watch_devices_response::Kind::Event(device_event_to_pb(event, &epoch))),
        };
        let stream = watch_stream(snapshot, start.watch, start.epoch, self.shutdown.clone(), render);
        Ok(Response::new(stream))
    }
}
