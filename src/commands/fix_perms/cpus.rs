//! How many CPUs this process may really use: the CPUs it may run on (sched_getaffinity) and the
//! CPU time its cgroups allow, which is how Kubernetes applies a container's CPU limit: `cpu.max`
//! on cgroup v2, `cpu.cfs_quota_us` / `cpu.cfs_period_us` on v1.

use std::fmt;
use std::num::NonZero;
use std::path::{Path, PathBuf};

use nix::sched::{CpuSet, sched_getaffinity};
use nix::unistd::Pid;

use crate::fs::mountinfo::{self, Mount};

/// What limits this process's CPU use.
#[derive(Debug, Clone, PartialEq)]
pub struct Cpus {
    /// The CPUs it may run on.
    pub allowed: usize,
    /// The smallest CPU quota of its cgroup and the cgroups above it, if any sets one.
    pub quota: Option<Quota>,
}

/// A cgroup's CPU quota: `quota` microseconds of CPU time in every `period`.
#[derive(Debug, Clone, PartialEq)]
pub struct Quota {
    pub quota: u64,
    pub period: u64,
    /// The file it was read from (`.../cpu.max`, `.../cpu.cfs_quota_us`).
    pub file: PathBuf,
}

impl Quota {
    /// The quota in CPUs: 0.5 for a limit of `500m`.
    pub fn cpus(&self) -> f64 {
        self.quota as f64 / self.period as f64
    }
}

impl Cpus {
    /// The CPUs of this process, as the kernel sees them now.
    pub fn detect() -> Cpus {
        let cgroups = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
        Cpus {
            allowed: allowed(),
            quota: quota(&cgroups, &mountinfo::read()),
        }
    }

    /// Whole CPUs' worth of time this process may use: the allowed CPUs, or fewer under a quota
    /// (rounded down: under 1.5 CPUs a second thread only takes turns with the first); at least 1.
    pub fn usable(&self) -> usize {
        let by_quota = self
            .quota
            .as_ref()
            .map_or(usize::MAX, |quota| (quota.quota / quota.period) as usize);
        self.allowed.min(by_quota).max(1)
    }
}

impl fmt::Display for Cpus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let plural = if self.allowed == 1 { "" } else { "s" };
        write!(f, "{} CPU{plural} allowed", self.allowed)?;
        match &self.quota {
            Some(quota) => write!(
                f,
                ", CPU quota {} ({} of every {} µs, {})",
                quota.cpus(),
                quota.quota,
                quota.period,
                quota.file.display()
            ),
            None => write!(f, ", no CPU quota"),
        }
    }
}

/// The number of CPUs in this process's affinity mask.
fn allowed() -> usize {
    match sched_getaffinity(Pid::from_raw(0)) {
        Ok(set) => (0..CpuSet::count())
            .filter(|&cpu| set.is_set(cpu).unwrap_or(false))
            .count()
            .max(1),
        Err(_) => std::thread::available_parallelism().map_or(1, NonZero::get),
    }
}

/// The smallest quota set on this process's cgroups (`/proc/self/cgroup`) or above them, up to
/// the top of what is mounted (in a container, its own cgroup).
fn quota(cgroups: &str, mounts: &[Mount]) -> Option<Quota> {
    cgroups
        .lines()
        .filter_map(|line| {
            let mut fields = line.splitn(3, ':');
            let (id, controllers, path) = (fields.next()?, fields.next()?, fields.next()?);
            let version = if id == "0" && controllers.is_empty() {
                Version::V2
            } else if controllers.split(',').any(|name| name == "cpu") {
                Version::V1
            } else {
                return None;
            };
            let mount = mounts.iter().find(|mount| version.mounted_as(mount))?;
            let below = Path::new(path).strip_prefix(&mount.root).ok()?;
            Some((version, mount.point.as_path(), mount.point.join(below)))
        })
        .flat_map(|(version, top, dir)| {
            dir.ancestors()
                .take_while(|dir| dir.starts_with(top))
                .filter_map(|dir| version.quota_in(dir))
                .collect::<Vec<_>>()
        })
        .min_by(|a, b| a.cpus().total_cmp(&b.cpus()))
}

#[derive(Debug, Clone, Copy)]
enum Version {
    V1,
    V2,
}

impl Version {
    fn mounted_as(self, mount: &Mount) -> bool {
        match self {
            Version::V2 => mount.fstype == "cgroup2",
            Version::V1 => {
                mount.fstype == "cgroup" && mount.super_options.split(',').any(|o| o == "cpu")
            }
        }
    }

