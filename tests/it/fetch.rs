//! fetch against Debian's nginx on loopback (ranges, ETags, 206, 416, HTTP/2 over TLS with a
//! private CA), through a proxy that cuts connections (resume), against a server that sends
//! fewer bytes than it announced, with archives built here (tar, tar.gz, zip) holding entries
//! that try to escape, and with SIGTERM mid-download.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::support::faults::{CuttingProxy, RawServer};
use crate::support::http::HttpServer;
use crate::support::nginx::{Nginx, TOKEN};
use crate::support::{Run, dir_names as names, finish, initbox, run, spawn, wait_until};

/// Runs `initbox fetch` with these arguments after the global ones.
fn fetch(global: &[&str], args: &[&str]) -> Run {
    run(initbox()
        .env_remove("SSL_CERT_FILE")
        .args(global)
        .arg("fetch")
        .args(args))
}

/// Bytes that differ at every position, so a misplaced resume shows.
fn content(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
    (0..len)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 33) as u8
        })
        .collect()
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// nginx serving one file of generated content, and an empty directory to download it into.
struct Served {
    nginx: Nginx,
    body: Vec<u8>,
    out: tempfile::TempDir,
    dest: PathBuf,
}

fn serve(name: &str, len: usize, seed: u64) -> Served {
    let nginx = Nginx::start();
    let body = content(len, seed);
    nginx.put(name, &body);
    let out = tempfile::tempdir().unwrap();
    let dest = out.path().join(name);
    Served {
        nginx,
        body,
        out,
        dest,
    }
}

fn path_str(path: &Path) -> &str {
    path.to_str().unwrap()
}

fn assert_contains(run: &Run, text: &str) {
    assert!(
        run.stderr.contains(text),
        "expected {text:?} in:\n{}",
        run.stderr
    );
}

#[test]
fn downloads_a_file_atomically_with_its_mode_and_hash() {
    let Served {
        nginx,
        body,
        out,
        dest,
    } = serve("model.bin", 3 << 20, 1);
    let sha = sha256_hex(&body);
    let args = [
        &nginx.url("/model.bin"),
        path_str(&dest),
        "--sha256",
        &sha,
        "--mode",
        "0640",
    ];
    let result = fetch(&[], &args);
    result.expect_code(0);
    assert_eq!(std::fs::read(&dest).unwrap(), body);
    let mode = || std::fs::metadata(&dest).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode(), 0o640);
    assert_eq!(names(out.path()), ["model.bin"]);
    assert_contains(&result, &format!("sha256 {sha}"));
    assert_contains(&result, "3.0 MiB in");
    // Run again (a restarted pod, a volume that kept the file): the hash matches, nothing is
    // downloaded, and the mode asked for is applied.
    std::fs::set_permissions(&dest, std::fs::Permissions::from_mode(0o600)).unwrap();
    let again = fetch(&[], &args);
    again.expect_code(0);
    assert_contains(&again, "not downloaded again");
    assert_eq!(nginx.access_log().len(), 1);
    assert_eq!(mode(), 0o640);
}

#[test]
fn a_wrong_hash_exits_1_names_both_hashes_and_writes_nothing() {
    let Served {
        nginx,
        body,
        out,
        dest,
    } = serve("app.tar", 100_000, 2);
    let wrong = "0".repeat(64);
    let result = fetch(
        &[],
        &[
            &format!("{}#sha256={wrong}", nginx.url("/app.tar")),
            path_str(&dest),
        ],
    );
    result.expect_code(1);
    assert_contains(
        &result,
        &format!("expected {wrong}, got {}", sha256_hex(&body)),
    );
    assert!(names(out.path()).is_empty(), "{:?}", names(out.path()));
}

