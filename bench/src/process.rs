//! Child processes of the bench (the gateway, the bare servers, Faye): spawned with their
//! output in log files, timed from exec to accepting connections, measured through
//! `/proc/PID/status` (once, or sampled for peaks), and stopped (SIGTERM, then SIGKILL) when
//! dropped.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

/// A running child process.
#[derive(Debug)]
pub struct Server {
    name: String,
    child: std::process::Child,
    started: Instant,
}

impl Server {
    /// Spawns `program args`, with stdout and stderr appended to `log_dir/NAME.log`.
    pub fn spawn(
        name: &str,
        program: &Path,
        args: &[String],
        envs: &[(&str, &str)],
        log_dir: &Path,
    ) -> anyhow::Result<Self> {
        std::fs::create_dir_all(log_dir)?;
        let log_path = log_dir.join(format!("{name}.log"));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .with_context(|| format!("cannot open {}", log_path.display()))?;
        let mut command = Command::new(program);
        command
            .args(args)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        for (key, value) in envs {
            command.env(key, value);
        }
        let started = Instant::now();
        let child = command
            .spawn()
            .with_context(|| format!("cannot start {}", program.display()))?;
        Ok(Self {
            name: name.to_owned(),
            child,
            started,
        })
    }

    /// Returns the process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits until every address accepts a TCP connection; returns the time since exec.
    pub fn wait_listening(
        &mut self,
        addrs: &[SocketAddr],
        limit: Duration,
    ) -> anyhow::Result<Duration> {
        let mut pending: Vec<SocketAddr> = addrs.to_vec();
        while !pending.is_empty() {
            if let Some(status) = self.child.try_wait()? {
                bail!("{} exited before listening: {status}", self.name);
            }
            if self.started.elapsed() > limit {
                bail!(
                    "{} is not listening on {pending:?} after {limit:?}",
                    self.name
                );
            }
            pending.retain(|addr| {
                TcpStream::connect_timeout(addr, Duration::from_millis(50)).is_err()
            });
            if !pending.is_empty() {
                std::thread::sleep(Duration::from_micros(200));
            }
        }
        Ok(self.started.elapsed())
    }

    /// Returns the resident set size in KiB (VmRSS).
    pub fn rss_kib(&self) -> anyhow::Result<u64> {
        rss_kib(self.pid())
    }

    /// Sends `signal` (e.g. `libc::SIGKILL`) to the process, if it has not exited yet.
    pub fn signal(&mut self, signal: libc::c_int) -> anyhow::Result<()> {
        if self.child.try_wait()?.is_none() {
            // SAFETY: kill(2) on our own child's pid, which we have not reaped yet.
            let sent = unsafe { libc::kill(self.child.id() as libc::pid_t, signal) };
            anyhow::ensure!(sent == 0, "kill({}, {signal}) failed", self.name);
        }
        Ok(())
    }

    /// Waits at most `limit` for the process to exit; returns its status, `None` if it
    /// is still running.
    pub async fn wait_exit(
        &mut self,
        limit: Duration,
    ) -> anyhow::Result<Option<std::process::ExitStatus>> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(Some(status));
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
            // The poll period of the exit; the deadline bounds it.
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            // SAFETY: kill(2) on our own child's pid, which we have not reaped yet.
            unsafe {
                libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
            }
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Reads VmRSS of a process, in KiB.
pub fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    Ok(ProcStatus::read(pid)?.rss_kib)
}

/// The memory and thread readings of `/proc/PID/status`.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcStatus {
    /// Resident set size (VmRSS), KiB.
    pub rss_kib: u64,
    /// Peak resident set size since the process started (VmHWM), KiB.
    pub peak_rss_kib: u64,
    /// Threads.
    pub threads: u64,
}

impl ProcStatus {
    /// Reads the status of process `pid`.
    pub fn read(pid: u32) -> anyhow::Result<Self> {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
        let field = |name: &str| -> anyhow::Result<u64> {
            status
                .lines()
                .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|value| value.parse().ok())
                .with_context(|| format!("no {name} in /proc/{pid}/status"))
        };
        Ok(Self {
            rss_kib: field("VmRSS")?,
            peak_rss_kib: field("VmHWM")?,
            threads: field("Threads")?,
        })
    }
}

