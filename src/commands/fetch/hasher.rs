//! The SHA-256 of a download, computed on a thread of its own that reads the temporary file
//! back as it grows (from the page cache), so that hashing runs on another core while the
//! network is read and the file written, the way `curl | sha256sum` splits the work between two
//! processes. Nothing is copied between the two and nothing is queued: memory stays flat.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use anyhow::anyhow;
use sha2::{Digest, Sha256};

/// How much the thread reads and hashes at a time.
const PIECE: usize = 1 << 20;

/// What the writer has done, as the hashing thread sees it.
#[derive(Default)]
struct Written {
    /// Bytes in the file that will not change any more (within this generation).
    len: u64,
    /// Raised each time the file is emptied to start again.
    generation: u64,
    /// No more bytes will come.
    finished: bool,
    /// The download was abandoned: stop.
    abandoned: bool,
}

struct Shared {
    written: Mutex<Written>,
    changed: Condvar,
}

pub struct Hasher {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<std::io::Result<[u8; 32]>>>,
}

impl Hasher {
    /// Starts hashing `file` (a second handle on the file being written) from its start.
    pub fn start(file: File) -> anyhow::Result<Hasher> {
        let shared = Arc::new(Shared {
            written: Mutex::new(Written::default()),
            changed: Condvar::new(),
        });
        let thread = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("fetch-sha256".into())
                .spawn(move || hash(&file, &shared))
                .map_err(|error| anyhow!("starting the hashing thread: {error}"))?
        };
        Ok(Hasher {
            shared,
            thread: Some(thread),
        })
    }

    /// The file now holds `len` bytes for good.
    pub fn written(&self, len: u64) {
        self.update(|written| written.len = len);
    }

    /// The file was emptied: hash from the start again.
    pub fn restart(&self) {
        self.update(|written| {
            written.len = 0;
            written.generation += 1;
        });
    }

    /// Waits for the hash of everything written (on a blocking thread: it may still be catching
    /// up with the last bytes).
    pub async fn finish(mut self) -> anyhow::Result<[u8; 32]> {
        self.update(|written| written.finished = true);
        let thread = self.thread.take().expect("finish runs once");
        tokio::task::spawn_blocking(move || thread.join())
            .await
            .map_err(|error| anyhow!("hashing: {error}"))?
            .map_err(|_| anyhow!("the hashing thread failed"))?
            .map_err(|error| anyhow!("reading the downloaded file back to hash it: {error}"))
    }

    fn update(&self, change: impl FnOnce(&mut Written)) {
        let mut written = lock(&self.shared.written);
        change(&mut written);
        self.shared.changed.notify_one();
    }
}

impl Drop for Hasher {
    fn drop(&mut self) {
        self.update(|written| written.abandoned = true);
    }
}

fn lock(written: &Mutex<Written>) -> std::sync::MutexGuard<'_, Written> {
    written
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn hash(file: &File, shared: &Shared) -> std::io::Result<[u8; 32]> {
    let mut hasher = Sha256::new();
    let mut generation = 0;
    let mut position = 0u64;
    let mut buf = vec![0u8; PIECE];
    loop {
        let available = {
            let mut written = lock(&shared.written);
            loop {
                if written.abandoned {
                    return Err(std::io::Error::other("abandoned"));
                }
                if written.generation != generation {
                    generation = written.generation;
                    hasher = Sha256::new();
                    position = 0;
                }
                if written.len > position {
                    break written.len;
                }
                if written.finished {
                    return Ok(hasher.finalize().into());
                }
                written = shared
                    .changed
                    .wait(written)
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
            }
        };
        let want = (available - position).min(PIECE as u64) as usize;
        let read = file.read_exact_at(&mut buf[..want], position);
        // The file may have been emptied while it was read: those bytes (or that short read)
        // do not count.
        if lock(&shared.written).generation == generation {
            read?;
            hasher.update(&buf[..want]);
            position += want as u64;
        }
    }
}
