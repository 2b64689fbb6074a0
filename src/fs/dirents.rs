//! Reading a directory with getdents64 into one reusable buffer: each entry comes with its inode
//! number and its type (d_type), so a symlink or a directory is told from a file without
//! examining it, and listing a directory allocates nothing.

use std::ffi::CStr;
use std::os::fd::{AsRawFd, BorrowedFd};

use nix::errno::Errno;
use nix::libc;

/// What d_type says an entry is. `Unknown` is allowed by the kernel for any entry (some
/// filesystems never fill the type in): such an entry has to be examined.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Dir,
    Symlink,
    File,
    /// A device, a FIFO or a socket.
    Special,
    Unknown,
}

impl Kind {
    fn from_d_type(d_type: u8) -> Kind {
        match d_type {
            libc::DT_DIR => Kind::Dir,
            libc::DT_LNK => Kind::Symlink,
            libc::DT_REG => Kind::File,
            libc::DT_FIFO | libc::DT_CHR | libc::DT_BLK | libc::DT_SOCK => Kind::Special,
            _ => Kind::Unknown,
        }
    }
}

/// One entry, borrowed from the buffer until the next read.
#[derive(Debug, Clone, Copy)]
pub struct Entry<'a> {
    pub ino: u64,
    pub kind: Kind,
    pub name: &'a CStr,
}

/// A buffer to list directories with, one per thread, reused for every directory.
/// (`Lister::default()` is an empty one, which allocates nothing and reads nothing.)
#[derive(Default)]
pub struct Lister {
    buffer: Vec<u8>,
}

/// Bytes read per system call: about 2,700 entries with short names, so a directory of a
/// million entries takes a few hundred calls (libc's readdir reads 2 KiB at a time with musl,
/// 32 KiB with glibc). An entry's place in the buffer fits in 16 bits.
const BUFFER: usize = 64 * 1024;

impl Lister {
    pub fn new() -> Self {
        Lister {
            buffer: vec![0; BUFFER],
        }
    }

    /// The next entries of `dir`, or `None` once all were read. The directory's file offset
    /// moves on, so only one thread may list a given descriptor.
    pub fn next(&mut self, dir: BorrowedFd<'_>) -> Result<Option<Entries<'_>>, Errno> {
        let filled = loop {
            // SAFETY: the kernel writes at most `len` bytes into the buffer, which is ours and
            // that long, and `dir` stays open while this borrow of it lasts.
            let read = unsafe {
                libc::syscall(
                    libc::SYS_getdents64,
                    dir.as_raw_fd(),
                    self.buffer.as_mut_ptr(),
                    self.buffer.len(),
                )
            };
            match read {
                0 => return Ok(None),
                1.. => break read as usize,
                _ => match Errno::last() {
                    Errno::EINTR => continue,
                    errno => return Err(errno),
                },
            }
        };
        Ok(Some(Entries {
            bytes: &self.buffer[..filled],
        }))
    }
}

/// The entries of one read.
#[derive(Clone, Copy)]
pub struct Entries<'a> {
    bytes: &'a [u8],
}

/// struct linux_dirent64: d_ino (8 bytes), d_off (8), d_reclen (2), d_type (1), d_name.
const NAME_AT: usize = 19;

impl<'a> Entries<'a> {
    /// Every record's inode number and place, in the order the kernel gave them, without
    /// reading names (so `.` and `..` are among them): to sort by, then to find each entry
    /// again with [`Entries::at`].
    pub fn places(self) -> impl Iterator<Item = (u64, u16)> + 'a {
        let mut at = 0;
        std::iter::from_fn(move || {
            let header = self.bytes.get(at..at + NAME_AT)?;
            let ino = u64::from_ne_bytes(header[..8].try_into().ok()?);
            let place = at as u16;
            at += usize::from(u16::from_ne_bytes([header[16], header[17]])).max(NAME_AT);
            Some((ino, place))
        })
    }

    /// The entry at a place [`Entries::places`] gave; `None` for `.` and `..`.
    pub fn at(self, place: u16) -> Option<Entry<'a>> {
        let at = usize::from(place);
        let header = self.bytes.get(at..at + NAME_AT)?;
        let length = usize::from(u16::from_ne_bytes([header[16], header[17]]));
        let name = CStr::from_bytes_until_nul(self.bytes.get(at + NAME_AT..at + length)?).ok()?;
        if name == c"." || name == c".." {
            return None;
        }
        Some(Entry {
            ino: u64::from_ne_bytes(header[..8].try_into().ok()?),
            kind: Kind::from_d_type(header[18]),
            name,
        })
    }

    /// The entries (without `.` and `..`), in the order the kernel gave them.
    pub fn iter(self) -> impl Iterator<Item = Entry<'a>> + 'a {
        self.places().filter_map(move |(_, place)| self.at(place))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::os::fd::AsFd;
    use std::os::unix::fs::{MetadataExt, symlink};

    use super::*;

    #[test]
    fn every_entry_is_listed_once_with_its_inode_and_type() {
        let temp = tempfile::tempdir().unwrap();
        let root = temp.path();
        std::fs::create_dir(root.join("dir")).unwrap();
        symlink("dir", root.join("link")).unwrap();
        // Enough long names to take several reads.
        let long = "n".repeat(200);
        for index in 0..1000 {
            std::fs::write(root.join(format!("{long}{index}")), b"").unwrap();
        }
        let dir = std::fs::File::open(root).unwrap();
        let mut lister = Lister::new();
        let mut found = BTreeMap::new();
        let (mut reads, mut places) = (0, 0);
        while let Some(entries) = lister.next(dir.as_fd()).unwrap() {
            reads += 1;
            places += entries.places().count();
            for entry in entries.iter() {
                let name = entry.name.to_str().unwrap().to_owned();
                assert!(found.insert(name, (entry.ino, entry.kind)).is_none());
            }
        }
        assert!(reads > 1, "one read of {BUFFER} bytes held every name");
        assert_eq!(found.len(), 1002);
        // `.` and `..` have places too.
        assert_eq!(places, 1004);
        assert_eq!(found["dir"].1, Kind::Dir);
        assert_eq!(found["link"].1, Kind::Symlink);
        let file = format!("{long}7");
        assert_eq!(found[&file].1, Kind::File);
        let ino = std::fs::metadata(root.join(&file)).unwrap().ino();
        assert_eq!(found[&file].0, ino);
    }
}
