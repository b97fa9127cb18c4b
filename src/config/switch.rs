//! The `[switch]` table: the embedded switch's answer delay and the outside numbers it fails.

use std::collections::BTreeSet;
use std::time::Duration;

use serde::Deserialize;

/// Default delay before a simulated external party answers, in milliseconds.
pub const DEFAULT_EXTERNAL_ANSWER_MS: u64 = 1000;

/// Embedded switch settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SwitchConfig {
    /// Delay before a simulated external party answers, in milliseconds.
    #[serde(default = "default_answer_ms")]
    pub external_answer_ms: u64,
    /// Outside numbers that answer busy (see [`crate::backend::embedded`]).
    #[serde(default)]
    pub busy_numbers: Vec<String>,
    /// Outside numbers the network cannot reach.
    #[serde(default)]
    pub unreachable_numbers: Vec<String>,
}

fn default_answer_ms() -> u64 {
    DEFAULT_EXTERNAL_ANSWER_MS
}

impl Default for SwitchConfig {
    fn default() -> Self {
        Self {
            external_answer_ms: DEFAULT_EXTERNAL_ANSWER_MS,
            busy_numbers: Vec::new(),
            unreachable_numbers: Vec::new(),
        }
    }
}

impl SwitchConfig {
    /// Returns the answer delay.
    pub fn external_answer_delay(&self) -> Duration {
        Duration::from_millis(self.external_answer_ms)
    }

    /// Checks the failing numbers: phone numbers, outside the configured DNs (`internal`),
    /// each set once; names the key at fault.
    pub(super) fn validate(&self, internal: &[String]) -> anyhow::Result<()> {
        let keys = [
            ("busy_numbers", &self.busy_numbers),
            ("unreachable_numbers", &self.unreachable_numbers),
        ];
        let mut seen = BTreeSet::new();
        for (key, numbers) in keys {
            for number in numbers {
                crate::core::validate_number("number", number)
                    .map_err(|e| anyhow::anyhow!("switch.{key}: {e}"))?;
                if internal.contains(number) {
                    anyhow::bail!(
                        "switch.{key}: {number} is a user's phone number; only outside numbers can fail"
                    );
                }
                if !seen.insert(number) {
                    anyhow::bail!("switch.{key}: {number} is set more than once");
                }
            }
        }
        Ok(())
    }
}
