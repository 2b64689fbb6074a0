//! Files that other containers read, written so that no reader ever sees half of one: a temp
//! file in the same directory, created exclusively with its final mode and owner, synced, then
//! renamed over the destination.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::runtime::exit;

/// A numeric owner, as `UID:GID` or `UID` (the group unchanged).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner {
    pub uid: u32,
    pub gid: Option<u32>,
}

impl Owner {
    /// `1000:1000` or `1000`. Names are refused: a scratch image has no /etc/passwd to look
    /// them up in, and the volume's readers care about numbers.
    pub fn parse(text: &str) -> Result<Owner, String> {
        let invalid = || format!("invalid owner '{text}': expected UID:GID or UID (numbers)");
        let (uid, gid) = match text.split_once(':') {
            Some((uid, gid)) => (uid, Some(gid)),
            None => (text, None),
        };
        let number = |part: &str| {
            if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                return Err(invalid());
            }
            part.parse::<u32>().map_err(|_| invalid())
        };
        Ok(Owner {
            uid: number(uid)?,
            gid: gid.map(number).transpose()?,
        })
    }
}

/// A file mode in octal, as chmod takes it: `0400`, `644`. Only permission bits (and setgid,
/// setuid, sticky) are allowed.
pub fn parse_mode(text: &str) -> Result<u32, String> {
    let digits = text.strip_prefix("0o").unwrap_or(text);
    match u32::from_str_radix(digits, 8) {
        Ok(mode) if !digits.is_empty() && mode <= 0o7777 => Ok(mode),
        _ => Err(format!(
            "invalid mode '{text}': expected octal such as 0400 or 0644"
        )),
    }
}

/// Writes `bytes` to `path` atomically with `mode` and, if given, `owner`. The directory must
/// exist. On any failure the destination is untouched and no temp file is left behind.
pub fn write_atomic(
    path: &Path,
    bytes: &[u8],
    mode: u32,
    owner: Option<Owner>,
) -> anyhow::Result<()> {
    let mut file = AtomicFile::create(path, mode, owner)?;
    file.file()
        .write_all(bytes)
        .with_context(|| format!("writing {}", file.temp.display()))?;
    file.commit()
}

/// A file being written beside its destination under a hidden temporary name, for content that
/// arrives piece by piece (a download). [`AtomicFile::commit`] syncs it and renames it over the
/// destination; dropping it uncommitted (an error, a signal) removes it.
pub struct AtomicFile {
    file: File,
    temp: PathBuf,
    dest: PathBuf,
    committed: bool,
}

impl AtomicFile {
    /// Creates the temporary file exclusively, with `mode` and `owner` already set, in the
    /// directory of `dest`, which must exist.
    pub fn create(dest: &Path, mode: u32, owner: Option<Owner>) -> anyhow::Result<AtomicFile> {
        let dir = parent_dir(dest);
        if !dir.is_dir() {
            return Err(exit::usage(format!(
                "cannot write {}: directory {} does not exist",
                dest.display(),
                dir.display()
            )));
        }
        let temp = temp_path(dest)?;
        let file = create_temp(&temp, mode, owner).inspect_err(|_| {
            let _ = std::fs::remove_file(&temp);
        })?;
        Ok(AtomicFile {
            file,
            temp,
            dest: dest.to_path_buf(),
            committed: false,
        })
    }

    /// The open temporary file, to write to (or read back).
    pub fn file(&mut self) -> &mut File {
        &mut self.file
    }

    /// Where the content is until it is committed.
    pub fn temp_path(&self) -> &Path {
        &self.temp
    }

    /// Syncs the content and renames it over the destination, then syncs the directory so that
    /// the rename survives a crash.
    pub fn commit(mut self) -> anyhow::Result<()> {
        self.file
            .sync_all()
            .with_context(|| format!("writing {}", self.temp.display()))?;
        std::fs::rename(&self.temp, &self.dest)
            .with_context(|| format!("renaming into {}", self.dest.display()))?;
        self.committed = true;
        if let Ok(dir) = File::open(parent_dir(&self.dest)) {
            let _ = dir.sync_all();
        }
        Ok(())
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_file(&self.temp);
        }
    }
}

/// The directory a path is in (`.` for a bare name).
pub fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    }
}

/// A hidden, unique name beside `dest`: `.NAME.initbox-RANDOM`.
pub fn temp_path(dest: &Path) -> anyhow::Result<PathBuf> {
    let name = dest
        .file_name()
        .ok_or_else(|| exit::usage(format!("cannot write {}: not a file name", dest.display())))?;
    Ok(parent_dir(dest).join(format!(
        ".{}.initbox-{:016x}",
        name.to_string_lossy(),
        fastrand::u64(..)
    )))
}

fn create_temp(temp: &Path, mode: u32, owner: Option<Owner>) -> anyhow::Result<File> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(mode)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC)
        .open(temp)
        .with_context(|| format!("creating {}", temp.display()))?;
    if let Some(owner) = owner {
        nix::unistd::fchown(&file, Some(owner.uid.into()), owner.gid.map(Into::into))
            .with_context(|| format!("setting owner of {}", temp.display()))?;
    }
    // The umask may have cleared bits of `mode` at creation; set it exactly.
    nix::sys::stat::fchmod(&file, nix::sys::stat::Mode::from_bits_truncate(mode))
        .with_context(|| format!("setting mode of {}", temp.display()))?;
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    #[test]
    fn writes_with_the_mode_asked_for_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret.txt");
        write_atomic(&path, b"first", 0o400, None).unwrap();
        write_atomic(&path, b"second", 0o640, None).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"second");
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o7777,
            0o640
        );
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["secret.txt"]);
    }

    #[test]
    fn a_missing_directory_is_an_error_and_nothing_is_created() {
        let dir = tempfile::tempdir().unwrap();
        let error = write_atomic(&dir.path().join("no/such.txt"), b"x", 0o600, None).unwrap_err();
        assert_eq!(exit::Exit::of(&error), exit::Exit::Usage);
        assert!(error.to_string().contains("does not exist"));
    }

    #[test]
    fn owners_are_applied_when_root() {
        if !nix::unistd::geteuid().is_root() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("owned");
        write_atomic(
            &path,
            b"x",
            0o600,
            Some(Owner {
                uid: 1234,
                gid: Some(5678),
            }),
        )
        .unwrap();
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!((meta.uid(), meta.gid()), (1234, 5678));
    }

    #[test]
    fn parses_owners_and_modes() {
        assert_eq!(
            Owner::parse("1000:2000"),
            Ok(Owner {
                uid: 1000,
                gid: Some(2000)
            })
        );
        assert_eq!(Owner::parse("0"), Ok(Owner { uid: 0, gid: None }));
        for bad in ["", "app", "1000:", ":1000", "-1", "1000:app", "99999999999"] {
            assert!(Owner::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_mode("0400"), Ok(0o400));
        assert_eq!(parse_mode("644"), Ok(0o644));
        for bad in ["", "9", "0x1", "rw-r--r--", "17777"] {
            assert!(parse_mode(bad).is_err(), "{bad}");
        }
    }
}
