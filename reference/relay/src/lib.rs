//! The Tether reference relay (stub).
