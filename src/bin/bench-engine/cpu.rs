//! CPU accounting for the bench's phases: Postgres and the bench share the
//! machine's cores, so where throughput goes is where CPU goes.

/// CPU time used so far, in ms: this process, and every `postgres` process on
/// the machine (the postmaster's reaped children included, so backends that
/// exited still count). Linux only; `None` elsewhere.
#[derive(Clone, Copy)]
pub(crate) struct CpuMs {
    client: f64,
    db: f64,
}

pub(crate) fn cpu_ms() -> Option<CpuMs> {
    // SAFETY: sysconf only reads a configuration value.
    let tick_ms = 1000.0 / unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let (_, me) = proc_times(&std::fs::read_to_string("/proc/self/stat").ok()?)?;
    // A backend reaped between reading it and reading the postmaster counts
    // twice (or not at all): read until the set of processes holds still.
    let mut last = postgres_ticks()?;
    for _ in 0..20 {
        let now = postgres_ticks()?;
        if now.0 == last.0 {
            return Some(CpuMs { client: (me[0] + me[1]) as f64 * tick_ms, db: now.1 as f64 * tick_ms });
        }
        last = now;
    }
    None
}

/// The pids of every `postgres` process and their CPU ticks, reaped children included.
fn postgres_ticks() -> Option<(Vec<u32>, u64)> {
    let mut pids = Vec::new();
    let mut ticks = 0;
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
        let Some((comm, t)) = std::fs::read_to_string(entry.path().join("stat")).ok().as_deref().and_then(proc_times)
        else {
            continue;
        };
        if comm == "postgres" {
            pids.push(pid);
            ticks += t.iter().sum::<u64>();
        }
    }
    pids.sort_unstable();
    Some((pids, ticks))
}

/// A process's name and its utime, stime, cutime, cstime (fields 14-17 of
/// /proc/PID/stat, in clock ticks).
fn proc_times(stat: &str) -> Option<(String, [u64; 4])> {
    let (head, rest) = stat.rsplit_once(") ")?;
    let comm = head.split_once(" (")?.1.to_owned();
    let f: Vec<&str> = rest.split_whitespace().collect();
    let t = |i: usize| f.get(i).and_then(|v| v.parse().ok());
    Some((comm, [t(11)?, t(12)?, t(13)?, t(14)?]))
}

/// Prints the CPU `phase` used per run since `before`.
pub(crate) fn print_cpu(phase: &str, before: Option<CpuMs>, runs: usize) {
    if let (Some(before), Some(after)) = (before, cpu_ms()) {
        println!("{phase}_db_cpu_ms_per_run={:.3}", (after.db - before.db) / runs as f64);
        println!("{phase}_client_cpu_ms_per_run={:.3}", (after.client - before.client) / runs as f64);
    }
}
