#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The README's flow, run as a new user would: gen, CA, deck, provider serve, query, audit
//! verify, then tamper with the file and see verification fail.

mod common;

use common::refused_with;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_myna-kyukyu"))
}

fn run(args: &[&str]) -> Output {
    let out = bin().args(args).output().unwrap();
    if !out.status.success() && std::env::var("CLI_TEST_VERBOSE").is_ok() {
        eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    }
    out
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

struct Server(Child);
impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_provider(dir: &Path) -> (Server, String) {
    start_provider_with(dir, &[])
}

fn start_provider_with(dir: &Path, extra: &[&str]) -> (Server, String) {
    start_provider_on(dir.join("provider.db").as_os_str(), dir, extra)
}

/// `provider serve` on the database `db` (a file or a URL), with the CA in `dir/pki`.
fn start_provider_on(db: &std::ffi::OsStr, dir: &Path, extra: &[&str]) -> (Server, String) {
    let mut child = bin()
        .args(["provider", "serve", "--listen", "127.0.0.1:0"])
        .arg("--db")
        .arg(db)
        .arg("--ca-cert")
        .arg(dir.join("pki/ca.cert.der"))
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .trim()
        .strip_prefix("provider listening on ")
        .unwrap()
        .to_owned();
    (Server(child), url)
}

/// `ca init` and `card deck` for the database in `dir`; returns the deck's directory.
fn issue_deck(dir: &Path, db: &str) -> std::path::PathBuf {
    let pki = dir.join("pki");
    assert!(
        run(&["ca", "init", "--dir", pki.to_str().unwrap(), "--keys", "2"])
            .status
            .success()
    );
    let cards = dir.join("cards");
    let o = run(&[
        "card",
        "deck",
        "--db",
        db,
        "--pki",
        pki.to_str().unwrap(),
        "--out",
        cards.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "card deck failed");
    cards
}

/// Registers the bureau with the provider; the token goes to `token_file`.
fn add_bureau(db: &str, token_file: &Path) -> Output {
    run(&[
        "provider",
        "org",
        "add",
        "--db",
        db,
        "--id",
        "kawasaki-fd",
        "--name",
        "川崎市消防局",
        "--token-file",
        token_file.to_str().unwrap(),
    ])
}

/// `provider query` of one deck card.
fn query(url: &str, token_file: &Path, cards: &Path, card: &str, extra: &[&str]) -> Output {
    let cert = cards.join(format!("{card}.cert.der"));
    let mut args = vec![
        "provider",
        "query",
        "--url",
        url,
        "--token-file",
        token_file.to_str().unwrap(),
        "--cert",
        cert.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    run(&args)
}

/// The alert classes of a `provider query --json` answer, in order.
fn alert_classes(answer: &serde_json::Value) -> Vec<&str> {
    answer["summary"]["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["class"].as_str().unwrap())
        .collect()
}

#[test]
fn generate_serve_query_and_audit_as_a_new_user_would() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let db = dir.join("provider.db");
    let db_s = db.to_str().unwrap();

    let o = run(&["gen", "--db", db_s, "--persons", "3000", "--seed", "7"]);
    assert!(o.status.success(), "gen failed");
    assert!(
        stdout(&o).contains("generated 3000 persons"),
        "{}",
        stdout(&o)
    );
    let again = run(&["gen", "--db", db_s, "--persons", "10"]);
    assert!(
        !again.status.success(),
        "gen must refuse to overwrite without --force"
    );

    let cards = issue_deck(dir, db_s);
    let token_file = dir.join("provider.token");
    let o = add_bureau(db_s, &token_file);
    assert!(o.status.success());
    assert!(stdout(&o).starts_with("kawasaki-fd."));

    let (_server, url) = start_provider(dir);
    let query = |card: &str, extra: &[&str]| query(&url, &token_file, &cards, card, extra);
    let o = query("doac", &["--json"]);
    assert!(o.status.success(), "query failed");
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let alerts = alert_classes(&v);
    assert_eq!(
        alerts.first(),
        Some(&"doac"),
        "the DOAC card shows the DOAC alert first: {alerts:?}"
    );
    // The operator states the claims date while the provider serves: the next summary
    // reports it. A date after today is refused.
    let before = v["summary"]["data_currency"]["claims_through"]
        .as_str()
        .unwrap_or_else(|| panic!("{v}"))
        .to_owned();
    let o = run(&["provider", "claims-through", "--db", db_s, "2026-01-30"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        stdout(&o).contains(&format!("claims through 2026-01-30 (was {before})")),
        "{}",
        stdout(&o)
    );
    // A stored date that cannot be read is replaced too.
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute(
            "UPDATE dataset_info SET value = '2026-02-30' WHERE key = 'claims_through'",
            [],
        )
        .unwrap();
    let o = run(&["provider", "claims-through", "--db", db_s, "2026-01-31"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        stdout(&o).contains("claims through 2026-01-31 (was unreadable: ")
            && stdout(&o).contains("2026-02-30"),
        "{}",
        stdout(&o)
    );
    let o = run(&["provider", "claims-through", "--db", db_s, "2999-01-01"]);
    refused_with(&o, "after today");
    let o = query(
        "insulin",
        &["--exception", "unconscious", "--full", "--json"],
    );
    assert!(o.status.success());
    assert!(stdout(&o).contains("インスリン"), "{}", stdout(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        v["summary"]["data_currency"]["claims_through"],
        "2026-01-31"
    );
    let o = query("unknown", &[]);
    assert_eq!(o.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&o.stderr).contains("unknown_serial"));
    let o = query("expired", &[]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("certificate_expired"));

    // Revocation, with the serial typed the way openssl prints it.
    let deck: serde_json::Value =
        serde_json::from_slice(&std::fs::read(cards.join("deck.json")).unwrap()).unwrap();
    let serial = deck["cards"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "doac")
        .unwrap()["serial"]
        .as_str()
        .unwrap()
        .to_ascii_lowercase();
    let colons: Vec<String> = serial
        .as_bytes()
        .chunks(2)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect();
    assert!(
        run(&[
            "provider",
            "revoke",
            "--db",
            db_s,
            "--serial",
            &colons.join(":")
        ])
        .status
        .success()
    );
    let o = query("doac", &[]);
    assert_eq!(o.status.code(), Some(3));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("certificate_revoked"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );

    let o = run(&["audit", "verify", "--db", db_s]);
    assert!(o.status.success());
    assert!(stdout(&o).contains("intact: 2 entries"), "{}", stdout(&o));
    let head = stdout(&o).split("head ").nth(1).unwrap().trim().to_owned();
    assert!(head.starts_with("2:"), "{head}");
    let o = run(&["audit", "verify", "--db", db_s, "--expect", &head]);
    assert!(o.status.success(), "{}", stdout(&o));

    // A signed checkpoint, with a key kept outside the database.
    let key = dir.join("checkpoint.key");
    let key_s = key.to_str().unwrap();
    let log = dir.join("checkpoints.log");
    let log_s = log.to_str().unwrap();
    let public = format!("{key_s}.pub");
    let o = run(&["audit", "keygen", "--key", key_s]);
    assert!(o.status.success());
    // The key id, which the operator records off the host.
    let key_id = stdout(&o)
        .strip_prefix("checkpoint key ")
        .and_then(|r| r.split(':').next())
        .unwrap()
        .to_owned();
    assert_eq!(key_id.len(), 16, "{}", stdout(&o));
    assert!(
        !run(&["audit", "keygen", "--key", key_s]).status.success(),
        "a key is never replaced in place"
    );
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "the signing key is owner-only");
    }
    let o = run(&[
        "audit",
        "checkpoint",
        "--db",
        db_s,
        "--key",
        key_s,
        "--log",
        log_s,
    ]);
    assert!(o.status.success(), "{}", stdout(&o));
    assert!(
        stdout(&o).starts_with("v1 provider-access 2 "),
        "{}",
        stdout(&o)
    );
    let verify_signed = || {
        run(&[
            "audit",
            "verify",
            "--db",
            db_s,
            "--checkpoints",
            log_s,
            "--public-key",
            &public,
        ])
    };
    let o = verify_signed();
    assert!(o.status.success(), "{}", stdout(&o));
    assert!(
        stdout(&o).contains("matches all 1 signed checkpoints, the newest of entry 2"),
        "{}",
        stdout(&o)
    );
    // Pinned to the recorded key id; another key's public half is refused.
    let pinned = |id: &str| {
        run(&[
            "audit",
            "verify",
            "--db",
            db_s,
            "--checkpoints",
            log_s,
            "--public-key",
            &public,
            "--key-id",
            id,
        ])
    };
    assert!(pinned(&key_id).status.success());
    let o = pinned("0000000000000000");
    refused_with(&o, "it was replaced");
    // An edited checkpoint (its entry number changed) is refused as not signed.
    let first = std::fs::read_to_string(&log).unwrap();
    std::fs::write(&log, first.replacen(" 2 ", " 1 ", 1)).unwrap();
    let o = verify_signed();
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    assert!(stdout(&o).contains("does not verify"), "{}", stdout(&o));
    std::fs::write(&log, &first).unwrap();
    // A heartbeat signs the unchanged head again; an old line appended after it (to roll
    // the log back) is out of order.
    std::thread::sleep(std::time::Duration::from_millis(5));
    let o = run(&[
        "audit",
        "checkpoint",
        "--db",
        db_s,
        "--key",
        key_s,
        "--log",
        log_s,
    ]);
    assert!(o.status.success(), "{}", stdout(&o));
    let both = std::fs::read_to_string(&log).unwrap();
    assert!(verify_signed().status.success());
    std::fs::write(&log, format!("{both}{first}")).unwrap();
    let o = verify_signed();
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    assert!(stdout(&o).contains("out of order"), "{}", stdout(&o));
    std::fs::write(&log, &both).unwrap();
    // A log whose newest line is older than allowed: lines were removed or signing stopped.
    let o = run(&[
        "audit",
        "verify",
        "--db",
        db_s,
        "--checkpoints",
        log_s,
        "--public-key",
        &public,
        "--max-age-minutes",
        "0",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    assert!(
        stdout(&o).contains("newest checkpoint is"),
        "{}",
        stdout(&o)
    );

    // Removing the newest entry leaves a chain that verifies alone, but neither against the
    // recorded head nor against the signed checkpoint.
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute("DELETE FROM access_log WHERE seq = 2", [])
        .unwrap();
    drop(conn);
    assert!(run(&["audit", "verify", "--db", db_s]).status.success());
    let o = run(&["audit", "verify", "--db", db_s, "--expect", &head]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stdout(&o).contains("entry 2, recorded earlier as a head, is gone"),
        "{}",
        stdout(&o)
    );
    let o = verify_signed();
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    assert!(
        stdout(&o).contains("BROKEN against the checkpoint"),
        "{}",
        stdout(&o)
    );
    // And the shortened chain is not signed: its earlier head is gone.
    let o = run(&[
        "audit",
        "checkpoint",
        "--db",
        db_s,
        "--key",
        key_s,
        "--log",
        log_s,
    ]);
    // A chain that lost a signed head is not signed.
    refused_with(&o, "no longer holds a head signed earlier");
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        both,
        "nothing appended"
    );

    // A privacy officer's worst case: someone rewrites who looked.
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute(
        "UPDATE access_log SET viewer_team = '麻生救急1' WHERE seq = 1",
        [],
    )
    .unwrap();
    drop(conn);
    let o = run(&["audit", "verify", "--db", db_s]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stdout(&o).contains("BROKEN at entry 1"), "{}", stdout(&o));
}

#[test]
fn demo_runs_and_a_second_run_reuses_the_data() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_str().unwrap();
    let args = [
        "demo",
        "--data-dir",
        dir,
        "--persons",
        "2000",
        "--listen",
        "127.0.0.1:0",
        "--exit-after-samples",
    ];
    let o = run(&args);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let first = stdout(&o);
    assert!(first.contains("generating 2000"), "{first}");
    assert!(first.contains("救急用サマリー"), "{first}");
    assert!(
        first.contains("レセプト反映済み: 20"),
        "the claims lag date is shown: {first}"
    );
    assert!(
        first.contains("refused as expected: unknown_serial"),
        "{first}"
    );
    assert!(
        first.contains("enrolled the 中原救急1 tablet"),
        "the demo's tablet enrolls for its certificate: {first}"
    );
    let o = run(&args);
    assert!(o.status.success());
    assert!(stdout(&o).contains("reusing"), "{}", stdout(&o));
    assert!(
        !stdout(&o).contains("enrolled the"),
        "a second run keeps the tablets' certificates: {}",
        stdout(&o)
    );
}

#[test]
fn the_terminal_refuses_to_listen_anywhere_but_loopback() {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("t.token");
    std::fs::write(&token, "unused").unwrap();
    for addr in ["0.0.0.0:18499", "192.0.2.7:18499"] {
        let out = run(&[
            "terminal",
            "--ems",
            "http://127.0.0.1:9",
            "--token-file",
            token.to_str().unwrap(),
            "--listen",
            addr,
            "--outbox",
            dir.path().join("o.db").to_str().unwrap(),
        ]);
        assert!(!out.status.success(), "{addr} was accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("loopback"), "{addr}: {err}");
        assert!(
            !dir.path().join("o.db").exists(),
            "nothing was started for {addr}"
        );
    }
}

/// The demo's population and deck (seed 2026, 10,000 persons): one card per alert class, and
/// each card's summary, through the real provider, carries its class with the alerts in the
/// table's order of urgency. The first-aid flags are among them.
#[test]
fn the_demo_deck_has_a_card_per_alert_class_and_alerts_come_in_order_of_urgency() {
    use myna_domain::alerts::AlertTable;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let db = dir.join("provider.db");
    let db_s = db.to_str().unwrap();
    assert!(
        run(&["gen", "--db", db_s, "--persons", "10000", "--seed", "2026"])
            .status
            .success()
    );
    let cards = issue_deck(dir, db_s);
    let token_file = dir.join("provider.token");
    assert!(add_bureau(db_s, &token_file).status.success());
    let (_server, url) = start_provider(dir);
    let table = AlertTable::builtin().unwrap();
    let rank = |class: &str| table.classes().iter().position(|c| c.id == class).unwrap();
    let deck: serde_json::Value =
        serde_json::from_slice(&std::fs::read(cards.join("deck.json")).unwrap()).unwrap();
    let ids: Vec<&str> = deck["cards"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    for class in table.classes() {
        assert!(ids.contains(&class.id.as_str()), "no card for {}", class.id);
        let o = query(&url, &token_file, &cards, &class.id, &["--json"]);
        assert!(o.status.success(), "query of card {} failed", class.id);
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        let alerts = alert_classes(&v);
        assert!(
            alerts.contains(&class.id.as_str()),
            "card {} shows {alerts:?}",
            class.id
        );
        let ranks: Vec<usize> = alerts.iter().map(|a| rank(a)).collect();
        assert!(
            ranks.windows(2).all(|w| w[0] < w[1]),
            "card {}: alerts out of order {alerts:?}",
            class.id
        );
        // The anticoagulant cards tell the hospital what reverses the drug.
        if ["doac", "vka"].contains(&class.id.as_str()) {
            let text = v["summary"]["alerts"].to_string();
            assert!(text.contains("reversal_ja"), "{}: {text}", class.id);
        }
    }
    // The plain-text view names the reversal agent too.
    let o = query(&url, &token_file, &cards, "doac", &[]);
    assert!(stdout(&o).contains("拮抗薬"), "{}", stdout(&o));
}

#[test]
fn the_provider_serves_tls_from_the_dev_ca_and_refuses_plain_http_off_loopback() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let db = dir.join("provider.db");
    let db_s = db.to_str().unwrap();
    assert!(
        run(&["gen", "--db", db_s, "--persons", "300", "--seed", "7"])
            .status
            .success()
    );
    let cards = issue_deck(dir, db_s);
    let token_file = dir.join("provider.token");
    assert!(add_bureau(db_s, &token_file).status.success());

    let tls = dir.join("tls");
    let tls_s = tls.to_str().unwrap();
    assert!(run(&["tls", "dev-ca", "--dir", tls_s]).status.success());
    let o = run(&[
        "tls",
        "server-cert",
        "--dir",
        tls_s,
        "--name",
        "provider",
        "--host",
        "localhost",
        "--host",
        "127.0.0.1",
    ]);
    assert!(o.status.success(), "{}", stdout(&o));
    {
        use std::os::unix::fs::PermissionsExt;
        for key in ["ca.key", "provider.key"] {
            let mode = std::fs::metadata(tls.join(key))
                .unwrap()
                .permissions()
                .mode()
                & 0o777;
            assert_eq!(mode, 0o600, "{key} is owner-only");
        }
    }

    // Plain HTTP on an address other hosts reach is refused at start.
    let o = run(&[
        "provider",
        "serve",
        "--listen",
        "0.0.0.0:0",
        "--db",
        db_s,
        "--ca-cert",
        dir.join("pki/ca.cert.der").to_str().unwrap(),
    ]);
    refused_with(&o, "serve it with TLS");

    let cert = tls.join("provider.pem");
    let key = tls.join("provider.key");
    let (_server, url) = start_provider_with(
        dir,
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
    );
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");
    let ca = tls.join("ca.pem");
    let o = query(
        &url,
        &token_file,
        &cards,
        "doac",
        &["--tls-ca", ca.to_str().unwrap()],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // Without the development CA, the platform's roots do not vouch for it.
    let o = query(&url, &token_file, &cards, "doac", &[]);
    assert!(
        !o.status.success(),
        "a certificate of an untrusted CA was accepted"
    );
    // Nor does plain HTTP reach it.
    let plain = url.replacen("https://", "http://", 1);
    let o = query(&plain, &token_file, &cards, "doac", &[]);
    assert!(
        !o.status.success(),
        "plain HTTP was answered on a TLS listener"
    );
}

#[test]
fn a_serving_provider_signs_a_checkpoint_of_its_chain_with_the_key_it_was_given() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let db = dir.join("provider.db");
    let db_s = db.to_str().unwrap();
    assert!(
        run(&["gen", "--db", db_s, "--persons", "300", "--seed", "7"])
            .status
            .success()
    );
    let cards = issue_deck(dir, db_s);
    let token_file = dir.join("provider.token");
    assert!(add_bureau(db_s, &token_file).status.success());
    let key = dir.join("audit.key");
    let log = dir.join("audit.log");
    assert!(
        run(&["audit", "keygen", "--key", key.to_str().unwrap()])
            .status
            .success()
    );

    // One view, so that the chain is not empty, then a provider that signs on its schedule
    // (the first tick is at start).
    {
        let (_server, url) = start_provider(dir);
        assert!(
            query(&url, &token_file, &cards, "doac", &[])
                .status
                .success()
        );
    }
    let (_server, _url) = start_provider_with(
        dir,
        &[
            "--checkpoint-key",
            key.to_str().unwrap(),
            "--checkpoint-log",
            log.to_str().unwrap(),
        ],
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !std::fs::read_to_string(&log).is_ok_and(|t| !t.trim().is_empty()) {
        assert!(
            std::time::Instant::now() < deadline,
            "no checkpoint was signed"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let line = std::fs::read_to_string(&log).unwrap();
    assert!(line.starts_with("v1 provider-access 1 "), "{line}");
    let public = format!("{}.pub", key.display());
    let o = run(&[
        "audit",
        "verify",
        "--db",
        db_s,
        "--checkpoints",
        log.to_str().unwrap(),
        "--public-key",
        &public,
    ]);
    assert!(o.status.success(), "{}", stdout(&o));
    assert!(
        stdout(&o).contains("matches all 1 signed checkpoints"),
        "{}",
        stdout(&o)
    );
}

/// 端末登録 as the bureau runs it: `tls device-ca`, ems serving with it, `enroll` on the tablet
/// showing its code, `ems terminal pending` showing the same code to the admin, `ems terminal
/// approve`, and the tablet's certificate arriving; an ems others can reach without a device CA
/// does not start.
#[test]
fn a_tablet_enrolls_and_an_admin_approves_it_by_its_comparison_code() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("ems.db");
    tablet_enrollment(tmp.path(), db.to_str().unwrap());
}

/// The same on an ems whose store is PostgreSQL, chosen by its URL.
#[test]
fn a_tablet_enrolls_on_an_ems_backed_by_postgresql() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let db = rt
        .block_on(myna_store_postgres::testing::TestDb::create("cli_ems"))
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    tablet_enrollment(tmp.path(), &db.url);
    let o = run(&["ems", "verify-views", "--db", &db.url]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    rt.block_on(db.drop_now()).unwrap();
}

/// ems's view log broken on PostgreSQL (one chain per bureau): `ems verify-views` and `audit
/// verify --chain ems` name the broken chain by the bureau's code, the name its operator knows,
/// not by the bureau's internal id.
#[test]
fn a_broken_view_log_on_postgresql_names_the_bureau_by_its_code() {
    use myna_store::ems::EmsStore;
    let rt = tokio::runtime::Runtime::new().unwrap();
    let db = rt
        .block_on(myna_store_postgres::testing::TestDb::create(
            "cli_ems_views",
        ))
        .unwrap();
    let url = db.url.as_str();
    let tmp = tempfile::tempdir().unwrap();
    seed_kawasaki_ems(tmp.path(), url);
    // One simulated day gives Kawasaki's chain a few views.
    let o = run(&[
        "simulate", "--bureau", "kawasaki", "--year", "2025", "--days", "1", "--quiet", "--db", url,
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = run(&["ems", "verify-views", "--db", url]);
    assert!(o.status.success(), "{}", stdout(&o));
    // The id the reports must not show: the bureau's key in view_log.
    let id = rt.block_on(async {
        let store = myna_store_postgres::PgEmsStore::connect(url).await.unwrap();
        store.bureau("kawasaki-fd").await.unwrap().unwrap().id
    });

    // The chain's first entry altered, still valid JSON: only its hash tells.
    let changed = rt
        .block_on(db.execute(
            "UPDATE view_log SET entry = replace(entry, '\"terminal\":0', '\"terminal\":1') \
             WHERE seq = 1 AND bureau_id = (SELECT id FROM bureau WHERE code = 'kawasaki-fd')",
        ))
        .unwrap();
    assert_eq!(changed, 1);
    let expected = "view log BROKEN in bureau kawasaki-fd's chain: entry 1: content does not \
                    match its hash (the entry was altered)";
    let commands: [&[&str]; 2] = [
        &["ems", "verify-views", "--db", url],
        &["audit", "verify", "--chain", "ems", "--db", url],
    ];
    for args in commands {
        let o = run(args);
        let out = stdout(&o);
        assert!(!o.status.success(), "{args:?}: {out}");
        assert_eq!(out.lines().next(), Some(expected), "{args:?}: {out}");
        assert!(
            !out.contains(&id.to_string()),
            "{args:?} names the bureau by its id {id}: {out}"
        );
        // The operator's log names it by its code too.
        let log = String::from_utf8_lossy(&o.stderr);
        assert!(
            log.lines()
                .any(|l| l.contains("view log broken") && l.contains("\"kawasaki-fd\"")),
            "{args:?}: {log}"
        );
    }
    rt.block_on(db.drop_now()).unwrap();
}

/// `ems seed-kawasaki` into `db_s`, with a provider credential file (owner-only) in `dir` and
/// a provider nobody listens on.
fn seed_kawasaki_ems(dir: &Path, db_s: &str) {
    use std::os::unix::fs::OpenOptionsExt;
    let credential = dir.join("provider.token");
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&credential)
        .unwrap();
    std::fs::write(&credential, "kawasaki-fd.secret").unwrap();
    let o = run(&[
        "ems",
        "seed-kawasaki",
        "--db",
        db_s,
        "--provider-url",
        "http://127.0.0.1:9",
        "--provider-token-file",
        credential.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

fn tablet_enrollment(dir: &Path, db_s: &str) {
    let tls = dir.join("tls");
    let tls_s = tls.to_str().unwrap();
    assert!(run(&["tls", "dev-ca", "--dir", tls_s]).status.success());
    assert!(run(&["tls", "device-ca", "--dir", tls_s]).status.success());
    let o = run(&[
        "tls",
        "server-cert",
        "--dir",
        tls_s,
        "--name",
        "ems",
        "--host",
        "127.0.0.1",
    ]);
    assert!(o.status.success());
    seed_kawasaki_ems(dir, db_s);
    let ca_cert = tls.join("device-ca.pem");
    let ca_key = tls.join("device-ca.key");
    let tls_args = |listen: &str| -> Vec<String> {
        [
            "ems",
            "serve",
            "--db",
            db_s,
            "--listen",
            listen,
            "--tls-cert",
            tls.join("ems.pem").to_str().unwrap(),
            "--tls-key",
            tls.join("ems.key").to_str().unwrap(),
        ]
        .map(String::from)
        .to_vec()
    };

    // Reachable from other hosts and no device CA: refused at start.
    let mut args = tls_args("0.0.0.0:0");
    args.extend(["--public-host", "ems.example"].map(String::from));
    let o = bin().args(&args).output().unwrap();
    refused_with(&o, "--device-ca-cert");

    let mut args = tls_args("127.0.0.1:0");
    args.extend([
        "--device-ca-cert".into(),
        ca_cert.to_str().unwrap().into(),
        "--device-ca-key".into(),
        ca_key.to_str().unwrap().into(),
    ]);
    let mut child = bin()
        .args(&args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let _ems = Server(child);
    let url = line.trim().strip_prefix("ems: ").unwrap().to_owned();

    let o = run(&[
        "ems",
        "terminal",
        "invite",
        "--db",
        db_s,
        "--team",
        "中原救急1",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let invite = stdout(&o).trim().rsplit(' ').next().unwrap().to_owned();
    let cert = dir.join("tablet.pem");
    let key = dir.join("tablet.key");
    // The invitation listed for the admin, then handed to the tablet by its variable (not on
    // the command line, which other local users can read).
    let o = run(&["ems", "terminal", "invites", "--db", db_s]);
    assert!(
        stdout(&o)
            .lines()
            .any(|l| l.contains("中原救急1") && l.contains("by cli")),
        "{}",
        stdout(&o)
    );
    let mut tablet = bin()
        .args(["enroll", "--ems", &url, "--ems-ca"])
        .env("MYNA_ENROLL_INVITE", &invite)
        .arg(tls.join("ca.pem"))
        .args(["--label", "中原1 車載タブレット", "--wait-minutes", "2"])
        .arg("--cert")
        .arg(&cert)
        .arg("--key")
        .arg(&key)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(tablet.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    let code = line
        .trim()
        .strip_prefix("照合コード (comparison code): ")
        .unwrap_or_else(|| panic!("no code: {line:?}"))
        .to_owned();
    assert_eq!(code.len(), 9, "{code}");
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the tablet's key is its owner's alone");
    }

    // The admin sees the same code beside the request.
    let o = run(&["ems", "terminal", "pending", "--db", db_s]);
    let pending = stdout(&o);
    let row = pending
        .lines()
        .find(|l| l.contains(&code))
        .unwrap_or_else(|| panic!("{pending}"));
    assert!(row.contains("中原1 車載タブレット"), "{row}");
    let id = row.split_whitespace().next().unwrap();
    let o = run(&[
        "ems",
        "terminal",
        "approve",
        "--db",
        db_s,
        "--id",
        id,
        "--device-ca-cert",
        ca_cert.to_str().unwrap(),
        "--device-ca-key",
        ca_key.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let status = tablet.wait().unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut out, &mut rest).unwrap();
    assert!(status.success(), "{rest}");
    assert!(rest.contains("approved"), "{rest}");
    assert!(
        std::fs::read_to_string(&cert)
            .unwrap()
            .contains("BEGIN CERTIFICATE")
    );
    let o = run(&["ems", "terminal", "list", "--db", db_s]);
    let list = stdout(&o);
    assert!(
        list.lines()
            .any(|l| l.contains("certificate") && l.contains("中原救急1")),
        "{list}"
    );
    // Approving twice does nothing.
    let o = run(&[
        "ems",
        "terminal",
        "approve",
        "--db",
        db_s,
        "--id",
        id,
        "--device-ca-cert",
        ca_cert.to_str().unwrap(),
        "--device-ca-key",
        ca_key.to_str().unwrap(),
    ]);
    refused_with(&o, "not waiting");
    // A second enrollment refuses to overwrite the tablet's certificate.
    let o = bin()
        .args([
            "enroll", "--ems", &url, "--invite", &invite, "--label", "again", "--cert",
        ])
        .arg(&cert)
        .arg("--key")
        .arg(dir.join("other.key"))
        .output()
        .unwrap();
    refused_with(&o, "is enrolled");
    // The used invitation files nothing for another tablet (its secret read from stdin).
    let o = run(&["ems", "terminal", "invites", "--db", db_s]);
    assert!(stdout(&o).contains("no open invitation"), "{}", stdout(&o));
    let enroll_with_stdin = |secret: &str, name: &str| {
        let mut child = bin()
            .args(["enroll", "--ems", &url, "--invite", "-", "--label", name])
            .arg("--ems-ca")
            .arg(tls.join("ca.pem"))
            .arg("--cert")
            .arg(dir.join(format!("{name}.pem")))
            .arg("--key")
            .arg(dir.join(format!("{name}.key")))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        std::io::Write::write_all(
            child.stdin.as_mut().unwrap(),
            format!("{secret}\n").as_bytes(),
        )
        .unwrap();
        child.wait_with_output().unwrap()
    };
    let o = enroll_with_stdin(&invite, "twin");
    refused_with(&o, "invitation_invalid");
    // A cancelled invitation files nothing either.
    let o = run(&[
        "ems",
        "terminal",
        "invite",
        "--db",
        db_s,
        "--team",
        "中原救急1",
    ]);
    let second = stdout(&o).trim().rsplit(' ').next().unwrap().to_owned();
    let o = run(&["ems", "terminal", "invites", "--db", db_s]);
    let listed = stdout(&o);
    let number = listed.split_whitespace().next().unwrap().to_owned();
    let o = run(&[
        "ems",
        "terminal",
        "cancel-invite",
        "--db",
        db_s,
        "--id",
        &number,
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = run(&[
        "ems",
        "terminal",
        "cancel-invite",
        "--db",
        db_s,
        "--id",
        &number,
    ]);
    assert!(!o.status.success(), "only an open invitation is cancelled");
    let o = enroll_with_stdin(&second, "cancelled");
    refused_with(&o, "invitation_invalid");
    assert!(
        !dir.join("twin.key").exists(),
        "a refused request left its key behind"
    );
}

/// One PEM file with a client certificate and its key, owner-only, as ems's provider
/// credential holds it.
fn identity_file(dir: &Path, stem: &str) -> std::path::PathBuf {
    use std::os::unix::fs::OpenOptionsExt;
    let mut pem = std::fs::read(dir.join(format!("{stem}.pem"))).unwrap();
    pem.extend(std::fs::read(dir.join(format!("{stem}.key"))).unwrap());
    let path = dir.join(format!("{stem}.identity.pem"));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .unwrap();
    std::io::Write::write_all(&mut f, &pem).unwrap();
    path
}

/// Mutual TLS between a bureau and the provider: the organisation is the one its certificate
/// from the organisation CA names; its bearer token, a certificate for an organisation the
/// provider does not know, and one from another CA are refused; a provider others can reach
/// does not start without the organisation CA.
#[test]
fn a_bureau_proves_itself_to_the_provider_by_its_certificate_and_a_token_no_longer_counts() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let db = dir.join("provider.db");
    let db_s = db.to_str().unwrap();
    assert!(
        run(&["gen", "--db", db_s, "--persons", "300", "--seed", "7"])
            .status
            .success()
    );
    let cards = issue_deck(dir, db_s);
    let token_file = dir.join("provider.token");
    assert!(add_bureau(db_s, &token_file).status.success());
    let tls = dir.join("tls");
    let tls_s = tls.to_str().unwrap();
    let other = dir.join("other-ca");
    let other_s = other.to_str().unwrap();
    for args in [
        vec!["tls", "dev-ca", "--dir", tls_s],
        vec![
            "tls",
            "server-cert",
            "--dir",
            tls_s,
            "--name",
            "provider",
            "--host",
            "127.0.0.1",
        ],
        vec!["tls", "org-ca", "--dir", tls_s],
        vec![
            "tls",
            "org-cert",
            "--dir",
            tls_s,
            "--org",
            "kawasaki-fd",
            "--name",
            "川崎市消防局",
        ],
        vec![
            "tls",
            "org-cert",
            "--dir",
            tls_s,
            "--org",
            "nobody-fd",
            "--name",
            "不明",
        ],
        vec!["tls", "org-ca", "--dir", other_s],
        vec![
            "tls",
            "org-cert",
            "--dir",
            other_s,
            "--org",
            "kawasaki-fd",
            "--name",
            "偽",
        ],
    ] {
        let o = run(&args);
        assert!(
            o.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    let kawasaki = identity_file(&tls, "kawasaki-fd");
    let nobody = identity_file(&tls, "nobody-fd");
    let forged = identity_file(&other, "kawasaki-fd");
    let server_tls = [
        "--tls-cert",
        tls.join("provider.pem").to_str().unwrap(),
        "--tls-key",
        tls.join("provider.key").to_str().unwrap(),
    ]
    .map(String::from);

    // Reachable from other hosts without the organisation CA: refused at start.
    let o = bin()
        .args([
            "provider",
            "serve",
            "--db",
            db_s,
            "--listen",
            "0.0.0.0:0",
            "--ca-cert",
        ])
        .arg(dir.join("pki/ca.cert.der"))
        .args(&server_tls)
        .output()
        .unwrap();
    refused_with(&o, "--client-ca");

    let mut extra: Vec<&str> = server_tls.iter().map(String::as_str).collect();
    let org_ca = tls.join("org-ca.pem");
    extra.extend(["--client-ca", org_ca.to_str().unwrap()]);
    let (_server, url) = start_provider_with(dir, &extra);
    assert!(url.starts_with("https://"), "{url}");
    let ask = |credential: &[&str]| {
        let cert = cards.join("doac.cert.der");
        let mut args = vec![
            "provider",
            "query",
            "--url",
            &url,
            "--tls-ca",
            tls.join("ca.pem").to_str().unwrap(),
            "--cert",
            cert.to_str().unwrap(),
        ]
        .into_iter()
        .map(String::from)
        .collect::<Vec<_>>();
        args.extend(credential.iter().map(|s| s.to_string()));
        bin().args(&args).output().unwrap()
    };
    let o = ask(&["--identity", kawasaki.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(stdout(&o).contains("救急用サマリー"), "{}", stdout(&o));

    // Disabled, the organisation's certificate is refused once the 5 s cache has passed;
    // enabled again, it is accepted.
    assert!(
        run(&[
            "provider",
            "org",
            "disable",
            "--db",
            db_s,
            "--id",
            "kawasaki-fd"
        ])
        .status
        .success()
    );
    std::thread::sleep(std::time::Duration::from_millis(5_500));
    let o = ask(&["--identity", kawasaki.to_str().unwrap()]);
    assert_eq!(
        o.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("unauthenticated"));
    assert!(
        run(&[
            "provider",
            "org",
            "enable",
            "--db",
            db_s,
            "--id",
            "kawasaki-fd"
        ])
        .status
        .success()
    );
    let o = ask(&["--identity", kawasaki.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    // One certificate revoked (its key leaked): refused once the cache has passed, while a
    // new certificate of the same organisation works. Another organisation's certificate
    // cannot be revoked in its name.
    let leaked = dir.join("leaked");
    std::fs::create_dir(&leaked).unwrap();
    for ext in ["pem", "key", "identity.pem"] {
        std::fs::rename(
            tls.join(format!("kawasaki-fd.{ext}")),
            leaked.join(format!("kawasaki-fd.{ext}")),
        )
        .unwrap();
    }
    let kawasaki = leaked.join("kawasaki-fd.identity.pem");
    let o = run(&[
        "tls",
        "org-cert",
        "--dir",
        tls_s,
        "--org",
        "kawasaki-fd",
        "--name",
        "川崎市消防局",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let renewed = identity_file(&tls, "kawasaki-fd");
    let leaked_pem = leaked.join("kawasaki-fd.pem");
    let o = run(&[
        "provider",
        "org",
        "revoke-cert",
        "--db",
        db_s,
        "--cert",
        leaked_pem.to_str().unwrap(),
        "--org",
        "nobody-fd",
    ]);
    assert!(!o.status.success(), "the certificate names kawasaki-fd");
    let o = run(&[
        "provider",
        "org",
        "revoke-cert",
        "--db",
        db_s,
        "--cert",
        leaked_pem.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(stdout(&o).contains("kawasaki-fd: key"), "{}", stdout(&o));
    std::thread::sleep(std::time::Duration::from_millis(5_500));
    let o = ask(&["--identity", kawasaki.to_str().unwrap()]);
    assert_eq!(
        o.status.code(),
        Some(3),
        "the revoked certificate: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = ask(&["--identity", renewed.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        !run(&[
            "provider",
            "org",
            "disable",
            "--db",
            db_s,
            "--id",
            "nobody-fd"
        ])
        .status
        .success()
    );

    // The same organisation's bearer token: refused by the provider (exit 3), not sent on.
    let o = ask(&["--token-file", token_file.to_str().unwrap()]);
    assert_eq!(
        o.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("unauthenticated"));
    // A valid certificate of an organisation the provider never registered.
    let o = ask(&["--identity", nobody.to_str().unwrap()]);
    assert_eq!(
        o.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("unauthenticated"));
    // The right name from another CA: the handshake fails.
    let o = ask(&["--identity", forged.to_str().unwrap()]);
    assert!(!o.status.success());
    assert_ne!(
        o.status.code(),
        Some(3),
        "the forged certificate reached the handler"
    );
}

/// The same provider on PostgreSQL, chosen by its URL: generate, deck, register, serve, query,
/// verify. Its per-person chains are checkpointed by the digest of their heads: the newest
/// entry of one person's chain removed verifies on its own, and fails against the checkpoints;
/// so does the checkpoint record with a checkpoint removed, or its `.heads` file edited.
#[test]
fn the_provider_runs_on_postgresql_chosen_by_its_url() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let db = rt
        .block_on(myna_store_postgres::testing::TestDb::create("cli_provider"))
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let o = run(&["gen", "--db", &db.url, "--persons", "300", "--seed", "7"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        stdout(&o).contains("generated 300 persons"),
        "{}",
        stdout(&o)
    );
    let o = run(&["gen", "--db", &db.url, "--persons", "300", "--seed", "7"]);
    // A second population does not load over the first.
    refused_with(&o, "already holds 300 persons");
    let cards = issue_deck(dir, &db.url);
    let token_file = dir.join("provider.token");
    assert!(add_bureau(&db.url, &token_file).status.success());
    let (server, url) = start_provider_on(std::ffi::OsStr::new(&db.url), dir, &[]);
    for card in ["doac", "doac"] {
        let o = query(&url, &token_file, &cards, card, &[]);
        assert!(
            o.status.success(),
            "{card}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(stdout(&o).contains("救急用サマリー"), "{}", stdout(&o));
    }
    let key = dir.join("checkpoint.key");
    assert!(
        run(&["audit", "keygen", "--key", key.to_str().unwrap()])
            .status
            .success()
    );
    let log = dir.join("checkpoints.log");
    let checkpoint = || {
        let o = run(&[
            "audit",
            "checkpoint",
            "--db",
            &db.url,
            "--key",
            key.to_str().unwrap(),
            "--log",
            log.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    };
    checkpoint();
    for card in ["doac", "insulin"] {
        assert!(query(&url, &token_file, &cards, card, &[]).status.success());
    }
    checkpoint();
    checkpoint(); // nothing moved: a heartbeat
    drop(server);
    let log_text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(log_text.lines().count(), 3);
    assert!(
        log_text
            .lines()
            .all(|l| l.starts_with("v2 provider-access "))
    );
    let public = format!("{}.pub", key.to_str().unwrap());
    let verify_signed = |log: &std::path::Path| {
        run(&[
            "audit",
            "verify",
            "--db",
            &db.url,
            "--checkpoints",
            log.to_str().unwrap(),
            "--public-key",
            &public,
        ])
    };
    let o = verify_signed(&log);
    assert!(
        o.status.success(),
        "{}{}",
        stdout(&o),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        stdout(&o).contains("4 entries in 2 chains"),
        "{}",
        stdout(&o)
    );
    assert!(
        stdout(&o).contains("matches all 3 signed checkpoints"),
        "{}",
        stdout(&o)
    );

    // The first checkpoint dropped from a copy of the record: the digests no longer chain.
    let cut = dir.join("cut.log");
    std::fs::write(
        &cut,
        log_text
            .lines()
            .skip(1)
            .map(|l| format!("{l}\n"))
            .collect::<String>(),
    )
    .unwrap();
    std::fs::copy(
        format!("{}.heads", log.display()),
        format!("{}.heads", cut.display()),
    )
    .unwrap();
    let o = verify_signed(&cut);
    assert!(!o.status.success(), "{}", stdout(&o));
    assert!(stdout(&o).contains("BROKEN"), "{}", stdout(&o));

    // `LOG.heads` is not signed itself: a head's hash changed, or a head's row removed, no
    // longer gives the digest its checkpoint signed.
    let heads_text = std::fs::read_to_string(format!("{}.heads", log.display())).unwrap();
    let first = heads_text.lines().next().unwrap().to_owned();
    let mut flipped = first.clone();
    let last = flipped.pop().unwrap();
    flipped.push(if last == '0' { '1' } else { '0' });
    for (what, heads) in [
        (
            "a head's hash changed",
            heads_text.replacen(&first, &flipped, 1),
        ),
        (
            "a head's row removed",
            heads_text.replacen(&format!("{first}\n"), "", 1),
        ),
    ] {
        assert_ne!(heads, heads_text);
        let edited = dir.join("edited.log");
        std::fs::copy(&log, &edited).unwrap();
        std::fs::write(format!("{}.heads", edited.display()), heads).unwrap();
        let o = verify_signed(&edited);
        assert!(!o.status.success(), "{what}: {}", stdout(&o));
        assert!(
            stdout(&o).contains("BROKEN")
                && stdout(&o).contains("the recorded heads do not match the signed digest"),
            "{what}: {}",
            stdout(&o)
        );
    }
    // `LOG.heads` left behind when the log was copied: named as missing.
    let alone = dir.join("alone.log");
    std::fs::copy(&log, &alone).unwrap();
    let o = verify_signed(&alone);
    assert!(!o.status.success(), "{}", stdout(&o));
    assert!(
        stdout(&o).contains(&format!("{}.heads is missing", alone.display())),
        "{}",
        stdout(&o)
    );

    // The newest entry of the doac patient's chain removed: the walk alone cannot tell.
    let removed = rt
        .block_on(db.execute(
            "DELETE FROM access_log WHERE (person_id, seq) = \
             (SELECT person_id, max(seq) FROM access_log GROUP BY person_id \
              ORDER BY max(seq) DESC LIMIT 1)",
        ))
        .unwrap();
    assert_eq!(removed, 1);
    let o = run(&["audit", "verify", "--db", &db.url]);
    assert!(o.status.success(), "{}", stdout(&o));
    let o = verify_signed(&log);
    assert!(
        !o.status.success(),
        "a cut chain passed its checkpoints: {}",
        stdout(&o)
    );
    assert!(
        stdout(&o).contains("BROKEN") && stdout(&o).contains("entry 3"),
        "{}",
        stdout(&o)
    );
    let o = run(&[
        "audit",
        "checkpoint",
        "--db",
        &db.url,
        "--key",
        key.to_str().unwrap(),
        "--log",
        log.to_str().unwrap(),
    ]);
    assert!(!o.status.success(), "a cut chain was signed");

    // The README's tamper, on every person's first entry: the report names the person of the
    // first break and every person whose chain broke.
    let changed = rt
        .block_on(db.execute("UPDATE access_log SET viewer_team = '麻生救急1' WHERE seq = 1"))
        .unwrap();
    assert!(changed > 1, "{changed}");
    let o = run(&["audit", "verify", "--db", &db.url]);
    assert!(!o.status.success(), "{}", stdout(&o));
    let out = stdout(&o);
    let first = out
        .split("BROKEN in person ")
        .nth(1)
        .and_then(|rest| rest.split("'s chain: entry 1: ").next())
        .unwrap_or_else(|| panic!("no person named: {out}"));
    let listed = out
        .split(&format!(
            "{changed} person chain(s) found broken by the walk: "
        ))
        .nth(1)
        .and_then(|rest| rest.lines().next())
        .unwrap_or_else(|| panic!("not every broken chain counted: {out}"));
    let persons: Vec<&str> = listed.split(", ").collect();
    assert_eq!(persons.len() as u64, changed, "{out}");
    assert_eq!(persons[0], first, "{out}");
    rt.block_on(db.drop_now()).unwrap();
}

/// `ems hospital-reads`: the operator sees the bureau's hospitals' reads on their way to the
/// provider, each refused one with its reason, and queues the refused ones again.
#[test]
fn the_operator_sees_refused_hospital_reads_and_queues_them_again() {
    use myna_store::ems::{EmsStore, HospitalReadOutcome};
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ems.db");
    let db_s = db.to_str().unwrap();
    seed_kawasaki_ems(dir.path(), db_s);

    // A hospital's read the provider refused, as the relay settles it.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let refused = runtime.block_on(async {
        let store = myna_store_sqlite::EmsSqlite::open(&db).unwrap();
        let read = myna_domain::incident::ViewRecord {
            at_ms: 1_795_000_000_000,
            bureau: "kawasaki-fd".into(),
            incident_number: "20261127-0001".into(),
            team: "中原救急1".into(),
            crew_member: "er-kawasaki-municipal".into(),
            terminal: 0,
            patient: myna_domain::patient::PatientKey::try_from("a".repeat(64)).unwrap(),
            patient_number: 1,
            consent: myna_domain::access::Consent::Obtained,
            view: myna_domain::summary::View::Summary,
            provider_access_id: 0,
            hospital: Some("kawasaki-municipal".into()),
        };
        let at = store.record_view(read).await.unwrap();
        let error = "unknown_access: no access of this organisation has this access_id";
        assert!(
            store
                .settle_hospital_read(
                    at,
                    1_795_000_000_100,
                    HospitalReadOutcome::Refused {
                        error: error.into()
                    },
                )
                .await
                .unwrap()
        );
        at
    });

    let o = run(&["ems", "hospital-reads", "--db", db_s]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = stdout(&o);
    assert!(
        out.contains("delivered to the provider 0, waiting 0, refused 1"),
        "{out}"
    );
    assert!(
        out.contains(&format!("view-log entry {}: refused", refused.seq))
            && out.contains("unknown_access"),
        "{out}"
    );
    let o = run(&["ems", "hospital-reads", "--db", db_s, "--requeue"]);
    assert!(
        stdout(&o).contains("1 refused reads queued again"),
        "{}",
        stdout(&o)
    );
    let o = run(&["ems", "hospital-reads", "--db", db_s]);
    assert!(
        stdout(&o).contains("waiting 1, refused 0"),
        "{}",
        stdout(&o)
    );
    let o = run(&[
        "ems",
        "hospital-reads",
        "--db",
        db_s,
        "--bureau",
        "no-such-fd",
    ]);
    assert!(!o.status.success(), "an unknown bureau is an error");
}
