//! The mount table as this process sees it (/proc/self/mountinfo): where each mount is, which
//! part of its filesystem it shows, and its type and options.

use std::path::PathBuf;

/// One line of the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// The directory of the filesystem that is mounted (`/` unless a bind mount or a cgroup
    /// namespace shows only part of it).
    pub root: PathBuf,
    /// Where it is mounted.
    pub point: PathBuf,
    pub fstype: String,
    /// The filesystem's own options (for a cgroup v1 hierarchy, its controllers: `rw,cpu`).
    pub super_options: String,
}

/// The table, or nothing when it cannot be read (no /proc): callers then know of no mounts.
pub fn read() -> Vec<Mount> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .map(|table| parse(&table))
        .unwrap_or_default()
}

pub fn parse(table: &str) -> Vec<Mount> {
    table.lines().filter_map(parse_line).collect()
}

/// `36 35 98:0 /mnt1 /mnt/parent rw,noatime master:1 - ext3 /dev/root rw,errors=continue`:
/// a variable number of optional fields ends at the `-`.
fn parse_line(line: &str) -> Option<Mount> {
    let (mount, filesystem) = line.split_once(" - ")?;
    let mut mount = mount.split(' ');
    let root = mount.nth(3)?;
    let point = mount.next()?;
    let mut filesystem = filesystem.split(' ');
    let fstype = filesystem.next()?;
    let super_options = filesystem.nth(1).unwrap_or_default();
    Some(Mount {
        root: PathBuf::from(unescape(root)),
        point: PathBuf::from(unescape(point)),
        fstype: unescape(fstype),
        super_options: super_options.to_owned(),
    })
}

/// mountinfo writes space, tab, newline and backslash as octal escapes (`\040`).
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let octal = field
            .get(index + 1..index + 4)
            .filter(|digits| {
                bytes[index] == b'\\' && digits.bytes().all(|b| (b'0'..=b'7').contains(&b))
            })
            .and_then(|digits| u8::from_str_radix(digits, 8).ok());
        match octal {
            Some(byte) => {
                out.push(byte);
                index += 4;
            }
            None => {
                out.push(bytes[index]);
                index += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_are_decoded() {
        assert_eq!(unescape("/data/with\\040space"), "/data/with space");
        assert_eq!(unescape("/plain"), "/plain");
    }

    #[test]
    fn lines_with_and_without_optional_fields_are_read() {
        let table = "\
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime shared:9 master:2 - cgroup cgroup rw,cpu,cpuacct
41 31 0:38 /kubepods/pod1 /sys/fs/cgroup rw,relatime - cgroup2 cgroup2 rw
50 23 8:1 /srv/data /data\\040dir rw - ext4 /dev/sda1 rw
not a mount line
";
        let mounts = parse(table);
        assert_eq!(mounts.len(), 3);
        assert_eq!(mounts[0].point, PathBuf::from("/sys/fs/cgroup/cpu,cpuacct"));
        assert_eq!(mounts[0].fstype, "cgroup");
        assert_eq!(mounts[0].super_options, "rw,cpu,cpuacct");
        assert_eq!(mounts[1].root, PathBuf::from("/kubepods/pod1"));
        assert_eq!(mounts[1].fstype, "cgroup2");
        assert_eq!(mounts[2].point, PathBuf::from("/data dir"));
        assert_eq!(mounts[2].root, PathBuf::from("/srv/data"));
    }
}
