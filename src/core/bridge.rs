//! The operations every front calls (`submit_*`), and bridge mode's side of the core.
//!
//! The fronts never ask which port is active. `submit_dial`, `submit_call_operation` and
//! `submit_device_operation` run the embedded state machine in embedded mode (the
//! synchronous `dial`, `execute` and `device_operation`), and in bridge mode:
//!
//! 1. check locally only what cannot be out of date, in embedded mode's order: the acting
//!    user, the contact center's features (as the upstream listed them at sign-in) and the
//!    parameters. Whether the call exists and the operation is in its `capabilities` is
//!    left to the upstream: the mirror may lag behind a change made on the upstream
//!    directly (the other party answering), and refusing on a stale view would be wrong.
//!    The upstream's refusals keep their statusCode; HTTP 400 with statusCode 2 (the only
//!    400 left once parameters passed) reads as FAILED_PRECONDITION, as embedded mode
//!    answers an operation outside the capabilities;
//! 2. hand the operation to the [`Upstream`], which answers with the upstream's acceptance
//!    or its refusal (its `statusCode` carried unchanged to every front);
//! 3. wait, at most `upstream.reply_wait_ms` (2 s by default), for the upstream's
//!    notification that reflects the operation — the next event of that user about that
//!    call (a device event for device operations; a call the user did not have before for
//!    Dial) — and answer with the call in it, so a reply carries the upstream's call.
//!
//! At the bound: an operation on a call answers with the call as mirrored now (the upstream
//! accepted the operation, so failing the request would make clients retry something done);
//! a Dial, whose call the gateway cannot name before the upstream reports it, fails with
//! UNAVAILABLE saying the upstream accepted it and that the call will appear on the watch.
//!
//! What the upstream reports arrives through [`CallControl::mirror_call`],
//! [`CallControl::mirror_device`], [`CallControl::mirror_error`] and, after a reconnection,
//! [`CallControl::mirror_resync`]; each is one event in the same numbered log as embedded
//! mode's.
//!
//! Cluster mode ([`CallControl::with_shared_events`]; design in `crate::cluster`): the
//! `mirror_*` calls compute the same events against the mirror but hand them to the
//! [`SharedEvents`] port instead of numbering them here, one user's reports at a time: a
//! report's turn ends once the shared log's tail applied its entries here
//! ([`CallControl::apply_shared`]), so the next report of that user is diffed against them.
//! Every instance applies every entry with the log's sequence; a new log
//! ([`CallControl::reset_shared`]) empties the mirror and ends the watches. An operation
//! fails fast with UNAVAILABLE while the engine is unreachable, as while the upstream is;
//! its reply waits on the local store, which the tail feeds, so it works on any instance.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::FastMap;
use super::devices::{DeviceChange, DeviceEvent, DeviceSnapshot};
use super::error_event::ErrorEvent;
use super::events::{Applied, CallWatch, CallWatchEvent, DeviceWatch, Event, WatchScope};
use super::model::{CallEvent, CallId, CallSnapshot, CallState, NotificationType, Operation};
use super::operation::{CallOperation, DeviceRequest, DialRequest};
use super::port::{SharedEvents, Unplugged, Upstream};
use super::store::{Mirror, Store};
use super::{CallControl, CoreError, CoreLimits, CoreResult, Directory, Principal};

/// Default bound on the wait for the upstream's notification of an operation.
pub const DEFAULT_REPLY_WAIT: Duration = Duration::from_secs(2);

/// What a caller of [`CallControl::submit_dial`] wants back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply {
    /// The call or device as the upstream reported it after the operation (gRPC replies
    /// carry it): in bridge mode, wait for the report (bounded).
    Report,
    /// Only that the operation was accepted (the GWS JSON API answers `{"statusCode":0}`).
    /// Bridge mode still waits (bounded) for the report, so a client that reads after the
    /// reply sees its change as in embedded mode; at the bound it answers success anyway
    /// (the upstream accepted it) where [`Reply::Report`] fails a Dial.
    Acceptance,
}

/// Bridge mode's part of the core.
#[derive(Debug)]
pub(crate) struct Bridge {
    pub(crate) upstream: Arc<dyn Upstream>,
    pub(crate) reply_wait: Duration,
    /// Cluster mode: the shared log mirrored events go to.
    pub(crate) shared: Option<Shared>,
}

