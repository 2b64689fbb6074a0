//! What an entry should look like, what differs from it, and the system calls that change it
//! without following a symlink.

use std::ffi::CStr;
use std::os::fd::BorrowedFd;

use nix::errno::Errno;
use nix::fcntl::AtFlags;
use nix::sys::stat::{FchmodatFlags, FileStat, Mode, SFlag, fchmod, fchmodat};
use nix::unistd::{Gid, Uid, fchown, fchownat};

use crate::fs::atomic::Owner;

/// The owner every entry gets, and the modes, when asked for, of directories and of the rest.
#[derive(Debug, Clone, Copy)]
pub struct Want {
    pub owner: Owner,
    pub file_mode: Option<u32>,
    pub dir_mode: Option<u32>,
}

/// What to do to one entry: change its owner, set its mode, or both.
#[derive(Debug, Clone, Copy)]
pub struct Change {
    owner: bool,
    mode: Option<u32>,
}

/// Where an entry is: a name in an open directory (never followed if it is a symlink), or an
/// open directory itself.
#[derive(Clone, Copy)]
pub enum Target<'a> {
    At(BorrowedFd<'a>, &'a CStr),
    Fd(BorrowedFd<'a>),
}

/// A system call that failed, with what it was for.
#[derive(Debug)]
pub struct Failure {
    pub what: &'static str,
    pub errno: Errno,
}

const PERMISSION_BITS: u32 = 0o7777;
const SETID_BITS: u32 = 0o6000;

impl Want {
    /// What differs between `stat` and what is wanted; `None` when the entry is already right.
    /// Only the bits asked for are compared: without a mode flag, modes are left alone.
    pub fn change(&self, stat: &FileStat) -> Option<Change> {
        let kind = SFlag::from_bits_truncate(stat.st_mode) & SFlag::S_IFMT;
        let owner =
            stat.st_uid != self.owner.uid || self.owner.gid.is_some_and(|gid| gid != stat.st_gid);
        let wanted = match kind {
            // A symlink's own mode means nothing on Linux and cannot be set.
            SFlag::S_IFLNK => None,
            SFlag::S_IFDIR => self.dir_mode,
            _ => self.file_mode,
        };
        let mode = wanted.filter(|mode| {
            // chown clears setuid and setgid on anything but a directory, so a mode that holds
            // them must be set again after a change of owner even if it is right now.
            stat.st_mode & PERMISSION_BITS != *mode
                || (owner && kind != SFlag::S_IFDIR && mode & SETID_BITS != 0)
        });
        (owner || mode.is_some()).then_some(Change { owner, mode })
    }

    fn ids(&self) -> (Option<Uid>, Option<Gid>) {
        (
            Some(Uid::from_raw(self.owner.uid)),
            self.owner.gid.map(Gid::from_raw),
        )
    }
}

impl Change {
    /// All that is changed on an entry that was not examined: its owner. A mode is only set
    /// where it is known to differ.
    pub const OWNER: Change = Change {
        owner: true,
        mode: None,
    };

    /// Changes the owner first, then the mode (a change of owner may clear setuid and setgid).
    pub fn apply(self, target: Target<'_>, want: &Want) -> Result<(), Failure> {
        let (uid, gid) = want.ids();
        if self.owner {
            let changed = match target {
                Target::At(dir, name) => {
                    fchownat(dir, name, uid, gid, AtFlags::AT_SYMLINK_NOFOLLOW)
                }
                Target::Fd(fd) => fchown(fd, uid, gid),
            };
            changed.map_err(|errno| Failure {
                what: "cannot change owner",
                errno,
            })?;
        }
        if let Some(mode) = self.mode {
            let mode = Mode::from_bits_truncate(mode);
            let changed = match target {
                // If the name became a symlink since it was examined, this fails (EOPNOTSUPP)
                // instead of changing the symlink's target.
                Target::At(dir, name) => fchmodat(dir, name, mode, FchmodatFlags::NoFollowSymlink),
                Target::Fd(fd) => fchmod(fd, mode),
            };
            changed.map_err(|errno| Failure {
                what: "cannot change mode",
                errno,
            })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stat(kind: u32, mode: u32, uid: u32, gid: u32) -> FileStat {
        // A real stat to start from: FileStat has private padding fields.
        let mut stat = nix::sys::stat::stat("/").unwrap();
        stat.st_mode = kind | mode;
        stat.st_uid = uid;
        stat.st_gid = gid;
        stat
    }

    const FILE: u32 = nix::libc::S_IFREG;
    const DIR: u32 = nix::libc::S_IFDIR;
    const LINK: u32 = nix::libc::S_IFLNK;

    fn want(owner: &str, file_mode: Option<u32>, dir_mode: Option<u32>) -> Want {
        Want {
            owner: Owner::parse(owner).unwrap(),
            file_mode,
            dir_mode,
        }
    }

    #[test]
    fn what_is_already_right_needs_no_change() {
        let want = want("1000:1000", Some(0o640), Some(0o750));
        assert!(want.change(&stat(FILE, 0o640, 1000, 1000)).is_none());
        assert!(want.change(&stat(DIR, 0o750, 1000, 1000)).is_none());
        // A symlink's mode is never compared.
        assert!(want.change(&stat(LINK, 0o777, 1000, 1000)).is_none());
    }

    #[test]
    fn owner_and_modes_are_compared_separately_for_files_and_directories() {
        let want = want("1000:1000", Some(0o640), Some(0o750));
        let change = want.change(&stat(FILE, 0o640, 0, 1000)).unwrap();
        assert!(change.owner && change.mode.is_none());
        let change = want.change(&stat(FILE, 0o750, 1000, 1000)).unwrap();
        assert!(!change.owner && change.mode == Some(0o640));
        let change = want.change(&stat(DIR, 0o640, 1000, 1000)).unwrap();
        assert_eq!(change.mode, Some(0o750));
        let change = want.change(&stat(LINK, 0o777, 0, 0)).unwrap();
        assert!(change.owner && change.mode.is_none());
    }

    #[test]
    fn without_a_group_or_a_mode_those_are_left_alone() {
        let want = want("1000", None, None);
        assert!(want.change(&stat(FILE, 0o600, 1000, 0)).is_none());
        assert!(want.change(&stat(DIR, 0o700, 1000, 42)).is_none());
        assert!(want.change(&stat(FILE, 0o600, 0, 0)).is_some());
    }

    #[test]
    fn a_setuid_mode_is_set_again_after_a_change_of_owner() {
        let want = want("1000:1000", Some(0o4755), Some(0o2775));
        let change = want.change(&stat(FILE, 0o4755, 0, 0)).unwrap();
        assert_eq!(change.mode, Some(0o4755));
        // Directories keep setgid through chown.
        let change = want.change(&stat(DIR, 0o2775, 0, 0)).unwrap();
        assert_eq!(change.mode, None);
    }
}
