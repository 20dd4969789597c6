#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The vpcd framing against a loopback peer that speaks the driver's side of the protocol.
//! `tests/pcscd.rs` runs the card through a real `pcscd` with `vsmartcard-vpcd`.

use myna_card_emu::card::{ATR, JPKI_AID};
use myna_card_emu::reader::{EmulatedReader, Faults};
use myna_card_emu::vpcd::End;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};

mod common;

fn send(s: &mut TcpStream, payload: &[u8]) {
    s.write_all(&(payload.len() as u16).to_be_bytes()).unwrap();
    s.write_all(payload).unwrap();
}

fn recv(s: &mut TcpStream) -> Vec<u8> {
    let mut len = [0u8; 2];
    s.read_exact(&mut len).unwrap();
    let mut out = vec![0u8; u16::from_be_bytes(len) as usize];
    s.read_exact(&mut out).unwrap();
    out
}

#[test]
fn a_driver_powers_up_reads_and_powers_down_the_card() {
    let t = common::test_card("01C0FFEE0003");
    let cert = t.auth_cert.clone();
    let card = t.card().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let card_side = std::thread::spawn(move || {
        let mut reader = EmulatedReader::new(card, Faults::default());
        myna_card_emu::vpcd::connect_and_serve(addr, &mut reader)
    });
    let (mut driver, _) = listener.accept().unwrap();
    send(&mut driver, &[0x01]); // power on
    send(&mut driver, &[0x04]); // get ATR
    assert_eq!(recv(&mut driver), ATR);
    let mut select = vec![0x00, 0xA4, 0x04, 0x0C, 0x0A];
    select.extend_from_slice(&JPKI_AID);
    send(&mut driver, &select);
    assert_eq!(recv(&mut driver), [0x90, 0x00]);
    send(&mut driver, &[0x00, 0xB0, 0x8A, 0x00, 0x00, 0x00, 0x00]);
    let r = recv(&mut driver);
    assert_eq!(&r[..r.len() - 2], &cert[..]);
    send(&mut driver, &[0x00]); // power off: selection is lost
    send(&mut driver, &[0x01]);
    send(&mut driver, &[0x00, 0xB0, 0x00, 0x00, 0x04]);
    assert_eq!(recv(&mut driver), [0x6A, 0x82]);
    drop(driver);
    assert_eq!(card_side.join().unwrap().unwrap(), End::DriverClosed);
}

#[test]
fn a_card_removed_after_n_commands_closes_the_connection() {
    let t = common::test_card("01C0FFEE0004");
    let card = t.card().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let card_side = std::thread::spawn(move || {
        let faults = Faults {
            remove_after: Some(1),
            ..Faults::default()
        };
        let mut reader = EmulatedReader::new(card, faults);
        myna_card_emu::vpcd::connect_and_serve(addr, &mut reader)
    });
    let (mut driver, _) = listener.accept().unwrap();
    let mut select = vec![0x00, 0xA4, 0x04, 0x0C, 0x0A];
    select.extend_from_slice(&JPKI_AID);
    send(&mut driver, &select);
    assert_eq!(recv(&mut driver), [0x90, 0x00]);
    send(&mut driver, &[0x00, 0xB0, 0x8A, 0x00, 0x00]);
    // The second command finds the card gone: the connection closes without an answer.
    let mut byte = [0u8; 1];
    assert_eq!(driver.read(&mut byte).unwrap(), 0);
    assert_eq!(card_side.join().unwrap().unwrap(), End::CardRemoved);
}
