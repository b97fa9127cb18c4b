//! The product: users, contact centers and features; calls with the GWS state machine,
//! capabilities, user data and recording states; a numbered event stream in commit order
//! with a bounded history for resume.
//!
//! [`CallControl`] is the one entry point both front-ends call. It never imports tonic,
//! prost, axum, http or serde_json: the front-ends convert their wire types into the
//! requests of [`CallOperation`], [`DialRequest`] and [`DeviceRequest`] and render
//! [`CallSnapshot`]s, [`CallEvent`]s and [`ErrorEvent`]s (operations that failed after
//! they were accepted) back.
//!
//! Locking: one `std::sync::Mutex` guards the store. Every operation is short and never
//! awaits under it; events are appended to the log under the same lock, so the sequence
//! order is the commit order. Watchers are woken after the lock is released
//! (`StoreGuard`).

/// The hash map of the core's indexes (calls, users, contact centers, watchers): foldhash,
/// seeded per process, instead of SipHash. Every request hashes several ids and names under
/// the store lock; the keys are ids the gateway made or names from its configuration.
pub(crate) type FastMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

mod bridge;
mod call;
pub mod country;
mod device;
mod directory;
mod error;
mod error_event;
mod events;
pub mod idempotency;
mod model;
mod operation;
pub mod port;
mod store;
mod switch;

use std::sync::{Arc, Mutex, MutexGuard};

pub use bridge::{DEFAULT_REPLY_WAIT, Reply, SharedApply};
pub use capabilities::{CapabilityInput, ConsultKind, ConsultRole, capabilities};
pub use device_api::DeviceWatchStart;
pub use devices::{
    AgentState, DeviceChange, DeviceEvent, DeviceOperation, DeviceSnapshot, MonitorKind,
    MonitorMode, MonitorScope, Monitoring, WorkMode,
};
pub use directory::{
    ContactCenter, Directory, Principal, Role, Secret, ServiceAccount, User, constant_time_eq,
    invalid_password, invalid_token, stable_id, user_principal, voice_environment_id,
};
pub use error::{CoreError, CoreResult, ErrorKind};
pub use error_event::ErrorEvent;
pub use events::{
    CallWatch, CallWatchEvent, DeviceWatch, Event, EventWatch, ResumePoint, WatchError, WatchScope,
};
pub use model::{
    CallEvent, CallId, CallSnapshot, CallState, CallType, NotificationType, Operation, Participant,
    RecordingState, UserData, UserDataValue, UserRef, feature,
};
pub use operation::{
    CallOperation, DEFAULT_DISPOSITION_KEY, Destination, DialRequest, validate_number,
};
pub use operation::{DeviceRequest, MonitorTarget};

use call::{capabilities, ops};
use device::{api as device_api, model as devices, ops as device_ops};
use events::EventLog;
use idempotency::IdempotencyStore;
use port::Switch;
use store::Store;
use switch::switch_error;

/// Default number of events kept for resume.
pub const DEFAULT_EVENT_HISTORY: usize = 10_000;
/// Default number of events a watcher may fall behind before it is cut off.
pub const DEFAULT_WATCH_BUFFER: usize = 4_096;
/// Default number of ended calls kept for GetCall and SetCallDisposition.
pub const DEFAULT_ENDED_CALLS: usize = 1_000;

/// Sizes of the core's bounded buffers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CoreLimits {
    /// Events kept for resume ([`DEFAULT_EVENT_HISTORY`]).
    pub event_history: usize,
    /// Events a watcher may fall behind ([`DEFAULT_WATCH_BUFFER`]).
    pub watch_buffer: usize,
    /// Ended calls kept ([`DEFAULT_ENDED_CALLS`]).
    pub ended_calls: usize,
    /// The agent state an after-call work with a wrap-up time returns to (Ready).
    pub after_call_work_state: AgentState,
    /// How long a reply is kept for idempotent retries
    /// ([`idempotency::DEFAULT_IDEMPOTENCY_TTL`]).
    pub idempotency_ttl: std::time::Duration,
    /// Idempotency keys held at once ([`idempotency::DEFAULT_IDEMPOTENCY_KEYS`]).
    pub idempotency_keys: usize,
}

impl Default for CoreLimits {
    fn default() -> Self {
        Self {
            event_history: DEFAULT_EVENT_HISTORY,
            watch_buffer: DEFAULT_WATCH_BUFFER,
            ended_calls: DEFAULT_ENDED_CALLS,
            after_call_work_state: AgentState::Ready,
            idempotency_ttl: idempotency::DEFAULT_IDEMPOTENCY_TTL,
            idempotency_keys: idempotency::DEFAULT_IDEMPOTENCY_KEYS,
        }
    }
}

