//! The parallel walk below a directory: every directory is opened relative to its parent's file
//! descriptor with O_NOFOLLOW, every entry is examined and changed by name relative to its
//! directory's, so no path is resolved again from the top and no symlink is followed. A
//! directory is changed after everything below it.
//!
//! Where nearly every entry needs a new owner (a new volume), examining each first costs a system
//! call that finds nothing to skip; there the walk changes entries without examining them, with
//! the type the directory listing gives, and examines one now and then to notice when entries
//! are right again (see [`Pace`]).

use std::collections::HashSet;
use std::ffi::{CStr, CString, OsStr};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, openat};
use nix::libc::{dev_t, ino_t};
use nix::sys::stat::{FileStat, Mode, SFlag, fstat, fstatat};

use super::change::{Change, Target};
use super::tally::Counts;
use super::{Fix, is};
use crate::fs::dirents::{Entry, Kind, Lister};
use crate::fs::mountinfo;

/// Names per job: large enough that the queue's lock is rare, small enough that a directory of a
/// million files is shared out between the threads instead of keeping one busy.
const BATCH: usize = 512;

/// Walks everything below the directory `fd` (not the directory itself: the caller changes it
/// last, once it knows the walk finished), with `fix.workers` threads. Returns when the walk is
/// done or `fix.stop` is set.
pub fn below(fix: &Fix, fd: OwnedFd, path: PathBuf, stat: FileStat) {
    let mount_points = if fix.cross_mounts {
        HashSet::new()
    } else {
        mount_points_below(&path)
    };
    let walk = Walk {
        fix,
        dev: stat.st_dev,
        holding_mounts: mount_points
            .iter()
            .filter_map(|point| point.parent().map(Path::to_path_buf))
            .collect(),
        mount_points,
        queue: Mutex::new(Queue {
            jobs: Vec::new(),
            busy: 1,
        }),
        wake: Condvar::new(),
    };
    let root = walk.node(fd, path, stat, None);
    std::thread::scope(|scope| {
        for _ in 1..fix.workers {
            // Fewer threads (at worst this one alone) still finish the walk.
            let spawned = std::thread::Builder::new()
                .name("fix-perms".into())
                .spawn_scoped(scope, || Worker::new(&walk).work());
            if spawned.is_err() {
                break;
            }
        }
        // The root's listing counts as a busy job, so the other threads wait for its first
        // names instead of finding an empty queue and leaving.
        let mut worker = Worker::new(&walk);
        worker.list(root);
        worker.flush();
        walk.done();
        worker.work();
    });
}

struct Walk<'a> {
    fix: &'a Fix,
    /// Mount points below the walked path, as walk paths: a bind mount of the same filesystem
    /// has the same device number, so only its place in the mount table shows it.
    mount_points: HashSet<PathBuf>,
    /// The directories that hold those mount points: there every entry is examined, since a
    /// file mounted with subPath looks like any other in the listing.
    holding_mounts: HashSet<PathBuf>,
    /// The filesystem of the walked path; nothing on another one is changed or entered.
    dev: dev_t,
    queue: Mutex<Queue>,
    wake: Condvar,
}

struct Queue {
    /// Last in, first out: depth first, so few directories are open at a time.
    jobs: Vec<Job>,
    /// Threads in the middle of a job, which may yet add jobs.
    busy: usize,
}

enum Job {
    /// A subdirectory found in `parent`, opened and listed by whichever thread takes the job.
    /// `id` (st_dev, st_ino) is what an examination found before, if one was needed (the
    /// listing did not give the type), checked again once it is open.
    Open {
        parent: Arc<Node>,
        name: CString,
        id: Option<(dev_t, ino_t)>,
    },
    /// A batch of entries from one directory.
    Entries { dir: Arc<Node>, batch: Batch },
}

/// An open directory that is being walked.
struct Node {
    fd: OwnedFd,
    path: PathBuf,
    stat: FileStat,
    parent: Option<Arc<Node>>,
    /// A mount point is among its entries: each is examined (see `Walk::holding_mounts`).
    holds_mounts: bool,
    /// It needs a change itself.
    differs: bool,
    /// What must finish before the directory itself is changed: its listing, its batches of
    /// entries and its subdirectories.
    pending: AtomicUsize,
}

