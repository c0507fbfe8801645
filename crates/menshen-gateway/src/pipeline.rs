//! The request pipeline: THE place where the order of stages is declared
//! ([`run`] for the request phase, [`handle`] for the response phase).
//! Each stage lives in `stages/<name>.rs`; `docs/pipeline.md` draws this
//! order and a test checks it against [`ORDER`].
//!
//! The order is also enforced by types: a stage that needs an earlier
//! stage's result takes its proof (`Routed`, `Authenticated`, `Authorized`,
//! `NonceSpent` with `Admitted`, `Consented`), which only that stage can
//! make, so "app status before authenticate" does not compile.
//!
//! Every request, whatever happens to it, leaves through [`handle`], which
//! runs the response phase and writes its access record exactly once
//! (`record::finish`; a request dropped on the way is recorded from
//! `Exchange`'s `Drop`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use menshen_model::{Api, Level};

use crate::budget::Charge;
use crate::conn::Slot;
use crate::exchange::Exchange;
use crate::record;
use crate::server::State;
use crate::stages::{
    app_status, authenticate, authorize, body, client_cert, client_ip, consent, edge, ip_lists,
    limits, mask, oauth_web, replay, risk, route, screen, sign_response, upstream, validate,
    well_known,
};
use crate::GatewayError;

/// When a stage runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Before the upstream answers; a failure stops the request.
    Request,
    /// On the way back: `validate_response`, `mask` and `encrypt` for the
    /// upstream's answers only, `sign_response` and `record` for every
    /// response (answered or refused).
    Response,
}

/// Every stage, in the order it runs. `docs/pipeline.md` must list the same
/// names in the same order (checked by a test).
pub const ORDER: &[(&str, Phase)] = &[
    (client_ip::NAME, Phase::Request),
    (edge::NAME, Phase::Request),
    (well_known::NAME, Phase::Request),
    (oauth_web::NAME, Phase::Request),
    (route::NAME, Phase::Request),
    (authenticate::NAME_HEAD, Phase::Request),
    (body::NAME, Phase::Request),
    (authenticate::NAME_DIGEST, Phase::Request),
    (client_cert::NAME, Phase::Request),
    (app_status::NAME, Phase::Request),
    (ip_lists::NAME, Phase::Request),
    (authorize::NAME, Phase::Request),
    (replay::NAME, Phase::Request),
    (limits::NAME, Phase::Request),
    (consent::NAME, Phase::Request),
    (limits::NAME_CUSTOMER, Phase::Request),
    (crate::stages::decrypt::NAME, Phase::Request),
    (validate::NAME, Phase::Request),
    (screen::NAME, Phase::Request),
    (risk::NAME, Phase::Request),
    (upstream::NAME, Phase::Request),
    (validate::NAME_RESPONSE, Phase::Response),
    (mask::NAME, Phase::Response),
    (crate::stages::encrypt::NAME, Phase::Response),
    (sign_response::NAME, Phase::Response),
    (record::NAME, Phase::Response),
];

/// What an API's level and controls compile into when the snapshot is built
/// (DESIGN: "a security level compiles into the set of stages"): the
/// optional response-phase work and its parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StagePlan {
    /// `sign_response` runs (always for A2/A3: AUTH-2, INT-2).
    pub sign_response: bool,
    /// The record is durable before the answer (A2/A3 always: DEP-2).
    pub durable_record: bool,
}

impl StagePlan {
    /// Compile an API's plan. Its controls were validated against the
    /// level's minimum when stored (LVL-3); the plan never goes below it.
    pub fn compile(api: &Api) -> Self {
        let above_a1 = api.level >= Level::A2;
        StagePlan {
            sign_response: api.controls.sign_responses || above_a1,
            durable_record: above_a1,
        }
    }
}

/// The connection a request arrived on.
#[derive(Clone)]
pub struct ConnInfo {
    /// TCP peer.
    pub peer: SocketAddr,
    /// SHA-256 fingerprint of the client certificate (mutual TLS), hex.
    pub client_cert: Option<Arc<str>>,
    /// The connection's slot in the registry (idle tracking, shedding).
    pub slot: Option<Arc<Slot>>,
}

