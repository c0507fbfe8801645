//! Flow control (TRF-1; issue 12 items 4 and 7), with the nonce (INT-4):
//! one atomic hot-state step per call ([`HotState::admit`]; on Redis one
//! script, one round trip, timed by Redis `TIME`) records the nonce, looks
//! at the app's pause mark, checks every matching rule's counter and
//! counts the call in all of them or in none.
//!
//! # Rules
//! A rule matches a call by its app (or any) and its API (or any), and
//! counts it in one counter (`per = all`) or one per client IP (an IPv6
//! client by its /64), app, API or customer. Windows: second, minute (UTC-aligned), day and month (the
//! Asia/Shanghai calendar), or `concurrent` (calls in flight: a slot taken
//! here, given back when the exchange ends, however it ends; slots carry a
//! TTL, so a dead node's slots free themselves). Counter keys are built
//! from stable ids only: `{rule_id}`, `{rule_id}:ip:{ip}` (IPv6: the /64's address, `2001:db8:1:2::`),
//! `{rule_id}:app:{app_id}`, `{rule_id}:api:{api_id}`,
//! `{rule_id}:cu:{user_id}`; the window is not in the key (the hot state
//! keeps the window's start beside the count), so rebuilding the snapshot
//! (any admin change) never resets a counter, and a rule's id is never
//! reused.
//!
//! # Actions
//! `reject`: 429 `RATE_LIMITED` with `Retry-After` and the IETF
//! `RateLimit-Policy`/`RateLimit` headers. `alert`: through, the rule named
//! in the record and the log, counted. `pause`: refused like `reject`, and
//! the app is paused for the rule's `pause_secs`: every call of it is
//! refused with 429 `APP_PAUSED` (and `Retry-After`) until the pause ends
//! by itself. A call refused by any rule is counted by none.
//!
//! # Customer rules
//! The customer is known only once the consent stage has checked the
//! token, so `per = customer` rules are checked in a second step,
//! `customer_limits`, after `consent` (a second round trip, only for calls
//! that carry a customer and match such a rule). A call refused there has
//! spent its consent's use.
//!
//! # Shared hot state down (issue 12 item 7)
//! A2/A3 calls fail closed (503 `SHARED_STATE_UNAVAILABLE`); A1 calls
//! follow `[gateway.flow_control] a1_when_hot_state_down`: `local` (this
//! node enforces `max / nodes` of each limit, and the nonce, in process),
//! `open` (no limits; the nonce in process) or `closed`. Each such call is
//! counted (`FlowCounters`), noted in its record, and logged (a warning at
//! most every 10 s). Every call tries the shared hot state first, so
//! everything is shared again as soon as it answers: no restart.

use std::marker::PhantomData;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use menshen_model::{Level, LimitAction, LimitPer, LimitRule, LimitWindow};
use menshen_store::{Admission, HotState, LimitCheck, Verdict};

use super::authenticate::Authenticated;
use super::authorize::Authorized;
use super::consent::Consented;
use super::replay::{self, NonceSpent};
use super::route::Routed;
use crate::error::RateLimit;
use crate::exchange::Exchange;
use crate::flow::{DownPolicy, HeldSlots};
use crate::server::State;
use crate::GatewayError;

/// Stage name.
pub const NAME: &str = "limits";

/// Stage name of the customer rules' step (after `consent`).
pub const NAME_CUSTOMER: &str = "customer_limits";

/// Proof that the call is within every `reject`/`pause` limit and its app
/// is not paused; the consent stage needs it, so a call refused here never
/// spends a consent's use.
pub struct Admitted {
    /// Private: no other module can make this proof.
    _sealed: PhantomData<()>,
}

/// The counter key of `rule` for this call (see the module doc), or `None`
/// for a customer rule on a call without a customer.
pub fn counter_key(
    rule: &LimitRule,
    app_id: &str,
    api_id: &str,
    client_ip: &std::net::IpAddr,
    customer: Option<&str>,
) -> Option<String> {
    let id = rule.id;
    Some(match rule.per {
        LimitPer::All => id.to_string(),
        // An IPv6 client by its /64, as the connection caps count it: one
        // subscriber holds the whole prefix and could otherwise rotate its
        // source address past any per-IP limit.
        LimitPer::Ip => format!("{id}:ip:{}", crate::conn::client_key(*client_ip)),
        LimitPer::App => format!("{id}:app:{app_id}"),
        LimitPer::Api => format!("{id}:api:{api_id}"),
        LimitPer::Customer => format!("{id}:cu:{}", customer?),
    })
}

