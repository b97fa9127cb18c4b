//! The store of bridge mode: calls and devices exactly as the upstream GWS reported them to
//! each user, instead of the embedded state machine's calls. Reads (GetCall, ListCalls,
//! watch snapshots, devices) come from here; every change arrives as a report and becomes
//! one event in the same log as in embedded mode, so watchers cannot tell the modes apart.

use std::collections::VecDeque;
use std::sync::Arc;

use super::super::FastMap;
use super::super::devices::DeviceSnapshot;
use super::super::model::{CallId, CallSnapshot, CallState};

/// The mirrored calls and devices.
#[derive(Debug, Default)]
pub(crate) struct Mirror {
    /// Each user's calls that are not released, oldest first.
    calls: FastMap<Arc<str>, Vec<CallSnapshot>>,
    /// Released calls kept for GetCall, oldest first, at most `ended_limit`.
    ended: VecDeque<CallSnapshot>,
    ended_limit: usize,
    /// Each user's device.
    devices: FastMap<Arc<str>, DeviceSnapshot>,
}

impl Mirror {
    pub(crate) fn new(ended_limit: usize) -> Self {
        Self {
            ended_limit,
            ..Self::default()
        }
    }

    /// Returns the user's view of a call, active or recently released.
    pub(crate) fn call(&self, user: &str, id: &CallId) -> Option<&CallSnapshot> {
        self.calls
            .get(user)
            .and_then(|calls| calls.iter().find(|c| c.id == *id))
            .or_else(|| {
                self.ended
                    .iter()
                    .rev()
                    .find(|c| c.id == *id && &*c.user.name == user)
            })
    }

    /// Returns the user's calls that are not released, oldest first.
    pub(crate) fn active(&self, user: &str) -> Vec<CallSnapshot> {
        self.calls.get(user).cloned().unwrap_or_default()
    }

    /// Returns the users that have active calls.
    pub(crate) fn users(&self) -> impl Iterator<Item = &Arc<str>> {
        self.calls.keys()
    }

    /// Stores a call as reported; returns the view it replaced, if any.
    pub(crate) fn put_call(&mut self, call: CallSnapshot) -> Option<CallSnapshot> {
        let user = call.user.name.clone();
        let calls = self.calls.entry(user.clone()).or_default();
        let index = calls.iter().position(|c| c.id == call.id);
        let before = index.map(|i| calls.remove(i));
        if call.state == CallState::Released {
            if calls.is_empty() {
                self.calls.remove(&user);
            }
            self.ended.push_back(call);
            while self.ended.len() > self.ended_limit {
                self.ended.pop_front();
            }
        } else {
            match index {
                Some(i) => calls.insert(i, call),
                None => calls.push(call),
            }
        }
        before
    }

    /// Returns the user's device as reported.
    pub(crate) fn device(&self, user: &str) -> Option<&DeviceSnapshot> {
        self.devices.get(user)
    }

    /// Stores a device as reported; returns whether it changed.
    pub(crate) fn put_device(&mut self, device: DeviceSnapshot) -> bool {
        let user = device.user.name.clone();
        let changed = self.devices.get(&user) != Some(&device);
        self.devices.insert(user, device);
        changed
    }
}
