#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The emulated card on a real PC/SC stack: `pcscd` with `vsmartcard-vpcd`, started by the
//! project's script. The project's own reader, unmodified OpenSC and `myna-card` all talk to
//! it as to a card in "Virtual PCD 00 00".
//!
//! There is one virtual reader, so the tests take turns.

use base64::Engine;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::Duration;

const READER: &str = "Virtual PCD 00 00";

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_myna-kyukyu"))
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap();
    if std::env::var("PCSCD_TEST_VERBOSE").is_ok() {
        eprintln!("{:?}\n{}", cmd, String::from_utf8_lossy(&out.stderr));
    }
    out
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

struct Setup {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
}

/// pcscd with the virtual reader, and a small population with a card deck.
fn setup() -> &'static Setup {
    static S: OnceLock<Setup> = OnceLock::new();
    S.get_or_init(|| {
        let out = run(Command::new("bash")
            .arg(repo().join("scripts/pcscd-vpcd"))
            .arg("start"));
        assert!(
            out.status.success(),
            "pcscd-vpcd start failed: {}",
            text(&out)
        );
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        let db = dir.join("provider.db");
        let out = run(bin().args(["gen", "--persons", "400", "--db"]).arg(&db));
        assert!(out.status.success(), "{}", text(&out));
        let out = run(bin()
            .args(["card", "deck", "--db"])
            .arg(&db)
            .arg("--pki")
            .arg(dir.join("pki"))
            .arg("--out")
            .arg(dir.join("cards")));
        assert!(out.status.success(), "{}", text(&out));
        Setup { _tmp: tmp, dir }
    })
}

fn turn() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

/// Waits until the virtual reader's card is (or is not) present.
fn wait_for_presence(present: bool) {
    let ctx = pcsc::Context::establish(pcsc::Scope::User).unwrap();
    let name = std::ffi::CString::new(READER).unwrap();
    let mut states = [pcsc::ReaderState::new(name, pcsc::State::UNAWARE)];
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        match ctx.get_status_change(Duration::from_millis(500), &mut states) {
            Ok(()) | Err(pcsc::Error::Timeout) => {}
            Err(e) => panic!("SCardGetStatusChange: {e}"),
        }
        let st = states[0].event_state();
        if st.contains(pcsc::State::PRESENT) == present && !st.contains(pcsc::State::CHANGED) {
            return;
        }
        states[0].sync_current_state();
        assert!(
            std::time::Instant::now() < deadline,
            "the virtual reader's card never became {}",
            if present { "present" } else { "absent" }
        );
    }
}

/// An emulated card in the virtual reader, taken out when dropped.
struct Emulator(Child);

impl Emulator {
    fn insert(profile: &Path, extra: &[&str]) -> Self {
        let child = bin()
            .args(["card", "emulate", "--profile"])
            .arg(profile)
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let e = Emulator(child);
        if !extra.contains(&"--remove-after") {
            wait_for_presence(true);
        }
        e
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
        wait_for_presence(false);
    }
}

fn profile(id: &str) -> (PathBuf, serde_json::Value) {
    let path = setup().dir.join(format!("cards/{id}.profile.json"));
    let json = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    (path, json)
}

fn b64(v: &serde_json::Value) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(v.as_str().unwrap())
        .unwrap()
}

fn read_json(extra: &[&str]) -> serde_json::Value {
    let wait: &[&str] = if extra.contains(&"--wait") {
        &[]
    } else {
        &["--wait", "5"]
    };
    let out = run(bin()
        .args(["card", "read", "--json"])
        .args(wait)
        .arg("--test-root")
        .arg(setup().dir.join("pki/ca.cert.der"))
        .args(extra));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)))
}

#[test]
fn the_project_reader_reads_the_emulated_card_through_pcscd() {
    setup();
    let _turn = turn();
    let (path, json) = profile("no-alert");
    let _card = Emulator::insert(&path, &[]);

    let out = run(bin().args(["card", "readers"]));
    assert!(text(&out).contains(READER), "{}", text(&out));

    let r = read_json(&["--reader", READER]);
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["reader"], READER);
    let cert = b64(&json["auth_cert_b64"]);
    let serial = r["certificate"]["serial"].as_str().unwrap();
    assert!(
        cert.windows(serial.len() / 2)
            .any(|w| hex::encode_upper(w) == serial)
    );
    assert_eq!(r["certificate"]["chain_verified"], true, "{r}");
    assert_eq!(
        r["apdus"], 3,
        "SELECT, token label, one extended READ BINARY"
    );
    assert_eq!(r["read"]["extended"], true);

    let out = run(bin().args(["card", "status", "--json", "--wait", "5"]));
    let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(s["pins"]["auth_pin"]["left"], 3, "{s}");
    assert_eq!(s["pins"]["sign_password"]["left"], 5, "{s}");
}

