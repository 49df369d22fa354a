//! Status conditions (metav1.Condition) with stable transition times.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use time::OffsetDateTime;

/// A condition to set.
pub struct Cond<'a> {
    pub type_: &'a str,
    pub status: bool,
    pub reason: &'a str,
    pub message: &'a str,
}

impl<'a> Cond<'a> {
    pub fn new(type_: &'a str, status: bool, reason: &'a str, message: &'a str) -> Self {
        Self { type_, status, reason, message }
    }
}

/// Sets a condition, keeping `lastTransitionTime` unless the status flips.
pub fn set(conds: &mut Vec<Condition>, c: Cond<'_>, generation: Option<i64>, now: OffsetDateTime) {
    let status = if c.status { "True" } else { "False" }.to_owned();
    let existing = conds.iter().position(|x| x.type_ == c.type_);
    let time = match existing.map(|i| &conds[i]) {
        Some(old) if old.status == status => old.last_transition_time.clone(),
        _ => Time(
            k8s_openapi::jiff::Timestamp::from_second(now.unix_timestamp())
                .unwrap_or(k8s_openapi::jiff::Timestamp::UNIX_EPOCH),
        ),
    };
    let cond = Condition {
        type_: c.type_.to_owned(),
        status,
        reason: c.reason.to_owned(),
        message: c.message.to_owned(),
        last_transition_time: time,
        observed_generation: generation,
    };
    match existing {
        Some(i) => conds[i] = cond,
        None => conds.push(cond),
    }
}

/// The condition of a type, if present.
pub fn get<'a>(conds: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conds.iter().find(|c| c.type_ == type_)
}
