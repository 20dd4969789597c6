//! `terminal`: the ambulance tablet. It serves the crew's touch UI (Japanese) on the tablet
//! itself, reads the card through the card module, and talks to `ems`.
//!
//! - Nothing medical touches the disk: the summary lives in memory only and is dropped when the
//!   incident closes, on sign-out and after an idle timeout; pages carry `no-store`.
//! - Incident events go through the durable `outbox` and sync exactly once when the link is up.
//! - A summary requested while the link is down waits, and is sent when the link returns.
//! - Only the tablet's own browser window drives it (`myna_web::own_window`).

pub mod card;
pub mod ems_client;
mod messages;
pub mod outbox;
pub mod state;
mod sync;
mod ui;
pub mod vitals_pad;

use card::{CardState, EmulatedSlot};
use ems_client::EmsClient;
use outbox::Outbox;
use state::Screen;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::{Notify, watch};

pub use myna_web::own_window::Guard;

/// The cookie that carries the tablet window's secret (`myna_web::own_window`).
pub const WINDOW_COOKIE: &str = "terminal_key";
pub use state::{Link, Notice};
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
            screen: Mutex::new(Screen::new(Instant::now())),
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
                screen: Mutex::new(Screen::new(Instant::now())),
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
        self.screen().card_changed(state);
        self.redraw();
    }

    /// Starts the background work: push stream, outbox delivery, summary retries, idle timer.
    pub fn start(self: &Arc<Self>) {
        sync::start(self.clone());
    }
}