#[test]
fn opensc_recognises_the_card_reads_the_certificate_and_signs() {
    setup();
    let _turn = turn();
    let (path, json) = profile("no-alert");
    let _card = Emulator::insert(&path, &[]);

    let out = run(Command::new("opensc-tool").args(["--reader", "0", "--name"]));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "jpki",
        "{}",
        text(&out)
    );

    let out = run(Command::new("pkcs15-tool").arg("--list-certificates"));
    let listing = text(&out);
    assert!(
        listing.contains("User Authentication Certificate"),
        "{listing}"
    );
    assert!(
        listing.contains("Digital Signature Certificate"),
        "{listing}"
    );

    let pem_path = setup().dir.join("auth.pem");
    let out = run(Command::new("pkcs15-tool")
        .args(["--read-certificate", "01", "--output"])
        .arg(&pem_path));
    assert!(out.status.success(), "{}", text(&out));
    let pem = std::fs::read_to_string(&pem_path).unwrap();
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let from_opensc = base64::engine::general_purpose::STANDARD
        .decode(body)
        .unwrap();
    let cert = b64(&json["auth_cert_b64"]);
    assert_eq!(
        from_opensc, cert,
        "byte-identical to the profile's certificate"
    );

    let message = setup().dir.join("message");
    let signature = setup().dir.join("signature");
    std::fs::write(&message, b"Myna Kyukyu OQS-style challenge").unwrap();
    let out = pkcs11_sign("1234", &message, &signature);
    assert!(out.status.success(), "{}", text(&out));
    let sig = std::fs::read(&signature).unwrap();
    verify_with_certificate(&cert, b"Myna Kyukyu OQS-style challenge", &sig);
}

/// `pkcs11-tool --login --sign` with the auth key (id 01), SHA-256 and PKCS#1 v1.5.
fn pkcs11_sign(pin: &str, message: &Path, signature: &Path) -> Output {
    run(Command::new("pkcs11-tool")
        .args([
            "--module",
            &pkcs11_module(),
            "--login",
            "--pin",
            pin,
            "--sign",
        ])
        .args([
            "--mechanism",
            "SHA256-RSA-PKCS",
            "--id",
            "01",
            "--input-file",
        ])
        .arg(message)
        .arg("--output-file")
        .arg(signature))
}

fn pkcs11_module() -> String {
    for p in [
        "/usr/lib/x86_64-linux-gnu/pkcs11/opensc-pkcs11.so",
        "/usr/lib/aarch64-linux-gnu/pkcs11/opensc-pkcs11.so",
        "/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so",
    ] {
        if Path::new(p).exists() {
            return p.into();
        }
    }
    panic!("opensc-pkcs11.so not found: is the Debian opensc package installed?");
}

fn verify_with_certificate(cert_der: &[u8], message: &[u8], signature: &[u8]) {
    use der::Decode;
    let cert = x509_cert::Certificate::from_der(cert_der).unwrap();
    let key = cert
        .tbs_certificate()
        .subject_public_key_info()
        .subject_public_key
        .raw_bytes()
        .to_vec();
    aws_lc_rs::signature::UnparsedPublicKey::new(
        &aws_lc_rs::signature::RSA_PKCS1_2048_8192_SHA256,
        key,
    )
    .verify(message, signature)
    .expect("the signature verifies against the certificate's key");
}

