//! Access control tried as an attacker would: odd spellings of every protected path sent over a
//! raw socket, the WebSocket's token and origin checks.

use std::net::SocketAddr;

use reqwest::StatusCode;
use taskflow_tests::{Options, TestApp};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

const TOKEN: &str = "s3cret";
const WS_HEADERS: &str = "Upgrade: websocket\r\nConnection: Upgrade\r\n\
Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";

fn with_read_token(extra: &[(&'static str, &str)]) -> Options {
    let mut vars = vec![
        ("API_TOKEN", TOKEN.to_owned()),
        ("API_TOKEN_READS", "true".to_owned()),
    ];
    vars.extend(
        extra
            .iter()
            .map(|(name, value)| (*name, (*value).to_owned())),
    );
    Options {
        vars,
        ..Options::default()
    }
}

/// Sends one request exactly as written (no client normalises the path) and returns the status
/// code and the response's head.
async fn raw_request(address: SocketAddr, request_line: &str, headers: &str) -> (u16, String) {
    raw_request_with_body(address, request_line, headers, "").await
}

async fn raw_request_with_body(
    address: SocketAddr,
    request_line: &str,
    headers: &str,
    body: &str,
) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let request = format!(
        "{request_line} HTTP/1.1\r\nHost: {address}\r\n{headers}Content-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    let read = async {
        // Up to the end of the head: a 101 keeps the connection open after it.
        while !head.windows(4).any(|window| window == b"\r\n\r\n") {
            let n = stream.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            head.extend_from_slice(&buf[..n]);
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(10), read)
        .await
        .unwrap_or_else(|_| panic!("no answer to {request_line}"));
    let head = String::from_utf8_lossy(&head).into_owned();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status line for {request_line}: {head:?}"));
    (status, head)
}

fn spellings(canonical: &str) -> Vec<String> {
    let rest = canonical.trim_start_matches('/');
    let (first, tail) = rest.split_once('/').unwrap_or((rest, ""));
    let tail = if tail.is_empty() {
        String::new()
    } else {
        format!("/{tail}")
    };
    let mut encoded_first = String::new();
    for (i, c) in first.chars().enumerate() {
        if i == 0 {
            encoded_first.push_str(&format!("%{:02x}", c as u32));
        } else {
            encoded_first.push(c);
        }
    }
    vec![
        canonical.to_owned(),
        format!("/{canonical}"),
        format!("///{rest}"),
        format!("/{encoded_first}{tail}"),
        format!("/{}{tail}", encoded_first.to_uppercase()),
        format!("{canonical}/"),
        format!("/./{rest}"),
        format!("/x/../{rest}"),
        format!("/{first}/.{tail}"),
        format!("/{first}/{tail}").replace("//", "/") + "?",
        format!("/{first}//{}", tail.trim_start_matches('/')),
        format!("{canonical}?token={TOKEN}x"),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_spelling_of_a_protected_path_reaches_its_data_without_the_token() {
    let app = TestApp::spawn_with(with_read_token(&[])).await;
    let id = app.create_task_with_token(TOKEN).await;
    let authorized = format!("Authorization: Bearer {TOKEN}\r\n");

    let mut served = Vec::new();
    for (canonical, extra) in [
        ("/tasks".to_owned(), ""),
        (format!("/tasks/{id}"), ""),
        ("/stats".to_owned(), ""),
        ("/ws".to_owned(), WS_HEADERS),
    ] {
        for path in spellings(&canonical) {
            let request_line = format!("GET {path}");
            let (with_token, _) =
                raw_request(app.address, &request_line, &format!("{extra}{authorized}")).await;
            let (without, head) = raw_request(app.address, &request_line, extra).await;
            assert!(
                without == 401 || without >= 400 && with_token >= 400,
                "GET {path} without the token answered {without} (with it: {with_token}): {head}"
            );
            if with_token < 400 {
                served.push(path);
            }
        }
    }
    // The spellings known to have slipped through a path-string check are really served, so
    // the assertions above did test them.
    for bypass in [
        format!("//tasks/{id}"),
        format!("/%74asks/{id}"),
        "//tasks".to_owned(),
        "/%74asks".to_owned(),
        "//ws".to_owned(),
    ] {
        assert!(
            served.contains(&bypass),
            "{bypass} is not served: {served:?}"
        );
    }

    // Writes too, on any spelling, even without API_TOKEN_READS's reads.
    for path in spellings("/tasks") {
        let body = r#"{"title":"t","payload":{"message":"m"}}"#;
        let (status, head) = raw_request_with_body(
            app.address,
            &format!("POST {path}"),
            "Content-Type: application/json\r\n",
            body,
        )
        .await;
        assert!(
            status == 401 || status == 404 || status == 405 || status == 400,
            "POST {path} without the token answered {status}: {head}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_retry_on_an_odd_spelling_needs_the_write_token() {
    let app = TestApp::spawn_with(Options {
        vars: vec![("API_TOKEN", TOKEN.to_owned())],
        no_worker: true,
        ..Options::default()
    })
    .await;
    let id = uuid::Uuid::new_v4();
    for path in [
        format!("//tasks/{id}/retry"),
        format!("/%74asks/{id}/retry"),
        format!("/tasks/{id}//retry"),
        format!("/tasks/{id}/%72etry"),
    ] {
        let (status, head) = raw_request(app.address, &format!("POST {path}"), "").await;
        assert_eq!(status, 401, "POST {path}: {head}");
    }
}

fn ws_request(
    app: &TestApp,
    protocols: Option<&str>,
    origin: Option<&str>,
) -> tokio_tungstenite::tungstenite::handshake::client::Request {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
    let mut request = app.ws_url().into_client_request().unwrap();
    if let Some(protocols) = protocols {
        request
            .headers_mut()
            .insert("sec-websocket-protocol", protocols.parse().unwrap());
    }
    if let Some(origin) = origin {
        request
            .headers_mut()
            .insert("origin", origin.parse().unwrap());
    }
    request
}

fn refused_with(
    result: Result<impl std::fmt::Debug, tokio_tungstenite::tungstenite::Error>,
) -> u16 {
    match result {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => response.status().as_u16(),
        other => panic!("the handshake must be refused, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_websocket_authenticates_with_a_subprotocol_not_the_url() {
    use base64::Engine as _;
    let app = TestApp::spawn_with(with_read_token(&[])).await;
    let encoded = |token: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(token);

    let (_socket, response) = tokio_tungstenite::connect_async(ws_request(
        &app,
        Some(&format!("taskflow, taskflow.bearer.{}", encoded(TOKEN))),
        None,
    ))
    .await
    .expect("the subprotocol token is accepted");
    assert_eq!(
        response.headers()["sec-websocket-protocol"],
        "taskflow",
        "a browser fails a handshake whose offered protocols get no answer"
    );

    for wrong in [
        format!("taskflow, taskflow.bearer.{}", encoded("s3creT")),
        "taskflow, taskflow.bearer.!!!".to_owned(),
        "taskflow".to_owned(),
    ] {
        let status = refused_with(
            tokio_tungstenite::connect_async(ws_request(&app, Some(&wrong), None)).await,
        );
        assert_eq!(status, 401, "{wrong}");
    }
    // The token in the URL is not accepted: it would land in access logs.
    let in_url = tokio_tungstenite::connect_async(format!("{}?token={TOKEN}", app.ws_url())).await;
    assert_eq!(refused_with(in_url), 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_cors_origins_set_a_websocket_from_another_site_is_refused() {
    let app = TestApp::spawn_with(Options {
        vars: vec![(
            "CORS_ALLOW_ORIGINS",
            "https://dashboard.example, http://localhost:5173".to_owned(),
        )],
        no_worker: true,
        ..Options::default()
    })
    .await;
    let status = refused_with(
        tokio_tungstenite::connect_async(ws_request(&app, None, Some("https://evil.example")))
            .await,
    );
    assert_eq!(status, StatusCode::FORBIDDEN.as_u16());

    let same_origin = format!("http://{}", app.address);
    for allowed in [
        Some("https://dashboard.example"),
        Some("http://localhost:5173"),
        Some(same_origin.as_str()),
        None,
    ] {
        tokio_tungstenite::connect_async(ws_request(&app, None, allowed))
            .await
            .unwrap_or_else(|err| panic!("origin {allowed:?} is allowed: {err}"));
    }
}
