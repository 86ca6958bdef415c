//! One connection to the server, used from a plain thread, where every wait
//! for the server has a deadline.
//!
//! A server that is connected but does not answer (its process stopped,
//! its storage stuck in a sync, a VM paused) still acknowledges TCP, so no
//! TCP timer fires and a blocking client would wait until it moves again.
//! Here each statement, each row of a streamed read and the connecting
//! itself wait at most their patience; past it the connection is given up
//! (its socket closed) and the call fails with [`DbError::NoAnswer`].
//!
//! The connection runs as a task on a runtime of its own, driven only while
//! a call waits, as the blocking `postgres` crate does; its notifications
//! are kept for [`Session::wait_for_notification`].

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use futures_core::Stream;
use tokio::runtime::Runtime;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::error::Elapsed;
use tokio_postgres::tls::{MakeTlsConnect, TlsConnect};
use tokio_postgres::types::{BorrowToSql, ToSql};
use tokio_postgres::{AsyncMessage, Connection, Row, RowStream, Socket, Statement, ToStatement};

/// Statement parameters.
pub(crate) type Params<'a> = [&'a (dyn ToSql + Sync)];

/// Why a call on a [`Session`] failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DbError {
    /// PostgreSQL refused the statement, or the connection failed.
    #[error(transparent)]
    Postgres(#[from] tokio_postgres::Error),
    /// The connection's runtime could not start (no memory, no file
    /// descriptors).
    #[error("could not start a connection's runtime: {0}")]
    Runtime(std::io::Error),
    /// The server sent nothing for this long; the connection was given up.
    #[error(
        "no answer within {} s, so the connection was given up (is the server hung: \
         its process stopped, its storage stuck?)",
        .0.as_secs_f64()
    )]
    NoAnswer(Duration),
}

impl DbError {
    /// The server's own error, if it sent one.
    pub(crate) fn as_db_error(&self) -> Option<&tokio_postgres::error::DbError> {
        match self {
            DbError::Postgres(err) => err.as_db_error(),
            DbError::Runtime(_) | DbError::NoAnswer(_) => None,
        }
    }
}

/// A connection whose every wait has a deadline.
pub(crate) struct Session {
    client: tokio_postgres::Client,
    notifications: mpsc::UnboundedReceiver<()>,
    connection: JoinHandle<()>,
    /// How long a call waits for the server's next answer.
    patience: Duration,
    /// Given up after a call waited past its patience.
    abandoned: Cell<bool>,
    /// Dropping it drops the connection's task, which closes the socket.
    runtime: Runtime,
}

impl Session {
    /// Connects within `connect_timeout` (the whole of it: TCP, TLS and
    /// login), then waits at most `patience` for each answer.
    pub(crate) fn connect<T>(
        config: &tokio_postgres::Config,
        tls: T,
        connect_timeout: Duration,
        patience: Duration,
    ) -> Result<Session, DbError>
    where
        T: MakeTlsConnect<Socket> + Send + 'static,
        T::Stream: Send + 'static,
        T::TlsConnect: Send,
        <T::TlsConnect as TlsConnect<Socket>>::Future: Send,
    {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .map_err(DbError::Runtime)?;
        let (client, connection) =
            match runtime.block_on(within(connect_timeout, config.connect(tls))) {
                Ok(connected) => connected?,
                Err(_) => return Err(DbError::NoAnswer(connect_timeout)),
            };
        let (notify, notifications) = mpsc::unbounded_channel();
        let connection = runtime.spawn(drive(connection, notify));
        Ok(Session {
            client,
            notifications,
            connection,
            patience,
            abandoned: Cell::new(false),
            runtime,
        })
    }

    /// Runs `statements` (no parameters, no rows), e.g. `BEGIN`.
    pub(crate) fn batch_execute(&mut self, statements: &str) -> Result<(), DbError> {
        self.wait(self.client.batch_execute(statements))
    }

