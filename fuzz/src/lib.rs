//! Shared checks of the fuzz targets in `fuzz_targets/`, and an allocator
//! that counts, so that a target can assert how much a decoder allocated.
//!
//! The checks panic on any violation; libFuzzer reports a panic (an abort)
//! as a crash and saves the input.

use cap::Cap;
use hat_eventer_client::chatter::Msg;
use hat_eventer_client::eventer_msg::{
    decode, encode, Message, MsgEventsAck, MsgEventsNotify, MsgInitReq, MsgInitRes, MsgRegisterReq,
    MsgRegisterRes, MsgStatusNotify, QueryParams, QueryResult, Sbs,
};
use hat_eventer_client::sbs::{Reader, Writer};
use std::alloc::System;
use std::fmt::Debug;

/// Live bytes beyond which allocations fail, outside [`within_allocation_bound`]
/// (the process then aborts with "memory allocation of N bytes failed",
/// which libFuzzer reports as a crash): without a sanitizer runtime
/// libFuzzer's own `-malloc_limit_mb` cannot see Rust's allocations.
pub const LIVE_LIMIT: usize = 512 << 20;

/// Decoding `n` input bytes may have at most `ALLOC_FACTOR * n +
/// ALLOC_SLACK` bytes allocated at once. The densest honest case is a list
/// of one-element lists of empty strings (`subscriptions`, `event_types`):
/// 2 input bytes each, a first allocation of 4 `String`s (96 bytes) plus a
/// 24-byte slot in the outer `Vec`, which doubles as it grows: under 84
/// bytes per input byte. A decoder that reserved room for a length read from
/// the input (say `Vec::<Event>::with_capacity(len)`, 136 bytes per
/// element) exceeds the bound.
pub const ALLOC_FACTOR: usize = 128;
/// See [`ALLOC_FACTOR`]: error messages, first allocations of small `Vec`s.
pub const ALLOC_SLACK: usize = 16 << 10;

/// The system allocator behind a limit on live bytes (the `cap` crate, so
/// that this crate needs no `unsafe`).
#[global_allocator]
static ALLOCATOR: Cap<System> = Cap::new(System, LIVE_LIMIT);

/// Runs `f` with at most `bound` more bytes allocatable than are live now:
/// an allocation beyond that fails and aborts the process, which libFuzzer
/// reports as a crash with the input that caused it. Single-threaded use.
pub fn within_allocation_bound<T>(bound: usize, f: impl FnOnce() -> T) -> T {
    let outer = ALLOCATOR.limit();
    let limit = ALLOCATOR.allocated().saturating_add(bound).min(outer);
    ALLOCATOR
        .set_limit(limit)
        .expect("the limit is above what is allocated");
    let result = f();
    ALLOCATOR
        .set_limit(outer)
        .expect("the outer limit held before");
    result
}

/// The allocation bound for decoding `input_len` bytes.
pub fn proportional_bound(input_len: usize) -> usize {
    ALLOC_FACTOR * input_len + ALLOC_SLACK
}

/// The message types [`check_message`] knows, by their Chatter `data.type`,
/// in the order the first byte of an `sbs_decode` input selects them.
pub const MESSAGE_TYPES: [&str; 10] = [
    MsgInitReq::TYPE,
    MsgInitRes::TYPE,
    MsgStatusNotify::TYPE,
    MsgEventsNotify::TYPE,
    MsgEventsAck::TYPE,
    MsgRegisterReq::TYPE,
    MsgRegisterRes::TYPE,
    QueryParams::TYPE,
    QueryResult::TYPE,
    "HatChatter.Msg",
];

