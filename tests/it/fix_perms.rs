//! fix-perms on real trees in temp dirs: symlinks never followed, mounts not crossed, what is
//! right left untouched (ctime), interruptions redone, dry runs, failures, hard links, signals.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;

use crate::support::expect::{Expect, stop_with_sigterm};
use crate::support::{Run, initbox, is_root, run, spawn};

/// The uid and gid other than root's that the root-only tests give away files to.
const APP: &str = "1000:1000";

/// Root-only tests print why they did not run instead of failing where they cannot.
fn needs_root(why: &str) -> bool {
    if !is_root() {
        skipping(&format!("needs root ({why})"));
        return true;
    }
    false
}

/// [`tree`] for a test that needs root: None, saying why, when not root.
fn root_only_tree(why: &str, dirs: usize, files: usize) -> Option<(TempDir, PathBuf)> {
    (!needs_root(why)).then(|| tree(dirs, files))
}

/// Outside any tree, for symlinks in one to point at: a file `shadow` (0644) and a directory
/// `etc` (0755) holding a file `inner`, all root's.
fn outside_targets() -> (TempDir, PathBuf, PathBuf) {
    let outside = scratch();
    let (secret, secret_dir) = (outside.path().join("shadow"), outside.path().join("etc"));
    fs::write(&secret, b"root only").unwrap();
    fs::create_dir(&secret_dir).unwrap();
    fs::write(secret_dir.join("inner"), b"x").unwrap();
    fs::set_permissions(&secret, fs::Permissions::from_mode(0o644)).unwrap();
    fs::set_permissions(&secret_dir, fs::Permissions::from_mode(0o755)).unwrap();
    (outside, secret, secret_dir)
}

/// Says that the running test stops here, and why (the test harness names each test's thread).
fn skipping(why: &str) {
    let thread = std::thread::current();
    eprintln!("skipping {}: {why}", thread.name().unwrap_or("this test"));
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

/// Runs fix-perms on `path` with `--owner` the running user and `args`.
fn fix_as_me(args: &[&str], path: &Path) -> Run {
    let owner = me();
    run(&mut fix_perms(
        &[&["--owner", &owner], args].concat(),
        &[path],
    ))
}

/// The events named `name` that a run made with `--log-format json` logged.
fn events(stderr: &str, name: &str) -> Vec<Value> {
    stderr
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|event| event["event"] == name)
        .collect()
}

/// The first event named `name`, which the run must have logged.
fn event(stderr: &str, name: &str) -> Value {
    let found = events(stderr, name).into_iter().next();
    found.unwrap_or_else(|| panic!("no {name} event in:\n{stderr}"))
}

/// The final summary event of a run made with `--log-format json`.
fn summary(stderr: &str) -> Value {
    event(stderr, "summary")
}

#[test]
fn a_symlink_to_a_file_or_directory_outside_the_tree_keeps_its_targets_owner() {
    let Some((_temp, root)) = root_only_tree("chown to another user", 2, 2) else {
        return;
    };
    let (_outside, secret, secret_dir) = outside_targets();
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
    let Some((_temp, root)) = root_only_tree("a tmpfs mounted in a private mount namespace", 1, 1)
    else {
        return;
    };
    let mount_point = root.join("d000/mnt");
    fs::create_dir(&mount_point).unwrap();
    // The owners are read inside the mount namespace, where the mount is.
    let mnt = mount_point.display();
    let inside = |flags: &str| {
        with_a_mount(
            &format!("mount -t tmpfs -o mode=0755 fixperms-test {mnt}; echo x > {mnt}/inner"),
            &format!("fix-perms --owner {APP} {flags}"),
            &root,
            &format!("stat -c '%u %n' {mnt} {mnt}/inner"),
        )
    };

    let result = inside("");
    assert_eq!(
        result.stdout,
        format!("0 {mnt}\n0 {mnt}/inner\n"),
        "{}",
        result.stderr
    );
    result.expect_stderr(&format!("{mnt}: on another filesystem, left alone"));
    assert_eq!(owner(&root.join("d000/f000")), (1000, 1000));
    // The directory under the mount was not changed through the mount either.
    assert_eq!(owner(&mount_point), (0, 0));

    let crossed = inside("--cross-mounts");
    assert_eq!(crossed.stdout, format!("1000 {mnt}\n1000 {mnt}/inner\n"));
}