/// Fetches `path` from nginx through a proxy that cuts the first connection after 1 MiB of the
/// answer and then runs `on_cut` (which may change the served file); later connections go
/// through. Checks that `expected` was written, and returns the run.
fn fetch_through_a_cut(
    nginx: &Nginx,
    path: &str,
    expected: &[u8],
    on_cut: impl Fn(usize) + Send + Sync + 'static,
) -> Run {
    let proxy = CuttingProxy::start(nginx.port, |n| (n == 0).then_some(1 << 20), on_cut);
    let out = tempfile::tempdir().unwrap();
    let dest = out.path().join("data.bin");
    // The hash is checked across the cut, the resume or the restart.
    let sha = sha256_hex(expected);
    let url = format!("{}#sha256={sha}", proxy.url(path));
    let result = fetch(&["--timeout", "30s"], &[&url, path_str(&dest)]);
    result.expect_code(0);
    assert_eq!(names(out.path()), ["data.bin"]);
    assert!(
        std::fs::read(&dest).unwrap() == expected,
        "{}",
        result.stderr
    );
    assert_contains(&result, &format!("sha256 {sha} checked"));
    result
}

#[test]
fn a_broken_download_resumes_with_range_and_if_range() {
    let nginx = Nginx::start();
    let body = content(4 << 20, 3);
    nginx.put("data.bin", &body);
    let result = fetch_through_a_cut(&nginx, "/data.bin", &body, |_| {});
    assert_contains(&result, "resuming at");
    let log = nginx.access_log();
    assert!(
        log[0].starts_with("200 GET /data.bin") && log[0].contains("range= "),
        "{log:?}"
    );
    assert!(log[1].starts_with("206 GET /data.bin"), "{log:?}");
    assert!(
        log[1].contains("range=bytes=") && log[1].contains("if_range=\""),
        "{log:?}"
    );
    assert_eq!(log.len(), 2, "{log:?}");
}

#[test]
fn a_server_without_ranges_means_starting_over_and_says_so() {
    let nginx = Nginx::start();
    let body = content(3 << 20, 4);
    nginx.put("data.bin", &body);
    let result = fetch_through_a_cut(&nginx, "/noranges/data.bin", &body, |_| {});
    assert_contains(&result, "the server does not resume");
    assert_contains(&result, "starting again from 0");
    let log = nginx.access_log();
    assert!(
        log[1].starts_with("200 ") && log[1].contains("range=bytes="),
        "{log:?}"
    );
}

#[test]
fn a_file_changed_between_attempts_is_fetched_whole_again() {
    let nginx = Nginx::start();
    nginx.put("data.bin", &content(3 << 20, 5));
    let replacement = content(2 << 20, 6);
    let (root, new) = (nginx.root.clone(), replacement.clone());
    let result = fetch_through_a_cut(&nginx, "/data.bin", &replacement, move |_| {
        // A new version of another size: another ETag.
        std::fs::write(root.join("data.bin.new"), &new).unwrap();
        std::fs::rename(root.join("data.bin.new"), root.join("data.bin")).unwrap();
    });
    assert_contains(&result, "the file changed on the server");
}

#[test]
fn a_416_for_the_rest_starts_over() {
    let nginx = Nginx::start();
    nginx.put("data.bin", &content(3 << 20, 7));
    let shorter = content(512 << 10, 8);
    let (root, new) = (nginx.root.clone(), shorter.clone());
    // Without an ETag, If-Range carries the date; the file shrinks but keeps its date, so the
    // server finds the range past its end: 416.
    let result = fetch_through_a_cut(&nginx, "/noetag/data.bin", &shorter, move |_| {
        let path = root.join("data.bin");
        let modified = std::fs::metadata(&path).unwrap().modified().unwrap();
        std::fs::write(&path, &new).unwrap();
        let file = std::fs::File::options().write(true).open(&path).unwrap();
        file.set_modified(modified).unwrap();
    });
    let log = nginx.access_log();
    assert!(log.iter().any(|line| line.starts_with("416 ")), "{log:?}");
    assert_contains(&result, "cannot send the rest (416)");
}

