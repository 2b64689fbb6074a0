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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::migrate::formats::{Body, Checksum};
    use crate::commands::migrate::version::Version;

    fn file(
        format: Format,
        version: Option<&str>,
        name: &str,
        checksum: Option<Checksum>,
    ) -> Migration {
        let version = version.map(|text| Version::parse(text).unwrap());
        let description = name.to_string();
        Migration {
            id: format.id(name, version.as_ref(), &description),
            repeatable: version.is_none() && format == Format::Flyway,
            name: name.into(),
            version,
            description,
            body: Body::empty(),
            checksum,
            also_accepted: None,
            unusable: None,
        }
    }

    fn row(version: &str, checksum: Option<Checksum>) -> Applied {
        let version = Version::parse(version).unwrap();
        Applied {
            id: version.canonical(),
            shown: version.text.clone(),
            version: Some(version),
            checksum,
            repeatable: false,
        }
    }

    const STRICT: Allow = Allow {
        out_of_order: false,
        missing: false,
    };

    #[test]
    fn out_of_order_files_follow_each_tool() {
        for (format, refused) in [
            (Format::Goose, true),
            (Format::Flyway, true),
            (Format::Initbox, true),
            (Format::Sqlx, false),
            (Format::Dbmate, false),
        ] {
            let files = [
                file(format, Some("1"), "1_a.sql", None),
                file(format, Some("3"), "3_c.sql", None),
            ];
            let state = State {
                applied: vec![row("3", None)],
                ..State::default()
            };
            let plan = plan(format, &files, &state, STRICT);
            assert_eq!(
                !plan.problems.is_empty(),
                refused,
                "{format}: {:?}",
                plan.problems
            );
            assert_eq!(plan.pending.len(), usize::from(!refused), "{format}");
            let allowed = super::plan(
                format,
                &files,
                &state,
                Allow {
                    out_of_order: true,
                    missing: false,
                },
            );
            assert!(
                allowed.problems.is_empty() && allowed.pending.len() == 1,
                "{format}"
            );
        }
    }

    #[test]
    fn golang_migrates_one_version_covers_every_file_below_it() {
        let files = [
            file(Format::GolangMigrate, Some("1"), "1_a.up.sql", None),
            file(Format::GolangMigrate, Some("2"), "2_b.up.sql", None),
            file(Format::GolangMigrate, Some("3"), "3_c.up.sql", None),
        ];
        let state = State {
            floor: Version::parse("2"),
            exists: true,
            ..State::default()
        };
        let plan = plan(Format::GolangMigrate, &files, &state, STRICT);
        assert_eq!(plan.applied, 2);
        assert_eq!(
            plan.pending
                .iter()
                .map(|m| m.name.as_str())
                .collect::<Vec<_>>(),
            ["3_c.up.sql"]
        );
        let gone = State {
            floor: Version::parse("7"),
            ..State::default()
        };
        let plan = super::plan(Format::GolangMigrate, &files, &gone, STRICT);
        assert!(
            plan.problems[0].contains("no migration found for version 7"),
            "{:?}",
            plan.problems
        );
    }

    #[test]
    fn missing_files_follow_each_tool() {
        let files = [file(Format::Flyway, Some("2"), "V2__b.sql", None)];
        // Flyway ignores a "future" version (above every file) but not one below.
        let future = State {
            applied: vec![row("2", None), row("5", None)],
            ..State::default()
        };
        assert!(
            plan(Format::Flyway, &files, &future, STRICT)
                .problems
                .is_empty()
        );
        let below = State {
            applied: vec![row("1", None), row("2", None)],
            ..State::default()
        };
        assert_eq!(
            plan(Format::Flyway, &files, &below, STRICT).problems.len(),
            1
        );
        // dbmate and goose ignore applied versions without a file.
        let dbmate = [file(Format::Dbmate, Some("2"), "2_b.sql", None)];
        let state = State {
            applied: vec![
                Applied {
                    id: "1".into(),
                    ..row("1", None)
                },
                Applied {
                    id: "2".into(),
                    ..row("2", None)
                },
            ],
            ..State::default()
        };
        assert!(
            plan(Format::Dbmate, &dbmate, &state, STRICT)
                .problems
                .is_empty()
        );
    }

    #[test]
    fn checksums_are_compared_where_the_tool_records_them() {
        let changed = State {
            applied: vec![row("1", Some(Checksum::Crc32(1)))],
            ..State::default()
        };
        let files = [file(
            Format::Flyway,
            Some("1"),
            "V1__a.sql",
            Some(Checksum::Crc32(2)),
        )];
        let plan = plan(Format::Flyway, &files, &changed, STRICT);
        assert!(
            plan.problems[0].contains("V1__a.sql was changed"),
            "{:?}",
            plan.problems
        );
        // A repeatable whose checksum changed runs again; its raw text's checksum also counts.
        let mut repeatable = file(Format::Flyway, None, "R__v.sql", Some(Checksum::Crc32(7)));
        let recorded = State {
            applied: vec![Applied {
                id: repeatable.id.clone(),
                shown: "v".into(),
                version: None,
                checksum: Some(Checksum::Crc32(6)),
                repeatable: true,
            }],
            ..State::default()
        };
        assert_eq!(
            super::plan(
                Format::Flyway,
                std::slice::from_ref(&repeatable),
                &recorded,
                STRICT
            )
            .pending
            .len(),
            1
        );
        repeatable.also_accepted = Some(Checksum::Crc32(6));
        assert_eq!(
            super::plan(Format::Flyway, &[repeatable], &recorded, STRICT)
                .pending
                .len(),
            0
        );
    }
}