#[test]
fn a_bind_mount_of_the_same_filesystem_is_not_entered() {
    // A bind mount has the device number of the filesystem it comes from, as a subPath or a
    // hostPath on the node's disk does: only the mount table shows it is another mount.
    let Some((_temp, root)) = root_only_tree("a bind mount in a private mount namespace", 1, 1)
    else {
        return;
    };
    let outside = tempfile::tempdir_in(root.parent().unwrap()).unwrap();
    fs::write(outside.path().join("outside.txt"), "x").unwrap();
    let mount_point = root.join("d000/bound");
    fs::create_dir(&mount_point).unwrap();
    let mnt = mount_point.display();
    let result = with_a_mount(
        &format!("mount --bind {} {mnt}", outside.path().display()),
        &format!("fix-perms --owner {APP}"),
        &root,
        &format!("stat -c '%u' {mnt}/outside.txt"),
    );
    assert_eq!(result.stdout, "0\n", "{}", result.stderr);
    result.expect_stderr(&format!("{mnt}: on another filesystem, left alone"));
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
    assert_not_written(&before, &root);
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
    let result = fix_as_me(&["--file-mode", "0600", "--dry-run"], &root);
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
    assert_not_written(&before, &root);
    result.expect_stderr("would change 3");
}

/// Every entry `before` listed still has its mode and its ctime: nothing was written to it.
fn assert_not_written(before: &BTreeMap<PathBuf, fs::Metadata>, root: &Path) {
    let after = entries(root);
    for (path, meta) in before {
        let now = &after[path];
        assert_eq!(
            (meta.mode(), meta.ctime(), meta.ctime_nsec()),
            (now.mode(), now.ctime(), now.ctime_nsec()),
            "{} was written to",
            path.display()
        );
    }
}

#[test]
fn modes_are_set_separately_for_files_and_directories_and_only_when_asked() {
    let (_temp, root) = tree(1, 1);
    symlink("d000/f000", root.join("link")).unwrap();
    fix_as_me(&["--file-mode", "0604", "--dir-mode", "0711"], &root).expect_code(0);
    assert_eq!(mode(&root), 0o711);
    assert_eq!(mode(&root.join("d000")), 0o711);
    assert_eq!(mode(&root.join("d000/f000")), 0o604);
    assert_eq!(mode(&root.join("link")), 0o777);

    // Only --file-mode: directories keep theirs.
    fix_as_me(&["--file-mode", "0640"], &root).expect_code(0);
    assert_eq!(mode(&root.join("d000")), 0o711);
    assert_eq!(mode(&root.join("d000/f000")), 0o640);

    // A single file as PATH.
    let file = root.join("d000/f000");
    fix_as_me(&["--file-mode", "0400"], &file).expect_code(0);
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
    skipped.expect_stderr("not walked (--if-root-mismatch)");
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
    let (result, to_exit) = stop_with_sigterm(child, started);
    result.expect_code(143);
    assert!(to_exit < Duration::from_secs(1), "took {to_exit:?}");
    result
        .expect_stderr("stopped by SIGTERM")
        .expect_stderr("scanned");
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
    result.expect_stderr("deadline of 1ms exceeded");
    assert_eq!(mode(&root), 0o755);
    run(fix_perms(&args, &[&root]).arg("--if-root-mismatch")).expect_code(0);
    assert_modes(&root, 0o700, 0o600);
}

