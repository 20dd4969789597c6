#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The provider's HTTP contract against a real SQLite store and a real test CA.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use http_body_util::BodyExt;
use myna_domain::access::{Consent, ExceptionReason};
use myna_domain::alerts::AlertTable;
use myna_domain::person::PersonId;
use myna_pki::{KeyPool, TestCa, TrustAnchor};
use myna_provider::{BearerTokens, Provider, router};
use myna_store::testsuite::sample_person;
use myna_store::{ChainReport, Organisation, ProviderStore, hash_secret};
use myna_store_sqlite::SqliteStore;
use serde_json::{Value, json};
use std::sync::{Arc, OnceLock};
use tower::ServiceExt;

const SERIAL: &str = "01AB00000001";
const TOKEN: &str = "kawasaki-fd.0123456789abcdef0123456789abcdef";

fn now() -> DateTime<Utc> {
    "2026-11-24T03:00:00Z".parse().unwrap()
}

struct Pki {
    ca: TestCa,
    other: TestCa,
    keys: KeyPool,
}

fn pki() -> &'static Pki {
    static P: OnceLock<Pki> = OnceLock::new();
    P.get_or_init(|| Pki {
        ca: TestCa::generate(now()).unwrap(),
        other: TestCa::generate(now()).unwrap(),
        keys: KeyPool::generate(1).unwrap(),
    })
}

fn cert(ca: &TestCa, serial: &str, from: DateTime<Utc>, to: DateTime<Utc>) -> String {
    let der = ca
        .issue_auth_cert(serial, &pki().keys.key(0).to_public_key(), from, to)
        .unwrap();
    base64::engine::general_purpose::STANDARD.encode(der)
}

/// A certificate from the trusted CA for a 1024-bit key, which JPKI never issues.
fn weak_key_cert() -> Vec<u8> {
    let weak = myna_pki::PrivateKey::new(&mut rand::rng(), 1024).unwrap();
    pki()
        .ca
        .issue_auth_cert(
            SERIAL,
            &weak.to_public_key(),
            now() - Duration::days(1),
            now() + Duration::days(10),
        )
        .unwrap()
}

fn good_cert(serial: &str) -> String {
    cert(
        &pki().ca,
        serial,
        now() - Duration::days(10),
        now() + Duration::days(1000),
    )
}

struct Fixture {
    _dir: tempfile::TempDir,
    store: Arc<SqliteStore>,
    app: axum::Router,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(&dir.path().join("provider.db")).unwrap());
    store
        .load_persons(vec![
            sample_person(1, SERIAL),
            sample_person(2, "01AB00000002"),
        ])
        .await
        .unwrap();
    store
        .add_organisation(
            Organisation {
                id: "kawasaki-fd".into(),
                name: "川崎市消防局".into(),
            },
            hash_secret("0123456789abcdef0123456789abcdef"),
        )
        .await
        .unwrap();
    let app = router(Provider {
        store: store.clone(),
        auth: BearerTokens::new(),
        anchor: TrustAnchor::from_der(pki().ca.cert_der()).unwrap(),
        alerts: AlertTable::builtin().unwrap(),
        clock: Arc::new(now),
    });
    Fixture {
        _dir: dir,
        store,
        app,
    }
}

fn body(certificate: &str, consent: Value) -> Value {
    json!({
        "certificate": certificate,
        "purpose": "emergency_care",
        "consent": consent,
        "incident_ref": "KWS-20261124-0042",
        "viewer": {"organisation": "kawasaki-fd", "team": "中原救急1", "crew_member": "K-0123"}
    })
}

