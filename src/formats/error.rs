use thiserror::Error;

/// Why a byte sequence could not be decoded. Every variant says what was expected and what was
/// found, so that a log line built from it tells the operator which peer or file is broken and how.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum FormatError {
    /// The input ended before a complete value; `need` more bytes were expected.
    #[error("truncated {what}: need {need} more bytes")]
    Truncated {
        /// The structure being decoded.
        what: &'static str,
        /// How many more bytes were needed at least.
        need: usize,
    },
    /// A length field announces more than the allowed maximum.
    #[error("{what} announces {len} bytes, over the {max}-byte limit")]
    TooLarge {
        /// The structure being decoded.
        what: &'static str,
        /// Announced length.
        len: u64,
        /// The limit.
        max: u64,
    },
    /// A field holds a value the format does not allow.
    #[error("bad {what}: {detail}")]
    Invalid {
        /// The structure being decoded.
        what: &'static str,
        /// What was wrong.
        detail: String,
    },
}

impl FormatError {
    /// Shorthand for [`FormatError::Invalid`].
    pub fn invalid(what: &'static str, detail: impl Into<String>) -> Self {
        FormatError::Invalid {
            what,
            detail: detail.into(),
        }
    }
}
