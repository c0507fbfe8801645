//! Screen (ATK-1): every string of the request that the bank's systems
//! read, after decryption and validation, through [`crate::screen::scan`]:
//! each path segment the route's pattern does not fix (its parameters), each query parameter (name and value, form-decoded),
//! the headers the API reads (its `forward_request_headers` and
//! `controls.screening.headers`), and every string of a JSON body (keys
//! and values, recursively); a form body like a query; another UTF-8 body
//! as one text. Per API mode (`controls.screening.mode`):
//! - `off`: nothing;
//! - `detect`: a finding is written into the access record and the log,
//!   and the call goes on;
//! - `block`: a finding refuses the call, 403 `SUSPICIOUS_INPUT`.
//!
//! In `detect` and `block` alike, a JSON body nested deeper than
//! `max_depth` or carrying more than `max_strings` strings (with the
//! parameters, segments and headers) is refused, 400 `REQUEST_TOO_COMPLEX`:
//! a request the screener cannot read whole is not let through unread.

use std::marker::PhantomData;

use http::HeaderName;
use menshen_model::{ScreenMode, Screening};
use menshen_protocol::ErrorCode;
use serde_json::Value;

use super::route::Routed;
use super::validate::Validated;
use crate::exchange::Exchange;
use crate::screen::{scan, AttackClass};
use crate::GatewayError;

/// Stage name.
pub const NAME: &str = "screen";

/// Proof that the request was screened (or its API screens nothing).
pub struct Screened {
    /// Private: no other module can make this proof.
    _sealed: PhantomData<()>,
}

/// An API's screening, compiled once per snapshot.
#[derive(Debug, Clone)]
pub struct ScreenPlan {
    /// The mode.
    pub mode: ScreenMode,
    /// The headers screened.
    pub headers: Vec<HeaderName>,
    /// Deepest JSON nesting accepted.
    pub max_depth: usize,
    /// Most strings accepted.
    pub max_strings: usize,
}

impl ScreenPlan {
    /// The plan of an API's screening controls and forwarded headers.
    pub fn compile(s: &Screening, forwarded: &[String]) -> ScreenPlan {
        let mut headers: Vec<HeaderName> = Vec::new();
        for n in forwarded.iter().chain(&s.headers) {
            if let Ok(h) = HeaderName::from_bytes(n.to_ascii_lowercase().as_bytes()) {
                if !headers.contains(&h) {
                    headers.push(h);
                }
            }
        }
        ScreenPlan {
            mode: s.mode,
            headers,
            max_depth: s.max_depth as usize,
            max_strings: s.max_strings as usize,
        }
    }
}

/// Why screening stopped.
enum Stop {
    /// A string looked like an attack: its class and where.
    Found(AttackClass, String),
    /// Over the nesting or count limit.
    TooComplex(String),
}

/// Walks the request's strings, counting them.
struct Walk<'a> {
    plan: &'a ScreenPlan,
    seen: usize,
}

