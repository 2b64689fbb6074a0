//! What every run uses, whatever its subcommand: the context and deadline, the one retry loop,
//! signals, the final report and termination message, the one exit-code table, logging and its
//! timestamps, durations, exec after success, and redaction of secrets.

pub mod ctx;
pub mod duration;
pub mod exec;
pub mod exit;
pub mod logging;
pub mod redact;
pub mod report;
pub mod retry;
pub mod signal;
pub mod timestamp;
