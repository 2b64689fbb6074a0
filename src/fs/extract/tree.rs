//! The directory an archive is unpacked into, written only through file descriptors: every
//! entry's parent is opened component by component from the root with `O_NOFOLLOW`, so no entry
//! can be written through a symlink, and every name is checked before anything is created.
//! Anything that would land outside the root is refused with the entry's name.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, anyhow};
use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, openat};
use nix::sys::stat::{FchmodatFlags, Mode, SFlag, fchmodat, fstatat, mkdirat};
use nix::unistd::{UnlinkatFlags, fchownat, linkat, symlinkat, unlinkat};

use crate::fs::atomic::Owner;
use crate::runtime::exit;

/// How many symlinks one path may pass through, as Linux allows (ELOOP after 40).
const MAX_SYMLINK_HOPS: usize = 40;
/// How often a long copy looks at the stop flag.
const COPY_CHUNK: usize = 256 * 1024;

/// What was unpacked.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    pub files: u64,
    pub dirs: u64,
    pub links: u64,
    pub bytes: u64,
}

/// The error for an entry that is refused: names the entry, says why.
pub fn refused(name: &str, why: &str) -> anyhow::Error {
    anyhow!("archive entry '{}' refused: {why}", name.escape_debug())
}

/// An entry's path inside the root: relative, normal components only. `./` prefixes and
/// repeated slashes are dropped; absolute paths and `..` are refused.
pub fn entry_path(name: &str, raw: &Path) -> anyhow::Result<Vec<OsString>> {
    let mut parts = Vec::new();
    for component in raw.components() {
        match component {
            Component::Normal(part) => parts.push(part.to_os_string()),
            Component::CurDir => {}
            Component::RootDir | Component::Prefix(_) => {
                return Err(refused(name, "absolute path"));
            }
            Component::ParentDir => return Err(refused(name, "'..' in its path")),
        }
    }
    Ok(parts)
}

pub struct Tree {
    root: OwnedFd,
    owner: Option<Owner>,
    stop: std::sync::Arc<AtomicBool>,
    /// Directories and their modes from the archive, applied at the end (a read-only directory
    /// must still take its entries first).
    dir_modes: Vec<(PathBuf, u32)>,
    /// Symlinks, checked once the tree is complete (a link may point through links made later).
    symlinks: Vec<(String, PathBuf)>,
    /// The root's own mode, when the archive has a `./` entry.
    root_mode: Option<u32>,
    summary: Summary,
}

impl Tree {
    /// `root` is a new, empty directory.
    pub fn open(
        root: &Path,
        owner: Option<Owner>,
        stop: std::sync::Arc<AtomicBool>,
    ) -> anyhow::Result<Tree> {
        let root = openat(
            nix::fcntl::AT_FDCWD,
            root,
            OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | OFlag::O_RDONLY,
            Mode::empty(),
        )
        .with_context(|| format!("opening {}", root.display()))?;
        Ok(Tree {
            root,
            owner,
            stop,
            dir_modes: Vec::new(),
            symlinks: Vec::new(),
            root_mode: None,
            summary: Summary::default(),
        })
    }

    /// Fails with a signal's error once the run is being stopped.
    pub fn check_stop(&self) -> anyhow::Result<()> {
        if self.stop.load(Ordering::Relaxed) {
            return Err(anyhow!("stopped"));
        }
        Ok(())
    }

    pub fn dir(&mut self, name: &str, raw: &Path, mode: u32) -> anyhow::Result<()> {
        let parts = entry_path(name, raw)?;
        let Some((last, parents)) = parts.split_last() else {
            self.root_mode = Some(mode);
            return Ok(());
        };
        let parent = self.parent(name, parents)?;
        match mkdirat(&parent, last.as_os_str(), Mode::from_bits_truncate(0o700)) {
            Ok(()) => self.summary.dirs += 1,
            Err(Errno::EEXIST) if self.kind(&parent, last)? == Some(SFlag::S_IFDIR) => {}
            Err(Errno::EEXIST) => return Err(refused(name, "a directory over another entry")),
            Err(error) => return Err(anyhow!("creating '{}': {error}", name.escape_debug())),
        }
        self.chown(&parent, last, name)?;
        self.dir_modes.push((parts.iter().collect(), mode));
        Ok(())
    }