impl Walk<'_> {
    fn text(&mut self, s: &str, at: impl FnOnce() -> String) -> Result<(), Stop> {
        self.seen += 1;
        if self.seen > self.plan.max_strings {
            return Err(Stop::TooComplex(format!(
                "more than {} strings",
                self.plan.max_strings
            )));
        }
        match scan(s) {
            Some(c) => Err(Stop::Found(c, at())),
            None => Ok(()),
        }
    }

    fn json(&mut self, v: &Value, depth: usize, at: &mut String) -> Result<(), Stop> {
        match v {
            Value::String(s) => self.text(s, || format!("body {at}")),
            Value::Array(a) => {
                self.deeper(depth)?;
                for (i, x) in a.iter().enumerate() {
                    let len = at.len();
                    at.push('/');
                    at.push_str(&i.to_string());
                    self.json(x, depth + 1, at)?;
                    at.truncate(len);
                }
                Ok(())
            }
            Value::Object(m) => {
                self.deeper(depth)?;
                for (k, x) in m {
                    let len = at.len();
                    at.push('/');
                    at.push_str(&k.replace('~', "~0").replace('/', "~1"));
                    self.text(k, || format!("body member name at {at}"))?;
                    self.json(x, depth + 1, at)?;
                    at.truncate(len);
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    fn deeper(&self, depth: usize) -> Result<(), Stop> {
        if depth >= self.plan.max_depth {
            return Err(Stop::TooComplex(format!(
                "JSON nested deeper than {}",
                self.plan.max_depth
            )));
        }
        Ok(())
    }

    fn pairs(&mut self, what: &str, raw: &[u8]) -> Result<(), Stop> {
        for (k, v) in form_urlencoded::parse(raw) {
            self.text(&k, || format!("{what} name"))?;
            self.text(&v, || format!("{what} `{}`", short(&k)))?;
        }
        Ok(())
    }
}

/// A client-sent name, kept short for the record.
fn short(s: &str) -> String {
    s.chars().take(64).collect()
}

fn screen_all(
    ex: &Exchange,
    plan: &ScreenPlan,
    pattern: &menshen_model::PathPattern,
) -> Result<(), Stop> {
    let mut w = Walk { plan, seen: 0 };
    // Path segments the route's pattern fixes are known text: only the
    // parameters' segments come from the client.
    let segments = pattern.segments();
    for (i, seg) in ex.parts.uri.path().split('/').enumerate().skip(1) {
        if matches!(
            segments.get(i - 1),
            Some(menshen_model::path::Segment::Literal(_))
        ) {
            continue;
        }
        w.text(seg, || format!("path segment {i}"))?;
    }
    if let Some(q) = ex.parts.uri.query() {
        w.pairs("query parameter", q.as_bytes())?;
    }
    for h in &plan.headers {
        for v in ex.parts.headers.get_all(h) {
            let s = String::from_utf8_lossy(v.as_bytes());
            w.text(&s, || format!("header {h}"))?;
        }
    }
    if ex.body.is_empty() {
        return Ok(());
    }
    match serde_json::from_slice::<Value>(&ex.body) {
        Ok(v) => w.json(&v, 0, &mut String::new()),
        Err(e) if e.is_syntax() && e.to_string().contains("recursion limit") => Err(
            Stop::TooComplex("JSON nested beyond the parser's limit".into()),
        ),
        Err(_) => {
            let form = ex
                .parts
                .headers
                .get(http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|c| {
                    c.trim_start()
                        .to_ascii_lowercase()
                        .starts_with("application/x-www-form-urlencoded")
                });
            if form {
                return w.pairs("form field", &ex.body);
            }
            match std::str::from_utf8(&ex.body) {
                Ok(t) => w.text(t, || "body text".into()),
                Err(_) => Ok(()),
            }
        }
    }
}

/// Screen the request per the API's mode. Needs the validation proof:
/// screening reads what the schema already accepted, in plaintext.
pub fn on_request(
    ex: &mut Exchange,
    routed: &Routed,
    _validated: &Validated,
) -> Result<Screened, GatewayError> {
    let ok = Screened {
        _sealed: PhantomData,
    };
    let plan = &routed.api.screen;
    if plan.mode == ScreenMode::Off || routed.api.builtin.is_some() {
        return Ok(ok);
    }
    match screen_all(ex, plan, &routed.api.pattern) {
        Ok(()) => Ok(ok),
        Err(Stop::TooComplex(why)) => Err(GatewayError::new(
            ErrorCode::RequestTooComplex,
            format!("screening: {why}"),
        )),
        Err(Stop::Found(class, at)) if plan.mode == ScreenMode::Block => Err(GatewayError::new(
            ErrorCode::SuspiciousInput,
            format!("screening (block): {} in {at}", class.as_str()),
        )),
        Err(Stop::Found(class, at)) => {
            let note = format!("screening (detect): {} in {at}", class.as_str());
            tracing::warn!(txn_id = %ex.txn_id, api_id = %routed.api.api.api_id, finding = %note, "ATK-1 alert: suspicious input let through (detect mode)");
            ex.screen_note = Some(note);
            Ok(ok)
        }
    }
}
