//! The vpcd protocol of vsmartcard: the emulated card connects to the `vsmartcard-vpcd` driver
//! of a running `pcscd` (default port 35963), which then shows it in reader "Virtual PCD 00 00".
//!
//! Every message is a 2-byte big-endian length and a payload. A 1-byte payload is a control
//! code: `00` power off, `01` power on, `02` reset, `04` get ATR (answered with the ATR). Any
//! longer payload is a command APDU, answered with the response APDU.

use crate::card::Card;
use std::io::{self, Read, Write};

const POWER_OFF: u8 = 0x00;
const POWER_ON: u8 = 0x01;
const RESET: u8 = 0x02;
const GET_ATR: u8 = 0x04;

fn send(stream: &mut impl Write, payload: &[u8]) -> io::Result<()> {
    let len = u16::try_from(payload.len()).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            "response longer than 65535 bytes",
        )
    })?;
    stream.write_all(&len.to_be_bytes())?;
    stream.write_all(payload)?;
    stream.flush()
}

/// Serves `card` over one vpcd connection until the peer closes it. Returns Ok on a clean close.
pub fn serve(card: &mut Card, stream: &mut (impl Read + Write)) -> io::Result<()> {
    loop {
        let mut len = [0u8; 2];
        match stream.read_exact(&mut len) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e),
        }
        let mut payload = vec![0u8; usize::from(u16::from_be_bytes(len))];
        stream.read_exact(&mut payload)?;
        match payload.as_slice() {
            // Power-down clears the volatile state; a warm reset keeps the security status,
            // as on a real card (reference §6).
            [POWER_OFF] => {
                card.power_cycle();
            }
            [POWER_ON] | [RESET] => {}
            [GET_ATR] => send(stream, &crate::card::ATR)?,
            [other] => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("unknown vpcd control byte {other:#04x}"),
                ));
            }
            apdu => {
                let response = card.process(apdu);
                send(stream, &response)?;
            }
        }
    }
}