/// The start of a watch: the snapshot (unless resuming) and the live subscription.
#[derive(Debug)]
pub struct WatchStart {
    /// The last sequence included in the snapshot (or the resume point).
    pub sequence: u64,
    /// The epoch of the event log the sequences belong to.
    pub epoch: Arc<str>,
    /// The active calls when the watch started; `None` when resuming.
    pub snapshot: Option<Vec<CallSnapshot>>,
    /// The subscription.
    pub watch: CallWatch,
}

/// The call-control core shared by every front-end.
#[derive(Debug)]
pub struct CallControl {
    directory: Directory,
    switch: Arc<dyn Switch>,
    store: Mutex<Store>,
    after_call_work_state: AgentState,
    /// Bridge mode: the upstream that owns the calls; `None` in embedded mode.
    bridge: Option<bridge::Bridge>,
    /// The replies kept for idempotent retries, shared by both fronts.
    replies: Arc<IdempotencyStore>,
}

/// The store lock, held; on release it wakes the watchers whose mailboxes the commits
/// under it filled, so no wake-up (which may wake a sleeping runtime worker) happens while
/// the lock is held.
struct StoreGuard<'a>(Option<MutexGuard<'a, Store>>);

impl std::ops::Deref for StoreGuard<'_> {
    type Target = Store;

    fn deref(&self) -> &Store {
        self.0.as_ref().expect("held until dropped")
    }
}

impl std::ops::DerefMut for StoreGuard<'_> {
    fn deref_mut(&mut self) -> &mut Store {
        self.0.as_mut().expect("held until dropped")
    }
}

impl Drop for StoreGuard<'_> {
    fn drop(&mut self) {
        if let Some(mut store) = self.0.take() {
            let wakes = store.log.take_wakes();
            drop(store);
            wakes.wake();
        }
    }
}

impl CallControl {
    /// Builds the core over a directory and a switch.
    pub fn new(directory: Directory, switch: Arc<dyn Switch>, limits: CoreLimits) -> Self {
        let log = EventLog::new(limits.event_history, limits.watch_buffer);
        Self {
            directory,
            switch,
            store: Mutex::new(Store::new(log, limits.ended_calls)),
            after_call_work_state: limits.after_call_work_state,
            bridge: None,
            replies: Arc::new(IdempotencyStore::new(
                limits.idempotency_ttl,
                limits.idempotency_keys,
            )),
        }
    }

    /// Returns the replies kept for idempotent retries (see [`idempotency`]).
    pub fn replies(&self) -> &Arc<IdempotencyStore> {
        &self.replies
    }

    /// Returns the directory of users and contact centers.
    pub fn directory(&self) -> &Directory {
        &self.directory
    }

