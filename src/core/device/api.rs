//! The device side of [`CallControl`]: device and voice-channel operations, device
//! lists and device watches.

use std::sync::Arc;

use crate::core::port::LineSettings;
use crate::core::{
    CallControl, CoreError, CoreResult, DeviceRequest, DeviceSnapshot, DeviceWatch, EventWatch,
    Principal, ResumePoint, User, WatchScope, device_ops, feature,
};

/// The start of a device watch.
#[derive(Debug)]
pub struct DeviceWatchStart {
    /// The last sequence included in the snapshot (or the resume point).
    pub sequence: u64,
    /// The epoch of the event log the sequences belong to.
    pub epoch: Arc<str>,
    /// The devices when the watch started; `None` when resuming.
    pub snapshot: Option<Vec<DeviceSnapshot>>,
    /// The subscription.
    pub watch: DeviceWatch,
}

impl CallControl {
    /// Carries out an operation on the user's device or voice channel; `device_id`, when
    /// given, must be the user's device. Returns the device after the operation.
    pub fn device_operation(
        &self,
        who: &Principal,
        device_id: Option<&str>,
        request: DeviceRequest,
    ) -> CoreResult<DeviceSnapshot> {
        self.embedded_only("a local device operation")?;
        let user = self.acting_user(who)?;
        let user = &*user;
        if !self
            .directory
            .has_feature(&user.contact_center, feature::VOICE)
        {
            return Err(CoreError::FeatureMissing {
                operation: request.operation().to_string(),
                feature: feature::VOICE,
                contact_center: user.contact_center.to_string(),
            });
        }
        if let Some(device) = device_id
            && device != &*user.device_id
        {
            return Err(CoreError::NotFound(format!("device {device} not found")));
        }
        request.validate()?;
        let wrap_up = match &request {
            DeviceRequest::AfterCallWork { wrap_up } => *wrap_up,
            _ => None,
        };
        let mut store = self.lock();
        match device_ops::execute(&mut store, &self.directory, user, request)? {
            device_ops::SwitchFollowUp::None => {}
            device_ops::SwitchFollowUp::Line => {
                let device = store.device(&user.name);
                let settings = LineSettings {
                    do_not_disturb: device.dnd,
                    forward_to: device.forward_to,
                };
                self.switch.configure_line(&user.phone_number, settings);
            }
            device_ops::SwitchFollowUp::WrapUp(generation) => {
                if let Some(after) = wrap_up {
                    self.switch.wrap_up(&user.name, generation, after);
                }
            }
        }
        store
            .device_view(&self.directory, &user.name)
            .ok_or_else(|| CoreError::Internal(format!("user {} has no device", user.name)))
    }

    /// Returns the user's devices (one per user).
    pub fn list_devices(&self, who: &Principal) -> CoreResult<Vec<DeviceSnapshot>> {
        let user = self.acting_user(who)?;
        let user = &*user;
        Ok(self
            .lock()
            .device_view(&self.directory, &user.name)
            .into_iter()
            .collect())
    }

    /// Starts a watch of device events: with `from` it resumes right after that sequence
    /// of that epoch (as [`CallControl::watch`] does), otherwise it starts with the devices
    /// in scope, taken atomically with the subscription.
    pub fn watch_devices(
        &self,
        scope: WatchScope,
        from: Option<ResumePoint>,
    ) -> CoreResult<DeviceWatchStart> {
        let store = self.lock();
        let from = store.log.resume_sequence(from.as_ref())?;
        let watch = DeviceWatch(store.log.watch_events(scope.clone(), from)?);
        let sequence = from.unwrap_or(store.log.last_sequence());
        let snapshot = from.is_none().then(|| {
            let mut users: Vec<Arc<User>> = self
                .directory
                .users()
                .into_iter()
                .filter(|u| match &scope {
                    WatchScope::User(name) => u.name == *name,
                    WatchScope::ContactCenter(cc) => u.contact_center == *cc,
                    WatchScope::All => true,
                })
                .collect();
            users.sort_by(|a, b| a.name.cmp(&b.name));
            users
                .into_iter()
                .filter_map(|u| store.device_view(&self.directory, &u.name))
                .collect()
        });
        Ok(DeviceWatchStart {
            sequence,
            epoch: store.log.epoch().clone(),
            snapshot,
            watch,
        })
    }

    /// Starts a watch of every event (calls and devices) in a scope, from now.
    pub fn watch_events(&self, scope: WatchScope) -> CoreResult<EventWatch> {
        self.watch_events_from(scope, None)
    }

    /// Starts a watch of every event in a scope; with `from` it resumes right after that
    /// sequence (failing as [`CallControl::watch`] does when the history no longer holds
    /// it), otherwise it starts from now. No snapshot is taken.
    pub fn watch_events_from(
        &self,
        scope: WatchScope,
        from: Option<u64>,
    ) -> CoreResult<EventWatch> {
        self.lock().log.watch_events(scope, from)
    }
}
