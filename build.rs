//! Build-time facts for `initbox --version`: the git commit the sources came from and the target
//! triple. A build from a source tarball (no `.git`) says the commit is "unknown".

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let target = std::env::var("TARGET").unwrap_or_else(|_| "unknown".to_owned());
    println!("cargo:rustc-env=INITBOX_BUILD_TARGET={target}");
    println!("cargo:rerun-if-changed=build.rs");
    // Builds without .git (a container build whose context leaves it out) can name the commit.
    println!("cargo:rerun-if-env-changed=INITBOX_BUILD_COMMIT");
    let commit = std::env::var("INITBOX_BUILD_COMMIT")
        .ok()
        .map(|commit| commit.trim().to_owned())
        .filter(|commit| !commit.is_empty())
        .or_else(git_commit)
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=INITBOX_BUILD_COMMIT={commit}");
}

/// The commit checked out in this package's own git repository, abbreviated to 12 digits. None
/// without git, outside a repository, or when the nearest repository is not this package's (a
/// source tarball unpacked inside some other checkout must not take that checkout's commit).
fn git_commit() -> Option<String> {
    let dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR")?);
    let toplevel = git(&dir, &["rev-parse", "--show-toplevel"])?;
    if Path::new(&toplevel).canonicalize().ok()? != dir.canonicalize().ok()? {
        return None;
    }
    let commit = git(&dir, &["rev-parse", "--short=12", "HEAD"])?;
    // Build again when HEAD moves: a checkout, a commit on the current branch, a packed ref.
    for file in ["HEAD", "packed-refs"] {
        watch(&dir, file);
    }
    if let Some(branch) = git(&dir, &["symbolic-ref", "-q", "HEAD"]) {
        watch(&dir, &branch);
    }
    Some(commit)
}

/// Asks cargo to run this script again when the named file under the git directory changes.
fn watch(dir: &Path, name: &str) {
    if let Some(path) = git(
        dir,
        &["rev-parse", "--path-format=absolute", "--git-path", name],
    ) && Path::new(&path).exists()
    {
        println!("cargo:rerun-if-changed={path}");
    }
}

/// One git command's trimmed output, or None when git is missing or the command fails.
fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let output = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .ok()?;
    let text = String::from_utf8(output.stdout).ok()?;
    (output.status.success() && !text.trim().is_empty()).then(|| text.trim().to_owned())
}