#[test]
fn a_body_shorter_than_its_content_length_is_never_written() {
    let server = RawServer::start(
        "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\nConnection: close\r\n\r\n".into(),
        vec![b'x'; 400],
    );
    let out = tempfile::tempdir().unwrap();
    let dest = out.path().join("short.bin");
    let result = fetch(
        &["--timeout", "2s"],
        &[&server.url("/short.bin"), path_str(&dest)],
    );
    result.expect_code(124);
    assert_contains(&result, "400 B of 1000 B");
    assert!(names(out.path()).is_empty(), "{:?}", names(out.path()));
}

#[test]
fn max_size_refuses_before_and_while_reading() {
    let Served {
        nginx, out, dest, ..
    } = serve("big.bin", 2 << 20, 9);
    let result = fetch(
        &[],
        &[&nginx.url("/big.bin"), path_str(&dest), "--max-size", "1Mi"],
    );
    result.expect_code(1);
    assert_contains(&result, "more than --max-size 1.0 MiB");
    // No Content-Length: the body ends when the connection closes, and is counted as it comes.
    let server = RawServer::start("HTTP/1.0 200 OK\r\n\r\n".into(), vec![b'y'; 2 << 20]);
    let result = fetch(
        &[],
        &[&server.url("/stream"), path_str(&dest), "--max-size", "1Mi"],
    );
    result.expect_code(1);
    assert_contains(&result, "larger than --max-size 1.0 MiB");
    assert!(names(out.path()).is_empty(), "{:?}", names(out.path()));
}

#[test]
fn statuses_decide_between_retrying_and_failing() {
    let nginx = Nginx::start();
    let out = tempfile::tempdir().unwrap();
    let dest = out.path().join("f");
    let result = fetch(&[], &[&nginx.url("/missing.bin"), path_str(&dest)]);
    result.expect_code(1);
    assert_contains(&result, "HTTP 404 Not Found");
    assert!(result.elapsed < Duration::from_secs(3));

    let server = HttpServer::start(|request| match request.number {
        0 | 1 => crate::support::http::Response::status(503),
        _ => crate::support::http::Response::ok("ready"),
    });
    let result = fetch(&["--timeout", "10s"], &[&server.url("/f"), path_str(&dest)]);
    result.expect_code(0);
    assert_eq!(std::fs::read_to_string(&dest).unwrap(), "ready");

    // 429 with Retry-After: 1 is retried no sooner than a second later.
    let result = fetch(
        &["--timeout", "2500ms"],
        &[&nginx.url("/busy"), path_str(&dest)],
    );
    result.expect_code(124);
    let tries = nginx
        .access_log()
        .iter()
        .filter(|line| line.starts_with("429 "))
        .count();
    assert!((2..=3).contains(&tries), "{tries} requests in 2.5s");
}

#[test]
fn a_token_from_a_file_is_sent_but_never_logged_nor_sent_to_another_host() {
    let nginx = Nginx::start();
    nginx.put("report.csv", b"a,b\n1,2\n");
    let secrets = tempfile::tempdir().unwrap();
    let token_file = secrets.path().join("token");
    std::fs::write(&token_file, format!("Bearer {TOKEN}\n")).unwrap();
    let out = tempfile::tempdir().unwrap();
    let dest = out.path().join("report.csv");
    let header = format!("Authorization={}", token_file.display());

    let result = fetch(
        &["-v"],
        &[
            &nginx.url("/private/report.csv"),
            path_str(&dest),
            "--header-file",
            &header,
        ],
    );
    result.expect_code(0);
    assert_eq!(std::fs::read_to_string(&dest).unwrap(), "a,b\n1,2\n");
    // A redirect to the same host keeps the header.
    let result = fetch(
        &["-v"],
        &[
            &nginx.url("/to-self/report.csv"),
            path_str(&dest),
            "--header-file",
            &header,
        ],
    );
    result.expect_code(0);
    // A redirect to another host name does not get it: that server answers 401.
    let result = fetch(
        &["-v"],
        &[
            &nginx.url("/to-localhost/report.csv"),
            path_str(&dest),
            "--header-file",
            &header,
        ],
    );
    result.expect_code(1);
    assert_contains(&result, "HTTP 401 Unauthorized");
    assert!(!result.stderr.contains(TOKEN), "{}", result.stderr);
    let log = nginx.access_log();
    let to_localhost = log
        .iter()
        .find(|line| line.contains("host=localhost"))
        .unwrap();
    assert!(to_localhost.contains("auth= "), "{log:?}");
    // Without the token: 401 is final, at once.
    let result = fetch(&[], &[&nginx.url("/private/report.csv"), path_str(&dest)]);
    result.expect_code(1);
}

