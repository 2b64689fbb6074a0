//! fix-perms: give a volume the owner (and modes) a non-root app needs, without following a
//! symlink, without leaving the volume's filesystem, and without touching what is already right.

mod change;
mod cpus;
mod tally;
mod walk;

use std::ffi::CString;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use anyhow::anyhow;
use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, open};
use nix::sys::stat::{FileStat, Mode, SFlag, fstat, fstatat, lstat};
use serde_json::json;

use crate::fs::atomic::{self, Owner};
use crate::fs::dirents;
use crate::runtime::ctx::Ctx;
use crate::runtime::exit;
use crate::runtime::logging::{self, Level};
use crate::runtime::retry;
use crate::runtime::signal;
use crate::text::error_text;

use change::{Target, Want};
use cpus::Cpus;
use tally::{Counts, Tally};

/// A short job does not need one thread per core of a large node that sets no CPU limit.
const MAX_THREADS: usize = 8;

#[derive(Debug, clap::Args)]
pub struct FixPermsArgs {
    /// Owner for every entry, as numbers: UID:GID, or UID to leave groups as they are.
    #[arg(long, value_name = "UID[:GID]", value_parser = Owner::parse)]
    pub owner: Owner,

    /// Mode for everything that is not a directory or a symlink, in octal (0640); default: modes
    /// are left as they are.
    #[arg(long, value_name = "MODE", value_parser = atomic::parse_mode)]
    pub file_mode: Option<u32>,

    /// Mode for directories, in octal (0750); default: modes are left as they are.
    #[arg(long, value_name = "MODE", value_parser = atomic::parse_mode)]
    pub dir_mode: Option<u32>,

    /// Skip the walk when PATH itself already has the owner and mode asked for (Kubernetes'
    /// fsGroupChangePolicy: OnRootMismatch). PATH is changed last, so an unfinished run is
    /// walked again.
    #[arg(long)]
    pub if_root_mismatch: bool,

    /// Also enter filesystems mounted below PATH (by default they are left alone).
    #[arg(long)]
    pub cross_mounts: bool,

    /// Print what would change, one path a line on stdout, and change nothing.
    #[arg(long)]
    pub dry_run: bool,

    /// Threads that walk the tree. Default: one per CPU this process may use, counting the
    /// cgroup CPU quota (a container's CPU limit), up to 8; under a quota below 2 CPUs, one.
    #[arg(long, env = "INITBOX_THREADS", value_name = "N",
          value_parser = clap::value_parser!(u16).range(1..=256))]
    pub threads: Option<u16>,

    /// Directories to fix with everything below them, or single files. Symlinks are never
    /// followed; `/` is refused.
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
}

/// What every walking thread shares for one run.
struct Fix {
    want: Want,
    dry_run: bool,
    cross_mounts: bool,
    if_root_mismatch: bool,
    tally: Tally,
    /// Threads that walk a directory.
    workers: usize,
    /// Set on SIGTERM, SIGINT or the deadline; the threads stop at their next entry.
    stop: AtomicBool,
}

pub async fn run(args: &FixPermsArgs, ctx: &Ctx) -> anyhow::Result<()> {
    // Every PATH is checked before anything changes, so a mistake in one of them (exit 2)
    // leaves all of them as they were.
    let roots = args
        .paths
        .iter()
        .map(|path| Root::open(path))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let fix = Arc::new(Fix {
        want: Want {
            owner: args.owner,
            file_mode: args.file_mode,
            dir_mode: args.dir_mode,
        },
        dry_run: args.dry_run,
        cross_mounts: args.cross_mounts,
        if_root_mismatch: args.if_root_mismatch,
        tally: Tally::default(),
        workers: workers(args.threads),
        stop: AtomicBool::new(false),
    });
    let started = Instant::now();
    let mut walking = tokio::task::spawn_blocking({
        let fix = fix.clone();
        move || {
            for root in roots {
                if fix.stopped() {
                    break;
                }
                root.fix(&fix);
            }
        }
    });
    let interrupted = tokio::select! {
        joined = &mut walking => {
            joined.map_err(|error| anyhow!("the walk ended abnormally: {error}"))?;
            None
        }
        stop = ctx.cancel.cancelled() => Some(signal::stopped(stop)),
        () = ctx.deadline_reached() => Some(retry::deadline_exceeded(ctx)),
    };
    if interrupted.is_some() {
        // The threads notice at their next entry; waiting for them keeps the counts exact and
        // nothing changing after the final line.
        fix.stop.store(true, Ordering::Relaxed);
        let _ = walking.await;
    }
    fix.tally.summarize(started.elapsed(), fix.dry_run);
    match interrupted {
        Some(error) => Err(error),
        None => fix.tally.result(),
    }
}

