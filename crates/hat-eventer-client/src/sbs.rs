//! SBS, the Hat binary serialization: a writer and a reader of its
//! primitive forms, from which message types build their codecs.
//!
//! Encoding (checked byte for byte against the Python `hat-sbs` package):
//!
//! * Integer: big-endian two's complement cut into 7-bit groups, one group
//!   per byte, the high bit set on the last byte only, as few groups as keep
//!   the sign (`0` is `80`, `-1` is `ff`, `64` is `00 c0`).
//! * Boolean: one byte, `00` or `01`. Float: 8 bytes, IEEE 754 big-endian.
//! * Bytes and String: the length as Integer, then the bytes (UTF-8 for String).
//! * Array: the element count as Integer, then the elements.
//! * Record: the fields in schema order. None: nothing.
//! * Choice: the alternative's zero-based index as Integer, then its value.
//!   Optional(T) is the Choice (`none`: None, `value`: T).
//!
//! ```
//! use hat_eventer_client::sbs::{Reader, Writer};
//!
//! let mut writer = Writer::new();
//! writer.integer(64);
//! writer.string("hat");
//! assert_eq!(writer.as_bytes(), b"\x00\xc0\x83hat");
//!
//! let mut reader = Reader::new(writer.as_bytes());
//! assert_eq!(reader.integer().unwrap(), 64);
//! assert_eq!(reader.string().unwrap(), "hat");
//! reader.finish().unwrap();
//! ```

/// A decoding failure: where in the input, and what was wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("SBS decoding failed at byte {offset}: {problem}")]
pub struct DecodeError {
    /// Offset of the first byte of the offending item.
    pub offset: usize,
    /// What was expected and what was found.
    pub problem: String,
}

