//! The Tether reference controller (stub).
