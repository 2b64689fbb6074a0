//! fix-perms on real trees in temp dirs: symlinks never followed, mounts not crossed, what is
//! right left untouched (ctime), interruptions redone, dry runs, failures, hard links, signals.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;
use tempfile::TempDir;

use crate::support::{finish, initbox, is_root, run, spawn};

/// The uid and gid other than root's that the root-only tests give away files to.
const APP: &str = "1000:1000";

/// Root-only tests print why they did not run instead of failing where they cannot.
fn needs_root(test: &str, why: &str) -> bool {
    if !is_root() {
        eprintln!("skipping {test}: needs root ({why})");
        return true;
    }
    false
}

/// The running user as UID:GID: owning what it already owns needs no privilege, so the tests
/// that only change modes run as anyone.
fn me() -> String {
    format!(
        "{}:{}",
        nix::unistd::geteuid().as_raw(),
        nix::unistd::getegid().as_raw()
    )
}

/// A temp dir on tmpfs where there is one: ext4 avoids reusing recently freed inodes, which
/// makes creating tens of thousands of files right after other tests deleted theirs crawl.
fn scratch() -> TempDir {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        if let Ok(temp) = tempfile::tempdir_in(shm) {
            return temp;
        }
    }
    tempfile::tempdir().unwrap()
}

/// `dirs` directories of `files` files each, below `root/tree`, directories 0755 and files 0644.
fn tree(dirs: usize, files: usize) -> (TempDir, PathBuf) {
    let temp = scratch();
    let root = temp.path().join("tree");
    fs::create_dir(&root).unwrap();
    for d in 0..dirs {
        let dir = root.join(format!("d{d:03}"));
        fs::create_dir(&dir).unwrap();
        for f in 0..files {
            fs::File::create(dir.join(format!("f{f:03}"))).unwrap();
        }
    }
    set_modes(&root, 0o755, 0o644);
    (temp, root)
}

fn set_modes(root: &Path, dir_mode: u32, file_mode: u32) {
    for (path, meta) in entries(root) {
        let mode = if meta.is_dir() { dir_mode } else { file_mode };
        if !meta.is_symlink() {
            fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
        }
    }
}

/// Every entry below and including `root`, examined without following symlinks.
fn entries(root: &Path) -> BTreeMap<PathBuf, fs::Metadata> {
    let mut found = BTreeMap::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(path) = pending.pop() {
        let meta = fs::symlink_metadata(&path).unwrap();
        if meta.is_dir() {
            for entry in fs::read_dir(&path).unwrap() {
                pending.push(entry.unwrap().path());
            }
        }
        found.insert(path, meta);
    }
    found
}

fn mode(path: &Path) -> u32 {
    fs::symlink_metadata(path).unwrap().mode() & 0o7777
}

fn owner(path: &Path) -> (u32, u32) {
    let meta = fs::symlink_metadata(path).unwrap();
    (meta.uid(), meta.gid())
}

fn fix_perms(args: &[&str], paths: &[&Path]) -> Command {
    let mut command = initbox();
    command.arg("fix-perms").args(args).args(paths);
    command
}

/// The final summary event of a run made with `--log-format json`.
fn summary(stderr: &str) -> Value {
    stderr
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .find(|event| event["event"] == "summary")
        .unwrap_or_else(|| panic!("no summary event in:\n{stderr}"))
}

#[test]
fn a_symlink_to_a_file_or_directory_outside_the_tree_keeps_its_targets_owner() {
    if needs_root(
        "a_symlink_to_a_file_or_directory_outside_the_tree_keeps_its_targets_owner",
        "chown to another user",
    ) {
        return;
    }
    let (_temp, root) = tree(2, 2);
    let outside = scratch();
    let secret = outside.path().join("shadow");
    fs::write(&secret, b"root only").unwrap();
    let secret_dir = outside.path().join("etc");
    fs::create_dir(&secret_dir).unwrap();
    fs::write(secret_dir.join("inner"), b"x").unwrap();
    fs::set_permissions(&secret, fs::Permissions::from_mode(0o644)).unwrap();
    fs::set_permissions(&secret_dir, fs::Permissions::from_mode(0o755)).unwrap();
    symlink(&secret, root.join("d000/shadow")).unwrap();
    symlink(&secret_dir, root.join("etc")).unwrap();

    run(&mut fix_perms(
        &["--owner", APP, "--file-mode", "0600", "--dir-mode", "0700"],
        &[&root],
    ))
    .expect_code(0);

    // The symlinks themselves change owner (lchown); their targets do not, in owner or mode.
    assert_eq!(owner(&root.join("d000/shadow")), (1000, 1000));
    assert_eq!(owner(&root.join("etc")), (1000, 1000));
    for target in [&secret, &secret_dir, &secret_dir.join("inner")] {
        assert_eq!(owner(target), (0, 0), "{}", target.display());
    }
    assert_eq!(mode(&secret), 0o644);
    assert_eq!(mode(&secret_dir), 0o755);
    assert_eq!(owner(&root.join("d001/f001")), (1000, 1000));
    assert_eq!(mode(&root.join("d001/f001")), 0o600);
}

