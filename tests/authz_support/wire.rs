//! Sending attempts and judging their outcomes: a gRPC client that calls any method by its
//! path ([`call_raw`]), an HTTP sender, and the comparison with what an attempt expects.

use prost::bytes::{Buf as _, BufMut as _};
use serde_json::Value;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::transport::Channel;

use super::{Credentials, Expect, Fixture, WAIT};

/// Checks a gRPC outcome against what the attempt expects.
pub fn judge_grpc(outcome: &Result<Vec<u8>, tonic::Status>, expect: Expect) -> Result<(), String> {
    match (outcome, expect) {
        (Ok(_), Expect::Served) => Ok(()),
        (Err(status), Expect::Served) => Err(format!("refused: {status:?}")),
        (Ok(_), Expect::Refused(refusal)) => Err(format!("served; expected {refusal:?}")),
        (Err(status), Expect::Refused(refusal)) => {
            let gws = status
                .metadata()
                .get("gws-status-code")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u32>().ok());
            if status.code() == refusal.grpc && gws == Some(refusal.gws) {
                Ok(())
            } else {
                Err(format!(
                    "got {:?} (gws-status-code {gws:?}: {}); expected {:?} with {}",
                    status.code(),
                    status.message(),
                    refusal.grpc,
                    refusal.gws
                ))
            }
        }
    }
}

/// Checks an HTTP outcome (status and JSON body) against what the attempt expects.
pub fn judge_http(status: u16, body: &str, expect: Expect) -> Result<(), String> {
    match expect {
        Expect::Served if status == 200 => Ok(()),
        Expect::Served => Err(format!("got {status} {body}; expected 200")),
        Expect::Refused(refusal) => {
            let json: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
            if status == refusal.http && json["statusCode"] == refusal.gws {
                Ok(())
            } else {
                Err(format!(
                    "got {status} {body}; expected {} with statusCode {}",
                    refusal.http, refusal.gws
                ))
            }
        }
    }
}

/// A codec that sends and receives message bytes as they are, so one client can call any
/// method by its path with a request encoded elsewhere.
#[derive(Debug, Clone, Copy, Default)]
pub struct RawCodec;

impl Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawCodec;
    type Decoder = RawCodec;

    fn encoder(&mut self) -> Self::Encoder {
        RawCodec
    }

    fn decoder(&mut self) -> Self::Decoder {
        RawCodec
    }
}

impl Encoder for RawCodec {
    type Item = Vec<u8>;
    type Error = tonic::Status;

    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), Self::Error> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawCodec {
    type Item = Vec<u8>;
    type Error = tonic::Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, Self::Error> {
        let mut item = vec![0; src.remaining()];
        src.copy_to_slice(&mut item);
        Ok(Some(item))
    }
}

/// Calls any gRPC method by its path (`/package.Service/Method`) with one encoded request
/// message; returns the first response message. Unary, server-streaming and bidirectional
/// methods look alike on the wire: one request message, then the reply or a status.
pub async fn call_raw(
    channel: &Channel,
    path: &str,
    body: Vec<u8>,
    credentials: &Credentials,
) -> Result<Vec<u8>, tonic::Status> {
    let mut grpc = tonic::client::Grpc::new(channel.clone());
    grpc.ready()
        .await
        .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
    let mut request = tonic::Request::new(futures::stream::iter([body]));
    credentials.apply(request.metadata_mut());
    let path = tonic::codegen::http::uri::PathAndQuery::try_from(path).unwrap();
    let call = async {
        let mut stream = grpc.streaming(request, path, RawCodec).await?.into_inner();
        stream
            .message()
            .await?
            .ok_or_else(|| tonic::Status::internal("the stream ended without a message"))
    };
    tokio::time::timeout(WAIT, call).await.unwrap_or_else(|_| {
        Err(tonic::Status::deadline_exceeded(
            "no answer within the wait",
        ))
    })
}

/// Sends one HTTP request; returns the status and the body.
pub async fn send_http(
    fixture: &Fixture,
    method: &str,
    path: &str,
    body: Option<&Value>,
    credentials: &Credentials,
) -> (u16, String) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut request = fixture
        .http
        .request(method, format!("{}{path}", fixture.gw.http_url()));
    if let Some(value) = &credentials.authorization {
        request = request.header("authorization", value);
    }
    if let Some(value) = &credentials.cookie {
        request = request.header("cookie", value);
    }
    if let Some(body) = body {
        request = request
            .header("content-type", "application/json")
            .body(body.to_string());
    }
    let send = async {
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.text().await.unwrap())
    };
    tokio::time::timeout(WAIT, send)
        .await
        .unwrap_or_else(|_| panic!("no answer to {path} within {WAIT:?}"))
}

/// Inserts a trailing slash before the query: every JSON API path is served both ways.
pub fn with_slash(path: &str) -> String {
    match path.split_once('?') {
        Some((path, query)) => format!("{path}/?{query}"),
        None => format!("{path}/"),
    }
}
