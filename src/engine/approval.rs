//! Whether a run may be applied, decided here alone: the shells (the
//! command line, the controller) only say how their person gives an
//! approval (`--approve HASH`, a Resync's `approvedPlan`, a question at a
//! terminal), as Terraform's backend decides and its CLI only asks.

use super::{Engine, EngineError, Run};
use crate::plan::PlanSet;
use crate::store::Store;

/// How a run was approved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Approval {
    /// No approval given: only non-destructive plans apply.
    None,
    /// `--approve HASH` or `approvedPlan: HASH` (at least its first 8
    /// characters): applies only if the current plan has this hash.
    Hash(String),
    /// This very plan was confirmed: a saved plan file, which stands
    /// approved as the plan it holds, or a caller that reviewed it.
    Confirmed,
}

impl Approval {
    /// The approval a hash gives, if one was given.
    pub fn given(hash: Option<&str>) -> Approval {
        hash.map_or(Approval::None, |h| Approval::Hash(h.to_owned()))
    }
}

/// Why a run may not be applied as approved, with the hash that would be.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Destructive, and not approved: a person may confirm it.
    Unapproved { hash: String, summary: String },
    /// Too little of a hash to be sure which plan was meant.
    TooShort { given: String, hash: String },
    /// The approval names another plan: what was reviewed is not what
    /// would be applied.
    Stale { given: String, hash: String },
}

/// The fewest characters of a plan hash an approval must give.
pub const APPROVAL_PREFIX: usize = 8;

impl Refusal {
    /// The hash an approval must give.
    pub fn hash(&self) -> &str {
        match self {
            Refusal::Unapproved { hash, .. }
            | Refusal::TooShort { hash, .. }
            | Refusal::Stale { hash, .. } => hash,
        }
    }

    /// Whether a person at a terminal may settle it by confirming the plan.
    pub fn may_confirm(&self) -> bool {
        matches!(self, Refusal::Unapproved { .. })
    }

    /// The refusal in the words of a shell: `given_as` names where an
    /// approval is given (`--approve`, `approvedPlan`), `approve` says how
    /// to give this one (`` approve it with `--approve 1234abcd…` ``).
    pub fn explain(&self, given_as: &str, approve: &str) -> String {
        match self {
            Refusal::Unapproved { summary, .. } => format!(
                "this plan is destructive ({summary}); review it, then {approve}; nothing was changed"
            ),
            Refusal::TooShort { given, hash } => format!(
                "{given_as} {given}: give at least {APPROVAL_PREFIX} characters of the plan hash ({hash})"
            ),
            Refusal::Stale { given, hash } => format!(
                "the approved plan {given} is not the current plan {hash} (the tracker, the structure or the declarations changed since it was reviewed); nothing was changed: review the current plan and approve {hash}"
            ),
        }
    }
}

impl std::fmt::Display for Refusal {
    /// As the command line says it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let approve = format!("approve it with `--approve {}`", self.hash());
        f.write_str(&self.explain("--approve", &approve))
    }
}

/// Whether `approval` lets `set` be applied.
pub(super) fn judge(set: &PlanSet, approval: &Approval) -> Result<(), Refusal> {
    match approval {
        Approval::Hash(given) => approves(given, &set.hash),
        Approval::None if set.summary.destructive > 0 => Err(Refusal::Unapproved {
            hash: set.hash.clone(),
            summary: set.summary.to_string(),
        }),
        Approval::None | Approval::Confirmed => Ok(()),
    }
}

/// Whether `given` (a hash or its first characters) approves `hash`.
pub(super) fn approves(given: &str, hash: &str) -> Result<(), Refusal> {
    if given.len() < APPROVAL_PREFIX {
        Err(Refusal::TooShort {
            given: given.to_owned(),
            hash: hash.to_owned(),
        })
    } else if hash.starts_with(given) {
        Ok(())
    } else {
        Err(Refusal::Stale {
            given: given.to_owned(),
            hash: hash.to_owned(),
        })
    }
}

impl<S: Store> Engine<S> {
    /// May `run` be applied with `approval`? A plan removing more rows than
    /// the synchronizers' safety limits allow never is
    /// (`EngineError::MassRemoval`: only a raised limit lets it through);
    /// a destructive one needs its hash, else `EngineError::Refused` says
    /// which hash and why. `apply` asks the same before writing anything.
    pub fn may_apply(&self, run: &Run, approval: &Approval) -> Result<(), EngineError> {
        run.check_safety()?;
        judge(&run.set, approval).map_err(EngineError::Refused)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::Summary;

    fn set(destructive: usize) -> PlanSet {
        PlanSet {
            structures: Vec::new(),
            summary: Summary {
                destructive,
                ..Summary::default()
            },
            hash: "0123456789abcdef".into(),
        }
    }

    #[test]
    fn a_destructive_plan_needs_at_least_eight_characters_of_its_own_hash() {
        assert!(judge(&set(1), &Approval::None).unwrap_err().may_confirm());
        assert_eq!(
            judge(&set(1), &Approval::given(Some("0123"))),
            Err(Refusal::TooShort {
                given: "0123".into(),
                hash: "0123456789abcdef".into()
            })
        );
        assert!(matches!(
            judge(&set(1), &Approval::given(Some("deadbeefdeadbeef"))),
            Err(Refusal::Stale { .. })
        ));
        assert_eq!(judge(&set(1), &Approval::given(Some("01234567"))), Ok(()));
        assert_eq!(judge(&set(1), &Approval::Confirmed), Ok(()));
    }

    #[test]
    fn a_plan_that_destroys_nothing_applies_unapproved_but_not_with_a_wrong_hash() {
        assert_eq!(judge(&set(0), &Approval::None), Ok(()));
        assert!(judge(&set(0), &Approval::given(Some("deadbeefdeadbeef"))).is_err());
    }

    #[test]
    fn each_shell_words_the_same_refusal_its_own_way() {
        let refusal = judge(&set(2), &Approval::None).unwrap_err();
        assert!(
            refusal
                .to_string()
                .contains("approve it with `--approve 0123456789abcdef`")
        );
        let in_files =
            refusal.explain("approvedPlan", "set `approvedPlan: 0123456789abcdef` in it");
        assert!(
            in_files.ends_with("set `approvedPlan: 0123456789abcdef` in it; nothing was changed")
        );
    }
}
