//! file:///path: ready when the file exists (another container writes it, a volume is mounted);
//! with `?nonempty`, when it also has content.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::anyhow;
use futures_util::future::LocalBoxFuture;

use crate::probe::Probe;
use crate::probe::query::Query;
use crate::runtime::exit;
use crate::runtime::redact;
use crate::runtime::retry::AttemptError;
use crate::text::error_text;

/// The parameters of a file: URI.
pub const PARAMS: &[&str] = &["nonempty"];

pub struct FileProbe {
    path: PathBuf,
    nonempty: bool,
    shown: String,
}

impl FileProbe {
    /// `file:///path` or `file://localhost/path`; the path is absolute and percent-decoded.
    pub fn from_url(url: &url::Url, query: &mut Query) -> anyhow::Result<FileProbe> {
        let shown = redact::url(url);
        if !matches!(url.host_str(), None | Some("" | "localhost")) {
            return Err(exit::usage(format!(
                "{shown}: a file: URI names a local path, as file:///path (three slashes)"
            )));
        }
        let path = url
            .to_file_path()
            .map_err(|()| exit::usage(format!("{shown}: not a usable file path")))?;
        Ok(FileProbe {
            shown: format!("file://{}", path.display()),
            path,
            nonempty: query.flag(&["nonempty"])?,
        })
    }

    /// One look, on a blocking thread: a stat on a hung network mount must not stop the
    /// deadline or a signal from ending the run.
    async fn look(&self) -> Result<(), AttemptError> {
        let (path, nonempty) = (self.path.clone(), self.nonempty);
        tokio::task::spawn_blocking(move || look(&path, nonempty))
            .await
            .map_err(|error| AttemptError::transient(anyhow!(error)))?
            .map_err(|error| AttemptError::transient(anyhow!(error)))
    }
}

fn look(path: &std::path::Path, nonempty: bool) -> Result<(), String> {
    let io = |error: std::io::Error| error_text::io(&error);
    let metadata = std::fs::metadata(path).map_err(io)?;
    if !nonempty {
        return Ok(());
    }
    let (empty, what) = if metadata.is_dir() {
        let mut entries = std::fs::read_dir(path).map_err(io)?;
        (entries.next().is_none(), "directory")
    } else {
        (metadata.len() == 0, "file")
    };
    if empty {
        return Err(format!("the {what} is empty"));
    }
    Ok(())
}

impl Probe for FileProbe {
    fn shown(&self) -> &str {
        &self.shown
    }

    fn check(&self, _budget: Duration) -> LocalBoxFuture<'_, Result<(), AttemptError>> {
        Box::pin(self.look())
    }
}
