//! Conformance suite every `ProviderStore` backend runs against a fresh, real database.
//! Each function panics with a message naming the broken behaviour.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::*;
use chrono::Days;
use myna_domain::access::{Consent, ExceptionReason, Purpose, Viewer};
use myna_domain::codes::YjCode;
use myna_domain::person::{Address, Coverage, Sex};
use myna_domain::records::*;

pub fn today() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, 24).unwrap()
}

fn clinic() -> Institution {
    Institution {
        code: "1419000001".into(),
        name: "小杉町内科クリニック".into(),
        kind: InstitutionKind::Clinic,
    }
}

fn pharmacy() -> Institution {
    Institution {
        code: "1449000002".into(),
        name: "小杉町調剤薬局".into(),
        kind: InstitutionKind::Pharmacy,
    }
}

/// A person on apixaban with a recent visit, an old visit, a surgery and a health check.
pub fn sample_person(id: i64, serial: &str) -> PersonRecordSet {
    let t = today();
    let recent = t - Days::new(40);
    let old = t - Days::new(4 * 365);
    let apixaban = DrugRef {
        yj: YjCode::parse("3339004F1029").unwrap(),
        receipt_code: None,
        name: "エリキュース錠5mg".into(),
        generic_name: "アピキサバン".into(),
        strength: "5mg".into(),
    };
    PersonRecordSet {
        person: Person {
            id: PersonId(id),
            name: "川崎　花子".into(),
            name_kana: "カワサキ　ハナコ".into(),
            birth_date: NaiveDate::from_ymd_opt(1948, 5, 3).unwrap(),
            sex: Sex::Female,
            address: Address {
                postal_code: "211-0063".into(),
                prefecture: "神奈川県".into(),
                municipality: "川崎市中原区".into(),
                street: "小杉町1-2-3".into(),
            },
            coverage: Coverage {
                insurer_number: "39140011".into(),
                insurer_name: "神奈川県後期高齢者医療広域連合".into(),
                symbol: "123".into(),
                number: format!("{id}"),
                branch: "00".into(),
            },
        },
        cert_serial: serial.into(),
        records: MedicalRecords {
            visits: vec![
                Visit {
                    service_date: old,
                    available_on: old + Days::new(40),
                    institution: clinic(),
                    department: "内科".into(),
                    setting: CareSetting::Outpatient,
                    source: Source::Claims,
                },
                Visit {
                    service_date: recent,
                    available_on: recent + Days::new(30),
                    institution: clinic(),
                    department: "内科".into(),
                    setting: CareSetting::Outpatient,
                    source: Source::Claims,
                },
            ],
            dispensings: vec![Dispensing {
                service_date: recent,
                available_on: recent + Days::new(30),
                drug: apixaban,
                daily_quantity: 2.0,
                unit: "錠".into(),
                days: 28,
                prescriber: clinic(),
                pharmacy: Some(pharmacy()),
                source: Source::Claims,
            }],
            procedures: vec![Procedure {
                service_date: old,
                available_on: old + Days::new(40),
                kind: ProcedureKind::Surgery,
                code: "K282".into(),
                name: "水晶体再建術".into(),
                institution: clinic(),
                source: Source::Claims,
            }],
            dialysis: vec![],
            health_checks: vec![HealthCheck {
                service_date: old,
                available_on: old + Days::new(90),
                height_cm: 152.5,
                weight_kg: 48.2,
                systolic_mmhg: 132,
                diastolic_mmhg: 78,
                hba1c_percent: Some(5.8),
                ldl_mg_dl: Some(121),
                egfr: Some(62.0),
                urine_protein: "-".into(),
                source: Source::Insurer,
            }],
        },
    }
}

pub fn request(serial: &str, view: View, n: i64) -> AccessRequest {
    AccessRequest {
        serial_hex: serial.into(),
        view,
        today: today(),
        entry: AccessEntry {
            at_ms: 1_795_000_000_000 + n,
            organisation_id: "kawasaki".into(),
            viewer: Viewer {
                organisation: "川崎市消防局".into(),
                team: "中原救急1".into(),
                crew_member: "crew-0001".into(),
            },
            incident_ref: format!("INC-{n}"),
            person_id: PersonId(0),
            cert_serial: serial.into(),
            purpose: Purpose::EmergencyCare,
            consent: if n % 2 == 0 {
                Consent::Obtained
            } else {
                Consent::Exception {
                    reason: ExceptionReason::Unconscious,
                }
            },
            view,
            hospital_read: None,
            access_id: None,
        },
    }
}

async fn entries<S: ProviderStore>(store: &S) -> u64 {
    match store.verify_access_log().await.unwrap() {
        ChainReport::Intact { entries, .. } => entries,
        ChainReport::Broken { first_break, .. } => panic!("chain broken: {first_break}"),
    }
}

