//! The clients of the password-flood figure (issue 10): the flood (many keep-alive
//! connections sending wrong Basic passwords back to back), a legitimate client at a steady
//! rate, and a fresh login. All of them stop by themselves at their deadline, or earlier
//! when the flood is called off (the RSS sampler, [`crate::process::sample_peaks`], does
//! that).

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use http::StatusCode;
use tokio_util::sync::CancellationToken;

use crate::http_util::{KeepAlive, basic};
use crate::stats::Latency;

/// The path every client of the figure asks for: the user resource of the JSON front.
pub const ME_PATH: &str = "/api/v2/me";

/// Runs `work` until it finishes, `until` passes or `stop` is cancelled (then `None`).
async fn bounded<T>(
    work: impl Future<Output = T>,
    until: Instant,
    stop: &CancellationToken,
) -> Option<T> {
    tokio::select! {
        done = work => Some(done),
        () = tokio::time::sleep_until(until.into()) => None,
        () = stop.cancelled() => None,
    }
}

/// Answers of one status class, and their latency.
#[derive(Debug, Default)]
pub struct StatusTally {
    /// Answers.
    pub count: u64,
    /// Their latency, send → whole answer.
    pub latency: Latency,
}

/// What the flood got back.
#[derive(Debug, Default)]
pub struct FloodTally {
    /// 401 answers (the password was checked and refused).
    pub unauthorized: StatusTally,
    /// 429 answers (throttled).
    pub too_many: StatusTally,
    /// 503 answers (no room to check).
    pub unavailable: StatusTally,
    /// Any other status.
    pub other: StatusTally,
    /// The first other status.
    pub first_other: Option<StatusCode>,
    /// Connections opened.
    pub connects: u64,
    /// Failed connects and requests (the connection is then dropped and opened again).
    pub transport_errors: u64,
    /// The first transport error.
    pub first_error: Option<String>,
    /// Requests still unanswered when the flood stopped.
    pub unanswered: u64,
}

impl FloodTally {
    /// Returns all answers.
    pub fn answers(&self) -> u64 {
        self.classes().iter().map(|(_, t)| t.count).sum()
    }

