//! `demo`: the whole system in one process on SQLite files under one directory: the provider
//! (synthetic Kawasaki population, test JPKI CA, a card deck with one card per alert class),
//! `ems` (川崎市消防局 with 31 teams, a dispatcher and crew accounts) and a `terminal` whose
//! emulated card reader is driven from a demo panel.

use crate::cards::{CA_CERT, Deck, Expect, PkiDir, issue_deck};
use crate::ems_cli::{
    DEMO_ADMIN_PASSWORD, DEMO_CREW_PASSWORD, DEMO_DISPATCHER_PASSWORD, DEMO_HOSPITAL_PASSWORD,
    DEMO_PRIVACY_PASSWORD, TerminalArgs, demo_password, hash_password, kawasaki_crew_login,
    serve_ems, serve_terminal,
};
use crate::profile_file::ProfileFile;
use crate::provider::{add_organisation, serve, write_token};
use anyhow::{Context, Result, bail};
use myna_card_emu::card::Card as EmulatedCard;
use myna_card_emu::reader::{EmulatedReader, Faults};
use myna_domain::access::{Consent, ExceptionReason};
use myna_domain::summary::View;
use myna_ems::seed::KAWASAKI_CODE;
use myna_provider::ViewerBody;
use myna_provider::client::{ProviderClient, SummaryOutcome};
use myna_provider::{Callers, ClientCertificates};
use myna_store::ProviderStore;
use myna_store::ems::{EmsStore, Role};
use myna_store_sqlite::EmsSqlite;
use myna_store_sqlite::SqliteStore;
use myna_terminal::ems_client::EmsClient;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

pub const DEMO_ORG: &str = "kawasaki-fd";

#[derive(clap::Args)]
pub struct DemoArgs {
    /// Directory for the database, CA, card deck and credential; reused on the next run.
    #[arg(long, default_value = "data")]
    pub data_dir: PathBuf,
    /// Persons to generate on the first run.
    #[arg(long, default_value_t = 10_000)]
    pub persons: u64,
    #[arg(long, default_value_t = 2026)]
    pub seed: u64,
    #[arg(long, default_value = "127.0.0.1:8440")]
    pub listen: SocketAddr,
    /// Where ems serves its API and the dispatcher's desk.
    #[arg(long, default_value = "127.0.0.1:8441")]
    pub ems_listen: SocketAddr,
    /// Where the terminal serves the crew's tablet UI and the demo card panel.
    #[arg(long, default_value = "127.0.0.1:8442")]
    pub terminal_listen: SocketAddr,
    /// Where the patient portal (閲覧履歴) serves, with the demo's "doac" card placed.
    #[arg(long, default_value = "127.0.0.1:8447")]
    pub portal_listen: SocketAddr,
    /// The emulated reader's latency per card command.
    #[arg(long, default_value_t = 25)]
    pub latency_ms: u64,
    /// The terminal drops a summary after this many seconds without a touch.
    #[arg(long, default_value_t = 600)]
    pub idle_timeout_s: u64,
    /// Run the sample queries, then stop instead of serving until Ctrl-C.
    #[arg(long)]
    pub exit_after_samples: bool,
    /// The development CA and the demo's server certificates (default: DATA_DIR/tls). The
    /// provider and ems serve HTTPS with them; trust `ca.pem` once to open the desk without a
    /// warning.
    #[arg(long)]
    pub tls_dir: Option<PathBuf>,
}

/// The demo's TLS: the development CA (made once) and a fresh server certificate for each
/// service, for the names a browser on this machine uses.
struct DemoTls {
    ca: PathBuf,
    provider: Arc<myna_tls::rustls::ServerConfig>,
    ems: Arc<myna_tls::rustls::ServerConfig>,
    clients: Arc<myna_tls::rustls::ClientConfig>,
    /// The bureau's device CA: ems issues the demo tablets' certificates from it.
    device_ca: crate::ems_cli::DeviceCaArgs,
    /// The bureau's client certificate and key for the provider, in one owner-only file
    /// (ems's provider credential).
    bureau_identity: PathBuf,
}

