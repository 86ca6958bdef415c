//! A client of the Hat monitor (hat-monitor 0.8): how a host finds the
//! active event server of a redundant group and follows it across a
//! fail-over.
//!
//! Production Hat systems run event servers in redundant groups. Each
//! server is a *component* of a `hat-monitor`, which *blesses* one
//! component of the group at a time (`BLESS_ONE`); the blessed server is
//! operational, the others are standbys that sync with it. A host that
//! writes to the group must therefore ask the monitor which server that is,
//! and move when the blessing moves.
//!
//! - [`msg`]: the `HatObserver` messages (SBS over Chatter, the transport
//!   of `hat-eventer-client`);
//! - [`active`]: which component of a group is the active server;
//! - [`client`]: a component's connection to its monitor, and
//!   [`follow_active`], which keeps the active server's address current.
//!
//! This client joins the monitor as a component that never asks to be
//! blessed (its blessing response is never ready): it follows the event
//! servers and takes no part in the blessing of its own group, so it never
//! competes with the AIMM servers of that group.
//!
//! ```no_run
//! use hat_monitor_client::{follow_active, FollowConfig};
//! use std::time::Duration;
//!
//! # async fn example() {
//! let mut active = follow_active(FollowConfig {
//!     monitor: "127.0.0.1:23010".into(),
//!     name: "aimm-backend".into(),
//!     group: "aimm".into(),
//!     server_group: "event".into(),
//!     client_token: None,
//!     timeout: Duration::from_secs(3),
//!     max_backoff: Duration::from_secs(5),
//! });
//! let server = active.wait_for(Option::is_some).await.unwrap().clone();
//! println!("writing to {}", server.unwrap().address);
//! # }
//! ```

#![warn(missing_docs)]
#![forbid(unsafe_code)]

pub mod active;
pub mod client;
pub mod msg;

pub use active::{active_server, is_blessed, ServerData};
pub use client::{follow_active, Component, FollowConfig, MonitorError};