/// Loaded records come back in full and the access is logged with the person resolved.
pub async fn access_returns_records_and_logs<S: ProviderStore>(store: S) {
    let p = sample_person(11, "01AA00000001");
    store
        .load_persons(vec![p.clone(), sample_person(12, "01AA00000002")])
        .await
        .unwrap();
    let granted = store
        .access_records(request("01AA00000001", View::Full, 1))
        .await
        .unwrap();
    assert_eq!(granted.person, p.person, "person round-trips");
    assert_eq!(
        granted.records, p.records,
        "records round-trip within the full view"
    );
    assert_eq!(granted.position.seq, 1, "a chain starts at 1");
    let log = store.access_log_for(PersonId(11), 10).await.unwrap();
    assert_eq!(log.len(), 1);
    assert_eq!(
        log[0].1.entry.person_id,
        PersonId(11),
        "the store fills in the resolved person"
    );
    assert_eq!(log[0].1.entry.incident_ref, "INC-1");
    assert!(
        store
            .access_log_for(PersonId(12), 10)
            .await
            .unwrap()
            .is_empty()
    );
    let second = store
        .access_records(request("01AA00000002", View::Summary, 2))
        .await
        .unwrap();
    assert_ne!(
        second.access_id, granted.access_id,
        "each access has its own id"
    );
    assert_eq!(entries(&store).await, 2);
    // The second entry either follows the first in one chain or starts its person's own.
    let same_chain = second.position.partition == granted.position.partition;
    assert_eq!(second.position.seq, if same_chain { 2 } else { 1 });
    let report = store.verify_access_log().await.unwrap();
    let ChainReport::Intact {
        entries: 2,
        partitions,
        head_hash,
    } = report
    else {
        panic!("{report:?}");
    };
    assert_eq!(partitions, if same_chain { 1 } else { 2 });
    let stored = store.access_log_hash(second.position).await.unwrap();
    assert!(
        stored.is_some(),
        "access_log_hash finds an entry by its position"
    );
    if same_chain {
        assert_eq!(
            stored.map(hex::encode),
            head_hash,
            "the head's hash is what access_log_hash returns"
        );
    }
    let past_the_head = ChainPosition {
        seq: second.position.seq + 1,
        ..second.position
    };
    assert_eq!(store.access_log_hash(past_the_head).await.unwrap(), None);
}

/// A claim names its product by レセ電 code; products under one 統一名 share a YJ code and
/// must keep their own names.
pub async fn products_sharing_a_yj_code_keep_their_own_names<S: ProviderStore>(store: S) {
    use myna_domain::codes::ReceiptDrugCode;
    let mut p = sample_person(21, "01AA00000021");
    let first = p.records.dispensings[0].clone();
    let product = |receipt: &str, name: &str| DrugRef {
        yj: YjCode::parse("4291003F1015").unwrap(),
        receipt_code: Some(ReceiptDrugCode::parse(receipt).unwrap()),
        name: name.into(),
        generic_name: "タモキシフェン錠１０ｍｇ".into(),
        strength: String::new(),
    };
    p.records.dispensings = vec![
        Dispensing {
            drug: product("620921701", "タモキシフェン錠１０ｍｇ「サワイ」"),
            ..first.clone()
        },
        Dispensing {
            drug: product("622671201", "タモキシフェン錠１０ｍｇ「ＤＳＥＰ」"),
            service_date: first.service_date + Days::new(1),
            available_on: first.available_on + Days::new(1),
            ..first.clone()
        },
        first,
    ];
    p.records.dispensings.sort_by_key(|d| d.service_date);
    store.load_persons(vec![p.clone()]).await.unwrap();
    let granted = store
        .access_records(request("01AA00000021", View::Full, 1))
        .await
        .unwrap();
    let names = |r: &MedicalRecords| -> Vec<String> {
        let mut n: Vec<String> = r.dispensings.iter().map(|d| d.drug.name.clone()).collect();
        n.sort();
        n
    };
    assert_eq!(
        names(&granted.records),
        names(&p.records),
        "each product keeps its name"
    );
    assert_eq!(granted.records, p.records, "records round-trip");

    // The same レセ電 code under another name is refused, and nothing of that load is kept.
    let mut other = sample_person(22, "01AA00000022");
    other.records.dispensings[0].drug = product("620921701", "タモキシフェン錠10mg「サワイ」");
    let err = store.load_persons(vec![other]).await.unwrap_err();
    assert!(
        matches!(err, StoreError::InvalidRecord { person: 22, .. }),
        "a second name for one product is refused: {err}"
    );
    assert!(
        matches!(
            store
                .access_records(request("01AA00000022", View::Full, 2))
                .await,
            Err(StoreError::UnknownSerial(_))
        ),
        "the refused load left no person behind"
    );
    let again = store
        .access_records(request("01AA00000021", View::Full, 3))
        .await
        .unwrap();
    assert_eq!(
        again.records, p.records,
        "the first product's name is unchanged"
    );
}

/// The summary view need not return records older than its widest window (5 years).
pub async fn summary_view_reads_within_its_windows<S: ProviderStore>(store: S) {
    let mut p = sample_person(21, "01AA00000021");
    let ancient = today() - Days::new(7 * 365);
    p.records.visits.push(Visit {
        service_date: ancient,
        available_on: ancient + Days::new(40),
        institution: clinic(),
        department: "内科".into(),
        setting: CareSetting::Outpatient,
        source: Source::Claims,
    });
    store.load_persons(vec![p]).await.unwrap();
    let g = store
        .access_records(request("01AA00000021", View::Summary, 1))
        .await
        .unwrap();
    assert!(
        g.records
            .visits
            .iter()
            .all(|v| v.service_date >= today() - Days::new(5 * 366)),
        "7-year-old visit returned"
    );
}

