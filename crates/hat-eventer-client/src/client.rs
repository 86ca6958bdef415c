//! The Eventer client: the `HatEventer` conversation over a Chatter
//! connection (init, register, query, events notification).
//!
//! ```no_run
//! # async fn demo() -> Result<(), hat_eventer_client::client::ClientError> {
//! use hat_eventer_client::client::{connect, ClientConfig};
//! use hat_eventer_client::eventer_msg::{MsgInitReq, QueryParams};
//!
//! let init = MsgInitReq {
//!     client_name: "aimm".into(),
//!     client_token: None,
//!     subscriptions: vec![vec!["aimm".into(), "*".into()]],
//!     server_id: None,
//!     persisted: false,
//! };
//! let (client, mut notified) = connect("127.0.0.1:23012", init, ClientConfig::default()).await?;
//! let latest = client.query(QueryParams::Latest { event_types: None }).await?;
//! println!("{} events", latest.events.len());
//! # Ok(()) }
//! ```

use crate::chatter::Data;
use crate::connection::{self, ChatterConfig, ChatterError, Conversation, Received, Sender};
use crate::eventer_msg::*;
use crate::sbs::DecodeError;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, Mutex};

/// Client settings.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// The Chatter connection's settings.
    pub chatter: ChatterConfig,
    /// How long to wait for connecting and for each answer.
    pub request_timeout: Duration,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            chatter: ChatterConfig::default(),
            request_timeout: Duration::from_secs(5),
        }
    }
}