/// Cluster mode's part of the bridge: the shared log, and one writer turn per user.
#[derive(Debug)]
pub(crate) struct Shared {
    log: Arc<dyn SharedEvents>,
    /// One async lock per user that was ever mirrored here: the user's reports are turned
    /// into entries one at a time. Bounded by the users the upstream sessions are for
    /// (`upstream.max_sessions` at once), a few dozen bytes each.
    writers: std::sync::Mutex<FastMap<Arc<str>, Arc<tokio::sync::Mutex<()>>>>,
}

impl Shared {
    fn writer(&self, user: &Arc<str>) -> Arc<tokio::sync::Mutex<()>> {
        let mut writers = self
            .writers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        writers.entry(user.clone()).or_default().clone()
    }
}

impl CallControl {
    /// Builds the core of bridge mode: calls and devices mirror what `upstream` reports.
    pub fn bridged(
        directory: Directory,
        upstream: Arc<dyn Upstream>,
        limits: CoreLimits,
        reply_wait: Duration,
    ) -> Self {
        let mut core = Self::new(directory, Arc::new(Unplugged), limits);
        core.store = std::sync::Mutex::new(Store::mirrored(
            super::events::EventLog::new(limits.event_history, limits.watch_buffer),
            limits.ended_calls,
        ));
        core.bridge = Some(Bridge {
            upstream,
            reply_wait,
            shared: None,
        });
        core
    }

    /// Makes a bridge-mode core a cluster member: mirrored events go to `log`, and only
    /// entries applied from it ([`Self::apply_shared`]) reach the watchers.
    pub fn with_shared_events(mut self, log: Arc<dyn SharedEvents>) -> Self {
        if let Some(bridge) = self.bridge.as_mut() {
            bridge.shared = Some(Shared {
                log,
                writers: std::sync::Mutex::default(),
            });
        }
        self
    }

    /// Returns the upstream in bridge mode.
    pub fn upstream(&self) -> Option<&Arc<dyn Upstream>> {
        self.bridge.as_ref().map(|b| &b.upstream)
    }

    /// Refuses an embedded-only request in bridge mode.
    pub(crate) fn embedded_only(&self, what: &str) -> CoreResult<()> {
        match &self.bridge {
            None => Ok(()),
            Some(bridge) => Err(CoreError::Precondition(format!(
                "{what} needs the embedded switch; this gateway bridges to {}",
                bridge.upstream.name()
            ))),
        }
    }

    fn upstream_ready(&self) -> CoreResult<Option<&Bridge>> {
        // The engine first: the upstream port's availability includes the engine's (for
        // health), and the message should name what is down.
        match &self.bridge {
            Some(Bridge {
                shared: Some(shared),
                ..
            }) if !shared.log.is_available() => Err(CoreError::Unavailable(
                "voice service is not available at this time: the cluster engine is unreachable"
                    .into(),
            )),
            Some(bridge) if !bridge.upstream.is_available() => Err(CoreError::Unavailable(
                "voice service is not available at this time: the upstream is unreachable".into(),
            )),
            other => Ok(other.as_ref()),
        }
    }

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

    /// Mirrors a call as the upstream reported it to `call.user` (bridge mode; ignored in
    /// embedded mode): one event with the upstream's notification type, unless it is a
    /// `StatusChange` that changes nothing mirrored. That one was already published: a
    /// re-read (after a reconnection, or by a new owner in cluster mode) runs after the
    /// subscription so as to miss nothing, and a change made in between is both in what it
    /// read and notified afterwards; publishing it twice would show watchers a duplicate.
    pub async fn mirror_call(
        &self,
        notification: NotificationType,
        call: CallSnapshot,
        digits: Option<String>,
    ) -> CoreResult<()> {
        let user = call.user.name.clone();
        self.mirror_with(user, |mirror| {
            let known = mirror
                .call(&call.user.name, &call.id)
                .is_some_and(|old| old.same_as(&call));
            if known && notification == NotificationType::StatusChange && digits.is_none() {
                return Vec::new();
            }
            vec![Event::Call(Arc::new(CallEvent {
                sequence: 0,
                notification,
                call,
                digits,
                committed_at: SystemTime::now(),
            }))]
        })
        .await
    }

