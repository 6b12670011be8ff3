//! The backend kit: pieces shared by the backends that keep a collection as Arrow data in
//! this process (the memory backend and the file backend's record store).
//!
//! * [`chunks`]: a collection as immutable Arrow chunks with keep-masks, a row-form tail and
//!   an id index ([`chunks::State`]): the record API and the SQL writes (insert, delete and
//!   update by filter or by record id) on it;
//! * [`scan`]: scans of a snapshot of those chunks (filter, projection, partitions, sort,
//!   offset, limit);
//! * [`collection`]: the one [`crate::Database`] implementation over such a state
//!   ([`collection::ChunkCollection`]), generic over how the state is reached (an in-process
//!   lock for memory, a lock file and the data file for the file backend);
//! * [`atomic`]: replacing a file so that readers and crashes see the old or the new content,
//!   never a mix;
//! * [`columns`]: the JSON description of a collection's columns (memory files, file
//!   sidecars).

pub(crate) mod atomic;
pub(crate) mod chunks;
pub mod collection;
pub(crate) mod columns;
pub(crate) mod records;
pub(crate) mod scan;
