//! Faithful test doubles, driven by the specs and checked against the recorded vectors.
//!
//! - [`old_master`]: an old Pika master (3.0.16 by default, 2.3.x raw-RESP flavour on request).

pub mod old_master;
