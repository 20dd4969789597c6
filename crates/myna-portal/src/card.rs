//! Where the patient's card is: a PC/SC reader through `pcscd` (the patient's own reader), or
//! an emulated card in this process (the demo). Both sign through `myna_reader::sign`.

use myna_card::{Retries, Transmit};
use myna_card_emu::card::Card as EmulatedCard;
use myna_reader::ReadFailure;
use myna_reader::sign::{AuthPin, SignFailure, Signed, auth_pin_tries, sign_with_auth_key};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long the app waits for a card to be placed, and for one exchange to finish.
const CARD_WAIT: Duration = Duration::from_secs(5);
const CARD_DEADLINE: Duration = Duration::from_secs(20);

pub enum CardSource {
    /// A PC/SC reader: the named one, or the first with a card.
    Pcsc { reader: Option<String> },
    /// One emulated card (the demo); its PIN counter lives as long as the process.
    Emulated(Arc<Mutex<EmulatedCard>>),
}

impl CardSource {
    /// Tries left on the auth PIN (none spent), or why the card could not be asked.
    pub async fn pin_tries(&self) -> Result<Retries, SignFailure> {
        self.run(|mut t| auth_pin_tries(&mut t)).await
    }

    /// Verifies `pin` and signs `digest_info` with the auth key. `hold` (the portal's one
    /// sign-in at a time) is released only when the card job ends, even if the request that
    /// asked for it is gone by then.
    pub async fn sign(
        &self,
        pin: AuthPin,
        digest_info: Vec<u8>,
        hold: impl Send + 'static,
    ) -> Result<Signed, SignFailure> {
        self.run(move |mut t| {
            let signed = sign_with_auth_key(&mut t, &pin, &digest_info);
            drop(hold);
            signed
        })
        .await
    }

    async fn run<R: Send + 'static>(
        &self,
        job: impl FnOnce(&mut dyn Transmit) -> Result<R, SignFailure> + Send + 'static,
    ) -> Result<R, SignFailure> {
        match self {
            CardSource::Pcsc { reader } => {
                let reader = reader.clone();
                let outcome = tokio::task::spawn_blocking(move || {
                    let name = myna_reader::pcsc::wait_for_card(reader.as_deref(), CARD_WAIT)?;
                    myna_reader::pcsc::with_card_exclusive(&name, CARD_DEADLINE, move |t| {
                        Ok(job(t))
                    })
                })
                .await;
                match outcome {
                    Ok(Ok(result)) => result,
                    Ok(Err(read)) => Err(SignFailure::Card(read)),
                    Err(e) => Err(SignFailure::Card(ReadFailure::Unexpected {
                        detail: format!("card task: {e}"),
                    })),
                }
            }
            CardSource::Emulated(card) => {
                let card = card.clone();
                tokio::task::spawn_blocking(move || {
                    let mut guard = card
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    let outcome = job(&mut *guard);
                    // As the PC/SC path powers the card down: nothing stays verified.
                    guard.power_cycle();
                    outcome
                })
                .await
                .unwrap_or_else(|e| {
                    Err(SignFailure::Card(ReadFailure::Unexpected {
                        detail: format!("card task: {e}"),
                    }))
                })
            }
        }
    }
}
