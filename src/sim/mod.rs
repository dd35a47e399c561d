//! Faithful doubles of the peers the relay talks to, built from the specs and checked against the
//! recorded vectors: they drive `demo` and the integration tests.
//!
//! - [`keyspace`]: a model of a Pika keyspace that both doubles apply commands to.
//! - [`new_slave`]: a new Pika (3.1–3.4) slave.

pub mod keyspace;
pub mod new_slave;
