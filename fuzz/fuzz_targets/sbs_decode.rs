//! Fuzz target: the SBS decoders of the `HatEventer` messages and of the
//! `HatChatter.Msg` frame body.
//!
//! The first input byte chooses the type (modulo 11: the ten of
//! `MESSAGE_TYPES`, then bare Integers), the rest is decoded as it. Decoding
//! must not panic, must allocate at most in proportion to the input, and
//! whatever decodes must survive the encode/decode round trip.
#![no_main]

use hat_eventer_client_fuzz::{check_integers, check_message, MESSAGE_TYPES};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, bytes)) = data.split_first() else {
        return;
    };
    match MESSAGE_TYPES.get(usize::from(selector) % (MESSAGE_TYPES.len() + 1)) {
        Some(data_type) => {
            check_message(data_type, bytes);
        }
        None => check_integers(bytes),
    }
});
