//! What to apply: the files against the ledger, by the tool's rules for changed, missing and
//! out-of-order files, and Flyway's repeatables after the versioned files.

use super::formats::{Applied, Format, State};
use super::source::Migration;

/// The rules a run may relax from the command line.
#[derive(Debug, Clone, Copy)]
pub struct Allow {
    pub out_of_order: bool,
    pub missing: bool,
}

#[derive(Debug)]
pub struct Plan<'a> {
    pub pending: Vec<&'a Migration>,
    /// Everything that forbids applying, one sentence each.
    pub problems: Vec<String>,
    /// Pending files that cannot run as written: bad input, so a usage error.
    pub unusable: Vec<String>,
    /// How many files count as applied.
    pub applied: usize,
}

/// The state of one file, for `status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileState {
    Applied,
    Pending,
    Changed,
}

pub fn file_state(format: Format, file: &Migration, state: &State) -> FileState {
    if file.repeatable {
        return match row_for(file, state) {
            Some(row) if checksum_matches(file, row) => FileState::Applied,
            _ => FileState::Pending,
        };
    }
    if below_floor(file, state) {
        return FileState::Applied;
    }
    match row_for(file, state) {
        Some(row) if format.checks_checksums() && !checksum_matches(file, row) => {
            FileState::Changed
        }
        Some(_) => FileState::Applied,
        None => FileState::Pending,
    }
}

fn row_for<'s>(file: &Migration, state: &'s State) -> Option<&'s Applied> {
    state
        .applied
        .iter()
        .find(|row| row.repeatable == file.repeatable && row.id == file.id)
}

fn below_floor(file: &Migration, state: &State) -> bool {
    matches!((&file.version, &state.floor), (Some(version), Some(floor)) if version <= floor)
}

fn checksum_matches(file: &Migration, row: &Applied) -> bool {
    match (&row.checksum, &file.checksum) {
        (Some(recorded), Some(now)) => {
            recorded == now || file.also_accepted.as_ref() == Some(recorded)
        }
        // Nothing recorded (a baseline row, a tool without checksums): nothing to compare.
        _ => true,
    }
}

pub fn plan<'a>(format: Format, files: &'a [Migration], state: &State, allow: Allow) -> Plan<'a> {
    let mut problems = Vec::new();
    let mut pending = Vec::new();
    let mut applied = 0;
    let mut unusable = Vec::new();
    let highest_file = files.iter().filter_map(|file| file.version.as_ref()).max();
    for row in state.applied.iter().filter(|row| !row.repeatable) {
        if files
            .iter()
            .any(|file| !file.repeatable && file.id == row.id)
        {
            continue;
        }
        // Flyway ignores applied versions newer than every file (a newer release rolled back).
        let future = format == Format::Flyway
            && matches!((&row.version, highest_file), (Some(version), Some(highest)) if version > highest);
        if format.refuses_missing() && !allow.missing && !future {
            problems.push(format!(
                "version {} is applied but its file is missing (--allow-missing to go on)",
                row.shown
            ));
        }
    }
    if let (Format::GolangMigrate, Some(floor)) = (format, &state.floor)
        && !allow.missing
        && !files
            .iter()
            .any(|file| file.version.as_ref() == Some(floor))
    {
        problems.push(format!(
            "no migration found for version {floor}, the current version in the ledger (--allow-missing to go on)"
        ));
    }
    let highest_applied = state
        .applied
        .iter()
        .filter(|row| !row.repeatable)
        .filter_map(|row| row.version.as_ref())
        .max();
    let out_of_order_allowed = allow.out_of_order || format.applies_out_of_order();
    for file in files {
        match file_state(format, file, state) {
            FileState::Applied => applied += 1,
            FileState::Changed => problems.push(format!(
                "{} was changed after it was applied (checksum {} recorded, {} now)",
                file.name,
                row_for(file, state)
                    .and_then(|row| row.checksum.as_ref())
                    .map_or_else(String::new, ToString::to_string),
                file.checksum
                    .as_ref()
                    .map_or_else(String::new, ToString::to_string),
            )),
            FileState::Pending => {
                if let Some(why) = &file.unusable {
                    unusable.push(format!("pending {why}"));
                    continue;
                }
                if !file.repeatable
                    && !out_of_order_allowed
                    && let (Some(version), Some(highest)) = (&file.version, highest_applied)
                    && version < highest
                {
                    problems.push(format!(
                        "{} is pending but older than applied version {highest} (--allow-out-of-order to apply it)",
                        file.name
                    ));
                    continue;
                }
                pending.push(file);
            }
        }
    }
    Plan {
        pending,
        problems,
        unusable,
        applied,
    }
}
