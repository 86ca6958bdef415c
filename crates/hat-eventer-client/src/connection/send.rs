//! [`Sender`]: the send path, large bodies written in slices with progress
//! noted after each.

use super::activity::{Activity, SMALL_FRAME};
use super::config::ChatterError;
use super::conversation::Conversation;
use super::read::{lock, Streamed};
use crate::chatter::{Data, FrameHeader, Msg};
use crate::sbs::{Body, Parts};
use std::sync::Arc;
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::Mutex;

/// Frame bodies are written in slices of this size, progress noted after
/// each.
const WRITE_SLICE: usize = 1 << 20;

pub(super) struct WriteSide {
    pub(super) half: OwnedWriteHalf,
    pub(super) next_id: i64,
}

/// Sends messages; cheap to clone.
#[derive(Clone)]
pub struct Sender {
    pub(super) write: Arc<Mutex<WriteSide>>,
    pub(super) activity: Activity,
    pub(super) streamed: Streamed,
}

impl Sender {
    /// Sends `data`: in `conversation`, or as the first message of a new one.
    /// Returns the conversation.
    pub async fn send(
        &self,
        data: Data,
        conversation: Option<Conversation>,
        last: bool,
    ) -> Result<Conversation, ChatterError> {
        let pieces: Vec<&[u8]> = data.data.chunks().collect();
        self.send_pieces(&data.data_type, &pieces, conversation, last, false)
            .await
    }

    /// Sends a message of type `data_type` whose data is `parts`, writing
    /// the borrowed parts as they lie. Returns the conversation.
    pub async fn send_parts(
        &self,
        data_type: &str,
        parts: &Parts<'_>,
        conversation: Option<Conversation>,
        last: bool,
    ) -> Result<Conversation, ChatterError> {
        let pieces: Vec<&[u8]> = parts.pieces().collect();
        self.send_pieces(data_type, &pieces, conversation, last, false)
            .await
    }

    /// [`Sender::send_parts`] as the first message of a new conversation,
    /// whose answer, if large, is handed on as soon as its start has
    /// arrived, the rest following as a [`Rest`](super::Rest): its reader never holds
    /// the whole answer.
    pub async fn send_parts_streamed(
        &self,
        data_type: &str,
        parts: &Parts<'_>,
    ) -> Result<Conversation, ChatterError> {
        let pieces: Vec<&[u8]> = parts.pieces().collect();
        self.send_pieces(data_type, &pieces, None, false, true)
            .await
    }

    /// Stops streaming the answer of `conversation`, if it has not begun
    /// (its waiter gave up).
    pub fn forget_streamed(&self, conversation: Conversation) {
        lock(&self.streamed).remove(&conversation.first);
    }

    async fn send_pieces(
        &self,
        data_type: &str,
        pieces: &[&[u8]],
        conversation: Option<Conversation>,
        last: bool,
        stream_answer: bool,
    ) -> Result<Conversation, ChatterError> {
        let mut write = self.write.lock().await;
        write.next_id += 1;
        let id = write.next_id;
        let conversation = conversation.unwrap_or(Conversation {
            first: id,
            owner: true,
        });
        if stream_answer {
            // Before a byte is sent: the answer cannot come sooner.
            lock(&self.streamed).insert(conversation.first);
        }
        let msg = Msg {
            id,
            first: conversation.first,
            owner: conversation.owner,
            token: true,
            last,
            data: Data {
                data_type: data_type.to_string(),
                data: Body::new(),
            },
        };
        let data_len = pieces.iter().map(|piece| piece.len()).sum();
        let head = msg.header(data_len);
        let mut frame = FrameHeader::for_len(head.len() + data_len);
        frame.extend_from_slice(&head);
        write.half.write_all(&frame).await?;
        let large = data_len > SMALL_FRAME;
        for piece in pieces {
            for slice in piece.chunks(WRITE_SLICE) {
                write.half.write_all(slice).await?;
                if large {
                    self.activity.mark();
                }
            }
        }
        write.half.flush().await?;
        Ok(conversation)
    }

    /// The connection's progress, shared by both directions.
    pub fn activity(&self) -> &Activity {
        &self.activity
    }

    /// Closes our side of the socket.
    pub async fn close(&self) {
        let _ = self.write.lock().await.half.shutdown().await;
    }
}
