//! fetch: download files over HTTP(S) into a volume, each written atomically, checked against
//! its SHA-256 while it streams, resumed after a broken connection, and, if asked, unpacked from
//! an archive without letting any entry escape the destination.

mod hasher;
mod progress;
mod spec;
mod transfer;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::anyhow;
use futures_util::future::try_join_all;

use crate::fs::atomic::{self, AtomicFile, Owner};
use crate::fs::extract::{self, Format};
use crate::probe::http;
use crate::runtime::ctx::Ctx;
use crate::runtime::duration;
use crate::runtime::exit::{self, Exit};
use crate::runtime::logging::{self, Level};
use crate::runtime::redact;
use crate::runtime::retry::{self, deadline_exceeded};
use crate::runtime::signal;

use progress::{Progress, bytes};
use spec::{Extract, FileSpec};
use transfer::{Download, Settings};

/// Mode of downloaded files when --mode is not given.
const DEFAULT_MODE: u32 = 0o644;

#[derive(Debug, clap::Args)]
pub struct FetchArgs {
    /// http:// or https:// URL; `URL#sha256=HEX` checks the content.
    #[arg(value_name = "URL", requires = "dest")]
    pub url: Option<String>,

    /// Where to write it (the directory must exist); with --extract, the directory to unpack into.
    #[arg(value_name = "DEST")]
    pub dest: Option<PathBuf>,

    /// Another download, URL=DEST (repeatable); all run in parallel under one deadline.
    #[arg(long = "file", value_name = "URL=DEST")]
    pub files: Vec<String>,

    /// Expected SHA-256 of the content (64 hex digits), for the URL DEST form.
    #[arg(long, env = "INITBOX_FETCH_SHA256", value_name = "HEX", value_parser = spec::parse_sha256)]
    pub sha256: Option<[u8; 32]>,

    /// Refuse a larger body: 1048576, 512Mi, 10Gi, 2G.
    #[arg(long, env = "INITBOX_FETCH_MAX_SIZE", value_name = "SIZE", value_parser = spec::parse_size)]
    pub max_size: Option<u64>,

    /// Extra request header, "Name: value" (repeatable). Values are never logged.
    #[arg(long = "header", short = 'H', value_name = "NAME: VALUE", value_parser = spec::parse_header)]
    pub headers: Vec<(reqwest::header::HeaderName, reqwest::header::HeaderValue)>,

    /// A header whose value is a file's content, NAME=PATH (a token in a mounted Secret).
    #[arg(long = "header-file", value_name = "NAME=PATH")]
    pub header_files: Vec<String>,

    /// CA certificate (PEM) to verify https servers with, instead of the system bundle.
    #[arg(long, alias = "cacert", env = "INITBOX_FETCH_CA", value_name = "PATH")]
    pub ca: Option<PathBuf>,

    /// Accept any server certificate (the connection is still encrypted). Logged as a warning.
    #[arg(long, env = "INITBOX_FETCH_INSECURE", conflicts_with = "ca")]
    pub insecure: bool,

    /// Redirects followed at most.
    #[arg(
        long,
        env = "INITBOX_FETCH_MAX_REDIRECTS",
        default_value = "10",
        value_name = "N"
    )]
    pub max_redirects: usize,

    /// Unpack into DEST as a directory: tar, tar.gz, zip, or auto (by the URL's extension).
    #[arg(long, env = "INITBOX_FETCH_EXTRACT", value_name = "FORMAT", value_parser = spec::parse_extract)]
    pub extract: Option<Extract>,

    /// Mode of the written files, octal (default 0644; with --extract, modes come from the archive).
    #[arg(long, env = "INITBOX_FETCH_MODE", value_parser = atomic::parse_mode, value_name = "MODE")]
    pub mode: Option<u32>,

    /// Owner of the written files and unpacked entries, UID[:GID] (needs root or CAP_CHOWN).
    #[arg(long, env = "INITBOX_FETCH_OWNER", value_parser = Owner::parse, value_name = "UID[:GID]")]
    pub owner: Option<Owner>,

    /// How often a long download logs its progress.
    #[arg(long, env = "INITBOX_FETCH_PROGRESS_INTERVAL", default_value = "5s",
          value_name = "DURATION", value_parser = duration::parse)]
    pub progress_interval: Duration,
}

