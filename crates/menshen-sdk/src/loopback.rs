//! Receiving the authorization code on a loopback redirect URI (RFC 8252
//! section 7.3), for command-line tools and examples: listen on the
//! `http://127.0.0.1:PORT/...` redirect URI the app registered, take the one
//! redirect the customer's browser makes, check `state` and `iss`, and
//! answer the browser with a short page.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::SdkError;

/// What the redirect carried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Redirect {
    /// The customer approved: the code to exchange.
    Code(String),
    /// The customer declined or the server refused (`error` parameter).
    Error(String),
}

fn param(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == name).then(|| decode(v))
    })
}

fn decode(v: &str) -> String {
    let b = v.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b'%' if i + 2 < b.len() => {
                match u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("zz"), 16)
                {
                    Ok(x) => {
                        out.push(x);
                        i += 3;
                    }
                    Err(_) => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Wait (at most `timeout`) for the browser's redirect to `redirect_uri`
/// (which must be `http://127.0.0.1:PORT/PATH`) carrying `state`, issued by
/// `issuer` (RFC 9207). Requests to other paths are answered 404 and
/// ignored.
pub async fn wait_for_code(
    redirect_uri: &str,
    state: &str,
    issuer: &str,
    timeout: Duration,
) -> Result<Redirect, SdkError> {
    let rest = redirect_uri
        .strip_prefix("http://127.0.0.1:")
        .ok_or_else(|| {
            SdkError::Url(format!(
                "{redirect_uri}: not an http://127.0.0.1:PORT/ redirect URI"
            ))
        })?;
    let (port, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let port: u16 = port
        .parse()
        .map_err(|_| SdkError::Url(format!("{redirect_uri}: no port")))?;
    let path = if path.is_empty() { "/" } else { path };
    let l = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .map_err(|e| SdkError::Http(format!("listen on 127.0.0.1:{port}: {e}")))?;
    let wait = async {
        loop {
            let (mut s, _) = l
                .accept()
                .await
                .map_err(|e| SdkError::Http(e.to_string()))?;
            let mut buf = vec![0u8; 8192];
            let mut n = 0;
            // The request line and headers; the redirect has no body.
            // A connection that sends nothing (a port scan, a stray page)
            // is dropped; the wait goes on.
            let mut dead = false;
            while n < buf.len() {
                let k = match tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf[n..]))
                    .await
                {
                    Ok(Ok(k)) => k,
                    _ => {
                        dead = true;
                        break;
                    }
                };
                if k == 0 {
                    break;
                }
                n += k;
                if buf[..n].windows(4).any(|w| w == b"\r\n\r\n") {
                    break;
                }
            }
            let head = String::from_utf8_lossy(&buf[..n]).into_owned();
            let target = head.split(' ').nth(1).unwrap_or("");
            let (p, q) = target.split_once('?').unwrap_or((target, ""));
            if p != path {
                let _ = s
                    .write_all(
                        b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                    )
                    .await;
                continue;
            }
            if dead {
                continue;
            }
            // A request that is not this authorization's redirect (another
            // page making the browser load this address, a stale tab) is
            // answered 400 and ignored: only a redirect with our `state`
            // and this gateway's `iss` (RFC 9207, required) ends the wait.
            if param(q, "state").as_deref() != Some(state)
                || param(q, "iss").as_deref() != Some(issuer)
            {
                let _ = s
                    .write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                    .await;
                continue;
            }
            let result = if let Some(c) = param(q, "code") {
                Ok(Redirect::Code(c))
            } else {
                Ok(Redirect::Error(
                    param(q, "error").unwrap_or_else(|| "no code".into()),
                ))
            };
            let msg = match &result {
                Ok(Redirect::Code(_)) => {
                    "Authorized. You can close this window and return to the terminal."
                }
                _ => "Not authorized. You can close this window.",
            };
            let page =
                format!("<!doctype html><meta charset=utf-8><title>Menshen</title><p>{msg}</p>");
            let _ = s
                .write_all(
                    format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: text/html; charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{page}",
                        page.len()
                    )
                    .as_bytes(),
                )
                .await;
            return result;
        }
    };
    tokio::time::timeout(timeout, wait)
        .await
        .map_err(|_| SdkError::Http(format!("no redirect to {redirect_uri} within {timeout:?}")))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn usr_1_the_redirect_carries_the_code_when_state_matches() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        drop(l);
        let uri = format!("http://127.0.0.1:{port}/callback");
        let waiter = tokio::spawn({
            let uri = uri.clone();
            async move { wait_for_code(&uri, "s1", "https://gw", Duration::from_secs(10)).await }
        });
        // Retry until the listener is up (bounded); a stray request with
        // another state (or no iss) is answered 400 and does not end the wait.
        let mut stray_refused = false;
        for _ in 0..100 {
            if let Ok(mut s) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await {
                s.write_all(b"GET /callback?code=evil&state=other HTTP/1.1\r\nhost: x\r\n\r\n")
                    .await
                    .unwrap();
                let mut out = Vec::new();
                let _ = s.read_to_end(&mut out).await;
                assert!(String::from_utf8_lossy(&out).starts_with("HTTP/1.1 400"));
                stray_refused = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(stray_refused);
        let mut sent = false;
        for _ in 0..100 {
            if let Ok(mut s) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await {
                s.write_all(b"GET /callback?code=abc%2Bd&state=s1&iss=https%3A%2F%2Fgw HTTP/1.1\r\nhost: x\r\n\r\n")
                    .await
                    .unwrap();
                let mut out = Vec::new();
                let _ = s.read_to_end(&mut out).await;
                assert!(String::from_utf8_lossy(&out).starts_with("HTTP/1.1 200"));
                sent = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(sent);
        assert_eq!(
            waiter.await.unwrap().unwrap(),
            Redirect::Code("abc+d".into())
        );
    }

    #[test]
    fn query_parameters_decode() {
        assert_eq!(param("a=1&code=x%2Fy+z", "code").as_deref(), Some("x/y z"));
        assert_eq!(param("a=1", "code"), None);
        assert_eq!(decode("%zz%"), "%zz%");
    }
}