fn demo_tls(dir: &std::path::Path, listens: &[SocketAddr]) -> Result<DemoTls> {
    let ca = crate::tls::dev_ca(dir)?;
    let mut hosts = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
    for l in listens {
        let ip = l.ip().to_string();
        if !hosts.contains(&ip) && !l.ip().is_unspecified() {
            hosts.push(ip);
        }
    }
    let (device_ca_cert, device_ca_key) = crate::tls::named_ca(
        dir,
        crate::tls::DEVICE_CA,
        "Myna Kyukyu demo device CA (not for production)",
    )?;
    let (org_ca_cert, org_ca_key) = crate::tls::named_ca(
        dir,
        crate::tls::ORG_CA,
        "Myna Kyukyu demo organisation CA (not for production)",
    )?;
    let bureau_identity = dir.join(format!("{DEMO_ORG}.identity.pem"));
    if !bureau_identity.exists() {
        let subject = myna_tls::identity::ClientSubject {
            common_name: DEMO_ORG.into(),
            organization: "川崎市消防局".into(),
        };
        let (cert, key) =
            crate::tls::client_cert(&org_ca_cert, &org_ca_key, &subject, dir, DEMO_ORG)?;
        let mut pem = std::fs::read(&cert)?;
        pem.extend(std::fs::read(&key)?);
        crate::secret_file::write(&bureau_identity, &pem)?;
    }
    let server = |name: &str, clients: Option<&std::path::Path>| {
        let (cert, key) = crate::tls::server_cert(dir, name, &hosts)?;
        anyhow::Ok(myna_tls::server_config(&cert, &key, clients)?)
    };
    Ok(DemoTls {
        provider: server("provider", Some(&org_ca_cert))?,
        bureau_identity,
        ems: server("ems", Some(&device_ca_cert))?,
        clients: crate::tls::client_roots(Some(&ca))?,
        ca,
        device_ca: crate::ems_cli::DeviceCaArgs {
            device_ca_cert: Some(device_ca_cert),
            device_ca_key: Some(device_ca_key),
        },
    })
}

/// The demo's two registered tablets: the one the demo serves, and another team's (for trying
/// a wrong-team terminal with `myna-kyukyu terminal`).
pub const DEMO_TERMINALS: [(&str, &str); 2] = [("nakahara1", "中原救急1"), ("saiwai1", "幸救急1")];

