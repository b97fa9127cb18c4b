//! Standard load tools run by the cross-check of figures 1 and 2: h2load (Debian
//! `nghttp2-client`; HTTP/2, gRPC with a fixed framed body) and wrk (Debian `wrk`; HTTP/1.1,
//! a Lua script building each request). Each runs as a child process with the same shape
//! as the suite's generator (connections, streams per connection, warm-up, duration);
//! its own summary is parsed, and the server's CPU time over the measured window is read
//! from `/proc` as for the suite's runs. `bench/run` installs both when missing.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;

use crate::grpc_load::LoadShape;

/// What a tool reported for one run.
#[derive(Debug, Clone, Default)]
pub struct ToolRun {
    /// Successful requests in the measured window.
    pub requests: u64,
    /// Failed requests (h2load: failed or errored, or a status other than 2xx; wrk:
    /// socket errors and non-2xx/3xx answers).
    pub errors: u64,
    /// Requests per second, as the tool reports it.
    pub rps: f64,
    /// The latency the tool reports.
    pub latency: ToolLatency,
    /// The server's CPU time per successful request over the measured window, µs.
    pub server_cpu_us: Option<f64>,
    /// The tool's own output.
    pub output: String,
}

/// Latency as each tool reports it: h2load gives mean and standard deviation, wrk
/// percentiles.
#[derive(Debug, Clone, Copy, Default)]
pub struct ToolLatency {
    /// Mean, ms (h2load and wrk).
    pub mean_ms: f64,
    /// Standard deviation, ms (h2load and wrk).
    pub sd_ms: f64,
    /// Maximum, ms.
    pub max_ms: f64,
    /// Median, ms (wrk only).
    pub p50_ms: Option<f64>,
    /// 99th percentile, ms (wrk only).
    pub p99_ms: Option<f64>,
}

impl ToolRun {
    /// Formats the run as the table shows it.
    pub fn describe(&self) -> String {
        let latency = match (self.latency.p50_ms, self.latency.p99_ms) {
            (Some(p50), Some(p99)) => format!("p50 {p50:.2} ms, p99 {p99:.2} ms"),
            _ => format!(
                "mean {:.2} ± {:.2} ms, max {:.2} ms",
                self.latency.mean_ms, self.latency.sd_ms, self.latency.max_ms
            ),
        };
        let cpu = self
            .server_cpu_us
            .map(|us| format!(", server CPU {us:.1} µs/req"))
            .unwrap_or_default();
        let failed = if self.errors > 0 {
            format!(", {} failed", self.errors)
        } else {
            String::new()
        };
        format!("{:.0} req/s ({latency}{cpu}{failed})", self.rps)
    }
}