#[test]
fn a_hard_linked_file_is_changed_and_reported() {
    let (temp, root) = tree(1, 2);
    let outside = temp.path().join("elsewhere");
    fs::hard_link(root.join("d000/f001"), &outside).unwrap();
    let result = fix_as_me(&["--file-mode", "0600", "--log-format", "json"], &root);
    result.expect_code(0);
    // Same inode: the name outside the tree sees the change.
    assert_eq!(mode(&outside), 0o600);
    let reported = events(&result.stderr, "hardlink");
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
    let Some((_temp, root)) = root_only_tree("chattr +i and chown to another user", 2, 3) else {
        return;
    };
    let stuck = root.join("d001/f001");
    let attr = Command::new("chattr").arg("+i").arg(&stuck).output();
    if !attr.as_ref().is_ok_and(|out| out.status.success()) {
        skipping(&format!("chattr +i is not supported here: {attr:?}"));
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
    result.expect_stderr(&line);
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
    result.expect_stderr("left as it was, since entries below it failed");
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
        result.expect_one_line(2, named);
    }
    assert_eq!(mode(&root), 0o755);

    for bad in [
        &["--owner", "app"][..],
        &["--owner", "1000:"],
        &["--owner", "1000", "--file-mode", "rw-r--r--"],
        &["--owner", "1000", "--dir-mode", "17777"],
        &["--file-mode", "0644"],
    ] {
        // Any one line: each names its own flag.
        run(&mut fix_perms(bad, &[&root])).expect_one_line(2, "");
    }
}

/// The `threads` event of a run made with `--log-format json --log-level debug`: the number of
/// walking threads and why.
fn threads_chosen(result: &Run) -> (u64, String) {
    let event = event(&result.stderr, "threads");
    (
        event["threads"].as_u64().unwrap(),
        event["why"].as_str().unwrap().to_owned(),
    )
}

const DEBUG_JSON: [&str; 4] = ["--log-format", "json", "--log-level", "debug"];

#[test]
fn the_thread_count_follows_the_cpus_allowed_and_threads_overrides_it() {
    let (_temp, root) = tree(2, 2);
    let owner = me();
    let args = ["--owner", owner.as_str()];
    let mut pinned = Command::new("taskset");
    pinned
        .args(["-c", "0", env!("CARGO_BIN_EXE_initbox")])
        .args(DEBUG_JSON)
        .arg("fix-perms")
        .args(args)
        .arg(&root)
        .env("INITBOX_TERMINATION_LOG", "");
    let result = run(&mut pinned);
    result.expect_code(0);
    let (threads, why) = threads_chosen(&result);
    assert_eq!(threads, 1, "{why}");
    assert!(why.starts_with("1 CPU allowed"), "{why}");

    let result = run(initbox()
        .args(DEBUG_JSON)
        .arg("fix-perms")
        .args(args)
        .args(["--threads", "3"])
        .arg(&root));
    result.expect_code(0);
    assert_eq!(threads_chosen(&result), (3, "--threads".to_owned()));

    let result = run(initbox()
        .args(DEBUG_JSON)
        .arg("fix-perms")
        .args(args)
        .arg(&root)
        .env("INITBOX_THREADS", "2"));
    result.expect_code(0);
    assert_eq!(threads_chosen(&result).0, 2);

    for bad in ["0", "many", "257"] {
        let result = run(initbox()
            .arg("fix-perms")
            .args(args)
            .args(["--threads", bad])
            .arg(&root));
        result.expect_one_line(2, "--threads");
    }
}

/// A CPU cgroup made for one test, with a child cgroup below it, as the kubelet makes a pod's
/// and a container's: the quota goes on the outer one (`cpu.cfs_quota_us` and
/// `cpu.cfs_period_us` on cgroup v1, `cpu.max` on v2), the process into the inner one, which
/// sets none, so only the walk up the hierarchy finds the limit. Removed when dropped.
struct CpuCgroup {
    outer: PathBuf,
    inner: PathBuf,
    v2: bool,
}

