//! The state of one slot and the pure transitions that change it (rules 1, 3
//! and 8 of the design): the store loads a [`SlotState`], asks for a
//! [`Transition`], and writes the `after` state with its audit row in one
//! transaction.

use chrono::{DateTime, Utc};

use super::types::{Role, SlotKey};

/// A pending certificate and the instant it becomes current.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pending {
    pub thumbprint: String,
    pub effective_at: DateTime<Utc>,
}

/// What a slot holds, by thumbprint (what deployment resolves servers from).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SlotCerts {
    pub current: Option<String>,
    pub previous: Option<String>,
    pub pending: Option<String>,
}

/// Which certificates (by thumbprint) a slot holds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SlotState {
    pub current: Option<String>,
    pub previous: Option<String>,
    pub pending: Option<Pending>,
}

impl SlotState {
    pub fn get(&self, role: Role) -> Option<&str> {
        match role {
            Role::Current => self.current.as_deref(),
            Role::Previous => self.previous.as_deref(),
            Role::Pending => self.pending.as_ref().map(|p| p.thumbprint.as_str()),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.current.is_none() && self.previous.is_none() && self.pending.is_none()
    }

    fn holds(&self, thumbprint: &str) -> bool {
        [Role::Current, Role::Previous, Role::Pending]
            .iter()
            .any(|r| self.get(*r) == Some(thumbprint))
    }
}

/// A change of one slot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transition {
    pub before: SlotState,
    pub after: SlotState,
}

impl Transition {
    /// Certificates the slot held before and no longer holds (they stay in
    /// the store).
    pub fn dropped(&self) -> Vec<&str> {
        [Role::Current, Role::Previous, Role::Pending]
            .iter()
            .filter_map(|r| self.before.get(*r))
            .filter(|t| !self.after.holds(t))
            .collect()
    }

    /// Whether a pending roll was cancelled by this change.
    pub fn cancels_pending(&self) -> bool {
        self.before.pending.is_some() && self.after.pending.is_none()
    }
}

/// Outcome of planning an immediate assignment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AssignPlan {
    /// The certificate is already current: nothing to do.
    AlreadyCurrent,
    Change(Transition),
}

/// Rule 1: the new certificate becomes current at once, the old current
/// becomes previous, the old previous leaves the slot. A certificate that was
/// pending in the slot stops being pending (its roll is moot).
pub fn assign_now(state: &SlotState, thumbprint: &str) -> AssignPlan {
    if state.current.as_deref() == Some(thumbprint) {
        return AssignPlan::AlreadyCurrent;
    }
    let pending = state.pending.clone().filter(|p| p.thumbprint != thumbprint);
    let after = SlotState {
        current: Some(thumbprint.to_string()),
        previous: state.current.clone(),
        pending,
    };
    AssignPlan::Change(Transition {
        before: state.clone(),
        after,
    })
}

/// Outcome of planning a removal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RemovePlan {
    /// The slot holds nothing in that role.
    Nothing,
    Change(Transition),
}

/// Rule 8: clears one role of the slot. Whether removing the current
/// certificate is allowed (`--force`) is the caller's decision.
pub fn remove(state: &SlotState, role: Role) -> RemovePlan {
    if state.get(role).is_none() {
        return RemovePlan::Nothing;
    }
    let mut after = state.clone();
    match role {
        Role::Current => after.current = None,
        Role::Previous => after.previous = None,
        Role::Pending => after.pending = None,
    }
    RemovePlan::Change(Transition {
        before: state.clone(),
        after,
    })
}

/// Outcome of planning a scheduled roll (rule 2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SchedulePlan {
    /// The certificate is already current: nothing to schedule.
    AlreadyCurrent,
    /// The same certificate is already pending for the same instant.
    AlreadyPending,
    /// Another pending roll exists; replacing it needs `--force`.
    Conflict(Pending),
    Change(Transition),
}

/// Makes `thumbprint` pending at `at`. An existing pending roll is kept
/// unless `replace` (the old one is then cancelled by the caller).
pub fn schedule(
    state: &SlotState,
    thumbprint: &str,
    at: DateTime<Utc>,
    replace: bool,
) -> SchedulePlan {
    if state.current.as_deref() == Some(thumbprint) {
        return SchedulePlan::AlreadyCurrent;
    }
    if let Some(p) = &state.pending {
        if p.thumbprint == thumbprint && p.effective_at == at {
            return SchedulePlan::AlreadyPending;
        }
        if !replace {
            return SchedulePlan::Conflict(p.clone());
        }
    }
    let mut after = state.clone();
    after.pending = Some(Pending {
        thumbprint: thumbprint.to_string(),
        effective_at: at,
    });
    SchedulePlan::Change(Transition {
        before: state.clone(),
        after,
    })
}

