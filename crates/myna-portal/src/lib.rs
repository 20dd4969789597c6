//! The patient portal (閲覧履歴): who looked at my medical information.
//!
//! A local app on the patient's own computer, like the JPKI client software マイナポータル uses:
//! the card reader and the PIN stay on this machine. The patient places their My Number card
//! and types the 4-digit auth PIN; the app asks the provider for a challenge, has the card sign
//! it with the JPKI user-authentication key (`myna_reader::sign`), and sends the certificate
//! and signature to the provider, which answers the person's accesses from its hash-chained
//! access log, by organisation. Nothing is kept: the answer is shown once and dropped.
//!
//! The UI obeys only its own browser window (`myna_web::own_window`), because a page that could
//! post a PIN here could lock the patient's card.

pub mod card;
pub mod client;
pub mod messages;
mod ui;

pub use card::CardSource;
pub use client::{PortalClient, PortalError};
pub use ui::router;

/// The cookie that carries the portal window's secret (`myna_web::own_window`).
pub const WINDOW_COOKIE: &str = "portal_key";

/// The app: where its card comes from and which provider it asks.
pub struct Portal {
    pub card: CardSource,
    pub provider: PortalClient,
    /// One sign-in at a time: a second click while the first runs must not spend a second
    /// PIN try.
    busy: std::sync::Arc<tokio::sync::Mutex<()>>,
}

impl Portal {
    pub fn new(card: CardSource, provider: PortalClient) -> Self {
        Portal {
            card,
            provider,
            busy: std::sync::Arc::new(tokio::sync::Mutex::new(())),
        }
    }
}