    /// Runs one statement; the number of rows it changed.
    pub(crate) fn execute<T>(&mut self, statement: &T, params: &Params<'_>) -> Result<u64, DbError>
    where
        T: ?Sized + ToStatement,
    {
        self.wait(self.client.execute(statement, params))
    }

    /// Every row of a query, at once.
    pub(crate) fn query<T>(&mut self, query: &T, params: &Params<'_>) -> Result<Vec<Row>, DbError>
    where
        T: ?Sized + ToStatement,
    {
        self.wait(self.client.query(query, params))
    }

    /// The one row of a query; an error when it has none or more.
    pub(crate) fn query_one<T>(&mut self, query: &T, params: &Params<'_>) -> Result<Row, DbError>
    where
        T: ?Sized + ToStatement,
    {
        self.wait(self.client.query_one(query, params))
    }

    /// The row of a query, if it has one; an error when it has more.
    pub(crate) fn query_opt<T>(
        &mut self,
        query: &T,
        params: &Params<'_>,
    ) -> Result<Option<Row>, DbError>
    where
        T: ?Sized + ToStatement,
    {
        self.wait(self.client.query_opt(query, params))
    }

    /// The rows of a query as they arrive, each within the patience.
    pub(crate) fn query_raw<T, P, I>(&mut self, query: &T, params: I) -> Result<Rows<'_>, DbError>
    where
        T: ?Sized + ToStatement,
        P: BorrowToSql,
        I: IntoIterator<Item = P>,
        I::IntoIter: ExactSizeIterator,
    {
        let stream = self.wait(self.client.query_raw(query, params))?;
        Ok(Rows {
            session: self,
            stream: Box::pin(stream),
        })
    }

    /// A statement parsed once, to run many times.
    pub(crate) fn prepare(&mut self, query: &str) -> Result<Statement, DbError> {
        self.wait(self.client.prepare(query))
    }

    /// Starts a transaction with `begin` (`BEGIN`, or `BEGIN` with its
    /// isolation level); it rolls back unless committed.
    pub(crate) fn begin(&mut self, begin: &str) -> Result<Transaction<'_>, DbError> {
        self.batch_execute(begin)?;
        Ok(Transaction {
            session: Some(self),
        })
    }

    /// Starts a read-committed transaction.
    pub(crate) fn transaction(&mut self) -> Result<Transaction<'_>, DbError> {
        self.begin("BEGIN")
    }

    /// Whether the server answers an empty query within `patience` (or
    /// the session's own, if shorter).
    pub(crate) fn answers_within(&mut self, patience: Duration) -> bool {
        self.wait_at_most(patience.min(self.patience), self.client.check_connection())
            .is_ok()
    }

    /// Waits up to `wait` for a notification; true when one (or more)
    /// came. An error when the connection has ended.
    pub(crate) fn wait_for_notification(&mut self, wait: Duration) -> Result<bool, DbError> {
        let Session {
            runtime,
            notifications,
            ..
        } = self;
        let came = runtime.block_on(within(wait, notifications.recv()));
        match came {
            Ok(Some(())) => {
                while self.notifications.try_recv().is_ok() {}
                Ok(true)
            }
            Ok(None) => self.batch_execute("").map(|()| false),
            Err(_waited) => Ok(false),
        }
    }

    /// Whether the connection has ended or was given up: it serves no
    /// more calls.
    pub(crate) fn is_closed(&self) -> bool {
        self.abandoned.get() || self.client.is_closed()
    }

    /// `call` within the patience.
    fn wait<T>(
        &self,
        call: impl Future<Output = Result<T, tokio_postgres::Error>>,
    ) -> Result<T, DbError> {
        self.wait_at_most(self.patience, call)
    }

    /// `call` within `patience`; past it the connection is given up, since
    /// what the server will still send is unknown.
    fn wait_at_most<T>(
        &self,
        patience: Duration,
        call: impl Future<Output = Result<T, tokio_postgres::Error>>,
    ) -> Result<T, DbError> {
        match self.runtime.block_on(within(patience, call)) {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(err)) => Err(DbError::Postgres(err)),
            Err(_waited) => {
                self.abandon();
                Err(DbError::NoAnswer(patience))
            }
        }
    }

