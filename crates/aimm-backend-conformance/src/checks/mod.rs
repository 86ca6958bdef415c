//! The checks, one module per capability, as OpenDAL's behaviour tests
//! are split. Each check is a plain function from a [`Target`] to pass or a
//! reason, and says in one line what it requires of a backend.
//!
//! What every check may rely on, and must leave alone:
//!
//! * All checks share one store (for a plugin, the scratch store its
//!   `scratch_conf` describes) and run one after another, in the order of
//!   [`checks`]. None assumes the store starts empty or knows another's
//!   models: each looks only at models it made itself, and finds ids free
//!   for imports above the highest id stored.
//! * A check opens the backend as often as it needs ([`Target::open`]):
//!   several at once on one store, and again after `close()`, to see that
//!   data survives reopening.
//! * Listeners are waited for at most 10 s.

use crate::Target;

mod callbacks;
mod ids;
mod imports;
mod reads;
mod roundtrip;
mod support;
mod updates;

type CheckResult = Result<(), String>;

/// One named behaviour check.
#[derive(Clone, Copy)]
pub struct Check {
    /// A stable name, e.g. `ids_unique_under_16_threads`.
    pub name: &'static str,
    /// What it requires of a backend, in one line.
    pub requires: &'static str,
    /// Runs the check.
    pub run: fn(&dyn Target) -> CheckResult,
}

/// A [`Check`] of function `$f`, named after it.
macro_rules! check {
    ($f:ident, $requires:expr) => {
        $crate::checks::Check {
            name: stringify!($f),
            requires: $requires,
            run: $f,
        }
    };
}
use check;

/// Every check, in the order they run.
pub fn checks() -> Vec<Check> {
    [
        roundtrip::checks(),
        ids::checks(),
        updates::checks(),
        imports::checks(),
        reads::checks(),
        callbacks::checks(),
    ]
    .concat()
}

#[cfg(test)]
mod tests {
    use super::support::bytes_for;
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn check_names_are_unique() {
        let names: BTreeSet<_> = checks().iter().map(|c| c.name).collect();
        assert_eq!(names.len(), checks().len());
    }

    #[test]
    fn every_check_says_what_it_requires_in_one_line() {
        for check in checks() {
            assert!(!check.requires.is_empty(), "{}", check.name);
            assert!(!check.requires.contains('\n'), "{}", check.name);
        }
    }

    #[test]
    fn bytes_differ_by_tag() {
        assert_ne!(bytes_for("a", 64), bytes_for("b", 64));
        assert_eq!(bytes_for("a", 64), bytes_for("a", 64));
    }
}