/// Health checks are read by rounds: the newest the view asks for (summary 1, full 5) among
/// those available by today, oldest first; a round not yet available is not read.
pub async fn health_checks_are_read_by_newest_rounds<S: ProviderStore>(store: S) {
    let mut p = sample_person(22, "01AA00000022");
    let template = p.records.health_checks[0].clone();
    p.records.health_checks = (0..7u64)
        .map(|years| {
            let service_date = today() - Days::new(365 * years + 100);
            HealthCheck {
                service_date,
                available_on: service_date + Days::new(90),
                systolic_mmhg: 120 + u16::try_from(years).unwrap_or(0),
                ..template.clone()
            }
        })
        .collect();
    // Done last month, not available until next month: not read.
    p.records.health_checks.push(HealthCheck {
        service_date: today() - Days::new(30),
        available_on: today() + Days::new(30),
        systolic_mmhg: 199,
        ..template.clone()
    });
    store.load_persons(vec![p]).await.unwrap();
    let read = |view, seq| {
        let store = &store;
        async move {
            store
                .access_records(request("01AA00000022", view, seq))
                .await
                .unwrap()
                .records
                .health_checks
                .iter()
                .map(|h| h.systolic_mmhg)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        read(View::Summary, 1).await,
        vec![120],
        "summary: the newest round"
    );
    assert_eq!(
        read(View::Full, 2).await,
        vec![124, 123, 122, 121, 120],
        "full: the five newest rounds, oldest first"
    );
}

/// A long supply dispensed before the drug window is still read, so its alert is not lost; an
/// impossible supply is refused at load and nothing of that batch is stored.
pub async fn long_supplies_are_read_and_impossible_ones_refused<S: ProviderStore>(store: S) {
    let mut p = sample_person(51, "01AA00000051");
    let old = today() - Days::new(150);
    p.records.dispensings[0].service_date = old;
    p.records.dispensings[0].available_on = old + Days::new(30);
    p.records.dispensings[0].days = 120; // covers until 30 days ago
    store.load_persons(vec![p]).await.unwrap();
    let g = store
        .access_records(request("01AA00000051", View::Summary, 1))
        .await
        .unwrap();
    assert_eq!(
        g.records.dispensings.len(),
        1,
        "a dispensing whose supply reaches the window is read"
    );

    let mut bad = sample_person(52, "01AA00000052");
    bad.records.dispensings[0].days = 365;
    let err = store
        .load_persons(vec![sample_person(53, "01AA00000053"), bad])
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::InvalidRecord { person: 52, .. }),
        "{err:?}"
    );
    let err = store
        .access_records(request("01AA00000053", View::Summary, 2))
        .await
        .unwrap_err();
    assert_eq!(
        err,
        StoreError::UnknownSerial("01AA00000053".into()),
        "the refused batch stored nothing"
    );
}

/// Unknown and revoked serials are refused and write nothing.
pub async fn refused_access_writes_nothing<S: ProviderStore>(store: S) {
    store
        .load_persons(vec![sample_person(31, "01AA00000031")])
        .await
        .unwrap();
    store
        .access_records(request("01AA00000031", View::Summary, 1))
        .await
        .unwrap();
    let err = store
        .access_records(request("01FFFFFFFFFF", View::Summary, 2))
        .await
        .unwrap_err();
    assert_eq!(err, StoreError::UnknownSerial("01FFFFFFFFFF".into()));
    store
        .revoke_serial("01AA00000031", "keyCompromise")
        .await
        .unwrap();
    store
        .revoke_serial("01AA00000031", "keyCompromise")
        .await
        .unwrap();
    let err = store
        .access_records(request("01AA00000031", View::Summary, 3))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Revoked { .. }), "{err:?}");
    assert_eq!(
        entries(&store).await,
        1,
        "refused accesses must not be logged"
    );
}

/// Organisations authenticate with their secret only (or, proved by certificate, by id).
pub async fn organisations_authenticate<S: ProviderStore>(store: S) {
    let org = Organisation {
        id: "kawasaki".into(),
        name: "川崎市消防局".into(),
    };
    store
        .add_organisation(org.clone(), hash_secret("s3cret-token"))
        .await
        .unwrap();
    assert_eq!(
        store
            .authenticate("kawasaki", "s3cret-token")
            .await
            .unwrap(),
        Some(org.clone())
    );
    assert_eq!(store.authenticate("kawasaki", "wrong").await.unwrap(), None);
    assert_eq!(
        store
            .authenticate("yokohama", "s3cret-token")
            .await
            .unwrap(),
        None
    );
    // By certificate: the id alone, for registered organisations only.
    assert_eq!(
        store.organisation("kawasaki").await.unwrap(),
        Some(org.clone())
    );
    assert_eq!(store.organisation("yokohama").await.unwrap(), None);
    assert_eq!(store.organisation("").await.unwrap(), None);
    // Disabled: refused by either credential, until enabled again.
    assert!(
        store
            .set_organisation_disabled("kawasaki", true)
            .await
            .unwrap()
    );
    assert_eq!(store.organisation("kawasaki").await.unwrap(), None);
    assert_eq!(
        store
            .authenticate("kawasaki", "s3cret-token")
            .await
            .unwrap(),
        None
    );
    assert!(
        store
            .set_organisation_disabled("kawasaki", false)
            .await
            .unwrap()
    );
    assert_eq!(
        store.organisation("kawasaki").await.unwrap(),
        Some(org.clone())
    );
    assert!(
        !store
            .set_organisation_disabled("yokohama", true)
            .await
            .unwrap()
    );
    let dup = store
        .add_organisation(org, hash_secret("other"))
        .await
        .unwrap_err();
    assert_eq!(dup, StoreError::OrganisationExists("kawasaki".into()));
}

/// One revoked client certificate of an organisation is refused; its other certificates, and
/// other organisations' certificates, are not; a disabled organisation refuses them all.
pub async fn a_revoked_organisation_certificate_is_refused_and_its_others_are_not<
    S: ProviderStore,
