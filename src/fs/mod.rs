//! Files and directories: writing files that other containers read, atomically, with the mode
//! and owner asked for; unpacking archives into a directory without letting an entry escape it;
//! listing directories; the mount table.

pub mod atomic;
pub mod dirents;
pub mod extract;
pub mod mountinfo;
