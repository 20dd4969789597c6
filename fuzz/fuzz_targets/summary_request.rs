//! The provider's request body and the identifiers in it, on arbitrary bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use myna_provider::SummaryRequestBody;

fuzz_target!(|data: &[u8]| {
    if let Ok(req) = serde_json::from_slice::<SummaryRequestBody>(data) {
        let _ = myna_domain::access::check_identifier("incident_ref", &req.incident_ref);
        let _ = myna_domain::access::check_identifier("viewer.team", &req.viewer.team);
        let _ = myna_domain::codes::YjCode::parse(&req.certificate);
    }
});
