//! Unpacking an archive that nobody vetted (tar, tar.gz, zip) into a directory, safely: into a
//! temporary directory first, then into place with one rename, and nothing at all when an entry
//! is refused (an absolute path, `..`, a link leading outside, a device file or FIFO).

mod archive;
mod tree;

use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use anyhow::Context;
use nix::errno::Errno;

use crate::fs::atomic::{self, Owner};

pub use tree::Summary;

/// Archive formats `--extract` takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Tar,
    TarGz,
    Zip,
}

impl Format {
    /// `tar`, `tar.gz` (or `tgz`), `zip`.
    pub fn parse(text: &str) -> Option<Format> {
        match text {
            "tar" => Some(Format::Tar),
            "tar.gz" | "tgz" => Some(Format::TarGz),
            "zip" => Some(Format::Zip),
            _ => None,
        }
    }

    /// The format a file name's extension says.
    pub fn from_name(name: &str) -> Option<Format> {
        let name = name.to_ascii_lowercase();
        if name.ends_with(".tar.gz") || name.ends_with(".tgz") {
            Some(Format::TarGz)
        } else if name.ends_with(".tar") {
            Some(Format::Tar)
        } else if name.ends_with(".zip") {
            Some(Format::Zip)
        } else {
            None
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Format::Tar => "tar",
            Format::TarGz => "tar.gz",
            Format::Zip => "zip",
        }
    }
}

/// Where the work for DEST happens: beside it, or, when DEST is a mount point (a volume mounted
/// there), inside it, since a rename cannot cross filesystems nor replace a mount point.
pub fn work_dir(dest: &Path) -> PathBuf {
    if is_mount_point(dest) {
        dest.to_path_buf()
    } else {
        atomic::parent_dir(dest).to_path_buf()
    }
}

/// Unpacks `archive` (a complete, verified file) into `dest`. `stop` is raised when the run is
/// being stopped; the unpacking then ends within one read and leaves nothing behind.
pub fn unpack(
    archive: File,
    format: Format,
    dest: &Path,
    owner: Option<Owner>,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<Summary> {
    let mount_point = is_mount_point(dest);
    match std::fs::symlink_metadata(dest) {
        Ok(meta) if !meta.is_dir() => {
            return Err(tree::bad_dest(dest, "it exists and is not a directory"));
        }
        Ok(_) | Err(_) => {}
    }
    let temp = if mount_point {
        dest.join(format!(".initbox-unpack-{:016x}", fastrand::u64(..)))
    } else {
        atomic::temp_path(dest)?
    };
    std::fs::create_dir(&temp).with_context(|| format!("creating {}", temp.display()))?;
    let result = archive::unpack(archive, format, &temp, owner, stop)
        .and_then(|summary| place(&temp, dest, mount_point).map(|()| summary));
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&temp);
    }
    result
}

/// Moves the unpacked tree into place. A DEST that does not exist is one rename; an existing
/// directory is swapped with the new one in one step (RENAME_EXCHANGE), so readers see the old
/// tree or the new one, and the old one is then removed. Into a mount point, each top-level
/// entry is moved that way, one after another.
fn place(temp: &Path, dest: &Path, mount_point: bool) -> anyhow::Result<()> {
    if !mount_point {
        return swap_in(temp, dest);
    }
    for entry in std::fs::read_dir(temp).with_context(|| format!("reading {}", temp.display()))? {
        let entry = entry?;
        swap_in(&entry.path(), &dest.join(entry.file_name()))?;
    }
    std::fs::remove_dir(temp).with_context(|| format!("removing {}", temp.display()))
}

fn swap_in(from: &Path, to: &Path) -> anyhow::Result<()> {
    match rename(from, to, nix::libc::RENAME_NOREPLACE) {
        Ok(()) => {}
        Err(Errno::EEXIST) => {
            rename(from, to, nix::libc::RENAME_EXCHANGE)
                .with_context(|| format!("replacing {}", to.display()))?;
            // `from` now holds what was at `to` before.
            let old = std::fs::symlink_metadata(from)?;
            if old.is_dir() {
                std::fs::remove_dir_all(from)
            } else {
                std::fs::remove_file(from)
            }
            .with_context(|| format!("removing the previous {}", to.display()))?;
        }
        Err(error) => {
            return Err(anyhow::anyhow!("moving into {}: {error}", to.display()));
        }
    }
    if let Ok(dir) = File::open(atomic::parent_dir(to)) {
        let _ = dir.sync_all();
    }
    Ok(())
}

/// renameat2(2) with `flags`. Called through syscall(2): nix offers it for glibc only, and
/// musl's wrapper is recent.
fn rename(from: &Path, to: &Path, flags: std::ffi::c_uint) -> Result<(), Errno> {
    use std::os::unix::ffi::OsStrExt;
    let c_path = |path: &Path| {
        std::ffi::CString::new(path.as_os_str().as_bytes()).map_err(|_| Errno::EINVAL)
    };
    let (from, to) = (c_path(from)?, c_path(to)?);
    // SAFETY: both paths are NUL-terminated strings that outlive the call.
    let result = unsafe {
        nix::libc::syscall(
            nix::libc::SYS_renameat2,
            nix::libc::AT_FDCWD,
            from.as_ptr(),
            nix::libc::AT_FDCWD,
            to.as_ptr(),
            flags,
        )
    };
    Errno::result(result).map(drop)
}

/// A directory on another device than its parent, or listed as a mount point (a bind mount of
/// the same filesystem).
fn is_mount_point(path: &Path) -> bool {
    let (Ok(own), Ok(parent)) = (
        std::fs::symlink_metadata(path),
        std::fs::metadata(path.join("..")),
    ) else {
        return false;
    };
    if !own.is_dir() {
        return false;
    }
    if own.dev() != parent.dev() {
        return true;
    }
    let Ok(canonical) = std::fs::canonicalize(path) else {
        return false;
    };
    let Ok(mounts) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    // The fifth field is the mount point, with spaces and the like written as octal escapes.
    let wanted = canonical.to_string_lossy().replace(' ', "\\040");
    mounts
        .lines()
        .any(|line| line.split(' ').nth(4) == Some(wanted.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_by_flag_and_by_name() {
        assert_eq!(Format::parse("tar.gz"), Some(Format::TarGz));
        assert_eq!(Format::parse("rar"), None);
        assert_eq!(Format::from_name("model-v2.TGZ"), Some(Format::TarGz));
        assert_eq!(Format::from_name("site.zip"), Some(Format::Zip));
        assert_eq!(Format::from_name("data.tar"), Some(Format::Tar));
        assert_eq!(Format::from_name("data.bin"), None);
    }

    #[test]
    fn an_existing_directory_is_replaced_whole() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("site");
        std::fs::create_dir(&dest).unwrap();
        std::fs::write(dest.join("old.html"), "old").unwrap();
        let new = dir.path().join("new");
        std::fs::create_dir(&new).unwrap();
        std::fs::write(new.join("index.html"), "new").unwrap();
        place(&new, &dest, false).unwrap();
        assert!(!new.exists());
        assert!(!dest.join("old.html").exists());
        assert_eq!(
            std::fs::read_to_string(dest.join("index.html")).unwrap(),
            "new"
        );
    }
}
