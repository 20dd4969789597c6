#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Tablets proving themselves to ems by client certificate (mutual TLS), attacked: a real ems
//! on a loopback TLS listener with a device CA, its SQLite file, and the tablet's own client.
//! A tablet enrolls, an admin approves, and then: a certificate of another CA, a certificate
//! of the device CA that no approval bound, a bearer token, and a revoked tablet's certificate
//! are each refused; revoking ends the open push stream at once.

use http_body_util::BodyExt;
use myna_ems::Ems;
use myna_ems::enroll::DeviceCa;
use myna_store::ems::EmsStore;
use myna_store_sqlite::EmsSqlite;
use myna_terminal::ems_client::{CallError, EmsClient};
use myna_tls::identity::{ClientSubject, check_request, issue_with_key, new_request};
use myna_tls::{ClientIdentity, Roots, client_config, devca, server_config};
use myna_wire::terminal::{EnrollBody, EnrollStatus, ErrorCode};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

const PASSWORD: &str = "correct horse battery staple";
const TODAY: devca::Day = (2026, 11, 1);

struct World {
    dir: tempfile::TempDir,
    store: Arc<EmsSqlite>,
    ems: Arc<Ems<EmsSqlite>>,
    bureau: myna_store::ems::Bureau,
    url: String,
    server_ca: PathBuf,
    device_ca: devca::Generated,
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

async fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let server_ca = devca::new_ca(TODAY).unwrap();
    let server = devca::issue_server(&server_ca.key_pem, &["127.0.0.1".into()], TODAY).unwrap();
    let device_ca = devca::new_named_ca("test device CA", TODAY).unwrap();
    let server_ca_path = write(dir.path(), "ca.pem", &server_ca.cert_pem);
    let cert = write(dir.path(), "ems.pem", &server.cert_pem);
    let key = write(dir.path(), "ems.key", &server.key_pem);
    let device_ca_path = write(dir.path(), "device-ca.pem", &device_ca.cert_pem);

    let store = Arc::new(EmsSqlite::open(&dir.path().join("ems.db")).unwrap());
    let hash = myna_ems::auth::hash_password(PASSWORD).unwrap();
    let seed = myna_ems::seed::kawasaki("http://127.0.0.1:9", "/nonexistent", |_, _| hash.clone());
    let bureau_id = store.seed_bureau(seed).await.unwrap();
    let bureau = store.bureau_by_id(bureau_id).await.unwrap().unwrap();
    let mut ems = Ems::new(store.clone(), Arc::new(chrono::Utc::now));
    ems.tls = true;
    ems.device_ca = Some(Arc::new(DeviceCa::new(
        device_ca.cert_pem.clone(),
        device_ca.key_pem.clone(),
    )));
    let ems = Arc::new(ems);
    let tls = server_config(&cert, &key, Some(&device_ca_path)).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("https://{}", listener.local_addr().unwrap());
    tokio::spawn(myna_web::serve::serve(
        listener,
        myna_ems::router(ems.clone()),
        Default::default(),
        Some(tls),
        std::future::pending(),
    ));
    World {
        dir,
        store,
        ems,
        bureau,
        url,
        server_ca: server_ca_path,
        device_ca,
    }
}

impl World {
    fn roots(&self) -> Roots {
        Roots::File(self.server_ca.clone())
    }

    /// A client presenting `cert` and `key` (PEM texts).
    fn client_with(&self, name: &str, cert: &str, key: &str) -> EmsClient {
        let identity = ClientIdentity {
            cert: write(self.dir.path(), &format!("{name}.pem"), cert),
            key: write(self.dir.path(), &format!("{name}.key"), key),
        };
        let tls = client_config(&self.roots(), Some(&identity)).unwrap();
        EmsClient::without_bearer(&self.url, tls).unwrap()
    }

    fn anonymous(&self) -> EmsClient {
        EmsClient::without_bearer(&self.url, client_config(&self.roots(), None).unwrap()).unwrap()
    }

    async fn team(&self, name: &str) -> i64 {
        self.store
            .teams(self.bureau.id)
            .await
            .unwrap()
            .into_iter()
            .find(|t| t.name == name)
            .unwrap()
            .id
    }

    /// An admin's invitation for `team`.
    async fn invite(&self, team: &str) -> String {
        myna_ems::enroll::invite(
            self.store.as_ref(),
            &self.bureau,
            self.team(team).await,
            "admin",
            self.ems.now_ms(),
        )
        .await
        .unwrap()
        .unwrap()
    }

