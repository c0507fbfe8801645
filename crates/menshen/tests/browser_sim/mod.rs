//! A customer's browser, simulated over HTTPS for the authorization tests:
//! a cookie jar over the SDK's client, form posts, and the few HTML helpers
//! the bank's pages need (form action, hidden inputs).
#![allow(dead_code)]

use std::collections::HashMap;

use bytes::Bytes;

/// A customer's browser: a cookie jar over the SDK's HTTPS client.
pub struct Browser {
    http: menshen_sdk::HttpClient,
    base: String,
    cookies: HashMap<String, String>,
}

/// One page as the browser got it.
pub struct Page {
    pub status: u16,
    pub location: Option<String>,
    pub html: String,
    pub headers: http::HeaderMap,
}

impl Browser {
    pub fn new(base: &str, ca_pem: &[u8]) -> Self {
        Browser {
            http: menshen_sdk::http_client(Some(ca_pem)).unwrap(),
            base: base.to_string(),
            cookies: HashMap::new(),
        }
    }

    pub async fn send(
        &mut self,
        method: &str,
        url: &str,
        form: Option<Vec<(String, String)>>,
    ) -> Page {
        let url = if url.starts_with("https://") {
            url.to_string()
        } else {
            format!("{}{}", self.base, url)
        };
        let mut b = http::Request::builder().method(method).uri(&url);
        if !self.cookies.is_empty() {
            let c: Vec<String> = self
                .cookies
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            b = b.header("cookie", c.join("; "));
        }
        let body = match form {
            Some(pairs) => {
                b = b.header("content-type", "application/x-www-form-urlencoded");
                Bytes::from(
                    pairs
                        .iter()
                        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
                        .collect::<Vec<_>>()
                        .join("&"),
                )
            }
            None => Bytes::new(),
        };
        let r = menshen_sdk::send(&self.http, b.body(body).unwrap())
            .await
            .unwrap();
        for v in r.headers.get_all("set-cookie") {
            let v = v.to_str().unwrap();
            assert!(
                v.contains("HttpOnly") && v.contains("Secure") && v.contains("SameSite=Strict"),
                "{v}"
            );
            if let Some((kv, _)) = v.split_once(';') {
                if let Some((k, val)) = kv.split_once('=') {
                    self.cookies
                        .insert(k.trim().to_string(), val.trim().to_string());
                }
            }
        }
        Page {
            status: r.status,
            location: r
                .headers
                .get("location")
                .map(|l| l.to_str().unwrap().to_string()),
            html: String::from_utf8_lossy(&r.body).into_owned(),
            headers: r.headers,
        }
    }

    /// Follow same-origin redirects with GET; stop at one to the app's
    /// `redirect` URI (or anywhere else off the gateway).
    pub async fn follow(&mut self, mut p: Page, redirect: &str) -> Page {
        for _ in 0..5 {
            match &p.location {
                Some(l) if (300..400).contains(&p.status) && !l.starts_with(redirect) => {
                    let l = l.clone();
                    p = self.send("GET", &l, None).await;
                }
                _ => break,
            }
        }
        p
    }
}

pub fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The value of the input named `name` in `html`.
pub fn input(html: &str, name: &str) -> Option<String> {
    let i = html.find(&format!("name=\"{name}\""))?;
    let tag_start = html[..i].rfind('<')?;
    let tag = &html[tag_start..tag_start + html[tag_start..].find('>')?];
    let v = tag.split("value=\"").nth(1)?.split('"').next()?;
    Some(
        v.replace("&amp;", "&")
            .replace("&#x2F;", "/")
            .replace("&quot;", "\""),
    )
}

/// The action of the first form in `html`.
pub fn action(html: &str) -> String {
    html.split("action=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap_or_else(|| panic!("no form in {html}"))
        .replace("&amp;", "&")
        .replace("&#x2F;", "/")
}

pub fn query_param(url: &str, name: &str) -> Option<String> {
    url.split_once('?')?.1.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == name).then(|| v.replace("%3A", ":").replace("%2F", "/"))
    })
}