#[test]
fn https_with_a_private_ca_speaks_http2() {
    let Served {
        nginx,
        body,
        out,
        dest,
    } = serve("tls.bin", 1 << 20, 10);
    let result = fetch(
        &[],
        &[
            &nginx.https_url("/tls.bin"),
            path_str(&dest),
            "--ca",
            path_str(&nginx.ca_cert),
        ],
    );
    result.expect_code(0);
    assert_eq!(std::fs::read(&dest).unwrap(), body);
    let log = nginx.access_log();
    assert!(log.last().unwrap().contains("proto=HTTP/2.0"), "{log:?}");
    // The system bundle does not know the private CA.
    let result = fetch(
        &["--timeout", "2s"],
        &[
            &nginx.https_url("/tls.bin"),
            path_str(&out.path().join("x")),
        ],
    );
    result.expect_code(124);
    assert_contains(&result, "certificate");
}

#[test]
fn sigterm_mid_download_exits_143_and_leaves_nothing() {
    let Served {
        nginx, out, dest, ..
    } = serve("slow.bin", 20 << 20, 11);
    let (child, started) =
        spawn(initbox().args(["fetch", &nginx.url("/slow/slow.bin"), path_str(&dest)]));
    // Wait until part of the file has arrived in its temporary file.
    wait_until("a partial download", || {
        std::fs::read_dir(out.path())
            .unwrap()
            .any(|entry| entry.unwrap().metadata().unwrap().len() > 100_000)
    });
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let stop_sent = started.elapsed();
    let result = finish(child, started);
    result.expect_code(143);
    assert!(
        result.elapsed - stop_sent < Duration::from_secs(1),
        "{:?}",
        result.elapsed - stop_sent
    );
    assert!(names(out.path()).is_empty(), "{:?}", names(out.path()));
    let last = result
        .stderr_lines()
        .last()
        .copied()
        .unwrap_or_default()
        .to_string();
    assert!(
        last.contains("stopped by SIGTERM") && last.contains(" of 20.0 MiB received"),
        "{last}"
    );
}

#[test]
fn the_deadline_mid_download_says_how_far_it_got_and_leaves_nothing() {
    let Served {
        nginx, out, dest, ..
    } = serve("slow.bin", 20 << 20, 14);
    let result = fetch(
        &["--timeout", "2s"],
        &[&nginx.url("/slow/slow.bin"), path_str(&dest)],
    );
    result.expect_code(124);
    assert_contains(&result, "deadline of 2s exceeded; not ready: ");
    assert_contains(&result, "MiB of 20.0 MiB received");
    assert!(
        result.elapsed < Duration::from_secs(5),
        "{:?}",
        result.elapsed
    );
    assert!(names(out.path()).is_empty(), "{:?}", names(out.path()));
}

#[test]
fn several_files_in_parallel() {
    let nginx = Nginx::start();
    let (a, b) = (content(300_000, 12), content(200_000, 13));
    nginx.put("a.bin", &a);
    nginx.put("b.bin", &b);
    let out = tempfile::tempdir().unwrap();
    let result = fetch(
        &[],
        &[
            "--file",
            &format!(
                "{}#sha256={}={}",
                nginx.url("/a.bin"),
                sha256_hex(&a),
                out.path().join("a.bin").display()
            ),
            "--file",
            &format!(
                "{}={}",
                nginx.url("/b.bin"),
                out.path().join("b.bin").display()
            ),
        ],
    );
    result.expect_code(0);
    assert_eq!(std::fs::read(out.path().join("a.bin")).unwrap(), a);
    assert_eq!(std::fs::read(out.path().join("b.bin")).unwrap(), b);
}