    /// Enrolls a tablet for `team` the whole way: invitation, key, request, approval,
    /// collection.
    async fn enrolled(&self, name: &str, team: &str) -> (EmsClient, i64) {
        let request = new_request(name).unwrap();
        let anonymous = self.anonymous();
        let accepted = anonymous
            .enroll(&EnrollBody {
                bureau: self.bureau.code.clone(),
                invite: self.invite(team).await,
                label: name.into(),
                csr_pem: request.csr_pem.clone(),
            })
            .await
            .unwrap();
        assert_eq!(
            accepted.code,
            check_request(&request.csr_pem).unwrap().comparison_code(),
            "the code ems shows is the code of the tablet's own key"
        );
        assert_eq!(
            anonymous.enroll_status(&accepted.poll_token).await.unwrap(),
            EnrollStatus::Pending
        );
        let waiting = self.store.enrollments(self.bureau.id, true).await.unwrap();
        let id = waiting.iter().find(|e| e.code == accepted.code).unwrap().id;
        let terminal = myna_ems::enroll::approve(
            self.store.as_ref(),
            self.ems.device_ca.as_deref().unwrap(),
            &self.bureau,
            id,
            self.ems.enrollment_limits,
            self.ems.now_ms(),
            TODAY,
        )
        .await
        .unwrap()
        .expect("approved");
        let EnrollStatus::Approved { certificate_pem } =
            anonymous.enroll_status(&accepted.poll_token).await.unwrap()
        else {
            panic!("no certificate after approval");
        };
        (
            self.client_with(name, &certificate_pem, &request.key_pem),
            terminal,
        )
    }
}