    /// Mirrors an asynchronous error the upstream reported to `error.user` (bridge mode;
    /// ignored in embedded mode): one [`ErrorEvent`], numbered like the call events. Its
    /// call is not mirrored: the upstream reports the call's own changes separately.
    pub async fn mirror_error(&self, mut error: ErrorEvent) -> CoreResult<()> {
        let user = error.user.name.clone();
        error.committed_at = SystemTime::now();
        self.mirror_with(user, |_| vec![Event::Error(Arc::new(error))])
            .await
    }

    /// Mirrors a device as the upstream reported it (bridge mode): one event, when it
    /// differs from what is mirrored, classed by what changed (the agent state or session,
    /// do-not-disturb, or the rest), which decides the CometD channels it goes out on.
    pub async fn mirror_device(&self, device: DeviceSnapshot) -> CoreResult<()> {
        let user = device.user.name.clone();
        self.mirror_with(user, |mirror| {
            device_change(mirror, device).into_iter().collect()
        })
        .await
    }

    /// Replaces what is mirrored of one user with the upstream's own listing, read after a
    /// reconnection (notifications may have been lost meanwhile): a call that vanished is
    /// reported `Released`, a call that is new or differs is reported with a
    /// `StatusChange`, an unchanged one not at all; likewise the device. A watcher that
    /// stayed connected thus ends with the upstream's truth.
    pub async fn mirror_resync(
        &self,
        user: &str,
        calls: Vec<CallSnapshot>,
        device: Option<DeviceSnapshot>,
    ) -> CoreResult<()> {
        self.mirror_with(user.into(), |mirror| {
            let mut changes = Vec::new();
            for old in mirror.active(user) {
                if !calls.iter().any(|c| c.id == old.id) {
                    let mut released = old;
                    released.state = CallState::Released;
                    released.capabilities.clear();
                    changes.push(released);
                }
            }
            for call in calls {
                if mirror
                    .call(user, &call.id)
                    .is_none_or(|old| !old.same_as(&call))
                {
                    changes.push(call);
                }
            }
            let committed_at = SystemTime::now();
            let mut events: Vec<Event> = changes
                .into_iter()
                .map(|call| {
                    Event::Call(Arc::new(CallEvent {
                        sequence: 0,
                        notification: NotificationType::StatusChange,
                        call,
                        digits: None,
                        committed_at,
                    }))
                })
                .collect();
            events.extend(device.and_then(|d| device_change(mirror, d)));
            events
        })
        .await
    }

    /// Turns one report into events computed against the mirror and publishes them:
    /// standalone, appended to this instance's log (numbered here) under one store lock
    /// hold; in cluster mode, appended to the shared log (see [`SharedEvents`]), with the
    /// user's reports handled one at a time: the next report's diff is computed only once
    /// this one's entries came back from the tail into the mirror (the module docs).
    async fn mirror_with(
        &self,
        user: Arc<str>,
        compute: impl FnOnce(&Mirror) -> Vec<Event>,
    ) -> CoreResult<()> {
        let Some(shared) = self.bridge.as_ref().and_then(|b| b.shared.as_ref()) else {
            let mut store = self.lock();
            let Some(mirror) = store.mirror.as_ref() else {
                return Ok(());
            };
            let events = compute(mirror);
            for event in events {
                store.publish_mirrored(event, None);
            }
            return Ok(());
        };
        let writer = shared.writer(&user);
        let _turn = writer.lock().await;
        let events = {
            let store = self.lock();
            let Some(mirror) = store.mirror.as_ref() else {
                return Ok(());
            };
            compute(mirror)
        };
        if events.is_empty() {
            return Ok(());
        }
        shared.log.publish(user, events).await
    }