    /// A regular file, its content copied from `content`.
    pub fn file(
        &mut self,
        name: &str,
        raw: &Path,
        mode: u32,
        content: &mut dyn Read,
    ) -> anyhow::Result<()> {
        let (parent, last) = self.fresh_name(name, raw)?;
        let fd = openat(
            &parent,
            last.as_os_str(),
            OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_WRONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(0o600),
        )
        .map_err(|error| anyhow!("creating '{}': {error}", name.escape_debug()))?;
        let mut file = File::from(fd);
        let mut buf = vec![0u8; COPY_CHUNK];
        loop {
            self.check_stop()?;
            let n = content
                .read(&mut buf)
                .with_context(|| format!("reading '{}' from the archive", name.escape_debug()))?;
            if n == 0 {
                break;
            }
            file.write_all(&buf[..n])
                .with_context(|| format!("writing '{}'", name.escape_debug()))?;
            self.summary.bytes += n as u64;
        }
        if let Some(owner) = self.owner {
            nix::unistd::fchown(&file, Some(owner.uid.into()), owner.gid.map(Into::into))
                .with_context(|| format!("setting owner of '{}'", name.escape_debug()))?;
        }
        nix::sys::stat::fchmod(&file, Mode::from_bits_truncate(permissions(mode)))
            .with_context(|| format!("setting mode of '{}'", name.escape_debug()))?;
        self.summary.files += 1;
        Ok(())
    }

    /// A symlink. Absolute targets and targets that lead out of the root are refused; whether
    /// a chain of links leads out is checked in [`Tree::finish`].
    pub fn symlink(&mut self, name: &str, raw: &Path, target: &Path) -> anyhow::Result<()> {
        if target.as_os_str().is_empty() {
            return Err(refused(name, "symlink with an empty target"));
        }
        if target.is_absolute() {
            return Err(refused(
                name,
                &format!("symlink to an absolute path ({})", target.display()),
            ));
        }
        let parts = entry_path(name, raw)?;
        if lexically_escapes(&parts[..parts.len().saturating_sub(1)], target) {
            return Err(refused(
                name,
                &format!("symlink pointing outside ({})", target.display()),
            ));
        }
        let (parent, last) = self.fresh_name(name, raw)?;
        symlinkat(target, &parent, last.as_os_str())
            .map_err(|error| anyhow!("creating '{}': {error}", name.escape_debug()))?;
        self.chown(&parent, &last, name)?;
        self.symlinks
            .push((name.to_string(), parts.iter().collect()));
        self.summary.links += 1;
        Ok(())
    }

    /// A hard link to an entry already unpacked; its target is a path inside the archive, so it
    /// is checked like any entry's path, and opened the same way.
    pub fn hardlink(&mut self, name: &str, raw: &Path, target: &Path) -> anyhow::Result<()> {
        let target_parts = entry_path(name, target).map_err(|_| {
            refused(
                name,
                &format!("hard link pointing outside ({})", target.display()),
            )
        })?;
        let Some((target_last, target_parents)) = target_parts.split_last() else {
            return Err(refused(name, "hard link to the root"));
        };
        let target_parent = self.existing_parent(name, target_parents)?;
        match self.kind(&target_parent, target_last)? {
            Some(SFlag::S_IFREG) => {}
            Some(_) => return Err(refused(name, "hard link to something that is not a file")),
            None => {
                return Err(refused(
                    name,
                    &format!("hard link to a missing entry ({})", target.display()),
                ));
            }
        }
        let (parent, last) = self.fresh_name(name, raw)?;
        linkat(
            &target_parent,
            target_last.as_os_str(),
            &parent,
            last.as_os_str(),
            AtFlags::empty(),
        )
        .map_err(|error| anyhow!("creating '{}': {error}", name.escape_debug()))?;
        self.summary.links += 1;
        Ok(())
    }