/// One download and what becomes of it.
struct Job {
    spec: FileSpec,
    extract: Option<Format>,
}

pub async fn run(args: &FetchArgs, ctx: &Ctx) -> anyhow::Result<()> {
    let jobs = jobs(args)?;
    let mut headers = args.headers.clone();
    for header_file in &args.header_files {
        headers.push(spec::read_header_file(header_file)?);
    }
    let trust = http::Trust {
        cacert: args.ca.as_ref(),
        unverified_by: args.insecure.then_some("--insecure"),
    };
    let settings = Settings {
        client: http::client_with_http2(trust, reqwest::redirect::Policy::none())?,
        headers,
        max_size: args.max_size,
        max_redirects: args.max_redirects,
        stall: ctx.policy.attempt_timeout,
    };
    try_join_all(jobs.iter().map(|job| fetch(ctx, args, &settings, job))).await?;
    Ok(())
}

/// Every download of the command line, checked before anything is fetched.
fn jobs(args: &FetchArgs) -> anyhow::Result<Vec<Job>> {
    let mut specs = Vec::new();
    if let (Some(url), Some(dest)) = (&args.url, &args.dest) {
        let mut first = spec::spec(url, dest.clone())?;
        if let Some(sha256) = args.sha256 {
            if first.sha256.is_some_and(|fragment| fragment != sha256) {
                return Err(exit::usage("--sha256 and the URL's #sha256= differ"));
            }
            first.sha256 = Some(sha256);
        }
        specs.push(first);
    } else if args.sha256.is_some() {
        return Err(exit::usage(
            "--sha256 goes with URL DEST; for --file, write URL#sha256=HEX",
        ));
    }
    for file in &args.files {
        specs.push(spec::parse_file(file)?);
    }
    if specs.is_empty() {
        return Err(exit::usage(
            "nothing to fetch: give URL DEST, or --file URL=DEST",
        ));
    }
    if args.extract.is_some() && args.mode.is_some() {
        return Err(exit::usage(
            "--mode applies to downloaded files; with --extract, modes come from the archive",
        ));
    }
    let mut jobs: Vec<Job> = Vec::new();
    for spec in specs {
        if jobs.iter().any(|job| job.spec.dest == spec.dest) {
            return Err(exit::usage(format!(
                "{} is the destination of two downloads",
                spec.dest.display()
            )));
        }
        let extract = match args.extract {
            None => None,
            Some(Extract::Format(format)) => Some(format),
            Some(Extract::Auto) => Some(Format::from_name(spec.url.path()).ok_or_else(|| {
                exit::usage(format!(
                    "--extract auto: cannot tell the archive format of {} (expected .tar, .tar.gz, .tgz or .zip); name it: --extract tar|tar.gz|zip",
                    redact::url(&spec.url)
                ))
            })?),
        };
        check_dest(&spec, extract)?;
        jobs.push(Job { spec, extract });
    }
    Ok(jobs)
}

/// A destination's directory must exist, and a file's destination must not be a directory.
fn check_dest(spec: &FileSpec, extract: Option<Format>) -> anyhow::Result<()> {
    let dir = atomic::parent_dir(&spec.dest);
    if !dir.is_dir() {
        return Err(exit::usage(format!(
            "cannot write {}: directory {} does not exist",
            spec.dest.display(),
            dir.display()
        )));
    }
    if extract.is_none() && spec.dest.is_dir() {
        return Err(exit::usage(format!(
            "{} is a directory: name the file to write (or unpack an archive with --extract)",
            spec.dest.display()
        )));
    }
    let is_other = std::fs::symlink_metadata(&spec.dest).is_ok_and(|meta| !meta.is_dir());
    if extract.is_some() && is_other {
        return Err(exit::usage(format!(
            "cannot unpack into {}: it exists and is not a directory",
            spec.dest.display()
        )));
    }
    Ok(())
}