/// Handle one request from start to access record.
pub async fn handle<B>(state: Arc<State>, req: Request<B>, conn: ConnInfo) -> Response<Full<Bytes>>
where
    B: hyper::body::Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    let started_at = SystemTime::now();
    let (parts, incoming) = req.into_parts();
    let mut trace = crate::trace::TraceContext::from_headers(&parts.headers);
    // OTLP export (off by default): decided once, on the trace id.
    if let Some(sink) = &state.spans {
        trace.sample(sink.as_ref());
    }
    let mut ex = Exchange {
        txn_id: state.txn.next_at(started_at),
        started: Instant::now(),
        started_at,
        peer: conn.peer,
        client_ip: conn.peer.ip(),
        parts,
        body: Bytes::new(),
        snapshot: state.snapshot.current().clone(),
        api: None,
        claimed_app_id: None,
        app: None,
        signature: None,
        client_cert: conn.client_cert,
        key_pair_auth: false,
        nonce_recorded: false,
        forwarded: false,
        recorded: false,
        consent: None,
        auth_note: None,
        limit_note: None,
        risk: None,
        risk_undo: None,
        slots: Vec::new(),
        screen_note: None,
        trace,
        upstream_us: None,
        upstream_note: None,
        conn: conn.slot,
        state: state.clone(),
    };
    let cfg = &state.config;
    // The request's body stays charged to the budget until its answer is
    // built.
    let mut charge = Charge::default();
    // Its upstream answer, to the answers' budget, likewise.
    let mut answer_charge = Charge::default();
    let deadline = Duration::from_millis(cfg.request_timeout_ms);
    // The call's span: the transaction serial number and trace id as
    // attributes (debug level: free unless a subscriber wants it).
    let span = tracing::debug_span!("menshen.call", txn_id = %ex.txn_id, trace_id = %ex.trace);
    let result = match tokio::time::timeout(
        deadline,
        tracing::Instrument::instrument(
            run(&state, &mut ex, incoming, &mut charge, &mut answer_charge),
            span,
        ),
    )
    .await
    {
        Ok(r) => r,
        Err(_) if ex.forwarded => Err(GatewayError::UpstreamTimeout(format!(
            "request deadline of {} ms passed after forwarding",
            deadline.as_millis()
        ))),
        Err(_) => Err(GatewayError::RequestTimeout(format!(
            "request deadline of {} ms passed before forwarding",
            deadline.as_millis()
        ))),
    };
    // RSK-2: a call the risk rules let through but refused later before the
    // upstream could act (audit log not ready, upstream unreachable, the
    // deadline) spent nothing of the day's sums.
    if let Err(e) = &result {
        if !ex.forwarded || !e.upstream_may_have_acted() {
            if let Some(u) = ex.risk_undo.take() {
                crate::stages::risk::undo_call(state.hot.as_ref(), u).await;
            }
        }
    }
    let (mut resp, mut err) = match result {
        Ok(r) => (r, None),
        Err(e) => (e.to_response(&ex.txn_id), Some(e)),
    };
    // A connection that sent a bare LF is closed after this answer: its
    // framing is not to be trusted any further.
    if ex.conn.as_ref().is_some_and(|c| c.bare_lf_seen()) {
        resp.headers_mut().insert(
            http::header::CONNECTION,
            http::HeaderValue::from_static("close"),
        );
    }
    // Every response carries its transaction serial number.
    if let Ok(v) = http::HeaderValue::from_str(&ex.txn_id) {
        resp.headers_mut()
            .entry(menshen_protocol::headers::TXN_ID)
            .or_insert(v);
    }

    // Response phase 1, sign_response (AUTH-2/INT-2): errors are signed too;
    // a response that must be signed and cannot be is never sent unsigned.
    if let Err(e) = sign_response::on_response(&ex, cfg.sign_all_responses, &mut resp) {
        let e = if ex.forwarded {
            GatewayError::OutcomeUnknown(format!("after forwarding: {}", e.reason()))
        } else {
            e
        };
        resp = e.to_response(&ex.txn_id);
        err = Some(e);
    }
    // Response phase 2, record (AUD-1, DEP-2): A2/A3 answer only once their
    // record is durable.
    let durable = durable(&state, &ex);
    if !record::finish(&mut ex, &resp, err.as_ref(), durable).await && durable {
        let e = if ex.forwarded {
            GatewayError::OutcomeUnknown("the access record could not be made durable".into())
        } else {
            GatewayError::AuditUnavailable("the access record could not be made durable".into())
        };
        tracing::error!(txn_id = %ex.txn_id, code = e.code().as_str(), "access record not durable: failing the call closed");
        resp = e.to_response(&ex.txn_id);
        let _ = sign_response::on_response(&ex, cfg.sign_all_responses, &mut resp);
    }
    // The call's span, when exported: handed over, never waited for.
    crate::trace::export(&ex, resp.status().as_u16(), err.as_ref());
    // The body stays charged until its record (which may retain it) is
    // written.
    drop(charge);
    drop(answer_charge);
    resp.map(Full::new)
}