pub async fn run(args: DemoArgs) -> Result<ExitCode> {
    let dir = &args.data_dir;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let db = dir.join("provider.db");
    if db.exists() {
        println!("reusing {}", db.display());
    } else {
        println!(
            "generating {} synthetic persons (seed {}) …",
            args.persons, args.seed
        );
        let today = myna_provider::japan_date(chrono::Utc::now());
        let r = crate::generate::generate(&db, args.persons, args.seed, today, true).await?;
        println!(
            "  {} persons in {:.1} s ({:.0}/s)",
            r.persons,
            r.seconds,
            r.rate()
        );
    }
    let store = Arc::new(crate::store::ProviderDb::Sqlite(SqliteStore::open(&db)?));
    let pki_dir = dir.join("pki");
    let pki = PkiDir::open_or_create(&pki_dir)?;
    // The bureau proves itself to the demo's provider by its client certificate (mutual
    // TLS). Its bearer token works only with a provider on loopback without the organisation
    // CA (tests, scripts/schemathesis); it is kept, owner-only, for those.
    if store.organisation(DEMO_ORG).await?.is_none() {
        let token = add_organisation(store.as_ref(), DEMO_ORG, "川崎市消防局").await?;
        write_token(&dir.join("provider.token"), &token)?;
    }
    let cards_dir = dir.join("cards");
    let today = myna_provider::japan_date(chrono::Utc::now());
    let deck = match Deck::load(&cards_dir) {
        // Reuse today's deck if every card has its emulator profile (older decks did not).
        Ok(d)
            if d.chosen_on == today
                && d.cards.iter().all(|c| {
                    !c.profile_file.is_empty() && cards_dir.join(&c.profile_file).exists()
                }) =>
        {
            d
        }
        _ => issue_deck(store.as_ref(), &pki, &cards_dir).await?,
    };

    let tls = demo_tls(
        &args.tls_dir.clone().unwrap_or_else(|| dir.join("tls")),
        &[args.listen, args.ems_listen],
    )?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {} (is another demo running?)", args.listen))?;
    let url = format!("https://{}", listener.local_addr()?);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = move || {
        let mut rx = stop_rx.clone();
        async move {
            tokio::select! {
                _ = rx.wait_for(|s| *s) => {}
                _ = crate::provider::shutdown_signal() => {}
            }
        }
    };
    // Both audit chains are checkpointed every 5 minutes with a key outside the databases.
    let checkpoint_key = dir.join("audit-checkpoint.key");
    if !checkpoint_key.exists() {
        crate::checkpoint::keygen(&checkpoint_key)?;
    }
    let checkpoints = crate::checkpoint::CheckpointArgs {
        checkpoint_key: Some(checkpoint_key),
        checkpoint_log: Some(dir.join("audit-checkpoints.log")),
        checkpoint_every_minutes: 5,
    };
    let anchor = crate::provider::trust_anchor(&pki_dir.join(CA_CERT))?;
    let server = tokio::spawn({
        let store = store.clone();
        let stop = stopped();
        let checkpoints = checkpoints.clone();
        let provider_tls = Some(tls.provider.clone());
        let callers = Callers::Certificates(ClientCertificates::new());
        async move {
            serve(
                store,
                anchor,
                listener,
                &checkpoints,
                provider_tls,
                callers,
                stop,
            )
            .await
        }
    });

    // ems keeps the file's name, never the credential.
    let credential_file = crate::ems_cli::credential_file_name(&tls.bureau_identity)?;
    let client = ProviderClient::with_client_certificate(
        &url,
        crate::tls::client_identity(Some(&tls.ca), &tls.bureau_identity, &tls.bureau_identity)?,
    )?;
    let viewer = || ViewerBody {
        organisation: DEMO_ORG.into(),
        team: "中原救急1".into(),
        crew_member: "K-0001".into(),
    };
    let Some(first) = deck
        .card("doac")
        .or_else(|| deck.cards.iter().find(|c| c.expect == Expect::Summary))
    else {
        bail!("the card deck has no card for a registered person");
    };
    // The card is placed on an emulated contactless reader (25 ms per command) and read by the
    // terminal's card module, as the tablet will do.
    let profile = ProfileFile::load(&cards_dir.join(&first.profile_file))?.to_profile()?;
    let mut reader = EmulatedReader::new(
        EmulatedCard::new(&profile)?,
        Faults {
            latency: std::time::Duration::from_millis(25),
            ..Faults::default()
        },
    );
    let read = tokio::task::spawn_blocking(move || myna_reader::read_auth_certificate(&mut reader))
        .await??;
    println!(
        "\n▶ card {:?} ({}) placed on the emulated reader: auth certificate read in {} APDUs, {} bytes, {:.0} ms",
        first.id,
        first.label_ja,
        read.apdus(),
        read.bytes(),
        read.micros() as f64 / 1000.0
    );
    let cert = read.der;
    println!("  consent obtained:");
    let body = ProviderClient::summary_body(&cert, Consent::Obtained, "DEMO-0001", viewer());
    match client.summary(&body, View::Summary).await? {
        SummaryOutcome::Ok(r) => print!("{}", crate::render::summary_text(&r.summary)),
        SummaryOutcome::Refused { code, message, .. } => {
            bail!("the demo query was refused: {code}: {message}")
        }
    }
    if let Some(unknown) = deck.card("unknown") {
        let cert = std::fs::read(cards_dir.join(&unknown.cert_file))?;
        let body = ProviderClient::summary_body(
            &cert,
            Consent::Exception {
                reason: ExceptionReason::Unconscious,
            },
            "DEMO-0002",
            viewer(),
        );
        if let SummaryOutcome::Refused { code, message, .. } =
            client.summary(&body, View::Summary).await?
        {
            println!("▶ card \"unknown\": refused as expected: {code}: {message}");
        }
    }

    // ems: 川崎市消防局 and its teams, pointed at this provider.
    let ems_store = Arc::new(crate::store::EmsDb::Sqlite(EmsSqlite::open(
        &dir.join("ems.db"),
    )?));
    match ems_store.bureau(KAWASAKI_CODE).await? {
        Some(b) => ems_store.set_provider(b.id, &url, &credential_file).await?,
        None => {
            let hashes = Role::ALL.map(|r| (r, hash_password(demo_password(r))));
            let mut failed = None;
            let seed = myna_ems::seed::kawasaki(&url, &credential_file, |role, _| {
                match hashes.iter().find(|(r, _)| *r == role) {
                    Some((_, Ok(h))) => h.clone(),
                    Some((_, Err(e))) => {
                        failed = Some(e.to_string());
                        String::new()
                    }
                    None => String::new(),
                }
            });
            if let Some(e) = failed {
                bail!("hashing the demo passwords: {e}");
            }
            ems_store.seed_bureau(seed).await?;
            println!("seeded 川崎市消防局: 7 stations, 31 ambulance teams");
        }
    }
    let bureau = ems_store
        .bureau(KAWASAKI_CODE)
        .await?
        .context("the seeded bureau is missing")?;
    seed_hospitals(ems_store.as_ref(), bureau.id).await?;
    let terminals_dir = dir.join("terminals");
    std::fs::create_dir_all(&terminals_dir)?;
    let device_ca = tls
        .device_ca
        .load()?
        .context("the demo's device CA is missing")?;
    let ems_listener = tokio::net::TcpListener::bind(args.ems_listen)
        .await
        .with_context(|| format!("binding {}", args.ems_listen))?;
    let ems_url = format!("https://{}", ems_listener.local_addr()?);
    let ems_server = tokio::spawn({
        let stop = stopped();
        let options = crate::ems_cli::EmsServeOptions {
            status_stale_minutes: None,
            review_due_days: 14,
            checkpoints,
            tls: Some(tls.ems.clone()),
            provider_ca: Some(tls.ca.clone()),
            public_hosts: Vec::new(),
            device_ca: Some(device_ca.clone()),
            stream_recheck: myna_ems::DEFAULT_STREAM_RECHECK,
        };
        let ems_store = ems_store.clone();
        async move { serve_ems(ems_store, ems_listener, options, stop).await }
    });
    // The demo's tablets enroll as a real one does, over HTTPS; the demo approves them as
    // the bureau's admin would.
    let enroller = EmsClient::without_bearer(&ems_url, tls.clients.clone())?;
    wait_for_ems(&enroller, &ems_server).await?;
    for (file, team) in DEMO_TERMINALS {
        enroll_demo_terminal(
            &enroller,
            ems_store.as_ref(),
            &device_ca,
            &bureau,
            team,
            &terminals_dir.join(format!("{file}.pem")),
            &terminals_dir.join(format!("{file}.key")),
        )
        .await?;
    }
    let (first_file, first_team) = DEMO_TERMINALS[0];
    let terminal_args = TerminalArgs {
        ems: ems_url.clone(),
        cert: Some(terminals_dir.join(format!("{first_file}.pem"))),
        key: Some(terminals_dir.join(format!("{first_file}.key"))),
        token_file: None,
        listen: args.terminal_listen,
        outbox: dir.join("terminal-outbox.db"),
        reader: None,
        demo_deck: Some(cards_dir.clone()),
        latency_ms: args.latency_ms,
        idle_timeout_s: args.idle_timeout_s,
        launch_file: Some(dir.join("terminal.launch")),
        ems_ca: Some(tls.ca.clone()),
    };
    let terminal_url = format!("http://{}", args.terminal_listen);
    // A launch URL from an earlier run no longer works: wait for this run's.
    let launch_file = dir.join("terminal.launch");
    let _ = std::fs::remove_file(&launch_file);
    let terminal_server = tokio::spawn(serve_terminal(terminal_args, stopped()));
    // The patient portal, with the first card's holder at their own computer.
    let portal_launch_file = dir.join("portal.launch");
    let _ = std::fs::remove_file(&portal_launch_file);
    let portal_args = crate::portal::PortalArgs {
        provider: url.clone(),
        provider_ca: Some(tls.ca.clone()),
        listen: args.portal_listen,
        reader: None,
        emulate_profile: Some(cards_dir.join(&first.profile_file)),
        launch_file: Some(portal_launch_file.clone()),
    };
    let portal_card = crate::portal::card_source(&portal_args)?;
    let portal_server = tokio::spawn(crate::portal::serve(portal_args, portal_card, stopped()));
    let launch = launch_url(&launch_file, &terminal_server).await;
    let portal_launch = launch_url(&portal_launch_file, &portal_server).await;

    println!(
        "\nprovider: {url}   (organisation {DEMO_ORG} by its client certificate, {})",
        tls.bureau_identity.display()
    );
    println!("cards in {}:", cards_dir.display());
    for c in &deck.cards {
        println!("  {:<18} {}", c.id, c.label_ja);
    }
    let bin = std::env::args()
        .next()
        .unwrap_or_else(|| "myna-kyukyu".into());
    let d = dir.display();
    let id = tls.bureau_identity.display();
    println!("\ntry, in another terminal:");
    println!(
        "  {bin} provider query --url {url} --tls-ca {d}/tls/ca.pem --identity {id} --cert {d}/cards/insulin.cert.der"
    );
    println!(
        "  {bin} provider query --url {url} --tls-ca {d}/tls/ca.pem --identity {id} --cert {d}/cards/dialysis.cert.der --exception unconscious --full"
    );
    println!("  {bin} audit verify --db {d}/provider.db");
    println!("  scripts/pcscd-vpcd start   # then put a card on the virtual PC/SC reader:");
    println!("  {bin} card emulate --profile {d}/cards/doac.profile.json --latency-ms 25 &");
    println!("  {bin} card read --test-root {d}/pki/{CA_CERT}");

    let crew = kawasaki_crew_login(first_team).unwrap_or_default();
    println!(
        "\nHTTPS: the provider and ems use certificates of the demo's development CA, {}.\n\
         Trust it once to open the desk without a warning (README, \"Trusting the demo CA\");\n\
         `provider query` needs --tls-ca {}.",
        tls.ca.display(),
        tls.ca.display()
    );
    println!("\n━━━ マイナ救急 demo ━━━");
    println!(
        "  指令台 (dispatcher):  {ems_url}/login   bureau {KAWASAKI_CODE}, login dispatcher / {DEMO_DISPATCHER_PASSWORD}"
    );
    println!("  管理 (admin):         {ems_url}/admin   login admin / {DEMO_ADMIN_PASSWORD}");
    println!(
        "  救急統計 (statistics): {ems_url}/stats   as dispatcher or admin (fill a year: myna-kyukyu simulate --bureau kawasaki --year 2025 --db {d}/ems.db)"
    );
    println!("  事後審査 (privacy):   {ems_url}/review  login privacy / {DEMO_PRIVACY_PASSWORD}");
    println!(
        "  救急隊端末 (crew):    {}   {first_team}: login {crew} / {DEMO_CREW_PASSWORD}",
        launch
            .as_deref()
            .unwrap_or("(see the terminal's line above)")
    );
    println!(
        "                        open it once, in the tablet's browser window (also in {d}/terminal.launch)"
    );
    println!(
        "  カードを置く (panel): {terminal_url}/demo   (in the same browser window, after the launch URL)"
    );
    println!("  every team's crew login is crew01 … crew31 with the same demo password");
    println!(
        "  閲覧履歴 (patient):    {}   the {:?} card's holder: PIN 1234 (three wrong PINs lock it)",
        portal_launch
            .as_deref()
            .unwrap_or("(see the portal's line above)"),
        first.id
    );
    println!(
        "  病院画面 (hospital):  {ems_url}/login   bureau {KAWASAKI_CODE}, login er-kawasaki-municipal / {DEMO_HOSPITAL_PASSWORD}"
    );
    println!(
        "                        every registry hospital has er-<id>, e.g. er-kanto-rosai, er-nms-musashikosugi"
    );

    if args.exit_after_samples {
        let _ = stop_tx.send(true);
    } else {
        println!("\nserving until Ctrl-C …");
    }
    server.await.context("provider task")??;
    ems_server.await.context("ems task")??;
    terminal_server.await.context("terminal task")??;
    portal_server.await.context("portal task")??;
    Ok(ExitCode::SUCCESS)
}

