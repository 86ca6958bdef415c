//! [`Conversation`]: which exchange of messages a message belongs to.

/// A conversation, from our side: the id of its first message and whether
/// we started it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Conversation {
    /// Id of the conversation's first message.
    pub first: i64,
    /// Whether we started it.
    pub owner: bool,
}