fn refused_code(r: Result<impl std::fmt::Debug, CallError>) -> ErrorCode {
    match r {
        Err(CallError::Refused { code, .. }) => code,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

fn crew_login(team: &str) -> String {
    let i = myna_ems::seed::KAWASAKI_TEAMS
        .iter()
        .flat_map(|(_, teams)| teams.iter())
        .position(|t| *t == team)
        .unwrap();
    myna_ems::seed::crew_login(i + 1)
}

#[tokio::test]
async fn an_approved_tablet_is_its_team_by_its_certificate_and_nothing_else_passes() {
    let w = world().await;
    let (tablet, terminal) = w.enrolled("中原1 車載", "中原救急1").await;
    let me = tablet.whoami().await.unwrap();
    assert_eq!(me.terminal_id, terminal);
    assert_eq!(me.team_name, "中原救急1");
    assert_eq!(me.bureau, w.bureau.code);

    // A certificate from another CA: the handshake itself fails.
    let rogue_ca = devca::new_named_ca("rogue CA", TODAY).unwrap();
    let subject = ClientSubject {
        common_name: "中原1 車載".into(),
        organization: w.bureau.code.clone(),
    };
    let rogue = issue_with_key(&rogue_ca.cert_pem, &rogue_ca.key_pem, &subject, TODAY).unwrap();
    let other_ca = w.client_with("rogue", &rogue.cert_pem, &rogue.key_pem);
    // The server refuses the handshake (hyper reports only "client error (SendRequest)",
    // not the TLS alert).
    assert!(
        matches!(other_ca.whoami().await, Err(CallError::Offline(_))),
        "a certificate of another CA was accepted"
    );
    // A client without any certificate reaches the same ems at once (and is told to enroll),
    // so the failure above is the rogue certificate's.
    assert_eq!(
        refused_code(w.anonymous().whoami().await),
        ErrorCode::TerminalCertificateRequired
    );

    // The device CA's certificate with the same names that no approval bound: unknown. (ems
    // trusts its own record of what it issued, not the names in a certificate.)
    let unbound =
        issue_with_key(&w.device_ca.cert_pem, &w.device_ca.key_pem, &subject, TODAY).unwrap();
    let unbound = w.client_with("unbound", &unbound.cert_pem, &unbound.key_pem);
    assert_eq!(
        refused_code(unbound.whoami().await),
        ErrorCode::TerminalUnknown
    );

    // A bearer token of a registered terminal counts for nothing here.
    let token = myna_web::random_token();
    w.store
        .add_terminal(
            w.bureau.id,
            w.team("中原救急1").await,
            "token tablet",
            myna_store::hash_secret(&token),
        )
        .await
        .unwrap();
    let bearer = EmsClient::new(&w.url, &token, client_config(&w.roots(), None).unwrap()).unwrap();
    assert_eq!(
        refused_code(bearer.whoami().await),
        ErrorCode::TerminalCertificateRequired
    );
    // Nor does no credential at all.
    assert_eq!(
        refused_code(w.anonymous().whoami().await),
        ErrorCode::TerminalCertificateRequired
    );
}

#[tokio::test]
async fn a_crew_session_stays_with_the_tablet_it_was_opened_on() {
    let w = world().await;
    let (nakahara, _) = w.enrolled("中原1", "中原救急1").await;
    let (saiwai, _) = w.enrolled("幸1", "幸救急1").await;
    let session = nakahara
        .sign_in(&crew_login("中原救急1"), PASSWORD)
        .await
        .unwrap()
        .session;
    assert!(nakahara.incidents(&session).await.is_ok());
    // The same session presented from another tablet's certificate is no session.
    assert_eq!(
        refused_code(saiwai.incidents(&session).await),
        ErrorCode::CrewSignedOut
    );
}

#[tokio::test]
async fn revoking_a_tablet_ends_its_push_stream_at_once_and_refuses_its_next_request() {
    let w = world().await;
    let (tablet, terminal) = w.enrolled("中原1", "中原救急1").await;
    let (other, _) = w.enrolled("幸1", "幸救急1").await;
    let session = tablet
        .sign_in(&crew_login("中原救急1"), PASSWORD)
        .await
        .unwrap()
        .session;
    let other_session = other
        .sign_in(&crew_login("幸救急1"), PASSWORD)
        .await
        .unwrap()
        .session;
    let mut stream = tablet.stream(&session).await.unwrap();
    let mut other_stream = other.stream(&other_session).await.unwrap();

    assert!(w.ems.revoke_terminal(w.bureau.id, terminal).await.unwrap());
    let mut text = String::new();
    // Well before the streams' 10 s re-check: the revocation itself ends it.
    let ended = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(frame) = stream.frame().await {
            if let Ok(data) = frame.unwrap().into_data() {
                text.push_str(&String::from_utf8_lossy(&data));
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "the stream stayed open after the revocation");
    assert!(text.contains("event: signed_out"), "{text:?}");

    assert_eq!(
        refused_code(tablet.whoami().await),
        ErrorCode::TerminalRevoked
    );
    assert_eq!(
        refused_code(tablet.incidents(&session).await),
        ErrorCode::TerminalRevoked
    );
    // Another tablet's stream goes on.
    let still_open = tokio::time::timeout(Duration::from_millis(500), other_stream.frame()).await;
    assert!(still_open.is_err(), "the other tablet's stream ended too");
    assert!(other.incidents(&other_session).await.is_ok());
}

#[tokio::test]
async fn enrollment_needs_the_invitation_and_a_rejected_request_gives_no_certificate() {
    let w = world().await;
    let client = w.anonymous();
    let request = new_request("tablet").unwrap();
    let invite = w.invite("中原救急1").await;
    let body = |bureau: &str, invite: &str, label: &str, csr: &str| EnrollBody {
        bureau: bureau.into(),
        invite: invite.into(),
        label: label.into(),
        csr_pem: csr.into(),
    };
    let code = w.bureau.code.clone();
    let refused = |b: EnrollBody| {
        let client = client.clone();
        async move { refused_code(client.enroll(&b).await) }
    };
    assert_eq!(
        refused(body("nowhere-fd", &invite, "t", &request.csr_pem)).await,
        ErrorCode::UnknownBureau
    );
    // Without the invitation's secret nothing is filed.
    for wrong in ["", "guess", &invite[1..]] {
        assert_eq!(
            refused(body(&code, wrong, "t", &request.csr_pem)).await,
            ErrorCode::InvitationInvalid,
            "{wrong:?}"
        );
    }
    assert_eq!(
        refused(body(
            &code,
            &invite,
            "t",
            "-----BEGIN CERTIFICATE REQUEST-----"
        ))
        .await,
        ErrorCode::CertificateRequestInvalid
    );
    assert_eq!(
        refused(body(&code, &invite, "", &request.csr_pem)).await,
        ErrorCode::MalformedRequest
    );
    assert_eq!(
        refused(body(&code, &invite, "a\u{202e}b", &request.csr_pem)).await,
        ErrorCode::MalformedRequest
    );
    assert_eq!(
        refused_code(client.enroll_status("no such token").await),
        ErrorCode::EnrollmentUnknown
    );
    assert!(
        w.store
            .enrollments(w.bureau.id, false)
            .await
            .unwrap()
            .is_empty(),
        "a refused request was filed"
    );

    let accepted = client
        .enroll(&body(&code, &invite, "tablet", &request.csr_pem))
        .await
        .unwrap();
    // One tablet per invitation: a twin request with it is refused.
    let twin = new_request("tablet").unwrap();
    assert_eq!(
        refused(body(&code, &invite, "tablet", &twin.csr_pem)).await,
        ErrorCode::InvitationInvalid
    );
    let waiting = w.store.enrollments(w.bureau.id, true).await.unwrap();
    assert_eq!(waiting.len(), 1);
    assert_eq!(waiting[0].team_id, w.team("中原救急1").await);
    let id = waiting[0].id;
    assert!(
        w.store
            .reject_enrollment(w.bureau.id, id, w.ems.now_ms())
            .await
            .unwrap()
    );
    assert_eq!(
        client.enroll_status(&accepted.poll_token).await.unwrap(),
        EnrollStatus::Rejected
    );
    let approved = myna_ems::enroll::approve(
        w.store.as_ref(),
        w.ems.device_ca.as_deref().unwrap(),
        &w.bureau,
        id,
        w.ems.enrollment_limits,
        w.ems.now_ms(),
        TODAY,
    )
    .await
    .unwrap();
    assert_eq!(approved, None, "a rejected request was approved");
    assert!(w.store.terminals(w.bureau.id).await.unwrap().is_empty());
}

/// The certificate's end is ems's own check on every request: an ems whose clock is past it
/// refuses the tablet though the handshake (on the real clock) passed.
#[tokio::test]
async fn a_tablet_whose_certificate_has_ended_is_refused_on_its_next_request() {
    let w = world().await;
    let (tablet, _) = w.enrolled("中原1", "中原救急1").await;
    assert!(tablet.whoami().await.is_ok());
    let later: myna_ems::Clock = Arc::new(|| chrono::Utc::now() + chrono::Duration::days(2 * 365));
    let mut ems = Ems::new(w.store.clone(), later);
    ems.tls = true;
    ems.device_ca = w.ems.device_ca.clone();
    let tls = server_config(
        &w.dir.path().join("ems.pem"),
        &w.dir.path().join("ems.key"),
        Some(&w.dir.path().join("device-ca.pem")),
    )
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("https://{}", listener.local_addr().unwrap());
    tokio::spawn(myna_web::serve::serve(
        listener,
        myna_ems::router(Arc::new(ems)),
        Default::default(),
        Some(tls),
        std::future::pending(),
    ));
    let pem = std::fs::read_to_string(w.dir.path().join("中原1.pem")).unwrap();
    let key = std::fs::read_to_string(w.dir.path().join("中原1.key")).unwrap();
    let two_years_on = {
        let identity = ClientIdentity {
            cert: write(w.dir.path(), "later.pem", &pem),
            key: write(w.dir.path(), "later.key", &key),
        };
        EmsClient::without_bearer(&url, client_config(&w.roots(), Some(&identity)).unwrap())
            .unwrap()
    };
    assert_eq!(
        refused_code(two_years_on.whoami().await),
        ErrorCode::TerminalCertificateExpired
    );
}

/// A revocation by another process (`ems terminal revoke` writes the database; this ems hears
/// nothing of it) still ends the tablet's open push stream, at the stream's 10 s re-check.
#[tokio::test]
async fn a_revocation_written_by_another_process_ends_the_stream_at_its_next_check() {
    let w = world().await;
    let (tablet, terminal) = w.enrolled("中原1", "中原救急1").await;
    let session = tablet
        .sign_in(&crew_login("中原救急1"), PASSWORD)
        .await
        .unwrap()
        .session;
    let mut stream = tablet.stream(&session).await.unwrap();
    // Past the stream's first check (at its start), so the periodic one is what sees it
    // (about 10 s here; the test asserts only that it ends).
    tokio::time::sleep(Duration::from_secs(1)).await;
    // Straight to the store, as the CLI does: no broadcast reaches the stream.
    assert!(
        w.store
            .revoke_terminal(w.bureau.id, terminal)
            .await
            .unwrap()
    );
    let mut text = String::new();
    let ended = tokio::time::timeout(Duration::from_secs(15), async {
        while let Some(frame) = stream.frame().await {
            if let Ok(data) = frame.unwrap().into_data() {
                text.push_str(&String::from_utf8_lossy(&data));
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "the stream outlived its 10 s re-check");
    assert!(text.contains("event: signed_out"), "{text:?}");
}
