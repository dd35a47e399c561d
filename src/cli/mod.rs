//! Offline tools.
