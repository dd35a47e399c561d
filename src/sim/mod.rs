//! Faithful doubles of the peers the relay talks to, built from the specs: they drive `demo` and
//! the integration tests. `tests/sim_vectors.rs` compares their bytes with the recorded real
//! servers (times, ports and the rsync client's capability string masked): the old-master
//! double's client replies to workload w1, trysync replies (`:1`, `wait`), heartbeat replies,
//! binlog push and rsync command lines against 3.0.16; the new-slave double's MetaSync, TrySync,
//! first BinlogSync and ack against 3.2.9. The 2.3.x flavour of the old master and the 3.3+ slave
//! rest on the specs alone.
//!
//! - [`old_master`]: an old Pika master (3.0.16 by default, 2.3.x raw-RESP flavour on request).
//! - [`new_slave`]: a new Pika (3.1–3.4) slave.
//! - [`pika_keyspace`]: an old Pika's per-type keyspaces as `verify` reads them.
//! - [`keyspace`]: the data model both apply commands to; [`dump`]: the dump format they share;
//!   [`workload`]: command sets of every data type; [`probe`]: how a driver reads a standalone
//!   double's data over the network.

pub mod dump;
pub mod keyspace;
pub mod new_slave;
pub mod old_master;
pub mod pika_keyspace;
pub mod probe;
pub mod workload;
