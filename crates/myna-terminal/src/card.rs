//! Where the terminal's cards come from: a PC/SC reader through `pcscd` (the tablet), or the
//! demo's emulated reader, whose panel "places" a chosen card. Both report the same states and
//! read the certificate with the same `myna_reader::read_auth_certificate`.

use myna_card_emu::card::Card as EmulatedCard;
use myna_card_emu::reader::{EmulatedReader, Faults};
use myna_reader::{AuthCertRead, ReadFailure};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What is on the reader, as the crew sees it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum CardState {
    #[default]
    Empty,
    Reading,
    Read(CardRead),
    Failed(ReadFailure),
}

/// A certificate read from the card. Not medical data: it is held in memory only, while the
/// card is on the reader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardRead {
    pub der: Vec<u8>,
    pub serial: String,
    pub apdus: u32,
    pub millis: u64,
}

impl CardRead {
    fn from(read: AuthCertRead) -> CardState {
        let serial = myna_pki::certificate_serial_hex(&read.der).unwrap_or_default();
        CardState::Read(CardRead {
            apdus: read.apdus(),
            millis: read.micros() / 1000,
            serial,
            der: read.der,
        })
    }
}

pub type OnCard = Arc<dyn Fn(CardState) + Send + Sync>;

/// One card of the demo deck.
#[derive(Clone)]
pub struct DemoCard {
    pub id: String,
    pub label: String,
    pub card: EmulatedCard,
}

/// The demo's emulated contactless reader. Placing a card reads it through the same card
/// module as PC/SC, with a per-command latency like a real contactless reader.
pub struct EmulatedSlot {
    deck: Vec<DemoCard>,
    placed: Mutex<Option<String>>,
    /// Bumped on every place and remove, so a read that finishes after the card was lifted
    /// does not report it.
    generation: AtomicU64,
    latency: Duration,
    on_card: OnCard,
}

impl EmulatedSlot {
    pub fn new(deck: Vec<DemoCard>, latency: Duration, on_card: OnCard) -> Self {
        Self {
            deck,
            placed: Mutex::new(None),
            generation: AtomicU64::new(0),
            latency,
            on_card,
        }
    }

    pub fn deck(&self) -> &[DemoCard] {
        &self.deck
    }

    pub fn placed(&self) -> Option<String> {
        self.placed.lock().ok().and_then(|p| p.clone())
    }

    /// Puts card `id` on the reader and reads it in the background.
    pub fn place(self: &Arc<Self>, id: &str) -> Result<(), String> {
        let card = self
            .deck
            .iter()
            .find(|c| c.id == id)
            .ok_or_else(|| format!("no card {id:?} in the deck"))?
            .card
            .clone();
        if let Ok(mut p) = self.placed.lock() {
            *p = Some(id.to_owned());
        }
        let generation = self.generation.fetch_add(1, Ordering::SeqCst) + 1;
        (self.on_card)(CardState::Reading);
        let slot = self.clone();
        std::thread::spawn(move || {
            let mut reader = EmulatedReader::new(
                card,
                Faults {
                    latency: slot.latency,
                    ..Faults::default()
                },
            );
            let state = match myna_reader::read_auth_certificate(&mut reader) {
                Ok(read) => CardRead::from(read),
                Err(f) => CardState::Failed(f),
            };
            if slot.generation.load(Ordering::SeqCst) == generation {
                (slot.on_card)(state);
            }
        });
        Ok(())
    }

    pub fn remove(&self) {
        if let Ok(mut p) = self.placed.lock() {
            *p = None;
        }
        self.generation.fetch_add(1, Ordering::SeqCst);
        (self.on_card)(CardState::Empty);
    }
}

/// Per-read deadline: a mute card must not hang the crew.
const CARD_IO_DEADLINE: Duration = Duration::from_secs(5);

/// Watches a PC/SC reader (or every reader) on its own thread: waits for a card with presence
/// events, reads it, reports, then waits for it to be lifted.
pub fn watch_pcsc(reader: Option<String>, on_card: OnCard) {
    let spawned = std::thread::Builder::new()
        .name("pcsc-watch".into())
        .spawn(move || {
            loop {
                match myna_reader::pcsc::wait_for_card(reader.as_deref(), Duration::from_secs(60)) {
                    Ok(name) => {
                        on_card(CardState::Reading);
                        let result = myna_reader::pcsc::with_card(&name, CARD_IO_DEADLINE, |t| {
                            myna_reader::read_auth_certificate(t)
                        });
                        on_card(match result {
                            Ok(read) => CardRead::from(read),
                            Err(f) => CardState::Failed(f),
                        });
                        // Until the card is lifted; a vanished reader counts as lifted.
                        while let Ok(false) =
                            myna_reader::pcsc::wait_for_removal(&name, Duration::from_secs(60))
                        {
                        }
                        on_card(CardState::Empty);
                    }
                    Err(ReadFailure::NoCard) => {}
                    Err(f) => {
                        on_card(CardState::Failed(f));
                        std::thread::sleep(Duration::from_secs(2));
                    }
                }
            }
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "cannot start the PC/SC watcher");
    }
}