impl CpuCgroup {
    /// `None`, saying why, where no CPU controller can be used here.
    fn new(test: &str) -> Option<CpuCgroup> {
        let v1 = Path::new("/sys/fs/cgroup/cpu");
        let v2 = Path::new("/sys/fs/cgroup");
        let (top, is_v2) = if v1.join("cpu.cfs_quota_us").exists() {
            (v1, false)
        } else if fs::read_to_string(v2.join("cgroup.controllers"))
            .is_ok_and(|controllers| controllers.split_whitespace().any(|c| c == "cpu"))
            && fs::write(v2.join("cgroup.subtree_control"), "+cpu").is_ok()
        {
            (v2, true)
        } else {
            eprintln!("skipping {test}: no CPU cgroup controller can be used here");
            return None;
        };
        let outer = top.join(format!("initbox-test-{}-{test}", std::process::id()));
        let inner = outer.join("container");
        if let Err(error) = fs::create_dir(&outer) {
            eprintln!(
                "skipping {test}: cannot create {}: {error}",
                outer.display()
            );
            return None;
        }
        let cgroup = CpuCgroup {
            inner,
            outer,
            v2: is_v2,
        };
        if is_v2 {
            fs::write(cgroup.outer.join("cgroup.subtree_control"), "+cpu").unwrap();
        }
        fs::create_dir(&cgroup.inner).unwrap();
        Some(cgroup)
    }

    /// Limits the outer cgroup to `millicpus` (Kubernetes' `500m` is 500), over the kubelet's
    /// period of 100 ms.
    fn limit(&self, millicpus: u64) {
        let quota = millicpus * 100;
        if self.v2 {
            fs::write(self.outer.join("cpu.max"), format!("{quota} 100000")).unwrap();
        } else {
            fs::write(self.outer.join("cpu.cfs_period_us"), "100000").unwrap();
            fs::write(self.outer.join("cpu.cfs_quota_us"), quota.to_string()).unwrap();
        }
    }

    /// The file that holds the outer cgroup's quota.
    fn quota_file(&self) -> String {
        let name = if self.v2 {
            "cpu.max"
        } else {
            "cpu.cfs_quota_us"
        };
        format!(
            "{}/{name}",
            self.outer.file_name().unwrap().to_str().unwrap()
        )
    }

    /// Runs initbox with `args` in the inner cgroup: a shell moves itself there, then becomes
    /// initbox.
    fn run(&self, args: &[&str]) -> Run {
        let mut command = Command::new("sh");
        command
            .args(["-c", "echo $$ > \"$0/cgroup.procs\" && exec \"$@\""])
            .arg(&self.inner)
            .arg(env!("CARGO_BIN_EXE_initbox"))
            .args(args)
            .env("INITBOX_TERMINATION_LOG", "");
        run(&mut command)
    }
}

