//! What `initbox --version` prints: the version, the git commit and the target triple (set by
//! build.rs), so a binary found in an image or a bug report says exactly what it is.

/// `0.1.0 (commit 88da1a2c3d4e, target x86_64-unknown-linux-musl)`; clap puts `initbox ` before
/// it. The commit is "unknown" for a build from sources without git history.
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("INITBOX_BUILD_COMMIT"),
    ", target ",
    env!("INITBOX_BUILD_TARGET"),
    ")"
);
