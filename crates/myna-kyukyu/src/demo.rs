//! `demo`: everything a new user needs to see the provider work, on SQLite under one directory.
//!
//! This issue's demo covers the provider role: a synthetic Kawasaki population, a test JPKI CA,
//! a deck of card certificates (one per alert class) and the running provider API. The ems
//! server, the tablet UI and the emulated card reader join it in later issues.

use crate::cards::{CA_CERT, Deck, Expect, PkiDir, issue_deck};
use crate::client::{ProviderClient, SummaryOutcome};
use crate::profile_file::ProfileFile;
use crate::provider::{add_organisation, read_token, serve, write_token};
use anyhow::{Context, Result, bail};
use myna_card_emu::card::Card as EmulatedCard;
use myna_card_emu::reader::{EmulatedReader, Faults};
use myna_domain::access::{Consent, ExceptionReason};
use myna_domain::summary::View;
use myna_provider::ViewerBody;
use myna_store_sqlite::SqliteStore;
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
    /// Run the sample queries, then stop instead of serving until Ctrl-C.
    #[arg(long)]
    pub exit_after_samples: bool,
}

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
    let store = Arc::new(SqliteStore::open(&db)?);
    let pki_dir = dir.join("pki");
    let pki = PkiDir::open_or_create(&pki_dir)?;
    let token_path = dir.join("provider.token");
    if !token_path.exists() {
        let token = add_organisation(store.as_ref(), DEMO_ORG, "川崎市消防局").await?;
        write_token(&token_path, &token)?;
    }
    let token = read_token(&token_path)?;
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
        _ => issue_deck(&store, &pki, &cards_dir).await?,
    };

    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {} (is another demo running?)", args.listen))?;
    let url = format!("http://{}", listener.local_addr()?);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let ca_cert = pki_dir.join(CA_CERT);
    let server = tokio::spawn({
        let store = store.clone();
        async move {
            serve(store, &ca_cert, listener, async {
                tokio::select! {
                    _ = stop_rx => {}
                    _ = crate::provider::shutdown_signal() => {}
                }
            })
            .await
        }
    });

    let client = ProviderClient::new(&url, &token);
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

    println!(
        "\nprovider: {url}   (organisation {DEMO_ORG}, credential in {})",
        token_path.display()
    );
    println!("cards in {}:", cards_dir.display());
    for c in &deck.cards {
        println!("  {:<18} {}", c.id, c.label_ja);
    }
    let bin = std::env::args()
        .next()
        .unwrap_or_else(|| "myna-kyukyu".into());
    let d = dir.display();
    println!("\ntry, in another terminal:");
    println!(
        "  {bin} provider query --url {url} --token-file {d}/provider.token --cert {d}/cards/insulin.cert.der"
    );
    println!(
        "  {bin} provider query --url {url} --token-file {d}/provider.token --cert {d}/cards/dialysis.cert.der --exception unconscious --full"
    );
    println!("  {bin} audit verify --db {d}/provider.db");
    println!("  scripts/pcscd-vpcd start   # then put a card on the virtual PC/SC reader:");
    println!("  {bin} card emulate --profile {d}/cards/doac.profile.json --latency-ms 25 &");
    println!("  {bin} card read --test-root {d}/pki/{CA_CERT}");

    if args.exit_after_samples {
        let _ = stop_tx.send(());
    } else {
        println!("\nserving until Ctrl-C …");
    }
    server.await.context("provider task")??;
    Ok(ExitCode::SUCCESS)
}
