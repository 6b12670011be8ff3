//! SQL logic tests (placeholder filled in below).