/// Outcome of planning the roll of a job whose certificate is `thumbprint`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RollPlan {
    /// Pending becomes current, current becomes previous, the old previous
    /// leaves the slot.
    Promote(Transition),
    /// The slot no longer has a pending certificate.
    PendingGone,
    /// The slot's pending certificate is another one now.
    PendingReplaced(String),
}

/// Rule 2 at the instant: promote the pending certificate.
impl RollPlan {
    /// Why the roll cannot happen, when it cannot.
    pub fn refusal(&self) -> Option<String> {
        match self {
            RollPlan::PendingGone => {
                Some("the pending certificate was removed from the slot".to_string())
            }
            RollPlan::PendingReplaced(other) => {
                Some(format!("the slot's pending certificate is now {other}"))
            }
            RollPlan::Promote(_) => None,
        }
    }
}

pub fn roll(state: &SlotState, thumbprint: &str) -> RollPlan {
    match &state.pending {
        None => RollPlan::PendingGone,
        Some(p) if p.thumbprint != thumbprint => RollPlan::PendingReplaced(p.thumbprint.clone()),
        Some(p) => RollPlan::Promote(Transition {
            before: state.clone(),
            after: SlotState {
                current: Some(p.thumbprint.clone()),
                previous: state.current.clone(),
                pending: None,
            },
        }),
    }
}

/// Outcome of planning a rollback: the previous certificate current again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RollbackPlan {
    /// The previous one becomes current; the current one previous (or, with
    /// `remove_bad`, leaves the slot).
    Change(Transition),
    NoCurrent,
    NoPrevious,
    /// A roll is pending: it would undo the rollback at its instant.
    PendingExists(Pending),
}

impl RollbackPlan {
    /// Why the rollback cannot happen, when it cannot.
    pub fn refusal(&self, slot: &SlotKey) -> Option<String> {
        match self {
            RollbackPlan::Change(_) => None,
            RollbackPlan::NoCurrent => {
                Some(format!("{slot} has no current certificate to roll back"))
            }
            RollbackPlan::NoPrevious => Some(format!(
                "{slot} has no previous certificate to roll back to (it was removed or retired)"
            )),
            RollbackPlan::PendingExists(p) => Some(format!(
                "{slot} has pending certificate {} effective {}, which would undo the rollback: cancel its roll first ('certroll jobs cancel')",
                p.thumbprint,
                p.effective_at
                    .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
            )),
        }
    }
}