#[test]
fn bad_input_is_one_line_and_exit_2() {
    let out = tempfile::tempdir().unwrap();
    let dest = out.path().join("f");
    let existing = out.path().join("existing");
    std::fs::write(&existing, "a file").unwrap();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec!["ftp://h/f".into(), path_str(&dest).into()],
            "expected http:// or https://",
        ),
        (
            vec!["http://h/f".into(), "/nonexistent/dir/f".into()],
            "does not exist",
        ),
        (
            vec!["http://h/f".into(), path_str(out.path()).into()],
            "is a directory",
        ),
        (
            vec![
                "http://h/f".into(),
                path_str(&dest).into(),
                "--sha256".into(),
                "abc".into(),
            ],
            "expected 64 hex digits",
        ),
        (
            vec![
                "http://h/f".into(),
                path_str(&dest).into(),
                "--max-size".into(),
                "lots".into(),
            ],
            "invalid size",
        ),
        (
            vec![
                "http://h/f.bin".into(),
                path_str(&dest).into(),
                "--extract".into(),
                "auto".into(),
            ],
            "cannot tell the archive format",
        ),
        (
            vec![
                "http://h/f.zip".into(),
                path_str(&dest).into(),
                "--extract".into(),
                "zip".into(),
                "--mode".into(),
                "0600".into(),
            ],
            "modes come from the archive",
        ),
        (
            vec!["--file".into(), "http://h/f".into()],
            "expected URL=DEST",
        ),
        (
            vec![
                "--file".into(),
                format!("http://h/f={}", dest.display()),
                "--sha256".into(),
                "0".repeat(64),
            ],
            "URL#sha256=HEX",
        ),
        (
            vec![
                "http://h/f".into(),
                path_str(&dest).into(),
                "--header-file".into(),
                "X-Token=/nonexistent".into(),
            ],
            "/nonexistent",
        ),
        (vec![], "nothing to fetch"),
        (
            vec![
                "http://h/f.zip".into(),
                path_str(&existing).into(),
                "--extract".into(),
                "zip".into(),
            ],
            "exists and is not a directory",
        ),
    ];
    for (args, expected) in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let result = fetch(&[], &args);
        result.expect_code(2);
        assert_eq!(
            result.stderr_lines().len(),
            1,
            "{args:?}:\n{}",
            result.stderr
        );
        assert!(
            result.stderr.contains(expected),
            "{args:?}: expected {expected:?} in\n{}",
            result.stderr
        );
    }
}

// --- archives ---------------------------------------------------------------------------------

/// Builds an archive with Python's tarfile or zipfile, which write whatever entry they are given.
/// `entries` is a Python list literal of (kind, name, data-or-target, mode) tuples, kinds
/// `file`, `dir`, `symlink`, `hardlink`, `chr`, `fifo`.
fn build_archive(path: &Path, entries: &str) {
    let script = r#"
import io, sys, tarfile, zipfile
path, entries = sys.argv[1], eval(sys.argv[2])
if path.endswith('.zip'):
    with zipfile.ZipFile(path, 'w', zipfile.ZIP_DEFLATED) as z:
        for kind, name, data, mode in entries:
            info = zipfile.ZipInfo(name)
            info.create_system = 3
            ftype = {'file': 0o100000, 'dir': 0o040000, 'symlink': 0o120000, 'chr': 0o020000, 'fifo': 0o010000}[kind]
            info.external_attr = (ftype | mode) << 16
            if kind == 'dir':
                info.external_attr |= 0x10
            z.writestr(info, data.encode() if kind != 'dir' else b'')
else:
    with tarfile.open(path, 'w:gz' if path.endswith('.tar.gz') else 'w') as t:
        for kind, name, data, mode in entries:
            info = tarfile.TarInfo(name)
            info.mode = mode
            payload = None
            if kind == 'file':
                payload = data.encode(); info.size = len(payload)
            elif kind == 'dir':
                info.type = tarfile.DIRTYPE
            elif kind == 'symlink':
                info.type = tarfile.SYMTYPE; info.linkname = data
            elif kind == 'hardlink':
                info.type = tarfile.LNKTYPE; info.linkname = data
            elif kind == 'chr':
                info.type = tarfile.CHRTYPE; info.devmajor = 1; info.devminor = 3
            elif kind == 'fifo':
                info.type = tarfile.FIFOTYPE
            t.addfile(info, io.BytesIO(payload) if payload is not None else None)
"#;
    let status = Command::new("python3")
        .args(["-c", script, path_str(path), entries])
        .status()
        .expect("run python3");
    assert!(status.success(), "building {}", path.display());
}