#[test]
fn a_filesystem_mounted_inside_the_tree_is_not_entered_unless_asked() {
    if needs_root(
        "a_filesystem_mounted_inside_the_tree_is_not_entered_unless_asked",
        "a tmpfs mounted in a private mount namespace",
    ) {
        return;
    }
    let (_temp, root) = tree(1, 1);
    let mount_point = root.join("d000/mnt");
    fs::create_dir(&mount_point).unwrap();
    // The mount exists only in a private mount namespace, gone when the shell exits; the
    // owners are read inside it.
    let inside = |flags: &str| {
        let script = format!(
            "set -e; mount -t tmpfs -o mode=0755 fixperms-test {mnt}; echo x > {mnt}/inner; \
             {initbox} fix-perms --owner {APP} {flags} {root}; stat -c '%u %n' {mnt} {mnt}/inner",
            mnt = mount_point.display(),
            initbox = env!("CARGO_BIN_EXE_initbox"),
            root = root.display(),
        );
        let result = run(Command::new("unshare")
            .args(["-m", "--propagation", "private", "sh", "-c", &script])
            .env("INITBOX_TERMINATION_LOG", ""));
        result.expect_code(0);
        result
    };

    let result = inside("");
    assert_eq!(
        result.stdout,
        format!("0 {0}\n0 {0}/inner\n", mount_point.display()),
        "{}",
        result.stderr
    );
    assert!(
        result.stderr.contains(&format!(
            "{}: on another filesystem, left alone",
            mount_point.display()
        )),
        "{}",
        result.stderr
    );
    assert_eq!(owner(&root.join("d000/f000")), (1000, 1000));
    // The directory under the mount was not changed through the mount either.
    assert_eq!(owner(&mount_point), (0, 0));

    let crossed = inside("--cross-mounts");
    assert_eq!(
        crossed.stdout,
        format!("1000 {0}\n1000 {0}/inner\n", mount_point.display())
    );
}

#[test]
fn a_bind_mount_of_the_same_filesystem_is_not_entered() {
    if needs_root(
        "a_bind_mount_of_the_same_filesystem_is_not_entered",
        "a bind mount in a private mount namespace",
    ) {
        return;
    }
    // A bind mount has the device number of the filesystem it comes from, as a subPath or a
    // hostPath on the node's disk does: only the mount table shows it is another mount.
    let (_temp, root) = tree(1, 1);
    let outside = tempfile::tempdir_in(root.parent().unwrap()).unwrap();
    fs::write(outside.path().join("outside.txt"), "x").unwrap();
    let mount_point = root.join("d000/bound");
    fs::create_dir(&mount_point).unwrap();
    let script = format!(
        "set -e; mount --bind {src} {mnt}; {initbox} fix-perms --owner {APP} {root}; \
         stat -c '%u' {mnt}/outside.txt",
        src = outside.path().display(),
        mnt = mount_point.display(),
        initbox = env!("CARGO_BIN_EXE_initbox"),
        root = root.display(),
    );
    let result = run(Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c", &script])
        .env("INITBOX_TERMINATION_LOG", ""));
    result.expect_code(0);
    assert_eq!(result.stdout, "0\n", "{}", result.stderr);
    assert!(
        result.stderr.contains(&format!(
            "{}: on another filesystem, left alone",
            mount_point.display()
        )),
        "{}",
        result.stderr
    );
    assert_eq!(owner(&outside.path().join("outside.txt")), (0, 0));
    assert_eq!(owner(&root.join("d000/f000")), (1000, 1000));
}

