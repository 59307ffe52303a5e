//! The Tether reference host (stub).
