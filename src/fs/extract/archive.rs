//! Reading tar, tar.gz and zip entries and handing each to the [`Tree`], which decides what is
//! allowed. Device files, FIFOs and anything else that is not a file, a directory or a link are
//! refused here.

use std::fs::File;
use std::io::{BufReader, Read};
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use anyhow::{Context, anyhow};

use super::Format;
use super::tree::{Summary, Tree, refused};
use crate::fs::atomic::Owner;

/// The mode of DEST itself when the archive does not say (no `./` entry).
const ROOT_MODE: u32 = 0o755;
/// A zip symlink's target is its content; a longer one is not a path.
const SYMLINK_TARGET_LIMIT: u64 = 4096;

const S_IFMT: u32 = 0o170000;
const S_IFREG: u32 = 0o100000;
const S_IFDIR: u32 = 0o040000;
const S_IFLNK: u32 = 0o120000;

pub fn unpack(
    archive: File,
    format: Format,
    root: &Path,
    owner: Option<Owner>,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<Summary> {
    let mut tree = Tree::open(root, owner, stop)?;
    match format {
        Format::Tar => tar_entries(BufReader::new(archive), &mut tree)?,
        Format::TarGz => tar_entries(
            flate2::read::MultiGzDecoder::new(BufReader::new(archive)),
            &mut tree,
        )?,
        Format::Zip => zip_entries(archive, &mut tree)?,
    }
    tree.finish(ROOT_MODE)
}

fn tar_entries(reader: impl Read, tree: &mut Tree) -> anyhow::Result<()> {
    let mut archive = tar::Archive::new(reader);
    let entries = archive.entries().context("reading the tar archive")?;
    for entry in entries {
        tree.check_stop()?;
        let mut entry = entry.context("reading the tar archive")?;
        let raw = entry
            .path()
            .context("reading an entry's name in the tar archive")?
            .into_owned();
        let name = raw.to_string_lossy().into_owned();
        let mode = entry.header().mode().unwrap_or(0o644);
        let link = entry
            .link_name()
            .with_context(|| format!("reading the link target of '{}'", name.escape_debug()))?
            .map(|target| target.into_owned());
        use tar::EntryType;
        match entry.header().entry_type() {
            EntryType::Regular | EntryType::Continuous => {
                tree.file(&name, &raw, mode, &mut entry)?;
            }
            EntryType::Directory => tree.dir(&name, &raw, mode)?,
            EntryType::Symlink => tree.symlink(&name, &raw, &link_target(&name, link)?)?,
            EntryType::Link => tree.hardlink(&name, &raw, &link_target(&name, link)?)?,
            EntryType::Char | EntryType::Block => return Err(refused(&name, "device file")),
            EntryType::Fifo => return Err(refused(&name, "FIFO")),
            // Header-only records (pax global headers) carry nothing to unpack.
            EntryType::XGlobalHeader | EntryType::XHeader => {}
            other => {
                return Err(refused(
                    &name,
                    &format!("unsupported tar entry type {:?}", other),
                ));
            }
        }
    }
    Ok(())
}

fn link_target(name: &str, link: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    link.ok_or_else(|| refused(name, "link without a target"))
}

fn zip_entries(archive: File, tree: &mut Tree) -> anyhow::Result<()> {
    let mut zip = zip::ZipArchive::new(BufReader::new(archive))
        .map_err(|error| anyhow!("reading the zip archive: {error}"))?;
    for index in 0..zip.len() {
        tree.check_stop()?;
        let mut entry = zip
            .by_index(index)
            .map_err(|error| anyhow!("reading the zip archive: {error}"))?;
        let name = entry.name().to_string();
        let raw = PathBuf::from(&name);
        let unix = entry.unix_mode();
        let kind = unix.map(|mode| mode & S_IFMT).filter(|kind| *kind != 0);
        let mode = unix.map_or(0o644, |mode| mode & 0o7777);
        if entry.is_dir() || kind == Some(S_IFDIR) {
            tree.dir(&name, &raw, unix.map_or(0o755, |mode| mode & 0o7777))?;
            continue;
        }
        match kind {
            None | Some(S_IFREG) => tree.file(&name, &raw, mode, &mut entry)?,
            Some(S_IFLNK) => {
                let mut target = Vec::new();
                (&mut entry)
                    .take(SYMLINK_TARGET_LIMIT)
                    .read_to_end(&mut target)
                    .with_context(|| {
                        format!("reading the link target of '{}'", name.escape_debug())
                    })?;
                let target = PathBuf::from(std::ffi::OsString::from_vec(target));
                tree.symlink(&name, &raw, &target)?;
            }
            Some(0o020000 | 0o060000) => return Err(refused(&name, "device file")),
            Some(0o010000) => return Err(refused(&name, "FIFO")),
            Some(_) => return Err(refused(&name, "not a file, directory or symlink")),
        }
    }
    Ok(())
}
