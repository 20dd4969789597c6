//! BER-TLV encoding of the card's records: one- or two-byte tags, definite lengths.

/// One TLV object. Tags up to `FF` take one byte, larger ones two (`DF21`, `FF20`, `7F21`).
pub fn tlv(tag: u16, value: &[u8]) -> Vec<u8> {
    let mut out = if tag > 0xFF {
        tag.to_be_bytes().to_vec()
    } else {
        vec![tag as u8]
    };
    let n = value.len();
    match n {
        0..0x80 => out.push(n as u8),
        0x80..0x100 => out.extend([0x81, n as u8]),
        _ => out.extend([0x82, (n >> 8) as u8, n as u8]),
    }
    out.extend_from_slice(value);
    out
}

/// Builds a sequence of TLV objects; `bytes()` is what a signature placed next covers.
#[derive(Default)]
pub struct TlvWriter {
    out: Vec<u8>,
}

impl TlvWriter {
    pub fn put(&mut self, tag: u16, value: &[u8]) {
        self.out.extend(tlv(tag, value));
    }
    pub fn bytes(&self) -> &[u8] {
        &self.out
    }
}
