//! The `submit_*` entry every front calls. In embedded mode each runs the embedded state
//! machine; in bridge mode it does three things:
//!
//! 1. check locally only what cannot be out of date, in embedded mode's order: the acting
//!    user, the contact center's features (as the upstream listed them at sign-in) and the
//!    parameters. Whether the call exists and the operation is in its `capabilities` is
//!    left to the upstream: the mirror may lag behind a change made on the upstream
//!    directly (the other party answering), and refusing on a stale view would be wrong.
//!    The upstream's refusals keep their statusCode; HTTP 400 with statusCode 2 (the only
//!    400 left once parameters passed) reads as FAILED_PRECONDITION, as embedded mode
//!    answers an operation outside the capabilities;
//! 2. hand the operation to the [`Upstream`](crate::core::port::Upstream), which answers
//!    with the upstream's acceptance or its refusal (its `statusCode` carried unchanged to
//!    every front);
//! 3. wait, at most `upstream.reply_wait_ms` (2 s by default), for the upstream's
//!    notification that reflects the operation — the next event of that user about that
//!    call (a device event for device operations; a call the user did not have before for
//!    Dial) — and answer with the call in it, so a reply carries the upstream's call.
//!
//! At the bound: an operation on a call answers with the call as mirrored now (the upstream
//! accepted the operation, so failing the request would make clients retry something done);
//! a Dial, whose call the gateway cannot name before the upstream reports it, fails with
//! UNAVAILABLE saying the upstream accepted it and that the call will appear on the watch.

use std::time::Duration;

use crate::core::devices::DeviceSnapshot;
use crate::core::events::{CallWatch, CallWatchEvent, DeviceWatch, WatchScope};
use crate::core::model::{CallEvent, CallId, CallSnapshot, NotificationType, Operation};
use crate::core::operation::{CallOperation, DeviceRequest, DialRequest};
use crate::core::{CallControl, CoreError, CoreResult, Principal};

use super::Reply;

impl CallControl {
    /// Places a call through the active port; returns the new call as the caller sees it.
    /// `None` only for [`Reply::Acceptance`] in bridge mode, at the bound.
    pub async fn submit_dial(
        &self,
        who: &Principal,
        request: DialRequest,
        reply: Reply,
    ) -> CoreResult<Option<CallSnapshot>> {
        let Some(bridge) = self.upstream_ready()? else {
            return self.dial(who, request).map(Some);
        };
        let user = self.acting_user(who)?;
        self.require_features(&user, Operation::Dial)?;
        request.validate()?;
        if let Some(device) = request.device_id.as_deref()
            && device != &*user.device_id
        {
            return Err(CoreError::NotFound(format!("device {device} not found")));
        }
        let (known, mut watch) = {
            let store = self.lock();
            let known: Vec<CallId> = store
                .active_views(&self.directory, &user.name)
                .into_iter()
                .map(|c| c.id)
                .collect();
            // From now: `None` registers without reading the history.
            let watch = store.log.watch(WatchScope::User(user.name.clone()), None)?;
            (known, watch)
        };
        bridge.upstream.dial(user, request).await?;
        let wait = bridge.reply_wait;
        match next_call(&mut watch, wait, |call| !known.contains(&call.id)).await {
            Some(call) => Ok(Some(call)),
            None if reply == Reply::Acceptance => Ok(None),
            None => Err(CoreError::Unavailable(format!(
                "the upstream accepted Dial but reported no new call within {} ms; the call will appear on the watch",
                wait.as_millis()
            ))),
        }
    }