#[test]
fn three_wrong_pins_lock_the_auth_key_as_on_a_real_card() {
    setup();
    let _turn = turn();
    let (path, _) = profile("no-alert");
    let _card = Emulator::insert(&path, &[]);
    let message = setup().dir.join("message-lock");
    std::fs::write(&message, b"x").unwrap();
    let signature = setup().dir.join("sig-lock");
    let sign = |pin: &str| pkcs11_sign(pin, &message, &signature);
    for _ in 0..3 {
        let out = sign("9999");
        assert!(!out.status.success());
        assert!(text(&out).contains("CKR_PIN_INCORRECT"), "{}", text(&out));
    }
    // Locked: even the right PIN is refused, and the counter says 0.
    let out = sign("1234");
    assert!(!out.status.success(), "the locked key still signed");
    let out = run(Command::new("pkcs15-tool").arg("--list-pins"));
    let pins = text(&out);
    let auth = pins.split("PIN [Digital Signature PIN]").next().unwrap();
    assert!(auth.contains("Tries left     : 0"), "{pins}");
    assert!(
        pins.contains("Tries left     : 5"),
        "the signing password is untouched: {pins}"
    );
    let out = run(bin().args(["card", "status", "--json", "--wait", "5"]));
    let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(s["pins"]["auth_pin"]["state"], "blocked", "{s}");
}

#[test]
fn crew_facing_failures_arrive_through_pcscd() {
    setup();
    let _turn = turn();
    let (path, _) = profile("no-alert");
    let kind = |r: &serde_json::Value| r["failure"]["kind"].as_str().unwrap_or("").to_owned();

    // No PC/SC service reachable (the client library is pointed at a socket that does not
    // exist): to the crew, no reader.
    let out = run(bin().args(["card", "read", "--json", "--wait", "1"]).env(
        "PCSCLITE_CSOCK_NAME",
        setup().dir.join("no-such-pcscd.comm"),
    ));
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(kind(&r), "no_reader", "{r}");

    // No card in the reader.
    let r = read_json(&["--wait", "1"]);
    assert_eq!(kind(&r), "no_card", "{r}");
    assert_eq!(r["message_ja"]["what"], "カードが置かれていません");

    for (extra, expected) in [
        (&["--jpki-blocked"][..], "blocked"),
        (&["--token", "JPKIAPGPSETOKEN"][..], "smartphone_token"),
        (&["--mute-after", "1"][..], "timeout"),
    ] {
        let _card = Emulator::insert(&path, extra);
        let r = read_json(&[]);
        assert_eq!(kind(&r), expected, "{extra:?}: {r}");
        assert!(r["message_ja"]["next"].as_str().unwrap().len() > 10);
    }

    // Removed after the SELECT: the read starts and the card leaves mid-way.
    let _card = Emulator::insert(&path, &["--remove-after", "1"]);
    let r = read_json(&[]);
    assert_eq!(kind(&r), "card_removed", "{r}");
}

#[test]
fn myna_card_reads_the_four_attributes_and_the_card_face_through_pcscd() {
    use myna_card::ap::surface::SurfaceAp;
    use myna_card::ap::text::TextAp;
    use myna_card::pin::Pin;
    setup();
    let _turn = turn();
    let (path, json) = profile("no-alert");
    let _card = Emulator::insert(&path, &[]);
    let holder = &json["holder"];

    let mut card =
        myna_card::transport::pcsc::connect(READER, myna_card::transport::pcsc::Sharing::Exclusive)
            .unwrap();
    {
        let mut text = TextAp::select(&mut card).unwrap();
        text.verify_pin(&Pin::new(holder["text_pin"].as_str().unwrap()).unwrap())
            .unwrap();
        let attrs = text.read_attributes().unwrap();
        assert_eq!(attrs.name, holder["name"].as_str().unwrap());
        assert_eq!(attrs.address, holder["address"].as_str().unwrap());
        assert_eq!(
            attrs.birth_date.to_string(),
            holder["birth_date"].as_str().unwrap()
        );
        assert_eq!(
            text.read_my_number().unwrap().as_str(),
            holder["my_number"].as_str().unwrap()
        );
    }
    // 照合番号B: 和暦 birth date + expiry year + security code.
    let birth =
        chrono::NaiveDate::parse_from_str(holder["birth_date"].as_str().unwrap(), "%Y-%m-%d")
            .unwrap();
    let code_b = format!(
        "{}{}{}",
        myna_card_emu::era::wareki_yymmdd(birth).unwrap(),
        &holder["card_expiry"].as_str().unwrap()[..4],
        holder["security_code"].as_str().unwrap()
    );
    let mut surface = SurfaceAp::select(&mut card).unwrap();
    surface.verify_code_b(&Pin::new(&code_b).unwrap()).unwrap();
    let face = surface.read_card_face().unwrap();
    assert_eq!(
        face.birth_date.to_string(),
        holder["birth_date"].as_str().unwrap()
    );
}