const GOOD_ENTRIES: &str = r#"[
    ('dir', 'site/', '', 0o755),
    ('file', 'site/index.html', '<h1>hello</h1>', 0o644),
    ('file', 'site/run.sh', 'echo hi', 0o4755),
    ('dir', 'site/private/', '', 0o700),
    ('file', 'site/private/key', 'k', 0o600),
    ('symlink', 'site/home.html', 'index.html', 0o777),
    ('symlink', 'site/private/up', '../index.html', 0o777),
]"#;

fn check_good_tree(root: &Path) {
    let site = root.join("site");
    assert_eq!(
        std::fs::read_to_string(site.join("index.html")).unwrap(),
        "<h1>hello</h1>"
    );
    assert_eq!(
        std::fs::read_to_string(site.join("home.html")).unwrap(),
        "<h1>hello</h1>"
    );
    assert_eq!(
        std::fs::read_to_string(site.join("private/up")).unwrap(),
        "<h1>hello</h1>"
    );
    let mode = |path: PathBuf| {
        std::fs::symlink_metadata(path)
            .unwrap()
            .permissions()
            .mode()
            & 0o7777
    };
    assert_eq!(mode(site.join("private")), 0o700);
    assert_eq!(mode(site.join("private/key")), 0o600);
    // setuid is dropped.
    assert_eq!(mode(site.join("run.sh")), 0o755);
}

#[test]
fn archives_unpack_into_dest_with_their_modes() {
    let nginx = Nginx::start();
    let build = tempfile::tempdir().unwrap();
    for name in ["site.tar", "site.tar.gz", "site.zip"] {
        build_archive(&build.path().join(name), GOOD_ENTRIES);
        nginx.put(name, &std::fs::read(build.path().join(name)).unwrap());
        let out = tempfile::tempdir().unwrap();
        let dest = out.path().join("www");
        let result = fetch(
            &[],
            &[
                &nginx.url(&format!("/{name}")),
                path_str(&dest),
                "--extract",
                "auto",
            ],
        );
        result.expect_code(0);
        check_good_tree(&dest);
        assert_eq!(names(out.path()), ["www"], "{name}");
        assert_contains(&result, "unpacked");
    }
    // A second run replaces the directory whole: a file the new archive lacks is gone.
    let out = tempfile::tempdir().unwrap();
    let dest = out.path().join("www");
    std::fs::create_dir(&dest).unwrap();
    std::fs::write(dest.join("stale.html"), "old").unwrap();
    let result = fetch(
        &[],
        &[
            &nginx.url("/site.tar.gz"),
            path_str(&dest),
            "--extract",
            "tar.gz",
        ],
    );
    result.expect_code(0);
    check_good_tree(&dest);
    assert!(!dest.join("stale.html").exists());
    assert_eq!(names(out.path()), ["www"]);
}

#[test]
fn hard_links_inside_the_archive_are_kept() {
    let nginx = Nginx::start();
    let build = tempfile::tempdir().unwrap();
    let archive = build.path().join("links.tar");
    build_archive(
        &archive,
        "[('file', 'a.txt', 'same', 0o644), ('hardlink', 'b.txt', 'a.txt', 0o644)]",
    );
    nginx.put("links.tar", &std::fs::read(&archive).unwrap());
    let out = tempfile::tempdir().unwrap();
    let dest = out.path().join("d");
    fetch(
        &[],
        &[
            &nginx.url("/links.tar"),
            path_str(&dest),
            "--extract",
            "tar",
        ],
    )
    .expect_code(0);
    use std::os::unix::fs::MetadataExt;
    assert_eq!(std::fs::metadata(dest.join("b.txt")).unwrap().nlink(), 2);
}