    /// Carries out an operation on a call through the active port; returns the call as the
    /// user sees it after.
    /// At the bound it answers with the call as mirrored now (see the module docs).
    pub async fn submit_call_operation(
        &self,
        who: &Principal,
        call_id: &CallId,
        op: CallOperation,
    ) -> CoreResult<CallSnapshot> {
        let Some(bridge) = self.upstream_ready()? else {
            return self.execute(who, call_id, op);
        };
        let user = self.acting_user(who)?;
        let operation = op.operation();
        self.require_features(&user, operation)?;
        op.validate()?;
        // The call's state and capabilities are the upstream's to judge: the mirror may
        // lag behind a change made on the upstream directly (another party answering).
        let mut watch = {
            let store = self.lock();
            store.log.watch(WatchScope::User(user.name.clone()), None)?
        };
        bridge
            .upstream
            .execute(user.clone(), call_id.clone(), op)
            .await?;
        let expected = reported_as(operation);
        let reported = next_event(&mut watch, bridge.reply_wait, |event| {
            event.call.id == *call_id && expected.is_none_or(|n| event.notification == n)
        })
        .await;
        match reported {
            Some(call) => Ok(call),
            None => self.get_call(who, call_id),
        }
    }

    /// Carries out an operation on the user's device through the active port; returns the
    /// device after it.
    /// At the bound it answers with the device as mirrored now.
    pub async fn submit_device_operation(
        &self,
        who: &Principal,
        device_id: Option<&str>,
        request: DeviceRequest,
    ) -> CoreResult<DeviceSnapshot> {
        let Some(bridge) = self.upstream_ready()? else {
            return self.device_operation(who, device_id, request);
        };
        let user = self.acting_user(who)?;
        if let Some(device) = device_id
            && device != &*user.device_id
        {
            return Err(CoreError::NotFound(format!("device {device} not found")));
        }
        request.validate()?;
        let mut watch = {
            let store = self.lock();
            DeviceWatch(
                store
                    .log
                    .watch_events(WatchScope::User(user.name.clone()), None)?,
            )
        };
        bridge
            .upstream
            .device_operation(user.clone(), request)
            .await?;
        let reported = tokio::time::timeout(bridge.reply_wait, watch.next()).await;
        if let Ok(Ok(Some(event))) = reported {
            return Ok(event.device.clone());
        }
        self.lock()
            .device_view(&self.directory, &user.name)
            .ok_or_else(|| CoreError::NotFound(format!("the device of user {}", user.name)))
    }
}

/// The notification an operation's own report comes as, where only one kind fits: the
/// reply then skips a report of an earlier change still on its way (the other party's
/// answer reaching the bridge after the recording was started, say). `None`: any report of
/// the call.
fn reported_as(operation: Operation) -> Option<NotificationType> {
    use Operation as O;
    match operation {
        O::StartCallRecording
        | O::StopCallRecording
        | O::PauseCallRecording
        | O::ResumeCallRecording => Some(NotificationType::CallRecordingStateChange),
        O::AttachUserData | O::UpdateUserData | O::DeleteUserData | O::DeleteUserDataPair => {
            Some(NotificationType::AttachedDataChanged)
        }
        O::SendDtmf => Some(NotificationType::DtmfSent),
        O::MuteMonitoredUser | O::UnmuteMonitoredUser => {
            Some(NotificationType::MonitoredUserMutedStateChange)
        }
        _ => None,
    }
}

/// Waits up to `wait` for the next call event of the watch that `wanted` accepts; its call.
async fn next_event(
    watch: &mut CallWatch,
    wait: Duration,
    wanted: impl Fn(&CallEvent) -> bool,
) -> Option<CallSnapshot> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(deadline, watch.next()).await {
            Ok(Ok(Some(CallWatchEvent::Call(event)))) if wanted(&event) => {
                return Some(event.call.clone());
            }
            Ok(Ok(Some(_))) => {}
            _ => return None,
        }
    }
}

/// Waits up to `wait` for the next event of the watch whose call `wanted` accepts.
async fn next_call(
    watch: &mut CallWatch,
    wait: Duration,
    wanted: impl Fn(&CallSnapshot) -> bool,
) -> Option<CallSnapshot> {
    next_event(watch, wait, |event| wanted(&event.call)).await
}
