//! Small text helpers shared by the subcommands that read user-written files.

pub mod error_text;
pub mod shell_name;