    /// The quota set in the cgroup directory `dir`, if any.
    fn quota_in(self, dir: &Path) -> Option<Quota> {
        let read = |name: &str| std::fs::read_to_string(dir.join(name)).ok();
        let (quota, period, file) = match self {
            // "max 100000" when unlimited, "50000 100000" for half a CPU.
            Version::V2 => {
                let text = read("cpu.max")?;
                let (quota, period) = text.trim().split_once(' ')?;
                (quota.to_owned(), period.to_owned(), dir.join("cpu.max"))
            }
            // -1 when unlimited.
            Version::V1 => (
                read("cpu.cfs_quota_us")?,
                read("cpu.cfs_period_us")?,
                dir.join("cpu.cfs_quota_us"),
            ),
        };
        let quota = quota.trim().parse::<u64>().ok()?;
        let period = period.trim().parse::<u64>().ok().filter(|&p| p > 0)?;
        Some(Quota {
            quota,
            period,
            file,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cgroup_mount(fstype: &str, options: &str, root: &str, point: &Path) -> Mount {
        Mount {
            root: root.into(),
            point: point.to_path_buf(),
            fstype: fstype.into(),
            super_options: options.into(),
        }
    }

    fn write(dir: &Path, name: &str, text: &str) {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join(name), text).unwrap();
    }

    #[test]
    fn the_smallest_v1_quota_up_the_hierarchy_applies() {
        let temp = tempfile::tempdir().unwrap();
        let top = temp.path().join("cpu,cpuacct");
        let pod = top.join("kubepods/pod1");
        let container = pod.join("c1");
        write(&top, "cpu.cfs_quota_us", "-1\n");
        write(&top, "cpu.cfs_period_us", "100000\n");
        write(&pod, "cpu.cfs_quota_us", "50000\n");
        write(&pod, "cpu.cfs_period_us", "100000\n");
        write(&container, "cpu.cfs_quota_us", "-1\n");
        write(&container, "cpu.cfs_period_us", "100000\n");
        let mounts = [
            cgroup_mount("cgroup", "rw,memory", "/", &temp.path().join("memory")),
            cgroup_mount("cgroup", "rw,cpu,cpuacct", "/", &top),
        ];
        let cgroups = "4:memory:/kubepods/pod1/c1\n2:cpu,cpuacct:/kubepods/pod1/c1\n0::/\n";
        let quota = quota(cgroups, &mounts).unwrap();
        assert_eq!(quota.cpus(), 0.5);
        assert_eq!(quota.file, pod.join("cpu.cfs_quota_us"));
        let cpus = Cpus {
            allowed: 8,
            quota: Some(quota),
        };
        assert_eq!(cpus.usable(), 1);
    }

    #[test]
    fn a_v2_quota_is_read_from_cpu_max_below_a_namespaced_root() {
        let temp = tempfile::tempdir().unwrap();
        let top = temp.path().to_path_buf();
        // Inside a cgroup namespace the container's cgroup is the mount's root.
        write(&top, "cpu.max", "250000 100000\n");
        write(&top.join("sub"), "cpu.max", "max 100000\n");
        let mounts = [cgroup_mount("cgroup2", "rw", "/kubepods/pod1/c1", &top)];
        let quota = quota("0::/kubepods/pod1/c1/sub\n", &mounts).unwrap();
        assert_eq!(quota.cpus(), 2.5);
        let cpus = Cpus {
            allowed: 4,
            quota: Some(quota),
        };
        assert_eq!(cpus.usable(), 2);
    }

    #[test]
    fn no_quota_anywhere_leaves_the_allowed_cpus() {
        let temp = tempfile::tempdir().unwrap();
        write(temp.path(), "cpu.max", "max 100000\n");
        let mounts = [cgroup_mount("cgroup2", "rw", "/", temp.path())];
        assert_eq!(quota("0::/\n", &mounts), None);
        // A cgroup this process is in but that is not mounted here is no limit either.
        assert_eq!(quota("2:cpu:/elsewhere\n", &mounts), None);
        let cpus = Cpus {
            allowed: 3,
            quota: None,
        };
        assert_eq!(cpus.usable(), 3);
        assert_eq!(cpus.to_string(), "3 CPUs allowed, no CPU quota");
    }

    #[test]
    fn a_tiny_quota_still_leaves_one_cpu() {
        let cpus = Cpus {
            allowed: 2,
            quota: Some(Quota {
                quota: 10_000,
                period: 100_000,
                file: "/sys/fs/cgroup/cpu.max".into(),
            }),
        };
        assert_eq!(cpus.usable(), 1);
        assert_eq!(
            cpus.to_string(),
            "2 CPUs allowed, CPU quota 0.1 (10000 of every 100000 µs, /sys/fs/cgroup/cpu.max)"
        );
    }
}
