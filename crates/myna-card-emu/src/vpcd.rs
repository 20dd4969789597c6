//! The vpcd protocol of vsmartcard: the emulated card connects to the `vsmartcard-vpcd` driver
//! of a running `pcscd` (default port 35963), which then shows it in reader "Virtual PCD 00 00".
//!
//! Every message is a 2-byte big-endian length and a payload. A 1-byte payload is a control
//! code: `00` power off, `01` power on, `02` reset, `04` get ATR (answered with the ATR). Any
//! longer payload is a command APDU, answered with the response APDU.

use crate::card::ATR;
use crate::reader::{EmulatedReader, Exchange};
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream, ToSocketAddrs};

const POWER_OFF: u8 = 0x00;
const POWER_ON: u8 = 0x01;
const RESET: u8 = 0x02;
const GET_ATR: u8 = 0x04;

/// Why a vpcd session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// The driver closed the connection (pcscd stopped).
    DriverClosed,
    /// The emulated card left the field (fault injection).
    CardRemoved,
}

fn send(stream: &mut impl Write, payload: &[u8]) -> io::Result<()> {
    let len = u16::try_from(payload.len()).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            "response longer than 65535 bytes",
        )
    })?;
    // One write per message, so the driver gets length and payload in one segment.
    let mut message = Vec::with_capacity(2 + payload.len());
    message.extend_from_slice(&len.to_be_bytes());
    message.extend_from_slice(payload);
    stream.write_all(&message)?;
    stream.flush()
}

/// Serves the card over one vpcd connection until the peer closes it or the card is removed.
/// A mute card reads commands and never answers them. `before_read` runs before each message
/// is read (the TCP connection uses it to re-arm quick ACKs).
pub fn serve(
    reader: &mut EmulatedReader,
    stream: &mut (impl Read + Write),
    mut before_read: impl FnMut(&mut EmulatedReader),
) -> io::Result<End> {
    loop {
        before_read(reader);
        let mut len = [0u8; 2];
        match stream.read_exact(&mut len) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(End::DriverClosed),
            Err(e) => return Err(e),
        }
        let mut payload = vec![0u8; usize::from(u16::from_be_bytes(len))];
        stream.read_exact(&mut payload)?;
        match payload.as_slice() {
            // Power-down clears the volatile state; a warm reset keeps the security status,
            // as on a real card (reference §6).
            [POWER_OFF] => reader.power_cycle(),
            [POWER_ON] | [RESET] => {}
            [GET_ATR] => send(stream, &ATR)?,
            [other] => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("unknown vpcd control byte {other:#04x}"),
                ));
            }
            apdu => match reader.exchange(apdu) {
                Exchange::Response(r) => send(stream, &r)?,
                Exchange::Removed => return Ok(End::CardRemoved),
                Exchange::Mute => {}
            },
        }
    }
}

/// Connects to the vpcd driver at `addr` (the card is then inserted in its reader) and serves
/// until the session ends. On `CardRemoved` the connection is closed, which vpcd reports to
/// PC/SC clients as the card leaving the reader.
pub fn connect_and_serve(addr: impl ToSocketAddrs, reader: &mut EmulatedReader) -> io::Result<End> {
    serve_connection(TcpStream::connect(addr)?, reader)
}

/// Serves the card on an established connection to the vpcd driver; see `connect_and_serve`.
pub fn serve_connection(mut stream: TcpStream, reader: &mut EmulatedReader) -> io::Result<End> {
    stream.set_nodelay(true)?;
    // The driver writes each message's length and body separately without TCP_NODELAY, so
    // with delayed ACKs here every command would stall ~40 ms in Nagle's algorithm. Linux
    // clears TCP_QUICKACK after use, so it is set again before every read.
    let quick = socket2::SockRef::from(&stream).try_clone()?;
    let end = serve(reader, &mut stream, |_| {
        let _ = quick.set_tcp_quickack(true);
    })?;
    let _ = stream.shutdown(Shutdown::Both);
    Ok(end)
}
