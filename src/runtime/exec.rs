//! `-- COMMAND...`: once waiting succeeded, become the command (same PID, its exit code is the
//! result), as wait-for-it does but never after a failure.

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::Path;

use crate::runtime::exit;

#[derive(Debug, Clone, clap::Args)]
pub struct ExecArgs {
    /// Command to exec in place of initbox after success (it keeps the PID; its exit code is the
    /// result). Not run when waiting fails.
    #[arg(last = true, value_name = "COMMAND")]
    pub command: Vec<OsString>,
}

impl ExecArgs {
    /// Fails before any waiting when the program cannot be found, so a typo does not cost a
    /// whole deadline first.
    pub fn check(&self) -> anyhow::Result<()> {
        match self.command.first() {
            Some(program) if find_program(Path::new(program)).is_none() => Err(exit::exec_failed(
                true,
                format!("command '{}' not found", program.to_string_lossy()),
            )),
            _ => Ok(()),
        }
    }

    /// Replaces this process with the command; returns only if that failed. No command: Ok.
    pub fn exec(&self) -> anyhow::Result<()> {
        let Some((program, args)) = self.command.split_first() else {
            return Ok(());
        };
        let error = std::process::Command::new(program).args(args).exec();
        Err(exit::exec_failed(
            error.kind() == std::io::ErrorKind::NotFound,
            format!("cannot run '{}': {error}", program.to_string_lossy()),
        ))
    }
}

/// Looks a program up the way execvp will: a name with a '/' as given, else each $PATH entry.
fn find_program(program: &Path) -> Option<std::path::PathBuf> {
    if program.as_os_str().as_encoded_bytes().contains(&b'/') {
        return program.exists().then(|| program.to_path_buf());
    }
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}