>(
    store: S,
) {
    let kawasaki = Organisation {
        id: "kawasaki".into(),
        name: "川崎市消防局".into(),
    };
    let yokohama = Organisation {
        id: "yokohama".into(),
        name: "横浜市消防局".into(),
    };
    for org in [&kawasaki, &yokohama] {
        store
            .add_organisation(org.clone(), hash_secret(&org.id))
            .await
            .unwrap();
    }
    let (leaked, spare) = ("aa".repeat(32), "bb".repeat(32));
    let check = |org: &'static str, cert: String| {
        let store = &store;
        async move {
            store
                .organisation_for_certificate(org, &cert)
                .await
                .unwrap()
                .map(|o| o.id)
        }
    };
    assert_eq!(
        check("kawasaki", leaked.clone()).await,
        Some("kawasaki".into())
    );
    assert_eq!(check("nagoya", leaked.clone()).await, None, "unregistered");
    assert!(
        !store
            .revoke_organisation_certificate("nagoya", &leaked, "lost")
            .await
            .unwrap(),
        "no such organisation"
    );
    assert!(
        store
            .revoke_organisation_certificate("kawasaki", &leaked, "tablet lost")
            .await
            .unwrap()
    );
    // Upper-case hex names the same certificate.
    assert!(
        store
            .revoke_organisation_certificate("kawasaki", &leaked.to_uppercase(), "again")
            .await
            .unwrap()
    );
    assert_eq!(check("kawasaki", leaked.clone()).await, None, "revoked");
    assert_eq!(
        check("kawasaki", leaked.to_uppercase()).await,
        None,
        "revoked, whatever the case of its hex"
    );
    assert_eq!(
        check("kawasaki", spare.clone()).await,
        Some("kawasaki".into())
    );
    assert_eq!(
        check("yokohama", spare.clone()).await,
        Some("yokohama".into())
    );
    // The bearer secret is a separate credential.
    assert_eq!(
        store.authenticate("kawasaki", "kawasaki").await.unwrap(),
        Some(kawasaki)
    );
    assert!(
        store
            .set_organisation_disabled("kawasaki", true)
            .await
            .unwrap()
    );
    assert_eq!(check("kawasaki", spare.clone()).await, None, "disabled");
    assert!(
        store
            .set_organisation_disabled("kawasaki", false)
            .await
            .unwrap()
    );
    assert_eq!(check("kawasaki", spare).await, Some("kawasaki".into()));
    assert_eq!(check("kawasaki", leaked).await, None, "still revoked");
}

/// `count` accesses at once, the n-th by the card `serial_of(n)` with its request numbered
/// n; their outcomes in n's order.
pub async fn accesses_at_once<S: ProviderStore>(
    store: &std::sync::Arc<S>,
    count: i64,
    view: View,
    serial_of: impl Fn(i64) -> String,
) -> Vec<Result<AccessGranted, StoreError>> {
    let tasks: Vec<_> = (0..count)
        .map(|n| {
            let (s, serial) = (store.clone(), serial_of(n));
            tokio::spawn(async move { s.access_records(request(&serial, view, n)).await })
        })
        .collect();
    let mut outcomes = Vec::with_capacity(tasks.len());
    for t in tasks {
        outcomes.push(t.await.expect("an access's task panicked"));
    }
    outcomes
}

/// Concurrent accesses each get their own entry and the chain stays intact.
pub async fn concurrent_accesses_chain_correctly<S: ProviderStore>(store: S) {
    let store = std::sync::Arc::new(store);
    store
        .load_persons(
            (0..8)
                .map(|i| sample_person(100 + i, &format!("01BB{:08X}", i)))
                .collect(),
        )
        .await
        .unwrap();
    let mut ids = std::collections::HashSet::new();
    let mut chains: std::collections::BTreeMap<i64, Vec<i64>> = Default::default();
    for g in accesses_at_once(&store, 64, View::Summary, |n| format!("01BB{:08X}", n % 8)).await {
        let g = g.unwrap();
        let (id, at) = (g.access_id, g.position);
        assert!(ids.insert(id), "access id {id} given twice");
        chains.entry(at.partition).or_default().push(at.seq);
    }
    for (partition, seqs) in &mut chains {
        seqs.sort_unstable();
        assert_eq!(
            *seqs,
            (1..=seqs.len() as i64).collect::<Vec<i64>>(),
            "chain {partition}: every access gets the next place, none twice, none skipped"
        );
    }
    assert_eq!(entries(store.as_ref()).await, 64);
}

/// Many accesses to one person at once (a patient read by several crews and screens): each
/// waits for its turn at the person's chain, none is refused for losing a race to it.
pub async fn accesses_of_one_person_at_once_all_get_their_turn<S: ProviderStore>(store: S) {
    let store = std::sync::Arc::new(store);
    store
        .load_persons(vec![sample_person(120, "01BC00000120")])
        .await
        .unwrap();
    let mut seqs: Vec<i64> = accesses_at_once(&store, 48, View::Summary, |_| "01BC00000120".into())
        .await
        .into_iter()
        .map(|g| {
            g.expect("an access refused while others of the person ran")
                .position
                .seq
        })
        .collect();
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=48).collect::<Vec<i64>>());
    assert_eq!(entries(store.as_ref()).await, 48);
}

