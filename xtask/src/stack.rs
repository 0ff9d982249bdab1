//! Probing and driving a running stack over plain HTTP, without an HTTP client crate.

use std::io::{Read, Write as _};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use anyhow::Context as _;

pub use taskflow_provision::process::{Service, Stack, free_port, signal_group};

/// Waits until `GET path` on `address` answers 200, or fails after `timeout`.
pub fn wait_until_ready(address: &str, path: &str, timeout: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        if http_status(address, path).is_ok_and(|status| status == 200) {
            return Ok(());
        }
        if Instant::now() > deadline {
            anyhow::bail!("http://{address}{path} did not answer 200 within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn http_status(address: &str, path: &str) -> anyhow::Result<u16> {
    http(address, "GET", path, None).map(|(status, _)| status)
}

/// A plain HTTP/1.0 request with an optional JSON body: enough for probes and smoke tests,
/// without an HTTP client crate in the build scripts.
pub fn http(
    address: &str,
    method: &str,
    path: &str,
    json: Option<&str>,
) -> anyhow::Result<(u16, String)> {
    let mut stream = TcpStream::connect(address)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let body = json.unwrap_or("");
    write!(
        stream,
        "{method} {path} HTTP/1.0\r\nHost: {address}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let status = response
        .split_whitespace()
        .nth(1)
        .context("no status code")?
        .parse()
        .context("a numeric status code")?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}
