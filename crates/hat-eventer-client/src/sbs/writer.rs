//! [`Writer`]: builds an SBS encoding.

/// Builds an SBS encoding.
#[derive(Debug, Default, Clone)]
pub struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    /// An empty writer.
    pub fn new() -> Self {
        Self::default()
    }

    /// The bytes written so far.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf
    }

    /// The bytes written.
    pub fn into_bytes(self) -> Vec<u8> {
        self.buf
    }

    /// An Integer. Values of up to 126 bits, `-2^125..2^125` (far more than
    /// the Hat protocols use), are read back by [`Reader::integer_i128`](super::Reader::integer_i128).
    pub fn integer(&mut self, value: i128) {
        let groups = integer_groups(value);
        for group in (0..groups).rev() {
            let bits = ((value >> (7 * group)) & 0x7f) as u8;
            self.buf.push(if group == 0 { bits | 0x80 } else { bits });
        }
    }

    /// Appends `bytes`, which already are an encoding.
    pub fn encoded(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// A Boolean.
    pub fn boolean(&mut self, value: bool) {
        self.buf.push(u8::from(value));
    }

    /// A Float.
    pub fn float(&mut self, value: f64) {
        self.buf.extend_from_slice(&value.to_be_bytes());
    }

    /// Bytes.
    pub fn bytes(&mut self, value: &[u8]) {
        self.integer(value.len() as i128);
        self.buf.extend_from_slice(value);
    }

    /// A String.
    pub fn string(&mut self, value: &str) {
        self.bytes(value.as_bytes());
    }

    /// The element count that starts an Array.
    pub fn array_len(&mut self, len: usize) {
        self.integer(len as i128);
    }

    /// The alternative index that starts a Choice (then write its value).
    pub fn choice(&mut self, index: usize) {
        self.integer(index as i128);
    }

    /// An Optional: absent, or present and written by `write`.
    pub fn optional<T>(&mut self, value: Option<&T>, write: impl FnOnce(&mut Self, &T)) {
        match value {
            None => self.choice(0),
            Some(value) => {
                self.choice(1);
                write(self, value);
            }
        }
    }
}

/// How many 7-bit groups `value` needs in two's complement.
fn integer_groups(value: i128) -> u32 {
    let mut groups = 1;
    while groups < 19 {
        let bits = 7 * groups;
        let min = -(1i128 << (bits - 1));
        let max = (1i128 << (bits - 1)) - 1;
        if (min..=max).contains(&value) {
            return groups;
        }
        groups += 1;
    }
    groups
}
