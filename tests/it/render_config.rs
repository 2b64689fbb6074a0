//! render-config with the real binary: every expansion form, nginx's own `$variables` kept,
//! undefined variables listed together, jinja's strict mode, validation, ConfigMap and Secret
//! volume layouts, and outputs that are written whole or not at all, with their mode and owner.

use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::feed::output_with_input;
use crate::support::{Run, dir_names as names, initbox, is_root, run};

const SECRET: &str = "hunter2-very-secret";

fn render(args: &[&str]) -> Command {
    let mut command = initbox();
    command.arg("render-config").args(args);
    command
}

fn path(dir: &Path, name: &str) -> String {
    dir.join(name).to_str().unwrap().to_string()
}

fn read(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(name)).unwrap()
}

/// Writes `content` as `dir/name`; its path.
fn write_template(dir: &Path, name: &str, content: &str) -> String {
    std::fs::write(dir.join(name), content).unwrap();
    path(dir, name)
}

/// A fresh directory holding one template, `name`; the directory and the template's path.
fn one_template(name: &str, content: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let template = write_template(dir.path(), name, content);
    (dir, template)
}

/// An output file that already holds `previous`, as a failed run must leave it; its path.
fn previous(dir: &Path, name: &str) -> String {
    write_template(dir, name, "previous\n")
}

/// The mode bits of a file.
fn mode(path: impl AsRef<Path>) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

/// Lays `files` out as the kubelet mounts a ConfigMap or Secret volume: the files in a
/// timestamped directory, `..data` linking to it, and one link per key through `..data`.
fn volume(dir: &Path, files: &[(&str, &str)]) {
    let data = dir.join("..2026_11_21_23_00_00.123456789");
    std::fs::create_dir(&data).unwrap();
    for (name, content) in files {
        std::fs::write(data.join(name), content).unwrap();
    }
    symlink(data.file_name().unwrap(), dir.join("..data")).unwrap();
    for (name, _) in files {
        symlink(format!("..data/{name}"), dir.join(name)).unwrap();
    }
}

/// A fresh directory holding an empty `templates` directory and an empty `out` directory.
fn templates_and_out() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let root = tempfile::tempdir().unwrap();
    let (templates, out) = (root.path().join("templates"), root.path().join("out"));
    std::fs::create_dir(&templates).unwrap();
    std::fs::create_dir(&out).unwrap();
    (root, templates, out)
}

/// The command that renders every template in `templates` into `out`, with `args`.
fn render_into(templates: &Path, out: &Path, args: &[&str]) -> Command {
    let (templates, out) = (templates.to_str().unwrap(), out.to_str().unwrap());
    let mut command = render(&["--dir", templates, "--out", out]);
    command.args(args);
    command
}

/// `files` as templates in a fresh directory, an empty output directory beside it, and the
/// command that renders the one into the other.
fn render_dir(files: &[(&str, &str)]) -> (tempfile::TempDir, Command, PathBuf) {
    let (root, templates, out) = templates_and_out();
    for (name, content) in files {
        write_template(&templates, name, content);
    }
    (root, render_into(&templates, &out, &[]), out)
}

/// A failure: the exit code, exactly one line on stderr, and no secret anywhere in it.
fn expect_failure(result: &Run, code: i32) -> String {
    result.expect_code(code);
    let lines = result.stderr_lines();
    assert_eq!(lines.len(), 1, "{}", result.stderr);
    assert!(!result.stderr.contains(SECRET), "{}", result.stderr);
    assert!(!result.stderr.contains("panicked"), "{}", result.stderr);
    assert!(result.stdout.is_empty(), "{}", result.stdout);
    lines[0].to_string()
}

/// [`expect_failure`], its one line naming `text`.
fn expect_failure_naming(result: &Run, code: i32, text: &str) {
    let line = expect_failure(result, code);
    assert!(line.contains(text), "expected {text:?} in: {line}");
}