/// The number of walking threads: `--threads`, or one per CPU this process may use.
fn workers(threads: Option<u16>) -> usize {
    let (workers, why) = match threads {
        Some(threads) => (usize::from(threads), "--threads".to_owned()),
        None => {
            let cpus = Cpus::detect();
            (cpus.usable().min(MAX_THREADS), cpus.to_string())
        }
    };
    let plural = if workers == 1 { "" } else { "s" };
    logging::emit(
        Level::Debug,
        &format!("walking with {workers} thread{plural}: {why}"),
        &[
            ("event", json!("threads")),
            ("threads", json!(workers)),
            ("why", json!(why)),
        ],
    );
    workers
}

impl Fix {
    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Whether an entry of this kind (as its directory lists it) may get its owner changed
    /// without being examined: not with --dry-run (which prints only what differs), never a
    /// directory (examined for the mount check) or an entry of unknown type, and not a file
    /// when --file-mode asks for a mode, which is set only where it differs.
    fn may_change_unexamined(&self, kind: dirents::Kind) -> bool {
        use dirents::Kind::*;
        !self.dry_run
            && match kind {
                Symlink => true,
                File | Special => self.want.file_mode.is_none(),
                Dir | Unknown => false,
            }
    }

    /// Changes one entry where it differs from what is wanted; with --dry-run, prints its path
    /// instead. `path` is only built when it is needed. Returns whether the entry differed.
    fn entry(
        &self,
        target: Target<'_>,
        stat: &FileStat,
        path: impl Fn() -> PathBuf,
        counts: &mut Counts,
    ) -> bool {
        let Some(change) = self.want.change(stat) else {
            counts.skipped += 1;
            return false;
        };
        if self.dry_run {
            self.tally.print(&path());
        } else if let Err(failure) = change.apply(target, &self.want) {
            self.tally.failed_call(&path(), failure.what, failure.errno);
            return true;
        }
        counts.changed += 1;
        if is(stat, SFlag::S_IFREG) && stat.st_nlink > 1 {
            self.tally.hardlinked(&path(), stat.st_nlink, self.dry_run);
        }
        true
    }
}

/// A PATH from the command line, open and examined.
struct Root {
    /// As given, without trailing slashes: used in messages and --dry-run output.
    path: PathBuf,
    stat: FileStat,
    kind: Kind,
}

enum Kind {
    Dir(OwnedFd),
    /// A regular file, changed by name relative to its directory like any entry in a walk.
    File {
        parent: OwnedFd,
        name: CString,
    },
}

