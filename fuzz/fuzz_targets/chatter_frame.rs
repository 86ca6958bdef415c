//! Fuzz target: the Chatter frame reader, `connection::read_frame`, over the
//! input as a byte stream.
//!
//! Frames are read until the first error, as the connection does, with no
//! frame-size limit (as connections read by default). Reading must not
//! panic and, whatever length a frame announces, must allocate at most one
//! body piece (`CHUNK`, 40 MiB) ahead of the bytes that arrived, plus what
//! is in proportion to the input; every frame read must survive the round
//! trip, and its payload is decoded as the type it names.
#![no_main]

use hat_eventer_client::connection::{read_frame, ChatterError};
use hat_eventer_client_fuzz::{check_decoded_msg, proportional_bound, within_allocation_bound};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;
use tokio::runtime::Runtime;

/// No limit: memory must be bounded by the bytes that arrive.
const MAX_FRAME: usize = isize::MAX as usize;

/// The most `read_frame` allocates ahead of the bytes that arrived.
const CHUNK: usize = 40 << 20;

fn runtime() -> &'static Runtime {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a current-thread runtime")
    })
}

fuzz_target!(|data: &[u8]| {
    let runtime = runtime();
    let mut read = data;
    loop {
        let before = read.len();
        // One body piece ahead of the input, then the decoded message.
        let result = within_allocation_bound(CHUNK + proportional_bound(before), || {
            runtime.block_on(read_frame(&mut read, MAX_FRAME))
        });
        let consumed = before - read.len();
        match result {
            Ok(msg) => {
                let body = consumed - 1 - usize::from(data[data.len() - before]);
                let frame = msg.to_frame();
                let mut again = frame.as_slice();
                let read_again = runtime
                    .block_on(read_frame(&mut again, MAX_FRAME))
                    .unwrap_or_else(|err| {
                        panic!("{msg:?} makes a frame that does not read: {err}")
                    });
                assert_eq!(read_again, msg, "the frame round trip changed the message");
                assert!(
                    again.is_empty(),
                    "the frame of {msg:?} is longer than it reads"
                );
                check_decoded_msg(&msg, body);
            }
            Err(ChatterError::Closed) => {
                assert_eq!(before, 0, "Closed with {before} bytes left");
                return;
            }
            Err(ChatterError::Io(_) | ChatterError::Frame(_)) => return,
            Err(err @ ChatterError::PingTimeout(_)) => panic!("read_frame failed with {err}"),
        }
    }
});
