//! The offline tools behind the `pika-relay` subcommands that need no running relay:
//! [`inspect`] prints binlog files, manifests and dump `info` files; [`seed_manifest`] does what
//! Pika's `manifest_generator` does, for a chosen new-Pika version; [`demo`] runs a whole
//! migration between simulated peers; [`run`] is the relay itself; [`sim`] runs one double as a
//! standalone server (container topologies).

pub mod cutover;
pub mod demo;
pub mod dump_tools;
pub mod inspect;
pub mod run;
pub mod seed_manifest;
pub mod sim;
pub mod verify;
