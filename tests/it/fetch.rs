//! fetch against Debian's nginx on loopback (ranges, ETags, 206, 416, HTTP/2 over TLS with a
//! private CA), through a proxy that cuts connections (resume), against a server that sends
//! fewer bytes than it announced, with archives built here (tar, tar.gz, zip) holding entries
//! that try to escape, and with SIGTERM mid-download.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::support::expect::{Expect, stop_with_sigterm};
use crate::support::faults::{CuttingProxy, RawServer};
use crate::support::http::HttpServer;
use crate::support::nginx::{Nginx, TOKEN};
use crate::support::{Run, dir_names as names, initbox, run, spawn, wait_until};

/// Runs `initbox fetch` with these arguments after the global ones.
fn fetch(global: &[&str], args: &[&str]) -> Run {
    run(initbox()
        .env_remove("SSL_CERT_FILE")
        .args(global)
        .arg("fetch")
        .args(args))
}

/// Runs `initbox fetch URL DEST` with `extra` arguments after them.
fn fetch_to(global: &[&str], url: &str, dest: &Path, extra: &[&str]) -> Run {
    fetch(global, &[&[url, path_str(dest)], extra].concat())
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

/// nginx serving one file of generated content (also returned), and an empty directory with
/// the path to download it to.
fn serve(name: &str, len: usize, seed: u64) -> (Nginx, Vec<u8>, tempfile::TempDir, PathBuf) {
    let nginx = Nginx::start();
    let body = content(len, seed);
    nginx.put(name, &body);
    let out = tempfile::tempdir().unwrap();
    let dest = out.path().join(name);
    (nginx, body, out, dest)
}

fn path_str(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// A failed download leaves nothing behind: no partial file, no temporary file.
fn assert_empty(dir: &Path) {
    assert!(names(dir).is_empty(), "{:?}", names(dir));
}

#[test]
fn downloads_a_file_atomically_with_its_mode_and_hash() {
    let (nginx, body, out, dest) = serve("model.bin", 3 << 20, 1);
    let sha = sha256_hex(&body);
    let args = ["--sha256", &sha, "--mode", "0640"];
    let url = nginx.url("/model.bin");
    let result = fetch_to(&[], &url, &dest, &args);
    result.expect_code(0);
    assert_eq!(std::fs::read(&dest).unwrap(), body);
    let mode = || std::fs::metadata(&dest).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode(), 0o640);
    assert_eq!(names(out.path()), ["model.bin"]);
    result
        .expect_stderr(&format!("sha256 {sha}"))
        .expect_stderr("3.0 MiB in");
    // Run again (a restarted pod, a volume that kept the file): the hash matches, nothing is
    // downloaded, and the mode asked for is applied.
    std::fs::set_permissions(&dest, std::fs::Permissions::from_mode(0o600)).unwrap();
    let again = fetch_to(&[], &url, &dest, &args);
    again.expect_code(0);
    again.expect_stderr("not downloaded again");
    assert_eq!(nginx.access_log().len(), 1);
    assert_eq!(mode(), 0o640);
}

#[test]
fn a_wrong_hash_exits_1_names_both_hashes_and_writes_nothing() {
    let (nginx, body, out, dest) = serve("app.tar", 100_000, 2);
    let wrong = "0".repeat(64);
    let url = format!("{}#sha256={wrong}", nginx.url("/app.tar"));
    let result = fetch_to(&[], &url, &dest, &[]);
    result.expect_code(1);
    result.expect_stderr(&format!("expected {wrong}, got {}", sha256_hex(&body)));
    assert_empty(out.path());
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
    let result = fetch_to(&["--timeout", "30s"], &url, &dest, &[]);
    result.expect_code(0);
    assert_eq!(names(out.path()), ["data.bin"]);
    assert!(
        std::fs::read(&dest).unwrap() == expected,
        "{}",
        result.stderr
    );
    result.expect_stderr(&format!("sha256 {sha} checked"));
    result
}

/// nginx serving data.bin, the path of that file in its document root, and the new version of
/// another size the tests change it to mid-download.
fn data_and_its_next_version(len: usize, next_len: usize, seed: u64) -> (Nginx, PathBuf, Vec<u8>) {
    let (nginx, ..) = serve("data.bin", len, seed);
    let served = nginx.root.join("data.bin");
    (nginx, served, content(next_len, seed + 1))
}

#[test]
fn a_broken_download_resumes_with_range_and_if_range() {
    let (nginx, body, ..) = serve("data.bin", 4 << 20, 3);
    let result = fetch_through_a_cut(&nginx, "/data.bin", &body, |_| {});
    result.expect_stderr("resuming at");
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
    let (nginx, body, ..) = serve("data.bin", 3 << 20, 4);
    let result = fetch_through_a_cut(&nginx, "/noranges/data.bin", &body, |_| {});
    result
        .expect_stderr("the server does not resume")
        .expect_stderr("starting again from 0");
    let log = nginx.access_log();
    assert!(
        log[1].starts_with("200 ") && log[1].contains("range=bytes="),
        "{log:?}"
    );
}

#[test]
fn a_file_changed_between_attempts_is_fetched_whole_again() {
    let (nginx, served, replacement) = data_and_its_next_version(3 << 20, 2 << 20, 5);
    let new = replacement.clone();
    let result = fetch_through_a_cut(&nginx, "/data.bin", &replacement, move |_| {
        // A new version of another size: another ETag.
        let fresh = served.with_extension("bin.new");
        std::fs::write(&fresh, &new).unwrap();
        std::fs::rename(&fresh, &served).unwrap();
    });
    result.expect_stderr("the file changed on the server");
}

#[test]
fn a_416_for_the_rest_starts_over() {
    let (nginx, served, shorter) = data_and_its_next_version(3 << 20, 512 << 10, 7);
    let new = shorter.clone();
    // Without an ETag, If-Range carries the date; the file shrinks but keeps its date, so the
    // server finds the range past its end: 416.
    let result = fetch_through_a_cut(&nginx, "/noetag/data.bin", &shorter, move |_| {
        let modified = std::fs::metadata(&served).unwrap().modified().unwrap();
        std::fs::write(&served, &new).unwrap();
        let file = std::fs::File::options().write(true).open(&served).unwrap();
        file.set_modified(modified).unwrap();
    });
    let log = nginx.access_log();
    assert!(log.iter().any(|line| line.starts_with("416 ")), "{log:?}");
    result.expect_stderr("cannot send the rest (416)");
}

#[test]
fn a_body_shorter_than_its_content_length_is_never_written() {
    let server = RawServer::start(
        "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\nConnection: close\r\n\r\n".into(),
        vec![b'x'; 400],
    );
    let out = tempfile::tempdir().unwrap();
    let dest = out.path().join("short.bin");
    let result = fetch_to(&["--timeout", "2s"], &server.url("/short.bin"), &dest, &[]);
    result.expect_code(124);
    result.expect_stderr("400 B of 1000 B");
    assert_empty(out.path());
}

#[test]
fn max_size_refuses_before_and_while_reading() {
    let (nginx, _, out, dest) = serve("big.bin", 2 << 20, 9);
    let limit = ["--max-size", "1Mi"];
    let result = fetch_to(&[], &nginx.url("/big.bin"), &dest, &limit);
    result.expect_code(1);
    result.expect_stderr("more than --max-size 1.0 MiB");
    // No Content-Length: the body ends when the connection closes, and is counted as it comes.
    let server = RawServer::start("HTTP/1.0 200 OK\r\n\r\n".into(), vec![b'y'; 2 << 20]);
    let result = fetch_to(&[], &server.url("/stream"), &dest, &limit);
    result.expect_code(1);
    result.expect_stderr("larger than --max-size 1.0 MiB");
    assert_empty(out.path());
}

#[test]
fn statuses_decide_between_retrying_and_failing() {
    let nginx = Nginx::start();
    let out = tempfile::tempdir().unwrap();
    let dest = out.path().join("f");
    let result = fetch_to(&[], &nginx.url("/missing.bin"), &dest, &[]);
    result.expect_code(1).expect_within(Duration::from_secs(3));
    result.expect_stderr("HTTP 404 Not Found");

    let server = HttpServer::start(|request| match request.number {
        0 | 1 => crate::support::http::Response::status(503),
        _ => crate::support::http::Response::ok("ready"),
    });
    fetch_to(&["--timeout", "10s"], &server.url("/f"), &dest, &[]).expect_code(0);
    assert_eq!(std::fs::read_to_string(&dest).unwrap(), "ready");

    // 429 with Retry-After: 1 is retried no sooner than a second later.
    fetch_to(&["--timeout", "2500ms"], &nginx.url("/busy"), &dest, &[]).expect_code(124);
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
    let with_token = |path: &str| {
        fetch_to(
            &["-v"],
            &nginx.url(path),
            &dest,
            &["--header-file", &header],
        )
    };

    with_token("/private/report.csv").expect_code(0);
    assert_eq!(std::fs::read_to_string(&dest).unwrap(), "a,b\n1,2\n");
    // A redirect to the same host keeps the header.
    with_token("/to-self/report.csv").expect_code(0);
    // A redirect to another host name does not get it: that server answers 401.
    let result = with_token("/to-localhost/report.csv");
    result.expect_code(1);
    result.expect_stderr("HTTP 401 Unauthorized");
    assert!(!result.stderr.contains(TOKEN), "{}", result.stderr);
    let log = nginx.access_log();
    let to_localhost = log
        .iter()
        .find(|line| line.contains("host=localhost"))
        .unwrap();
    assert!(to_localhost.contains("auth= "), "{log:?}");
    // Without the token: 401 is final, at once.
    fetch_to(&[], &nginx.url("/private/report.csv"), &dest, &[]).expect_code(1);
}

#[test]
fn https_with_a_private_ca_speaks_http2() {
    let (nginx, body, out, dest) = serve("tls.bin", 1 << 20, 10);
    let url = nginx.https_url("/tls.bin");
    fetch_to(&[], &url, &dest, &["--ca", path_str(&nginx.ca_cert)]).expect_code(0);
    assert_eq!(std::fs::read(&dest).unwrap(), body);
    let log = nginx.access_log();
    assert!(log.last().unwrap().contains("proto=HTTP/2.0"), "{log:?}");
    // The system bundle does not know the private CA.
    let result = fetch_to(&["--timeout", "2s"], &url, &out.path().join("x"), &[]);
    result.expect_code(124);
    result.expect_stderr("certificate");
}

#[test]
fn sigterm_mid_download_exits_143_and_leaves_nothing() {
    let (nginx, _, out, dest) = serve("slow.bin", 20 << 20, 11);
    let (child, started) =
        spawn(initbox().args(["fetch", &nginx.url("/slow/slow.bin"), path_str(&dest)]));
    // Wait until part of the file has arrived in its temporary file.
    wait_until("a partial download", || {
        std::fs::read_dir(out.path())
            .unwrap()
            .any(|entry| entry.unwrap().metadata().unwrap().len() > 100_000)
    });
    let (result, to_exit) = stop_with_sigterm(child, started);
    result.expect_code(143);
    assert!(to_exit < Duration::from_secs(1), "{to_exit:?}");
    assert_empty(out.path());
    let last = result.last_line();
    assert!(
        last.contains("stopped by SIGTERM") && last.contains(" of 20.0 MiB received"),
        "{last}"
    );
}

#[test]
fn the_deadline_mid_download_says_how_far_it_got_and_leaves_nothing() {
    let (nginx, _, out, dest) = serve("slow.bin", 20 << 20, 14);
    let result = fetch_to(
        &["--timeout", "2s"],
        &nginx.url("/slow/slow.bin"),
        &dest,
        &[],
    );
    result
        .expect_code(124)
        .expect_within(Duration::from_secs(5));
    result
        .expect_stderr("deadline of 2s exceeded; not ready: ")
        .expect_stderr("MiB of 20.0 MiB received");
    assert_empty(out.path());
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
        fetch(&[], &args).expect_one_line(2, expected);
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

/// Builds an archive of `entries` (see [`build_archive`]) and serves it from nginx as `name`.
fn serve_archive(nginx: &Nginx, name: &str, entries: &str) {
    let build = tempfile::tempdir().unwrap();
    let archive = build.path().join(name);
    build_archive(&archive, entries);
    nginx.put(name, &std::fs::read(&archive).unwrap());
}

/// Unpacks the archive nginx serves as `name` into `dest`, as `format`.
fn extract(nginx: &Nginx, name: &str, dest: &Path, format: &str) -> Run {
    let url = nginx.url(&format!("/{name}"));
    fetch_to(&[], &url, dest, &["--extract", format])
}

#[test]
fn archives_unpack_into_dest_with_their_modes() {
    let nginx = Nginx::start();
    for name in ["site.tar", "site.tar.gz", "site.zip"] {
        serve_archive(&nginx, name, GOOD_ENTRIES);
        let out = tempfile::tempdir().unwrap();
        let dest = out.path().join("www");
        let result = extract(&nginx, name, &dest, "auto");
        result.expect_code(0);
        check_good_tree(&dest);
        assert_eq!(names(out.path()), ["www"], "{name}");
        result.expect_stderr("unpacked");
    }
    // A second run replaces the directory whole: a file the new archive lacks is gone.
    let out = tempfile::tempdir().unwrap();
    let dest = out.path().join("www");
    std::fs::create_dir(&dest).unwrap();
    std::fs::write(dest.join("stale.html"), "old").unwrap();
    extract(&nginx, "site.tar.gz", &dest, "tar.gz").expect_code(0);
    check_good_tree(&dest);
    assert!(!dest.join("stale.html").exists());
    assert_eq!(names(out.path()), ["www"]);
}

#[test]
fn hard_links_inside_the_archive_are_kept() {
    let nginx = Nginx::start();
    serve_archive(
        &nginx,
        "links.tar",
        "[('file', 'a.txt', 'same', 0o644), ('hardlink', 'b.txt', 'a.txt', 0o644)]",
    );
    let out = tempfile::tempdir().unwrap();
    let dest = out.path().join("d");
    extract(&nginx, "links.tar", &dest, "tar").expect_code(0);
    use std::os::unix::fs::MetadataExt;
    assert_eq!(std::fs::metadata(dest.join("b.txt")).unwrap().nlink(), 2);
}

#[test]
fn entries_that_escape_are_refused_by_name_and_nothing_is_left() {
    let nginx = Nginx::start();
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
    // Special files, which both tar and zip can carry.
    let special: &[(&str, &str, &str)] = &[
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
    let hard_links: &[(&str, &str, &str)] = &[
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
    ];
    let mut checks = Vec::new();
    for ext in ["tar", "tar.gz", "zip"] {
        // Only tar has hard links.
        let extra = if ext == "zip" { &[][..] } else { hard_links };
        for (label, entries, expected) in cases.iter().chain(extra).chain(special) {
            checks.push((format!("{label}.{ext}"), *entries, *expected));
        }
    }
    for (name, entries, _) in &checks {
        serve_archive(&nginx, name, entries);
    }
    for (name, _, expected) in &checks {
        let out = tempfile::tempdir().unwrap();
        let inner = out.path().join("volume");
        std::fs::create_dir(&inner).unwrap();
        let result = extract(&nginx, name, &inner.join("dest"), "auto");
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
