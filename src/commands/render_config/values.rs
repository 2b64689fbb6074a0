//! The variables a template sees: the process environment, then each `--values-dir` (a mounted
//! Secret or ConfigMap) on top, so the explicit input wins.

use std::collections::BTreeMap;
use std::path::Path;

use super::volume_files;
use crate::runtime::exit;
use crate::runtime::logging::{self, Level};
use crate::runtime::redact::{self, Secret};
use crate::text::shell_name;

/// Every value is held as a [`Secret`]: a Secret's keys and an environment variable set from
/// `secretKeyRef` look the same here, so none of them may reach a message.
#[derive(Debug)]
pub struct Values {
    vars: BTreeMap<String, Secret>,
}

impl Values {
    /// The environment, then `dirs` in order (a later one wins over an earlier one).
    pub fn load(dirs: &[impl AsRef<Path>]) -> anyhow::Result<Values> {
        let mut vars: BTreeMap<String, Secret> = std::env::vars_os()
            .map(|(name, value)| {
                (
                    name.to_string_lossy().into_owned(),
                    Secret::new(value.to_string_lossy()),
                )
            })
            .collect();
        for dir in dirs {
            let dir = dir.as_ref();
            let found = read_dir(dir)?;
            let names: Vec<&str> = found.keys().map(String::as_str).collect();
            logging::emit(
                Level::Debug,
                &format!(
                    "{}: {} values: {}",
                    dir.display(),
                    names.len(),
                    names.join(", ")
                ),
                &[
                    ("event", "values".into()),
                    ("dir", dir.display().to_string().into()),
                    ("names", names.into()),
                ],
            );
            vars.extend(found);
        }
        Ok(Values { vars })
    }

    /// Values given directly, for tests.
    #[cfg(test)]
    pub fn from_pairs(pairs: &[(&str, &str)]) -> Values {
        Values {
            vars: pairs
                .iter()
                .map(|(name, value)| (name.to_string(), Secret::new(*value)))
                .collect(),
        }
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars.get(name).map(Secret::expose)
    }

    /// Every name and value, for the jinja engine's `env`.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.vars
            .iter()
            .map(|(name, value)| (name.as_str(), value.expose()))
    }
}

/// Reads one values directory: each file becomes a variable, read as [`super::volume_files`]
/// lists them. A key such as `db-password` or `tls.crt` is named `db_password` / `tls_crt`, so
/// that `${db_password}` can refer to it; a name that is still not one is skipped with a warning.
fn read_dir(dir: &Path) -> anyhow::Result<BTreeMap<String, Secret>> {
    let mut found: BTreeMap<String, (String, Secret)> = BTreeMap::new();
    for (file_name, path) in volume_files(dir, "values directory")? {
        let file_name = file_name.to_string_lossy().into_owned();
        let name = file_name.replace(['-', '.'], "_");
        if !shell_name::is_valid(&name) {
            logging::emit(
                Level::Warn,
                &format!(
                    "{}: skipped: '{file_name}' cannot be a variable name \
                     (letters, digits, _, - and ., not starting with a digit)",
                    path.display()
                ),
                &[
                    ("event", "skipped".into()),
                    ("path", path.display().to_string().into()),
                ],
            );
            continue;
        }
        let value = redact::read_secret_file(&path, "value")?;
        if let Some((other, _)) = found.insert(name.clone(), (file_name.clone(), value)) {
            // Sorted listing: `other` comes first.
            return Err(exit::usage(format!(
                "{}: '{other}' and '{file_name}' would both be the variable {name}",
                dir.display()
            )));
        }
    }
    Ok(found
        .into_iter()
        .map(|(name, (_, value))| (name, value))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn a_configmap_volume_layout_is_read_through_its_links() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("..2026_11_21_23_00_00.123");
        std::fs::create_dir(&data).unwrap();
        std::fs::write(data.join("db-password"), "s3cret\n").unwrap();
        std::fs::write(data.join("tls.crt"), "CERT").unwrap();
        std::fs::write(data.join("3rd"), "x").unwrap();
        symlink(data.file_name().unwrap(), dir.path().join("..data")).unwrap();
        for key in ["db-password", "tls.crt", "3rd"] {
            symlink(format!("..data/{key}"), dir.path().join(key)).unwrap();
        }
        std::fs::create_dir(dir.path().join("subdir")).unwrap();
        let values = read_dir(dir.path()).unwrap();
        let names: Vec<&str> = values.keys().map(String::as_str).collect();
        assert_eq!(names, ["db_password", "tls_crt"]);
        assert_eq!(values["db_password"].expose(), "s3cret");
    }

    #[test]
    fn names_that_collide_are_an_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("db-host"), "a").unwrap();
        std::fs::write(dir.path().join("db_host"), "b").unwrap();
        let error = read_dir(dir.path()).unwrap_err();
        assert_eq!(exit::Exit::of(&error), exit::Exit::Usage);
        assert!(
            error.to_string().contains("'db-host' and 'db_host'"),
            "{error}"
        );
    }

    #[test]
    fn values_dirs_win_over_the_environment_and_later_dirs_win() {
        let first = tempfile::tempdir().unwrap();
        let second = tempfile::tempdir().unwrap();
        std::fs::write(first.path().join("PATH"), "/from/values").unwrap();
        std::fs::write(first.path().join("both"), "first").unwrap();
        std::fs::write(second.path().join("both"), "second").unwrap();
        let values = Values::load(&[first.path(), second.path()]).unwrap();
        assert_eq!(values.get("PATH"), Some("/from/values"));
        assert_eq!(values.get("both"), Some("second"));
        assert!(values.get("HOME").is_some() || std::env::var_os("HOME").is_none());
        let error = Values::load(&[first.path().join("missing")]).unwrap_err();
        assert_eq!(exit::Exit::of(&error), exit::Exit::Usage);
    }
}
