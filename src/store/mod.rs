//! The backend kit: pieces shared by the backends that keep a collection as Arrow data in
//! this process (the memory backend and the file backend's record store).
//!
//! * [`atomic`]: replacing a file so that readers and crashes see the old or the new content,
//!   never a mix.

pub(crate) mod atomic;