/// Dataset facts round-trip and reach every access.
pub async fn dataset_info_round_trips<S: ProviderStore>(store: S) {
    let info = DatasetInfo {
        persons: 2,
        seed: Some(42),
        generated_as_of: Some(today()),
        claims_through: Some(NaiveDate::from_ymd_opt(2026, 9, 30).unwrap()),
    };
    store.set_dataset_info(info.clone()).await.unwrap();
    assert_eq!(store.dataset_info().await.unwrap(), info);
    // Every access reports how far the claims data reaches.
    store
        .load_persons(vec![sample_person(41, "01AA00000041")])
        .await
        .unwrap();
    let granted = store
        .access_records(request("01AA00000041", View::Summary, 1))
        .await
        .unwrap();
    assert_eq!(granted.claims_through, info.claims_through);
    // The claims date set alone: the other facts stay, and the next access reports it.
    let later = NaiveDate::from_ymd_opt(2026, 10, 31).unwrap();
    store.set_claims_through(later).await.unwrap();
    assert_eq!(
        store.dataset_info().await.unwrap(),
        DatasetInfo {
            claims_through: Some(later),
            ..info
        }
    );
    let granted = store
        .access_records(request("01AA00000041", View::Summary, 2))
        .await
        .unwrap();
    assert_eq!(granted.claims_through, Some(later));
}

/// An import batch holding whole persons, numbered as a file would be from `first_line`
/// (header, then each person, card and record on a line of its own); records are numbered
/// within their kind per person, as a load numbers them.
pub fn import_batch_of(
    id: &str,
    digest: u8,
    first_line: u64,
    sets: &[PersonRecordSet],
) -> import::ImportBatch {
    use import::{CardLink, ClaimRecord, Record};
    let mut line = first_line;
    let mut next = || {
        line += 1;
        line
    };
    let mut b = import::ImportBatch {
        id: id.into(),
        digest: [digest; 32],
        lines: (first_line, first_line),
        persons: Vec::new(),
        cards: Vec::new(),
        records: Vec::new(),
    };
    for set in sets {
        let person = set.person.id;
        b.persons.push((next(), set.person.clone()));
        b.cards.push((
            next(),
            CardLink {
                serial: set.cert_serial.clone(),
                person,
            },
        ));
        let r = &set.records;
        let kinds: Vec<Vec<Record>> = vec![
            r.visits.iter().cloned().map(Record::Visit).collect(),
            r.dispensings
                .iter()
                .cloned()
                .map(Record::Dispensing)
                .collect(),
            r.procedures
                .iter()
                .cloned()
                .map(Record::Procedure)
                .collect(),
            r.dialysis.iter().cloned().map(Record::Dialysis).collect(),
            r.health_checks
                .iter()
                .cloned()
                .map(Record::HealthCheck)
                .collect(),
        ];
        for records in kinds {
            for (seq, record) in (0u32..).zip(records) {
                b.records.push((
                    next(),
                    ClaimRecord {
                        person,
                        seq,
                        record,
                    },
                ));
            }
        }
    }
    b.lines.1 = line;
    b
}

/// A batch is applied whole, once: its persons, card links and records read back as loaded
/// ones do; the same batch again changes nothing; the same id with other content is refused
/// at its header; a later batch adds records to a held person and updates its demographics.
pub async fn an_import_batch_applies_whole_and_once<S: ProviderStore>(store: S) {
    use import::{ClaimRecord, Imported, Record};
    let p = sample_person(21, "01AB00000021");
    let first = import_batch_of("2026-10-a", 1, 1, std::slice::from_ref(&p));
    let items = first.len();
    assert_eq!(
        store.import_batch(first.clone()).await.unwrap(),
        Imported::Applied { items }
    );
    let granted = store
        .access_records(request("01AB00000021", View::Full, 1))
        .await
        .unwrap();
    assert_eq!(granted.person, p.person);
    assert_eq!(
        granted.records, p.records,
        "imported records read back whole"
    );

    assert_eq!(
        store.import_batch(first.clone()).await.unwrap(),
        Imported::AlreadyImported,
        "the same batch again changes nothing"
    );
    let again = store
        .access_records(request("01AB00000021", View::Full, 2))
        .await
        .unwrap();
    assert_eq!(again.records, p.records, "nothing was added twice");

    let changed = import::ImportBatch {
        digest: [9; 32],
        ..first.clone()
    };
    assert_eq!(
        store.import_batch(changed).await,
        Err(StoreError::ImportRejected {
            line: 1,
            problem: "batch \"2026-10-a\" was imported before with other content".into()
        })
    );

    // A month later: a new visit for the held person, and a move.
    let mut moved = p.person.clone();
    moved.address.street = "小杉町9-9-9".into();
    let mut visit = p.records.visits[0].clone();
    visit.department = "整形外科".into();
    let seq = u32::try_from(p.records.visits.len()).unwrap();
    let later = import::ImportBatch {
        id: "2026-11-a".into(),
        digest: [2; 32],
        lines: (1, 3),
        persons: vec![(2, moved.clone())],
        cards: Vec::new(),
        records: vec![(
            3,
            ClaimRecord {
                person: p.person.id,
                seq,
                record: Record::Visit(visit.clone()),
            },
        )],
    };
    assert_eq!(
        store.import_batch(later).await.unwrap(),
        Imported::Applied { items: 2 }
    );
    let after = store
        .access_records(request("01AB00000021", View::Full, 3))
        .await
        .unwrap();
    assert_eq!(after.person, moved, "demographics updated");
    assert_eq!(after.records.visits.len(), p.records.visits.len() + 1);
    assert!(after.records.visits.contains(&visit));
}

