//! A closed-loop HTTP/1.1 keep-alive load generator (like `wrk -c C`): C connections, one
//! request in flight on each, JSON POSTs, each connection keeping the session cookie the
//! server sets (as a desktop's cookie jar would). A request counts as done only on a 2xx whose
//! body says `"statusCode":0` (the GWS success status); anything else is an error. The same
//! generator drives the gateway's legacy JSON API and the bare axum handler.

use std::net::SocketAddr;
use std::time::Instant;

use anyhow::Context as _;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::grpc_load::{LoadResult, LoadShape, SlotPlan, Tally, Window};

/// Runs the load; `plans` has one entry per connection, reused cyclically if shorter.
pub async fn run(
    addr: SocketAddr,
    pid: Option<u32>,
    shape: LoadShape,
    plans: &[SlotPlan],
) -> anyhow::Result<(LoadResult, Option<String>)> {
    anyhow::ensure!(!plans.is_empty(), "no request plans");
    let mut senders = Vec::with_capacity(shape.connections);
    for _ in 0..shape.connections {
        let tcp = TcpStream::connect(addr).await.context("cannot connect")?;
        tcp.set_nodelay(true)?;
        let (sender, connection) =
            hyper::client::conn::http1::handshake::<_, Full<Bytes>>(TokioIo::new(tcp)).await?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        senders.push(sender);
    }
    let window = Window::new(&shape);
    let cpu = window.cpu_of(pid);
    let tasks: Vec<_> = senders
        .into_iter()
        .enumerate()
        .map(|(c, sender)| {
            let plan = plans[c % plans.len()].clone();
            tokio::spawn(connection_loop(sender, addr, plan, window))
        })
        .collect();
    let mut tally = Tally::default();
    for task in tasks {
        tally.merge(task.await?);
    }
    Ok(tally.result(&shape, cpu.await?))
}

async fn connection_loop(
    mut sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    addr: SocketAddr,
    plan: SlotPlan,
    window: Window,
) -> Tally {
    let mut tally = Tally::default();
    let host = addr.to_string();
    let mut turn = 0usize;
    // Like any HTTP client with a cookie jar (browsers, desktops), keep the session cookie
    // the server sets and send it back; the baseline sets none.
    let mut cookie: Option<String> = None;
    loop {
        let began = Instant::now();
        if began >= window.end {
            return tally;
        }
        let (path, body) = plan.requests[turn % plan.requests.len()].clone();
        turn += 1;
        let mut request = http::Request::post(path.as_str())
            .header("host", host.as_str())
            .header("content-type", "application/json")
            .body(Full::new(body))
            .expect("valid request");
        if let Some(value) = &plan.authorization {
            request
                .headers_mut()
                .insert("authorization", value.parse().expect("ascii authorization"));
        }
        if let Some(value) = &cookie {
            request
                .headers_mut()
                .insert("cookie", value.parse().expect("ascii cookie"));
        }
        let outcome = post(&mut sender, request, &mut cookie).await;
        let done = Instant::now();
        if !window.contains(done) {
            if outcome.is_err() && done >= window.end {
                return tally;
            }
            continue;
        }
        match outcome {
            Ok(()) => {
                tally.ok += 1;
                tally.latency.record_us((done - began).as_micros() as u64);
            }
            Err(error) => {
                tally.errors += 1;
                if tally.first_error.is_none() {
                    tally.first_error = Some(format!("{error:#}"));
                }
                if sender.is_closed() {
                    return tally;
                }
            }
        }
    }
}

pub(crate) async fn post(
    sender: &mut hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    request: http::Request<Full<Bytes>>,
    cookie: &mut Option<String>,
) -> anyhow::Result<()> {
    sender.ready().await?;
    let response = sender.send_request(request).await?;
    for set in response.headers().get_all("set-cookie") {
        if let Some(pair) = set.to_str().ok().and_then(|v| v.split(';').next()) {
            *cookie = Some(pair.to_owned());
        }
    }
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    anyhow::ensure!(
        status.is_success(),
        "HTTP {status}: {}",
        String::from_utf8_lossy(&body)
    );
    let json: serde_json::Value = serde_json::from_slice(&body).context("a JSON body")?;
    let code = json.get("statusCode").and_then(serde_json::Value::as_i64);
    anyhow::ensure!(code == Some(0), "statusCode {code:?}");
    Ok(())
}