    /// Checks every symlink against the finished tree, then applies directory modes, deepest
    /// first, and the root's mode and owner.
    pub fn finish(mut self, root_mode: u32) -> anyhow::Result<Summary> {
        for (name, path) in &self.symlinks {
            self.check_stop()?;
            if self.resolves_outside(path)? {
                return Err(refused(name, "symlink leading outside through other links"));
            }
        }
        self.dir_modes
            .sort_by_key(|(path, _)| std::cmp::Reverse(path.components().count()));
        for (path, mode) in &self.dir_modes {
            fchmodat(
                &self.root,
                path.as_path(),
                Mode::from_bits_truncate(permissions(*mode)),
                FchmodatFlags::NoFollowSymlink,
            )
            .with_context(|| format!("setting mode of {}", path.display()))?;
        }
        let mode = self.root_mode.unwrap_or(root_mode);
        nix::sys::stat::fchmod(&self.root, Mode::from_bits_truncate(permissions(mode)))
            .context("setting the mode of the destination")?;
        if let Some(owner) = self.owner {
            nix::unistd::fchown(
                &self.root,
                Some(owner.uid.into()),
                owner.gid.map(Into::into),
            )
            .context("setting the owner of the destination")?;
        }
        Ok(self.summary)
    }

    /// The parent directory of a new entry, and its last name, with whatever was at that name
    /// before (an earlier entry of the same name) removed; a directory there is not replaced.
    fn fresh_name(&self, name: &str, raw: &Path) -> anyhow::Result<(OwnedFd, OsString)> {
        let parts = entry_path(name, raw)?;
        let Some((last, parents)) = parts.split_last() else {
            return Err(refused(name, "not a directory, but names the root"));
        };
        let parent = self.parent(name, parents)?;
        match unlinkat(&parent, last.as_os_str(), UnlinkatFlags::NoRemoveDir) {
            Ok(()) | Err(Errno::ENOENT) => {}
            Err(Errno::EISDIR) => return Err(refused(name, "replaces a directory")),
            Err(error) => return Err(anyhow!("replacing '{}': {error}", name.escape_debug())),
        }
        Ok((parent, last.clone()))
    }

    /// Opens (creating as needed) the directories leading to an entry, never through a symlink.
    fn parent(&self, name: &str, parents: &[OsString]) -> anyhow::Result<OwnedFd> {
        self.walk(name, parents, true)
    }

    fn existing_parent(&self, name: &str, parents: &[OsString]) -> anyhow::Result<OwnedFd> {
        self.walk(name, parents, false)
    }

    fn walk(&self, name: &str, parents: &[OsString], create: bool) -> anyhow::Result<OwnedFd> {
        let mut dir = self.root.try_clone().context("duplicating a descriptor")?;
        for part in parents {
            if create {
                match mkdirat(&dir, part.as_os_str(), Mode::from_bits_truncate(0o700)) {
                    Ok(()) => {
                        self.chown(&dir, part, name)?;
                    }
                    Err(Errno::EEXIST) => {}
                    Err(error) => {
                        return Err(anyhow!(
                            "creating a directory for '{}': {error}",
                            name.escape_debug()
                        ));
                    }
                }
            }
            dir = match openat(
                &dir,
                part.as_os_str(),
                OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | OFlag::O_RDONLY,
                Mode::empty(),
            ) {
                Ok(fd) => fd,
                Err(Errno::ELOOP | Errno::ENOTDIR) => {
                    return Err(refused(
                        name,
                        &format!(
                            "its path goes through '{}', which is not a directory (a symlink?)",
                            part.to_string_lossy()
                        ),
                    ));
                }
                Err(Errno::ENOENT) => {
                    return Err(refused(name, "hard link to a missing entry"));
                }
                Err(error) => {
                    return Err(anyhow!(
                        "opening a directory for '{}': {error}",
                        name.escape_debug()
                    ));
                }
            };
        }
        Ok(dir)
    }

    fn kind(&self, dir: &impl AsFd, last: &OsStr) -> anyhow::Result<Option<SFlag>> {
        match fstatat(dir, last, AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(stat) => Ok(Some(
                SFlag::from_bits_truncate(stat.st_mode) & SFlag::S_IFMT,
            )),
            Err(Errno::ENOENT) => Ok(None),
            Err(error) => Err(anyhow!("examining '{}': {error}", last.to_string_lossy())),
        }
    }