/// Whether this request's record must be durable before its answer.
fn durable(state: &State, ex: &Exchange) -> bool {
    let cfg = &state.config;
    !cfg.unsafe_async_audit
        && (cfg.durable_audit_a1
            || ex.api.as_ref().is_some_and(|a| a.plan.durable_record)
            || oauth_web::changes_state(ex))
}

/// The request phase, in order. A stage that fails stops the request here:
/// nothing after it runs, and nothing reaches the upstream.
async fn run<B>(
    state: &State,
    ex: &mut Exchange,
    body: B,
    charge: &mut Charge,
    answer_charge: &mut Charge,
) -> Result<Response<Bytes>, GatewayError>
where
    B: hyper::body::Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    let cfg = &state.config;
    // client_ip + global blocklist: first, so a blocked address learns
    // nothing, not even whether an API exists.
    client_ip::on_request(ex, &cfg.trusted_proxies)?;
    // edge: ambiguous heads (two Host headers, ...) are refused, not guessed.
    edge::on_request(ex)?;
    // well_known: the bank's public keys, for anyone not blocked.
    if let Some(r) = well_known::on_request(ex) {
        return Ok(r);
    }
    // oauth_web: the authorization server's pages and metadata (unsigned;
    // the customer's browser), with a small bounded form body.
    let body = match oauth_web::on_request(ex, body, state, charge).await? {
        oauth_web::Web::Answered(r) => return Ok(r),
        oauth_web::Web::Pass(b) => b,
    };
    // route + lifecycle: a terminated API answers its tombstone here. Also
    // refuses early when the API's answers must be signed and no key is
    // there (the upstream must never act on an answer we cannot deliver).
    let routed = route::on_request(ex)?;
    sign_response::on_request(ex, cfg.sign_all_responses)?;
    // authenticate: all the headers prove (syntax, window, App_ID, alg,
    // key, level minimum, and the signature itself, whose base covers only
    // headers) BEFORE a byte of the body is held.
    let verified =
        authenticate::head(ex, &routed, cfg.replay_window_secs, state.replay_not_before)?;
    // body: bounded in size, time and shared memory; only a verified
    // signature gets here.
    let limits = body::BodyLimits {
        max: cfg.max_body_bytes,
        timeout: Duration::from_millis(cfg.body_read_timeout_ms),
        budget: &state.budget,
    };
    body::read(ex, body, &limits, charge).await?;
    // digest: the body matches the Content-Digest the signature covered;
    // makes the proof every later stage needs.
    let auth = authenticate::digest(ex, verified)?;
    // client_cert: a certificate of another app is refused.
    client_cert::on_request(ex, &auth)?;
    // app_status on every call (AUTH-4): after authentication, so only the
    // app itself learns its status.
    app_status::on_request(&auth)?;
    // ip_lists: per-app block/allow lists (AUTH-5).
    ip_lists::on_request(ex, &auth)?;
    // authorize: grant (ONB-3), client kind vs level (LVL-4); a check on
    // the snapshot alone, so a call the app may not make spends neither
    // nonce nor quota.
    let authorized = authorize::on_request(&routed, &auth)?;
    // replay (INT-4) + limits (TRF-1): ONE hot-state step (on Redis one
    // script, one round trip): the nonce, the app's pause mark, every
    // matching flow-control rule's counter. After authentication, so
    // forged requests cannot burn nonces; before consent, so a refused
    // call never spends a consent's use.
    let (_nonce, admitted) = limits::on_request(ex, &routed, &auth, &authorized, state).await?;
    // consent (USR-2, USR-4): a customer's token and consent for APIs that
    // need one; after the grant, so only a granted app's token is looked at.
    let consented = consent::on_request(
        ex,
        &routed,
        &auth,
        &authorized,
        &admitted,
        state.authorizer.as_deref(),
    )
    .await?;
    // customer_limits (TRF-1): the `per = customer` rules, once consent
    // named the customer.
    limits::on_customer(ex, &routed, &auth, &consented, state).await?;
    // decrypt (CONF-1, CONF-2): open the fields the app encrypted, after
    // the signature verified, so validation, screening and the upstream
    // see plaintext; an API whose answers carry encrypted fields needs the
    // app's encryption key, checked here, before anything is forwarded.
    crate::stages::encrypt::on_request(ex, &routed, &auth)?;
    crate::stages::decrypt::on_request(
        ex,
        &routed,
        &auth,
        state.hot.as_ref(),
        cfg.replay_window_secs,
        &state.budget,
        charge,
    )
    .await?;
    // validate (LVL-5): query and body against the API's compiled schemas,
    // on plaintext (after decryption), before anything is forwarded.
    let validated = validate::on_request(ex, &routed, &authorized)?;
    // screen (ATK-1): injection, XSS, traversal, command patterns in every
    // string the bank reads; after validation, so it reads what the schema
    // accepted.
    let _screened = screen::on_request(ex, &routed, &validated)?;
    // risk (RSK-1, RSK-2): the fund-movement rules, last before the
    // upstream, on the body exactly as it will be forwarded (after any
    // decryption); after consent, so a refused call spent nothing else.
    risk::on_request(
        ex,
        &routed,
        &auth,
        &authorized,
        state.hot.as_ref(),
        state.store.as_ref(),
    )
    .await?;
    // record (request phase): a call whose record must be durable is not
    // forwarded while the audit log is failing (DEP-2: fail closed before
    // the upstream can act).
    record::ready(ex, durable(state, ex))?;
    // upstream: the only stage that talks to the bank's systems. The
    // authorization server's signed endpoints are answered here instead, by
    // the authorizer, after every check an API call gets.
    if let Some(name) = routed.api.builtin {
        return upstream::builtin(ex, name, &auth, state.authorizer.as_deref()).await;
    }
    // The answer is charged to the answers' memory budget as it arrives
    // (issue 9 item 1), held until the call's record is written.
    let mut hold = upstream::Hold {
        budget: &state.answer_budget,
        charge: answer_charge,
    };
    let mut resp =
        upstream::forward(ex, &routed, &auth, &consented, &state.upstream, &mut hold).await?;
    let response_stages = |resp: &mut Response<Bytes>| -> Result<(), GatewayError> {
        // validate_response (LVL-5): the upstream's answer against the API's
        // response schema, if it has one, before anything is masked,
        // encrypted or signed; a mismatch is withheld
        // (UPSTREAM_RESPONSE_INVALID).
        validate::on_response(&routed, resp)?;
        // mask (CONF-3): the upstream's answer, unless the app's grant is
        // approved for clearing; before it is encrypted and signed.
        mask::on_response(&routed, &auth, resp)?;
        // encrypt (CONF-1): the listed response fields for the app's key,
        // before the bank signs the answer.
        crate::stages::encrypt::on_response(&routed, &auth, resp)
    };
    // A large answer is parsed (up to three times) off the async worker's
    // other work: the runtime moves this worker's other tasks elsewhere
    // meanwhile, so one call's megabytes of JSON do not stall other
    // connections (review; on a multi-threaded runtime, as a node runs).
    let multi_thread = tokio::runtime::Handle::try_current()
        .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
    if resp.body().len() > LARGE_ANSWER && multi_thread {
        tokio::task::block_in_place(|| response_stages(&mut resp))?;
    } else {
        response_stages(&mut resp)?;
    }
    Ok(resp)
}

/// Answers over this many bytes go through the response stages with
/// `block_in_place` (see `run`).
const LARGE_ANSWER: usize = 256 << 10;

#[cfg(test)]
mod tests {
    use super::*;

    /// `docs/pipeline.md` lists the stages of [`ORDER`], numbered, in order.
    #[test]
    fn pipeline_doc_matches_the_code() {
        let doc = include_str!("../../../docs/pipeline.md");
        let listed: Vec<&str> = doc
            .lines()
            .filter_map(|l| {
                let (num, rest) = l.split_once(". `")?;
                num.trim().parse::<u32>().ok()?;
                rest.split('`').next()
            })
            .collect();
        let code: Vec<&str> = ORDER.iter().map(|(n, _)| *n).collect();
        assert_eq!(
            listed, code,
            "docs/pipeline.md is out of step with pipeline::ORDER"
        );
        let response: Vec<&str> = ORDER
            .iter()
            .filter(|(_, p)| *p == Phase::Response)
            .map(|(n, _)| *n)
            .collect();
        assert_eq!(response[..2], [validate::NAME_RESPONSE, mask::NAME]);
        assert_eq!(
            response[response.len() - 2..],
            [sign_response::NAME, record::NAME]
        );
    }
}
