//! pika-relay: a replication proxy between old Pika masters (2.3.x / 3.0.x) and new Pika slaves
//! (3.1–3.4).

pub mod rsync;