/// The longest Integer this codec decodes: 18 groups, 126 bits.
const MAX_INTEGER_GROUPS: usize = 18;

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
    /// the Hat protocols use), are read back by [`Reader::integer_i128`].
    pub fn integer(&mut self, value: i128) {
        let groups = integer_groups(value);
        for group in (0..groups).rev() {
            let bits = ((value >> (7 * group)) & 0x7f) as u8;
            self.buf.push(if group == 0 { bits | 0x80 } else { bits });
        }
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

/// Reads an SBS encoding, checking every length against what is left, so
/// that no input makes it allocate more than the input's own size.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// A reader of `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Reader { data, pos: 0 }
    }

    /// How many bytes are left.
    pub fn remaining(&self) -> usize {
        self.data.len() - self.pos
    }

    /// The offset of the next byte.
    pub fn offset(&self) -> usize {
        self.pos
    }

    /// An error at `offset`.
    pub fn error(&self, offset: usize, problem: impl Into<String>) -> DecodeError {
        DecodeError {
            offset,
            problem: problem.into(),
        }
    }

    /// Fails unless every byte was read.
    pub fn finish(&self) -> Result<(), DecodeError> {
        if self.remaining() == 0 {
            Ok(())
        } else {
            Err(self.error(
                self.pos,
                format!("{} bytes left after the value", self.remaining()),
            ))
        }
    }

    fn take(&mut self, len: usize, what: &str) -> Result<&'a [u8], DecodeError> {
        if len > self.remaining() {
            return Err(self.error(
                self.pos,
                format!("{what} needs {len} bytes, {} left", self.remaining()),
            ));
        }
        let slice = &self.data[self.pos..self.pos + len];
        self.pos += len;
        Ok(slice)
    }

    /// An Integer of up to 126 bits.
    pub fn integer_i128(&mut self) -> Result<i128, DecodeError> {
        let start = self.pos;
        let mut value: i128 = 0;
        for groups in 1..=MAX_INTEGER_GROUPS {
            let byte = *self
                .data
                .get(self.pos)
                .ok_or_else(|| self.error(start, "Integer cut off by the end of input"))?;
            self.pos += 1;
            value = (value << 7) | i128::from(byte & 0x7f);
            if byte & 0x80 != 0 {
                let bits = 7 * groups as u32;
                let sign = (self.data[start] & 0x40) != 0;
                if sign && bits < 128 {
                    value -= 1i128 << bits;
                }
                return Ok(value);
            }
        }
        Err(self.error(
            start,
            format!("Integer longer than {MAX_INTEGER_GROUPS} bytes"),
        ))
    }

    /// An Integer that must fit an `i64`.
    pub fn integer(&mut self) -> Result<i64, DecodeError> {
        let start = self.pos;
        let value = self.integer_i128()?;
        i64::try_from(value)
            .map_err(|_| self.error(start, format!("Integer {value} does not fit 64 bits")))
    }

    /// A non-negative Integer used as a length or index: at most `max`.
    fn count(&mut self, what: &str, max: usize) -> Result<usize, DecodeError> {
        let start = self.pos;
        let value = self.integer_i128()?;
        usize::try_from(value)
            .ok()
            .filter(|&n| n <= max)
            .ok_or_else(|| self.error(start, format!("{what} {value} out of range 0..={max}")))
    }

    /// A Boolean.
    pub fn boolean(&mut self) -> Result<bool, DecodeError> {
        let start = self.pos;
        match self.take(1, "Boolean")? {
            [0] => Ok(false),
            [1] => Ok(true),
            other => Err(self.error(
                start,
                format!("Boolean byte {:#04x}, expected 00 or 01", other[0]),
            )),
        }
    }

    /// A Float.
    pub fn float(&mut self) -> Result<f64, DecodeError> {
        let bytes = self.take(8, "Float")?;
        let mut array = [0u8; 8];
        array.copy_from_slice(bytes);
        Ok(f64::from_be_bytes(array))
    }

    /// Bytes, borrowed from the input.
    pub fn bytes(&mut self) -> Result<&'a [u8], DecodeError> {
        let len = self.count("Bytes length", self.remaining())?;
        self.take(len, "Bytes")
    }

    /// A String, borrowed from the input.
    pub fn string(&mut self) -> Result<&'a str, DecodeError> {
        let start = self.pos;
        let bytes = self.bytes()?;
        std::str::from_utf8(bytes)
            .map_err(|err| self.error(start, format!("String is not UTF-8: {err}")))
    }

    /// The element count that starts an Array. Bounded by the bytes left,
    /// which holds for every element type of at least one byte.
    pub fn array_len(&mut self) -> Result<usize, DecodeError> {
        self.count("Array length", self.remaining())
    }

    /// The alternative index that starts a Choice of `alternatives`.
    pub fn choice(&mut self, alternatives: usize) -> Result<usize, DecodeError> {
        self.count("Choice index", alternatives.saturating_sub(1))
    }

    /// An Optional, its value read by `read` when present.
    pub fn optional<T>(
        &mut self,
        read: impl FnOnce(&mut Self) -> Result<T, DecodeError>,
    ) -> Result<Option<T>, DecodeError> {
        match self.choice(2)? {
            0 => Ok(None),
            _ => read(self).map(Some),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn encoded_integer(value: i128) -> String {
        let mut w = Writer::new();
        w.integer(value);
        hex(w.as_bytes())
    }

    #[test]
    fn the_offset_is_where_the_next_value_starts_and_errors_name_it() {
        let mut w = Writer::new();
        w.integer(64); // two bytes
        w.string("ab"); // one length byte and two bytes
        let bytes = w.into_bytes();
        let mut r = Reader::new(&bytes[..bytes.len() - 1]);
        assert_eq!(r.offset(), 0);
        assert_eq!(r.integer().unwrap(), 64);
        assert_eq!(r.offset(), 2);
        let err = r.string().unwrap_err();
        assert_eq!(err.offset, 3, "the string's bytes start after its length");
    }

    #[test]
    fn integers_match_hat_sbs() {
        // Hex as emitted by hat-sbs 0.7.6 (DESIGN.md section 5).
        for (value, expected) in [
            (0, "80"),
            (1, "81"),
            (-1, "ff"),
            (63, "bf"),
            (64, "00c0"),
            (128, "0180"),
            (-65, "7fbf"),
        ] {
            assert_eq!(encoded_integer(value), expected, "{value}");
        }
    }

    #[test]
    fn integers_round_trip_at_every_width() {
        let (max, min) = ((1i128 << 125) - 1, -(1i128 << 125));
        let mut values = vec![0i128, 1, -1, i64::MAX as i128, i64::MIN as i128, max, min];
        for bits in 1..125 {
            let edge = 1i128 << bits;
            values.extend([edge, edge - 1, -edge, -edge - 1]);
        }
        for value in values {
            let mut w = Writer::new();
            w.integer(value);
            let mut r = Reader::new(w.as_bytes());
            assert_eq!(r.integer_i128().unwrap(), value, "{value}");
            r.finish().unwrap();
        }
    }

    #[test]
    fn optional_matches_hat_sbs() {
        let mut w = Writer::new();
        w.optional(None::<&i128>, |w, v| w.integer(*v));
        w.optional(Some(&5), |w, v| w.integer(*v));
        assert_eq!(hex(w.as_bytes()), "808185");
        let mut r = Reader::new(w.as_bytes());
        assert_eq!(r.optional(|r| r.integer()).unwrap(), None);
        assert_eq!(r.optional(|r| r.integer()).unwrap(), Some(5));
    }

    #[test]
    fn lengths_beyond_the_input_are_refused_before_allocating() {
        let mut w = Writer::new();
        w.integer(1 << 62);
        let err = Reader::new(w.as_bytes()).bytes().unwrap_err();
        assert_eq!(err.offset, 0);
        assert!(err.problem.contains("out of range"), "{err}");
        assert!(Reader::new(&[0x85, b'a']).string().is_err());
        assert!(Reader::new(&[0x00; 40]).integer_i128().is_err());
        assert!(Reader::new(&[0x02]).boolean().is_err());
        assert!(Reader::new(&[0x82]).choice(2).is_err());
    }
}