    /// Returns the status classes with their names.
    pub fn classes(&self) -> [(&'static str, &StatusTally); 4] {
        [
            ("401", &self.unauthorized),
            ("429", &self.too_many),
            ("503", &self.unavailable),
            ("other", &self.other),
        ]
    }

    fn record(&mut self, status: StatusCode, took: Duration) {
        let class = match status {
            StatusCode::UNAUTHORIZED => &mut self.unauthorized,
            StatusCode::TOO_MANY_REQUESTS => &mut self.too_many,
            StatusCode::SERVICE_UNAVAILABLE => &mut self.unavailable,
            _ => {
                self.first_other.get_or_insert(status);
                &mut self.other
            }
        };
        class.count += 1;
        class.latency.record_us(took.as_micros() as u64);
    }

    fn transport_error(&mut self, error: &anyhow::Error) {
        self.transport_errors += 1;
        self.first_error.get_or_insert_with(|| format!("{error:#}"));
    }

    fn merge(&mut self, other: Self) {
        let pairs = [
            (&mut self.unauthorized, other.unauthorized),
            (&mut self.too_many, other.too_many),
            (&mut self.unavailable, other.unavailable),
            (&mut self.other, other.other),
        ];
        for (mine, theirs) in pairs {
            mine.count += theirs.count;
            mine.latency.merge(&theirs.latency);
        }
        self.first_other = self.first_other.or(other.first_other);
        self.connects += other.connects;
        self.transport_errors += other.transport_errors;
        self.first_error = self.first_error.take().or(other.first_error);
        self.unanswered += other.unanswered;
    }
}

/// Floods `addr` from 127.0.0.1 with `connections` keep-alive connections, each sending
/// `GET /api/v2/me` as `user` with a new wrong password per request, as soon as the last
/// one is answered, until `until` or `stop`.
pub async fn flood(
    addr: SocketAddr,
    user: &str,
    connections: usize,
    until: Instant,
    stop: &CancellationToken,
) -> anyhow::Result<FloodTally> {
    let tasks: Vec<_> = (0..connections)
        .map(|c| {
            let (user, stop) = (user.to_owned(), stop.clone());
            tokio::spawn(async move { flood_connection(addr, &user, c, until, &stop).await })
        })
        .collect();
    let mut tally = FloodTally::default();
    for task in tasks {
        tally.merge(task.await?);
    }
    Ok(tally)
}

async fn flood_connection(
    addr: SocketAddr,
    user: &str,
    c: usize,
    until: Instant,
    stop: &CancellationToken,
) -> FloodTally {
    let host = addr.to_string();
    let mut tally = FloodTally::default();
    let mut conn_opt: Option<KeepAlive> = None;
    for n in 0u64.. {
        let mut conn = match conn_opt.take() {
            Some(conn) => conn,
            None => match bounded(KeepAlive::open(addr, None), until, stop).await {
                None => return tally,
                Some(Ok(conn)) => {
                    tally.connects += 1;
                    conn
                }
                Some(Err(error)) => {
                    tally.transport_error(&error);
                    // A refused connect returns at once: pause rather than spin.
                    let pause = tokio::time::sleep(Duration::from_millis(10));
                    if bounded(pause, until, stop).await.is_none() {
                        return tally;
                    }
                    continue;
                }
            },
        };
        // A new guess each time, as an attacker would send (and no cache of refusals helps).
        let authorization = basic(user, &format!("wrong-{c}-{n}"));
        let began = Instant::now();
        match bounded(conn.get(&host, ME_PATH, &authorization, None), until, stop).await {
            None => {
                tally.unanswered += 1;
                return tally;
            }
            Some(Ok(answer)) => {
                tally.record(answer.status, began.elapsed());
                if !answer.closing {
                    conn_opt = Some(conn);
                }
            }
            Some(Err(error)) => tally.transport_error(&error),
        }
    }
    tally
}

/// Logs in once from `source` (GET /api/v2/me with Basic credentials); returns the
/// session cookie the gateway set and how long the login took. Fails unless it is a 200.
pub async fn login(
    addr: SocketAddr,
    source: IpAddr,
    authorization: &str,
) -> anyhow::Result<(Option<String>, Duration)> {
    let began = Instant::now();
    let mut conn = KeepAlive::open(addr, Some(source)).await?;
    let answer = conn
        .get(&addr.to_string(), ME_PATH, authorization, None)
        .await?;
    anyhow::ensure!(
        answer.status == StatusCode::OK,
        "the legitimate login answered {}",
        answer.status
    );
    Ok((answer.cookie, began.elapsed()))
}

/// What the legitimate client saw.
#[derive(Debug, Default)]
pub struct SteadyTally {
    /// Latency of every answer, from the time the request was due (so a request held up
    /// also delays the ones due behind it, and they count).
    pub latency: Latency,
    /// Answers other than 200, by status.
    pub not_ok: Vec<(StatusCode, u64)>,
    /// Failed connects and requests.
    pub transport_errors: u64,
    /// The first transport error.
    pub first_error: Option<String>,
    /// Requests due but unanswered at the hard stop.
    pub unanswered: u64,
}

impl SteadyTally {
    /// Returns the answers other than 200.
    pub fn not_ok_count(&self) -> u64 {
        self.not_ok.iter().map(|(_, n)| n).sum()
    }

    fn count_not_ok(&mut self, status: StatusCode) {
        match self.not_ok.iter_mut().find(|(s, _)| *s == status) {
            Some((_, n)) => *n += 1,
            None => self.not_ok.push((status, 1)),
        }
    }
}

/// The legitimate client's schedule: a rate until a time, and a hard stop for the requests
/// due by then.
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    /// Requests per second.
    pub rate: f64,
    /// No request is due from then on.
    pub until: Instant,
    /// Requests still unanswered then are given up.
    pub hard_stop: Instant,
}