    fn abandon(&self) {
        self.abandoned.set(true);
        self.connection.abort();
    }
}

/// `call`, unless `patience` passes first. (A timer needs the runtime
/// running: it is made inside the future `block_on` runs.)
async fn within<F: Future>(patience: Duration, call: F) -> Result<F::Output, Elapsed> {
    tokio::time::timeout(patience, call).await
}

/// Runs the connection: answers to the client's calls, and the server's
/// notifications (kept for [`Session::wait_for_notification`]) and notices
/// (logged). When it ends, the client's calls fail as closed.
async fn drive<S, T>(mut connection: Connection<S, T>, notify: mpsc::UnboundedSender<()>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    loop {
        match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
            Some(Ok(AsyncMessage::Notification(_))) => {
                // Only wakes the watcher: what changed is read from the table.
                let _ = notify.send(());
            }
            Some(Ok(AsyncMessage::Notice(notice))) => {
                log::info!("PostgreSQL {}: {}", notice.severity(), notice.message());
            }
            Some(Ok(_)) => {}
            Some(Err(_)) | None => return,
        }
    }
}

/// A transaction on a [`Session`]; rolled back unless committed.
pub(crate) struct Transaction<'a> {
    /// Taken by the commit: a transaction still holding it is open.
    session: Option<&'a mut Session>,
}

impl Transaction<'_> {
    /// Commits. A failure other than the server's own error leaves the
    /// outcome unknown: the COMMIT may have been applied.
    pub(crate) fn commit(mut self) -> Result<(), DbError> {
        let session = self.session.take().expect("open until committed");
        session.batch_execute("COMMIT")
    }
}

impl std::ops::Deref for Transaction<'_> {
    type Target = Session;

    fn deref(&self) -> &Session {
        self.session.as_deref().expect("open until committed")
    }
}

impl std::ops::DerefMut for Transaction<'_> {
    fn deref_mut(&mut self) -> &mut Session {
        self.session.as_deref_mut().expect("open until committed")
    }
}

impl Drop for Transaction<'_> {
    fn drop(&mut self) {
        let Some(session) = self.session.take() else {
            return;
        };
        if !session.is_closed() && session.batch_execute("ROLLBACK").is_err() {
            // A connection in an unknown state serves no more calls.
            session.abandon();
        }
    }
}

/// The rows of a streamed query ([`Session::query_raw`]).
pub(crate) struct Rows<'a> {
    session: &'a mut Session,
    stream: Pin<Box<RowStream>>,
}

impl Rows<'_> {
    /// The next row, within the session's patience; `None` after the last.
    pub(crate) fn next(&mut self) -> Result<Option<Row>, DbError> {
        let stream = self.stream.as_mut();
        self.session.wait(next_row(stream))
    }
}

