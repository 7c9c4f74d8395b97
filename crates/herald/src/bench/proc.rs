//! The server's RSS and CPU time from /proc, for the report.

/// Per-process figures from /proc.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcStats {
    pub rss_kib: u64,
    pub cpu_secs: f64,
}

pub fn proc_stats(pids: &[u32]) -> Option<ProcStats> {
    if pids.is_empty() {
        return None;
    }
    let mut total = ProcStats::default();
    for pid in pids {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        total.rss_kib += status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))?
            .trim()
            .trim_end_matches(" kB")
            .trim()
            .parse::<u64>()
            .ok()?;
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let after = &stat[stat.rfind(')')? + 2..];
        let f: Vec<&str> = after.split_whitespace().collect();
        // utime and stime are fields 14 and 15 of stat: 12 and 13 after the name.
        let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
        total.cpu_secs += ticks as f64 / 100.0; // USER_HZ is 100 on Linux
    }
    Some(total)
}
