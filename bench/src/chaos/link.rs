//! The connections a chaotic CometD client talks over: an HTTP/1.1 keep-alive connection
//! (long-polling POSTs, and the snapshot GET) and a WebSocket, and [`BayeuxLink`], which
//! sends a Bayeux batch on either. Each is one TCP connection through the proxy; dropping
//! the link closes it.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;
use futures::{SinkExt as _, StreamExt as _};
use http_body_util::{BodyExt as _, Full};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;

use crate::cometd::NOTIFICATIONS;

/// How long opening a connection may take.
const OPEN_LIMIT: Duration = Duration::from_secs(5);

/// An HTTP/1.1 connection.
pub struct HttpLink {
    sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    host: String,
    connection: JoinHandle<()>,
}

/// An HTTP response as the client needs it.
#[derive(Debug)]
pub struct HttpReply {
    /// The status.
    pub status: u16,
    /// The `BAYEUX_BROWSER=...` pair of a `Set-Cookie`, if any.
    pub browser_cookie: Option<String>,
    /// The body, parsed.
    pub body: Value,
}

impl HttpLink {
    /// Opens a connection to `addr`.
    pub async fn open(addr: SocketAddr) -> anyhow::Result<Self> {
        let tcp = tokio::time::timeout(OPEN_LIMIT, TcpStream::connect(addr))
            .await
            .context("connect timed out")??;
        tcp.set_nodelay(true)?;
        let (sender, connection) =
            hyper::client::conn::http1::handshake::<_, Full<Bytes>>(TokioIo::new(tcp)).await?;
        let connection = tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(Self {
            sender,
            host: addr.to_string(),
            connection,
        })
    }

    /// Sends a request and reads the whole response, within `limit`.
    pub async fn request(
        &mut self,
        method: http::Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<String>,
        limit: Duration,
    ) -> anyhow::Result<HttpReply> {
        let mut request = http::Request::builder()
            .method(method)
            .uri(path)
            .header("host", &self.host);
        if body.is_some() {
            request = request.header("content-type", "application/json;charset=UTF-8");
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request.body(Full::new(Bytes::from(body.unwrap_or_default())))?;
        let exchange = async {
            self.sender.ready().await?;
            let response = self.sender.send_request(request).await?;
            let status = response.status().as_u16();
            let browser_cookie = response
                .headers()
                .get_all("set-cookie")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .filter_map(|v| v.split(';').next())
                .find(|pair| pair.starts_with("BAYEUX_BROWSER="))
                .map(str::to_owned);
            let bytes = response.into_body().collect().await?.to_bytes();
            let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            anyhow::Ok(HttpReply {
                status,
                browser_cookie,
                body,
            })
        };
        tokio::time::timeout(limit, exchange)
            .await
            .with_context(|| format!("no answer to {path} within {limit:?}"))?
    }
}

impl Drop for HttpLink {
    fn drop(&mut self) {
        self.connection.abort();
    }
}

/// A WebSocket on the Bayeux path.
pub struct WsLink {
    socket: WebSocketStream<TcpStream>,
}

impl WsLink {
    /// Opens the socket with the given `Authorization`.
    pub async fn open(addr: SocketAddr, authorization: &str) -> anyhow::Result<Self> {
        let tcp = tokio::time::timeout(OPEN_LIMIT, TcpStream::connect(addr))
            .await
            .context("connect timed out")??;
        tcp.set_nodelay(true)?;
        let mut request = format!("ws://{addr}{NOTIFICATIONS}").into_client_request()?;
        request
            .headers_mut()
            .insert("authorization", authorization.parse()?);
        let (socket, _) =
            tokio::time::timeout(OPEN_LIMIT, tokio_tungstenite::client_async(request, tcp))
                .await
                .context("websocket upgrade timed out")??;
        Ok(Self { socket })
    }

    /// Sends a batch, then reads frames until the reply to every meta message of the batch
    /// (matched by `id`) has arrived, within `limit`; returns every message read, in order.
    pub async fn exchange(
        &mut self,
        batch: &[Value],
        limit: Duration,
    ) -> anyhow::Result<Vec<Value>> {
        let mut waiting: Vec<&Value> = batch.iter().filter_map(|m| m.get("id")).collect();
        let text = serde_json::to_string(batch)?;
        let exchange = async {
            self.socket.send(Message::text(text)).await?;
            let mut received = Vec::new();
            while !waiting.is_empty() {
                let frame = self.socket.next().await.context("the socket closed")??;
                let text = match frame {
                    Message::Text(text) => text,
                    Message::Close(close) => {
                        anyhow::bail!("the server closed the socket: {close:?}")
                    }
                    _ => continue,
                };
                let messages: Vec<Value> =
                    serde_json::from_str(&text).context("a frame that is not a batch")?;
                for message in messages {
                    if message["channel"]
                        .as_str()
                        .is_some_and(|c| c.starts_with("/meta/"))
                    {
                        waiting.retain(|id| Some(*id) != message.get("id"));
                    }
                    received.push(message);
                }
            }
            anyhow::Ok(received)
        };
        tokio::time::timeout(limit, exchange)
            .await
            .with_context(|| format!("no reply on the socket within {limit:?}"))?
    }
}

/// The transport of a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// HTTP POSTs.
    LongPolling,
    /// One socket.
    WebSocket,
}

/// A Bayeux connection of either transport.
pub enum BayeuxLink {
    /// Long-polling POSTs.
    Http(HttpLink),
    /// Frames on a socket.
    Ws(Box<WsLink>),
}

impl BayeuxLink {
    /// Opens a connection of `transport` (a WebSocket upgrade carries `authorization`).
    pub async fn open(
        transport: Transport,
        addr: SocketAddr,
        authorization: &str,
    ) -> anyhow::Result<Self> {
        Ok(match transport {
            Transport::LongPolling => Self::Http(HttpLink::open(addr).await?),
            Transport::WebSocket => Self::Ws(Box::new(WsLink::open(addr, authorization).await?)),
        })
    }

    /// Sends a batch (a long-polling POST to the path plus `suffix`, with the credentials
    /// and the browser cookie); returns the messages of the answer, and the browser cookie
    /// the server set, if it did.
    pub async fn send(
        &mut self,
        authorization: &str,
        cookie: Option<&str>,
        suffix: &str,
        batch: &[Value],
        limit: Duration,
    ) -> anyhow::Result<(Vec<Value>, Option<String>)> {
        let http = match self {
            Self::Ws(ws) => return Ok((ws.exchange(batch, limit).await?, None)),
            Self::Http(http) => http,
        };
        let mut headers = vec![("authorization", authorization)];
        if let Some(cookie) = cookie {
            headers.push(("cookie", cookie));
        }
        let body = serde_json::to_string(batch)?;
        let path = format!("{NOTIFICATIONS}{suffix}");
        let reply = http
            .request(http::Method::POST, &path, &headers, Some(body), limit)
            .await?;
        anyhow::ensure!(reply.status == 200, "HTTP {}: {}", reply.status, reply.body);
        match reply.body {
            Value::Array(messages) => Ok((messages, reply.browser_cookie)),
            other => anyhow::bail!("not a batch: {other}"),
        }
    }
}