impl Walk<'_> {
    fn node(
        &self,
        fd: OwnedFd,
        path: PathBuf,
        stat: FileStat,
        parent: Option<Arc<Node>>,
    ) -> Arc<Node> {
        Arc::new(Node {
            holds_mounts: !self.holding_mounts.is_empty() && self.holding_mounts.contains(&path),
            differs: self.fix.want.change(&stat).is_some(),
            fd,
            path,
            stat,
            parent,
            pending: AtomicUsize::new(1),
        })
    }

    fn next(&self) -> Option<Job> {
        let mut queue = self.lock();
        loop {
            if self.fix.stopped() {
                return None;
            }
            if let Some(job) = queue.jobs.pop() {
                queue.busy += 1;
                return Some(job);
            }
            if queue.busy == 0 {
                return None;
            }
            queue = self
                .wake
                .wait(queue)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    fn push(&self, jobs: Vec<Job>) {
        if jobs.is_empty() {
            return;
        }
        self.lock().jobs.extend(jobs);
        self.wake.notify_all();
    }

    fn done(&self) {
        let mut queue = self.lock();
        queue.busy -= 1;
        if queue.busy == 0 && queue.jobs.is_empty() {
            self.wake.notify_all();
        }
    }

    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// One walking thread, with what it keeps to itself: its buffer for directory listings, what
/// it sorts them with, a batch to fill, its pace and its counts. Between directories (or
/// batches) it shares only the queue.
struct Worker<'w, 'a> {
    walk: &'w Walk<'a>,
    lister: Lister,
    /// Keys to take one listing's entries in the order of their inode numbers.
    order: Vec<u64>,
    /// Reused from one directory to the next; only a batch handed to another thread is new.
    batch: Batch,
    pace: Pace,
    counts: Counts,
}

impl<'w, 'a> Worker<'w, 'a> {
    fn new(walk: &'w Walk<'a>) -> Self {
        Worker {
            walk,
            lister: Lister::new(),
            order: Vec::new(),
            batch: Batch::new(),
            pace: Pace::default(),
            counts: Counts::default(),
        }
    }

    fn fix(&self) -> &'a Fix {
        self.walk.fix
    }

    fn work(&mut self) {
        while let Some(job) = self.walk.next() {
            match job {
                Job::Open { parent, name, id } => self.open(parent, &name, id),
                Job::Entries { dir, batch } => {
                    self.fix_batch(dir, batch);
                }
            }
            self.flush();
            self.walk.done();
        }
        // Threads asleep in next() must see the stop (or the end) too.
        self.walk.wake.notify_all();
    }

    fn flush(&mut self) {
        self.fix().tally.add(&mut self.counts);
    }

    /// Opens a subdirectory and examines it there (`fstat` on its descriptor, which is what the
    /// one-filesystem rule and its own change go by), then lists it.
    fn open(&mut self, parent: Arc<Node>, name: &CStr, id: Option<(dev_t, ino_t)>) {
        let fix = self.fix();
        let path = parent.path.join(OsStr::from_bytes(name.to_bytes()));
        let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let opened = openat(parent.fd.as_fd(), name, flags, Mode::empty())
            .and_then(|fd| fstat(&fd).map(|stat| (fd, stat)));
        let tally = &fix.tally;
        match opened {
            Ok((_, stat)) if !fix.cross_mounts && stat.st_dev != self.walk.dev => {
                tally.other_filesystem(&path);
                self.finish(parent);
            }
            Ok((fd, stat)) if id.is_none_or(|id| id == (stat.st_dev, stat.st_ino)) => {
                let node = self.walk.node(fd, path, stat, Some(parent));
                self.list(node);
            }
            // Renamed away since it was listed: nothing left here to fix.
            Err(Errno::ENOENT) => {
                self.counts.skipped += 1;
                self.finish(parent);
            }
            // Swapped for a symlink, a file or another directory since it was listed.
            Ok(_) | Err(Errno::ELOOP | Errno::ENOTDIR) => {
                tally.failed(&path, "replaced during the walk, not entered");
                self.finish(parent);
            }
            Err(errno) => {
                tally.failed_call(&path, "cannot open directory", errno);
                self.finish(parent);
            }
        }
    }

    /// Reads a directory's entries and fixes them. The only thread fixes them straight from
    /// the listing's buffer; one of several hands out full batches to the others as they fill
    /// and does the last one itself.
    fn list(&mut self, node: Arc<Node>) {
        let walk = self.walk;
        let alone = walk.fix.workers == 1;
        // Taken out while the entries borrow them; `entry` needs the rest of `self`.
        let mut lister = std::mem::take(&mut self.lister);
        let mut order = std::mem::take(&mut self.order);
        let mut subdirs = Vec::new();
        if alone {
            self.pace.new_directory(node.differs);
        }
        while !walk.fix.stopped() {
            let entries = match lister.next(node.fd.as_fd()) {
                Ok(Some(entries)) => entries,
                Ok(None) => break,
                Err(errno) => {
                    walk.fix
                        .tally
                        .failed_call(&node.path, "cannot read directory", errno);
                    break;
                }
            };
            if !alone {
                for entry in entries.iter() {
                    self.batch.push(entry);
                    if self.batch.len() == BATCH {
                        node.pending.fetch_add(1, Ordering::Relaxed);
                        walk.push(vec![Job::Entries {
                            dir: node.clone(),
                            batch: std::mem::replace(&mut self.batch, Batch::new()),
                        }]);
                    }
                }
                continue;
            }
            // Sorted by inode number (the low 48 bits: enough to order them), see `fix_batch`.
            order.clear();
            order.extend(
                entries
                    .places()
                    .map(|(ino, place)| (ino << 16) | u64::from(place)),
            );
            order.sort_unstable();
            for key in &order {
                if walk.fix.stopped() {
                    break;
                }
                if let Some(entry) = entries.at(*key as u16) {
                    self.entry(&node, entry.kind, entry.name, &mut subdirs);
                }
            }
        }
        self.lister = lister;
        self.order = order;
        if alone {
            self.end_of(node, subdirs);
        } else {
            let batch = std::mem::take(&mut self.batch);
            self.batch = self.fix_batch(node, batch);
        }
    }

    /// Fixes a batch of entries in the order of their inode numbers, then ends that piece of the
    /// directory's work. Returns the batch, emptied, for reuse.
    ///
    /// Why that order: the inodes changed one after the other then sit side by side in the
    /// filesystem's inode table, while a listing on ext4 comes in the order of a hash of the
    /// names, which makes each change a little dearer.
    fn fix_batch(&mut self, dir: Arc<Node>, mut batch: Batch) -> Batch {
        let mut subdirs = Vec::new();
        batch.sort_by_inode();
        self.pace.new_directory(dir.differs);
        for (kind, name) in batch.iter() {
            if self.fix().stopped() {
                break;
            }
            self.entry(&dir, kind, name, &mut subdirs);
        }
        self.end_of(dir, subdirs);
        batch.clear();
        batch
    }

    /// A piece of a directory's work is done: its subdirectories are queued, and the directory
    /// is finished if that was the last piece.
    fn end_of(&mut self, dir: Arc<Node>, mut subdirs: Vec<Job>) {
        // The queue is last in, first out: reversed, the subdirectories are taken in the order
        // of their inode numbers too.
        subdirs.reverse();
        self.walk.push(subdirs);
        self.finish(dir);
    }

    /// Examines one entry without following it, unless the pace says to change it at once: a
    /// directory becomes a job (examined once open), anything else is fixed on the spot.
    fn entry(&mut self, dir: &Arc<Node>, kind: Kind, name: &CStr, subdirs: &mut Vec<Job>) {
        let fix = self.fix();
        self.counts.scanned += 1;
        let path = || dir.path.join(OsStr::from_bytes(name.to_bytes()));
        if kind == Kind::Dir {
            if !fix.cross_mounts && dir.holds_mounts && self.walk.mount_points.contains(&path()) {
                return fix.tally.other_filesystem(&path());
            }
            return self.subdirectory(dir, name, None, subdirs);
        }
        let may_skip = !dir.holds_mounts && fix.may_change_unexamined(kind);
        if may_skip && self.pace.skip_examining() {
            return match Change::OWNER.apply(Target::At(dir.fd.as_fd(), name), &fix.want) {
                Ok(()) => {
                    self.counts.changed += 1;
                    self.counts.unexamined += 1;
                }
                // Removed since the listing: nothing left to fix.
                Err(failure) if failure.errno == Errno::ENOENT => self.counts.skipped += 1,
                Err(failure) => fix.tally.failed_call(&path(), failure.what, failure.errno),
            };
        }
        let stat = match fstatat(dir.fd.as_fd(), name, AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(stat) => stat,
            // Removed since the listing: nothing left to fix.
            Err(Errno::ENOENT) => return self.counts.skipped += 1,
            Err(errno) => return fix.tally.failed_call(&path(), "cannot examine", errno),
        };
        if !fix.cross_mounts
            && (stat.st_dev != self.walk.dev
                || (dir.holds_mounts && self.walk.mount_points.contains(&path())))
        {
            return fix.tally.other_filesystem(&path());
        }
        if is(&stat, SFlag::S_IFDIR) {
            return self.subdirectory(dir, name, Some((stat.st_dev, stat.st_ino)), subdirs);
        }
        let differed = fix.entry(
            Target::At(dir.fd.as_fd(), name),
            &stat,
            path,
            &mut self.counts,
        );
        if may_skip {
            self.pace.examined(differed);
        }
    }

    fn subdirectory(
        &mut self,
        dir: &Arc<Node>,
        name: &CStr,
        id: Option<(dev_t, ino_t)>,
        subdirs: &mut Vec<Job>,
    ) {
        dir.pending.fetch_add(1, Ordering::Relaxed);
        subdirs.push(Job::Open {
            parent: dir.clone(),
            name: name.to_owned(),
            id,
        });
    }

    /// One piece of a directory's work is over; when it was the last, the directory itself is
    /// changed, which may in turn finish its parent. The walked path's own directory is left to
    /// the caller.
    fn finish(&mut self, mut node: Arc<Node>) {
        let fix = self.fix();
        loop {
            if node.pending.fetch_sub(1, Ordering::AcqRel) != 1 {
                return;
            }
            let Some(parent) = node.parent.clone() else {
                return;
            };
            if !fix.stopped() {
                fix.entry(
                    Target::Fd(node.fd.as_fd()),
                    &node.stat,
                    || node.path.clone(),
                    &mut self.counts,
                );
            }
            node = parent;
        }
    }
}

/// Whether a thread examines the next entry before changing it. Examining costs a system call
/// that pays off only when the entry turns out to be right already: after `TO_UNEXAMINED`
/// examinations in a row that all found something to change, entries are changed without
/// examining them, except one in `PROBE_EVERY`, examined to notice when entries are right again;
/// the first that is right goes back to examining every entry. The directory an entry is in,
/// which is always examined, counts as an examination of its first entry: a directory that is
/// right has its entries examined.
#[derive(Debug, Default)]
struct Pace {
    unexamined: bool,
    /// Examinations in a row that found something to change.
    differing: u32,
    /// Entries to change unexamined before the next is examined.
    until_probe: u32,
}

const TO_UNEXAMINED: u32 = 16;
const PROBE_EVERY: u32 = 128;

impl Pace {
    fn skip_examining(&mut self) -> bool {
        if !self.unexamined {
            return false;
        }
        if self.until_probe == 0 {
            self.until_probe = PROBE_EVERY - 1;
            return false;
        }
        self.until_probe -= 1;
        true
    }

    /// The entries of a directory come next; `differed` tells whether the directory itself
    /// needed a change.
    fn new_directory(&mut self, differed: bool) {
        self.examined(differed);
        self.until_probe = PROBE_EVERY - 1;
    }

    fn examined(&mut self, differed: bool) {
        if differed {
            self.differing = (self.differing + 1).min(TO_UNEXAMINED);
            self.unexamined |= self.differing == TO_UNEXAMINED;
        } else {
            self.differing = 0;
            self.unexamined = false;
        }
    }
}

/// Entries of one directory, to hand to another thread: their names in one buffer, and per
/// entry its type and where its name starts, so a batch is allocated once and refilled; the
/// order to take them in is sorted as plain numbers. (`Batch::default()` allocates nothing: it is what is left in
/// place of a batch taken away.)
#[derive(Default)]
struct Batch {
    names: Vec<u8>,
    slots: Vec<Slot>,
    /// Per entry, its inode number (the low 48 bits: enough to order them) above its index in
    /// `slots` (the low 16 bits).
    order: Vec<u64>,
}

#[derive(Clone, Copy)]
struct Slot {
    start: u32,
    kind: Kind,
}

impl Batch {
    /// Room for BATCH entries with names of up to 15 bytes, without growing.
    fn new() -> Self {
        Batch {
            names: Vec::with_capacity(BATCH * 16),
            slots: Vec::with_capacity(BATCH),
            order: Vec::with_capacity(BATCH),
        }
    }

    fn push(&mut self, entry: Entry<'_>) {
        // At most BATCH (< 2^16) entries, with names of at most 255 bytes.
        let index = self.slots.len() as u64;
        self.order.push((entry.ino << 16) | index);
        self.slots.push(Slot {
            start: self.names.len() as u32,
            kind: entry.kind,
        });
        self.names.extend_from_slice(entry.name.to_bytes_with_nul());
    }

    fn len(&self) -> usize {
        self.slots.len()
    }

    fn clear(&mut self) {
        self.names.clear();
        self.slots.clear();
        self.order.clear();
    }

    fn sort_by_inode(&mut self) {
        self.order.sort_unstable();
    }

    /// The entries, in the order sorted last (or as pushed).
    fn iter(&self) -> impl Iterator<Item = (Kind, &CStr)> {
        self.order.iter().filter_map(|key| {
            let slot = self.slots[(key & 0xffff) as usize];
            let name = CStr::from_bytes_until_nul(&self.names[slot.start as usize..]).ok()?;
            Some((slot.kind, name))
        })
    }
}

/// The mount points strictly below `root` (from the mount table), spelled as the walk spells
/// paths (`root` joined with the rest). Read once before the walk: a mount made during it is
/// still caught by its device number where the entry is examined, unless it is a bind mount of
/// the same filesystem.
fn mount_points_below(root: &Path) -> HashSet<PathBuf> {
    let Ok(canonical) = std::fs::canonicalize(root) else {
        return HashSet::new();
    };
    mountinfo::read()
        .into_iter()
        .filter_map(|mount| {
            let rest = mount.point.strip_prefix(&canonical).ok()?;
            (!rest.as_os_str().is_empty()).then(|| root.join(rest))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_changed_unexamined_only_after_a_run_that_all_differed() {
        let mut pace = Pace::default();
        for _ in 0..TO_UNEXAMINED - 1 {
            assert!(!pace.skip_examining());
            pace.examined(true);
        }
        // One entry that was right starts the count again.
        pace.examined(false);
        for _ in 0..TO_UNEXAMINED {
            assert!(!pace.skip_examining());
            pace.examined(true);
        }
        // A directory that differs too: PROBE_EVERY - 1 of its entries are not examined, then
        // one is.
        pace.new_directory(true);
        let skipped = (0..PROBE_EVERY - 1)
            .filter(|_| pace.skip_examining())
            .count();
        assert_eq!(skipped as u32, PROBE_EVERY - 1);
        assert!(!pace.skip_examining());
        pace.examined(true);
        assert!(pace.skip_examining());
        // A directory that is right has its entries examined.
        pace.new_directory(false);
        assert!(!pace.skip_examining());
        pace.examined(true);
        assert!(!pace.skip_examining());
        // So does one found right by a probe.
        for _ in 0..TO_UNEXAMINED {
            pace.examined(true);
        }
        assert!(pace.skip_examining());
        pace.examined(false);
        assert!(!pace.skip_examining());
    }
}