async fn next_row(mut stream: Pin<&mut RowStream>) -> Result<Option<Row>, tokio_postgres::Error> {
    std::future::poll_fn(|cx| stream.as_mut().poll_next(cx))
        .await
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::PostgresConfig;
    use crate::connect::Connector;
    use aimm_backend_test_support::PostgresServer;

    /// A session on `server` that waits `patience` seconds for an answer.
    fn session(server: &PostgresServer, patience: f64) -> Session {
        let mut section = server.backend_section("session");
        section["answer_timeout"] = patience.into();
        let conf = PostgresConfig::from_json(&section).unwrap();
        Connector::new(&conf).unwrap().connect().unwrap()
    }

    fn numbers(rows: &[Row]) -> Vec<i32> {
        rows.iter().map(|row| row.get(0)).collect()
    }

    #[test]
    fn statements_answer_with_their_rows_and_a_refused_one_with_the_servers_error() {
        let server = PostgresServer::start();
        let mut s = session(&server, 10.0);
        assert_eq!(
            numbers(&s.query("SELECT generate_series(1, $1)", &[&3]).unwrap()),
            [1, 2, 3]
        );
        assert_eq!(
            s.query_one("SELECT 6 * $1", &[&7])
                .unwrap()
                .get::<_, i32>(0),
            42
        );
        assert!(s.query_opt("SELECT 1 WHERE false", &[]).unwrap().is_none());
        let plus_one = s.prepare("SELECT $1::int + 1").unwrap();
        assert_eq!(s.query_one(&plus_one, &[&1]).unwrap().get::<_, i32>(0), 2);
        let mut rows = s.query_raw("SELECT generate_series(1, $1)", [&4]).unwrap();
        let mut streamed = Vec::new();
        while let Some(row) = rows.next().unwrap() {
            streamed.push(row.get::<_, i32>(0));
        }
        assert_eq!(streamed, [1, 2, 3, 4]);

        let refused = s.query_one("SELECT 1 / $1", &[&0]).unwrap_err();
        let code = refused.as_db_error().map(|db| db.code().code());
        assert_eq!(code, Some("22012"), "division by zero: {refused}");
        assert!(
            !s.is_closed(),
            "a refused statement leaves the session usable"
        );
        assert!(s.answers_within(Duration::from_secs(10)));
    }

    #[test]
    fn a_transaction_keeps_what_it_committed_and_one_dropped_unfinished_is_rolled_back() {
        let server = PostgresServer::start();
        let mut s = session(&server, 10.0);
        s.batch_execute("CREATE TEMPORARY TABLE t (n int)").unwrap();
        {
            let mut dropped = s.transaction().unwrap();
            dropped.execute("INSERT INTO t VALUES (1)", &[]).unwrap();
        }
        let mut tx = s.transaction().unwrap();
        let inserted = tx
            .execute("INSERT INTO t VALUES ($1), ($2)", &[&2, &3])
            .unwrap();
        assert_eq!(inserted, 2);
        tx.commit().unwrap();
        assert_eq!(
            numbers(&s.query("SELECT n FROM t ORDER BY n", &[]).unwrap()),
            [2, 3]
        );
    }

    #[test]
    fn a_statement_that_outlasts_the_patience_fails_and_the_session_is_given_up() {
        let server = PostgresServer::start();
        let mut s = session(&server, 0.5);
        let started = std::time::Instant::now();
        let err = s.batch_execute("SELECT pg_sleep(30)").unwrap_err();
        assert!(
            matches!(err, DbError::NoAnswer(waited) if waited == Duration::from_millis(500)),
            "{err}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{:?}",
            started.elapsed()
        );
        assert!(s.is_closed(), "what the server sends next is unknown");
        assert!(err.as_db_error().is_none());
    }

    #[test]
    fn notifications_wake_a_waiting_session_all_at_once_and_an_ended_one_is_an_error() {
        let server = PostgresServer::start();
        let mut listening = session(&server, 10.0);
        let mut other = session(&server, 10.0);
        listening.batch_execute("LISTEN ch").unwrap();
        let quiet = Duration::from_millis(100);
        assert!(
            !listening.wait_for_notification(quiet).unwrap(),
            "nothing sent"
        );
        other
            .batch_execute("NOTIFY ch, 'a'; NOTIFY ch, 'b'")
            .unwrap();
        assert!(listening
            .wait_for_notification(Duration::from_secs(10))
            .unwrap());
        assert!(
            !listening.wait_for_notification(quiet).unwrap(),
            "both taken at once"
        );

        let pid: i32 = listening
            .query_one("SELECT pg_backend_pid()", &[])
            .unwrap()
            .get(0);
        other
            .query_one("SELECT pg_terminate_backend($1)", &[&pid])
            .unwrap();
        let ended = listening.wait_for_notification(Duration::from_secs(10));
        assert!(ended.is_err(), "{ended:?}");
        assert!(listening.is_closed());
        assert!(!listening.answers_within(Duration::from_secs(10)));
    }
}
