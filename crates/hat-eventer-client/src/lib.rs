//! A client for the Hat event server (`hat-event` 0.9), in Rust.
//!
//! Built in layers, each usable on its own:
//!
//! * [`sbs`]: the SBS binary encoding of the Hat protocols' messages;
//! * [`chatter`]: Chatter framing and messages (the transport under Eventer);
//! * [`eventer_msg`]: the `HatEventer` messages;
//! * [`connection`]: a Chatter connection over TCP with ping/pong;
//! * [`client`]: the Eventer client (init, register, query, notify).

#![warn(missing_docs)]

pub mod chatter;
pub mod client;
pub mod connection;
pub mod eventer_msg;
pub mod sbs;
