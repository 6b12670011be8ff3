//! CLI tests (placeholder filled in below).