/// A batch with one bad line changes nothing, and the error names that line: a record of a
/// person neither held nor in the batch, a record key already held, a serial linked to
/// another person, a record that fails the record checks, a key twice in one batch.
pub async fn a_bad_import_batch_changes_nothing_and_names_its_line<S: ProviderStore>(store: S) {
    use import::{CardLink, ClaimRecord, Record};
    let held = sample_person(31, "01AC00000031");
    store
        .import_batch(import_batch_of("held", 1, 1, std::slice::from_ref(&held)))
        .await
        .unwrap();
    let newcomer = sample_person(32, "01AC00000032");
    let fresh = |id: &str| import_batch_of(id, 3, 100, std::slice::from_ref(&newcomer));
    let line_of = |b: &import::ImportBatch| b.lines.1 + 1;

    // Each bad batch holds the newcomer too (whose card must stay unknown), the bad line, and
    // a good record after it, so the line named is the bad one, not the batch's last.
    let good_after = ClaimRecord {
        person: newcomer.person.id,
        seq: 500,
        record: Record::Visit(held.records.visits[0].clone()),
    };
    let spoiled = |id: &str, bad: Record, person: PersonId, seq: u32| {
        let mut b = fresh(id);
        let line = line_of(&b);
        b.records.push((
            line,
            ClaimRecord {
                person,
                seq,
                record: bad,
            },
        ));
        b.records.push((line + 1, good_after.clone()));
        b.lines.1 = line + 1;
        (b, line)
    };
    let refused = |r: Result<import::Imported, StoreError>, line: u64, says: &str| match r {
        Err(StoreError::ImportRejected { line: l, problem }) => {
            assert_eq!(l, line, "{problem}");
            assert!(problem.contains(says), "{problem:?} does not say {says:?}");
        }
        other => panic!("expected a refusal at line {line}: {other:?}"),
    };

    let visit = Record::Visit(held.records.visits[0].clone());
    let (stranger, line) = spoiled("stranger", visit.clone(), PersonId(999), 0);
    refused(store.import_batch(stranger).await, line, "not held");

    let (already, line) = spoiled("already", visit.clone(), held.person.id, 0);
    refused(store.import_batch(already).await, line, "already held");

    // A card line in place of the bad record: the held person's serial for the newcomer.
    let (mut taken, line) = spoiled("taken", visit.clone(), newcomer.person.id, 501);
    let at = taken.records.len() - 2;
    taken.records.remove(at);
    taken.cards.push((
        line,
        CardLink {
            serial: held.cert_serial.clone(),
            person: newcomer.person.id,
        },
    ));
    refused(
        store.import_batch(taken).await,
        line,
        "linked to another person",
    );

    let mut d = held.records.dispensings[0].clone();
    d.days = 0;
    let (impossible, line) = spoiled("impossible", Record::Dispensing(d), newcomer.person.id, 99);
    refused(store.import_batch(impossible).await, line, "days supplied");

    // The bad record has the good one's key: the good one, after it, is the second.
    let (twice, line) = spoiled("twice", visit.clone(), newcomer.person.id, 500);
    refused(store.import_batch(twice).await, line + 1, "appears twice");

    assert!(
        matches!(
            store
                .access_records(request("01AC00000032", View::Full, 1))
                .await,
            Err(StoreError::UnknownSerial(_))
        ),
        "a refused batch left its newcomer behind"
    );
    // The held person is as the first batch left it, and its log untouched by refusals.
    let granted = store
        .access_records(request("01AC00000031", View::Full, 2))
        .await
        .unwrap();
    assert_eq!(granted.records, held.records);
    // The refused batches were not recorded as applied: the good one goes through now.
    assert!(matches!(
        store.import_batch(fresh("stranger")).await.unwrap(),
        import::Imported::Applied { .. }
    ));
}

/// The patient portal's reads: the card's holder (an unknown or revoked card refused, and
/// nothing logged), that person's entries only, newest first, each with its place and the hash
/// the log holds there, and every organisation's name, a disabled one's too.
pub async fn a_persons_own_history_is_read_without_logging<S: ProviderStore>(store: S) {
    store
        .load_persons(vec![
            sample_person(41, "01AD00000041"),
            sample_person(42, "01AD00000042"),
        ])
        .await
        .unwrap();
    for (org, name) in [("kawasaki", "川崎市消防局"), ("yokohama", "横浜市消防局")] {
        store
            .add_organisation(
                Organisation {
                    id: org.into(),
                    name: name.into(),
                },
                hash_secret(org),
            )
            .await
            .unwrap();
    }
    assert!(
        store
            .set_organisation_disabled("yokohama", true)
            .await
            .unwrap()
    );
    let mut mine = Vec::new();
    for n in 1..=3 {
        let mut r = request("01AD00000041", View::Summary, n);
        if n == 2 {
            r.entry.organisation_id = "yokohama".into();
            r.entry.consent = Consent::Exception {
                reason: ExceptionReason::Unconscious,
            };
            r.view = View::Full;
            r.entry.view = View::Full;
        }
        mine.push(store.access_records(r).await.unwrap());
        store
            .access_records(request("01AD00000042", View::Summary, 10 + n))
            .await
            .unwrap();
    }
    let before = entries(&store).await;

    let holder = store.card_holder("01AD00000041").await.unwrap();
    assert_eq!(holder, PersonId(41));
    let history = store.access_log_for(holder, 10).await.unwrap();
    assert_eq!(
        history.iter().map(|(at, _)| *at).collect::<Vec<_>>(),
        mine.iter().rev().map(|g| g.position).collect::<Vec<_>>(),
        "this person's three accesses, newest first, at the places the accesses reported"
    );
    for (at, e) in &history {
        assert_eq!(e.entry.person_id, PersonId(41));
        assert_eq!(e.seq, at.seq);
        assert_eq!(
            store.access_log_hash(*at).await.unwrap(),
            Some(e.hash),
            "the hash shown is the log's at that place"
        );
        assert_eq!(
            myna_domain::access::link_hash(e.seq, &e.entry, &e.prev_hash),
            e.hash
        );
    }
    assert_eq!(history[1].1.entry.organisation_id, "yokohama");
    assert_eq!(history[1].1.entry.view, View::Full);
    assert!(matches!(
        history[1].1.entry.consent,
        Consent::Exception { .. }
    ));
    assert_eq!(store.access_log_for(holder, 2).await.unwrap().len(), 2);

    let names = store.organisation_names().await.unwrap();
    assert_eq!(
        names.get("kawasaki").map(String::as_str),
        Some("川崎市消防局")
    );
    assert_eq!(
        names.get("yokohama").map(String::as_str),
        Some("横浜市消防局"),
        "a disabled organisation is still named"
    );

    assert!(matches!(
        store.card_holder("01AD000000FF").await,
        Err(StoreError::UnknownSerial(_))
    ));
    store.revoke_serial("01AD00000042", "lost").await.unwrap();
    assert!(matches!(
        store.card_holder("01AD00000042").await,
        Err(StoreError::Revoked { .. })
    ));
    assert_eq!(
        entries(&store).await,
        before,
        "reading the history logs nothing"
    );
}