impl Root {
    /// Refuses `/`, missing paths, symlinks and anything that is not a directory or a regular
    /// file (exit 2), and opens the rest without following a final symlink.
    fn open(given: &Path) -> anyhow::Result<Root> {
        let shown = given.display();
        let canonical = std::fs::canonicalize(given)
            .map_err(|error| exit::usage(format!("{shown}: {}", error_text::io(&error))))?;
        if canonical == Path::new("/") {
            return Err(exit::usage(format!(
                "{shown} is the root directory: refusing to change the whole filesystem"
            )));
        }
        // A trailing slash makes the kernel follow a final symlink even with O_NOFOLLOW;
        // collecting the components drops it (and any trailing `.`).
        let path: PathBuf = given.components().collect();
        let stat = lstat(&path).map_err(|errno| unusable(given, "cannot examine", errno))?;
        let kind = if is(&stat, SFlag::S_IFDIR) {
            let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
            let fd = open(&path, flags, Mode::empty())
                .map_err(|errno| unusable(given, "cannot open", errno))?;
            let opened = fstat(&fd).map_err(|errno| unusable(given, "cannot examine", errno))?;
            same_entry(&stat, &opened, &path)?;
            Kind::Dir(fd)
        } else if is(&stat, SFlag::S_IFREG) {
            let dir = match path.parent() {
                Some(dir) if !dir.as_os_str().is_empty() => dir,
                _ => Path::new("."),
            };
            let parent = open(
                dir,
                OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
                Mode::empty(),
            )
            .map_err(|errno| unusable(dir, "cannot open", errno))?;
            let name = path
                .file_name()
                .and_then(|name| CString::new(name.as_bytes()).ok())
                .ok_or_else(|| exit::usage(format!("{shown}: not a file name")))?;
            let opened = fstatat(&parent, name.as_c_str(), AtFlags::AT_SYMLINK_NOFOLLOW)
                .map_err(|errno| unusable(given, "cannot examine", errno))?;
            same_entry(&stat, &opened, &path)?;
            Kind::File { parent, name }
        } else if is(&stat, SFlag::S_IFLNK) {
            return Err(exit::usage(format!(
                "{shown} is a symlink (to {}): symlinks are never followed, give the path it points to",
                canonical.display()
            )));
        } else {
            return Err(exit::usage(format!(
                "{shown} is not a directory or a regular file"
            )));
        };
        Ok(Root { path, stat, kind })
    }

    /// Walks and changes everything below, then the root itself, last: only a walk that went
    /// through without an error marks the root as done, so --if-root-mismatch walks again after
    /// an interruption or a failure.
    fn fix(self, fix: &Fix) {
        fix.tally.scanned();
        let Root { path, stat, kind } = self;
        let mut counts = Counts::default();
        if fix.if_root_mismatch && fix.want.change(&stat).is_none() {
            about(
                Level::Info,
                &path,
                "root_matches",
                "already has the owner and mode asked for; not walked (--if-root-mismatch)",
            );
            return fix.tally.skipped();
        }
        match kind {
            Kind::File { parent, name } => {
                fix.entry(
                    Target::At(parent.as_fd(), &name),
                    &stat,
                    || path.clone(),
                    &mut counts,
                );
            }
            Kind::Dir(fd) => {
                let errors = fix.tally.errors();
                match fd.try_clone() {
                    Ok(walked) => walk::below(fix, walked, path.clone(), stat),
                    Err(error) => {
                        return fix
                            .tally
                            .failed(&path, &format!("cannot walk: {}", error_text::io(&error)));
                    }
                }
                if fix.stopped() {
                    return;
                }
                if fix.tally.errors() > errors {
                    about(
                        Level::Warn,
                        &path,
                        "root_unchanged",
                        "left as it was, since entries below it failed; the next run walks it again",
                    );
                    return;
                }
                fix.entry(Target::Fd(fd.as_fd()), &stat, || path.clone(), &mut counts);
            }
        }
        fix.tally.add(&mut counts);
    }
}

/// A line about a PATH as a whole.
fn about(level: Level, path: &Path, event: &str, text: &str) {
    logging::emit(
        level,
        &format!("{}: {text}", path.display()),
        &[
            ("event", json!(event)),
            ("path", json!(path.display().to_string())),
        ],
    );
}

/// A PATH that cannot be opened or examined, before anything changed: a configuration error
/// (exit 2), such as a missing capability.
fn unusable(path: &Path, what: &str, errno: Errno) -> anyhow::Error {
    exit::usage(format!(
        "{}: {what}: {}",
        path.display(),
        error_text::io(&errno.into())
    ))
}

fn is(stat: &FileStat, kind: SFlag) -> bool {
    SFlag::from_bits_truncate(stat.st_mode) & SFlag::S_IFMT == kind
}

/// The entry opened must be the one examined: a rename in between would swap it.
fn same_entry(examined: &FileStat, opened: &FileStat, path: &Path) -> anyhow::Result<()> {
    if (examined.st_dev, examined.st_ino) != (opened.st_dev, opened.st_ino) {
        return Err(anyhow!(
            "{} was replaced while it was opened",
            path.display()
        ));
    }
    Ok(())
}
