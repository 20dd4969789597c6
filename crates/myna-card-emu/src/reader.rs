//! An emulated reader around a card: per-command latency and fault injection, so a host's
//! timing and error paths can be tested. Over PC/SC the same faults reach the host through
//! `pcscd` (see `vpcd`); in process, `Transmit` reports them as the PC/SC errors a real reader
//! gives, so the host maps one set of errors either way.

use crate::card::Card;
use std::time::Duration;

/// Injected behaviour of the emulated reader and card.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Faults {
    /// Added before every response: 25 ms stands for a contactless Type B round trip.
    pub latency: Duration,
    /// When set, `latency` is paid per started frame of this many response bytes instead of
    /// once per command: a contactless reader chains a long response over several ISO/IEC
    /// 14443-4 blocks, so one extended READ BINARY is not one round trip.
    pub frame_bytes: Option<usize>,
    /// The card leaves the field after answering this many commands.
    pub remove_after: Option<u32>,
    /// The card stops answering (but stays in the field) after this many commands.
    pub mute_after: Option<u32>,
}

/// What the emulated reader did with one command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exchange {
    Response(Vec<u8>),
    /// The card is gone; nothing more will be answered.
    Removed,
    /// The card is present and silent.
    Mute,
}

/// A card in an emulated reader.
pub struct EmulatedReader {
    card: Card,
    faults: Faults,
    answered: u32,
    /// How long an in-process host waits on a mute card before the reader reports a timeout.
    pub mute_timeout: Duration,
}

impl EmulatedReader {
    pub fn new(card: Card, faults: Faults) -> Self {
        EmulatedReader {
            card,
            faults,
            answered: 0,
            mute_timeout: Duration::from_secs(3),
        }
    }

    pub fn card(&self) -> &Card {
        &self.card
    }

    pub fn card_mut(&mut self) -> &mut Card {
        &mut self.card
    }

    /// Commands answered so far.
    pub fn answered(&self) -> u32 {
        self.answered
    }

    /// Whether the card has left the field.
    pub fn removed(&self) -> bool {
        self.faults.remove_after.is_some_and(|n| self.answered >= n)
    }

    /// Handles one command APDU, sleeping for the configured latency first.
    pub fn exchange(&mut self, apdu: &[u8]) -> Exchange {
        if self.removed() {
            return Exchange::Removed;
        }
        if self.faults.mute_after.is_some_and(|n| self.answered >= n) {
            return Exchange::Mute;
        }
        let response = self.card.process(apdu);
        if !self.faults.latency.is_zero() {
            let frames = self
                .faults
                .frame_bytes
                .map_or(1, |n| response.len().div_ceil(n.max(1)).max(1));
            std::thread::sleep(self.faults.latency * u32::try_from(frames).unwrap_or(u32::MAX));
        }
        self.answered += 1;
        Exchange::Response(response)
    }

    /// Power off and on, as when a card is taken out and put back.
    pub fn power_cycle(&mut self) {
        self.card.power_cycle();
    }
}

impl myna_card::transport::Transmit for EmulatedReader {
    fn transmit(&mut self, command: &[u8]) -> myna_card::Result<Vec<u8>> {
        match self.exchange(command) {
            Exchange::Response(r) => Ok(r),
            // What pcsc-lite reports when the card leaves the field during a transaction.
            Exchange::Removed => Err(myna_card::Error::Pcsc(pcsc::Error::RemovedCard)),
            // A mute card: the reader gives up after its timeout.
            Exchange::Mute => {
                std::thread::sleep(self.mute_timeout);
                Err(myna_card::Error::Pcsc(pcsc::Error::Timeout))
            }
        }
    }
}