/// The one-time launch URL a local UI writes to `file` once it listens (up to 10 s), unless
/// its task ended first.
async fn launch_url<T>(
    file: &std::path::Path,
    task: &tokio::task::JoinHandle<T>,
) -> Option<String> {
    for _ in 0..100 {
        if let Ok(url) = std::fs::read_to_string(file) {
            return Some(url.trim().to_owned());
        }
        if task.is_finished() {
            return None;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    None
}

/// Each registry hospital's staff account (added if a data directory from before hospitals
/// lacks it) and its acceptance status as the staff would set it at the start of a shift, if
/// it has none: every capability accepting, except that 関東労災病院 is limited for
/// neurosurgery (so the ranking shows a status at work). Demo data, set in the staff's name.
async fn seed_hospitals<S: EmsStore>(store: &S, bureau: i64) -> Result<()> {
    use myna_domain::hospitals::{Acceptance, Capability, HospitalStatus, Registry};
    use myna_store::ems::{AccountSeed, Role};
    let registry = Registry::shared().map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut hash = None;
    for h in registry.hospitals() {
        let login = myna_ems::seed::hospital_login(&h.id);
        if store.account(bureau, &login).await?.is_some() {
            continue;
        }
        let password_hash = match &hash {
            Some(x) => String::clone(x),
            None => {
                let x = hash_password(DEMO_HOSPITAL_PASSWORD)?;
                hash = Some(x.clone());
                x
            }
        };
        store
            .add_account(
                bureau,
                AccountSeed {
                    login,
                    display_name: format!("{} 救急外来", h.name),
                    role: Role::Hospital,
                    team: None,
                    hospital: Some(h.id.clone()),
                    password_hash,
                },
            )
            .await?;
    }
    let known: Vec<String> = store
        .hospital_statuses(bureau)
        .await?
        .into_iter()
        .map(|s| s.hospital_id)
        .collect();
    for h in registry.hospitals() {
        if known.contains(&h.id) {
            continue;
        }
        let Some(staff) = store
            .account(bureau, &myna_ems::seed::hospital_login(&h.id))
            .await?
        else {
            continue;
        };
        let mut status = HospitalStatus::accepting_everything(h, chrono::Utc::now());
        if h.id == "kanto-rosai" {
            for (c, a) in &mut status.capabilities {
                if *c == Capability::Neurosurgery {
                    *a = Acceptance::Limited;
                }
            }
            status.note = "脳外科医 手術中（デモ）".into();
        }
        store
            .set_hospital_status(
                bureau,
                myna_store::ems::StatusChange {
                    status,
                    account: staff.id,
                },
            )
            .await?;
    }
    Ok(())
}

/// Waits until ems answers (it was just spawned).
async fn wait_for_ems(
    client: &EmsClient,
    server: &tokio::task::JoinHandle<Result<()>>,
) -> Result<()> {
    for _ in 0..100 {
        // Any answer from ems, even a refusal, means it is up.
        match client.enroll_status("-").await {
            Err(myna_terminal::ems_client::CallError::Offline(_)) => {}
            _ => return Ok(()),
        }
        if server.is_finished() {
            bail!("ems stopped while starting");
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    bail!("ems did not start")
}

/// Enrolls a demo tablet for `team` unless its certificate is already bound to a live
/// terminal: the tablet's key and request (`enroll`), the admin's approval, the collection.
async fn enroll_demo_terminal<S: EmsStore>(
    client: &EmsClient,
    store: &S,
    ca: &myna_ems::enroll::DeviceCa,
    bureau: &myna_store::ems::Bureau,
    team: &str,
    cert: &std::path::Path,
    key: &std::path::Path,
) -> Result<()> {
    if let Ok(pem) = std::fs::read_to_string(cert)
        && key.exists()
    {
        let fingerprint =
            myna_ems::enroll::certificate_fingerprint(&pem).map_err(|e| anyhow::anyhow!("{e}"))?;
        if store
            .terminal_by_certificate(&fingerprint)
            .await?
            .is_some_and(|t| !t.revoked)
        {
            return Ok(());
        }
    }
    for stale in [cert, key] {
        let _ = std::fs::remove_file(stale);
    }
    let _ = std::fs::remove_file(format!("{}.enrollment", key.display()));
    let label = format!("{team} タブレット");
    let team_id = store
        .teams(bureau.id)
        .await?
        .into_iter()
        .find(|t| t.name == team)
        .with_context(|| format!("no team {team}"))?
        .id;
    let now = chrono::Utc::now();
    let invite = myna_ems::enroll::invite(store, bureau, team_id, "demo", now.timestamp_millis())
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .context("the demo's team is not the bureau's")?;
    let filed = crate::enroll::file_request(client, &bureau.code, &invite, &label, key).await?;
    let request = store
        .enrollments(bureau.id, true)
        .await?
        .into_iter()
        .find(|e| e.code == filed.code && e.label == label)
        .context("the demo's enrollment request is not waiting")?;
    myna_ems::enroll::approve(
        store,
        ca,
        bureau,
        request.id,
        myna_store::ems::EnrollmentLimits::default(),
        now.timestamp_millis(),
        myna_ems::enroll::utc_today(now),
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}"))?
    .context("the demo's enrollment was not approved")?;
    match crate::enroll::collect(client, &filed, key, cert).await? {
        crate::enroll::Answer::Approved => {
            println!("enrolled the {team} tablet (照合コード {})", filed.code);
            Ok(())
        }
        _ => bail!("the demo's approved enrollment gave no certificate"),
    }
}
