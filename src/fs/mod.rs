//! Writing files that other containers read: atomically, with the mode and owner asked for; and
//! unpacking archives into a directory without letting an entry escape it.

pub mod atomic;
pub mod extract;
