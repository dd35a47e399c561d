//! Error types shared by the rsync codecs, the receiver and the sender.

use std::io;

/// An error from a pure codec or from the protocol state machine.
///
/// Every decoder in this module returns this type; none of them panics on any input.
#[derive(Debug, thiserror::Error)]
pub enum ProtoError {
    /// The buffer ends before the value does; feed more bytes and retry.
    #[error("incomplete input")]
    Incomplete,
    /// The peer sent bytes that violate the protocol.
    #[error("protocol violation: {0}")]
    Invalid(String),
    /// The peer asked for something this implementation deliberately does not do.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// A path in the stream would leave the module root, or names a forbidden file type.
    #[error("unsafe entry: {0}")]
    Unsafe(String),
    /// A configured cap (files, bytes, lengths) was exceeded.
    #[error("limit exceeded: {0}")]
    Limit(String),
    /// Authentication was refused.
    #[error("auth failed: {0}")]
    Auth(String),
    /// The peer reported a fatal error (its text, and its exit code if it sent one).
    #[error("peer error: {0}")]
    Peer(String),
    /// The connection closed before the protocol was finished.
    #[error("connection closed {0}")]
    Eof(&'static str),
    /// A timeout elapsed.
    #[error("timeout {0}")]
    Timeout(&'static str),
    /// A local I/O error (socket or file system).
    #[error("I/O error: {0}")]
    Io(#[from] io::Error),
}

impl ProtoError {
    /// Shorthand for [`ProtoError::Invalid`].
    pub fn invalid(msg: impl Into<String>) -> Self {
        ProtoError::Invalid(msg.into())
    }

    /// The rsync exit code a client should see for this error (see [`exit`]).
    pub fn exit_code(&self) -> i32 {
        match self {
            ProtoError::Incomplete | ProtoError::Invalid(_) => exit::PROTOCOL,
            ProtoError::Unsupported(_) | ProtoError::Unsafe(_) => exit::UNSUPPORTED,
            ProtoError::Limit(_) => exit::FILEIO,
            ProtoError::Auth(_) => exit::STARTCLIENT,
            ProtoError::Peer(_) => exit::PARTIAL,
            ProtoError::Eof(_) | ProtoError::Timeout(_) => exit::STREAMIO,
            ProtoError::Io(_) => exit::FILEIO,
        }
    }
}

/// Convenience alias.
pub type Result<T, E = ProtoError> = std::result::Result<T, E>;

/// rsync exit codes (the subset this module produces or reports).
pub mod exit {
    /// Success.
    pub const OK: i32 = 0;
    /// Syntax or usage error (e.g. a pull from a write-only module).
    pub const SYNTAX: i32 = 1;
    /// Protocol incompatibility.
    pub const PROTOCOL: i32 = 2;
    /// Errors selecting input/output files or dirs.
    pub const FILESELECT: i32 = 3;
    /// Requested action not supported (options, unsafe paths).
    pub const UNSUPPORTED: i32 = 4;
    /// Error starting the client-server protocol.
    pub const STARTCLIENT: i32 = 5;
    /// Error in file I/O.
    pub const FILEIO: i32 = 11;
    /// Error in the rsync protocol data stream.
    pub const STREAMIO: i32 = 12;
    /// Partial transfer.
    pub const PARTIAL: i32 = 23;
}