#[test]
fn every_expansion_form_has_its_posix_meaning() {
    let source = "\
plain=${RC_HOST}
empty=[${RC_EMPTY}]
colon_dash=${RC_EMPTY:-fallback} ${RC_UNSET:-fallback} ${RC_HOST:-fallback}
dash=[${RC_EMPTY-fallback}] ${RC_UNSET-fallback}
colon_question=${RC_HOST:?needed}
question=[${RC_EMPTY?needed}]
colon_plus=[${RC_HOST:+on}] [${RC_EMPTY:+on}]
plus=[${RC_EMPTY+on}] [${RC_UNSET+on}]
nested=${RC_UNSET:-http://${RC_HOST}:${RC_PORT:-5432}/}
dollar=$$5 $${RC_HOST}
";
    let (dir, template) = one_template("app.conf.tmpl", source);
    let result = run(render(&[&template, &path(dir.path(), "app.conf")])
        .env("RC_HOST", "db.local")
        .env("RC_EMPTY", "")
        .env_remove("RC_UNSET")
        .env_remove("RC_PORT"));
    result.expect_code(0);
    assert_eq!(
        read(dir.path(), "app.conf"),
        "\
plain=db.local
empty=[]
colon_dash=fallback fallback db.local
dash=[] fallback
colon_question=db.local
question=[]
colon_plus=[on] []
plus=[on] []
nested=http://db.local:5432/
dollar=$5 ${RC_HOST}
"
    );
    assert!(
        result.stderr.contains("wrote ") && result.stderr.contains("app.conf"),
        "{}",
        result.stderr
    );
    assert_eq!(mode(dir.path().join("app.conf")), 0o644);
}

#[test]
fn nginx_variables_are_kept_as_written() {
    let source = "\
server {
    listen ${RC_PORT};
    location / {
        proxy_set_header Host $host;
        proxy_set_header X-Real-IP $remote_addr;
        return 301 https://$host$request_uri;
    }
}
";
    let (_dir, template) = one_template("nginx.conf.tmpl", source);
    let result = run(render(&[&template, "-"]).env("RC_PORT", "8080"));
    result.expect_code(0);
    assert_eq!(result.stdout, source.replace("${RC_PORT}", "8080"));
}

#[test]
fn every_undefined_variable_is_listed_and_nothing_is_written() {
    let (dir, template) = one_template(
        "app.tmpl",
        "password=${RC_SECRET}\nhost=${RC_DB_HOST}\nkey=${RC_API_KEY:?mount the api-key Secret}\nagain=${RC_DB_HOST}\n",
    );
    let dest = previous(dir.path(), "app.conf");
    let termination = dir.path().join("termination-log");
    let result = run(initbox()
        .arg("--termination-log")
        .arg(&termination)
        .args(["render-config", &template, &dest])
        .env("RC_SECRET", SECRET)
        .env_remove("RC_DB_HOST")
        .env_remove("RC_API_KEY"));
    expect_failure_naming(
        &result,
        2,
        &format!(
            "undefined variables: RC_DB_HOST ({template}:2:6), RC_API_KEY ({template}:3:5: mount the api-key Secret); nothing written"
        ),
    );
    assert_eq!(read(dir.path(), "app.conf"), "previous\n");
    assert_eq!(
        names(dir.path()),
        ["app.conf", "app.tmpl", "termination-log"]
    );
    let message = std::fs::read_to_string(&termination).unwrap();
    assert!(message.contains("RC_DB_HOST"), "{message}");
    assert!(!message.contains(SECRET), "{message}");
}

#[test]
fn template_syntax_errors_name_the_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let template = path(dir.path(), "bad.tmpl");
    for (source, expected) in [
        ("ok\n  x=${RC_HOST\n", ":2:5: unterminated ${: no closing }"),
        ("a ${1abc}", ":1:3: invalid variable name '1abc'"),
        ("\n\n${a b}", ":3:1: invalid variable name 'a b'"),
        ("${RC_HOST#x}", ":1:1: unsupported expansion ${RC_HOST#x}"),
    ] {
        std::fs::write(&template, source).unwrap();
        let result = run(&mut render(&[&template, &path(dir.path(), "out")]));
        expect_failure_naming(&result, 2, &format!("{template}{expected}"));
        assert!(!dir.path().join("out").exists());
    }
}