/// The counters of `rules` for this call.
fn checks(
    rules: &[&LimitRule],
    ex: &Exchange,
    app_id: &str,
    api_id: &str,
    customer: Option<&str>,
) -> Vec<LimitCheck> {
    rules
        .iter()
        .filter_map(|r| {
            Some(LimitCheck {
                key: counter_key(r, app_id, api_id, &ex.client_ip, customer)?,
                window: r.window,
                max: r.max,
                bounded: r.action != LimitAction::Alert,
                pause_secs: (r.action == LimitAction::Pause)
                    .then_some(r.pause_secs)
                    .flatten(),
            })
        })
        .collect()
}

/// Record the nonce and count the call against every matching rule but
/// the customer ones, in one hot-state step. Needs the grant check's
/// proof: a call the app may not make spends neither nonce nor quota.
pub async fn on_request(
    ex: &mut Exchange,
    routed: &Routed,
    auth: &Authenticated,
    _authorized: &Authorized,
    state: &State,
) -> Result<(NonceSpent, Admitted), GatewayError> {
    let (app_id, api_id) = (&auth.app.app.app_id, &routed.api.api.api_id);
    let snapshot = ex.snapshot.clone();
    let rules: Vec<&LimitRule> = snapshot
        .limits
        .iter()
        .filter(|r| r.per != LimitPer::Customer && r.matches(app_id, api_id))
        .collect();
    let check_pause = snapshot
        .limits
        .iter()
        .any(|r| r.action == LimitAction::Pause && r.app_id.as_deref().is_none_or(|a| a == app_id));
    let admission = Admission {
        nonce: Some(replay::nonce_check(
            ex,
            auth,
            state.config.replay_window_secs,
        )),
        app_id: Some(app_id.clone()),
        check_pause,
        checks: checks(&rules, ex, app_id, api_id, None),
        slot: ex.txn_id.clone(),
        slot_ttl_secs: state
            .config
            .flow_control
            .slot_ttl(state.config.request_timeout_ms),
    };
    let (verdict, rules, checks, hot) =
        admit(ex, state, routed.api.api.level, admission, rules).await?;
    let spent = replay::spent(ex, &verdict)?;
    judge(ex, state, &rules, &checks, &verdict, hot, app_id)?;
    Ok((
        spent,
        Admitted {
            _sealed: PhantomData,
        },
    ))
}

/// The customer rules (`per = customer`), once the consent stage named the
/// customer; nothing to do for a call without one.
pub async fn on_customer(
    ex: &mut Exchange,
    routed: &Routed,
    auth: &Authenticated,
    consented: &Consented,
    state: &State,
) -> Result<(), GatewayError> {
    let Some(grant) = &consented.grant else {
        return Ok(());
    };
    let (app_id, api_id) = (&auth.app.app.app_id, &routed.api.api.api_id);
    let snapshot = ex.snapshot.clone();
    let rules: Vec<&LimitRule> = snapshot
        .limits
        .iter()
        .filter(|r| r.per == LimitPer::Customer && r.matches(app_id, api_id))
        .collect();
    if rules.is_empty() {
        return Ok(());
    }
    let admission = Admission {
        app_id: Some(app_id.clone()),
        checks: checks(&rules, ex, app_id, api_id, Some(&grant.user_id)),
        slot: ex.txn_id.clone(),
        slot_ttl_secs: state
            .config
            .flow_control
            .slot_ttl(state.config.request_timeout_ms),
        ..Admission::default()
    };
    let (verdict, rules, checks, hot) =
        admit(ex, state, routed.api.api.level, admission, rules).await?;
    judge(ex, state, &rules, &checks, &verdict, hot, app_id)
}

/// What [`admit`] decided: the verdict, the rules and checks it was about
/// (none under `open`), and the hot state that holds the call's slots.
type Admitting<'r> = (
    Verdict,
    Vec<&'r LimitRule>,
    Vec<LimitCheck>,
    Arc<dyn HotState>,
);

