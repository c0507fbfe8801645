//! Flow control (TRF-1): every rule matching the call (its app or any, its
//! API or any) counts it in the shared hot state, one atomic bounded
//! increment per rule (`HotState::incr`), so a limit is exact across nodes
//! when the hot state is Redis.
//!
//! A rule counts every call it matches together: a rule naming an app and
//! an API counts that app's calls to that API; one naming only an API
//! counts every app's calls to it; one naming neither counts all calls.
//! Its counter's key is built from stable ids only,
//! `{rule_id}:{app or *}:{api or *}:{window_start}`, and expires at the
//! window's end: rebuilding the snapshot (any admin change) never resets a
//! counter, and a rule's ids are never reused by another rule.
//!
//! Over the limit, `reject` refuses the call (429 `RATE_LIMITED`, with
//! `Retry-After` and the IETF `RateLimit-Policy`/`RateLimit` headers) and
//! `alert` lets it through, naming the rule in the access record and the
//! log. A `reject` rule's counter stops at its limit; an `alert` rule's
//! counts every call. When the hot state cannot answer, a `reject` rule
//! fails closed (503 `SERVICE_UNAVAILABLE`) and an `alert` rule lets the
//! call through with a note in its record.
//!
//! When several rules match, each counts the call in turn; a call refused
//! by a later rule has already been counted by the earlier ones.

use std::marker::PhantomData;

use menshen_model::LimitAction;
use menshen_store::HotState;

use super::authenticate::Authenticated;
use super::authorize::Authorized;
use super::route::Routed;
use crate::error::RateLimit;
use crate::exchange::Exchange;
use crate::GatewayError;

/// Stage name.
pub const NAME: &str = "limits";

/// Hot-state namespace of the rate-limit counters.
pub const NS: &str = "rl";

/// Proof that the call is within every `reject` limit; the consent stage
/// needs it, so a call refused here never spends a consent's use.
pub struct Admitted {
    /// Private: no other module can make this proof.
    _sealed: PhantomData<()>,
}

/// The counter key of `rule` in the window starting at `window_start`.
pub fn counter_key(rule: &menshen_model::LimitRule, window_start: i64) -> String {
    format!(
        "{}:{}:{}:{}",
        rule.id,
        rule.app_id.as_deref().unwrap_or("*"),
        rule.api_id.as_deref().unwrap_or("*"),
        window_start
    )
}

/// Count the call against every rule that matches it. Needs the grant
/// check's proof: a call the app may not make is refused without touching
/// its counters.
pub async fn on_request(
    ex: &mut Exchange,
    routed: &Routed,
    auth: &Authenticated,
    _authorized: &Authorized,
    hot: &dyn HotState,
) -> Result<Admitted, GatewayError> {
    let (app_id, api_id) = (&auth.app.app.app_id, &routed.api.api.api_id);
    let now = ex.now_unix();
    let mut notes: Vec<String> = Vec::new();
    let mut refusal = None;
    for rule in ex
        .snapshot
        .limits
        .iter()
        .filter(|r| r.matches(app_id, api_id))
    {
        let (start, end) = rule.window.bounds(now);
        let key = counter_key(rule, start);
        let bound = match rule.action {
            LimitAction::Reject => Some(rule.max),
            LimitAction::Alert => None,
        };
        match hot.incr(NS, &key, bound, end, now).await {
            Ok(Ok(n)) if n <= rule.max => {}
            Ok(Ok(n)) => {
                tracing::warn!(
                    rule = rule.id, %app_id, %api_id, count = n, max = rule.max,
                    window = %rule.window, "flow-control limit exceeded (alert): call let through"
                );
                notes.push(format!(
                    "limit rule {} exceeded (alert): call {n} of at most {} per {}",
                    rule.id, rule.max, rule.window
                ));
            }
            Ok(Err(_)) => {
                refusal = Some(GatewayError::RateLimited(Box::new(RateLimit {
                    reason: format!(
                        "limit rule {} reached (reject): at most {} calls per {}",
                        rule.id, rule.max, rule.window
                    ),
                    rule_id: rule.id,
                    max: rule.max,
                    window_secs: rule.window.secs(),
                    reset_secs: (end - now).max(1),
                })));
                break;
            }
            Err(e) => match rule.action {
                LimitAction::Reject => {
                    tracing::error!(rule = rule.id, error = %e, "flow-control limit not checkable: failing the call closed");
                    refusal = Some(GatewayError::LimitsUnavailable(format!(
                        "limit rule {} could not be checked: {e}",
                        rule.id
                    )));
                    break;
                }
                LimitAction::Alert => {
                    tracing::warn!(rule = rule.id, error = %e, "flow-control alert rule not checkable: call let through");
                    notes.push(format!("limit rule {} not checked: {e}", rule.id));
                }
            },
        }
    }
    if !notes.is_empty() {
        ex.limit_note = Some(notes.join("; "));
    }
    match refusal {
        Some(e) => Err(e),
        None => Ok(Admitted {
            _sealed: PhantomData,
        }),
    }
}