#[test]
fn every_malformed_expression_of_every_template_is_on_the_one_line() {
    let (_root, mut command, out) = render_dir(&[
        ("a.conf", "a=${1x} b=${RC_A#x}\nc=${RC_A\n"),
        ("b.conf", "fine=${RC_A}\n"),
        ("c.conf", "\n  d=${RC_A:-${a b}}\n"),
    ]);
    let result = run(command.env("RC_A", "1"));
    let line = expect_failure(&result, 2);
    for place in [
        "a.conf:1:3: ",
        "a.conf:1:11: ",
        "a.conf:2:3: ",
        "c.conf:2:13: ",
    ] {
        assert!(line.contains(place), "{place}: {line}");
    }
    assert_eq!(line.matches("; ").count(), 4, "{line}");
    assert!(names(&out).is_empty());
}

#[test]
fn compatibility_switches_come_from_flags_or_the_environment() {
    let (_dir, template) = one_template(
        "nginx.conf.tmpl",
        "listen $RC_PORT;\nproxy_set_header Host $host;\nroot ${RC_ROOT:=/srv} ${RC_ROOT};\n",
    );
    // Strict by default: the bare names are text.
    let result = run(render(&[&template, "-"]).env("RC_PORT", "80"));
    result.expect_code(0);
    assert_eq!(
        result.stdout,
        "listen $RC_PORT;\nproxy_set_header Host $host;\nroot /srv /srv;\n"
    );
    // --bare-vars: $host is a variable too, and an undefined one.
    let result = run(render(&["--bare-vars", &template, "-"]).env("RC_PORT", "80"));
    expect_failure_naming(&result, 2, "undefined variables: host (");
    // ... unless unset variables are allowed, as GNU envsubst does (and wipes $host); --only
    // is what GNU envsubst '$RC_PORT' does, keeping $host. Flags and variables alike.
    let wiped = "listen 80;\nproxy_set_header Host ;\nroot /srv /srv;\n";
    let kept = "listen 80;\nproxy_set_header Host $host;\nroot /srv /srv;\n";
    type Variables<'a> = &'a [(&'a str, &'a str)];
    let cases: [(&[&str], Variables, &str); 4] = [
        (&["--bare-vars", "--allow-unset"], &[], wiped),
        (
            &[],
            &[("INITBOX_BARE_VARS", "true"), ("INITBOX_ALLOW_UNSET", "1")],
            wiped,
        ),
        (&["--only", "$RC_PORT,RC_ROOT"], &[], kept),
        (&[], &[("INITBOX_ONLY", "${RC_PORT} ${RC_ROOT}")], kept),
    ];
    for (flags, variables, expected) in cases {
        let result = run(render(flags)
            .args([&template, "-"])
            .envs(variables.iter().copied())
            .env("RC_PORT", "80"));
        result.expect_code(0);
        assert_eq!(result.stdout, expected, "{flags:?} {variables:?}");
    }
    // Bad values are refused, not read as false.
    for (variable, value, named) in [
        ("INITBOX_ALLOW_UNSET", "maybe", "--allow-unset"),
        ("INITBOX_BARE_VARS", "2", "--bare-vars"),
        (
            "INITBOX_ONLY",
            "db-host",
            "'db-host' is not a variable name",
        ),
    ] {
        let result = run(render(&[&template, "-"]).env(variable, value));
        expect_failure_naming(&result, 2, named);
    }
    let result = run(&mut render(&[
        "--engine",
        "jinja",
        "--allow-unset",
        &template,
        "-",
    ]));
    expect_failure_naming(&result, 2, "--allow-unset applies to --engine envsubst");
}

#[test]
fn an_assignment_stays_in_its_own_template() {
    let (_root, mut command, out) = render_dir(&[
        ("a.conf", "${RC_LEVEL:=debug} ${RC_LEVEL}\n"),
        ("b.conf", "${RC_LEVEL:-info}\n"),
    ]);
    let result = run(command.env_remove("RC_LEVEL"));
    result.expect_code(0);
    assert_eq!(read(&out, "a.conf"), "debug debug\n");
    assert_eq!(read(&out, "b.conf"), "info\n");
}