/// Reads the CPU time (user + system) a process has used, in seconds, from
/// `/proc/PID/stat` (clock ticks of 1/100 s, the Linux `USER_HZ`).
pub fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest = stat.rsplit_once(')').context("malformed /proc/PID/stat")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after ')'.
    let ticks = |i: usize| -> anyhow::Result<f64> {
        Ok(fields
            .get(i)
            .context("short /proc/PID/stat")?
            .parse::<f64>()?)
    };
    Ok((ticks(11)? + ticks(12)?) / 100.0)
}

/// The ports [`free_addr`] picks from: below Linux's default ephemeral range
/// (`net.ipv4.ip_local_port_range`, 32768–60999), from which the kernel takes the source
/// port of every outgoing connection and every bind to port 0.
const LISTEN_PORTS: std::ops::Range<u16> = 20_000..32_768;

/// Returns a free loopback address (bound, then released) for a child server to listen on.
///
/// Not port 0's pick: a port the kernel hands out for port 0 comes from the ephemeral
/// range, and between its release here and the child's bind, one of the thousands of client
/// connections a figure opens can take it as its source port (the suite's smoke run saw a
/// gateway exit with "Address already in use"). A random port below that range is taken
/// only by another `free_addr` that drew the same port in the same moment.
pub fn free_addr() -> anyhow::Result<SocketAddr> {
    use std::hash::{BuildHasher as _, Hasher as _};
    // A random start (std's hasher keys are random per process and per call), then the
    // ports after it in turn.
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    let span = u64::from(LISTEN_PORTS.end - LISTEN_PORTS.start);
    let start = hasher.finish() % span;
    for step in 0..span {
        let offset = u16::try_from((start + step) % span).unwrap_or(0);
        let port = LISTEN_PORTS.start + offset;
        if let Ok(listener) = TcpListener::bind(("127.0.0.1", port)) {
            return Ok(listener.local_addr()?);
        }
    }
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}

/// Raises the open-file limit as far as allowed (the hard limit, and beyond it as root);
/// returns the soft limit in force afterwards.
pub fn raise_open_file_limit() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid pointer to a local rlimit.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit);
        let wanted = libc::rlimit {
            rlim_cur: 1 << 20,
            rlim_max: limit.rlim_max.max(1 << 20),
        };
        if libc::setrlimit(libc::RLIMIT_NOFILE, &wanted) != 0 {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit);
    }
    limit.rlim_cur
}

/// Returns the directory of the running executable (where sibling binaries are built).
pub fn exe_dir() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    Ok(exe
        .parent()
        .context("executable has no directory")?
        .to_path_buf())
}

/// Peak readings of a process while sampled.
#[derive(Debug, Clone, Copy, Default)]
pub struct Peaks {
    /// Highest RSS, KiB: the highest sample, or VmHWM read at the end if higher.
    pub rss_kib: u64,
    /// Most threads seen.
    pub threads: u64,
    /// Samples taken.
    pub samples: u64,
    /// When the RSS passed the cap (counted from the sampler's start), if it did.
    pub capped_at: Option<Duration>,
}

/// Samples `/proc/PID/status` every `every` until `until`, on its own thread (so a busy
/// runtime does not delay the readings). As soon as the RSS passes `cap_kib` it kills the
/// process (SIGKILL: a graceful stop would let queued work grow it further), cancels
/// `stop` and returns. `pid` must be an unreaped child of this process, so that it cannot
/// name another process.
pub fn sample_peaks(
    pid: u32,
    every: Duration,
    until: Instant,
    cap_kib: u64,
    stop: tokio_util::sync::CancellationToken,
) -> std::thread::JoinHandle<anyhow::Result<Peaks>> {
    std::thread::spawn(move || {
        let began = Instant::now();
        let mut peaks = Peaks::default();
        let mut next = began;
        while next < until {
            let now = ProcStatus::read(pid)?;
            peaks.rss_kib = peaks.rss_kib.max(now.rss_kib).max(now.peak_rss_kib);
            peaks.threads = peaks.threads.max(now.threads);
            peaks.samples += 1;
            if now.rss_kib > cap_kib {
                peaks.capped_at = Some(began.elapsed());
                // SAFETY: kill(2) on our own child, not yet reaped (see above).
                unsafe {
                    libc::kill(pid as libc::pid_t, libc::SIGKILL);
                }
                stop.cancel();
                return Ok(peaks);
            }
            next += every;
            std::thread::sleep(next.saturating_duration_since(Instant::now()));
        }
        Ok(peaks)
    })
}
