//! The device side of [`CallControl`]: device and voice-channel operations, device
//! lists and device watches.

use std::sync::Arc;

use crate::core::port::LineSettings;
use crate::core::{
    CallControl, CoreError, CoreResult, DeviceRequest, DeviceSnapshot, DeviceWatch, EventWatch,
    Principal, ResumePoint, Role, User, WatchScope, device_ops, feature,
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
        self.run_device_request(user, request)
    }

    /// Carries out an agent-state operation on an agent's voice channel for a supervisor
    /// (GWS `POST /api/v2/users/{userId}/channels/voice`, spec §6.5): `Ready`, `NotReady`,
    /// `AfterCallWork`, `AuxWork`, or `EndContactCenterSession` to log the agent out. The
    /// caller must be a supervisor (403/5) of a contact center with
    /// `api-supervisor-agent-control` (403/3); the agent, named by user id, user name or DN,
    /// must be in the same contact center, else it is not found (404/6, as GWS hides other
    /// contact centers). Returns the agent's device; the agent is told as for its own
    /// change. A refusal changes nothing.
    pub fn control_agent(
        &self,
        who: &Principal,
        agent: &str,
        request: DeviceRequest,
    ) -> CoreResult<DeviceSnapshot> {
        use crate::core::DeviceOperation as D;
        self.embedded_only("a supervisor's agent-state control")?;
        let supervisor = self.acting_user(who)?;
        let operation = request.operation();
        if !self.directory.has_feature(
            &supervisor.contact_center,
            feature::SUPERVISOR_AGENT_CONTROL,
        ) {
            return Err(CoreError::FeatureMissing {
                operation: operation.to_string(),
                feature: feature::SUPERVISOR_AGENT_CONTROL,
                contact_center: supervisor.contact_center.to_string(),
            });
        }
        if !supervisor.roles.contains(&Role::Supervisor) {
            return Err(CoreError::PermissionDenied(format!(
                "user {} is not a supervisor",
                supervisor.name
            )));
        }
        let target = self
            .directory
            .users()
            .into_iter()
            .find(|u| u.id == agent || *u.name == *agent || *u.phone_number == *agent)
            .filter(|u| u.contact_center == supervisor.contact_center)
            .ok_or_else(|| CoreError::NotFound(format!("user {agent} not found")))?;
        if !matches!(
            operation,
            D::Ready | D::NotReady | D::AfterCallWork | D::AuxWork | D::EndContactCenterSession
        ) {
            return Err(CoreError::invalid(
                "operationName",
                format!("{operation} is not an agent-state operation"),
            ));
        }
        self.run_device_request(&target, request)
    }

    /// Validates and carries out a device request for `user`, then tells the switch what
    /// follows from it; returns the user's device.
    fn run_device_request(
        &self,
        user: &User,
        request: DeviceRequest,
    ) -> CoreResult<DeviceSnapshot> {
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
