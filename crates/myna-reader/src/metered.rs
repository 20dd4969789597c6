//! A transport wrapper that counts APDUs and bytes, so each read step can report its cost.

use myna_card::Transmit;

/// Counts what passes through the inner transport.
pub struct Metered<T> {
    inner: T,
    pub apdus: u32,
    pub sent: usize,
    pub received: usize,
}

impl<T> Metered<T> {
    pub fn new(inner: T) -> Self {
        Metered {
            inner,
            apdus: 0,
            sent: 0,
            received: 0,
        }
    }
    pub fn inner(&self) -> &T {
        &self.inner
    }
    pub fn inner_mut(&mut self) -> &mut T {
        &mut self.inner
    }
    pub fn into_inner(self) -> T {
        self.inner
    }
}

impl<T: Transmit> Transmit for Metered<T> {
    fn transmit(&mut self, command: &[u8]) -> myna_card::Result<Vec<u8>> {
        self.apdus += 1;
        self.sent += command.len();
        let response = self.inner.transmit(command)?;
        self.received += response.len();
        Ok(response)
    }
}