/// Returns the path of `program` on `PATH`, if it is there.
pub fn find(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

/// Returns the name and version a tool prints first (`h2load --version`: `h2load
/// nghttp2/1.52.0`; `wrk -v`: `wrk 4.1.0 [epoll] …`).
pub fn version(program: &Path, flag: &str) -> String {
    std::process::Command::new(program)
        .arg(flag)
        .output()
        .ok()
        .map(|o| {
            let text = [o.stdout, o.stderr].concat();
            let text = String::from_utf8_lossy(&text);
            let first = text.lines().next().unwrap_or_default();
            first
                .split_whitespace()
                .take(2)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default()
}

/// A request h2load sends over and over: path, extra headers and a body file.
#[derive(Debug, Clone)]
pub struct FixedRequest {
    /// The path.
    pub path: String,
    /// Headers (`name: value`).
    pub headers: Vec<String>,
    /// The file holding the body.
    pub body: PathBuf,
}

/// Runs h2load against `addr`: `shape.connections` clients with `shape.in_flight`
/// streams each, one thread, warm-up then the measured duration.
pub async fn h2load(
    program: &Path,
    addr: SocketAddr,
    request: &FixedRequest,
    shape: LoadShape,
    pid: Option<u32>,
) -> anyhow::Result<ToolRun> {
    let mut args = vec![
        "-c".to_owned(),
        shape.connections.to_string(),
        "-m".into(),
        shape.in_flight.to_string(),
        "-t".into(),
        "1".into(),
        "-D".into(),
        format!("{}ms", shape.duration.as_millis()),
        format!("--warm-up-time={}ms", shape.warmup.as_millis().max(1)),
        "-d".into(),
        request.body.display().to_string(),
    ];
    for header in &request.headers {
        args.extend(["-H".into(), header.clone()]);
    }
    args.push(format!("http://{addr}{}", request.path));
    let (text, cpu) = run_measured(program, &args, shape.warmup, pid).await?;
    let mut run = parse_h2load(&text).with_context(|| format!("h2load printed:\n{text}"))?;
    run.server_cpu_us = per_request(cpu, run.requests);
    run.output = text;
    Ok(run)
}

/// Runs wrk against `addr` with a Lua `script` for `duration` (whole seconds, at least
/// one); wrk has no warm-up of its own, so a warm-up is a run of its own whose result is
/// dropped (`pid` None).
pub async fn wrk(
    program: &Path,
    addr: SocketAddr,
    script: &Path,
    connections: usize,
    duration: Duration,
    pid: Option<u32>,
) -> anyhow::Result<ToolRun> {
    // One thread per connection: a thread's requests go one at a time on its connection,
    // which the cross-check's script relies on to keep each call's requests in order.
    let args = vec![
        "-t".into(),
        connections.to_string(),
        "-c".into(),
        connections.to_string(),
        "-d".into(),
        format!("{}s", duration.as_secs_f64().round().max(1.0)),
        "--latency".into(),
        "-s".into(),
        script.display().to_string(),
        format!("http://{addr}/"),
    ];
    let (text, cpu) = run_measured(program, &args, Duration::ZERO, pid).await?;
    let mut run = parse_wrk(&text).with_context(|| format!("wrk printed:\n{text}"))?;
    run.server_cpu_us = per_request(cpu, run.requests);
    run.output = text;
    Ok(run)
}

fn per_request(cpu: Option<f64>, requests: u64) -> Option<f64> {
    cpu.filter(|_| requests > 0)
        .map(|secs| secs * 1e6 / requests as f64)
}

/// Runs a tool to its end; returns its output and the CPU seconds `pid` used from
/// `warmup` after the start to the tool's exit.
async fn run_measured(
    program: &Path,
    args: &[String],
    warmup: Duration,
    pid: Option<u32>,
) -> anyhow::Result<(String, Option<f64>)> {
    let child = tokio::process::Command::new(program)
        .args(args)
        .kill_on_drop(true)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot start {}", program.display()))?;
    tokio::time::sleep(warmup).await;
    let before = pid.and_then(|p| crate::process::cpu_seconds(p).ok());
    let output = child.wait_with_output().await?;
    let after = pid.and_then(|p| crate::process::cpu_seconds(p).ok());
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    anyhow::ensure!(
        output.status.success(),
        "{} {args:?} failed ({}):\n{text}",
        program.display(),
        output.status
    );
    Ok((text, before.zip(after).map(|(b, a)| a - b)))
}

/// Parses a duration as the tools print it (`165us`, `3.29ms`, `1.2s`, `2.00m`) into ms.
fn parse_ms(text: &str) -> Option<f64> {
    let split = text.find(|c: char| c.is_ascii_alphabetic())?;
    let (number, unit) = text.split_at(split);
    let value: f64 = number.parse().ok()?;
    Some(match unit {
        "us" => value / 1000.0,
        "ms" => value,
        "s" => value * 1000.0,
        "m" => value * 60_000.0,
        _ => return None,
    })
}

/// Returns the number before `label` in a comma-separated line (`697588 succeeded`).
fn count_before(line: &str, label: &str) -> Option<u64> {
    line.split(',').find_map(|part| {
        let part = part.trim();
        let number = part.strip_suffix(label)?.trim();
        number.rsplit(' ').next()?.parse().ok()
    })
}

/// Parses h2load's summary.
pub fn parse_h2load(text: &str) -> anyhow::Result<ToolRun> {
    let line = |prefix: &str| text.lines().map(str::trim).find(|l| l.starts_with(prefix));
    let finished = line("finished in").context("no `finished in` line")?;
    let rps: f64 = finished
        .split(',')
        .nth(1)
        .and_then(|p| p.trim().strip_suffix("req/s"))
        .and_then(|p| p.trim().parse().ok())
        .context("no req/s")?;
    let requests = line("requests:").context("no `requests:` line")?;
    let succeeded = count_before(requests, "succeeded").context("no succeeded count")?;
    let failed = count_before(requests, "failed").unwrap_or(0)
        + count_before(requests, "errored").unwrap_or(0)
        + count_before(requests, "timeout").unwrap_or(0);
    let codes = line("status codes:").unwrap_or_default();
    let not_2xx = ["3xx", "4xx", "5xx"]
        .iter()
        .filter_map(|c| count_before(codes, c))
        .sum::<u64>();
    let timing = line("time for request:").context("no `time for request:` line")?;
    let fields: Vec<f64> = timing
        .trim_start_matches("time for request:")
        .split_whitespace()
        .filter_map(parse_ms)
        .collect();
    anyhow::ensure!(fields.len() >= 4, "short `time for request:` line");
    Ok(ToolRun {
        requests: succeeded.saturating_sub(not_2xx),
        errors: failed + not_2xx,
        rps: rps * succeeded.saturating_sub(not_2xx) as f64 / succeeded.max(1) as f64,
        latency: ToolLatency {
            mean_ms: fields[2],
            sd_ms: fields[3],
            max_ms: fields[1],
            p50_ms: None,
            p99_ms: None,
        },
        server_cpu_us: None,
        output: String::new(),
    })
}

/// Parses wrk's summary (run with `--latency`).
pub fn parse_wrk(text: &str) -> anyhow::Result<ToolRun> {
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    let find = |prefix: &str| lines.iter().find(|l| l.starts_with(prefix)).copied();
    let latency: Vec<f64> = find("Latency ")
        .context("no `Latency` line")?
        .split_whitespace()
        .skip(1)
        .filter_map(parse_ms)
        .collect();
    anyhow::ensure!(latency.len() >= 3, "short `Latency` line");
    let percentile = |p: &str| {
        find(p)
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(parse_ms)
    };
    let total = lines
        .iter()
        .find(|l| l.contains("requests in"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse::<u64>().ok())
        .context("no `requests in` line")?;
    let bad = find("Non-2xx or 3xx responses:")
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap_or(0);
    let socket_errors = find("Socket errors:")
        .map(|l| {
            l.trim_start_matches("Socket errors:")
                .split(',')
                .filter_map(|p| p.split_whitespace().nth(1)?.parse::<u64>().ok())
                .sum::<u64>()
        })
        .unwrap_or(0);
    let rps: f64 = find("Requests/sec:")
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .context("no `Requests/sec:` line")?;
    let ok = total.saturating_sub(bad);
    Ok(ToolRun {
        requests: ok,
        errors: bad + socket_errors,
        rps: rps * ok as f64 / total.max(1) as f64,
        latency: ToolLatency {
            mean_ms: latency[0],
            sd_ms: latency[1],
            max_ms: latency[2],
            p50_ms: percentile("50%"),
            p99_ms: percentile("99%"),
        },
        server_cpu_us: None,
        output: String::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const H2LOAD: &str = "starting benchmark...
finished in 5.00s, 139517.60 req/s, 4.39MB/s
requests: 697588 total, 698088 started, 697588 done, 697588 succeeded, 0 failed, 0 errored, 0 timeout
status codes: 697588 2xx, 0 3xx, 0 4xx, 0 5xx
traffic: 21.95MB (23018136) total, 2.01MB (2109184) headers (space savings 95.09%), 6.65MB (6975880) data
                     min         max         mean         sd        +/- sd
time for request:      165us     25.96ms      3.29ms      1.33ms    72.49%
time for connect:      140us      2.00ms       950us       500us    60.00%
";

    const WRK: &str = "Running 5s test @ http://127.0.0.1:8080/
  1 threads and 50 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   490.23us    1.10ms  40.01ms   97.00%
    Req/Sec   100.50k     5.00k  110.00k    80.00%
  Latency Distribution
     50%  429.00us
     75%  600.00us
     90%  800.00us
     99%    4.10ms
  500000 requests in 5.00s, 60.00MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 12
Requests/sec: 100000.00
Transfer/sec:     12.00MB
";

    #[test]
    fn h2load_summary_parses() {
        let run = parse_h2load(H2LOAD).unwrap();
        assert_eq!((run.requests, run.errors), (697588, 0));
        assert!((run.rps - 139517.6).abs() < 0.01);
        assert!((run.latency.mean_ms - 3.29).abs() < 1e-9);
        assert!((run.latency.max_ms - 25.96).abs() < 1e-9);
        assert!((run.latency.sd_ms - 1.33).abs() < 1e-9);
    }

    #[test]
    fn wrk_summary_parses() {
        let run = parse_wrk(WRK).unwrap();
        assert_eq!((run.requests, run.errors), (499988, 15));
        assert!((run.latency.p50_ms.unwrap() - 0.429).abs() < 1e-9);
        assert!((run.latency.p99_ms.unwrap() - 4.1).abs() < 1e-9);
        assert!((run.rps - 99997.6).abs() < 0.01);
    }
}
