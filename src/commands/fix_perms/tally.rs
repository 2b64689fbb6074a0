//! The counts of one run, shared by the walking threads, and the lines they log: failures,
//! hard links and other filesystems, each kind listed up to a limit and counted past it.

use std::io::Write;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::anyhow;
use nix::errno::Errno;
use serde_json::json;

use crate::runtime::duration;
use crate::runtime::logging::{self, Level};
use crate::text::error_text;

/// A volume where every chown fails (read-only, say) would otherwise log a line per entry; past
/// this many, lines of a kind are counted but not written.
const LISTED: u64 = 50;

#[derive(Default)]
pub struct Tally {
    scanned: AtomicU64,
    changed: AtomicU64,
    skipped: AtomicU64,
    unexamined: AtomicU64,
    hardlinked: AtomicU64,
    errors: AtomicU64,
    other_filesystems: AtomicU64,
    first_error: Mutex<Option<String>>,
}

/// The counts one thread keeps for itself while it works through a batch of entries, added to
/// the shared [`Tally`] once per batch: counting in shared memory on every entry would make the
/// threads take turns owning it.
#[derive(Debug, Default)]
pub struct Counts {
    pub scanned: u64,
    pub changed: u64,
    pub skipped: u64,
    /// Changed without being examined first (so also counted in `changed`).
    pub unexamined: u64,
}

impl Tally {
    /// Adds what a thread counted, and starts its counts again from zero.
    pub fn add(&self, counts: &mut Counts) {
        let Counts {
            scanned,
            changed,
            skipped,
            unexamined,
        } = std::mem::take(counts);
        for (total, count) in [
            (&self.scanned, scanned),
            (&self.changed, changed),
            (&self.skipped, skipped),
            (&self.unexamined, unexamined),
        ] {
            if count > 0 {
                total.fetch_add(count, Ordering::Relaxed);
            }
        }
    }

    pub fn scanned(&self) {
        self.scanned.fetch_add(1, Ordering::Relaxed);
    }

    pub fn skipped(&self) {
        self.skipped.fetch_add(1, Ordering::Relaxed);
    }

    pub fn errors(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }

    /// A changed regular file with more than one link: the same inode is under another name,
    /// possibly outside the tree, so it is named.
    pub fn hardlinked(&self, path: &Path, links: nix::libc::nlink_t, dry_run: bool) {
        let count = self.hardlinked.fetch_add(1, Ordering::Relaxed) + 1;
        let verb = if dry_run { "would change" } else { "changed" };
        listed(
            count,
            Level::Warn,
            "hard-linked files",
            &format!(
                "{}: hard-linked ({links} names): {verb} it, which shows under its other names too",
                path.display()
            ),
            &[
                ("event", json!("hardlink")),
                ("path", json!(path.display().to_string())),
                ("links", json!(links)),
            ],
        );
    }

    /// A mount point (or a bind-mounted file) below the walked path: left alone.
    pub fn other_filesystem(&self, path: &Path) {
        self.skipped();
        let count = self.other_filesystems.fetch_add(1, Ordering::Relaxed) + 1;
        listed(
            count,
            Level::Info,
            "entries on other filesystems",
            &format!(
                "{}: on another filesystem, left alone (--cross-mounts enters it)",
                path.display()
            ),
            &[
                ("event", json!("other_filesystem")),
                ("path", json!(path.display().to_string())),
            ],
        );
    }

    /// An entry that could not be examined or changed: logged with its path and `reason`; the
    /// walk goes on.
    pub fn failed(&self, path: &Path, reason: &str) {
        let count = self.errors.fetch_add(1, Ordering::Relaxed) + 1;
        let line = format!("{}: {reason}", path.display());
        listed(
            count,
            Level::Error,
            "failed entries",
            &line,
            &[
                ("event", json!("entry_failed")),
                ("path", json!(path.display().to_string())),
                ("error", json!(reason)),
            ],
        );
        let mut first = self
            .first_error
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        first.get_or_insert(line);
    }

    /// [`Tally::failed`] for a system call's error.
    pub fn failed_call(&self, path: &Path, what: &str, errno: Errno) {
        self.failed(path, &format!("{what}: {}", error_text::io(&errno.into())));
    }

    /// --dry-run's output: the path on stdout, one a line, as bytes (a name need not be UTF-8).
    pub fn print(&self, path: &Path) {
        let mut line = path.as_os_str().as_encoded_bytes().to_vec();
        line.push(b'\n');
        if let Err(error) = std::io::stdout().lock().write_all(&line) {
            self.failed(path, &format!("cannot print: {}", error_text::io(&error)));
        }
    }

    /// The one line that sums the run up, whatever its outcome.
    pub fn summarize(&self, elapsed: Duration, dry_run: bool) {
        let [scanned, changed, skipped, unexamined, hardlinked, errors] = [
            &self.scanned,
            &self.changed,
            &self.skipped,
            &self.unexamined,
            &self.hardlinked,
            &self.errors,
        ]
        .map(|count| count.load(Ordering::Relaxed));
        let verb = if dry_run { "would change" } else { "changed" };
        let entries = if scanned == 1 { "entry" } else { "entries" };
        let unexamined_text = if unexamined > 0 {
            format!(", {unexamined} without examining them first")
        } else {
            String::new()
        };
        logging::emit(
            Level::Info,
            &format!(
                "scanned {scanned} {entries} in {}: {verb} {changed} ({hardlinked} hard-linked\
                 {unexamined_text}), skipped {skipped}, failed {errors}",
                duration::human(elapsed)
            ),
            &[
                ("event", json!("summary")),
                ("scanned", json!(scanned)),
                ("changed", json!(changed)),
                ("skipped", json!(skipped)),
                ("unexamined", json!(unexamined)),
                ("hardlinked", json!(hardlinked)),
                ("errors", json!(errors)),
                ("dry_run", json!(dry_run)),
                ("elapsed_ms", json!(elapsed.as_millis() as u64)),
            ],
        );
    }

    /// Exit 1 when any entry failed, naming the first.
    pub fn result(&self) -> anyhow::Result<()> {
        let errors = self.errors();
        if errors == 0 {
            return Ok(());
        }
        let first = self
            .first_error
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
            .unwrap_or_default();
        let entries = if errors == 1 { "entry" } else { "entries" };
        Err(anyhow!(
            "{errors} {entries} could not be fixed; first: {first}"
        ))
    }
}

/// Logs the `count`th line of a kind, or says once that further ones are only counted.
fn listed(count: u64, level: Level, kind: &str, line: &str, fields: &[(&str, serde_json::Value)]) {
    if count <= LISTED {
        logging::emit(level, line, fields);
    } else if count == LISTED + 1 {
        logging::emit(
            level,
            &format!("more {kind}: counted in the summary, not listed"),
            &[("event", json!("not_listed"))],
        );
    }
}