    fn chown(&self, dir: &impl AsFd, last: &OsStr, name: &str) -> anyhow::Result<()> {
        let Some(owner) = self.owner else {
            return Ok(());
        };
        fchownat(
            dir,
            last,
            Some(owner.uid.into()),
            owner.gid.map(Into::into),
            AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .with_context(|| format!("setting owner of '{}'", name.escape_debug()))
    }

    /// Follows the symlink at `path` through the finished tree, as the kernel would, and says
    /// whether it ever leaves the root (a missing component is taken as a plain name).
    fn resolves_outside(&self, path: &Path) -> anyhow::Result<bool> {
        let mut resolved: Vec<OsString> = Vec::new();
        let mut pending: Vec<OsString> = path
            .components()
            .rev()
            .map(|component| component.as_os_str().to_os_string())
            .collect();
        let mut hops = 0;
        while let Some(part) = pending.pop() {
            match part.as_bytes() {
                b"." => continue,
                b".." => {
                    if resolved.pop().is_none() {
                        return Ok(true);
                    }
                    continue;
                }
                _ => {}
            }
            resolved.push(part);
            let here: PathBuf = resolved.iter().collect();
            let is_link = matches!(
                fstatat(&self.root, here.as_path(), AtFlags::AT_SYMLINK_NOFOLLOW),
                Ok(stat) if SFlag::from_bits_truncate(stat.st_mode) & SFlag::S_IFMT == SFlag::S_IFLNK
            );
            if !is_link {
                continue;
            }
            hops += 1;
            if hops > MAX_SYMLINK_HOPS {
                return Ok(true);
            }
            let target = nix::fcntl::readlinkat(&self.root, here.as_path())
                .with_context(|| format!("reading link {}", here.display()))?;
            let target = PathBuf::from(target);
            if target.is_absolute() {
                return Ok(true);
            }
            resolved.pop();
            pending.extend(
                target
                    .components()
                    .rev()
                    .map(|component| component.as_os_str().to_os_string()),
            );
        }
        Ok(false)
    }
}

/// Whether `target`, read from the directory `parents`, climbs above the root by its own `..`.
fn lexically_escapes(parents: &[OsString], target: &Path) -> bool {
    let mut depth = parents.len();
    for component in target.components() {
        match component {
            Component::ParentDir => {
                if depth == 0 {
                    return true;
                }
                depth -= 1;
            }
            Component::Normal(_) => depth += 1,
            Component::CurDir => {}
            Component::RootDir | Component::Prefix(_) => return true,
        }
    }
    false
}

/// Permission bits only: setuid, setgid and sticky bits from an archive are dropped, so that an
/// unpacked file never runs as its owner.
fn permissions(mode: u32) -> u32 {
    mode & 0o777
}

/// The usage error for a DEST that cannot take an unpacked tree.
pub fn bad_dest(dest: &Path, why: &str) -> anyhow::Error {
    exit::usage(format!("cannot unpack into {}: {why}", dest.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_paths_are_relative_and_stay_inside() {
        let ok = entry_path("./a//b/", Path::new("./a//b/")).unwrap();
        assert_eq!(ok, [OsString::from("a"), OsString::from("b")]);
        assert!(entry_path("/etc/passwd", Path::new("/etc/passwd")).is_err());
        let error = entry_path("a/../../x", Path::new("a/../../x")).unwrap_err();
        assert!(error.to_string().contains("'a/../../x'"), "{error}");
    }

    #[test]
    fn symlink_targets_are_checked_from_their_directory() {
        let dir = [OsString::from("a"), OsString::from("b")];
        assert!(!lexically_escapes(&dir, Path::new("../../c")));
        assert!(lexically_escapes(&dir, Path::new("../../../c")));
        assert!(lexically_escapes(&[], Path::new("..")));
        assert!(!lexically_escapes(&[], Path::new("x/../y")));
    }

    #[test]
    fn a_chain_of_links_that_leads_out_is_refused_at_the_end() {
        let dir = tempfile::tempdir().unwrap();
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let mut tree = Tree::open(dir.path(), None, stop).unwrap();
        tree.dir("d", Path::new("d"), 0o755).unwrap();
        // d/up -> .. is inside on its own; top -> d/up/.. then climbs out through it.
        tree.symlink("d/up", Path::new("d/up"), Path::new(".."))
            .unwrap();
        tree.symlink("top", Path::new("top"), Path::new("d/up/.."))
            .unwrap();
        let error = tree.finish(0o755).unwrap_err();
        assert!(error.to_string().contains("'top'"), "{error}");
    }
}