#[test]
fn the_tablet_card_watcher_follows_a_card_on_and_off_the_pcsc_reader() {
    use myna_terminal::card::CardState;
    setup();
    let _turn = turn();
    let (tx, rx) = std::sync::mpsc::channel::<CardState>();
    let tx = std::sync::Mutex::new(tx);
    let watch = myna_terminal::card::watch_pcsc(
        Some(READER.into()),
        std::sync::Arc::new(move |s| {
            let _ = tx.lock().unwrap().send(s);
        }),
    )
    .unwrap();
    let next = || rx.recv_timeout(Duration::from_secs(15)).unwrap();

    let (path, json) = profile("doac");
    let card = Emulator::insert(&path, &[]);
    assert_eq!(next(), CardState::Reading);
    match next() {
        CardState::Read(r) => {
            assert_eq!(
                r.der,
                b64(&json["auth_cert_b64"]),
                "the profile's certificate"
            );
            assert_eq!(r.apdus, 3);
            assert!(!r.serial.is_empty());
        }
        other => panic!("expected the certificate, got {other:?}"),
    }
    drop(card); // lifted
    assert_eq!(next(), CardState::Empty);

    // A smartphone token is told apart on the tablet too.
    let card = Emulator::insert(&path, &["--token", "JPKIAPGPSETOKEN"]);
    assert_eq!(next(), CardState::Reading);
    assert!(
        matches!(
            next(),
            CardState::Failed(myna_reader::ReadFailure::SmartphoneToken { .. })
        ),
        "a smartphone token is refused"
    );
    drop(card);
    assert_eq!(next(), CardState::Empty);
    drop(watch);
}

/// A running process whose first stdout line starting with `prefix` names its address; killed
/// when dropped.
struct Served(Child);

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn serve(cmd: &mut Command, prefix: &str) -> (Served, String) {
    use std::io::BufRead;
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let line = lines
        .find_map(|l| l.ok().filter(|l| l.starts_with(prefix)))
        .unwrap_or_else(|| panic!("no line starting {prefix:?}"));
    (Served(child), line[prefix.len()..].to_owned())
}

/// One HTTP/1.1 exchange with a loopback server: (status, headers, body).
fn http(method: &str, url: &str, headers: &[(&str, &str)], body: &str) -> (u16, String, String) {
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let path = if path.is_empty() { "/" } else { path };
    let mut s = std::net::TcpStream::connect(host).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    s.write_all(req.as_bytes()).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, head.to_owned(), body.to_owned())
}