#[test]
fn a_brace_in_a_default_is_rendered_as_posix_says_with_a_warning() {
    let (_dir, template) = one_template("app.json.tmpl", "{\"opts\": ${RC_OPTS:-{\"k\":1}}}\n");
    let result = run(render(&[&template, "-"]).env_remove("RC_OPTS"));
    result.expect_code(0);
    assert_eq!(result.stdout, "{\"opts\": {\"k\":1}}\n");
    let warnings: Vec<&str> = result
        .stderr_lines()
        .into_iter()
        .filter(|line| line.contains("WARN"))
        .collect();
    assert_eq!(warnings.len(), 1, "{}", result.stderr);
    assert!(
        warnings[0].contains(&format!("{template}:1:10: ")),
        "{}",
        warnings[0]
    );
    // Set, the value is followed by the `}` that the default did not take.
    let result = run(render(&[&template, "-"]).env("RC_OPTS", "[]"));
    result.expect_code(0);
    assert_eq!(result.stdout, "{\"opts\": []}}\n");
}

#[test]
fn jinja_renders_conditionals_loops_files_and_filters() {
    let dir = tempfile::tempdir().unwrap();
    let secrets = dir.path().join("secrets");
    std::fs::create_dir(&secrets).unwrap();
    volume(&secrets, &[("password", &format!("{SECRET}\n"))]);
    let template = format!(
        "\
app:
  name: {{{{ env.RC_NAME | yaml_quote }}}}
  {{% if env.RC_TLS is defined %}}
  tls: true
  {{% endif %}}
  peers:
  {{% for peer in env.RC_PEERS | split(\",\") %}}
    - {{{{ peer }}}}
  {{% endfor %}}
  port: {{{{ env.RC_PORT | default(8080) }}}}
  auth: {{{{ (\"app:\" ~ file(\"{}\")) | b64encode }}}}
  json: {{{{ {{\"name\": env.RC_NAME}} | tojson }}}}
",
        secrets.join("password").display()
    );
    let template = write_template(dir.path(), "app.yaml", &template);
    let out = path(dir.path(), "out.yaml");
    let result = run(
        render(&["--engine", "jinja", "--validate", "yaml", &template, &out])
            .env("RC_NAME", "yes: no")
            .env("RC_PEERS", "a,b")
            .env_remove("RC_TLS")
            .env_remove("RC_PORT"),
    );
    result.expect_code(0);
    let auth = {
        // base64 of "app:" + SECRET, computed independently of the code under test.
        let input = format!("app:{SECRET}");
        let output = output_with_input(Command::new("base64").arg("-w0"), input.as_bytes());
        String::from_utf8(output.stdout).unwrap()
    };
    assert_eq!(
        read(dir.path(), "out.yaml"),
        format!(
            "\
app:
  name: \"yes: no\"
  peers:
    - a
    - b
  port: 8080
  auth: {auth}
  json: {{\"name\": \"yes: no\"}}
"
        )
    );
}

#[test]
fn jinja_is_strict_about_undefined_variables() {
    let (dir, template) = one_template(
        "app.j2",
        "user={{ env.RC_USER }}\n{% if env.RC_DEBUG %}debug{% endif %}\nhost={{ env.RC_HOST }}\nsecret={{ env.RC_SECRET }}\n",
    );
    let dest = previous(dir.path(), "app.conf");
    let result = run(render(&["--engine", "jinja", &template, &dest])
        .env("RC_USER", "app")
        .env("RC_SECRET", SECRET)
        .env_remove("RC_DEBUG")
        .env_remove("RC_HOST"));
    expect_failure_naming(
        &result,
        2,
        &format!(
            "{template}:2:7: undefined value: `env.RC_DEBUG` is undefined (undefined under env: RC_DEBUG, RC_HOST); nothing written"
        ),
    );
    assert_eq!(read(dir.path(), "app.conf"), "previous\n");
    assert_eq!(names(dir.path()), ["app.conf", "app.j2"]);

    // file() on a file that is not there names the path.
    let template = write_template(dir.path(), "file.j2", "{{ file(\"/nonexistent/secret\") }}");
    let result = run(&mut render(&["--engine", "jinja", &template, "-"]));
    expect_failure_naming(&result, 2, "/nonexistent/secret");
}

#[test]
fn malformed_output_is_refused_with_the_parsers_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "json",
            "config.json",
            "{\n  \"password\": \"${RC_SECRET}\",\n}\n",
            "invalid json at line 3, column 1: trailing comma",
        ),
        (
            "yaml",
            "config.yaml",
            "password: ${RC_SECRET}\n  nested: [\n",
            "invalid yaml at line 2, column 9: mapping values are not allowed in this context",
        ),
        (
            "toml",
            "config.toml",
            "[db]\npassword = ${RC_SECRET}\n",
            "invalid toml at line 2, column 12: string values must be quoted, expected literal string",
        ),
    ];
    for (format, name, template, reason) in cases {
        let template_path = write_template(dir.path(), &format!("{name}.tmpl"), template);
        let dest = previous(dir.path(), name);
        for validate in [format, "auto"] {
            let result =
                run(render(&["--validate", validate, &template_path, &dest])
                    .env("RC_SECRET", SECRET));
            expect_failure_naming(&result, 1, &format!("{dest}: {reason}; nothing written"));
            assert_eq!(std::fs::read_to_string(&dest).unwrap(), "previous\n");
        }
    }
    assert_eq!(
        names(dir.path()),
        [
            "config.json",
            "config.json.tmpl",
            "config.toml",
            "config.toml.tmpl",
            "config.yaml",
            "config.yaml.tmpl"
        ]
    );
    // The same output, quoted properly, passes.
    let fixed = write_template(
        dir.path(),
        "fixed.tmpl",
        "{\"password\": \"${RC_SECRET}\"}\n",
    );
    let dest = path(dir.path(), "fixed.json");
    run(render(&["--validate", "auto", &fixed, &dest]).env("RC_SECRET", SECRET)).expect_code(0);
}

#[test]
fn a_configmap_of_templates_renders_into_an_output_directory() {
    let (root, templates, out) = templates_and_out();
    let secret = root.path().join("secret");
    std::fs::create_dir(&secret).unwrap();
    volume(
        &templates,
        &[
            (
                "nginx.conf",
                "upstream app { server ${APP_HOST}:${APP_PORT:-8080}; }\nproxy_set_header Host $host;\n",
            ),
            (
                "app.json",
                "{\"user\": \"${db_user}\", \"password\": \"${db_password}\"}\n",
            ),
        ],
    );
    volume(
        &secret,
        &[
            ("db-user", "app\n"),
            ("db-password", &format!("{SECRET}\n")),
        ],
    );
    let values = ["--values-dir", secret.to_str().unwrap()];
    let flags = [&values[..], &["--validate", "auto", "--mode", "0640"]].concat();
    let result = run(render_into(&templates, &out, &flags)
        .env("APP_HOST", "app.svc")
        .env_remove("APP_PORT")
        // The Secret's value wins over the environment's.
        .env("db_user", "from-env"));
    result.expect_code(0);
    assert!(!result.stderr.contains(SECRET), "{}", result.stderr);
    assert_eq!(names(&out), ["app.json", "nginx.conf"]);
    assert_eq!(
        read(&out, "nginx.conf"),
        "upstream app { server app.svc:8080; }\nproxy_set_header Host $host;\n"
    );
    assert_eq!(
        read(&out, "app.json"),
        format!("{{\"user\": \"app\", \"password\": \"{SECRET}\"}}\n")
    );
    for name in ["app.json", "nginx.conf"] {
        assert_eq!(mode(out.join(name)), 0o640, "{name}");
        let meta = std::fs::metadata(out.join(name)).unwrap();
        assert!(meta.file_type().is_file(), "{name}");
    }
}

#[test]
fn one_bad_template_in_a_directory_means_nothing_is_written() {
    let (_root, templates, out) = templates_and_out();
    volume(
        &templates,
        &[
            ("a.conf", "a=${RC_A}\n"),
            ("b.json", "{\"b\": ${RC_B}}\n"),
            ("c.conf", "c=${RC_MISSING_1} ${RC_MISSING_2}\n"),
        ],
    );
    std::fs::write(out.join("a.conf"), "old a\n").unwrap();
    // RC_A set, RC_B as given, and the RC_MISSING_* pair set or not.
    let render_with = |b: &str, missing: &[&str]| {
        let mut command = render_into(&templates, &out, &["--validate", "auto"]);
        command.env("RC_A", "1").env("RC_B", b);
        for (name, value) in ["RC_MISSING_1", "RC_MISSING_2"].iter().zip(missing) {
            command.env(name, value);
        }
        run(&mut command)
    };
    let nothing_written = || {
        assert_eq!(names(&out), ["a.conf"]);
        assert_eq!(read(&out, "a.conf"), "old a\n");
    };
    // Undefined variables in one template: exit 2, nothing written.
    expect_failure_naming(
        &render_with("2", &[]),
        2,
        "undefined variables: RC_MISSING_1 (c.conf:1:3), RC_MISSING_2 (c.conf:1:19)",
    );
    nothing_written();

    // Invalid output in one file: exit 1, nothing written.
    expect_failure_naming(
        &render_with(SECRET, &["x", "y"]),
        1,
        "b.json: invalid json at line 1, column 7: expected value",
    );
    nothing_written();

    // All good: every file is written.
    render_with("2", &["x", "y"]).expect_code(0);
    assert_eq!(names(&out), ["a.conf", "b.json", "c.conf"]);
    assert_eq!(read(&out, "a.conf"), "a=1\n");
    assert_eq!(read(&out, "b.json"), "{\"b\": 2}\n");
}

#[test]
fn mode_and_owner_are_applied() {
    let (dir, template) = one_template("t", "x=${RC_X}\n");
    let dest = path(dir.path(), "secret.conf");
    run(render(&["--mode", "0400", &template, &dest]).env("RC_X", "1")).expect_code(0);
    assert_eq!(mode(&dest), 0o400);
    if !is_root() {
        eprintln!("skipping the --owner part: needs root");
        return;
    }
    let owner = ["--owner", "1234:5678", "--mode", "0440"];
    run(render(&[&owner[..], &[&template, &dest]].concat()).env("RC_X", "2")).expect_code(0);
    let meta = std::fs::metadata(&dest).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (1234, 5678));
    assert_eq!(mode(&dest), 0o440);
    assert_eq!(std::fs::read_to_string(&dest).unwrap(), "x=2\n");
}

#[test]
fn bad_arguments_are_usage_errors() {
    let (dir, template) = one_template("t", "x\n");
    let cases: &[(&[&str], &str)] = &[
        (&["render-config"], "<TEMPLATE|--dir"),
        (&["render-config", &template], "<DEST>"),
        (
            &["render-config", "--dir", dir.path().to_str().unwrap()],
            "--out",
        ),
        (
            &[
                "render-config",
                "--dir",
                dir.path().to_str().unwrap(),
                "--out",
                "/nonexistent",
            ],
            "output directory /nonexistent does not exist",
        ),
        (
            &["render-config", "--mode", "rw", &template, "/tmp/x"],
            "invalid mode 'rw'",
        ),
        (
            &["render-config", "--owner", "app", &template, "/tmp/x"],
            "invalid owner 'app'",
        ),
        (
            &[
                "render-config",
                "--engine",
                "handlebars",
                &template,
                "/tmp/x",
            ],
            "'handlebars'",
        ),
        (
            &["render-config", "--validate", "xml", &template, "/tmp/x"],
            "'xml'",
        ),
        (
            &["render-config", "/nonexistent/template", "/tmp/x"],
            "cannot read template /nonexistent/template",
        ),
        (
            &["render-config", &template, "/nonexistent/dir/x"],
            "directory /nonexistent/dir does not exist",
        ),
        (
            &[
                "render-config",
                "--values-dir",
                "/nonexistent",
                &template,
                "-",
            ],
            "cannot read values directory /nonexistent",
        ),
    ];
    for (args, named) in cases {
        expect_failure_naming(&run(initbox().args(*args)), 2, named);
    }
}