/// What went wrong talking to the event server.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ClientError {
    /// The transport failed or closed.
    #[error(transparent)]
    Chatter(#[from] ChatterError),
    /// A message could not be decoded.
    #[error("{0}")]
    Decode(#[from] DecodeError),
    /// The server refused the connection (`MsgInitRes.error`).
    #[error("the event server refused the client: {0}")]
    Refused(String),
    /// The server answered `MsgRegisterRes.failure`.
    #[error("the event server did not register the events")]
    RegisterFailed,
    /// No answer in time.
    #[error("no answer from the event server within {0:?} ({1})")]
    Timeout(Duration, &'static str),
    /// The server sent something the protocol does not allow here.
    #[error("unexpected message from the event server: {0}")]
    Protocol(String),
}

type Pending = Arc<Mutex<HashMap<i64, oneshot::Sender<Result<Data, ClientError>>>>>;

/// A connected, initialized Eventer client. Cheap to clone.
#[derive(Clone)]
pub struct Client {
    sender: Sender,
    pending: Pending,
    status: Arc<std::sync::Mutex<Status>>,
    timeout: Duration,
}

fn message<T: Message>(value: &T) -> Data {
    Data {
        data_type: T::TYPE.to_string(),
        data: encode(value),
    }
}

fn decode_as<T: Message>(data: &Data) -> Result<T, ClientError> {
    if data.data_type != T::TYPE {
        return Err(ClientError::Protocol(format!(
            "expected {}, got {}",
            T::TYPE,
            data.data_type
        )));
    }
    Ok(decode(&data.data)?)
}

/// Connects, sends `init` and waits for the server's answer. Returns the
/// client and the stream of events the server notifies for the subscriptions.
pub async fn connect(
    address: &str,
    init: MsgInitReq,
    config: ClientConfig,
) -> Result<(Client, mpsc::UnboundedReceiver<Vec<Event>>), ClientError> {
    let timeout = config.request_timeout;
    let (sender, mut incoming) =
        tokio::time::timeout(timeout, connection::connect(address, config.chatter))
            .await
            .map_err(|_| ClientError::Timeout(timeout, "connecting"))??;
    let conversation = sender.send(message(&init), None, false).await?;
    let answer = tokio::time::timeout(timeout, incoming.recv())
        .await
        .map_err(|_| ClientError::Timeout(timeout, "waiting for MsgInitRes"))?
        .ok_or(ChatterError::Closed)??;
    if answer.conversation != conversation {
        return Err(ClientError::Protocol(format!(
            "{} before MsgInitRes",
            answer.data.data_type
        )));
    }
    let status = match decode_as::<MsgInitRes>(&answer.data)? {
        MsgInitRes::Success(status) => status,
        MsgInitRes::Error(message) => return Err(ClientError::Refused(message)),
    };
    let client = Client {
        sender,
        pending: Pending::default(),
        status: Arc::new(std::sync::Mutex::new(status)),
        timeout,
    };
    let (events_tx, events_rx) = mpsc::unbounded_channel();
    tokio::spawn(dispatch(client.clone(), incoming, events_tx));
    Ok((client, events_rx))
}

impl Client {
    /// The server's status as last reported.
    pub fn status(&self) -> Status {
        *self.status.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers `events`. With `with_response`, waits for the server and
    /// returns the registered events; without, returns once sent.
    pub async fn register(
        &self,
        events: Vec<RegisterEvent>,
        with_response: bool,
    ) -> Result<Option<Vec<Event>>, ClientError> {
        let request = MsgRegisterReq(events);
        if !with_response {
            self.sender.send(message(&request), None, true).await?;
            return Ok(None);
        }
        match self
            .request::<_, MsgRegisterRes>(&request, "register")
            .await?
        {
            MsgRegisterRes::Events(events) => Ok(Some(events)),
            MsgRegisterRes::Failure => Err(ClientError::RegisterFailed),
        }
    }

    /// Runs a query.
    pub async fn query(&self, params: QueryParams) -> Result<QueryResult, ClientError> {
        self.request::<_, QueryResult>(&params, "query").await
    }

    /// Closes the connection.
    pub async fn close(&self) {
        self.sender.close().await;
    }

    async fn request<Req: Message, Res: Message>(
        &self,
        request: &Req,
        what: &'static str,
    ) -> Result<Res, ClientError> {
        let (answer_tx, answer_rx) = oneshot::channel();
        let first = {
            // Held across the send so the answer cannot overtake the entry.
            let mut pending = self.pending.lock().await;
            let conversation = self.sender.send(message(request), None, false).await?;
            pending.insert(conversation.first, answer_tx);
            conversation.first
        };
        match tokio::time::timeout(self.timeout, answer_rx).await {
            Ok(Ok(answer)) => decode_as(&answer?),
            Ok(Err(_)) => Err(ChatterError::Closed.into()),
            Err(_) => {
                self.pending.lock().await.remove(&first);
                Err(ClientError::Timeout(self.timeout, what))
            }
        }
    }
}

/// Routes what the server sends: answers to their requests, status changes,
/// event notifications (acknowledged when the server asks).
async fn dispatch(
    client: Client,
    mut incoming: mpsc::Receiver<Result<Received, ChatterError>>,
    events: mpsc::UnboundedSender<Vec<Event>>,
) {
    let error = loop {
        let received = match incoming.recv().await {
            Some(Ok(received)) => received,
            Some(Err(err)) => break ClientError::from(err),
            None => break ChatterError::Closed.into(),
        };
        if let Err(err) = handle(&client, received, &events).await {
            break err;
        }
    };
    client.close().await;
    for (_, waiter) in client.pending.lock().await.drain() {
        let _ = waiter.send(Err(error.clone()));
    }
}

async fn handle(
    client: &Client,
    received: Received,
    events: &mpsc::UnboundedSender<Vec<Event>>,
) -> Result<(), ClientError> {
    if received.conversation.owner {
        if let Some(waiter) = client
            .pending
            .lock()
            .await
            .remove(&received.conversation.first)
        {
            let _ = waiter.send(Ok(received.data));
        }
        return Ok(());
    }
    match received.data.data_type.as_str() {
        MsgStatusNotify::TYPE => {
            let MsgStatusNotify(status) = decode_as(&received.data)?;
            *client.status.lock().unwrap_or_else(|e| e.into_inner()) = status;
        }
        MsgEventsNotify::TYPE => {
            let MsgEventsNotify(notified) = decode_as(&received.data)?;
            let _ = events.send(notified);
            if !received.last {
                let conversation: Conversation = received.conversation;
                client
                    .sender
                    .send(message(&MsgEventsAck), Some(conversation), true)
                    .await?;
            }
        }
        other => return Err(ClientError::Protocol(other.to_string())),
    }
    Ok(())
}