    /// Returns the switch's name.
    pub fn switch_name(&self) -> &'static str {
        self.switch.name()
    }

    fn lock(&self) -> StoreGuard<'_> {
        // A panic under the lock leaves the store as the last completed step made it;
        // operations check before they change, so the data is still consistent.
        StoreGuard(Some(
            self.store
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
        ))
    }

    /// Returns the user a request acts as.
    pub fn acting_user(&self, who: &Principal) -> CoreResult<Arc<User>> {
        let name = who
            .user
            .as_deref()
            .ok_or(CoreError::MissingParameter("x-voice-user"))?;
        self.directory
            .user(name)
            .ok_or_else(|| CoreError::NotFound(format!("user {name} not found")))
    }

    fn require_features(&self, user: &User, operation: Operation) -> CoreResult<()> {
        let cc = &user.contact_center;
        let needed = std::iter::once(feature::VOICE).chain(operation.extra_feature());
        for feature in needed {
            if !self.directory.has_feature(cc, feature) {
                return Err(CoreError::FeatureMissing {
                    operation: operation.to_string(),
                    feature,
                    contact_center: cc.to_string(),
                });
            }
        }
        Ok(())
    }

    /// Places a call from the user's device; returns the new call as the caller sees it.
    pub fn dial(&self, who: &Principal, request: DialRequest) -> CoreResult<CallSnapshot> {
        self.embedded_only("a local Dial")?;
        let user = self.acting_user(who)?;
        let user = &*user;
        self.require_features(user, Operation::Dial)?;
        request.validate()?;
        if let Some(device) = request.device_id.as_deref()
            && device != &*user.device_id
        {
            return Err(CoreError::NotFound(format!("device {device} not found")));
        }
        let target = self.route(user, &request.destination)?;
        let mut store = self.lock();
        if !store.device(&user.name).active {
            return Err(CoreError::Precondition(format!(
                "the device of user {} is inactive: StartContactCenterSession first",
                user.name
            )));
        }
        let id = ops::dial(
            &mut store,
            &self.directory,
            user,
            target.clone(),
            &request.destination,
        )?;
        if let store::Endpoint::External(number) = &target {
            self.external_leg(&mut store, &id, number, user, Operation::Dial);
        }
        store.view_of(&self.directory, &id, &user.name)
    }

    /// Carries out an operation on a call; returns the call as the user sees it after.
    pub fn execute(
        &self,
        who: &Principal,
        call_id: &CallId,
        op: CallOperation,
    ) -> CoreResult<CallSnapshot> {
        self.embedded_only("a local call operation")?;
        let user = self.acting_user(who)?;
        let user = &*user;
        let operation = op.operation();
        self.require_features(user, operation)?;
        op.validate()?;
        let target = match &op {
            CallOperation::SingleStepTransfer(d)
            | CallOperation::InitiateTransfer(d)
            | CallOperation::InitiateConference(d)
            | CallOperation::SingleStepConference(d) => Some(self.route(user, d)?),
            _ => None,
        };
        let mut store = self.lock();
        let view = store.view_of(&self.directory, call_id, &user.name)?;
        if operation != Operation::SetCallDisposition && !view.capabilities.contains(&operation) {
            return Err(CoreError::NotCapable {
                call_id: call_id.clone(),
                operation,
                state: view.state,
            });
        }
        self.switch
            .submit(call_id, operation)
            .map_err(switch_error)?;
        let committed = store.log.last_sequence();
        // The capability check's view is the acting user's view before the operation:
        // nothing changed since, under this same lock hold.
        store.prime(view);
        let created = ops::execute(
            &mut store,
            &self.directory,
            user,
            call_id,
            op,
            target.clone(),
        );
        store.unprime();
        let created = created?;
        if let Some(store::Endpoint::External(number)) = &target {
            let leg_call = created.as_ref().unwrap_or(call_id);
            self.external_leg(&mut store, leg_call, number, user, operation);
        }
        match store.log.latest_view(committed, call_id, &user.name) {
            Some(view) => Ok(view),
            None => store.view_of(&self.directory, call_id, &user.name),
        }
    }

    /// Returns one call as the user sees it.
    pub fn get_call(&self, who: &Principal, call_id: &CallId) -> CoreResult<CallSnapshot> {
        let user = self.acting_user(who)?;
        let user = &*user;
        self.lock().view_of(&self.directory, call_id, &user.name)
    }

    /// Returns the user's calls that are not released, oldest first.
    pub fn list_calls(&self, who: &Principal) -> CoreResult<Vec<CallSnapshot>> {
        let user = self.acting_user(who)?;
        let user = &*user;
        Ok(self.lock().active_views(&self.directory, &user.name))
    }

    /// Returns the scope a principal may watch: its user, or with `contact_center` (service
    /// accounts naming no user) every user of its contact center.
    pub fn watch_scope(&self, who: &Principal, contact_center: bool) -> CoreResult<WatchScope> {
        match (&who.user, contact_center) {
            (Some(user), false) => Ok(WatchScope::User(user.clone())),
            (None, true) => Ok(WatchScope::ContactCenter(who.contact_center.clone())),
            (None, false) => Err(CoreError::MissingParameter("x-voice-user")),
            (Some(_), true) if who.service_account.is_some() => Err(CoreError::invalid(
                "contact_center",
                "a watch of the contact center names no user",
            )),
            (Some(_), true) => Err(CoreError::PermissionDenied(
                "only service accounts may watch a whole contact center".into(),
            )),
        }
    }

    /// Starts a watch: with `from` it resumes right after that sequence of that epoch
    /// ([`CoreError::EpochMismatch`] for another epoch), otherwise it starts with a
    /// snapshot taken atomically with the subscription.
    pub fn watch(&self, scope: WatchScope, from: Option<ResumePoint>) -> CoreResult<WatchStart> {
        let store = self.lock();
        let from = store.log.resume_sequence(from.as_ref())?;
        let watch = store.log.watch(scope.clone(), from)?;
        let sequence = from.unwrap_or(store.log.last_sequence());
        let snapshot = from.is_none().then(|| self.snapshot(&store, &scope));
        Ok(WatchStart {
            sequence,
            epoch: store.log.epoch().clone(),
            snapshot,
            watch,
        })
    }

    fn snapshot(&self, store: &Store, scope: &WatchScope) -> Vec<CallSnapshot> {
        let users: Vec<Arc<str>> = match scope {
            WatchScope::User(user) => vec![user.clone()],
            WatchScope::ContactCenter(cc) => {
                let mut users: Vec<Arc<str>> = store
                    .users_with_calls()
                    .into_iter()
                    .filter(|u| {
                        self.directory
                            .user(u)
                            .is_some_and(|u| u.contact_center == *cc)
                    })
                    .collect();
                users.sort();
                users
            }
            WatchScope::All => {
                let mut users: Vec<Arc<str>> = store.users_with_calls();
                users.sort();
                users
            }
        };
        users
            .iter()
            .flat_map(|u| store.active_views(&self.directory, u))
            .collect()
    }

    /// Returns the last committed event sequence.
    pub fn last_sequence(&self) -> u64 {
        self.lock().log.last_sequence()
    }
}

#[cfg(test)]
mod error_event_tests;
#[cfg(test)]
mod release_tests;
#[cfg(test)]
mod tests;
