//! PC/SC: list readers and wait for a card with presence events from `pcscd`
//! (`SCardGetStatusChange`), never a polling loop.

use crate::failure::ReadFailure;
use myna_card::transport::pcsc::{PcscTransport, Sharing};
use pcsc::{Context, PNP_NOTIFICATION, ReaderState, Scope, State};
use std::ffi::{CStr, CString};
use std::time::{Duration, Instant};

fn context() -> Result<Context, ReadFailure> {
    Context::establish(Scope::User).map_err(|e| pcsc_failure(&e))
}

fn pcsc_failure(e: &pcsc::Error) -> ReadFailure {
    ReadFailure::from_card_error(&myna_card::Error::Pcsc(*e))
}

/// Names of the connected readers.
pub fn readers() -> Result<Vec<String>, ReadFailure> {
    let ctx = context()?;
    match ctx.list_readers_owned() {
        Ok(names) => Ok(names
            .iter()
            .map(|n| n.to_string_lossy().into_owned())
            .collect()),
        Err(pcsc::Error::NoReadersAvailable) => Ok(Vec::new()),
        Err(e) => Err(pcsc_failure(&e)),
    }
}

/// Waits until a card is present in `reader` (or in any reader), up to `timeout`. Blocks in
/// `SCardGetStatusChange`, so it wakes when pcscd reports a change, including a reader being
/// plugged in. Returns the reader's name.
pub fn wait_for_card(reader: Option<&str>, timeout: Duration) -> Result<String, ReadFailure> {
    let ctx = context()?;
    let deadline = Instant::now() + timeout;
    let mut states: Vec<ReaderState> = vec![ReaderState::new(PNP_NOTIFICATION(), State::UNAWARE)];
    loop {
        // Track the wanted readers that exist now, keeping what we already know of each.
        let names: Vec<CString> = match ctx.list_readers_owned() {
            Ok(n) => n,
            Err(pcsc::Error::NoReadersAvailable) => Vec::new(),
            Err(e) => return Err(pcsc_failure(&e)),
        };
        let wanted: Vec<CString> = names
            .into_iter()
            .filter(|n| reader.is_none_or(|r| n.to_string_lossy() == r))
            .collect();
        states.retain(|s| is_pnp(s.name()) || wanted.iter().any(|w| w.as_c_str() == s.name()));
        for w in &wanted {
            if !states.iter().any(|s| s.name() == w.as_c_str()) {
                states.push(ReaderState::new(w.clone(), State::UNAWARE));
            }
        }
        for s in states.iter().filter(|s| !is_pnp(s.name())) {
            let st = s.event_state();
            if st.contains(State::PRESENT) && !st.contains(State::MUTE) {
                return Ok(s.name().to_string_lossy().into_owned());
            }
        }
        for s in &mut states {
            s.sync_current_state();
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(if wanted.is_empty() {
                ReadFailure::NoReader
            } else {
                ReadFailure::NoCard
            });
        }
        match ctx.get_status_change(left, &mut states) {
            Ok(()) => {}
            Err(pcsc::Error::Timeout) => {
                return Err(if wanted.is_empty() {
                    ReadFailure::NoReader
                } else {
                    ReadFailure::NoCard
                });
            }
            Err(e) => return Err(pcsc_failure(&e)),
        }
    }
}

fn is_pnp(name: &CStr) -> bool {
    name == PNP_NOTIFICATION()
}

/// Connects to the card in `reader`, shared, as `myna-card` does.
pub fn connect(reader: &str) -> Result<PcscTransport, ReadFailure> {
    myna_card::transport::pcsc::connect(reader, Sharing::Shared)
        .map(myna_card::Card::into_transport)
        .map_err(|e| ReadFailure::from_card_error(&e))
}

/// Whether the card connected through `transport` is still in its reader.
fn still_present(transport: &PcscTransport) -> bool {
    match transport.card().status2_owned() {
        Ok(s) => !s.status().contains(pcsc::Status::ABSENT),
        Err(_) => false,
    }
}

