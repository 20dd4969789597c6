//! Test CA files, and card decks: certificates for synthetic persons, one card per alert class.

use crate::profile_file::{HolderFile, ProfileFile};
use crate::store::{DbTarget, ProviderDb};
use anyhow::{Context, Result, bail};
use chrono::{Duration, NaiveDate, Utc};
use myna_domain::summary::{View, build_summary};
use myna_pki::{KeyPool, TestCa};
use myna_store::ProviderStore;
use myna_synth::{Generator, SyntheticPerson};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(clap::Subcommand)]
pub enum CaCommand {
    /// Create a test JPKI CA and a pool of holder keys in a directory.
    Init {
        #[arg(long, default_value = "data/pki")]
        dir: PathBuf,
        /// Number of RSA-2048 holder keys shared by emulated cards.
        #[arg(long, default_value_t = 4)]
        keys: usize,
    },
}

#[derive(clap::Subcommand)]
pub enum CardCommand {
    /// Issue a deck: one card per alert class, a card with no alerts, and error cards.
    Deck {
        #[arg(long, default_value = "data/provider.db")]
        db: DbTarget,
        #[arg(long, default_value = "data/pki")]
        pki: PathBuf,
        #[arg(long, default_value = "data/cards")]
        out: PathBuf,
    },
    /// List the PC/SC readers.
    Readers,
    /// Read the card's JPKI user-authentication certificate (no PIN) and check its chain.
    Read(crate::card_cli::ReadArgs),
    /// Print the remaining PIN tries without spending one.
    Status(crate::card_cli::StatusArgs),
    /// Emulate a card on a running pcscd through vsmartcard-vpcd.
    Emulate(crate::card_cli::EmulateArgs),
}

pub const CA_KEY: &str = "ca.key.pk8.der";
pub const CA_CERT: &str = "ca.cert.der";

/// The test CA and holder keys stored in a directory.
pub struct PkiDir {
    pub ca: TestCa,
    pub keys: KeyPool,
}

impl PkiDir {
    pub fn create(dir: &Path, keys: usize) -> Result<Self> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let ca = TestCa::generate(Utc::now())?;
        let pool = KeyPool::generate(keys)?;
        crate::secret_file::write(&dir.join(CA_KEY), &ca.key_pkcs8_der()?)?;
        std::fs::write(dir.join(CA_CERT), ca.cert_der())?;
        for (i, der) in pool.to_pkcs8()?.iter().enumerate() {
            crate::secret_file::write(&dir.join(format!("holder-{i}.pk8.der")), der)?;
        }
        Ok(Self { ca, keys: pool })
    }

    pub fn load(dir: &Path) -> Result<Self> {
        let key = std::fs::read(dir.join(CA_KEY))
            .with_context(|| format!("reading {}", dir.join(CA_KEY).display()))?;
        let cert = std::fs::read(dir.join(CA_CERT))?;
        let ca = TestCa::from_parts(&key, &cert)?;
        let mut ders = Vec::new();
        for i in 0.. {
            match std::fs::read(dir.join(format!("holder-{i}.pk8.der"))) {
                Ok(d) => ders.push(d),
                Err(_) => break,
            }
        }
        Ok(Self {
            ca,
            keys: KeyPool::from_pkcs8(&ders)?,
        })
    }

    pub fn open_or_create(dir: &Path) -> Result<Self> {
        if dir.join(CA_KEY).exists() {
            Self::load(dir)
        } else {
            Self::create(dir, 4)
        }
    }
}

