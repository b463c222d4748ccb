//! Canned responses written outside hyper, for connections hyper does not
//! (or no longer) drive: the over-capacity `503` and the header-timeout
//! `408`. Both are fixed, complete HTTP/1.1 messages followed by a close.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long writing a canned response plus the lingering close may take.
const REPLY_BUDGET: Duration = Duration::from_secs(1);

/// Most bytes discarded while lingering before the close.
const LINGER_BYTES: usize = 64 * 1024;

/// The response sent when `max_connections` is reached.
pub(crate) fn service_unavailable() -> String {
    canned(
        "503 Service Unavailable",
        "Retry-After: 1\r\n",
        "server busy, retry shortly\n",
    )
}

/// The response sent when a request head did not arrive in time.
pub(crate) fn request_timeout(timeout: Duration) -> String {
    let body = format!(
        "request headers not received within {}\n",
        format_duration(timeout)
    );
    canned("408 Request Timeout", "", &body)
}

fn format_duration(duration: Duration) -> String {
    let millis = duration.as_millis();
    if millis.is_multiple_of(1000) {
        format!("{}s", millis / 1000)
    } else {
        format!("{millis}ms")
    }
}

fn canned(status: &str, extra_headers: &str, body: &str) -> String {
    format!(
        "HTTP/1.1 {status}\r\nConnection: close\r\nContent-Type: text/plain; charset=utf-8\r\n\
         {extra_headers}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// Writes `response`, then closes with a short linger (see [`linger_close`]).
pub(crate) async fn reply_and_close(mut stream: TcpStream, response: &str) {
    let write = stream.write_all(response.as_bytes());
    if let Ok(Ok(())) = tokio::time::timeout(REPLY_BUDGET, write).await {
        linger_close(stream).await;
    }
}

/// Closes a socket whose response has been written, without losing it.
///
/// Closing a socket that still has unread request bytes makes the kernel
/// send RST, which can destroy the response before the client reads it; so
/// the sending side is shut down first and input is discarded until the
/// client closes, a cap is reached, or the budget runs out. Errors are
/// ignored: the client may already be gone, and there is nothing more to
/// tell it.
pub(crate) async fn linger_close(mut stream: TcpStream) {
    let exchange = async {
        // May fail if hyper already shut the sending side; reading still helps.
        let _ = stream.shutdown().await;
        let mut sink = [0u8; 4096];
        let mut discarded = 0;
        while discarded < LINGER_BYTES {
            match stream.read(&mut sink).await? {
                0 => break,
                n => discarded += n,
            }
        }
        Ok::<_, std::io::Error>(())
    };
    let _ = tokio::time::timeout(REPLY_BUDGET, exchange).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canned_responses_are_well_formed() {
        let busy = service_unavailable();
        assert!(busy.starts_with("HTTP/1.1 503 Service Unavailable\r\n"));
        assert!(busy.contains("\r\nRetry-After: 1\r\n"));
        let (head, body) = busy.split_once("\r\n\r\n").unwrap();
        assert!(head.contains(&format!("Content-Length: {}", body.len())));

        let slow = request_timeout(Duration::from_millis(300));
        assert!(slow.starts_with("HTTP/1.1 408 Request Timeout\r\n"));
        assert!(slow.ends_with("request headers not received within 300ms\n"));
        assert!(request_timeout(Duration::from_secs(10)).contains("within 10s"));
    }
}
