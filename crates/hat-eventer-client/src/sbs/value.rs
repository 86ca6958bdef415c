//! [`Sbs`]: values with an SBS encoding, and encoding and decoding them
//! whole.

use super::{Body, DecodeError, Reader, Writer};

/// A value with an SBS encoding.
pub trait Sbs: Sized {
    /// Appends the encoding of `self`.
    fn write(&self, w: &mut Writer);
    /// Reads one value.
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError>;
}

/// The encoding of `value`.
pub fn encode<T: Sbs>(value: &T) -> Vec<u8> {
    let mut w = Writer::new();
    value.write(&mut w);
    w.into_bytes()
}

/// Decodes `bytes`, all of which must belong to the value.
pub fn decode<T: Sbs>(bytes: &[u8]) -> Result<T, DecodeError> {
    decode_all(Reader::new(bytes))
}

/// Decodes `body`, all of which must belong to the value, freeing its
/// chunks as they are read: the value and what is left of the body never
/// take more memory together than the body did.
pub fn decode_body<T: Sbs>(body: Body) -> Result<T, DecodeError> {
    decode_all(Reader::of_body(body))
}

fn decode_all<T: Sbs>(mut r: Reader<'_>) -> Result<T, DecodeError> {
    let value = T::read(&mut r)?;
    r.finish()?;
    Ok(value)
}

impl Sbs for i64 {
    fn write(&self, w: &mut Writer) {
        w.integer((*self).into());
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.integer()
    }
}

impl Sbs for bool {
    fn write(&self, w: &mut Writer) {
        w.boolean(*self);
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.boolean()
    }
}

impl Sbs for f64 {
    fn write(&self, w: &mut Writer) {
        w.float(*self);
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.float()
    }
}

/// The SBS `None` type: no bytes at all.
impl Sbs for () {
    fn write(&self, _: &mut Writer) {}
    fn read(_: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(())
    }
}

impl Sbs for String {
    fn write(&self, w: &mut Writer) {
        w.string(self);
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.string().map(std::borrow::Cow::into_owned)
    }
}

impl<T: Sbs> Sbs for Vec<T> {
    fn write(&self, w: &mut Writer) {
        w.array_len(self.len());
        for item in self {
            item.write(w);
        }
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let len = r.array_len()?;
        (0..len).map(|_| T::read(r)).collect()
    }
}

impl<T: Sbs> Sbs for Option<T> {
    fn write(&self, w: &mut Writer) {
        w.optional(self.as_ref(), |w, v| v.write(w));
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.optional(T::read)
    }
}
