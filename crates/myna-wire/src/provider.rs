//! The provider API: `POST /v1/emergency-summary` (contract in `docs/api.md`).

use crate::View;
use crate::wire_codes;
use myna_domain::access::Consent;
use myna_domain::summary::EmergencySummary;
use serde::{Deserialize, Serialize};

/// The summary route; `?view=full` asks for the 全量版.
pub const SUMMARY_PATH: &str = "/v1/emergency-summary";
pub const HEALTHZ_PATH: &str = "/healthz";

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