#[test]
fn entries_that_escape_are_refused_by_name_and_nothing_is_left() {
    let nginx = Nginx::start();
    let build = tempfile::tempdir().unwrap();
    let cases: &[(&str, &str, &str)] = &[
        (
            "dotdot",
            "[('file', 'ok.txt', 'x', 0o644), ('file', '../evil.txt', 'x', 0o644)]",
            "'../evil.txt' refused: '..' in its path",
        ),
        (
            "absolute",
            "[('file', '/tmp/initbox-evil.txt', 'x', 0o644)]",
            "'/tmp/initbox-evil.txt' refused: absolute path",
        ),
        (
            "symlink-out",
            "[('symlink', 'etc', '../../etc', 0o777)]",
            "'etc' refused: symlink pointing outside",
        ),
        (
            "symlink-abs",
            "[('symlink', 'passwd', '/etc/passwd', 0o777)]",
            "'passwd' refused: symlink to an absolute path",
        ),
        (
            "through-link",
            "[('symlink', 'here', '.', 0o777), ('symlink', 'here/here/x', '../../y', 0o777)]",
            "'here/here/x' refused: its path goes through 'here'",
        ),
        (
            "write-through-link",
            "[('dir', 'd/', '', 0o755), ('symlink', 'l', 'd', 0o777), ('file', 'l/f', 'x', 0o644)]",
            "'l/f' refused: its path goes through 'l'",
        ),
    ];
    let tar_only: &[(&str, &str, &str)] = &[
        (
            "hardlink-out",
            "[('hardlink', 'shadow', '../../etc/shadow', 0o644)]",
            "'shadow' refused: hard link pointing outside",
        ),
        (
            "hardlink-abs",
            "[('hardlink', 'shadow', '/etc/shadow', 0o644)]",
            "'shadow' refused: hard link pointing outside",
        ),
        (
            "device",
            "[('chr', 'null', '', 0o666)]",
            "'null' refused: device file",
        ),
        (
            "fifo",
            "[('fifo', 'pipe', '', 0o644)]",
            "'pipe' refused: FIFO",
        ),
    ];
    let zip_only: &[(&str, &str, &str)] = &[
        (
            "device",
            "[('chr', 'null', '', 0o666)]",
            "'null' refused: device file",
        ),
        (
            "fifo",
            "[('fifo', 'pipe', '', 0o644)]",
            "'pipe' refused: FIFO",
        ),
    ];
    let mut checks = Vec::new();
    for ext in ["tar", "tar.gz", "zip"] {
        let extra = if ext == "zip" { zip_only } else { tar_only };
        for (label, entries, expected) in cases.iter().chain(extra) {
            checks.push((format!("{label}.{ext}"), *entries, *expected));
        }
    }
    for (name, entries, _) in &checks {
        build_archive(&build.path().join(name), entries);
        nginx.put(name, &std::fs::read(build.path().join(name)).unwrap());
    }
    for (name, _, expected) in &checks {
        let out = tempfile::tempdir().unwrap();
        let inner = out.path().join("volume");
        std::fs::create_dir(&inner).unwrap();
        let dest = inner.join("dest");
        let result = fetch(
            &[],
            &[
                &nginx.url(&format!("/{name}")),
                path_str(&dest),
                "--extract",
                "auto",
            ],
        );
        assert_eq!(result.code, Some(1), "{name}:\n{}", result.stderr);
        assert!(
            result.stderr.contains(expected),
            "{name}: expected {expected:?} in\n{}",
            result.stderr
        );
        assert!(names(&inner).is_empty(), "{name}: left {:?}", names(&inner));
        assert_eq!(names(out.path()), ["volume"], "{name}");
    }
    assert!(!Path::new("/tmp/initbox-evil.txt").exists());
}
