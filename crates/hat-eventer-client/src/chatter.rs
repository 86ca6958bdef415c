//! Chatter: the framed message transport under the Hat protocols.
//!
//! A frame is one byte `m`, then the body length `k` as `m` bytes
//! big-endian, then `k` bytes: the SBS encoding of a `HatChatter.Msg`,
//! whose `data` carries the SBS bytes of the message named in `data.type`.
//! [`FrameHeader::parse`] refuses a length above the configured bound before
//! anything is allocated.

use crate::sbs::{Body, ChunkSource, DecodeError, Reader, Writer};

/// The most length bytes a frame header may announce. The Python
/// implementation (`hat.drivers.chatter`) reads any count of them and writes
/// as few as the length needs (at most 8 for any length a 64-bit peer can
/// send); 16 leaves room for leading zero bytes while the length still fits
/// a `u128`.
pub const MAX_LENGTH_FIELD: usize = 16;

/// `HatChatter.Msg`: one message of a conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Msg {
    /// This message's id, counted up by its sender from 1.
    pub id: i64,
    /// The id of the conversation's first message.
    pub first: i64,
    /// Whether the sender started the conversation.
    pub owner: bool,
    /// Whether the receiver may send next.
    pub token: bool,
    /// Whether this ends the conversation.
    pub last: bool,
    /// The payload.
    pub data: Data,
}

/// `HatChatter.Data`: a payload message and its type name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Data {
    /// The payload's SBS type, `Module.Type` (e.g. `HatEventer.MsgRegisterReq`).
    pub data_type: String,
    /// The payload's SBS bytes.
    pub data: Body,
}

impl Msg {
    /// The SBS encoding of this message (a frame body).
    pub fn encode(&self) -> Vec<u8> {
        let mut body = self.header(self.data.data.len());
        for chunk in self.data.data.chunks() {
            body.extend_from_slice(chunk);
        }
        body
    }

    /// The encoding of everything before the `data` bytes, whose length
    /// is `data_len`: a message is sent as this, then its data as it lies.
    pub fn header(&self, data_len: usize) -> Vec<u8> {
        let mut w = Writer::new();
        w.integer(self.id.into());
        w.integer(self.first.into());
        w.boolean(self.owner);
        w.boolean(self.token);
        w.boolean(self.last);
        w.string(&self.data.data_type);
        w.integer(data_len as i128);
        w.into_bytes()
    }

    /// Decodes a frame body; every byte must belong to the message.
    pub fn decode(body: &[u8]) -> Result<Self, DecodeError> {
        Self::read(Reader::new(body))
    }

    /// Decodes a frame body received in chunks. The message's `data` keeps
    /// the body's chunks: nothing is copied.
    pub fn decode_body(body: Body) -> Result<Self, DecodeError> {
        Self::read(Reader::of_body(body))
    }

    /// Decodes the start of a frame body of `body_len` bytes from its
    /// first bytes, `start`: everything before the `data` bytes, and those
    /// of them that `start` holds. Returns the message and how many data
    /// bytes are still to come, or `None` if `start` ends before the data
    /// begins or is not the start of a valid message (decoding the whole
    /// body then says what is wrong).
    pub fn decode_start(start: Vec<u8>, body_len: usize) -> Option<(Self, usize)> {
        let owed = body_len.checked_sub(start.len())?;
        let r = Reader::streaming(Body::from(start), owed, NotYetRead);
        let msg = Self::read(r).ok()?;
        Some((msg, owed))
    }

    /// Reads a message whose `data` bytes are the rest of `r`, and keeps
    /// those `r` holds.
    fn read(mut r: Reader<'_>) -> Result<Self, DecodeError> {
        let id = r.integer()?;
        let first = r.integer()?;
        let owner = r.boolean()?;
        let token = r.boolean()?;
        let last = r.boolean()?;
        let data_type = r.string()?.into_owned();
        let start = r.offset();
        let len = r.bytes_len()?;
        if len != r.remaining() {
            return Err(r.error(
                start,
                format!(
                    "data of {len} bytes, but {} bytes follow in the frame",
                    r.remaining()
                ),
            ));
        }
        Ok(Msg {
            id,
            first,
            owner,
            token,
            last,
            data: Data {
                data_type,
                data: r.into_rest(),
            },
        })
    }

    /// The whole frame: header and body.
    pub fn to_frame(&self) -> Vec<u8> {
        let body = self.encode();
        let mut frame = FrameHeader::for_len(body.len()).to_vec();
        frame.extend_from_slice(&body);
        frame
    }
}

/// The bytes of a frame not read yet: [`Msg::decode_start`] must find the
/// message's start in the bytes it was given.
struct NotYetRead;

impl ChunkSource for NotYetRead {
    fn next_chunk(&mut self) -> Result<Vec<u8>, String> {
        Err("the start of the message is longer than the bytes read".into())
    }
}