/// Decodes `bytes` as the message named `data_type` (one of
/// [`MESSAGE_TYPES`]; others are ignored) and checks it; returns whether the
/// bytes decoded.
pub fn check_message(data_type: &str, bytes: &[u8]) -> bool {
    match data_type {
        MsgInitReq::TYPE => round_trip::<MsgInitReq>(data_type, bytes),
        MsgInitRes::TYPE => round_trip::<MsgInitRes>(data_type, bytes),
        MsgStatusNotify::TYPE => round_trip::<MsgStatusNotify>(data_type, bytes),
        MsgEventsNotify::TYPE => round_trip::<MsgEventsNotify>(data_type, bytes),
        MsgEventsAck::TYPE => round_trip::<MsgEventsAck>(data_type, bytes),
        MsgRegisterReq::TYPE => round_trip::<MsgRegisterReq>(data_type, bytes),
        MsgRegisterRes::TYPE => round_trip::<MsgRegisterRes>(data_type, bytes),
        QueryParams::TYPE => round_trip::<QueryParams>(data_type, bytes),
        QueryResult::TYPE => round_trip::<QueryResult>(data_type, bytes),
        "HatChatter.Msg" => check_chatter_msg(bytes),
        _ => false,
    }
}

/// Decodes, checking the allocation bound; then the round trip: what
/// decodes encodes to at most as many bytes (the encoder writes the
/// shortest form, the decoder also reads longer ones), which decode to the
/// same value and encode to the same bytes.
fn round_trip<T: Sbs + PartialEq + Debug>(what: &str, bytes: &[u8]) -> bool {
    let decoded = within_allocation_bound(proportional_bound(bytes.len()), || decode::<T>(bytes));
    let Ok(value) = decoded else {
        return false;
    };
    let encoded = encode(&value);
    assert!(
        encoded.len() <= bytes.len(),
        "{value:?} encodes to {} bytes, decoded from {}",
        encoded.len(),
        bytes.len()
    );
    let again = decode::<T>(&encoded).unwrap_or_else(|err| {
        panic!("{what} {value:?} encodes to bytes that do not decode: {err}")
    });
    assert_eq!(again, value, "the round trip changed the {what}");
    assert_eq!(encode(&again), encoded, "encoding is not deterministic");
    true
}

/// The checks of [`round_trip`] for a Chatter message; when it decodes, its
/// payload is checked too, as the message type it names.
pub fn check_chatter_msg(bytes: &[u8]) -> bool {
    let decoded = within_allocation_bound(proportional_bound(bytes.len()), || Msg::decode(bytes));
    let Ok(msg) = decoded else {
        return false;
    };
    check_decoded_msg(&msg, bytes.len());
    true
}

/// The round trip of a decoded Chatter message of `len` bytes, and the
/// checks of its payload (when it names a type of [`MESSAGE_TYPES`]).
pub fn check_decoded_msg(msg: &Msg, len: usize) {
    let encoded = msg.encode();
    assert!(encoded.len() <= len, "{msg:?} encodes longer");
    let again = Msg::decode(&encoded)
        .unwrap_or_else(|err| panic!("{msg:?} encodes to bytes that do not decode: {err}"));
    assert_eq!(&again, msg, "the round trip changed the message");
    assert_eq!(again.encode(), encoded, "encoding is not deterministic");
    check_message(&msg.data.data_type, &msg.data.data.to_vec());
}

/// Reads SBS Integers from `bytes` until one fails: each must be written
/// back in at most as many bytes and read back as the same value.
pub fn check_integers(bytes: &[u8]) {
    let mut reader = Reader::new(bytes);
    while reader.remaining() > 0 {
        let start = reader.offset();
        let Ok(value) = reader.integer_i128() else {
            return;
        };
        let mut writer = Writer::new();
        writer.integer(value);
        assert!(writer.as_bytes().len() <= reader.offset() - start);
        let mut again = Reader::new(writer.as_bytes());
        assert_eq!(again.integer_i128(), Ok(value));
        again.finish().unwrap();
        if let Ok(small) = i64::try_from(value) {
            assert_eq!(Reader::new(writer.as_bytes()).integer(), Ok(small));
        } else {
            assert!(Reader::new(writer.as_bytes()).integer().is_err());
        }
    }
}
