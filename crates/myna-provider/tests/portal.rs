#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The patient portal's API, attacked: a person signs in with their card's signature over a
//! challenge and sees their own accesses; a swapped card, another key, a replayed or altered
//! or expired challenge, a revoked or unknown card are each refused, and nothing is logged.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use chrono::{DateTime, Duration, Utc};
use http_body_util::BodyExt;
use myna_domain::access::{AccessEntry, Consent, ExceptionReason, Purpose, Viewer};
use myna_domain::alerts::AlertTable;
use myna_domain::person::PersonId;
use myna_domain::portal::{sha256_digest_info, signed_message};
use myna_domain::summary::View;
use myna_pki::{KeyPool, TestCa, TrustAnchor};
use myna_provider::portal::CHALLENGE_LIFETIME_MS;
use myna_provider::{BearerTokens, Provider, router};
use myna_store::testsuite::sample_person;
use myna_store::{AccessRequest, ChainReport, Organisation, ProviderStore, hash_secret};
use myna_store_sqlite::SqliteStore;
use rsa::pkcs1v15::Pkcs1v15Sign;
use serde_json::{Value, json};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, OnceLock};
use tower::ServiceExt;

const ALICE: &str = "01AE00000001";
const BOB: &str = "01AE00000002";

fn start() -> DateTime<Utc> {
    "2026-11-24T03:00:00Z".parse().unwrap()
}

struct Pki {
    ca: TestCa,
    other_ca: TestCa,
    keys: KeyPool,
}

fn pki() -> &'static Pki {
    static P: OnceLock<Pki> = OnceLock::new();
    P.get_or_init(|| Pki {
        ca: TestCa::generate(start()).unwrap(),
        other_ca: TestCa::generate(start()).unwrap(),
        keys: KeyPool::generate(2).unwrap(),
    })
}

/// A card: its certificate (by `ca`) and the key that signs.
struct Card {
    cert: Vec<u8>,
    key: usize,
}

fn card(ca: &TestCa, serial: &str, key: usize) -> Card {
    Card {
        cert: ca
            .issue_auth_cert(
                serial,
                &pki().keys.key(key).to_public_key(),
                start() - Duration::days(10),
                start() + Duration::days(1000),
            )
            .unwrap(),
        key,
    }
}

/// What the card does with `80 2A 00 80+SFI`: PKCS#1 v1.5 over the caller's DigestInfo.
fn sign(key: usize, challenge: &[u8]) -> Vec<u8> {
    pki()
        .keys
        .key(key)
        .sign(
            Pkcs1v15Sign::new_unprefixed(),
            &sha256_digest_info(&signed_message(challenge)),
        )
        .unwrap()
}

struct Fixture {
    _dir: tempfile::TempDir,
    store: Arc<SqliteStore>,
    app: axum::Router,
    clock_ms: Arc<AtomicI64>,
}

async fn access(
    store: &SqliteStore,
    serial: &str,
    org: &str,
    consent: Consent,
    view: View,
    n: i64,
) {
    store
        .access_records(AccessRequest {
            serial_hex: serial.into(),
            view,
            today: start().date_naive(),
            entry: AccessEntry {
                at_ms: start().timestamp_millis() - 3_600_000 + n,
                organisation_id: org.into(),
                viewer: Viewer {
                    organisation: org.into(),
                    team: "中原救急1".into(),
                    crew_member: "K-0123".into(),
                },
                incident_ref: format!("KWS-20261124-{n:04}"),
                person_id: PersonId(0),
                cert_serial: serial.into(),
                purpose: Purpose::EmergencyCare,
                consent,
                view,
                hospital_read: None,
                access_id: None,
            },
        })
        .await
        .unwrap();
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(&dir.path().join("provider.db")).unwrap());
    store
        .load_persons(vec![sample_person(1, ALICE), sample_person(2, BOB)])
        .await
        .unwrap();
    for (id, name) in [
        ("kawasaki-fd", "川崎市消防局"),
        ("yokohama-fd", "横浜市消防局"),
    ] {
        store
            .add_organisation(
                Organisation {
                    id: id.into(),
                    name: name.into(),
                },
                hash_secret(id),
            )
            .await
            .unwrap();
    }
    let unconscious = Consent::Exception {
        reason: ExceptionReason::Unconscious,
    };
    access(
        &store,
        ALICE,
        "kawasaki-fd",
        Consent::Obtained,
        View::Summary,
        1,
    )
    .await;
    access(
        &store,
        BOB,
        "kawasaki-fd",
        Consent::Obtained,
        View::Summary,
        2,
    )
    .await;
    access(&store, ALICE, "yokohama-fd", unconscious, View::Full, 3).await;
    let clock_ms = Arc::new(AtomicI64::new(start().timestamp_millis()));
    let c = clock_ms.clone();
    let app = router(Provider {
        store: store.clone(),
        auth: BearerTokens::new(),
        anchor: TrustAnchor::from_der(pki().ca.cert_der()).unwrap(),
        alerts: AlertTable::builtin().unwrap(),
        clock: Arc::new(move || DateTime::from_timestamp_millis(c.load(Ordering::SeqCst)).unwrap()),
    });
    Fixture {
        _dir: dir,
        store,
        app,
        clock_ms,
    }
}

