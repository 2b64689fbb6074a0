//! Progress of a long download: a line every few seconds with bytes, rate and time left, and
//! the sizes and rates in the words a person reads (MiB, MiB/s).

use std::time::{Duration, Instant};

use crate::runtime::duration;
use crate::runtime::logging::{self, Level};

pub struct Progress {
    target: String,
    interval: Duration,
    started: Instant,
    next_line: Instant,
    /// Bytes this run already had when the current attempt began (a resumed download's rate
    /// counts only what this run received).
    resumed_from: u64,
}

impl Progress {
    pub fn new(target: String, interval: Duration) -> Progress {
        let now = Instant::now();
        Progress {
            target,
            interval,
            started: now,
            next_line: now + interval,
            resumed_from: 0,
        }
    }

    /// Counts the rate from `received` on: bytes the run already had are not part of it.
    pub fn restart_rate(&mut self, received: u64) {
        self.resumed_from = received;
        self.started = Instant::now();
    }

    /// Called for every piece received; logs a line when the interval has passed.
    pub fn update(&mut self, received: u64, total: Option<u64>) {
        let now = Instant::now();
        if now < self.next_line {
            return;
        }
        self.next_line = now + self.interval;
        let elapsed = now.duration_since(self.started).as_secs_f64().max(0.001);
        let rate = received.saturating_sub(self.resumed_from) as f64 / elapsed;
        let so_far = match total {
            Some(total) if total > 0 => format!(
                "{} of {} ({}%)",
                bytes(received),
                bytes(total),
                received.saturating_mul(100) / total
            ),
            _ => bytes(received),
        };
        let left = total
            .filter(|_| rate > 0.0)
            .map(|total| {
                let seconds = total.saturating_sub(received) as f64 / rate;
                format!(
                    ", {} left",
                    duration::human(Duration::from_secs_f64(seconds.min(1e9)))
                )
            })
            .unwrap_or_default();
        logging::emit(
            Level::Info,
            &format!("{}: {so_far}, {}/s{left}", self.target, bytes(rate as u64)),
            &[
                ("event", "progress".into()),
                ("target", self.target.as_str().into()),
                ("bytes", received.into()),
                ("total", total.into()),
                ("bytes_per_second", (rate as u64).into()),
            ],
        );
    }
}

/// `512 B`, `1.5 KiB`, `12.0 MiB`, `1.0 GiB`.
pub fn bytes(count: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if count < 1024 {
        return format!("{count} B");
    }
    let mut value = count as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(1 << 30), "1.0 GiB");
    }
}