#[test]
fn a_tree_that_is_already_right_is_not_written_to() {
    let (_temp, root) = tree(3, 5);
    symlink("d000/f000", root.join("link")).unwrap();
    let args = [
        "--owner",
        &me(),
        "--file-mode",
        "0640",
        "--dir-mode",
        "0750",
    ];
    run(&mut fix_perms(&args, &[&root])).expect_code(0);
    let before = entries(&root);
    assert!(before.values().all(|meta| meta.is_symlink()
        || meta.mode() & 0o7777 == if meta.is_dir() { 0o750 } else { 0o640 }));
    // ctime has nanoseconds on these filesystems; a pause makes a write visible even on a
    // coarse clock.
    std::thread::sleep(Duration::from_millis(20));

    let again = run(fix_perms(&args, &[&root]).args(["--log-format", "json"]));
    again.expect_code(0);
    let after = entries(&root);
    for (path, meta) in &before {
        let now = &after[path];
        assert_eq!(
            (meta.ctime(), meta.ctime_nsec()),
            (now.ctime(), now.ctime_nsec()),
            "{} was written to",
            path.display()
        );
    }
    let summary = summary(&again.stderr);
    assert_eq!(summary["changed"], 0);
    assert_eq!(summary["scanned"], before.len() as u64);
    assert_eq!(summary["skipped"], before.len() as u64);
}

#[test]
fn a_dry_run_prints_what_would_change_and_changes_nothing() {
    let (_temp, root) = tree(2, 2);
    fs::set_permissions(root.join("d001/f000"), fs::Permissions::from_mode(0o600)).unwrap();
    let before = entries(&root);
    let result = run(&mut fix_perms(
        &["--owner", &me(), "--file-mode", "0600", "--dry-run"],
        &[&root],
    ));
    result.expect_code(0);
    let printed: Vec<&str> = result.stdout.lines().collect();
    let mut expected: Vec<String> = ["d000/f000", "d000/f001", "d001/f001"]
        .iter()
        .map(|name| root.join(name).display().to_string())
        .collect();
    let mut sorted = printed.clone();
    sorted.sort();
    expected.sort();
    assert_eq!(sorted, expected);
    let after = entries(&root);
    for (path, meta) in &before {
        let now = &after[path];
        assert_eq!(
            (meta.mode(), meta.ctime(), meta.ctime_nsec()),
            (now.mode(), now.ctime(), now.ctime_nsec()),
            "{}",
            path.display()
        );
    }
    assert!(
        result.stderr.contains("would change 3"),
        "{}",
        result.stderr
    );
}

#[test]
fn modes_are_set_separately_for_files_and_directories_and_only_when_asked() {
    let (_temp, root) = tree(1, 1);
    symlink("d000/f000", root.join("link")).unwrap();
    run(&mut fix_perms(
        &[
            "--owner",
            &me(),
            "--file-mode",
            "0604",
            "--dir-mode",
            "0711",
        ],
        &[&root],
    ))
    .expect_code(0);
    assert_eq!(mode(&root), 0o711);
    assert_eq!(mode(&root.join("d000")), 0o711);
    assert_eq!(mode(&root.join("d000/f000")), 0o604);
    assert_eq!(mode(&root.join("link")), 0o777);

    // Only --file-mode: directories keep theirs.
    run(&mut fix_perms(
        &["--owner", &me(), "--file-mode", "0640"],
        &[&root],
    ))
    .expect_code(0);
    assert_eq!(mode(&root.join("d000")), 0o711);
    assert_eq!(mode(&root.join("d000/f000")), 0o640);

    // A single file as PATH.
    let file = root.join("d000/f000");
    run(&mut fix_perms(
        &["--owner", &me(), "--file-mode", "0400"],
        &[&file],
    ))
    .expect_code(0);
    assert_eq!(mode(&file), 0o400);
}

#[test]
fn the_root_is_changed_last_and_if_root_mismatch_skips_a_tree_whose_root_is_right() {
    let (_temp, root) = tree(2, 2);
    let args = ["--owner", &me(), "--dir-mode", "0750", "--if-root-mismatch"];
    // The root is wrong: everything is walked.
    run(&mut fix_perms(&args, &[&root])).expect_code(0);
    assert_eq!(mode(&root.join("d001")), 0o750);
    // The root is right: a wrong entry below it stays as it is, and the log says why.
    fs::set_permissions(root.join("d001"), fs::Permissions::from_mode(0o700)).unwrap();
    let skipped = run(fix_perms(&args, &[&root]).args(["--log-format", "json"]));
    skipped.expect_code(0);
    assert_eq!(mode(&root.join("d001")), 0o700);
    assert!(
        skipped.stderr.contains("not walked (--if-root-mismatch)"),
        "{}",
        skipped.stderr
    );
    assert_eq!(summary(&skipped.stderr)["scanned"], 1);
    // Without the flag it is walked and fixed.
    run(&mut fix_perms(&args[..4], &[&root])).expect_code(0);
    assert_eq!(mode(&root.join("d001")), 0o750);
}