impl Drop for CpuCgroup {
    fn drop(&mut self) {
        // A cgroup is removed once its last process has gone, which can take a moment after
        // the process was reaped.
        let deadline = Instant::now() + Duration::from_secs(5);
        for dir in [&self.inner, &self.outer] {
            while fs::remove_dir(dir).is_err() && dir.exists() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
}

#[test]
fn under_a_cgroup_cpu_quota_below_two_cpus_one_thread_walks() {
    if needs_root("a CPU cgroup with a quota") {
        return;
    }
    let Some(cgroup) = CpuCgroup::new("quota") else {
        return;
    };
    let (_temp, root) = tree(2, 2);
    let root = root.to_str().unwrap();
    let owner = me();
    let mut args = DEBUG_JSON.to_vec();
    args.extend(["fix-perms", "--owner", &owner, root]);

    for (millicpus, shown) in [(100, "0.1"), (500, "0.5"), (1500, "1.5")] {
        cgroup.limit(millicpus);
        let result = cgroup.run(&args);
        result.expect_code(0);
        let (threads, why) = threads_chosen(&result);
        assert_eq!(threads, 1, "{millicpus}m: {why}");
        assert!(
            why.contains(&format!("CPU quota {shown} ("))
                && why.contains(&format!("{}00 of every 100000 µs", millicpus))
                && why.ends_with(&format!("{})", cgroup.quota_file())),
            "{millicpus}m: {why}"
        );
    }

    // Two CPUs' worth of quota: as many threads as CPUs allowed, up to two.
    cgroup.limit(2000);
    let result = cgroup.run(&args);
    result.expect_code(0);
    let (threads, why) = threads_chosen(&result);
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get().min(2));
    assert_eq!(threads as usize, cpus, "{why}");
    assert!(why.contains("CPU quota 2 ("), "{why}");

    // --threads wins over the quota.
    cgroup.limit(500);
    let mut forced = args.clone();
    forced.extend(["--threads", "2"]);
    let result = cgroup.run(&forced);
    result.expect_code(0);
    assert_eq!(threads_chosen(&result), (2, "--threads".to_owned()));
}

#[test]
fn where_every_entry_differs_owners_change_unexamined_and_symlinks_are_still_not_followed() {
    let Some((_temp, root)) = root_only_tree("chown to another user", 3, 100) else {
        return;
    };
    let (_outside, secret, secret_dir) = outside_targets();
    // Made last, so they come late in each directory (entries are taken in inode order), when
    // the walk has long stopped examining entries.
    for d in 0..3 {
        let dir = root.join(format!("d{d:03}"));
        symlink(&secret, dir.join("zz-file-link")).unwrap();
        symlink(&secret_dir, dir.join("zz-dir-link")).unwrap();
        nix::unistd::mkfifo(
            &dir.join("zz-fifo"),
            nix::sys::stat::Mode::from_bits_truncate(0o600),
        )
        .unwrap();
    }

    let dry = run(&mut fix_perms(
        &["--owner", APP, "--dry-run", "--log-format", "json"],
        &[&root],
    ));
    dry.expect_code(0);
    assert_eq!(
        summary(&dry.stderr)["unexamined"],
        0,
        "--dry-run examines every entry"
    );

    // One thread fixes entries straight from the directory listing, several share batches.
    for threads in ["1", "2"] {
        let reset = Command::new("chown")
            .args(["-R", "-h", "0:0"])
            .arg(&root)
            .status();
        assert!(reset.unwrap().success());
        let result = run(&mut fix_perms(
            &["--owner", APP, "--log-format", "json", "--threads", threads],
            &[&root],
        ));
        result.expect_code(0);
        let summary = summary(&result.stderr);
        let entries = entries(&root);
        assert_eq!(summary["changed"], entries.len() as u64);
        assert!(
            summary["unexamined"].as_u64().unwrap() > 200,
            "{}",
            result.stderr
        );
        for (path, meta) in &entries {
            assert_eq!((meta.uid(), meta.gid()), (1000, 1000), "{}", path.display());
        }
        assert_eq!(owner(&secret), (0, 0));
        assert_eq!(owner(&secret_dir), (0, 0));
    }
}

#[test]
fn a_file_mounted_into_a_large_directory_is_left_alone() {
    // As a ConfigMap key mounted with subPath: a file among many that all need a new owner,
    // which the walk would otherwise change without examining it.
    let Some((_temp, root)) = root_only_tree("a bind mount in a private mount namespace", 1, 200)
    else {
        return;
    };
    let source = scratch();
    let mounted_from = source.path().join("config.yaml");
    fs::write(&mounted_from, "x").unwrap();
    let mount_point = root.join("d000/zz-config.yaml");
    fs::write(&mount_point, "").unwrap();
    let result = with_a_mount(
        &format!(
            "mount --bind {} {}",
            mounted_from.display(),
            mount_point.display()
        ),
        &format!("--log-format json fix-perms --owner {APP}"),
        &root,
        ":",
    );
    result.expect_stderr("on another filesystem, left alone");
    assert!(summary(&result.stderr)["unexamined"].as_u64().unwrap() == 0);
    assert_eq!(owner(&mounted_from), (0, 0));
    assert_eq!(owner(&root.join("d000/f199")), (1000, 1000));
}

/// Runs the shell commands `mount`, then `initbox ARGS ROOT`, then `then` (which may read what
/// only the mount shows) in a mount namespace of its own, so its mounts go when it ends; each
/// must succeed.
fn with_a_mount(mount: &str, args: &str, root: &Path, then: &str) -> Run {
    let script = format!(
        "set -e; {mount}; {} {args} {}; {then}",
        env!("CARGO_BIN_EXE_initbox"),
        root.display()
    );
    let mut unshare = Command::new("unshare");
    unshare.args(["-m", "--propagation", "private", "sh", "-c", &script]);
    let result = run(unshare.env("INITBOX_TERMINATION_LOG", ""));
    result.expect_code(0);
    result
}