    /// Applies entries of the shared log (cluster mode), numbered by it, in order: each is
    /// put into the mirror and published to the history and the watchers. Entries already
    /// applied are skipped. [`SharedApply::Gap`] when an entry is beyond the next sequence,
    /// [`SharedApply::OtherEpoch`] when the log here is another epoch's: nothing of that
    /// entry or after is applied, and the caller starts over ([`Self::reset_shared`]).
    pub fn apply_shared(&self, epoch: &str, events: Vec<Event>) -> SharedApply {
        let mut store = self.lock();
        if **store.log.epoch() != *epoch {
            return SharedApply::OtherEpoch;
        }
        for event in events {
            let sequence = event.sequence();
            match store.publish_mirrored(event, Some(sequence)) {
                Applied::New | Applied::Old => {}
                Applied::Gap { expected } => return SharedApply::Gap { expected },
            }
        }
        SharedApply::Applied
    }

    /// Starts the log here over as `epoch`, its next event `last + 1`, with an empty mirror
    /// (cluster mode: the shared log is new, or was trimmed past this instance). Every
    /// open watch ends with [`crate::core::WatchError::EpochChanged`] and its client
    /// resyncs.
    pub fn reset_shared(&self, epoch: &str, last: u64) {
        let mut store = self.lock();
        store.reset_mirror();
        store.log.reset(epoch.into(), last);
    }

    /// Returns the epoch and the last sequence of the log here.
    pub fn log_position(&self) -> (Arc<str>, u64) {
        let store = self.lock();
        (store.log.epoch().clone(), store.log.last_sequence())
    }

    /// Returns the epoch and last sequence of the log here, with `user`'s events after
    /// sequence `after` that its history holds (a moved CometD session's replay):
    /// [`CoreError::HistoryGone`] when the history no longer reaches back to `after + 1`.
    pub fn user_events_after(
        &self,
        user: &str,
        after: u64,
    ) -> CoreResult<(Arc<str>, u64, Vec<Event>)> {
        let store = self.lock();
        let events = store.log.user_events_after(user, after)?;
        Ok((store.log.epoch().clone(), store.log.last_sequence(), events))
    }
}

/// What [`CallControl::apply_shared`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SharedApply {
    /// Every entry is applied.
    Applied,
    /// An entry was beyond the next sequence, `expected`.
    Gap {
        /// The sequence the log here expected.
        expected: u64,
    },
    /// The log here is another epoch's.
    OtherEpoch,
}

/// The event a reported device makes: none when the mirror has it as it is.
fn device_change(mirror: &Mirror, device: DeviceSnapshot) -> Option<Event> {
    let old = mirror.device(&device.user.name);
    if old == Some(&device) {
        return None;
    }
    let change = match old {
        Some(old) if old.do_not_disturb != device.do_not_disturb => DeviceChange::DoNotDisturb,
        Some(old)
            if old.agent_state == device.agent_state
                && old.work_mode == device.work_mode
                && old.active == device.active =>
        {
            DeviceChange::Device
        }
        _ => DeviceChange::AgentState,
    };
    Some(Event::Device(Arc::new(DeviceEvent {
        sequence: 0,
        change,
        device,
        committed_at: SystemTime::now(),
    })))
}

impl Store {
    /// Puts a mirrored event's call or device into the mirror and publishes the event:
    /// numbered here (`None`), or with the shared log's `sequence`.
    fn publish_mirrored(&mut self, event: Event, sequence: Option<u64>) -> Applied {
        if sequence.is_some_and(|s| s <= self.log.last_sequence()) {
            return Applied::Old;
        }
        if let Some(s) = sequence
            && s > self.log.last_sequence() + 1
        {
            return Applied::Gap {
                expected: self.log.last_sequence() + 1,
            };
        }
        if let Some(mirror) = self.mirror.as_mut() {
            match &event {
                Event::Call(e) => {
                    mirror.put_call(e.call.clone());
                }
                Event::Device(e) => {
                    mirror.put_device(e.device.clone());
                }
                Event::Error(_) => {}
            }
        }
        if sequence.is_some() {
            return self.log.apply(event);
        }
        match event {
            Event::Call(e) => {
                self.log.append(Arc::unwrap_or_clone(e));
            }
            Event::Device(e) => {
                self.log.append_device(Arc::unwrap_or_clone(e));
            }
            Event::Error(e) => {
                self.log.append_error(Arc::unwrap_or_clone(e));
            }
        }
        Applied::New
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