async fn fetch(ctx: &Ctx, args: &FetchArgs, settings: &Settings, job: &Job) -> anyhow::Result<()> {
    let started = Instant::now();
    let target = redact::url(&job.spec.url);
    let dest = &job.spec.dest;
    if let (None, Some(expected)) = (job.extract, job.spec.sha256) {
        if already_there(ctx, args, dest, expected).await? {
            return Ok(());
        }
    }
    // An archive is downloaded to a temporary file that is removed once unpacked.
    let file = match job.extract {
        None => AtomicFile::create(dest, args.mode.unwrap_or(DEFAULT_MODE), args.owner)?,
        Some(_) => AtomicFile::create(
            &extract::work_dir(dest).join(".initbox-archive"),
            0o600,
            None,
        )?,
    };
    // Attempts run one after another; the lock only satisfies the borrow checker.
    let download = tokio::sync::Mutex::new(Download::new(
        file,
        target.clone(),
        Progress::new(target.clone(), args.progress_interval),
        job.spec.sha256.is_some(),
    )?);
    let fetched = retry::until_done(ctx, &target, |_| async {
        let mut download = download.lock().await;
        transfer::attempt(settings, &job.spec.url, &mut download).await
    })
    .await;
    let download = download.into_inner();
    if let Err(error) = fetched {
        // Stopped mid-transfer (the deadline, a signal): say how far it got.
        if download.received > 0
            && matches!(
                Exit::of(&error),
                Exit::DeadlineExceeded | Exit::Terminated | Exit::Interrupted
            )
        {
            ctx.report.attempt_failed(
                &target,
                &format!("{} received", transfer::received_of(&download)),
            );
        }
        return Err(error);
    }
    let size = download.received;
    let (file, digest) = download
        .finish()
        .await
        .map_err(|error| error.context(target.clone()))?;
    if let (Some(expected), Some(actual)) = (job.spec.sha256, digest) {
        if actual != expected {
            return Err(anyhow!(
                "{target}: sha256 mismatch: expected {}, got {}; nothing written to {}",
                hex(&expected),
                hex(&actual),
                dest.display()
            ));
        }
    }
    let unpacked = match job.extract {
        None => {
            file.commit()
                .map_err(|error| error.context(target.clone()))?;
            None
        }
        Some(format) => Some(
            unpack(ctx, file, format, dest, args.owner)
                .await
                .map_err(|error| error.context(target.clone()))?,
        ),
    };
    let checked = digest.map_or_else(String::new, |digest| {
        format!(", sha256 {} checked", hex(&digest))
    });
    let elapsed = started.elapsed();
    let rate = size as f64 / elapsed.as_secs_f64().max(0.001);
    let what = match unpacked {
        None => format!("{}", dest.display()),
        Some(summary) => format!(
            "{} ({} files, {} directories, {} links, {} unpacked)",
            dest.display(),
            summary.files,
            summary.dirs,
            summary.links,
            bytes(summary.bytes)
        ),
    };
    logging::emit(
        Level::Info,
        &format!(
            "fetched {target} to {what}: {} in {} ({}/s){checked}",
            bytes(size),
            duration::human(elapsed),
            bytes(rate as u64)
        ),
        &[
            ("event", "fetched".into()),
            ("target", target.as_str().into()),
            ("dest", dest.display().to_string().into()),
            ("bytes", size.into()),
            ("duration_ms", (elapsed.as_millis() as u64).into()),
            ("sha256", digest.map(|digest| hex(&digest)).into()),
        ],
    );
    Ok(())
}

