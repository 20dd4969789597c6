//! A bureau's report of a hospital's read on arbitrary bytes: the body, its form check and the
//! entry it would make after a crew's access must refuse or pass, never panic; whatever passes
//! has a ten-digit code, is not dated ahead of the clock, and makes an entry dated within the
//! copy's life and never before the access.
#![no_main]

use libfuzzer_sys::fuzz_target;
use myna_domain::access::{AccessEntry, Consent, Purpose, Viewer};
use myna_domain::person::PersonId;
use myna_domain::summary::View;
use myna_provider::hospital_read::report_of;
use myna_store::{HOSPITAL_READ_SKEW_MS, HOSPITAL_READ_WITHIN_MS, hospital_read_entry};
use myna_wire::provider::HospitalReadBody;

const NOW: i64 = 1_795_000_000_000;

fuzz_target!(|data: &[u8]| {
    let Ok(body) = serde_json::from_slice::<HospitalReadBody>(data) else {
        return;
    };
    let Ok(report) = report_of("kawasaki-fd".into(), body, NOW) else {
        return;
    };
    let code = &report.read.institution_code;
    assert!(code.len() == 10 && code.bytes().all(|b| b.is_ascii_digit()), "{code:?}");
    assert!(report.read.read_at_ms <= NOW + HOSPITAL_READ_SKEW_MS);
    let source = AccessEntry {
        at_ms: NOW - 3_600_000,
        organisation_id: "kawasaki-fd".into(),
        viewer: Viewer {
            organisation: "kawasaki-fd".into(),
            team: "中原救急1".into(),
            crew_member: "crew10".into(),
        },
        incident_ref: report.incident_ref.clone(),
        person_id: PersonId(5),
        cert_serial: "01AF00000001".into(),
        purpose: Purpose::EmergencyCare,
        consent: Consent::Obtained,
        view: View::Summary,
        hospital_read: None,
        access_id: None,
    };
    if let Ok(entry) = hospital_read_entry(&source, &report) {
        let read = entry.hospital_read.as_ref().map(|r| r.read_at_ms);
        assert!(read.is_some_and(|t| t >= source.at_ms && t <= source.at_ms + HOSPITAL_READ_WITHIN_MS));
    }
});