/// A frame that cannot be accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The header announces more bytes than allowed.
    #[error("Chatter frame announces {announced} bytes, more than the limit of {limit} (the connection's `max_frame`)")]
    TooLarge {
        /// The announced body length.
        announced: u128,
        /// The configured limit.
        limit: usize,
    },
    /// The length field has more than [`MAX_LENGTH_FIELD`] bytes.
    #[error("Chatter frame length field of {0} bytes is longer than {MAX_LENGTH_FIELD}")]
    LengthFieldTooLong(usize),
    /// The body is not a valid `HatChatter.Msg`.
    // Not a `source`: the message says it already, and a reporter that
    // prints the chain of sources would say it twice.
    #[error("Chatter frame body: {0}")]
    Body(DecodeError),
}

impl From<DecodeError> for FrameError {
    fn from(err: DecodeError) -> Self {
        FrameError::Body(err)
    }
}

/// Frame header helpers.
pub struct FrameHeader;

impl FrameHeader {
    /// The header bytes for a body of `len` bytes (at least one length
    /// byte, as the Python implementation writes it).
    pub fn for_len(len: usize) -> Vec<u8> {
        let be = (len as u64).to_be_bytes();
        let skip = be.iter().take_while(|&&b| b == 0).count().min(7);
        let mut header = vec![(8 - skip) as u8];
        header.extend_from_slice(&be[skip..]);
        header
    }

    /// The body length announced by `length_bytes` (the `m` bytes after the
    /// first), checked against `limit` before anything is allocated.
    pub fn parse(length_bytes: &[u8], limit: usize) -> Result<usize, FrameError> {
        if length_bytes.len() > MAX_LENGTH_FIELD {
            return Err(FrameError::LengthFieldTooLong(length_bytes.len()));
        }
        let announced = length_bytes
            .iter()
            .fold(0u128, |acc, &b| (acc << 8) | u128::from(b));
        if announced > limit as u128 {
            return Err(FrameError::TooLarge { announced, limit });
        }
        Ok(announced as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg() -> Msg {
        Msg {
            id: 1,
            first: 1,
            owner: true,
            token: true,
            last: false,
            data: Data {
                data_type: "HatEventer.MsgInitReq".into(),
                data: vec![1, 2, 3].into(),
            },
        }
    }

    #[test]
    fn messages_round_trip_through_frames() {
        let frame = msg().to_frame();
        let m = frame[0] as usize;
        let len = FrameHeader::parse(&frame[1..1 + m], 1 << 20).unwrap();
        assert_eq!(len, frame.len() - 1 - m);
        assert_eq!(Msg::decode(&frame[1 + m..]).unwrap(), msg());
    }

    #[test]
    fn a_start_is_decoded_only_when_it_holds_every_field_before_the_data() {
        let body = msg().encode();
        let data_at = body.len() - 3; // the 3 data bytes come last
        let (start, owed) = Msg::decode_start(body[..data_at].to_vec(), body.len()).unwrap();
        assert_eq!(owed, 3);
        assert_eq!(start.data.data_type, msg().data.data_type);
        // Cut inside the data type: the bytes not read yet are not guessed.
        let cut = data_at - 5;
        assert_eq!(Msg::decode_start(body[..cut].to_vec(), body.len()), None);
    }

    #[test]
    fn a_frame_of_exactly_the_limit_is_accepted_and_one_byte_more_refused() {
        assert_eq!(FrameHeader::parse(&[0x01, 0x00], 256).unwrap(), 256);
        assert_eq!(
            FrameHeader::parse(&[0x12, 0x34, 0x56], 1 << 24).unwrap(),
            0x12_3456
        );
        assert!(matches!(
            FrameHeader::parse(&[0x01, 0x01], 256),
            Err(FrameError::TooLarge {
                announced: 257,
                limit: 256
            })
        ));
    }

    #[test]
    fn oversized_and_malformed_frames_are_refused() {
        let huge = (1u64 << 63).to_be_bytes();
        assert!(matches!(
            FrameHeader::parse(&huge, 1 << 20),
            Err(FrameError::TooLarge { .. })
        ));
        assert_eq!(
            FrameHeader::parse(&[0; MAX_LENGTH_FIELD + 1], 1 << 20),
            Err(FrameError::LengthFieldTooLong(MAX_LENGTH_FIELD + 1))
        );
        assert_eq!(
            FrameError::LengthFieldTooLong(17).to_string(),
            "Chatter frame length field of 17 bytes is longer than 16"
        );
        let mut padded = [0u8; MAX_LENGTH_FIELD];
        padded[MAX_LENGTH_FIELD - 1] = 5;
        assert_eq!(FrameHeader::parse(&padded, 1 << 20), Ok(5));
        let body = msg().encode();
        assert!(Msg::decode(&body[..body.len() - 1]).is_err());
        let mut trailing = body.clone();
        trailing.push(0);
        assert!(Msg::decode(&trailing).is_err());
    }

    #[test]
    fn header_uses_as_few_length_bytes_as_needed() {
        assert_eq!(FrameHeader::for_len(0), vec![1, 0]);
        assert_eq!(FrameHeader::for_len(5), vec![1, 5]);
        assert_eq!(FrameHeader::for_len(256), vec![2, 1, 0]);
    }
}
