//! Where the terminal's cards come from: a PC/SC reader through `pcscd` (the tablet), or the
//! demo's emulated reader, whose panel "places" a chosen card. Both report the same states and
//! read the certificate with the same `myna_reader::read_auth_certificate`.

use myna_card_emu::card::Card as EmulatedCard;
use myna_card_emu::reader::{EmulatedReader, Faults};
use myna_reader::{AuthCertRead, ReadFailure};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
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

/// A certificate as the terminal API carries it: standard base64 of the DER.
pub(crate) fn certificate_b64(der: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(der)
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

/// How often the PC/SC watcher looks at its stop flag while it waits for presence events.
const STOP_CHECK: Duration = Duration::from_secs(1);

/// The PC/SC watcher's thread; dropping it stops the thread and waits for it.
pub struct PcscWatch {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for PcscWatch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl PcscWatch {
    /// Lets the watcher run for the life of the process.
    pub fn detach(mut self) {
        self.thread.take();
    }
}

/// Watches a PC/SC reader (or every reader) on its own thread: waits for a card with presence
/// events, reads it, reports, then waits for it to be lifted.
pub fn watch_pcsc(reader: Option<String>, on_card: OnCard) -> std::io::Result<PcscWatch> {
    let stop = Arc::new(AtomicBool::new(false));
    let stopping = stop.clone();
    let thread = std::thread::Builder::new()
        .name("pcsc-watch".into())
        .spawn(move || {
            let stopped = || stopping.load(Ordering::SeqCst);
            let mut last_failure: Option<ReadFailure> = None;
            while !stopped() {
                match myna_reader::pcsc::wait_for_card(reader.as_deref(), STOP_CHECK) {
                    Ok(name) => {
                        last_failure = None;
                        on_card(CardState::Reading);
                        let result = myna_reader::pcsc::with_card(&name, CARD_IO_DEADLINE, |t| {
                            myna_reader::read_auth_certificate(t)
                        });
                        on_card(match result {
                            Ok(read) => CardRead::from(read),
                            Err(f) => CardState::Failed(f),
                        });
                        // Until the card is lifted; a vanished reader counts as lifted.
                        while !stopped()
                            && matches!(
                                myna_reader::pcsc::wait_for_removal(&name, STOP_CHECK),
                                Ok(false)
                            )
                        {}
                        on_card(CardState::Empty);
                    }
                    Err(ReadFailure::NoCard) => {}
                    Err(f) => {
                        // Told once, not every second while the reader stays unplugged.
                        if last_failure.as_ref() != Some(&f) {
                            on_card(CardState::Failed(f.clone()));
                            last_failure = Some(f);
                        }
                        std::thread::sleep(STOP_CHECK);
                        continue;
                    }
                }
            }
        })?;
    Ok(PcscWatch {
        stop,
        thread: Some(thread),
    })
}