/// Ask the shared hot state; if it cannot answer, apply the down policy.
async fn admit<'r>(
    ex: &mut Exchange,
    state: &State,
    level: Level,
    mut a: Admission,
    mut rules: Vec<&'r LimitRule>,
) -> Result<Admitting<'r>, GatewayError> {
    let e = match state.hot.admit(&a).await {
        Ok(v) => return Ok((v, rules, a.checks, state.hot.clone())),
        Err(e) => e,
    };
    let flow = &state.config.flow_control;
    let policy = flow.a1_when_hot_state_down;
    let now = ex.now_unix();
    if level != Level::A1 || policy == DownPolicy::Closed {
        state
            .flow
            .counters
            .failed_closed
            .fetch_add(1, Ordering::Relaxed);
        if state.flow.warn_now(now) {
            tracing::error!(error = %e, level = level.as_str(), "shared hot state unavailable: calls fail closed (SHARED_STATE_UNAVAILABLE)");
        }
        return Err(GatewayError::LimitsUnavailable(format!(
            "shared hot state unavailable ({} call, A1 policy `{}`): {e}",
            level.as_str(),
            policy.as_str()
        )));
    }
    state.flow.counters.degraded.fetch_add(1, Ordering::Relaxed);
    if state.flow.warn_now(now) {
        tracing::warn!(error = %e, policy = policy.as_str(), "shared hot state unavailable: A1 calls served by this node alone (nonces per node; limits at this node's share, or open)");
    }
    match policy {
        DownPolicy::Open => {
            a.checks.clear();
            a.check_pause = false;
            rules.clear();
        }
        _ => {
            for c in &mut a.checks {
                c.max = flow.share(c.max);
            }
        }
    }
    let note = format!(
        "shared hot state unavailable: A1 call served under the `{}` policy (nonce checked on this node only{})",
        policy.as_str(),
        if policy == DownPolicy::Open {
            ", limits not enforced"
        } else {
            ", this node's share of each limit"
        }
    );
    add_note(ex, note);
    let local: Arc<dyn HotState> = state.flow.local.clone();
    let v = local.admit(&a).await.map_err(|e| {
        GatewayError::LimitsUnavailable(format!("in-process fallback also failed: {e}"))
    })?;
    Ok((v, rules, a.checks, local))
}

fn add_note(ex: &mut Exchange, note: String) {
    ex.limit_note = Some(match ex.limit_note.take() {
        Some(n) => format!("{n}; {note}"),
        None => note,
    });
}

/// Turn a verdict into the call's fate: refusal, notes, held slots.
fn judge(
    ex: &mut Exchange,
    state: &State,
    rules: &[&LimitRule],
    checks: &[LimitCheck],
    v: &Verdict,
    hot: Arc<dyn HotState>,
    app_id: &str,
) -> Result<(), GatewayError> {
    let counters = &state.flow.counters;
    match (v.refused, v.paused_until) {
        (None, Some(until)) => {
            counters.rejects.fetch_add(1, Ordering::Relaxed);
            return Err(GatewayError::RateLimited(Box::new(RateLimit {
                reason: format!("app {app_id} is paused by flow control until {until} (unix)"),
                rule_id: 0,
                max: 0,
                window_secs: 0,
                reset_secs: (until - v.now).max(1),
                paused: true,
            })));
        }
        (Some(i), paused) => {
            counters.rejects.fetch_add(1, Ordering::Relaxed);
            let rule = rules.get(i).ok_or_else(|| {
                GatewayError::Internal("hot state named a check that was not asked".into())
            })?;
            let mut reason = format!(
                "limit rule {} reached ({}): at most {} calls {}",
                rule.id,
                rule.action,
                rule.max,
                match rule.window {
                    LimitWindow::Concurrent => "in flight".to_string(),
                    w => format!("per {w}"),
                }
            );
            if let Some(until) = paused {
                counters.pauses.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(rule = rule.id, %app_id, until, "flow control: app paused (pause rule)");
                reason.push_str(&format!("; app paused until {until} (unix)"));
            }
            let reset = match rule.window {
                LimitWindow::Concurrent => 1,
                _ => v.resets.get(i).map_or(1, |end| (end - v.now).max(1)),
            };
            return Err(GatewayError::RateLimited(Box::new(RateLimit {
                reason,
                rule_id: rule.id,
                max: rule.max,
                window_secs: rule.window.secs(),
                reset_secs: reset,
                paused: false,
            })));
        }
        (None, None) => {}
    }
    let mut slot_keys = Vec::new();
    for (i, rule) in rules.iter().enumerate() {
        let n = v.counts.get(i).copied().unwrap_or(0);
        if let Some(c) = checks
            .get(i)
            .filter(|c| c.window == LimitWindow::Concurrent)
        {
            slot_keys.push(c.key.clone());
        }
        if n > rule.max {
            counters.alerts.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                rule = rule.id, %app_id, count = n, max = rule.max,
                window = %rule.window, "flow-control limit exceeded (alert): call let through"
            );
            add_note(
                ex,
                format!(
                    "limit rule {} exceeded (alert): call {n} of at most {} {}",
                    rule.id,
                    rule.max,
                    match rule.window {
                        LimitWindow::Concurrent => "in flight".to_string(),
                        w => format!("per {w}"),
                    }
                ),
            );
        }
    }
    if !slot_keys.is_empty() {
        ex.slots.push(HeldSlots {
            hot,
            keys: slot_keys,
            slot: ex.txn_id.clone(),
        });
    }
    Ok(())
}
