//! Messages in and out: the Chatter data of an eventer message, checked
//! against the type it should be, and the answers a client waits for.

use super::config::ClientError;
use crate::chatter::Data;
use crate::connection::Rest;
use crate::eventer_msg::*;
use crate::sbs::Body;
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::{oneshot, Mutex};

/// An answer as it came: whole, or its start and the [`Rest`] to come.
pub(super) type Answered = (Data, Option<Rest>);

pub(super) type Pending = Arc<Mutex<HashMap<i64, oneshot::Sender<Result<Answered, ClientError>>>>>;

pub(super) fn message<T: Message>(value: &T) -> Data {
    Data {
        data_type: T::TYPE.to_string(),
        data: Body::from(encode(value)),
    }
}

pub(super) fn decode_as<T: Message>(data: Data) -> Result<T, ClientError> {
    check_type::<T>(&data)?;
    Ok(decode_body(data.data)?)
}

pub(super) fn check_type<T: Message>(data: &Data) -> Result<(), ClientError> {
    if data.data_type != T::TYPE {
        return Err(ClientError::Protocol(format!(
            "expected {}, got {}",
            T::TYPE,
            data.data_type
        )));
    }
    Ok(())
}
