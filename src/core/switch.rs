//! The core's side of the embedded switch: what the simulator injects (an inbound call,
//! an outside party's hang-up), what the switch reports ([`SwitchEvent`]), and what a dial
//! or an operation asks of it (routing a destination, an outside leg), its refusals read
//! as [`CoreError`]s.

use crate::core::port::{self, SwitchError, SwitchEvent};
use crate::core::store::{self, Store};
use crate::core::{
    CallControl, CallId, CallSnapshot, CoreError, CoreResult, Destination, Operation, Principal,
    User, UserData, device_ops, error_event, ops, validate_number,
};

impl CallControl {
    /// Makes an external number call a DN (simulator, admin only); returns the ringing call
    /// as the called user sees it.
    pub fn inbound_call(
        &self,
        who: &Principal,
        from: &str,
        to: &str,
        queue: Option<String>,
        user_data: UserData,
    ) -> CoreResult<CallSnapshot> {
        self.embedded_only("the simulator")?;
        if !who.admin {
            return Err(CoreError::PermissionDenied(
                "only admins may inject inbound calls".into(),
            ));
        }
        validate_number("from", from)?;
        validate_number("to", to)?;
        let user = self
            .directory
            .user_by_number(to)
            .ok_or_else(|| CoreError::NotFound(format!("phone number {to} not found")))?;
        if user.contact_center != who.contact_center {
            return Err(CoreError::PermissionDenied(format!(
                "phone number {to} is not in contact center {}",
                who.contact_center
            )));
        }
        let mut store = self.lock();
        let id = ops::inbound(&mut store, &self.directory, from, &user, queue, user_data)?;
        store.view_of(&self.directory, &id, &user.name)
    }

    /// Makes an outside party hang up (simulator, admin only); returns the call as the
    /// first remaining user on it sees it.
    pub fn external_hangup(
        &self,
        who: &Principal,
        call_id: &CallId,
        number: &str,
    ) -> CoreResult<CallSnapshot> {
        self.embedded_only("the simulator")?;
        if !who.admin {
            return Err(CoreError::PermissionDenied(
                "only admins may drive the simulator".into(),
            ));
        }
        validate_number("number", number)?;
        let mut store = self.lock();
        let agents = store.call(call_id)?.agents();
        let in_scope = agents
            .iter()
            .filter_map(|name| self.directory.user(name))
            .find(|u| u.contact_center == who.contact_center)
            .ok_or_else(|| CoreError::CallNotFound(call_id.clone()))?;
        ops::remote_released(&mut store, &self.directory, call_id, number)?;
        store.view_of(&self.directory, call_id, &in_scope.name)
    }

    /// Applies something the switch reported.
    pub fn apply_switch_event(&self, event: SwitchEvent) {
        let mut store = self.lock();
        let result = match &event {
            SwitchEvent::Answered { call, number } => {
                ops::remote_answered(&mut store, &self.directory, call, number)
            }
            SwitchEvent::Released { call, number } => {
                ops::remote_released(&mut store, &self.directory, call, number)
            }
            SwitchEvent::Failed {
                call,
                number,
                error,
            } => ops::remote_failed(
                &mut store,
                &self.directory,
                call,
                number,
                switch_error(error.clone()),
            ),
            SwitchEvent::WrapUpEnded { user, generation } => device_ops::wrap_up_ended(
                &mut store,
                &self.directory,
                user,
                *generation,
                self.after_call_work_state,
            ),
        };
        if let Err(error) = result {
            tracing::debug!(?event, %error, "switch event for a call that moved on");
        }
    }

    /// Hands a new leg to an outside number to the switch, first noting on the leg who asked
    /// for it with which operation, so that the switch's later [`SwitchEvent::Failed`]
    /// reaches that user as an [`ErrorEvent`].
    ///
    /// [`ErrorEvent`]: crate::core::ErrorEvent
    pub(super) fn external_leg(
        &self,
        store: &mut Store,
        call: &CallId,
        number: &str,
        user: &User,
        operation: Operation,
    ) {
        store.note_leg_request(
            call,
            number,
            error_event::LegRequest {
                user: user.name.clone(),
                operation,
            },
        );
        self.switch.external_leg(call, number);
    }

    pub(super) fn route(
        &self,
        user: &User,
        destination: &Destination,
    ) -> CoreResult<store::Endpoint> {
        match self
            .switch
            .route(&user.phone_number, destination)
            .map_err(switch_error)?
        {
            port::Route::External(number) => Ok(store::Endpoint::External(number)),
            port::Route::Internal(number) => {
                let target = self.directory.user_by_number(&number).ok_or_else(|| {
                    CoreError::NotFound(format!("phone number {number} not found"))
                })?;
                if target.name == user.name {
                    return Err(CoreError::invalid(
                        "destination",
                        "a user cannot call their own number",
                    ));
                }
                Ok(store::Endpoint::Agent(target.name.clone()))
            }
        }
    }
}

pub(super) fn switch_error(error: SwitchError) -> CoreError {
    match error {
        SwitchError::Unavailable(_) => CoreError::Unavailable(error.to_string()),
        SwitchError::Busy(_) => CoreError::InUse(error.to_string()),
        SwitchError::Refused(reason) => CoreError::invalid("destination", reason),
        SwitchError::Unreachable(_) => CoreError::NotFound(error.to_string()),
    }
}
