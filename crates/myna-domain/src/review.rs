//! 事後審査 (the privacy officer's review): every summary viewed without consent (the
//! exception) is checked afterwards by the bureau's privacy officer, who marks it justified or
//! not, with a comment. Each decision is an entry of its own hash chain, bound to the reviewed
//! view-log entry by that entry's place and hash.

use crate::access::{Consent, Linked};
use crate::incident::ViewRecord;
use serde::{Deserialize, Serialize};

/// The officer's judgement of one exception view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReviewDecision {
    /// 妥当: the patient could not consent and the view was needed.
    Justified,
    /// 不適切: it should not have been viewed without consent.
    NotJustified,
}

impl ReviewDecision {
    pub const ALL: [ReviewDecision; 2] = [ReviewDecision::Justified, ReviewDecision::NotJustified];

    pub fn as_str(self) -> &'static str {
        match self {
            ReviewDecision::Justified => "justified",
            ReviewDecision::NotJustified => "not_justified",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        ReviewDecision::ALL.into_iter().find(|d| d.as_str() == s)
    }

    pub fn label_ja(self) -> &'static str {
        match self {
            ReviewDecision::Justified => "妥当",
            ReviewDecision::NotJustified => "不適切",
        }
    }
}

/// The longest comment, in characters.
pub const COMMENT_MAX_CHARS: usize = 1000;

/// One decision, as the review log keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReviewRecord {
    /// Server time, ms since the epoch.
    pub at_ms: i64,
    pub bureau: String,
    /// The reviewed view-log entry: its chain, place and hash (hex).
    pub view_partition: i64,
    pub view_seq: i64,
    pub view_hash: String,
    pub incident_number: String,
    /// The officer's login.
    pub officer: String,
    pub decision: ReviewDecision,
    pub comment: String,
}

impl Linked for ReviewRecord {
    const LOG: &'static [u8] = b"myna-kyukyu/ems-review-log/v1";
    fn feed(&self, field: &mut dyn FnMut(&[u8])) {
        field(&self.at_ms.to_be_bytes());
        field(self.bureau.as_bytes());
        field(&self.view_partition.to_be_bytes());
        field(&self.view_seq.to_be_bytes());
        field(self.view_hash.as_bytes());
        field(self.incident_number.as_bytes());
        field(self.officer.as_bytes());
        field(self.decision.as_str().as_bytes());
        field(self.comment.as_bytes());
    }
}

/// Why a decision is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReviewError {
    #[error("only a view without consent is reviewed")]
    NotAnException,
    #[error("a view judged not justified needs a comment saying why")]
    CommentRequired,
    #[error("the comment is longer than {COMMENT_MAX_CHARS} characters")]
    CommentTooLong,
    #[error("this view was reviewed already")]
    AlreadyReviewed,
}

/// Checks a decision on `view` before it is recorded.
pub fn check_decision(
    view: &ViewRecord,
    decision: ReviewDecision,
    comment: &str,
) -> Result<(), ReviewError> {
    if !matches!(view.consent, Consent::Exception { .. }) {
        return Err(ReviewError::NotAnException);
    }
    if comment.chars().count() > COMMENT_MAX_CHARS {
        return Err(ReviewError::CommentTooLong);
    }
    if decision == ReviewDecision::NotJustified && comment.trim().is_empty() {
        return Err(ReviewError::CommentRequired);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::access::ExceptionReason;
    use crate::patient::PatientSecret;
    use crate::summary::View;

    fn view(consent: Consent) -> ViewRecord {
        ViewRecord {
            at_ms: 1,
            bureau: "a".into(),
            incident_number: "20250101-0001".into(),
            team: "t".into(),
            crew_member: "c".into(),
            terminal: 1,
            patient: PatientSecret::from_bytes([1; 32]).patient("01"),
            patient_number: 1,
            consent,
            view: View::Summary,
            provider_access_id: 1,
            hospital: None,
        }
    }

    #[test]
    fn only_exceptions_are_reviewed_and_a_not_justified_needs_a_reason() {
        let exception = view(Consent::Exception {
            reason: ExceptionReason::Unconscious,
        });
        assert_eq!(
            check_decision(&exception, ReviewDecision::Justified, ""),
            Ok(())
        );
        assert_eq!(
            check_decision(&exception, ReviewDecision::NotJustified, "  "),
            Err(ReviewError::CommentRequired)
        );
        assert_eq!(
            check_decision(&exception, ReviewDecision::NotJustified, "意識清明だった"),
            Ok(())
        );
        assert_eq!(
            check_decision(&exception, ReviewDecision::Justified, &"あ".repeat(1001)),
            Err(ReviewError::CommentTooLong)
        );
        assert_eq!(
            check_decision(&view(Consent::Obtained), ReviewDecision::Justified, ""),
            Err(ReviewError::NotAnException)
        );
        for d in ReviewDecision::ALL {
            assert_eq!(ReviewDecision::parse(d.as_str()), Some(d));
            assert_eq!(serde_json::to_value(d).unwrap().as_str(), Some(d.as_str()));
        }
    }
}
