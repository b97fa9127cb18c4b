//! `voice.v1.CallService` and `voice.v1.SimulatorService` over the core. Every RPC is three
//! steps: authenticate and convert in, call the core, convert out.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};
use tracing::instrument;

use super::auth::authenticate;
use super::convert::{CallRequest, call_id, resume_point, user_data, watch_event_to_pb};
use super::idempotency;
use super::pb;
use super::pb::call_service_server::CallService;
use super::pb::simulator_service_server::SimulatorService;
use super::stream::{WatchStream, watch_stream};
use crate::auth::Authenticator;
use crate::core::{CallControl, CallWatchEvent, Destination, DialRequest, Principal, Reply};

/// The gRPC call-control service.
#[derive(Debug, Clone)]
pub struct GrpcCallControl {
    core: Arc<CallControl>,
    auth: Arc<Authenticator>,
    shutdown: CancellationToken,
}

impl GrpcCallControl {
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

    /// Runs one call operation: authenticate, convert, execute (once per idempotency key),
    /// render.
    async fn call_operation<T>(
        &self,
        method: &'static str,
        request: Request<T>,
    ) -> Result<Option<pb::Call>, Status>
    where
        T: prost::Message,
        CallRequest: TryFrom<T, Error = crate::core::CoreError>,
    {
        let key = idempotency::key(request.metadata())?;
        let (who, message) = self.authenticate(request).await?;
        let retry = idempotency::retry(key, method, &message);
        let CallRequest { call_id, operation } = CallRequest::try_from(message)?;
        tracing::Span::current().record("call_id", call_id.as_str());
        let (core, acting) = (self.core.clone(), who.clone());
        idempotency::once(&self.core, &who, retry, async move {
            let call = core
                .submit_call_operation(&acting, &call_id, operation)
                .await?;
            Ok(Some(pb::Call::from(&call)))
        })
        .await
    }
}

/// The stream type of WatchCalls.
pub type WatchCallsStream = WatchStream<pb::WatchCallsResponse>;

/// Generates the CallService impl: one method per call operation, plus the hand-written
/// methods passed in (the async-trait attribute must see every method at once, so the
/// whole impl is built here).
macro_rules! call_service {
    ($($method:ident($request:ident) -> $response:ident;)* ; $($extra:item)*) => {
        #[tonic::async_trait]
        impl CallService for GrpcCallControl {
            $(
                #[instrument(level = "debug", skip(self, request), fields(call_id))]
                async fn $method(&self, request: Request<pb::$request>) -> Result<Response<pb::$response>, Status> {
                    let call = self.call_operation(stringify!($request), request).await?;
                    Ok(Response::new(pb::$response { call }))
                }
            )*
            $($extra)*
        }
    };
}