async fn send(app: &axum::Router, path: &str, payload: Vec<u8>) -> (StatusCode, Value) {
    let req = Request::post(path)
        .header("content-type", "application/json")
        .body(Body::from(payload))
        .unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

async fn challenge(app: &axum::Router) -> Vec<u8> {
    let (status, v) = send(app, "/v1/portal/challenge", b"{}".to_vec()).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    B64.decode(v["challenge"].as_str().unwrap()).unwrap()
}

fn request(cert: &[u8], challenge: &[u8], signature: &[u8]) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "certificate": B64.encode(cert),
        "challenge": B64.encode(challenge),
        "signature": B64.encode(signature),
    }))
    .unwrap()
}

async fn history(app: &axum::Router, body: Vec<u8>) -> (StatusCode, Value) {
    send(app, "/v1/portal/access-history", body).await
}

fn refused(resp: &(StatusCode, Value), status: StatusCode, code: &str) {
    assert_eq!(resp.0, status, "{}", resp.1);
    assert_eq!(resp.1["error"]["code"], code, "{}", resp.1);
}

async fn log_len(store: &SqliteStore) -> u64 {
    match store.verify_access_log().await.unwrap() {
        ChainReport::Intact { entries, .. } => entries,
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_card_holder_sees_their_own_accesses_by_organisation_only() {
    let f = fixture().await;
    let alice = card(&pki().ca, ALICE, 0);
    let c = challenge(&f.app).await;
    let (status, v) = history(&f.app, request(&alice.cert, &c, &sign(alice.key, &c))).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let accesses = v["accesses"].as_array().unwrap();
    assert_eq!(accesses.len(), 2, "Alice's two accesses, not Bob's: {v}");
    assert_eq!(accesses[0]["organisation"], "横浜市消防局", "newest first");
    assert_eq!(accesses[0]["consent"]["kind"], "exception");
    assert_eq!(accesses[0]["consent"]["reason"], "unconscious");
    assert_eq!(accesses[0]["view"], "full");
    assert_eq!(accesses[1]["organisation"], "川崎市消防局");
    assert_eq!(accesses[1]["consent"]["kind"], "obtained");
    assert_eq!(accesses[1]["view"], "summary");
    assert_eq!(v["more"], false);
    let text = v.to_string();
    for hidden in ["中原救急1", "K-0123", "KWS-20261124", ALICE] {
        assert!(
            !text.contains(hidden),
            "{hidden} must not reach the patient: {v}"
        );
    }
    // Each entry is the log's: its sequence number is Alice's entry there; neither the chain
    // (the person, on PostgreSQL) nor the hash (over the team, crew and incident) is sent.
    let logged: Vec<i64> = f
        .store
        .access_log_for(PersonId(1), 10)
        .await
        .unwrap()
        .iter()
        .map(|(at, _)| at.seq)
        .collect();
    let shown: Vec<i64> = accesses
        .iter()
        .map(|a| a["seq"].as_i64().unwrap())
        .collect();
    assert_eq!(shown, logged);
    for a in accesses {
        assert!(
            a.get("hash").is_none() && a.get("partition").is_none(),
            "{a}"
        );
    }
    assert_eq!(
        log_len(&f.store).await,
        3,
        "reading the history logs nothing"
    );

    // Bob's card shows Bob's one access.
    let bob = card(&pki().ca, BOB, 1);
    let c = challenge(&f.app).await;
    let (status, v) = history(&f.app, request(&bob.cert, &c, &sign(bob.key, &c))).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["accesses"].as_array().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_without_its_cards_signature_is_refused() {
    let f = fixture().await;
    let alice = card(&pki().ca, ALICE, 0);
    let bob = card(&pki().ca, BOB, 1);
    // Alice's certificate (read without a PIN) with Bob's card's signature: a swapped card.
    let c = challenge(&f.app).await;
    let r = history(&f.app, request(&alice.cert, &c, &sign(bob.key, &c))).await;
    refused(&r, StatusCode::FORBIDDEN, "signature_invalid");
    // Alice's signature over another challenge.
    let c2 = challenge(&f.app).await;
    let r = history(&f.app, request(&alice.cert, &c, &sign(alice.key, &c2))).await;
    refused(&r, StatusCode::FORBIDDEN, "signature_invalid");
    // A bare challenge signed without the portal's tag (a signature made for something else).
    let bare = pki()
        .keys
        .key(0)
        .sign(Pkcs1v15Sign::new_unprefixed(), &sha256_digest_info(&c))
        .unwrap();
    let r = history(&f.app, request(&alice.cert, &c, &bare)).await;
    refused(&r, StatusCode::FORBIDDEN, "signature_invalid");
    // A refused signature did not spend the challenge: Alice can still use it.
    let r = history(&f.app, request(&alice.cert, &c, &sign(alice.key, &c))).await;
    assert_eq!(r.0, StatusCode::OK, "{}", r.1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_challenge_is_used_once_before_it_expires_and_as_issued() {
    let f = fixture().await;
    let alice = card(&pki().ca, ALICE, 0);
    let c = challenge(&f.app).await;
    let signed = request(&alice.cert, &c, &sign(alice.key, &c));
    assert_eq!(history(&f.app, signed.clone()).await.0, StatusCode::OK);
    // Replayed.
    refused(
        &history(&f.app, signed).await,
        StatusCode::FORBIDDEN,
        "challenge_used",
    );
    // Altered (a later expiry written in), and signed as altered.
    let mut bent = challenge(&f.app).await;
    bent[33] ^= 0x01;
    let r = history(&f.app, request(&alice.cert, &bent, &sign(alice.key, &bent))).await;
    refused(&r, StatusCode::FORBIDDEN, "challenge_invalid");
    // Made up.
    let made_up = vec![7u8; 72];
    let r = history(
        &f.app,
        request(&alice.cert, &made_up, &sign(alice.key, &made_up)),
    )
    .await;
    refused(&r, StatusCode::FORBIDDEN, "challenge_invalid");
    // Expired.
    let c = challenge(&f.app).await;
    f.clock_ms
        .fetch_add(CHALLENGE_LIFETIME_MS + 1, Ordering::SeqCst);
    let r = history(&f.app, request(&alice.cert, &c, &sign(alice.key, &c))).await;
    refused(&r, StatusCode::FORBIDDEN, "challenge_expired");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn untrusted_revoked_unknown_and_malformed_requests_are_refused() {
    let f = fixture().await;
    // A certificate of another CA, for a key that does sign: the chain decides.
    let forged = card(&pki().other_ca, ALICE, 0);
    let c = challenge(&f.app).await;
    let r = history(&f.app, request(&forged.cert, &c, &sign(forged.key, &c))).await;
    refused(
        &r,
        StatusCode::UNPROCESSABLE_ENTITY,
        "certificate_untrusted",
    );
    // A valid card no person is linked to.
    let stranger = card(&pki().ca, "01AE000000FF", 0);
    let c = challenge(&f.app).await;
    let r = history(&f.app, request(&stranger.cert, &c, &sign(stranger.key, &c))).await;
    refused(&r, StatusCode::NOT_FOUND, "unknown_serial");
    // A revoked card.
    f.store.revoke_serial(BOB, "lost").await.unwrap();
    let bob = card(&pki().ca, BOB, 1);
    let c = challenge(&f.app).await;
    let r = history(&f.app, request(&bob.cert, &c, &sign(bob.key, &c))).await;
    refused(&r, StatusCode::UNPROCESSABLE_ENTITY, "certificate_revoked");
    // Malformed bodies.
    let r = history(&f.app, b"{\"certificate\":\"!!\"}".to_vec()).await;
    refused(&r, StatusCode::BAD_REQUEST, "malformed_request");
    let alice = card(&pki().ca, ALICE, 0);
    let mut extra: Value =
        serde_json::from_slice(&request(&alice.cert, &c, &sign(alice.key, &c))).unwrap();
    extra["person_id"] = json!(2);
    let r = history(&f.app, serde_json::to_vec(&extra).unwrap()).await;
    refused(&r, StatusCode::BAD_REQUEST, "malformed_request");
    let r = history(&f.app, request(&alice.cert, &c, b"short")).await;
    refused(&r, StatusCode::FORBIDDEN, "signature_invalid");
    assert_eq!(log_len(&f.store).await, 3, "nothing refused wrote anything");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entry_edited_in_the_database_is_not_shown_as_the_logs() {
    let f = fixture().await;
    let conn = rusqlite::Connection::open(f._dir.path().join("provider.db")).unwrap();
    conn.execute(
        "UPDATE access_log SET viewer_organisation = 'someone else' WHERE seq = 3",
        [],
    )
    .unwrap();
    let alice = card(&pki().ca, ALICE, 0);
    let c = challenge(&f.app).await;
    let r = history(&f.app, request(&alice.cert, &c, &sign(alice.key, &c))).await;
    refused(&r, StatusCode::INTERNAL_SERVER_ERROR, "internal");
    assert!(
        !r.1.to_string().contains("someone else"),
        "no detail reaches the patient: {}",
        r.1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entry_deleted_before_the_persons_own_is_found_by_its_link() {
    let f = fixture().await;
    // Bob's entry sits between Alice's two in SQLite's one chain.
    let conn = rusqlite::Connection::open(f._dir.path().join("provider.db")).unwrap();
    conn.execute("DELETE FROM access_log WHERE seq = 2", [])
        .unwrap();
    let alice = card(&pki().ca, ALICE, 0);
    let c = challenge(&f.app).await;
    let r = history(&f.app, request(&alice.cert, &c, &sign(alice.key, &c))).await;
    refused(&r, StatusCode::INTERNAL_SERVER_ERROR, "internal");
}

/// A bureau's report of a hospital's read, with the bureau's bearer token (`None`: no
/// credential).
async fn report_read(app: &axum::Router, org: Option<&str>, body: &Value) -> (StatusCode, Value) {
    let mut req = Request::post("/v1/hospital-reads").header("content-type", "application/json");
    if let Some(org) = org {
        req = req.header("authorization", format!("Bearer {org}.{org}"));
    }
    let resp = app
        .clone()
        .oneshot(req.body(Body::from(body.to_string())).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// Kawasaki's crew read Alice's summary (access 1, incident 0001); the destination hospital's
/// staff read the copy ten minutes later.
fn hospital_read(access_id: i64, incident: &str, ems_view_seq: i64) -> Value {
    json!({
        "access_id": access_id,
        "incident_ref": incident,
        "institution_code": "1410000001",
        "hospital_name": "川崎市立川崎病院",
        "staff": "er-nurse-3",
        "read_at_ms": start().timestamp_millis() - 3_000_000,
        "ems_view_seq": ems_view_seq,
    })
}

/// A bureau reports that a hospital read its crew's copy, and the patient's history then names
/// the hospital (never the staff member), in the same chain the crew's access is in. Another
/// bureau cannot report on that access, nor can the bureau on another's, another incident's,
/// or an unauthenticated caller; a report sent again, or a later read by the same hospital, is
/// the one entry; a read dated before the access or ahead of the clock, a code that is not ten
/// digits and a malformed body are refused; nothing refused is logged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hospital_read_the_bureau_reports_names_the_hospital_in_the_history() {
    let f = fixture().await;
    let alice_kawasaki = hospital_read(1, "KWS-20261124-0001", 7);

    let r = report_read(&f.app, None, &alice_kawasaki).await;
    refused(&r, StatusCode::UNAUTHORIZED, "unauthenticated");
    let r = report_read(&f.app, Some("yokohama-fd"), &alice_kawasaki).await;
    refused(&r, StatusCode::NOT_FOUND, "unknown_access");
    let r = report_read(
        &f.app,
        Some("kawasaki-fd"),
        &hospital_read(3, "KWS-20261124-0003", 7),
    )
    .await;
    refused(&r, StatusCode::NOT_FOUND, "unknown_access");
    let r = report_read(
        &f.app,
        Some("kawasaki-fd"),
        &hospital_read(1, "KWS-20261124-0002", 7),
    )
    .await;
    refused(&r, StatusCode::NOT_FOUND, "unknown_access");
    let mut extra = alice_kawasaki.clone();
    extra["person_id"] = json!(2);
    let r = report_read(&f.app, Some("kawasaki-fd"), &extra).await;
    refused(&r, StatusCode::BAD_REQUEST, "malformed_request");
    let r = report_read(
        &f.app,
        Some("kawasaki-fd"),
        &hospital_read(1, "KWS-20261124-0001", 0),
    )
    .await;
    refused(&r, StatusCode::BAD_REQUEST, "malformed_request");
    let mut code = alice_kawasaki.clone();
    code["institution_code"] = json!("14-1000001");
    let r = report_read(&f.app, Some("kawasaki-fd"), &code).await;
    refused(&r, StatusCode::BAD_REQUEST, "malformed_request");
    let mut ahead = alice_kawasaki.clone();
    ahead["read_at_ms"] = json!(start().timestamp_millis() + 3_600_000);
    let r = report_read(&f.app, Some("kawasaki-fd"), &ahead).await;
    refused(&r, StatusCode::UNPROCESSABLE_ENTITY, "read_time_ahead");
    let mut before = alice_kawasaki.clone();
    before["read_at_ms"] = json!(start().timestamp_millis() - 7_200_000);
    let r = report_read(&f.app, Some("kawasaki-fd"), &before).await;
    refused(&r, StatusCode::BAD_REQUEST, "malformed_request");
    assert_eq!(log_len(&f.store).await, 3, "nothing refused is logged");

    let (status, first) = report_read(&f.app, Some("kawasaki-fd"), &alice_kawasaki).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    let (status, again) = report_read(&f.app, Some("kawasaki-fd"), &alice_kawasaki).await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(
        first["access_id"], again["access_id"],
        "a report sent again"
    );
    assert_eq!(log_len(&f.store).await, 4);
    let mut later = alice_kawasaki.clone();
    later["staff"] = json!("er-doctor-1");
    later["ems_view_seq"] = json!(8);
    let (status, same) = report_read(&f.app, Some("kawasaki-fd"), &later).await;
    assert_eq!(status, StatusCode::OK, "{same}");
    assert_eq!(
        same["access_id"], first["access_id"],
        "the hospital's first read stands"
    );
    assert_eq!(log_len(&f.store).await, 4);

    let alice = card(&pki().ca, ALICE, 0);
    let c = challenge(&f.app).await;
    let (status, v) = history(&f.app, request(&alice.cert, &c, &sign(alice.key, &c))).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let accesses = v["accesses"].as_array().unwrap();
    assert_eq!(accesses.len(), 3, "{v}");
    let read = &accesses[0];
    assert_eq!(read["hospital"], "川崎市立川崎病院");
    assert_eq!(
        read["organisation"], "川崎市消防局",
        "the bureau whose crew passed it on"
    );
    assert_eq!(
        read["at_ms"], alice_kawasaki["read_at_ms"],
        "when the hospital read it"
    );
    assert_eq!(
        read["consent"]["kind"], "obtained",
        "the crew's basis, passed on"
    );
    assert_eq!(read["view"], "summary");
    for crew in &accesses[1..] {
        assert!(crew.get("hospital").is_none(), "{crew}");
    }
    assert!(
        !v.to_string().contains("er-nurse-3"),
        "the staff member is not named: {v}"
    );
    // Bob's history is untouched.
    let bob = card(&pki().ca, BOB, 1);
    let c = challenge(&f.app).await;
    let (_, v) = history(&f.app, request(&bob.cert, &c, &sign(bob.key, &c))).await;
    assert_eq!(v["accesses"].as_array().unwrap().len(), 1);
    assert!(matches!(
        f.store.verify_access_log().await.unwrap(),
        ChainReport::Intact { .. }
    ));
}