/// What presenting a card should produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Expect {
    Summary,
    UnknownSerial,
    CertificateExpired,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Card {
    pub id: String,
    pub label_ja: String,
    pub person_id: Option<i64>,
    pub name: Option<String>,
    pub serial: String,
    pub cert_file: String,
    /// The emulator's card profile (`card emulate --profile`).
    #[serde(default)]
    pub profile_file: String,
    /// Index into the PKI directory's holder keys.
    pub holder_key: usize,
    pub expected_alerts: Vec<String>,
    pub expect: Expect,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Deck {
    pub chosen_on: NaiveDate,
    pub cards: Vec<Card>,
}

impl Deck {
    pub fn load(dir: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(dir.join("deck.json"))
            .with_context(|| format!("reading {}/deck.json", dir.display()))?;
        Ok(serde_json::from_str(&text)?)
    }
    pub fn card(&self, id: &str) -> Option<&Card> {
        self.cards.iter().find(|c| c.id == id)
    }
}

pub async fn run_ca(cmd: CaCommand) -> Result<ExitCode> {
    match cmd {
        CaCommand::Init { dir, keys } => {
            if dir.join(CA_KEY).exists() {
                bail!("{} already holds a CA", dir.display());
            }
            PkiDir::create(&dir, keys)?;
            println!(
                "test JPKI CA and {keys} holder keys written to {}",
                dir.display()
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

pub async fn run_card(cmd: CardCommand) -> Result<ExitCode> {
    match cmd {
        CardCommand::Deck { db, pki, out } => {
            let store = ProviderDb::open_existing(&db, "; run `myna-kyukyu gen` first").await?;
            let pki = PkiDir::open_or_create(&pki)?;
            let deck = issue_deck(&store, &pki, &out).await?;
            store.close()?;
            for c in &deck.cards {
                println!(
                    "{:<18} {:<14} {}",
                    c.id,
                    c.serial,
                    c.name.as_deref().unwrap_or("-")
                );
            }
            println!("{} cards written to {}", deck.cards.len(), out.display());
            Ok(ExitCode::SUCCESS)
        }
        // PC/SC calls block; keep them off the async workers.
        CardCommand::Readers => blocking(crate::card_cli::readers).await,
        CardCommand::Read(a) => blocking(move || crate::card_cli::read(a)).await,
        CardCommand::Status(a) => blocking(move || crate::card_cli::status(a)).await,
        CardCommand::Emulate(a) => blocking(move || crate::card_cli::emulate(a)).await,
    }
}

fn card_for(p: &SyntheticPerson, id: &str, label: &str, expected_alerts: Vec<String>) -> Card {
    Card {
        id: id.to_owned(),
        label_ja: label.to_owned(),
        person_id: Some(p.person.id.0),
        name: Some(p.person.name.clone()),
        serial: p.cert_serial.clone(),
        cert_file: format!("{id}.cert.der"),
        profile_file: format!("{id}.profile.json"),
        holder_key: 0,
        expected_alerts,
        expect: Expect::Summary,
    }
}

/// Picks one person per alert class (plus a person with no alert) from the population the
/// database was generated with, and issues their card certificates.
pub async fn issue_deck<S: ProviderStore>(store: &S, pki: &PkiDir, out: &Path) -> Result<Deck> {
    let info = store.dataset_info().await?;
    let (Some(seed), Some(as_of)) = (info.seed, info.generated_as_of) else {
        bail!("the database has no generator seed; card decks need a generated population");
    };
    let generator = Generator::new(seed, as_of)?;
    let table = crate::provider::alert_table()?;
    let now = Utc::now();
    let today = myna_provider::japan_date(now);
    let mut cards: Vec<Card> = Vec::new();
    let mut wanted: Vec<(String, String)> = table
        .classes()
        .iter()
        .map(|c| (c.id.clone(), c.label_ja.clone()))
        .collect();
    let mut no_alert: Option<Card> = None;
    let scan = info.persons.min(100_000);
    let alert_classes = |p: &SyntheticPerson| -> (Vec<String>, bool) {
        let s = build_summary(
            &p.person,
            &p.records,
            View::Summary,
            today,
            info.claims_through,
            &table,
        );
        (
            s.alerts.iter().map(|a| a.class.clone()).collect(),
            !s.sections.dispensings.is_empty(),
        )
    };
    // First pass: cards whose first alert is the class, so each card shows its class on top.
    // Second pass: classes never first on anyone's list, from anyone who has them.
    for first_only in [true, false] {
        for i in 0..scan {
            if wanted.is_empty() && (no_alert.is_some() || !first_only) {
                break;
            }
            let p = generator.person(i);
            let (classes, has_drugs) = alert_classes(&p);
            if first_only && classes.is_empty() && has_drugs && no_alert.is_none() {
                no_alert = Some(card_for(&p, "no-alert", "警告なし", classes.clone()));
            }
            let hit = wanted.iter().position(|(id, _)| {
                if first_only {
                    classes.first() == Some(id)
                } else {
                    classes.contains(id)
                }
            });
            if let Some(pos) = hit {
                let (id, label) = wanted.remove(pos);
                cards.push(card_for(&p, &id, &label, classes));
            }
        }
    }
    if !wanted.is_empty() {
        let missing: Vec<_> = wanted.iter().map(|(id, _)| id.as_str()).collect();
        tracing::warn!(
            ?missing,
            "no person in the population raises these alerts; the deck lacks them"
        );
    }
    // Table order: the most urgent classes first, as on the summary.
    cards.sort_by_key(|c| {
        table
            .classes()
            .iter()
            .position(|k| k.id == c.id)
            .unwrap_or(usize::MAX)
    });
    cards.extend(no_alert);
    if let Some(first) = cards.first().cloned() {
        cards.push(Card {
            id: "expired".into(),
            label_ja: "期限切れ証明書".into(),
            cert_file: "expired.cert.der".into(),
            profile_file: "expired.profile.json".into(),
            expected_alerts: vec![],
            expect: Expect::CertificateExpired,
            ..first
        });
    }
    cards.push(Card {
        id: "unknown".into(),
        label_ja: "未登録（保険証利用登録なし）".into(),
        person_id: None,
        name: None,
        serial: "02000000000001".into(),
        cert_file: "unknown.cert.der".into(),
        profile_file: "unknown.profile.json".into(),
        holder_key: 0,
        expected_alerts: vec![],
        expect: Expect::UnknownSerial,
    });

    std::fs::create_dir_all(out)?;
    for (n, card) in cards.iter_mut().enumerate() {
        card.holder_key = n % pki.keys.len();
        let (from, to) = match card.expect {
            Expect::CertificateExpired => (now - Duration::days(5 * 365), now - Duration::days(1)),
            _ => (now - Duration::days(365), now + Duration::days(4 * 365)),
        };
        let der = pki.ca.issue_auth_cert(
            &card.serial,
            &pki.keys.key(card.holder_key).to_public_key(),
            from,
            to,
        )?;
        std::fs::write(out.join(&card.cert_file), &der)?;
        let person = card
            .person_id
            .and_then(|id| u64::try_from(id - 1).ok())
            .map(|index| (index, generator.person(index).person));
        profile_file(pki, card, person, der, from, to, n)?.write(&out.join(&card.profile_file))?;
    }
    let deck = Deck {
        chosen_on: today,
        cards,
    };
    std::fs::write(out.join("deck.json"), serde_json::to_string_pretty(&deck)?)?;
    Ok(deck)
}

/// The emulator profile of a deck card: its certificates and keys, and the holder's 券面事項
/// (a synthetic stand-in for the unregistered card, which has no person).
fn profile_file(
    pki: &PkiDir,
    card: &Card,
    person: Option<(u64, myna_domain::person::Person)>,
    auth_cert: Vec<u8>,
    from: chrono::DateTime<Utc>,
    to: chrono::DateTime<Utc>,
    n: usize,
) -> Result<ProfileFile> {
    use crate::profile_file::{encode, municipality_code, synthetic_my_number};
    let keys = pki.keys.to_pkcs8()?;
    let key = |offset: usize| encode(&keys[(card.holder_key + offset) % keys.len()]);
    // The 署名用 certificate: same CA here (the test hierarchy has one CA), signing shape.
    let sign_serial = format!("03{}", card.serial.get(2..).unwrap_or("0"));
    let sign_cert = pki.ca.issue_shaped(
        &sign_serial,
        &pki.keys
            .key((card.holder_key + 1) % keys.len())
            .to_public_key(),
        from,
        to,
        myna_pki::CertShape::SigningLike,
    )?;
    let (index, name, address, birth_date, sex, municipality) = match person {
        Some((index, p)) => (
            index,
            p.name.clone(),
            p.address.one_line(),
            p.birth_date,
            p.sex.code(),
            municipality_code(&p.address.municipality).to_owned(),
        ),
        None => (
            999_999_000 + n as u64,
            "未登録\u{3000}太郎".to_owned(),
            "神奈川県川崎市川崎区宮本町１番地".to_owned(),
            NaiveDate::from_ymd_opt(1975, 4, 1).unwrap_or_default(),
            1,
            "14131".to_owned(),
        ),
    };
    let expiry = (to + Duration::days(30)).date_naive();
    Ok(ProfileFile {
        id: card.id.clone(),
        token: myna_card_emu::profile::Token::MyNumberCard
            .label()
            .to_owned(),
        auth_cert_b64: encode(&auth_cert),
        auth_ca_b64: encode(pki.ca.cert_der()),
        sign_cert_b64: encode(&sign_cert),
        sign_ca_b64: encode(pki.ca.cert_der()),
        keys_pkcs8_b64: [key(0), key(1), key(2), key(3), key(4)],
        auth_pin: "1234".into(),
        sign_password: "ABC123".into(),
        holder: HolderFile {
            my_number: synthetic_my_number(index),
            name,
            address,
            birth_date,
            sex,
            card_expiry: expiry,
            security_code: format!("{:04}", index % 10_000),
            text_pin: "5678".into(),
            municipality_code: municipality,
        },
    })
}

async fn blocking(f: impl FnOnce() -> Result<ExitCode> + Send + 'static) -> Result<ExitCode> {
    tokio::task::spawn_blocking(f).await?
}