/// The patient portal with the emulated card in the virtual reader: its holder signs in with
/// the auth PIN and sees exactly the two accesses made to their data, by organisation; a page
/// elsewhere cannot post a PIN; three wrong PINs count down and lock the card, which `card
/// status` (another PC/SC client) then reports.
#[test]
fn the_patient_portal_signs_in_with_the_card_and_three_wrong_pins_lock_it() {
    let dir = &setup().dir;
    let _turn = turn();
    let db = dir.join("provider.db");
    let token = dir.join("portal-test.token");
    let out = run(bin()
        .args([
            "provider",
            "org",
            "add",
            "--id",
            "portal-test-fd",
            "--name",
            "川崎市消防局",
        ])
        .arg("--db")
        .arg(&db)
        .arg("--token-file")
        .arg(&token));
    assert!(out.status.success(), "{}", text(&out));
    let (_provider, provider_url) = serve(
        bin()
            .args(["provider", "serve", "--listen", "127.0.0.1:0", "--db"])
            .arg(&db)
            .arg("--ca-cert")
            .arg(dir.join("pki/ca.cert.der")),
        "provider listening on ",
    );
    let (path, _) = profile("no-alert");
    let cert = dir.join("cards/no-alert.cert.der");
    for extra in [&[][..], &["--exception", "unconscious", "--full"][..]] {
        let out = run(bin()
            .args(["provider", "query", "--url", &provider_url, "--json"])
            .arg("--token-file")
            .arg(&token)
            .arg("--cert")
            .arg(&cert)
            .args(extra));
        assert!(out.status.success(), "{}", text(&out));
    }
    let _card = Emulator::insert(&path, &[]);
    let (_portal, launch) = serve(
        bin().args([
            "portal",
            "--provider",
            &provider_url,
            "--reader",
            READER,
            "--listen",
            "127.0.0.1:0",
        ]),
        "portal: open ",
    );
    let launch = launch.split(' ').next().unwrap().to_owned();
    let base = launch.split("/launch/").next().unwrap().to_owned();
    let (status, head, _) = http("GET", &launch, &[], "");
    assert_eq!(status, 303, "{head}");
    let cookie = head
        .lines()
        .find_map(|l| l.strip_prefix("set-cookie: "))
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let origin = base.clone();
    let get = || http("GET", &format!("{base}/"), &[("Cookie", &cookie)], "").2;
    let sign_in = |pin: &str| {
        let (status, _, body) = http(
            "POST",
            &format!("{base}/sign-in"),
            &[
                ("Cookie", &cookie),
                ("Origin", &origin),
                ("Content-Type", "application/x-www-form-urlencoded"),
            ],
            &format!("pin={pin}&lang=ja"),
        );
        assert_eq!(status, 200, "{body}");
        body
    };

    assert!(get().contains("暗証番号の残り回数: 3回"), "{}", get());
    let page = sign_in("1234");
    assert_eq!(
        page.matches("<li class=\"access").count(),
        2,
        "exactly the two accesses: {page}"
    );
    assert_eq!(page.matches("川崎市消防局").count(), 2, "{page}");
    assert!(page.contains("同意なし（意識不明）"), "{page}");
    assert!(page.contains("同意あり"), "{page}");
    assert!(
        page.contains("受診歴（5年）"),
        "the full view's windows: {page}"
    );
    assert!(
        !page.contains("中原救急1") && !page.contains("K-0001"),
        "no team or crew: {page}"
    );

    // Another program on the reader cannot sign with the key the PIN opened: the portal held
    // the card exclusively and powered it down after signing.
    let mut other =
        myna_card::transport::pcsc::connect(READER, myna_card::transport::pcsc::Sharing::Shared)
            .unwrap();
    let mut jpki = myna_card::ap::jpki::JpkiAp::select(&mut other).unwrap();
    let digest_info = myna_domain::portal::sha256_digest_info(b"not the patient's");
    assert!(
        jpki.sign_with_auth_key(myna_card::ap::jpki::SignatureScheme::Verbatim, &digest_info)
            .is_err(),
        "the auth key signed without the PIN after the portal's sign-in"
    );
    drop(other);

    // A page elsewhere posting a PIN (no Origin, or another) is refused and spends no try.
    for origin in [None, Some("http://evil.example")] {
        let mut h = vec![
            ("Cookie", cookie.as_str()),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ];
        if let Some(o) = origin {
            h.push(("Origin", o));
        }
        let (status, _, _) = http("POST", &format!("{base}/sign-in"), &h, "pin=0000");
        assert_eq!(status, 403);
    }
    let (status, _, _) = http(
        "POST",
        &format!("{base}/sign-in"),
        &[("Origin", &origin)],
        "pin=0000",
    );
    assert_eq!(status, 403, "no window key");
    assert!(get().contains("暗証番号の残り回数: 3回"));

    // Not four digits: nothing reaches the card.
    assert!(sign_in("12").contains("暗証番号は4桁の数字です"));
    assert!(get().contains("暗証番号の残り回数: 3回"));

    assert!(sign_in("0000").contains("あと2回"));
    assert!(sign_in("0000").contains("あと1回"));
    assert!(sign_in("0000").contains("ロックされています"));
    let locked = get();
    assert!(locked.contains("ロックされています"), "{locked}");
    assert!(
        !locked.contains("name=\"pin\""),
        "no PIN form on a locked card"
    );
    assert!(
        sign_in("1234").contains("ロックされています"),
        "the right PIN no longer opens it"
    );

    let out = run(bin().args(["card", "status", "--json", "--wait", "5"]));
    let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(s["pins"]["auth_pin"]["state"], "blocked", "{s}");
    assert_eq!(
        s["pins"]["sign_password"]["left"], 5,
        "the signing password is untouched"
    );
}
