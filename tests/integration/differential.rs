//! Differential pushdown test (placeholder filled in below).
