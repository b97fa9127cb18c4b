//! The embedded switch: a small PBX inside the process, so the gateway runs with no other
//! system. Configured DNs ring their users; any other number reaches a simulated external
//! party that answers after a configurable delay.
//!
//! The simulated outside world can also fail a leg, as a real network does after it took
//! the call: numbers set as busy answer busy, numbers set as unreachable cannot be reached
//! ([`EmbeddedSwitch::with_failing_numbers`], the `switch.busy_numbers` and
//! `switch.unreachable_numbers` keys). The switch takes such a leg like any other and
//! reports [`SwitchEvent::Failed`] after the same delay as an answer, so the operation that
//! created the leg has been accepted by then; the core turns the failure into an
//! asynchronous error for the user who asked (`crate::core::ErrorEvent`). Numbers match
//! exactly, as dialed (after forwarding).

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::mpsc;

use crate::core::port::{LineSettings, Route, Switch, SwitchError, SwitchEvent};
use crate::core::{CallId, Destination, Operation};

/// How many forwarding hops a call follows before the switch gives up.
const MAX_FORWARD_HOPS: usize = 5;

/// The in-process PBX.
#[derive(Debug)]
pub struct EmbeddedSwitch {
    numbers: HashSet<String>,
    /// Outside numbers that answer busy.
    busy: HashSet<String>,
    /// Outside numbers the network cannot reach.
    unreachable: HashSet<String>,
    lines: Mutex<HashMap<String, LineSettings>>,
    answer_delay: Duration,
    // Unbounded on purpose: it carries one message per external leg the core created,
    // so the core's own call count bounds it, and a bounded channel could only drop an
    // answer (leaving a call dialing forever) or block the core's lock.
    events: mpsc::UnboundedSender<SwitchEvent>,
}

impl EmbeddedSwitch {
    /// Builds a switch serving `numbers`, reporting to `events`.
    pub fn new(
        numbers: impl IntoIterator<Item = String>,
        answer_delay: Duration,
        events: mpsc::UnboundedSender<SwitchEvent>,
    ) -> Self {
        Self {
            numbers: numbers.into_iter().collect(),
            busy: HashSet::new(),
            unreachable: HashSet::new(),
            lines: Mutex::new(HashMap::new()),
            answer_delay,
            events,
        }
    }

    /// Makes legs to the outside numbers `busy` fail as busy, and legs to `unreachable` as
    /// unreachable, instead of being answered.
    pub fn with_failing_numbers(
        mut self,
        busy: impl IntoIterator<Item = String>,
        unreachable: impl IntoIterator<Item = String>,
    ) -> Self {
        self.busy = busy.into_iter().collect();
        self.unreachable = unreachable.into_iter().collect();
        self
    }

    /// Returns how a leg to an outside number fails, if it does.
    fn leg_failure(&self, number: &str) -> Option<SwitchError> {
        if self.busy.contains(number) {
            Some(SwitchError::Busy(number.to_owned()))
        } else if self.unreachable.contains(number) {
            Some(SwitchError::Unreachable(number.to_owned()))
        } else {
            None
        }
    }
}

impl Switch for EmbeddedSwitch {
    fn name(&self) -> &'static str {
        "embedded"
    }

    fn route(&self, _from: &str, destination: &Destination) -> Result<Route, SwitchError> {
        // A location names a remote switch: this PBX reaches it like any outside number.
        if destination.location.is_some() {
            return Ok(Route::External(destination.number.clone()));
        }
        let lines = self.lines.lock().unwrap_or_else(|p| p.into_inner());
        let mut number = destination.number.clone();
        for _ in 0..=MAX_FORWARD_HOPS {
            if !self.numbers.contains(&number) {
                return Ok(Route::External(number));
            }
            let settings = lines.get(&number).cloned().unwrap_or_default();
            if settings.do_not_disturb {
                return Err(SwitchError::Busy(number));
            }
            match settings.forward_to {
                Some(next) => number = next,
                None => return Ok(Route::Internal(number)),
            }
        }
        Err(SwitchError::Refused(format!(
            "{} forwards through more than {MAX_FORWARD_HOPS} numbers",
            destination.number
        )))
    }

    fn submit(&self, _call: &CallId, _operation: Operation) -> Result<(), SwitchError> {
        // Every operation the core allows is carried out at once by this switch.
        Ok(())
    }

    fn external_leg(&self, call: &CallId, number: &str) {
        let (call, number) = (call.clone(), number.to_owned());
        let event = match self.leg_failure(&number) {
            Some(error) => SwitchEvent::Failed {
                call,
                number,
                error,
            },
            None => SwitchEvent::Answered { call, number },
        };
        self.report_later(event, self.answer_delay);
    }

    fn configure_line(&self, number: &str, settings: LineSettings) {
        let mut lines = self.lines.lock().unwrap_or_else(|p| p.into_inner());
        lines.insert(number.to_owned(), settings);
    }

    fn wrap_up(&self, user: &str, generation: u64, after: Duration) {
        let event = SwitchEvent::WrapUpEnded {
            user: user.to_owned(),
            generation,
        };
        self.report_later(event, after);
    }
}