/// The report of a read at 川崎市立川崎病院 of the crew's copy `source` (its access logged by
/// `request(…, n)` with `incident_ref` `INC-n`).
pub fn hospital_read_report(
    source: &AccessGranted,
    incident_ref: &str,
    ems_view_seq: i64,
) -> HospitalReadReport {
    HospitalReadReport {
        organisation_id: "kawasaki".into(),
        incident_ref: incident_ref.into(),
        staff: "er-nurse-3".into(),
        at_ms: 1_795_000_100_000 + ems_view_seq,
        read: myna_domain::access::HospitalRead {
            source_access_id: source.access_id,
            institution_code: "1410000001".into(),
            hospital_name: "川崎市立川崎病院".into(),
            read_at_ms: 1_795_000_050_000,
            ems_view_seq,
        },
    }
}

/// The report of another hospital's read: `code` and a name of the bureau's.
fn other_hospital(report: HospitalReadReport, code: &str) -> HospitalReadReport {
    HospitalReadReport {
        read: myna_domain::access::HospitalRead {
            institution_code: code.into(),
            hospital_name: format!("病院{code}"),
            ..report.read
        },
        ..report
    }
}

/// A hospital's read, as the bureau reports it, is appended to the chain of the person the
/// crew's access read, with the crew's fields and the staff member as the viewer. Only the
/// reporting organisation's own access, under its incident, is found, and not a hospital's
/// read; each hospital is logged once per access, at its first read (a report sent again, a
/// later read, two reports at once: one entry), and at most five hospitals; a read dated
/// before the access (beyond the clocks' allowance) or after a copy is kept is refused; the
/// hospital is named from the master when it holds the code; nothing refused is logged, and
/// the log verifies.
pub async fn a_hospital_read_is_logged_once_after_the_crews_access<S: ProviderStore>(store: S) {
    store
        .load_persons(vec![
            sample_person(51, "01AD00000051"),
            sample_person(52, "01AD00000052"),
        ])
        .await
        .unwrap();
    let crew = store
        .access_records(request("01AD00000051", View::Summary, 7))
        .await
        .unwrap();
    let other = store
        .access_records(request("01AD00000052", View::Summary, 8))
        .await
        .unwrap();
    let before = entries(&store).await;

    // Two reports of the same read at once: one entry.
    let report = hospital_read_report(&crew, "INC-7", 1);
    let (a, b) = tokio::join!(
        store.record_hospital_read(report.clone()),
        store.record_hospital_read(report.clone())
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.access_id, b.access_id, "one entry for both");
    assert!(a.new ^ b.new, "one of them wrote it");
    let logged = a;
    assert_eq!(entries(&store).await, before + 1);
    let history = store.access_log_for(PersonId(51), 10).await.unwrap();
    assert_eq!(
        history.len(),
        2,
        "the crew's access and the hospital's read"
    );
    let (at, read) = &history[0];
    assert_eq!(*at, logged.position);
    assert_eq!(
        at.partition, crew.position.partition,
        "the same person's chain"
    );
    let source = &history[1].1.entry;
    assert_eq!(read.entry.person_id, PersonId(51));
    assert_eq!(read.entry.organisation_id, "kawasaki");
    assert_eq!(read.entry.incident_ref, "INC-7");
    assert_eq!(read.entry.cert_serial, source.cert_serial);
    assert_eq!(read.entry.consent, source.consent);
    assert_eq!(read.entry.view, View::Summary);
    assert_eq!(read.entry.viewer.team, source.viewer.team);
    assert_eq!(read.entry.viewer.crew_member, "er-nurse-3");
    assert_eq!(read.entry.at_ms, report.at_ms);
    assert_eq!(
        read.entry.hospital_read.as_ref(),
        Some(&report.read),
        "a code the master does not hold keeps the bureau's name"
    );
    assert_eq!(
        store.access_log_for(PersonId(52), 10).await.unwrap().len(),
        1,
        "the other person's chain is untouched"
    );

    // The same hospital again: the report resent, another staff member's later read.
    for again in [
        report.clone(),
        HospitalReadReport {
            staff: "er-doctor-1".into(),
            read: myna_domain::access::HospitalRead {
                read_at_ms: report.read.read_at_ms + 600_000,
                ems_view_seq: 2,
                ..report.read.clone()
            },
            ..report.clone()
        },
    ] {
        let same = store.record_hospital_read(again).await.unwrap();
        assert_eq!(
            (same.access_id, same.position),
            (logged.access_id, logged.position)
        );
        assert!(!same.new);
    }
    assert_eq!(entries(&store).await, before + 1);

    let from =
        |code: &str, seq: i64| other_hospital(hospital_read_report(&crew, "INC-7", seq), code);
    type Expected = fn(&StoreError) -> bool;
    let unknown: Expected = |e| matches!(e, StoreError::UnknownAccess);
    let out_of_time: Expected = |e| matches!(e, StoreError::ReadOutOfTime);
    let dated = |ms: i64| {
        let mut r = from("1410000009", 9);
        r.read.read_at_ms = ms;
        r
    };
    let refusals: Vec<(HospitalReadReport, Expected)> = vec![
        (
            HospitalReadReport {
                organisation_id: "yokohama".into(),
                ..from("1410000009", 3)
            },
            unknown,
        ),
        (
            other_hospital(hospital_read_report(&crew, "INC-8", 3), "1410000009"),
            unknown,
        ),
        // Person 52's access, named with another incident than its own.
        (
            other_hospital(hospital_read_report(&other, "INC-7", 3), "1410000009"),
            unknown,
        ),
        (
            HospitalReadReport {
                read: myna_domain::access::HospitalRead {
                    source_access_id: logged.access_id,
                    ..from("1410000009", 3).read
                },
                ..from("1410000009", 3)
            },
            unknown,
        ),
        (dated(source.at_ms - HOSPITAL_READ_SKEW_MS - 1), out_of_time),
        (
            dated(source.at_ms + HOSPITAL_READ_WITHIN_MS + 1),
            out_of_time,
        ),
    ];
    for (bad, expected) in refusals {
        match store.record_hospital_read(bad.clone()).await {
            Err(e) if expected(&e) => {}
            other => panic!("{bad:?}: {other:?}"),
        }
    }
    assert_eq!(
        entries(&store).await,
        before + 1,
        "nothing refused is logged"
    );

    // Other hospitals: one entry each, up to five; a read a little before the access (the
    // bureau's clock behind) is one of them.
    let mut last = logged.position.seq;
    for (i, code) in ["1410000002", "1410000003", "1410000004"]
        .iter()
        .enumerate()
    {
        let mut r = from(code, 10 + i64::try_from(i).unwrap());
        if i == 0 {
            r.read.read_at_ms = source.at_ms - 60_000;
        }
        let next = store.record_hospital_read(r).await.unwrap();
        assert!(next.new);
        assert_eq!(next.position.seq, last + 1);
        last = next.position.seq;
        if i == 0 {
            let logged = store.access_log_for(PersonId(51), 1).await.unwrap();
            assert_eq!(
                logged[0]
                    .1
                    .entry
                    .hospital_read
                    .as_ref()
                    .map(|r| r.read_at_ms),
                Some(source.at_ms),
                "a read dated a little before the access is dated with it"
            );
        }
    }
    // The fifth is named by the master, which holds its code (the clinic of the records).
    let fifth = store
        .record_hospital_read(from("1419000001", 20))
        .await
        .unwrap();
    assert!(fifth.new);
    let named = store.access_log_for(PersonId(51), 1).await.unwrap();
    assert_eq!(
        named[0]
            .1
            .entry
            .hospital_read
            .as_ref()
            .map(|r| r.hospital_name.as_str()),
        Some("小杉町内科クリニック"),
        "the master's name, not the bureau's"
    );
    assert!(matches!(
        store.record_hospital_read(from("1410000006", 21)).await,
        Err(StoreError::HospitalReadLimit)
    ));
    let again = store
        .record_hospital_read(from("1410000002", 22))
        .await
        .unwrap();
    assert!(
        !again.new,
        "a hospital logged already still answers its entry"
    );
    assert_eq!(entries(&store).await, before + 5);
    assert!(matches!(
        store.verify_access_log().await.unwrap(),
        ChainReport::Intact { .. }
    ));
}

/// Calls `$m!(args…; every test of this suite)`: each backend's conformance file names the
/// suite once, so a new test runs on every backend.
#[macro_export]
macro_rules! provider_suite {
    ($m:ident!($($args:tt)*)) => {
        $m!($($args)*;
            access_returns_records_and_logs,
            products_sharing_a_yj_code_keep_their_own_names,
            summary_view_reads_within_its_windows,
            health_checks_are_read_by_newest_rounds,
            refused_access_writes_nothing,
            long_supplies_are_read_and_impossible_ones_refused,
            organisations_authenticate,
            a_revoked_organisation_certificate_is_refused_and_its_others_are_not,
            concurrent_accesses_chain_correctly,
            accesses_of_one_person_at_once_all_get_their_turn,
            dataset_info_round_trips,
            an_import_batch_applies_whole_and_once,
            a_bad_import_batch_changes_nothing_and_names_its_line,
            a_persons_own_history_is_read_without_logging,
            a_hospital_read_is_logged_once_after_the_crews_access,
        );
    };
}
