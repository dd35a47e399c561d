//! Faithful doubles of the peers the relay talks to, built from the specs and checked against the
//! recorded vectors: they drive `demo` and the integration tests.
//!
//! - [`old_master`]: an old Pika master (3.0.16 by default, 2.3.x raw-RESP flavour on request).
//! - [`new_slave`]: a new Pika (3.1–3.4) slave.
//! - [`keyspace`]: the data model both apply commands to; [`dump`]: the dump format they share;
//!   [`workload`]: command sets of every data type; [`probe`]: how a driver reads a standalone
//!   double's data over the network.

pub mod dump;
pub mod keyspace;
pub mod new_slave;
pub mod old_master;
pub mod probe;
pub mod workload;
