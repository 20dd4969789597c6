#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use myna_card_emu::apdu::{Command, CommandError, Response, sw};
use proptest::prelude::*;

#[test]
fn the_commands_of_a_certificate_read_parse() {
    // SELECT the JPKI AP by name (case 3S).
    let select = [
        0x00, 0xA4, 0x04, 0x0C, 0x0A, 0xD3, 0x92, 0xF0, 0x00, 0x26, 0x01, 0x00, 0x00, 0x00, 0x01,
    ];
    let c = Command::parse(&select).unwrap();
    assert_eq!(
        (c.ins, c.p1, c.p2, c.data.len(), c.le),
        (0xA4, 0x04, 0x0C, 10, None)
    );
    // READ BINARY 7 bytes (case 2S) and 256 bytes (Le 00).
    assert_eq!(
        Command::parse(&[0x00, 0xB0, 0x00, 0x00, 0x07]).unwrap().le,
        Some(7)
    );
    assert_eq!(
        Command::parse(&[0x00, 0xB0, 0x00, 0x00, 0x00]).unwrap().le,
        Some(256)
    );
    // Whole EF by SFI, extended Le 0000 = 65536 (case 2E).
    let c = Command::parse(&[0x00, 0xB0, 0x8A, 0x00, 0x00, 0x00, 0x00]).unwrap();
    assert_eq!((c.le, c.extended), (Some(65_536), true));
    // Retry-counter query: VERIFY with no data (case 1).
    let c = Command::parse(&[0x00, 0x20, 0x00, 0x80]).unwrap();
    assert_eq!((c.data.len(), c.le), (0, None));
    // COMPUTE DIGITAL SIGNATURE with a 51-byte DigestInfo and Le 00 (case 4S).
    let mut sign = vec![0x80, 0x2A, 0x00, 0x80, 51];
    sign.extend(std::iter::repeat_n(0xAB, 51));
    sign.push(0x00);
    let c = Command::parse(&sign).unwrap();
    assert_eq!((c.data.len(), c.le), (51, Some(256)));
}

#[test]
fn malformed_lengths_are_refused() {
    assert_eq!(
        Command::parse(&[0x00, 0xA4, 0x04]),
        Err(CommandError::TooShort(3))
    );
    for bad in [
        &[0x00, 0xA4, 0x04, 0x0C, 0x0A, 0xD3][..], // Lc says 10, one byte follows
        &[0x00, 0xB0, 0x00, 0x00, 0x00, 0x00][..], // neither 2S nor 2E
        &[0x00, 0xB0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01][..], // extended Lc 0
        &[0x00, 0x20, 0x00, 0x80, 0x02, 0x31, 0x32, 0x00, 0x00][..], // two trailing bytes after short data
    ] {
        assert!(Command::parse(bad).is_err(), "{bad:02X?}");
    }
}

#[test]
fn responses_end_with_the_status_word() {
    assert_eq!(
        Response::ok(vec![0x30, 0x82]).to_bytes(),
        vec![0x30, 0x82, 0x90, 0x00]
    );
    assert_eq!(
        Response::status(sw::tries_left(2)).to_bytes(),
        vec![0x63, 0xC2]
    );
    assert_eq!(sw::tries_left(99), 0x63CF);
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = Command::parse(&bytes);
    }

    #[test]
    fn encode_then_parse_round_trips(
        header in any::<[u8; 4]>(),
        data in proptest::collection::vec(any::<u8>(), 0..400),
        le in proptest::option::of(1usize..=65_536),
    ) {
        let c = Command { cla: header[0], ins: header[1], p1: header[2], p2: header[3], data: &data, le, extended: false };
        let bytes = c.encode();
        let parsed = Command::parse(&bytes).unwrap();
        prop_assert_eq!(parsed.data, &data[..]);
        prop_assert_eq!(parsed.le, le);
        prop_assert_eq!((parsed.cla, parsed.ins, parsed.p1, parsed.p2), (c.cla, c.ins, c.p1, c.p2));
    }
}
