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

mod answer;
mod config;
mod message;
mod query;

pub use answer::RegisterAnswer;
pub use config::{ClientConfig, ClientError};
pub use query::{QueryEvents, QueryStream};

use crate::connection::{self, Activity, ChatterError, Conversation, Received, Sender};
use crate::eventer_msg::*;
use crate::sbs::Parts;
use answer::Answer;
use message::{check_type, decode_as, message, Pending};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// A connected, initialized Eventer client. Cheap to clone.
#[derive(Clone)]
pub struct Client {
    sender: Sender,
    pending: Pending,
    status: Arc<std::sync::Mutex<Status>>,
    /// Status reports received since connecting.
    status_reports: Arc<AtomicU64>,
    idle_timeout: Duration,
    idle_per_mib: Duration,
    query_timeout: Duration,
}

/// Connects, sends `init` and waits for the server's answer. Returns the
/// client and the stream of events the server notifies for the subscriptions.
pub async fn connect(
    address: &str,
    init: MsgInitReq,
    config: ClientConfig,
) -> Result<(Client, mpsc::UnboundedReceiver<Vec<Event>>), ClientError> {
    let timeout = config.connect_timeout;
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
    let status = match decode_as::<MsgInitRes>(answer.data)? {
        MsgInitRes::Success(status) => status,
        MsgInitRes::Error(message) => return Err(ClientError::Refused(message)),
    };
    let client = Client {
        sender,
        pending: Pending::default(),
        status: Arc::new(std::sync::Mutex::new(status)),
        status_reports: Arc::default(),
        idle_timeout: config.idle_timeout,
        idle_per_mib: config.idle_per_mib,
        query_timeout: config.query_timeout,
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
        let refs: Vec<RegisterEventRef<'_>> = events.iter().map(RegisterEventRef::from).collect();
        let parts = register_request_parts(&refs);
        if !with_response {
            self.send_registration(&parts).await?;
            return Ok(None);
        }
        let answer = self.request_registration(&parts).await?;
        drop(refs);
        drop(events);
        answer.wait().await.map(Some)
    }

    /// Sends a `MsgRegisterReq` encoded by [`register_request_parts`],
    /// expecting no answer.
    pub async fn send_registration(&self, parts: &Parts<'_>) -> Result<(), ClientError> {
        self.sender
            .send_parts(MsgRegisterReq::TYPE, parts, None, true)
            .await?;
        Ok(())
    }

    /// Sends a `MsgRegisterReq` encoded by [`register_request_parts`] and
    /// returns its answer to wait for: the request need not live on while
    /// the server works.
    pub async fn request_registration(
        &self,
        parts: &Parts<'_>,
    ) -> Result<RegisterAnswer, ClientError> {
        let answer = self
            .send_request(MsgRegisterReq::TYPE, parts, "register")
            .await?;
        Ok(RegisterAnswer(answer))
    }

    /// Sends a `MsgRegisterReq` encoded by [`register_request_parts`]
    /// without asking for its answer, which would echo every event back
    /// whole, and returns once the server has registered it: once the
    /// server has answered an empty query sent right after it on this
    /// connection. That holds for servers that handle one connection's
    /// messages one at a time, each to its end, as hat-event 0.9's eventer
    /// server does.
    ///
    /// A server without a running engine (not operational) drops a
    /// registration it cannot take and answers the query all the same; it
    /// reports its new status first. So a fenced registration fails with
    /// [`ClientError::StatusChanged`] when the status was not operational
    /// when it was sent or a status report came before the answer. The
    /// registered events are not returned: their ids come with their
    /// notifications, if the connection is subscribed to them.
    pub async fn register_fenced(&self, parts: &Parts<'_>) -> Result<(), ClientError> {
        let reports = self.status_reports.load(Ordering::SeqCst);
        let status = self.status();
        if status != Status::Operational {
            return Err(ClientError::StatusChanged(status));
        }
        self.send_registration(parts).await?;
        let mut fence = Parts::new();
        fence.write(|w| {
            QueryParams::Latest {
                event_types: Some(Vec::new()),
            }
            .write(w)
        });
        // The registration's size is what the server may take to get to
        // the fence's answer.
        let mut answer = self
            .send_request::<QueryResult>(QueryParams::TYPE, &fence, "register")
            .await?;
        answer.patience = self.patience(parts.len());
        answer.wait().await?;
        let status = self.status();
        if self.status_reports.load(Ordering::SeqCst) != reports || status != Status::Operational {
            return Err(ClientError::StatusChanged(status));
        }
        Ok(())
    }

    /// Runs a query. The whole answer is awaited with the patience of a
    /// query's start ([`ClientConfig::query_timeout`]), as it cannot tell
    /// when the answer starts; [`Client::query_streamed`] can.
    pub async fn query(&self, params: QueryParams) -> Result<QueryResult, ClientError> {
        let mut parts = Parts::new();
        parts.write(|w| params.write(w));
        let mut answer = self
            .send_request(QueryParams::TYPE, &parts, "query")
            .await?;
        answer.patience = self.query_patience(answer.patience);
        answer.wait().await
    }

    /// Runs a query whose answer is taken as it arrives: returns once its
    /// start is here, and [`QueryStream::events`] decodes the events one
    /// at a time while the rest arrives, so that no more than a piece of
    /// the answer and the event being decoded are ever held.
    pub async fn query_streamed(&self, params: QueryParams) -> Result<QueryStream, ClientError> {
        let mut parts = Parts::new();
        parts.write(|w| params.write(w));
        let mut answer = self
            .send_request_as::<QueryResult>(QueryParams::TYPE, &parts, "query", true)
            .await?;
        // Due until the last piece is read, past the answer's own guard.
        let awaiting = self.activity().awaiting();
        let patience = answer.patience;
        // The server builds the whole answer before its start; then the
        // rest keeps moving or times out as any answer does.
        answer.patience = self.query_patience(patience);
        let (data, rest) = answer.wait_answered().await?;
        check_type::<QueryResult>(&data)?;
        Ok(QueryStream {
            start: data.data,
            rest,
            activity: self.activity().clone(),
            patience,
            _awaiting: awaiting,
        })
    }

    /// The connection's progress, which request timeouts count from.
    pub fn activity(&self) -> &Activity {
        self.sender.activity()
    }

    /// How long the server may stay silent while the answer to a request
    /// of `request_len` bytes is due (see [`ClientConfig::idle_per_mib`]).
    pub fn patience(&self, request_len: usize) -> Duration {
        let mib = request_len as f64 / f64::from(1 << 20);
        self.idle_timeout + self.idle_per_mib.mul_f64(mib)
    }

    /// How long the server may stay silent before a query's answer starts,
    /// for a query whose own patience is `patience`.
    fn query_patience(&self, patience: Duration) -> Duration {
        patience.max(self.query_timeout)
    }

    /// Closes the connection.
    pub async fn close(&self) {
        self.sender.close().await;
    }

    async fn send_request<Res: Message>(
        &self,
        data_type: &str,
        parts: &Parts<'_>,
        what: &'static str,
    ) -> Result<Answer<Res>, ClientError> {
        self.send_request_as(data_type, parts, what, false).await
    }

    /// Sends a request; with `streamed`, its answer comes as soon as its
    /// start has arrived (see [`Sender::send_parts_streamed`]).
    async fn send_request_as<Res: Message>(
        &self,
        data_type: &str,
        parts: &Parts<'_>,
        what: &'static str,
        streamed: bool,
    ) -> Result<Answer<Res>, ClientError> {
        let (answer_tx, answer_rx) = oneshot::channel();
        // Counted from before the send: a peer that stops reading our
        // request is as silent as one that does not answer it.
        let awaiting = self.activity().awaiting();
        let first = {
            // Held across the send so the answer cannot overtake the entry.
            let mut pending = self.pending.lock().await;
            let conversation = if streamed {
                self.sender.send_parts_streamed(data_type, parts).await?
            } else {
                self.sender
                    .send_parts(data_type, parts, None, false)
                    .await?
            };
            pending.insert(conversation.first, answer_tx);
            conversation.first
        };
        Ok(Answer {
            sender: self.sender.clone(),
            pending: self.pending.clone(),
            first,
            receiver: answer_rx,
            sent: tokio::time::Instant::now(),
            patience: self.patience(parts.len()),
            what,
            _awaiting: awaiting,
            _type: std::marker::PhantomData,
        })
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
            let _ = waiter.send(Ok((received.data, received.rest)));
        }
        return Ok(());
    }
    let data_type = received.data.data_type.clone();
    match data_type.as_str() {
        MsgStatusNotify::TYPE => {
            let MsgStatusNotify(status) = decode_as(received.data)?;
            *client.status.lock().unwrap_or_else(|e| e.into_inner()) = status;
            // Counted before any later answer is handed over: a fenced
            // registration answered after this sees it.
            client.status_reports.fetch_add(1, Ordering::SeqCst);
        }
        MsgEventsNotify::TYPE => {
            let MsgEventsNotify(notified) = decode_as(received.data)?;
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
