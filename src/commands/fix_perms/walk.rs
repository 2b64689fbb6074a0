//! The parallel walk below a directory: every directory is opened relative to its parent's file
//! descriptor with O_NOFOLLOW, every entry is examined and changed by name relative to its
//! directory's, so no path is resolved again from the top and no symlink is followed. A
//! directory is changed after everything below it.

use std::collections::HashSet;
use std::ffi::{CStr, CString, OsStr};
use std::num::NonZero;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

use nix::dir::Dir;
use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, openat};
use nix::libc::{dev_t, ino_t};
use nix::sys::stat::{FileStat, Mode, SFlag, fstat, fstatat};

use super::change::Target;
use super::{Fix, is};

/// Names per job: large enough that the queue's lock is rare, small enough that a directory of a
/// million files is shared out between the threads instead of keeping one busy.
const BATCH: usize = 512;

/// A short job does not need one thread per core of a large node that sets no CPU limit.
const MAX_THREADS: usize = 8;

/// Walks everything below the directory `fd` (not the directory itself: the caller changes it
/// last, once it knows the walk finished). Returns when the walk is done or `fix.stop` is set.
pub fn below(fix: &Fix, fd: OwnedFd, path: PathBuf, stat: FileStat) {
    let walk = Walk {
        fix,
        dev: stat.st_dev,
        mount_points: if fix.cross_mounts {
            HashSet::new()
        } else {
            mount_points_below(&path)
        },
        queue: Mutex::new(Queue {
            jobs: Vec::new(),
            busy: 1,
        }),
        wake: Condvar::new(),
    };
    let threads = std::thread::available_parallelism()
        .map_or(1, NonZero::get)
        .min(MAX_THREADS);
    let root = Arc::new(Node {
        fd,
        path,
        stat,
        parent: None,
        pending: AtomicUsize::new(1),
    });
    std::thread::scope(|scope| {
        for _ in 1..threads {
            // Fewer threads (at worst this one alone) still finish the walk.
            let spawned = std::thread::Builder::new()
                .name("fix-perms".into())
                .spawn_scoped(scope, || walk.work());
            if spawned.is_err() {
                break;
            }
        }
        // The root's listing counts as a busy job, so the other threads wait for its first
        // names instead of finding an empty queue and leaving.
        walk.list(root);
        walk.done();
        walk.work();
    });
}

struct Walk<'a> {
    fix: &'a Fix,
    /// Mount points below the walked path, as walk paths: a bind mount of the same filesystem
    /// has the same device number, so only its place in the mount table shows it.
    mount_points: HashSet<PathBuf>,
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
    /// `id` (st_dev, st_ino) is what the examination found, checked again once it is open.
    Open {
        parent: Arc<Node>,
        name: CString,
        id: (dev_t, ino_t),
    },
    /// A batch of names from one directory.
    Names { dir: Arc<Node>, names: Names },
}

/// An open directory that is being walked.
struct Node {
    fd: OwnedFd,
    path: PathBuf,
    stat: FileStat,
    parent: Option<Arc<Node>>,
    /// What must finish before the directory itself is changed: its listing, its batches of
    /// names and its subdirectories.
    pending: AtomicUsize,
}

