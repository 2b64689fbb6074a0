//! Writing files that other containers read: atomically, with the mode and owner asked for.

pub mod atomic;