/// Sends `GET /api/v2/me` from `source` on `schedule`, one request at a time on a keep-alive
/// connection, with Basic credentials and the session cookie (as a desktop's cookie jar
/// would). Requests still unanswered at the hard stop, or when `stop` is cancelled, are
/// counted as unanswered.
pub async fn steady(
    addr: SocketAddr,
    source: IpAddr,
    authorization: &str,
    mut cookie: Option<String>,
    schedule: Schedule,
    stop: &CancellationToken,
) -> SteadyTally {
    let Schedule {
        rate,
        until,
        hard_stop,
    } = schedule;
    let host = addr.to_string();
    let period = Duration::from_secs_f64(1.0 / rate);
    let mut tally = SteadyTally::default();
    let mut conn_opt: Option<KeepAlive> = None;
    let mut due = Instant::now();
    while due < until {
        if bounded(tokio::time::sleep_until(due.into()), hard_stop, stop)
            .await
            .is_none()
        {
            tally.unanswered += (until.saturating_duration_since(due).as_secs_f64() * rate) as u64;
            return tally;
        }
        let work = async {
            let mut conn = match conn_opt.take() {
                Some(conn) => conn,
                None => KeepAlive::open(addr, Some(source)).await?,
            };
            let answer = conn
                .get(&host, ME_PATH, authorization, cookie.as_deref())
                .await?;
            anyhow::Ok((conn, answer))
        };
        match bounded(work, hard_stop, stop).await {
            None => {
                let left = until.saturating_duration_since(due);
                tally.unanswered += 1 + (left.as_secs_f64() * rate) as u64;
                return tally;
            }
            Some(Ok((conn, answer))) => {
                tally.latency.record_us(due.elapsed().as_micros() as u64);
                if answer.status != StatusCode::OK {
                    tally.count_not_ok(answer.status);
                }
                if answer.cookie.is_some() {
                    cookie = answer.cookie;
                }
                if !answer.closing {
                    conn_opt = Some(conn);
                }
            }
            Some(Err(error)) => {
                tally.transport_errors += 1;
                tally
                    .first_error
                    .get_or_insert_with(|| format!("{error:#}"));
            }
        }
        due += period;
    }
    tally
}

/// A fresh login during the flood.
#[derive(Debug, Default)]
pub struct FreshLogin {
    /// Time from the first send to the 200, if one came before giving up.
    pub took: Option<Duration>,
    /// Whether it was sent (not when the flood was called off before it was due).
    pub sent: bool,
    /// Time until giving up, when no 200 came.
    pub gave_up_after: Duration,
    /// The status of each attempt.
    pub statuses: Vec<StatusCode>,
    /// A transport error, if one ended the login.
    pub error: Option<String>,
}

/// Logs in from `source` at `at`: a 429 or 503 is tried again after its `Retry-After` (as
/// a well-behaved client would), until a 200, another status, `give_up`, or `stop`.
pub async fn fresh_login(
    addr: SocketAddr,
    source: IpAddr,
    authorization: &str,
    (at, give_up): (Instant, Instant),
    stop: &CancellationToken,
) -> FreshLogin {
    let mut login = FreshLogin::default();
    if bounded(tokio::time::sleep_until(at.into()), give_up, stop)
        .await
        .is_none()
    {
        return login;
    }
    login.sent = true;
    let host = addr.to_string();
    let began = Instant::now();
    loop {
        let attempt = async {
            let mut conn = KeepAlive::open(addr, Some(source)).await?;
            conn.get(&host, ME_PATH, authorization, None).await
        };
        let answer = match bounded(attempt, give_up, stop).await {
            None => {
                if stop.is_cancelled() {
                    login.error = Some("the flood was called off".into());
                }
                break;
            }
            Some(Err(error)) => {
                login.error = Some(format!("{error:#}"));
                break;
            }
            Some(Ok(answer)) => answer,
        };
        login.statuses.push(answer.status);
        if answer.status == StatusCode::OK {
            login.took = Some(began.elapsed());
            return login;
        }
        let retry = matches!(
            answer.status,
            StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
        );
        let wait = Duration::from_secs(answer.retry_after.unwrap_or(1));
        if !retry
            || Instant::now() + wait >= give_up
            || bounded(tokio::time::sleep(wait), give_up, stop)
                .await
                .is_none()
        {
            break;
        }
    }
    login.gave_up_after = began.elapsed();
    login
}
