//! Bridge mode's mirror: what the upstream reports becomes events of the core's log.
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
//!
//! [`SharedEvents`]: crate::core::port::SharedEvents

use std::sync::Arc;
use std::time::SystemTime;

use crate::core::devices::{DeviceChange, DeviceEvent, DeviceSnapshot};
use crate::core::error_event::ErrorEvent;
use crate::core::events::{Applied, Event};
use crate::core::model::{CallEvent, CallSnapshot, CallState, NotificationType};
use crate::core::store::{Mirror, Store};
use crate::core::{CallControl, CoreResult};

impl CallControl {
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
    ///
    /// [`SharedEvents`]: crate::core::port::SharedEvents
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
    ///
    /// [`CoreError::HistoryGone`]: crate::core::CoreError::HistoryGone
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