async fn send(
    app: &axum::Router,
    path: &str,
    token: Option<&str>,
    content_type: &str,
    payload: Vec<u8>,
) -> (StatusCode, Value) {
    let mut req = Request::post(path).header("content-type", content_type);
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let resp = app
        .clone()
        .oneshot(req.body(Body::from(payload)).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

async fn post(app: &axum::Router, v: &Value) -> (StatusCode, Value) {
    send(
        app,
        "/v1/emergency-summary",
        Some(TOKEN),
        "application/json",
        serde_json::to_vec(v).unwrap(),
    )
    .await
}

async fn log_len(store: &SqliteStore) -> u64 {
    match store.verify_access_log().await.unwrap() {
        ChainReport::Intact { entries, .. } => entries,
        other => panic!("{other:?}"),
    }
}

fn assert_error(resp: &(StatusCode, Value), status: StatusCode, code: &str) {
    assert_eq!(resp.0, status, "{}", resp.1);
    assert_eq!(resp.1["error"]["code"], code, "{}", resp.1);
    assert!(
        resp.1["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consent_path_returns_alerts_first_and_logs_the_view() {
    let f = fixture().await;
    let (status, v) = post(
        &f.app,
        &body(&good_cert(SERIAL), json!({"kind": "obtained"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["access_id"], 1);
    let s = &v["summary"];
    assert_eq!(s["view"], "summary");
    assert_eq!(s["patient"]["name"], "川崎　花子");
    assert_eq!(
        s["alerts"][0]["class"], "doac",
        "apixaban implies the DOAC alert"
    );
    assert_eq!(s["alerts"][0]["evidence"][0]["code"], "3339004F1029");
    assert_eq!(
        s["sections"]["visits"].as_array().unwrap().len(),
        1,
        "3-month window"
    );
    assert!(
        s["data_currency"]["note_ja"]
            .as_str()
            .unwrap()
            .contains("遅れ")
    );
    let log = f.store.access_log_for(PersonId(1), 10).await.unwrap();
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].1.entry.consent, Consent::Obtained);
    assert_eq!(log[0].1.entry.organisation_id, "kawasaki-fd");
    assert_eq!(log[0].1.entry.viewer.team, "中原救急1");
    assert_eq!(log[0].1.entry.incident_ref, "KWS-20261124-0042");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exception_path_records_the_reason_and_full_view_widens_windows() {
    let f = fixture().await;
    let req = body(
        &good_cert(SERIAL),
        json!({"kind": "exception", "reason": "unconscious"}),
    );
    let (status, v) = send(
        &f.app,
        "/v1/emergency-summary?view=full",
        Some(TOKEN),
        "application/json",
        serde_json::to_vec(&req).unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["summary"]["view"], "full");
    assert_eq!(
        v["summary"]["sections"]["visits"].as_array().unwrap().len(),
        2,
        "5-year window"
    );
    let log = f.store.access_log_for(PersonId(1), 10).await.unwrap();
    assert_eq!(
        log[0].1.entry.consent,
        Consent::Exception {
            reason: ExceptionReason::Unconscious
        }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_error_has_its_code_and_changes_nothing() {
    let f = fixture().await;
    let ok = body(&good_cert(SERIAL), json!({"kind": "obtained"}));
    assert_eq!(post(&f.app, &ok).await.0, StatusCode::OK);

    // Authentication.
    let raw = serde_json::to_vec(&ok).unwrap();
    for token in [
        None,
        Some("kawasaki-fd.wrong"),
        Some("no-dot"),
        Some("yokohama.0123456789abcdef0123456789abcdef"),
    ] {
        let r = send(
            &f.app,
            "/v1/emergency-summary",
            token,
            "application/json",
            raw.clone(),
        )
        .await;
        assert_error(&r, StatusCode::UNAUTHORIZED, "unauthenticated");
    }
    let mut other_org = ok.clone();
    other_org["viewer"]["organisation"] = json!("yokohama-fd");
    assert_error(
        &post(&f.app, &other_org).await,
        StatusCode::FORBIDDEN,
        "viewer_organisation_mismatch",
    );

    // Malformed requests.
    let bad_json = send(
        &f.app,
        "/v1/emergency-summary",
        Some(TOKEN),
        "application/json",
        b"{not json".to_vec(),
    )
    .await;
    assert_error(&bad_json, StatusCode::BAD_REQUEST, "malformed_request");
    let mut cases: Vec<Value> = Vec::new();
    let mut v = ok.clone();
    v.as_object_mut().unwrap().remove("incident_ref");
    cases.push(v);
    let mut v = ok.clone();
    v["extra"] = json!(1);
    cases.push(v);
    let mut v = ok.clone();
    v["certificate"] = json!("***not base64***");
    cases.push(v);
    let mut v = ok.clone();
    v["purpose"] = json!("research");
    cases.push(v);
    let mut v = ok.clone();
    v["consent"] = json!({"kind": "exception", "reason": "curious"});
    cases.push(v);
    let mut v = ok.clone();
    v["consent"] = json!({"kind": "exception"});
    cases.push(v);
    let mut v = ok.clone();
    v["consent"] = json!({"kind": "obtained", "reason": "unconscious"});
    cases.push(v);
    let mut v = ok.clone();
    v["consent"] = json!({"kind": "exception", "reason": "unconscious", "x": 1});
    cases.push(v);
    let mut v = ok.clone();
    v["viewer"]["team"] = json!("");
    cases.push(v);
    let mut v = ok.clone();
    v["incident_ref"] = json!("x".repeat(65));
    cases.push(v);
    for case in &cases {
        assert_error(
            &post(&f.app, case).await,
            StatusCode::BAD_REQUEST,
            "malformed_request",
        );
    }
    let bad_view = send(
        &f.app,
        "/v1/emergency-summary?view=everything",
        Some(TOKEN),
        "application/json",
        raw.clone(),
    )
    .await;
    assert_error(&bad_view, StatusCode::BAD_REQUEST, "malformed_request");
    let huge = vec![b' '; myna_provider::MAX_BODY_BYTES + 1];
    let r = send(
        &f.app,
        "/v1/emergency-summary",
        Some(TOKEN),
        "application/json",
        huge,
    )
    .await;
    assert_error(&r, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
    let r = send(
        &f.app,
        "/v1/emergency-summary",
        Some(TOKEN),
        "text/plain",
        raw.clone(),
    )
    .await;
    assert_error(
        &r,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    );

    // Certificates.
    let p = pki();
    let b64 = |der: &[u8]| base64::engine::general_purpose::STANDARD.encode(der);
    let cert_cases = [
        (b64(b"garbage"), "certificate_malformed"),
        (
            cert(
                &p.other,
                SERIAL,
                now() - Duration::days(1),
                now() + Duration::days(10),
            ),
            "certificate_untrusted",
        ),
        (
            cert(
                &p.ca,
                SERIAL,
                now() - Duration::days(2000),
                now() - Duration::days(1),
            ),
            "certificate_expired",
        ),
        (
            cert(
                &p.ca,
                SERIAL,
                now() + Duration::days(1),
                now() + Duration::days(10),
            ),
            "certificate_not_yet_valid",
        ),
        (b64(p.ca.cert_der()), "certificate_wrong_key_usage"),
        (b64(&weak_key_cert()), "certificate_unsupported"),
    ];
    for (certificate, code) in cert_cases {
        let r = post(&f.app, &body(&certificate, json!({"kind": "obtained"}))).await;
        assert_error(&r, StatusCode::UNPROCESSABLE_ENTITY, code);
    }
    let r = post(
        &f.app,
        &body(&good_cert("01FF00000999"), json!({"kind": "obtained"})),
    )
    .await;
    assert_error(&r, StatusCode::NOT_FOUND, "unknown_serial");
    f.store
        .revoke_serial("01AB00000002", "keyCompromise")
        .await
        .unwrap();
    let r = post(
        &f.app,
        &body(&good_cert("01AB00000002"), json!({"kind": "obtained"})),
    )
    .await;
    assert_error(&r, StatusCode::UNPROCESSABLE_ENTITY, "certificate_revoked");

    assert_eq!(
        log_len(&f.store).await,
        1,
        "only the one successful request is logged"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_answers() {
    let f = fixture().await;
    let resp = f
        .app
        .clone()
        .oneshot(Request::get("/healthz").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
}

mod mutated_requests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Any corruption of a valid request is refused with a 4xx or served normally, never a
        /// 5xx; and the log holds exactly one entry per 200.
        #[test]
        fn corrupted_bodies_never_fail_the_server(edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8)) {
            let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
            rt.block_on(async {
                let f = fixture().await;
                let mut bytes = serde_json::to_vec(&body(&good_cert(SERIAL), json!({"kind": "obtained"}))).unwrap();
                for (pos, b) in &edits {
                    let i = pos % bytes.len();
                    bytes[i] = *b;
                }
                let (status, _) = send(&f.app, "/v1/emergency-summary", Some(TOKEN), "application/json", bytes).await;
                assert!(!status.is_server_error(), "{status}");
                let expected = u64::from(status == StatusCode::OK);
                assert_eq!(log_len(&f.store).await, expected);
            });
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inconsistent_stored_data_is_an_internal_error_that_logs_nothing() {
    let f = fixture().await;
    // A serial linked to a person who does not exist, as a broken import would leave it.
    let conn = rusqlite::Connection::open(f._dir.path().join("provider.db")).unwrap();
    conn.execute(
        "INSERT INTO auth_cert (serial, person_id) VALUES ('01AB0000DEAD', 999)",
        [],
    )
    .unwrap();
    drop(conn);
    let r = post(
        &f.app,
        &body(&good_cert("01AB0000DEAD"), json!({"kind": "obtained"})),
    )
    .await;
    assert_error(&r, StatusCode::INTERNAL_SERVER_ERROR, "internal");
    assert!(
        !r.1["error"]["message"].as_str().unwrap().contains("999"),
        "details stay in the log"
    );
    assert_eq!(log_len(&f.store).await, 0);
}

/// Mutual TLS as the provider sees it, one request at a time: the certificate's common name is
/// the organisation, which must be registered and enabled, and the certificate's dates are
/// checked on the request itself (a kept-alive connection or a resumed session outlives the
/// handshake that checked them first).
#[tokio::test]
async fn a_bureau_certificate_names_its_organisation_its_dates_are_checked_per_request_and_a_revoked_key_is_refused()
 {
    use myna_provider::{CallerAuth, ClientCertificates};
    use myna_tls::PeerCertificate;
    use myna_tls::identity::{ClientSubject, issue_with_key};
    use myna_tls::rustls::pki_types::CertificateDer;
    use myna_tls::rustls::pki_types::pem::PemObject;

    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("provider.db")).unwrap();
    store
        .add_organisation(
            Organisation {
                id: "kawasaki-fd".into(),
                name: "川崎市消防局".into(),
            },
            hash_secret("s"),
        )
        .await
        .unwrap();
    let ca = myna_tls::devca::new_named_ca("org CA", (2026, 1, 1)).unwrap();
    let cert = |org: &str, day: myna_tls::devca::Day| {
        let subject = ClientSubject {
            common_name: org.into(),
            organization: "x".into(),
        };
        let pem = issue_with_key(&ca.cert_pem, &ca.key_pem, &subject, day)
            .unwrap()
            .cert_pem;
        PeerCertificate(
            CertificateDer::from_pem_slice(pem.as_bytes())
                .unwrap()
                .to_vec()
                .into(),
        )
    };
    let today = {
        use chrono::Datelike;
        let d = Utc::now().date_naive();
        (d.year(), d.month() as u8, d.day() as u8)
    };
    let auth = ClientCertificates::new();
    let headers = axum::http::HeaderMap::new();
    let org = auth
        .authenticate(&store, &headers, Some(&cert("kawasaki-fd", today)))
        .await
        .unwrap();
    assert_eq!(org.id, "kawasaki-fd");
    for (what, peer) in [
        (
            "an organisation never registered",
            Some(cert("nobody-fd", today)),
        ),
        (
            "a certificate that ended",
            Some(cert("kawasaki-fd", (2020, 1, 1))),
        ),
        (
            "a certificate not yet valid",
            Some(cert("kawasaki-fd", (today.0 + 1, 1, 1))),
        ),
        ("no certificate", None),
    ] {
        let refused = auth.authenticate(&store, &headers, peer.as_ref()).await;
        assert!(
            matches!(refused, Err(myna_provider::ApiError::Unauthenticated)),
            "{what} was accepted"
        );
    }
    // A bearer token of the same organisation counts for nothing here.
    let mut bearer = axum::http::HeaderMap::new();
    bearer.insert("authorization", "Bearer kawasaki-fd.s".parse().unwrap());
    assert!(auth.authenticate(&store, &bearer, None).await.is_err());

    // A revoked key: every certificate for it is refused, not only the one revoked (a second
    // certificate for the same key stands in for a re-encoded signature, which also changes
    // the certificate's hash but not its key); the organisation's other key still works.
    let request = myna_tls::identity::new_request("kawasaki").unwrap();
    let subject = ClientSubject {
        common_name: "kawasaki-fd".into(),
        organization: "x".into(),
    };
    let for_the_key = || {
        let checked = myna_tls::identity::check_request(&request.csr_pem).unwrap();
        let pem = myna_tls::identity::issue_for_request(
            &ca.cert_pem,
            &ca.key_pem,
            checked,
            &subject,
            today,
        )
        .unwrap();
        PeerCertificate(
            CertificateDer::from_pem_slice(pem.as_bytes())
                .unwrap()
                .to_vec()
                .into(),
        )
    };
    let (first, second) = (for_the_key(), for_the_key());
    assert_ne!(
        myna_tls::identity::certificate_sha256(&first.0),
        myna_tls::identity::certificate_sha256(&second.0),
        "two certificates"
    );
    let key_hash = hex::encode(
        myna_tls::identity::certificate_facts(&first.0)
            .unwrap()
            .public_key_sha256,
    );
    assert!(
        store
            .revoke_organisation_certificate("kawasaki-fd", &key_hash, "leaked")
            .await
            .unwrap()
    );
    let fresh = ClientCertificates::new();
    for peer in [&first, &second] {
        assert!(
            matches!(
                fresh.authenticate(&store, &headers, Some(peer)).await,
                Err(myna_provider::ApiError::Unauthenticated)
            ),
            "a certificate for the revoked key was accepted"
        );
    }
    let other_key = cert("kawasaki-fd", today);
    assert_eq!(
        fresh
            .authenticate(&store, &headers, Some(&other_key))
            .await
            .unwrap()
            .id,
        "kawasaki-fd"
    );
}
