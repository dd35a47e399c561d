//! Embedded rsync: a daemon **receiver** that old Pika masters push full-sync dumps into, and
//! a client **sender** that pushes a dump into a new Pika slave's rsync daemon. No rsync
//! binary is needed at run time.
//!
//! Layout (pure codecs first, then the two roles):
//! - [`error`]: `ProtoError` and rsync exit codes.
//! - [`wire`]: ints, varint/varlong, vstring. [`ndx`]: file-index encoding.
//! - [`mux`]: multiplexed frames and the demultiplexing reader; [`outbox`]: the writer task.
//! - [`handshake`]: greetings, version negotiation, module line, MD5 challenge auth.
//! - [`args`]: the `--server` argument list.
//! - [`flist`]: file-list entries; [`sort`]: rsync's file-name order.
//! - [`token`]: literal data tokens; [`checksum`]: the whole-file checksum and its negotiation.
//! - [`receiver`]: the tokio listener (`serve`) and its per-connection session.
//! - [`sender`]: `push_path` / `push_dump` into a stock rsync daemon.
//!
//! We speak protocol 31 (and 30) without incremental recursion and with MD5 daemon auth.
//! The receiver sets one compat flag, `CF_VARINT_FLIST_FLAGS`, for protocol-31 clients that
//! offer it (`v`), and then negotiates the whole-file checksum (xxh128 with stock 3.2+
//! clients); everyone else gets compat flags 0 and MD5. See `shared/spec/rsync-receiver.md`.

pub mod args;
pub mod checksum;
pub mod error;
pub mod flist;
pub mod handshake;
pub mod mux;
pub mod ndx;
pub mod outbox;
pub mod sort;
pub mod token;
pub mod wire;

pub use error::{ProtoError, Result};
pub mod receiver;
pub mod sender;
