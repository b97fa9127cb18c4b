//! Mutual TLS on the gRPC listener, end to end against a PKI the test makes with rcgen: a
//! client certificate of the configured CA that names `demo-service` acts as that service
//! account without a token (tonic, and grpcurl `-cert`/`-key`); one that names no account
//! needs credentials; none, or one from another CA, is refused in the handshake without
//! disturbing other clients.

mod common;
mod tls_support;

use std::time::Duration;

use common::{as_user, pb};
use tls_support::{CertFiles, Pki, curl, gateway, grpcurl_json, tls_channel};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// Wraps a message acting for agent1 (`x-voice-user`), with no credentials.
fn for_agent1<T>(message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request
        .metadata_mut()
        .insert("x-voice-user", "agent1".parse().unwrap());
    request
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_certificate_acts_as_its_service_account_without_a_token() {
    let pki = Pki::new();
    let gw = gateway(pki.mtls_config()).await;
    let channel = tls_channel(gw.grpc_addr, &pki.ca, Some(&pki.client))
        .await
        .expect("an mTLS channel");
    let mut calls = pb::call_service_client::CallServiceClient::new(channel);
    let dial = pb::DialRequest {
        destination: "15001".into(),
        ..Default::default()
    };
    let call = calls
        .dial(for_agent1(dial))
        .await
        .expect("dial as demo-service")
        .into_inner()
        .call
        .unwrap();
    let listed = calls
        .list_calls(for_agent1(pb::ListCallsRequest::default()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        listed
            .calls
            .iter()
            .map(|c| c.id.as_str())
            .collect::<Vec<_>>(),
        [call.id.as_str()]
    );
    // Without x-voice-user it acts for nobody, like its token would.
    let nobody = calls
        .list_calls(pb::ListCallsRequest::default())
        .await
        .unwrap_err();
    assert_ne!(nobody.code(), tonic::Code::Unauthenticated, "{nobody:?}");
    // Credentials the request does send are judged alone.
    let mut wrong = for_agent1(pb::ListCallsRequest::default());
    wrong
        .metadata_mut()
        .insert("authorization", "Bearer not-the-token".parse().unwrap());
    assert_eq!(
        calls.list_calls(wrong).await.unwrap_err().code(),
        tonic::Code::Unauthenticated
    );
    assert!(
        calls
            .list_calls(as_user("agent2", pb::ListCallsRequest::default()))
            .await
            .is_ok()
    );

    // grpcurl's client certificate (Go's TLS stack) is accepted the same way.
    let cert = tls_support::path_arg(&pki.client.cert);
    let key = tls_support::path_arg(&pki.client.key);
    let listed = grpcurl_json(
        &pki,
        gw.grpc_addr,
        &["-cert", &cert, "-key", &key, "-H", "x-voice-user: agent2"],
        "voice.v1.CallService/ListCalls",
        "{}",
    )
    .await;
    assert_eq!(listed["calls"][0]["id"], call.id.as_str(), "{listed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_of_no_service_account_needs_credentials() {
    let pki = Pki::new();
    let gw = gateway(pki.mtls_config()).await;
    let channel = tls_channel(gw.grpc_addr, &pki.ca, Some(&pki.stranger))
        .await
        .expect("an mTLS channel");
    let mut calls = pb::call_service_client::CallServiceClient::new(channel);
    assert_eq!(
        calls
            .list_calls(for_agent1(pb::ListCallsRequest::default()))
            .await
            .unwrap_err()
            .code(),
        tonic::Code::Unauthenticated
    );
    assert!(
        calls
            .list_calls(as_user("agent1", pb::ListCallsRequest::default()))
            .await
            .is_ok()
    );
}

/// Reads from a handshaken client connection until the server's verdict: the alert it
/// sent, as text, or `accepted` when it answers an HTTP/2 preface.
async fn server_verdict(
    addr: std::net::SocketAddr,
    pki: &Pki,
    client: Option<&CertFiles>,
) -> String {
    let config = tls_support::client_config(&pki.ca, client, &[b"h2"]);
    let mut stream = match tls_support::tls_connect(addr, config).await {
        Ok(stream) => stream,
        Err(error) => return error.to_string(),
    };
    let exchange = async {
        stream
            .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0")
            .await?;
        let mut buf = [0u8; 64];
        let n = stream.read(&mut buf).await?;
        Ok::<_, std::io::Error>(if n > 0 {
            "accepted".to_owned()
        } else {
            "closed".to_owned()
        })
    };
    tokio::time::timeout(Duration::from_secs(5), exchange)
        .await
        .expect("the server's verdict within 5 s")
        .unwrap_or_else(|error| error.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_refuses_no_certificate_and_one_from_another_ca() {
    let pki = Pki::new();
    let gw = gateway(pki.mtls_config()).await;
    let without = server_verdict(gw.grpc_addr, &pki, None).await;
    assert!(without.contains("CertificateRequired"), "{without}");
    let foreign = server_verdict(gw.grpc_addr, &pki, Some(&pki.foreign)).await;
    assert!(
        foreign.contains("UnknownCA") || foreign.contains("BadCertificate"),
        "{foreign}"
    );
    // tonic sees the refusal too, and so does grpcurl without -cert.
    let refused = async {
        let channel = tls_channel(gw.grpc_addr, &pki.ca, None).await?;
        let mut calls = pb::call_service_client::CallServiceClient::new(channel);
        calls
            .list_calls(as_user("agent1", pb::ListCallsRequest::default()))
            .await
            .map_err(Into::into)
    };
    let refused: Result<_, Box<dyn std::error::Error>> = refused.await;
    assert!(
        refused.is_err(),
        "a call without a client certificate went through"
    );
    let grpcurl = tls_support::run_tool(
        &tls_support::grpcurl(),
        &[
            "-cacert".into(),
            tls_support::path_arg(&pki.ca),
            "-max-time".into(),
            "3".into(),
            gw.grpc_addr.to_string(),
            "list".into(),
        ],
    )
    .await;
    assert!(!grpcurl.success, "{}", grpcurl.stdout);
    // The refusals disturbed nothing: a good client is served, and the HTTP listener
    // asks for no client certificate.
    assert_eq!(
        server_verdict(gw.grpc_addr, &pki, Some(&pki.client)).await,
        "accepted"
    );
    let health = curl(&gw, &pki, "--http2").get("agent1", "/healthz").await;
    assert_eq!(health["status"], "serving");
}
