//! Calls: the operations on them (one function per family, under the store lock) and the
//! capabilities a user has on a call in each state. The requests themselves are in
//! `core::operation`, shared with the device side.

pub(crate) mod capabilities;
pub(crate) mod ops;
