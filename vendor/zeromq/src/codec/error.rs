use thiserror::Error;

/// Represents an error when encoding/decoding raw byte buffers and frames
#[non_exhaustive]
#[derive(Error, Debug)]
pub enum CodecError {
    #[error("{0}")]
    Command(&'static str),
    #[error("{0}")]
    Greeting(&'static str),
    #[error("{0}")]
    Mechanism(&'static str),
    #[error("{0}")]
    Decode(&'static str),
    /// A peer announced a frame that would take its message past
    /// [`SocketOptions::max_message_size`](crate::SocketOptions::max_message_size);
    /// `size` counts the frames already received plus the announced one.
    #[error("message of {size} bytes exceeds the maximum message size of {limit} bytes")]
    MessageTooLarge { size: usize, limit: usize },
    /// A peer sent more frames in one message than
    /// [`SocketOptions::max_message_size`](crate::SocketOptions::max_message_size) allows.
    #[error("message of more than {limit} frames exceeds the maximum message size")]
    TooManyFrames { limit: usize },
    /// A peer announced a ZMTP command frame larger than any command needs.
    #[error("command frame of {size} bytes exceeds the limit of {limit} bytes")]
    CommandTooLarge { size: usize, limit: usize },
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Other(&'static str),
}

pub(crate) type CodecResult<T> = Result<T, CodecError>;
