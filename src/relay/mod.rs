//! The relay as one product: wiring of upstream → translate → journal → downstream, the
//! embedding API, and the pre-flight checks ([`preflight`]).

pub mod preflight;
