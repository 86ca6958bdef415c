//! The result of a conformance run.

use std::fmt;
use std::time::Duration;

/// How one check went.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The check's name.
    pub name: &'static str,
    /// `Err` holds what was expected and what was found.
    pub result: Result<(), String>,
    /// How long the check took.
    pub duration: Duration,
}

/// Every outcome of a run, in order.
#[derive(Debug, Clone)]
pub struct Report {
    outcomes: Vec<Outcome>,
}

impl Report {
    pub(crate) fn new(outcomes: Vec<Outcome>) -> Self {
        Report { outcomes }
    }

    /// Every outcome.
    pub fn outcomes(&self) -> &[Outcome] {
        &self.outcomes
    }

    /// The outcomes that failed.
    pub fn failures(&self) -> impl Iterator<Item = &Outcome> {
        self.outcomes.iter().filter(|o| o.result.is_err())
    }

    /// Whether every check passed (and at least one ran).
    pub fn all_passed(&self) -> bool {
        !self.outcomes.is_empty() && self.failures().next().is_none()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for outcome in &self.outcomes {
            match &outcome.result {
                Ok(()) => writeln!(
                    f,
                    "PASS {:<40} {:>8.1} ms",
                    outcome.name,
                    outcome.duration.as_secs_f64() * 1e3
                )?,
                Err(why) => writeln!(f, "FAIL {:<40} {why}", outcome.name)?,
            }
        }
        let failed = self.failures().count();
        writeln!(
            f,
            "{} passed, {} failed",
            self.outcomes.len() - failed,
            failed
        )
    }
}