impl Walk<'_> {
    fn work(&self) {
        while let Some(job) = self.next() {
            match job {
                Job::Open { parent, name, id } => self.open(parent, &name, id),
                Job::Names { dir, names } => {
                    let mut subdirs = Vec::new();
                    self.names(&dir, &names, &mut subdirs);
                    self.push(subdirs);
                    self.finish(dir);
                }
            }
            self.done();
        }
        // Threads asleep in next() must see the stop (or the end) too.
        self.wake.notify_all();
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

    fn open(&self, parent: Arc<Node>, name: &CStr, id: (dev_t, ino_t)) {
        let path = parent.path.join(OsStr::from_bytes(name.to_bytes()));
        let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let opened = openat(parent.fd.as_fd(), name, flags, Mode::empty())
            .and_then(|fd| fstat(&fd).map(|stat| (fd, stat)));
        match opened {
            Ok((fd, stat)) if (stat.st_dev, stat.st_ino) == id => {
                self.list(Arc::new(Node {
                    fd,
                    path,
                    stat,
                    parent: Some(parent),
                    pending: AtomicUsize::new(1),
                }));
            }
            // Renamed away since it was examined: nothing left here to fix.
            Err(Errno::ENOENT) => {
                self.fix.tally.skipped();
                self.finish(parent);
            }
            // Swapped for a symlink, a file or another directory since it was examined.
            Ok(_) | Err(Errno::ELOOP | Errno::ENOTDIR) => {
                self.fix
                    .tally
                    .failed(&path, "replaced during the walk, not entered");
                self.finish(parent);
            }
            Err(errno) => {
                self.fix
                    .tally
                    .failed_call(&path, "cannot open directory", errno);
                self.finish(parent);
            }
        }
    }

    /// Reads a directory's names, handing out full batches to other threads as they fill and
    /// doing the last one here.
    fn list(&self, node: Arc<Node>) {
        let mut batch = Names::default();
        // The directory stream gets its own descriptor: `Dir` cannot be shared between threads,
        // while the node's is used by every thread that works on its names.
        let dir = node
            .fd
            .try_clone()
            .map_err(|error| Errno::from_raw(error.raw_os_error().unwrap_or(0)))
            .and_then(Dir::from_fd);
        match dir {
            Err(errno) => self
                .fix
                .tally
                .failed_call(&node.path, "cannot read directory", errno),
            Ok(dir) => {
                for entry in dir {
                    if self.fix.stopped() {
                        break;
                    }
                    let entry = match entry {
                        Ok(entry) => entry,
                        Err(errno) => {
                            self.fix
                                .tally
                                .failed_call(&node.path, "cannot read directory", errno);
                            break;
                        }
                    };
                    let name = entry.file_name();
                    if name == c"." || name == c".." {
                        continue;
                    }
                    batch.push(name);
                    if batch.count == BATCH {
                        node.pending.fetch_add(1, Ordering::Relaxed);
                        self.push(vec![Job::Names {
                            dir: node.clone(),
                            names: std::mem::take(&mut batch),
                        }]);
                    }
                }
            }
        }
        let mut subdirs = Vec::new();
        self.names(&node, &batch, &mut subdirs);
        self.push(subdirs);
        self.finish(node);
    }

    fn names(&self, dir: &Arc<Node>, names: &Names, subdirs: &mut Vec<Job>) {
        for name in names.iter() {
            if self.fix.stopped() {
                return;
            }
            self.entry(dir, name, subdirs);
        }
    }

    /// Examines one entry without following it: a directory becomes a job, anything else is
    /// fixed on the spot.
    fn entry(&self, dir: &Arc<Node>, name: &CStr, subdirs: &mut Vec<Job>) {
        let tally = &self.fix.tally;
        tally.scanned();
        let path = || dir.path.join(OsStr::from_bytes(name.to_bytes()));
        let stat = match fstatat(dir.fd.as_fd(), name, AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(stat) => stat,
            // Removed since the listing: nothing left to fix.
            Err(Errno::ENOENT) => return tally.skipped(),
            Err(errno) => return tally.failed_call(&path(), "cannot examine", errno),
        };
        if !self.fix.cross_mounts
            && (stat.st_dev != self.dev
                || (!self.mount_points.is_empty() && self.mount_points.contains(&path())))
        {
            return tally.other_filesystem(&path());
        }
        if is(&stat, SFlag::S_IFDIR) {
            dir.pending.fetch_add(1, Ordering::Relaxed);
            subdirs.push(Job::Open {
                parent: dir.clone(),
                name: name.to_owned(),
                id: (stat.st_dev, stat.st_ino),
            });
            return;
        }
        self.fix
            .entry(Target::At(dir.fd.as_fd(), name), &stat, path);
    }

    /// One piece of a directory's work is over; when it was the last, the directory itself is
    /// changed, which may in turn finish its parent. The walked path's own directory is left to
    /// the caller.
    fn finish(&self, mut node: Arc<Node>) {
        loop {
            if node.pending.fetch_sub(1, Ordering::AcqRel) != 1 {
                return;
            }
            let Some(parent) = node.parent.clone() else {
                return;
            };
            if !self.fix.stopped() {
                self.fix.entry(Target::Fd(node.fd.as_fd()), &node.stat, || {
                    node.path.clone()
                });
            }
            node = parent;
        }
    }
}

/// Entry names packed into one buffer, each ending in its NUL: one allocation per batch rather
/// than one per name.
#[derive(Default)]
struct Names {
    bytes: Vec<u8>,
    count: usize,
}

impl Names {
    fn push(&mut self, name: &CStr) {
        self.bytes.extend_from_slice(name.to_bytes_with_nul());
        self.count += 1;
    }

    fn iter(&self) -> impl Iterator<Item = &CStr> {
        self.bytes
            .split_inclusive(|&byte| byte == 0)
            .filter_map(|name| CStr::from_bytes_with_nul(name).ok())
    }
}

/// The mount points strictly below `root` (from /proc/self/mountinfo), spelled as the walk
/// spells paths (`root` joined with the rest). Read once before the walk: a mount made during
/// it is still caught by its device number unless it is a bind mount of the same filesystem.
fn mount_points_below(root: &Path) -> HashSet<PathBuf> {
    let (Ok(canonical), Ok(table)) = (
        std::fs::canonicalize(root),
        std::fs::read_to_string("/proc/self/mountinfo"),
    ) else {
        return HashSet::new();
    };
    table
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(|field| PathBuf::from(unescape_mountinfo(field)))
        .filter_map(|point| {
            let rest = point.strip_prefix(&canonical).ok()?.to_path_buf();
            (!rest.as_os_str().is_empty()).then(|| root.join(rest))
        })
        .collect()
}

/// mountinfo writes space, tab, newline and backslash as octal escapes (`\040`).
fn unescape_mountinfo(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let octal = field
            .get(index + 1..index + 4)
            .filter(|digits| {
                bytes[index] == b'\\' && digits.bytes().all(|b| (b'0'..=b'7').contains(&b))
            })
            .and_then(|digits| u8::from_str_radix(digits, 8).ok());
        match octal {
            Some(byte) => {
                out.push(byte);
                index += 4;
            }
            None => {
                out.push(bytes[index]);
                index += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_escapes_are_decoded() {
        assert_eq!(
            unescape_mountinfo("/data/with\\040space"),
            "/data/with space"
        );
        assert_eq!(unescape_mountinfo("/plain"), "/plain");
    }
}
