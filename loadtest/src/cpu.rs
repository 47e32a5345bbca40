//! The load generator's own CPU, so a report can say when the generator, not the
//! gateway, was the limit (a saturated generator measures itself).

use std::time::Duration;

/// Clock ticks per second of `/proc/*/stat` times (`USER_HZ`: 100 on every Linux ABI
/// this runs on; `sysconf` would need `unsafe`, which this crate forbids).
const USER_HZ: u64 = 100;

/// CPU time (user + system) this process has used so far, all threads; `None` where
/// `/proc` is not there.
pub fn process_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    parse_stat(&stat)
}

/// Fields 14 and 15 (utime, stime) of a `/proc/PID/stat` line, counted after the
/// command name, which is in parentheses and may itself hold spaces.
fn parse_stat(stat: &str) -> Option<Duration> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(Duration::from_millis(
        (utime + stime).saturating_mul(1000 / USER_HZ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_utime_and_stime_past_a_name_with_spaces() {
        let line = "4242 (load test) R 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0 3 0 99 0 0";
        assert_eq!(parse_stat(line), Some(Duration::from_millis(3000)));
        assert_eq!(parse_stat("garbage"), None);
        assert_eq!(parse_stat("1 (x) R 1"), None);
    }

    #[test]
    fn this_process_has_a_cpu_time() {
        assert!(process_time().is_some());
    }
}