/// Rolls back now: previous becomes current, current becomes previous (or
/// is dropped with `remove_bad`).
pub fn rollback(state: &SlotState, remove_bad: bool) -> RollbackPlan {
    let Some(current) = &state.current else {
        return RollbackPlan::NoCurrent;
    };
    let Some(previous) = &state.previous else {
        return RollbackPlan::NoPrevious;
    };
    if let Some(p) = &state.pending {
        return RollbackPlan::PendingExists(p.clone());
    }
    RollbackPlan::Change(Transition {
        before: state.clone(),
        after: SlotState {
            current: Some(previous.clone()),
            previous: (!remove_bad).then(|| current.clone()),
            pending: None,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(cur: Option<&str>, prev: Option<&str>) -> SlotState {
        SlotState {
            current: cur.map(str::to_string),
            previous: prev.map(str::to_string),
            pending: None,
        }
    }

    #[test]
    fn assign_demotes_current_and_drops_previous() {
        let AssignPlan::Change(t) = assign_now(&s(Some("A"), Some("B")), "C") else {
            panic!("expected a change")
        };
        assert_eq!(t.after, s(Some("C"), Some("A")));
        assert_eq!(t.dropped(), ["B"]);
    }

    #[test]
    fn assign_to_empty_slot_has_no_previous() {
        let AssignPlan::Change(t) = assign_now(&SlotState::default(), "A") else {
            panic!("expected a change")
        };
        assert_eq!(t.after, s(Some("A"), None));
        assert!(t.dropped().is_empty());
    }

    #[test]
    fn assigning_the_current_one_is_a_no_op() {
        assert_eq!(
            assign_now(&s(Some("A"), Some("B")), "A"),
            AssignPlan::AlreadyCurrent
        );
    }

    #[test]
    fn assigning_the_previous_one_swaps() {
        let AssignPlan::Change(t) = assign_now(&s(Some("A"), Some("B")), "B") else {
            panic!("expected a change")
        };
        assert_eq!(t.after, s(Some("B"), Some("A")));
        assert!(t.dropped().is_empty());
    }

    #[test]
    fn assigning_the_pending_one_now_clears_pending() {
        let mut st = s(Some("A"), None);
        st.pending = Some(Pending {
            thumbprint: "P".into(),
            effective_at: DateTime::from_timestamp(2_000_000_000, 0).unwrap(),
        });
        let AssignPlan::Change(t) = assign_now(&st, "P") else {
            panic!("expected a change")
        };
        assert_eq!(t.after, s(Some("P"), Some("A")));
        assert!(t.cancels_pending());
    }

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(2_000_000_000 + secs, 0).unwrap()
    }

    #[test]
    fn schedule_sets_pending_and_keeps_an_existing_one_unless_replaced() {
        let st = s(Some("A"), Some("B"));
        let SchedulePlan::Change(t) = schedule(&st, "C", at(0), false) else {
            panic!("expected a change")
        };
        assert_eq!(t.after.current.as_deref(), Some("A"));
        assert_eq!(
            t.after.pending,
            Some(Pending {
                thumbprint: "C".into(),
                effective_at: at(0)
            })
        );
        assert!(t.dropped().is_empty());

        let with_pending = t.after;
        assert_eq!(
            schedule(&with_pending, "C", at(0), false),
            SchedulePlan::AlreadyPending
        );
        assert!(matches!(
            schedule(&with_pending, "C", at(60), false),
            SchedulePlan::Conflict(_)
        ));
        assert!(matches!(
            schedule(&with_pending, "D", at(0), false),
            SchedulePlan::Conflict(_)
        ));
        let SchedulePlan::Change(t) = schedule(&with_pending, "D", at(60), true) else {
            panic!("expected a change")
        };
        assert_eq!(t.after.pending.as_ref().unwrap().thumbprint, "D");
        assert_eq!(t.dropped(), ["C"]);
        assert_eq!(
            schedule(&st, "A", at(0), false),
            SchedulePlan::AlreadyCurrent
        );
    }

    #[test]
    fn roll_promotes_pending_and_demotes_current() {
        let mut st = s(Some("A"), Some("B"));
        assert_eq!(roll(&st, "C"), RollPlan::PendingGone);
        st.pending = Some(Pending {
            thumbprint: "C".into(),
            effective_at: at(0),
        });
        let RollPlan::Promote(t) = roll(&st, "C") else {
            panic!("expected a promotion")
        };
        assert_eq!(t.after, s(Some("C"), Some("A")));
        assert_eq!(t.dropped(), ["B"]);
        assert_eq!(roll(&st, "D"), RollPlan::PendingReplaced("C".into()));

        // Into an empty slot: no previous.
        let empty = SlotState {
            pending: Some(Pending {
                thumbprint: "C".into(),
                effective_at: at(0),
            }),
            ..SlotState::default()
        };
        let RollPlan::Promote(t) = roll(&empty, "C") else {
            panic!("expected a promotion")
        };
        assert_eq!(t.after, s(Some("C"), None));
    }

    #[test]
    fn remove_clears_one_role() {
        let st = s(Some("A"), Some("B"));
        let RemovePlan::Change(t) = remove(&st, Role::Previous) else {
            panic!("expected a change")
        };
        assert_eq!(t.after, s(Some("A"), None));
        assert_eq!(t.dropped(), ["B"]);
        assert_eq!(
            remove(&s(Some("A"), None), Role::Previous),
            RemovePlan::Nothing
        );
        assert_eq!(remove(&st, Role::Pending), RemovePlan::Nothing);
    }

    #[test]
    fn rollback_swaps_current_and_previous_or_drops_the_bad_one() {
        let RollbackPlan::Change(t) = rollback(&s(Some("B"), Some("A")), false) else {
            panic!("expected a change")
        };
        assert_eq!(t.after, s(Some("A"), Some("B")));
        let RollbackPlan::Change(t) = rollback(&s(Some("B"), Some("A")), true) else {
            panic!("expected a change")
        };
        assert_eq!(t.after, s(Some("A"), None));
        assert_eq!(t.dropped(), ["B"]);
        assert_eq!(
            rollback(&s(Some("B"), None), false),
            RollbackPlan::NoPrevious
        );
        assert_eq!(rollback(&s(None, None), false), RollbackPlan::NoCurrent);
        let mut pending = s(Some("B"), Some("A"));
        pending.pending = Some(Pending {
            thumbprint: "C".into(),
            effective_at: chrono::Utc::now(),
        });
        assert!(matches!(
            rollback(&pending, false),
            RollbackPlan::PendingExists(_)
        ));
    }
}
