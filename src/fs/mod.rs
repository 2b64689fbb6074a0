//! Files and directories: writing files other containers read atomically, with the mode and
//! owner asked for; listing directories; the mount table.

pub mod atomic;
pub mod dirents;
pub mod mountinfo;