impl EmbeddedSwitch {
    fn report_later(&self, event: SwitchEvent, delay: Duration) {
        let events = self.events.clone();
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(async move {
                    tokio::time::sleep(delay).await;
                    let _ = events.send(event);
                });
            }
            // Outside a runtime (plain unit tests) the event is reported at once.
            Err(_) => {
                let _ = events.send(event);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configured_numbers_are_internal_and_the_rest_external() {
        let (tx, _rx) = mpsc::unbounded_channel();
        let switch = EmbeddedSwitch::new(["15001".to_owned()], Duration::ZERO, tx);
        assert_eq!(
            switch.route("15000", &Destination::to_number("15001")),
            Ok(Route::Internal("15001".into()))
        );
        assert_eq!(
            switch.route("15000", &Destination::to_number("9165550104")),
            Ok(Route::External("9165550104".into()))
        );
    }

    #[test]
    fn do_not_disturb_is_busy_and_forwarding_follows() {
        let (tx, _rx) = mpsc::unbounded_channel();
        let switch =
            EmbeddedSwitch::new(["15001".to_owned(), "15002".to_owned()], Duration::ZERO, tx);
        let dial = |n: &str| switch.route("15000", &Destination::to_number(n));
        switch.configure_line(
            "15001",
            LineSettings {
                do_not_disturb: true,
                forward_to: None,
            },
        );
        assert_eq!(dial("15001"), Err(SwitchError::Busy("15001".into())));
        switch.configure_line(
            "15001",
            LineSettings {
                do_not_disturb: false,
                forward_to: Some("15002".into()),
            },
        );
        assert_eq!(dial("15001"), Ok(Route::Internal("15002".into())));
        switch.configure_line(
            "15002",
            LineSettings {
                do_not_disturb: false,
                forward_to: Some("15001".into()),
            },
        );
        assert!(matches!(dial("15001"), Err(SwitchError::Refused(_))));
    }

    #[test]
    fn outside_numbers_set_as_failing_fail_after_routing_and_the_rest_answer() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let switch = EmbeddedSwitch::new(["15001".to_owned()], Duration::ZERO, tx)
            .with_failing_numbers(["9165550486".to_owned()], ["9165550404".to_owned()]);
        let call = CallId::new("c");
        for number in ["9165550486", "9165550404", "9165550104"] {
            // Routing takes them all: the failure comes later, from the network.
            assert_eq!(
                switch.route("15000", &Destination::to_number(number)),
                Ok(Route::External(number.into()))
            );
            switch.external_leg(&call, number);
        }
        let failed = |number: &str, error| SwitchEvent::Failed {
            call: call.clone(),
            number: number.into(),
            error,
        };
        assert_eq!(
            rx.try_recv(),
            Ok(failed("9165550486", SwitchError::Busy("9165550486".into())))
        );
        assert_eq!(
            rx.try_recv(),
            Ok(failed(
                "9165550404",
                SwitchError::Unreachable("9165550404".into())
            ))
        );
        assert_eq!(
            rx.try_recv(),
            Ok(SwitchEvent::Answered {
                call: call.clone(),
                number: "9165550104".into()
            })
        );
    }
}