/// Waits until the run has `path` open: its walk has begun.
fn wait_for_the_walk(pid: u32, path: &Path) {
    let deadline = Instant::now() + Duration::from_secs(10);
    let open = || {
        fs::read_dir(format!("/proc/{pid}/fd"))
            .map(|fds| {
                fds.flatten()
                    .any(|fd| fs::read_link(fd.path()).is_ok_and(|target| target == path))
            })
            .unwrap_or(false)
    };
    while !open() {
        assert!(Instant::now() < deadline, "the walk did not start");
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn sigterm_stops_a_large_walk_at_once_with_143_and_a_rerun_finishes_it() {
    // 60,000 files whose mode must change: long enough a walk to stop halfway.
    let (_temp, root) = tree(60, 1000);
    let owner = me();
    let args = private_modes(&owner);
    let (child, started) = spawn(fix_perms(&args, &[&root]).arg("--if-root-mismatch"));
    wait_for_the_walk(child.id(), &root);
    let sent = Instant::now();
    kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM).unwrap();
    let result = finish(child, started);
    result.expect_code(143);
    assert!(
        sent.elapsed() < Duration::from_secs(1),
        "took {:?}",
        sent.elapsed()
    );
    assert!(
        result.stderr.contains("stopped by SIGTERM"),
        "{}",
        result.stderr
    );
    assert!(result.stderr.contains("scanned"), "{}", result.stderr);
    // The root is the mark of a finished run: left as it was, so the next run walks again.
    assert_eq!(mode(&root), 0o755);
    let left = entries(&root)
        .values()
        .filter(|meta| meta.mode() & 0o777 != if meta.is_dir() { 0o700 } else { 0o600 })
        .count();
    assert!(left > 1, "the walk had finished before the signal");

    run(fix_perms(&args, &[&root]).arg("--if-root-mismatch")).expect_code(0);
    assert_modes(&root, 0o700, 0o600);
}

/// Arguments that make every entry of a fresh [`tree`] differ, the root included.
fn private_modes(owner: &str) -> [&str; 6] {
    [
        "--owner",
        owner,
        "--dir-mode",
        "0700",
        "--file-mode",
        "0600",
    ]
}

/// Every directory below and including `root` has `dir_mode`, everything else `file_mode`.
fn assert_modes(root: &Path, dir_mode: u32, file_mode: u32) {
    for (path, meta) in entries(root) {
        let wanted = if meta.is_dir() { dir_mode } else { file_mode };
        assert_eq!(meta.mode() & 0o7777, wanted, "{}", path.display());
    }
}

#[test]
fn the_deadline_stops_the_walk_with_124_and_leaves_the_root_for_the_next_run() {
    let (_temp, root) = tree(20, 1000);
    let owner = me();
    let args = private_modes(&owner);
    let result = run(fix_perms(&args, &[&root]).args(["--timeout", "1ms"]));
    result.expect_code(124);
    assert!(
        result.stderr.contains("deadline of 1ms exceeded"),
        "{}",
        result.stderr
    );
    assert_eq!(mode(&root), 0o755);
    run(fix_perms(&args, &[&root]).arg("--if-root-mismatch")).expect_code(0);
    assert_modes(&root, 0o700, 0o600);
}

#[test]
fn a_hard_linked_file_is_changed_and_reported() {
    let (temp, root) = tree(1, 2);
    let outside = temp.path().join("elsewhere");
    fs::hard_link(root.join("d000/f001"), &outside).unwrap();
    let result = run(&mut fix_perms(
        &[
            "--owner",
            &me(),
            "--file-mode",
            "0600",
            "--log-format",
            "json",
        ],
        &[&root],
    ));
    result.expect_code(0);
    // Same inode: the name outside the tree sees the change.
    assert_eq!(mode(&outside), 0o600);
    let reported: Vec<Value> = result
        .stderr
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|event| event["event"] == "hardlink")
        .collect();
    assert_eq!(reported.len(), 1, "{}", result.stderr);
    assert_eq!(
        reported[0]["path"],
        root.join("d000/f001").display().to_string()
    );
    assert_eq!(reported[0]["links"], 2);
    let summary = summary(&result.stderr);
    assert_eq!(summary["hardlinked"], 1);
    assert_eq!(summary["changed"], 2);
}

