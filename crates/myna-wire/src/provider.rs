//! The provider API: `POST /v1/emergency-summary` (contract in `docs/api.md`).
//!
//! Request bodies refuse unknown fields; answers accept them, so a client built before a field
//! was added (the patient's own portal, a bureau's ems) still reads the answer.

use crate::View;
use crate::wire_codes;
use myna_domain::access::Consent;
use myna_domain::summary::EmergencySummary;
use serde::{Deserialize, Serialize};

/// The summary route; `?view=full` asks for the 全量版.
pub const SUMMARY_PATH: &str = "/v1/emergency-summary";
pub const HEALTHZ_PATH: &str = "/healthz";
/// The patient portal: a challenge for the card to sign (no credential).
pub const PORTAL_CHALLENGE_PATH: &str = "/v1/portal/challenge";
/// The patient portal: the signed challenge in, the person's access history out.
pub const PORTAL_HISTORY_PATH: &str = "/v1/portal/access-history";
/// A bureau reports that a hospital's staff read the crew's copy of a summary.
pub const HOSPITAL_READ_PATH: &str = "/v1/hospital-reads";

/// The path and query for a view.
pub fn summary_path(view: View) -> &'static str {
    match view {
        View::Summary => "/v1/emergency-summary",
        View::Full => "/v1/emergency-summary?view=full",
    }
}

/// Who looks: the calling organisation (it must be the authenticated one), the team and the
/// crew member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ViewerBody {
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 64))]
    pub organisation: String,
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 64))]
    pub team: String,
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 64))]
    pub crew_member: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SummaryRequestBody {
    /// DER of the JPKI user-authentication certificate, standard base64.
    pub certificate: String,
    // A string so an unknown purpose is the handler's `malformed_request`, not serde's.
    #[cfg_attr(feature = "openapi", schema(value_type = myna_domain::access::Purpose))]
    pub purpose: String,
    pub consent: Consent,
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 64))]
    pub incident_ref: String,
    pub viewer: ViewerBody,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SummaryResponse {
    /// Sequence number of the access-log entry recorded for this view.
    pub access_id: i64,
    pub summary: EmergencySummary,
}

/// A read of the crew's handoff copy by the destination hospital's staff, reported by the
/// bureau whose crew's access obtained it (the caller). The provider logs it in the same
/// person's chain as that access, so the patient's history names the hospital.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct HospitalReadBody {
    /// The `access_id` the provider answered the crew's view with.
    pub access_id: i64,
    /// The incident the crew's view named (`incident_ref`).
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 64))]
    pub incident_ref: String,
    /// The hospital's 医療機関番号: ten digits.
    #[cfg_attr(feature = "openapi", schema(pattern = "^[0-9]{10}$"))]
    pub institution_code: String,
    /// The hospital's name in the bureau's registry; the provider logs its own master's name
    /// for the code when it holds the code.
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 64))]
    pub hospital_name: String,
    /// The staff member's login at the bureau's ems.
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 64))]
    pub staff: String,
    /// When the staff read the copy: the bureau's server time, milliseconds since the Unix
    /// epoch (UTC). From five minutes before the crew's access to seven days after it, and not
    /// more than five minutes ahead of the provider's clock.
    pub read_at_ms: i64,
    /// The read's place in the bureau's view log, kept with the entry.
    #[cfg_attr(feature = "openapi", schema(minimum = 1))]
    pub ems_view_seq: i64,
}

/// The access-log entry that records the hospital's read: its first read of that access (a
/// later report of the same hospital and access answers the same entry).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HospitalReadResponse {
    pub access_id: i64,
}

/// A sign-in challenge of the patient portal: sign `signed_message(challenge)` before
/// `expires_at_ms` (`myna_domain::portal`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PortalChallenge {
    /// Standard base64; sign it as issued.
    pub challenge: String,
    /// Server time, milliseconds since the Unix epoch (UTC).
    pub expires_at_ms: i64,
}

/// The patient's proof of holding the card: its auth certificate and the card's signature
/// (PKCS#1 v1.5, SHA-256 DigestInfo) over `signed_message(challenge)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct AccessHistoryRequest {
    /// DER of the JPKI user-authentication certificate, standard base64.
    pub certificate: String,
    /// The challenge as `PortalChallenge` gave it.
    pub challenge: String,
    /// The card's signature, standard base64.
    pub signature: String,
}

/// One access to the person's data, as the person sees it: the organisation, never the
/// individual.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SeenAccessBody {
    /// Server time, milliseconds since the Unix epoch (UTC).
    pub at_ms: i64,
    pub organisation_id: String,
    /// The organisation's registered name.
    pub organisation: String,
    /// Set when the hospital of this name read the copy `organisation`'s crew obtained
    /// (then `at_ms` is when the hospital read it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hospital: Option<String>,
    pub consent: Consent,
    pub view: View,
    /// The entry's sequence number in its chain of the access log (`audit verify` walks the
    /// same chains), for the patient to quote. Neither the chain (on PostgreSQL, the internal
    /// person id) nor the entry's hash is sent: the hash is over the team, the crew member and
    /// the incident, which a patient who knows the rest could guess back from it.
    pub seq: i64,
}

/// The person's accesses, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AccessHistoryResponse {
    pub accesses: Vec<SeenAccessBody>,
    /// True when older accesses exist beyond the ones listed.
    pub more: bool,
}

wire_codes! {
    /// Why the provider refused a request.
    pub enum ProviderErrorCode {
        Unauthenticated = "unauthenticated",
        ViewerOrganisationMismatch = "viewer_organisation_mismatch",
        MalformedRequest = "malformed_request",
        PayloadTooLarge = "payload_too_large",
        UnsupportedMediaType = "unsupported_media_type",
        CertificateMalformed = "certificate_malformed",
        CertificateUnsupported = "certificate_unsupported",
        CertificateUntrusted = "certificate_untrusted",
        CertificateExpired = "certificate_expired",
        CertificateNotYetValid = "certificate_not_yet_valid",
        CertificateWrongKeyUsage = "certificate_wrong_key_usage",
        CertificateRevoked = "certificate_revoked",
        UnknownSerial = "unknown_serial",
        UnknownAccess = "unknown_access",
        HospitalReadLimit = "hospital_read_limit",
        ReadTimeAhead = "read_time_ahead",
        ChallengeInvalid = "challenge_invalid",
        ChallengeExpired = "challenge_expired",
        ChallengeUsed = "challenge_used",
        SignatureInvalid = "signature_invalid",
        Unavailable = "unavailable",
        Internal = "internal",
    }
}

impl ProviderErrorCode {
    /// The card's certificate itself was refused (not the caller or the request).
    pub fn is_certificate(self) -> bool {
        matches!(
            self,
            ProviderErrorCode::CertificateMalformed
                | ProviderErrorCode::CertificateUnsupported
                | ProviderErrorCode::CertificateUntrusted
                | ProviderErrorCode::CertificateExpired
                | ProviderErrorCode::CertificateNotYetValid
                | ProviderErrorCode::CertificateWrongKeyUsage
                | ProviderErrorCode::CertificateRevoked
        )
    }
}

pub type ProviderErrorBody = crate::ErrorBody<ProviderErrorCode>;
