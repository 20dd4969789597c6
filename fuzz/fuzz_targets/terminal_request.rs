//! The terminal API's bodies (crew events, the summary request) on arbitrary bytes, and what
//! ems derives from a parsed one: the certificate's serial and the patient it stands for.
#![no_main]

use libfuzzer_sys::fuzz_target;
use myna_domain::patient::PatientSecret;
use myna_wire::terminal::{CrewEvent, EventBody, SummaryBody};

fuzz_target!(|data: &[u8]| {
    let secret = PatientSecret::from_bytes([7; 32]);
    let mut certificates = Vec::new();
    if let Ok(body) = serde_json::from_slice::<EventBody>(data) {
        if let Some(ms) = body.device_at_ms {
            let _ = chrono::DateTime::from_timestamp_millis(ms);
        }
        match body.event {
            CrewEvent::IdentityConfirmed { certificate }
            | CrewEvent::Consent { certificate, .. }
            | CrewEvent::ConsentRefused { certificate } => certificates.push(certificate),
            _ => {}
        }
    }
    if let Ok(body) = serde_json::from_slice::<SummaryBody>(data) {
        certificates.push(body.certificate);
    }
    for c in certificates {
        if let Ok(serial) = myna_pki::certificate_serial_hex(c.as_bytes()) {
            let _ = secret.patient(&serial);
        }
    }
});
