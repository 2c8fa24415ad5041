//! Crash tests (real binary).
