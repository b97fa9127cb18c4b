//! The gRPC request conversions: the first byte picks a request message, the rest is
//! decoded as its protobuf encoding, and the message goes through its
//! `TryFrom<pb::...> for CallRequest`. Any decodable message must convert or give a typed
//! error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use prost::Message;
use voice_gateway::grpc::convert::CallRequest;
use voice_gateway::grpc::pb;

/// Decodes `bytes` as the request at index `pick` of the list and converts it.
macro_rules! convert_one {
    ($pick:expr, $bytes:expr; $($request:ident),* $(,)?) => {{
        let requests: &[fn(&[u8])] = &[$(|bytes| {
            if let Ok(message) = pb::$request::decode(bytes) {
                let _ = CallRequest::try_from(message);
            }
        }),*];
        requests[usize::from($pick) % requests.len()]($bytes);
    }};
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, bytes)) = data.split_first() else {
        return;
    };
    convert_one!(pick, bytes;
        AnswerRequest, RejectRequest, HangupRequest, ClearCallRequest, HoldRequest,
        RetrieveRequest, MuteCallRequest, UnmuteCallRequest, DeleteUserDataRequest,
        StartCallRecordingRequest, StopCallRecordingRequest, PauseCallRecordingRequest,
        ResumeCallRecordingRequest, SwitchToListenInRequest, SwitchToBargeInRequest,
        MuteMonitoredUserRequest, UnmuteMonitoredUserRequest, SingleStepTransferRequest,
        InitiateTransferRequest, InitiateConferenceRequest, SingleStepConferenceRequest,
        SendDtmfRequest, CompleteTransferRequest, CompleteConferenceRequest,
        RemoveParticipantFromConferenceRequest, SwapCallsRequest, AttachUserDataRequest,
        UpdateUserDataRequest, DeleteUserDataPairRequest, SetCallDispositionRequest,
    );
});