call_service! {
    answer(AnswerRequest) -> AnswerResponse;
    reject(RejectRequest) -> RejectResponse;
    hangup(HangupRequest) -> HangupResponse;
    clear_call(ClearCallRequest) -> ClearCallResponse;
    hold(HoldRequest) -> HoldResponse;
    retrieve(RetrieveRequest) -> RetrieveResponse;
    send_dtmf(SendDtmfRequest) -> SendDtmfResponse;
    mute_call(MuteCallRequest) -> MuteCallResponse;
    unmute_call(UnmuteCallRequest) -> UnmuteCallResponse;
    single_step_transfer(SingleStepTransferRequest) -> SingleStepTransferResponse;
    initiate_transfer(InitiateTransferRequest) -> InitiateTransferResponse;
    complete_transfer(CompleteTransferRequest) -> CompleteTransferResponse;
    initiate_conference(InitiateConferenceRequest) -> InitiateConferenceResponse;
    complete_conference(CompleteConferenceRequest) -> CompleteConferenceResponse;
    single_step_conference(SingleStepConferenceRequest) -> SingleStepConferenceResponse;
    remove_participant_from_conference(RemoveParticipantFromConferenceRequest) -> RemoveParticipantFromConferenceResponse;
    swap_calls(SwapCallsRequest) -> SwapCallsResponse;
    attach_user_data(AttachUserDataRequest) -> AttachUserDataResponse;
    update_user_data(UpdateUserDataRequest) -> UpdateUserDataResponse;
    delete_user_data(DeleteUserDataRequest) -> DeleteUserDataResponse;
    delete_user_data_pair(DeleteUserDataPairRequest) -> DeleteUserDataPairResponse;
    set_call_disposition(SetCallDispositionRequest) -> SetCallDispositionResponse;
    start_call_recording(StartCallRecordingRequest) -> StartCallRecordingResponse;
    stop_call_recording(StopCallRecordingRequest) -> StopCallRecordingResponse;
    pause_call_recording(PauseCallRecordingRequest) -> PauseCallRecordingResponse;
    resume_call_recording(ResumeCallRecordingRequest) -> ResumeCallRecordingResponse;
    switch_to_listen_in(SwitchToListenInRequest) -> SwitchToListenInResponse;
    switch_to_barge_in(SwitchToBargeInRequest) -> SwitchToBargeInResponse;
    mute_monitored_user(MuteMonitoredUserRequest) -> MuteMonitoredUserResponse;
    unmute_monitored_user(UnmuteMonitoredUserRequest) -> UnmuteMonitoredUserResponse;
    ;
    #[instrument(level = "debug", skip(self, request))]
    async fn dial(&self, request: Request<pb::DialRequest>) -> Result<Response<pb::DialResponse>, Status> {
        let key = idempotency::key(request.metadata())?;
        let (who, message) = self.authenticate(request).await?;
        let retry = idempotency::retry(key, "DialRequest", &message);
        let dial = DialRequest {
            destination: Destination {
                number: message.destination,
                location: (!message.location.is_empty()).then_some(message.location),
                user_data: user_data(message.user_data)?,
            },
            device_id: (!message.device_id.is_empty()).then_some(message.device_id),
        };
        let (core, acting) = (self.core.clone(), who.clone());
        let reply = idempotency::once(&self.core, &who, retry, async move {
            let call = core.submit_dial(&acting, dial, Reply::Report).await?;
            Ok(pb::DialResponse { call: call.as_ref().map(pb::Call::from) })
        })
        .await?;
        Ok(Response::new(reply))
    }

    #[instrument(level = "debug", skip(self, request))]
    async fn get_call(&self, request: Request<pb::GetCallRequest>) -> Result<Response<pb::GetCallResponse>, Status> {
        let (who, message) = self.authenticate(request).await?;
        let call = self.core.get_call(&who, &call_id(message.call_id, "call_id")?)?;
        Ok(Response::new(pb::GetCallResponse { call: Some(pb::Call::from(&call)) }))
    }

    #[instrument(level = "debug", skip(self, request))]
    async fn list_calls(&self, request: Request<pb::ListCallsRequest>) -> Result<Response<pb::ListCallsResponse>, Status> {
        let (who, _) = self.authenticate(request).await?;
        let calls = self.core.list_calls(&who)?.iter().map(pb::Call::from).collect();
        Ok(Response::new(pb::ListCallsResponse { calls }))
    }

    type WatchCallsStream = WatchCallsStream;

    #[instrument(level = "debug", skip(self, request))]
    async fn watch_calls(&self, request: Request<pb::WatchCallsRequest>) -> Result<Response<WatchCallsStream>, Status> {
        let (who, message) = self.authenticate(request).await?;
        let scope = self.core.watch_scope(&who, message.contact_center)?;
        let start = self.core.watch(scope, resume_point(message.from_sequence, message.epoch))?;
        let epoch = start.epoch.clone();
        let snapshot = start.snapshot.map(|calls| pb::WatchCallsResponse {
            kind: Some(pb::watch_calls_response::Kind::Snapshot(pb::CallSnapshot {
                sequence: start.sequence,
                calls: calls.iter().map(pb::Call::from).collect(),
                epoch: epoch.to_string(),
            })),
        });
        let render = move |event: &CallWatchEvent| watch_event_to_pb(event, &epoch);
        let stream = watch_stream(snapshot, start.watch, start.epoch, self.shutdown.clone(), render);
        Ok(Response::new(stream))
    }
}

/// The simulator service: drives the embedded switch from outside.
#[derive(Debug, Clone)]
pub struct GrpcSimulator {
    core: Arc<CallControl>,
    auth: Arc<Authenticator>,
}

impl GrpcSimulator {
    /// Builds the service over the core.
    pub fn new(core: Arc<CallControl>, auth: Arc<Authenticator>) -> Self {
        Self { core, auth }
    }
}

#[tonic::async_trait]
impl SimulatorService for GrpcSimulator {
    #[instrument(level = "debug", skip(self, request))]
    async fn inbound_call(
        &self,
        request: Request<pb::InboundCallRequest>,
    ) -> Result<Response<pb::InboundCallResponse>, Status> {
        let key = idempotency::key(request.metadata())?;
        let who = authenticate(&self.auth, &request).await?;
        let message = request.into_inner();
        let retry = idempotency::retry(key, "InboundCallRequest", &message);
        let queue = (!message.queue.is_empty()).then_some(message.queue);
        let data = user_data(message.user_data)?;
        let (core, acting) = (self.core.clone(), who.clone());
        let reply = idempotency::once(&self.core, &who, retry, async move {
            let call = core.inbound_call(&acting, &message.from, &message.to, queue, data)?;
            Ok(pb::InboundCallResponse {
                call: Some(pb::Call::from(&call)),
            })
        })
        .await?;
        Ok(Response::new(reply))
    }

    #[instrument(level = "debug", skip(self, request))]
    async fn external_hangup(
        &self,
        request: Request<pb::ExternalHangupRequest>,
    ) -> Result<Response<pb::ExternalHangupResponse>, Status> {
        let key = idempotency::key(request.metadata())?;
        let who = authenticate(&self.auth, &request).await?;
        let message = request.into_inner();
        let retry = idempotency::retry(key, "ExternalHangupRequest", &message);
        let call_id = call_id(message.call_id, "call_id")?;
        let (core, acting) = (self.core.clone(), who.clone());
        let reply = idempotency::once(&self.core, &who, retry, async move {
            let call = core.external_hangup(&acting, &call_id, &message.number)?;
            Ok(pb::ExternalHangupResponse {
                call: Some(pb::Call::from(&call)),
            })
        })
        .await?;
        Ok(Response::new(reply))
    }
}
