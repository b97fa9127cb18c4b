//! HTTP/1.1 clients: one-off requests (probes and set-up) on a fresh connection each, and
//! a keep-alive connection from a chosen loopback address.

use std::net::{IpAddr, SocketAddr};

use base64::Engine as _;
use bytes::Bytes;
use http::{HeaderValue, StatusCode};
use http_body_util::{BodyExt as _, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;

/// Sends one request; returns the status and the body.
pub async fn request(
    addr: SocketAddr,
    method: http::Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Bytes,
) -> anyhow::Result<(http::StatusCode, Bytes)> {
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake::<_, Full<Bytes>>(TokioIo::new(tcp)).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let mut builder = http::Request::builder()
        .method(method)
        .uri(path)
        .header("host", addr.to_string());
    for (key, value) in headers {
        builder = builder.header(*key, *value);
    }
    let response = sender.send_request(builder.body(Full::new(body))?).await?;
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    Ok((status, body))
}

/// Returns the `authorization` value of Basic credentials.
pub fn basic(user: &str, password: &str) -> String {
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Basic {token}")
}

/// A keep-alive HTTP/1.1 connection; dropping it closes the socket, even with a request
/// in flight.
#[derive(Debug)]
pub struct KeepAlive {
    sender: SendRequest<Full<Bytes>>,
    driver: tokio::task::JoinHandle<()>,
}

impl Drop for KeepAlive {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

/// What a GET got back: the status, `Retry-After` (seconds), a session cookie, and
/// whether the server will close the connection.
#[derive(Debug)]
pub struct Answer {
    /// The status.
    pub status: StatusCode,
    /// `Retry-After`, in seconds.
    pub retry_after: Option<u64>,
    /// The cookie of `Set-Cookie` (`name=value`).
    pub cookie: Option<String>,
    /// Whether the server said it closes the connection.
    pub closing: bool,
}

impl KeepAlive {
    /// Connects to `addr`, from `source` when given (any port of that loopback address).
    pub async fn open(addr: SocketAddr, source: Option<IpAddr>) -> anyhow::Result<Self> {
        let tcp = match source {
            None => tokio::net::TcpStream::connect(addr).await?,
            Some(ip) => {
                let socket = tokio::net::TcpSocket::new_v4()?;
                socket.bind(SocketAddr::new(ip, 0))?;
                socket.connect(addr).await?
            }
        };
        tcp.set_nodelay(true)?;
        let (sender, connection) =
            hyper::client::conn::http1::handshake::<_, Full<Bytes>>(TokioIo::new(tcp)).await?;
        let driver = tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(Self { sender, driver })
    }

    /// Sends a GET with Basic (or other) credentials and a cookie; reads the whole answer.
    pub async fn get(
        &mut self,
        host: &str,
        path: &str,
        authorization: &str,
        cookie: Option<&str>,
    ) -> anyhow::Result<Answer> {
        let mut request = http::Request::get(path)
            .header("host", host)
            .header("authorization", authorization);
        if let Some(cookie) = cookie {
            request = request.header("cookie", cookie);
        }
        self.sender.ready().await?;
        let response = self
            .sender
            .send_request(request.body(Full::new(Bytes::new()))?)
            .await?;
        let headers = response.headers();
        let answer = Answer {
            status: response.status(),
            retry_after: header_str(headers.get("retry-after")).and_then(|v| v.parse().ok()),
            cookie: header_str(headers.get("set-cookie"))
                .and_then(|v| v.split(';').next())
                .map(str::to_owned),
            closing: header_str(headers.get("connection"))
                .is_some_and(|v| v.eq_ignore_ascii_case("close")),
        };
        response.into_body().collect().await?;
        Ok(answer)
    }
}

fn header_str(value: Option<&HeaderValue>) -> Option<&str> {
    value.and_then(|v| v.to_str().ok())
}
