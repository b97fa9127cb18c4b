//! The embedded switch: a small PBX inside the process, so the gateway runs with no other
//! system. Configured DNs ring their users; any other number reaches a simulated external
//! party that answers after a configurable delay.

use std::collections::HashSet;
use std::time::Duration;

use tokio::sync::mpsc;

use super::{Route, Switch, SwitchError, SwitchEvent};
use crate::core::{CallId, Destination, Operation};

/// Default delay before a simulated external party answers.
pub const DEFAULT_EXTERNAL_ANSWER_DELAY: Duration = Duration::from_millis(1000);

/// The in-process PBX.
#[derive(Debug)]
pub struct EmbeddedSwitch {
    numbers: HashSet<String>,
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
            answer_delay,
            events,
        }
    }
}

impl Switch for EmbeddedSwitch {
    fn name(&self) -> &'static str {
        "embedded"
    }

    fn route(&self, _from: &str, destination: &Destination) -> Result<Route, SwitchError> {
        // A location names a remote switch: this PBX reaches it like any outside number.
        if destination.location.is_none() && self.numbers.contains(&destination.number) {
            Ok(Route::Internal(destination.number.clone()))
        } else {
            Ok(Route::External(destination.number.clone()))
        }
    }

    fn submit(&self, _call: &CallId, _operation: Operation) -> Result<(), SwitchError> {
        // Every operation the core allows is carried out at once by this switch.
        Ok(())
    }

    fn external_leg(&self, call: &CallId, number: &str) {
        let event = SwitchEvent::Answered {
            call: call.clone(),
            number: number.to_owned(),
        };
        let events = self.events.clone();
        let delay = self.answer_delay;
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(async move {
                    tokio::time::sleep(delay).await;
                    let _ = events.send(event);
                });
            }
            // Outside a runtime (plain unit tests) the answer is reported at once.
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
}
