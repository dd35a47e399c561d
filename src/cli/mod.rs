//! The offline tools behind the `pika-relay` subcommands that need no running relay:
//! [`inspect`] prints binlog files, manifests and dump `info` files; [`seed_manifest`] does what
//! Pika's `manifest_generator` does, for a chosen new-Pika version.

pub mod inspect;
pub mod seed_manifest;
