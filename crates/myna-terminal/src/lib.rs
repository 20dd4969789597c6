//! `terminal`: the ambulance tablet. It serves the crew's touch UI (Japanese) on the tablet
//! itself, reads the card through the card module, and talks to `ems`.
//!
//! - Nothing medical touches the disk: the summary lives in memory only and is dropped when the
//!   incident closes, on sign-out and after an idle timeout; pages carry `no-store`.
//! - Incident events go through the durable `outbox` and sync exactly once when the link is up.
//! - A summary requested while the link is down waits, and is sent when the link returns.

pub mod card;
pub mod ems_client;
pub mod outbox;
mod sync;
mod ui;

use card::{CardState, EmulatedSlot};
use ems_client::EmsClient;
use myna_domain::summary::View;
use myna_ems::wire::{IncidentView, SignedIn};
use myna_provider::SummaryResponse;
use outbox::Outbox;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::{Notify, watch};

pub use ui::router;

#[derive(Debug, Clone)]
pub struct TerminalConfig {
    /// The summary is dropped after this long without a touch.
    pub idle_timeout: Duration,
}

impl Default for TerminalConfig {
    fn default() -> Self {
        Self {
            idle_timeout: Duration::from_secs(10 * 60),
        }
    }
}

/// The state of the link to `ems`, as the crew sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Link {
    Unknown,
    Online,
    Offline { detail: String },
}

/// A summary request, kept until it is answered.
#[derive(Debug, Clone)]
pub struct SummaryRequest {
    pub incident: i64,
    pub der: Vec<u8>,
    pub view: View,
    /// Set while the link is down: the crew sees "waiting for the link".
    pub waiting_for_link: bool,
}

/// The summary on screen, in memory only.
#[derive(Debug, Clone)]
pub struct HeldSummary {
    pub incident: i64,
    pub response: SummaryResponse,
}

/// A message for the crew at the top of the screen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    pub error: bool,
    pub text: String,
}

/// Everything the screen shows. Held in memory; rebuilt from `ems` after a restart.
#[derive(Debug, Clone)]
pub struct Screen {
    pub crew: Option<SignedIn>,
    pub incidents: Vec<IncidentView>,
    pub current: Option<i64>,
    pub card: CardState,
    /// Tap 1 was made for the card now on the reader.
    pub face_checked: bool,
    pub summary: Option<HeldSummary>,
    pub request: Option<SummaryRequest>,
    pub link: Link,
    pub notice: Option<Notice>,
    pub last_touch: Instant,
}

impl Default for Screen {
    fn default() -> Self {
        Self {
            crew: None,
            incidents: Vec::new(),
            current: None,
            card: CardState::Empty,
            face_checked: false,
            summary: None,
            request: None,
            link: Link::Unknown,
            notice: None,
            last_touch: Instant::now(),
        }
    }
}

impl Screen {
    /// Drops everything medical and everything tied to the card.
    pub fn forget_patient(&mut self) {
        self.summary = None;
        self.request = None;
        self.face_checked = false;
    }

    /// Ends the crew's shift on this tablet: no crew, no incidents, nothing medical.
    pub fn end_shift(&mut self, notice: Notice) {
        self.crew = None;
        self.incidents.clear();
        self.current = None;
        self.forget_patient();
        self.notice = Some(notice);
    }

    pub fn session(&self) -> Option<String> {
        self.crew.as_ref().map(|c| c.session.clone())
    }
}

pub struct Terminal {
    pub ems: EmsClient,
    pub outbox: Outbox,
    pub demo: Option<Arc<EmulatedSlot>>,
    pub config: TerminalConfig,
    screen: Mutex<Screen>,
    /// Bumped on every change the browser should redraw for.
    changed: watch::Sender<u64>,
    /// Wakes the sync task (new outbox entry, new summary request, sign-in).
    pub(crate) wake: Notify,
}

impl Terminal {
    pub fn new(ems: EmsClient, outbox: Outbox, config: TerminalConfig) -> Arc<Self> {
        let (changed, _) = watch::channel(0);
        Arc::new(Self {
            ems,
            outbox,
            demo: None,
            config,
            screen: Mutex::new(Screen::default()),
            changed,
            wake: Notify::new(),
        })
    }

    /// With the demo's emulated reader.
    pub fn with_demo(
        ems: EmsClient,
        outbox: Outbox,
        config: TerminalConfig,
        make_slot: impl FnOnce(card::OnCard) -> EmulatedSlot,
    ) -> Arc<Self> {
        Arc::new_cyclic(|weak: &std::sync::Weak<Terminal>| {
            let weak = weak.clone();
            let on_card: card::OnCard = Arc::new(move |state| {
                if let Some(t) = weak.upgrade() {
                    t.set_card(state);
                }
            });
            let (changed, _) = watch::channel(0);
            Terminal {
                ems,
                outbox,
                demo: Some(Arc::new(make_slot(on_card))),
                config,
                screen: Mutex::new(Screen::default()),
                changed,
                wake: Notify::new(),
            }
        })
    }

    /// The callback a PC/SC watcher reports to.
    pub fn card_callback(self: &Arc<Self>) -> card::OnCard {
        let weak = Arc::downgrade(self);
        Arc::new(move |state| {
            if let Some(t) = weak.upgrade() {
                t.set_card(state);
            }
        })
    }

    pub(crate) fn screen(&self) -> MutexGuard<'_, Screen> {
        // A poisoned lock only means another thread panicked mid-update; the screen is still
        // the best we have.
        self.screen.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn redraw(&self) {
        self.changed.send_modify(|n| *n = n.wrapping_add(1));
    }

    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    pub fn set_card(&self, state: CardState) {
        {
            let mut s = self.screen();
            if state == CardState::Empty || state == CardState::Reading {
                // A new card (or none): the face check was for the previous one. A summary on
                // screen stays, and so does a request waiting for the link: it already holds
                // the certificate, so the crew may hand the card back.
                s.face_checked = false;
            }
            s.card = state;
        }
        self.redraw();
    }

    /// Starts the background work: push stream, outbox delivery, summary retries, idle timer.
    pub fn start(self: &Arc<Self>) {
        sync::start(self.clone());
    }
}