/// Whether DEST is already a file with the expected hash (a restarted pod on a volume that
/// kept it): then it is not downloaded again, only given the mode and owner asked for.
async fn already_there(
    ctx: &Ctx,
    args: &FetchArgs,
    dest: &std::path::Path,
    expected: [u8; 32],
) -> anyhow::Result<bool> {
    let Ok(file) = std::fs::File::open(dest) else {
        return Ok(false);
    };
    if !file.metadata().is_ok_and(|meta| meta.is_file()) {
        return Ok(false);
    }
    let hashing = tokio::task::spawn_blocking(move || {
        use sha2::Digest;
        use std::io::Read;
        let mut hasher = sha2::Sha256::new();
        let mut buf = vec![0u8; 1 << 20];
        loop {
            match (&file).read(&mut buf)? {
                0 => break,
                n => hasher.update(&buf[..n]),
            }
        }
        std::io::Result::Ok((<[u8; 32]>::from(hasher.finalize()), file))
    });
    let (digest, file) = tokio::select! {
        result = hashing => match result {
            Ok(Ok(hashed)) => hashed,
            _ => return Ok(false),
        },
        stop = ctx.cancel.cancelled() => return Err(signal::stopped(stop)),
        () = ctx.deadline_reached() => return Err(deadline_exceeded(ctx)),
    };
    if digest != expected {
        return Ok(false);
    }
    let mode = args.mode.unwrap_or(DEFAULT_MODE);
    nix::sys::stat::fchmod(&file, nix::sys::stat::Mode::from_bits_truncate(mode))
        .map_err(|error| anyhow!("setting mode of {}: {error}", dest.display()))?;
    if let Some(owner) = args.owner {
        nix::unistd::fchown(&file, Some(owner.uid.into()), owner.gid.map(Into::into))
            .map_err(|error| anyhow!("setting owner of {}: {error}", dest.display()))?;
    }
    logging::emit(
        Level::Info,
        &format!(
            "{} already has sha256 {}: not downloaded again",
            dest.display(),
            hex(&digest)
        ),
        &[
            ("event", "up_to_date".into()),
            ("dest", dest.display().to_string().into()),
        ],
    );
    Ok(true)
}

/// Unpacks on a blocking thread, stopping it (and removing what it wrote) on a signal or at the
/// deadline.
async fn unpack(
    ctx: &Ctx,
    archive: AtomicFile,
    format: Format,
    dest: &std::path::Path,
    owner: Option<Owner>,
) -> anyhow::Result<extract::Summary> {
    let stop = Arc::new(AtomicBool::new(false));
    let reader = std::fs::File::open(archive.temp_path())
        .map_err(|error| anyhow!("reading the downloaded archive: {error}"))?;
    let task = {
        let (stop, dest) = (stop.clone(), dest.to_path_buf());
        tokio::task::spawn_blocking(move || extract::unpack(reader, format, &dest, owner, stop))
    };
    let mut task = std::pin::pin!(task);
    let interrupted = tokio::select! {
        result = &mut task => return finish_unpack(result, format, archive),
        stop = ctx.cancel.cancelled() => signal::stopped(stop),
        () = ctx.deadline_reached() => deadline_exceeded(ctx),
    };
    stop.store(true, Ordering::Relaxed);
    // The unpacking notices within one read and removes its temporary directory.
    let _ = task.await;
    drop(archive);
    Err(interrupted)
}

fn finish_unpack(
    result: Result<anyhow::Result<extract::Summary>, tokio::task::JoinError>,
    format: Format,
    archive: AtomicFile,
) -> anyhow::Result<extract::Summary> {
    drop(archive);
    let summary = result.map_err(|error| anyhow!("unpacking stopped: {error}"))?;
    summary.map_err(|error| {
        anyhow!(
            "unpacking the {} archive: {error:#}; nothing written",
            format.name()
        )
    })
}

fn hex(digest: &[u8]) -> String {
    digest.iter().map(|byte| format!("{byte:02x}")).collect()
}