/// Clears the immutable attribute it was given, so the temp dir can be removed.
struct Immutable(PathBuf);

impl Drop for Immutable {
    fn drop(&mut self) {
        let _ = Command::new("chattr").arg("-i").arg(&self.0).status();
    }
}

#[test]
fn an_entry_that_cannot_be_changed_is_named_and_the_rest_is_done() {
    if needs_root(
        "an_entry_that_cannot_be_changed_is_named_and_the_rest_is_done",
        "chattr +i and chown to another user",
    ) {
        return;
    }
    let (_temp, root) = tree(2, 3);
    let stuck = root.join("d001/f001");
    let attr = Command::new("chattr").arg("+i").arg(&stuck).output();
    if !attr.as_ref().is_ok_and(|out| out.status.success()) {
        eprintln!(
            "skipping an_entry_that_cannot_be_changed_is_named_and_the_rest_is_done: \
             chattr +i is not supported here: {attr:?}"
        );
        return;
    }
    let _cleanup = Immutable(stuck.clone());
    let termination = tempfile::NamedTempFile::new().unwrap();
    let result =
        run(fix_perms(&["--owner", APP], &[&root])
            .env("INITBOX_TERMINATION_LOG", termination.path()));
    result.expect_code(1);
    let line = format!(
        "{}: cannot change owner: operation not permitted",
        stuck.display()
    );
    assert!(result.stderr.contains(&line), "{}", result.stderr);
    let message = fs::read_to_string(termination.path()).unwrap();
    assert!(
        message.starts_with("1 entry could not be fixed"),
        "{message}"
    );
    assert!(message.contains(&line), "{message}");
    for (path, meta) in entries(&root) {
        let expected = if path == stuck || path == root {
            (0, 0)
        } else {
            (1000, 1000)
        };
        assert_eq!((meta.uid(), meta.gid()), expected, "{}", path.display());
    }
    // The root stays wrong, so the failure is retried even with --if-root-mismatch.
    assert!(
        result
            .stderr
            .contains("left as it was, since entries below it failed"),
        "{}",
        result.stderr
    );
}

#[test]
fn the_filesystem_root_symlinks_and_special_files_are_refused_with_exit_2() {
    let (temp, root) = tree(1, 1);
    let link = temp.path().join("link");
    symlink(&root, &link).unwrap();
    let missing = temp.path().join("missing");
    let cases: &[(&[&str], String)] = &[
        (&["/"], "/ is the root directory".into()),
        (&["//"], "is the root directory".into()),
        (&["/tmp/.."], "is the root directory".into()),
        (&[link.to_str().unwrap()], "is a symlink".into()),
        (&[&format!("{}/", link.display())], "is a symlink".into()),
        (
            &["/dev/null"],
            "is not a directory or a regular file".into(),
        ),
        (
            &[missing.to_str().unwrap()],
            "no such file or directory".into(),
        ),
        // A bad PATH after a good one: nothing is changed in the good one either.
        (
            &[root.to_str().unwrap(), "/dev/null"],
            "/dev/null is not".into(),
        ),
    ];
    for (paths, named) in cases {
        let result = run(initbox()
            .args(["fix-perms", "--owner", &me(), "--dir-mode", "0700"])
            .args(*paths));
        assert_eq!(result.code, Some(2), "{paths:?}: {}", result.stderr);
        assert_eq!(result.stderr.lines().count(), 1, "{}", result.stderr);
        assert!(result.stderr.contains(named.as_str()), "{}", result.stderr);
    }
    assert_eq!(mode(&root), 0o755);

    for bad in [
        &["--owner", "app"][..],
        &["--owner", "1000:"],
        &["--owner", "1000", "--file-mode", "rw-r--r--"],
        &["--owner", "1000", "--dir-mode", "17777"],
        &["--file-mode", "0644"],
    ] {
        let result = run(initbox()
            .arg("fix-perms")
            .args(bad)
            .arg(root.to_str().unwrap()));
        assert_eq!(result.code, Some(2), "{bad:?}: {}", result.stderr);
        assert_eq!(result.stderr.lines().count(), 1, "{}", result.stderr);
    }
}