/// Runs `job` against the card in `reader` with a deadline. PC/SC has no per-command timeout
/// and a mute card can block a transmit indefinitely, so the job runs on its own thread and
/// the crew gets `Timeout` when the deadline passes; that thread ends when pcscd returns (at
/// the latest when the card is lifted). An answer that makes no sense from a card that has
/// meanwhile left the reader is reported as `CardRemoved`.
pub fn with_card<R: Send + 'static>(
    reader: &str,
    deadline: Duration,
    job: impl FnOnce(&mut PcscTransport) -> Result<R, ReadFailure> + Send + 'static,
) -> Result<R, ReadFailure> {
    run_with_card(reader, deadline, Sharing::Shared, job)
}

/// `with_card` for a job that presents a PIN: the card is held exclusively (no other program
/// can send a command between the PIN and its use), and powered down when the job ends,
/// whatever its outcome, because a verified PIN outlives a disconnect and a reset (protocol
/// reference §6.3).
pub fn with_card_exclusive<R: Send + 'static>(
    reader: &str,
    deadline: Duration,
    job: impl FnOnce(&mut PcscTransport) -> Result<R, ReadFailure> + Send + 'static,
) -> Result<R, ReadFailure> {
    run_with_card(reader, deadline, Sharing::Exclusive, |t| {
        // A job that panics still leaves the card powered down.
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(t)));
        if let Err(e) = t.power_cycle() {
            // The card was lifted (which also clears it) or pcscd failed; either way report it.
            return Err(ReadFailure::from_card_error(&e));
        }
        outcome.unwrap_or_else(|_| {
            Err(ReadFailure::Unexpected {
                detail: "the card job failed".into(),
            })
        })
    })
}

fn run_with_card<R: Send + 'static>(
    reader: &str,
    deadline: Duration,
    sharing: Sharing,
    job: impl FnOnce(&mut PcscTransport) -> Result<R, ReadFailure> + Send + 'static,
) -> Result<R, ReadFailure> {
    let (tx, rx) = std::sync::mpsc::channel();
    let name = reader.to_owned();
    std::thread::Builder::new()
        .name("card-io".into())
        .spawn(move || {
            let connected = myna_card::transport::pcsc::connect(&name, sharing)
                .map(myna_card::Card::into_transport)
                .map_err(|e| ReadFailure::from_card_error(&e));
            let result = connected.and_then(|mut t| match job(&mut t) {
                Err(ReadFailure::Unexpected { .. }) if !still_present(&t) => {
                    Err(ReadFailure::CardRemoved)
                }
                other => other,
            });
            let _ = tx.send(result);
        })
        .map_err(|e| ReadFailure::Unexpected {
            detail: format!("cannot start the card I/O thread: {e}"),
        })?;
    rx.recv_timeout(deadline)
        .unwrap_or(Err(ReadFailure::Timeout))
}

/// Blocks until no card is present in `reader` (or the reader is gone), or `timeout` passes.
/// Returns true if the card was lifted.
pub fn wait_for_removal(reader: &str, timeout: Duration) -> Result<bool, ReadFailure> {
    let ctx = context()?;
    let name = CString::new(reader).map_err(|_| ReadFailure::NoReader)?;
    let mut states = vec![ReaderState::new(name, State::UNAWARE)];
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match ctx.get_status_change(left, &mut states) {
            Ok(()) => {}
            Err(pcsc::Error::Timeout) => return Ok(false),
            Err(pcsc::Error::UnknownReader) | Err(pcsc::Error::ReaderUnavailable) => {
                return Ok(true);
            }
            Err(e) => return Err(pcsc_failure(&e)),
        }
        let Some(s) = states.first_mut() else {
            return Ok(true);
        };
        let st = s.event_state();
        if st.contains(State::EMPTY)
            || st.contains(State::UNAVAILABLE)
            || st.contains(State::UNKNOWN)
        {
            return Ok(true);
        }
        s.sync_current_state();
        if left.is_zero() {
            return Ok(false);
        }
    }
}
