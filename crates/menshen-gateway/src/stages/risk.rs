//! Risk rules for fund movements (RSK-1, RSK-2), the last check before the
//! upstream: it reads the request body as the upstream will receive it
//! (after any decryption), so it runs after every stage that changes it.
//!
//! Only funds APIs are looked at: those whose controls name where the
//! amount is (`controls.risk.amount`, a JSON Pointer). For such a call the
//! amount (and, where configured, the counterparty and account type) is
//! read and every risk rule of the app (for this API or for all its funds
//! APIs) is checked:
//! - the amount against `max_per_txn`;
//! - the counterparty and account type against the allowed lists (a list
//!   the API gives no field for counts as broken: fail closed);
//! - the amount against `unusual_multiple` x the app's rolling mean for
//!   this API, once the mean rests on `unusual_min_count` calls;
//! - the day's sum (Asia/Shanghai calendar day) against `max_per_day`:
//!   one atomic [`HotState::add_amount`] per rule, keyed by stable ids
//!   (`{rule_id}:{app_id}:{day_start}`), expiring at the day's end; a
//!   `reject` or `hold` rule's sum stops at its maximum.
//!
//! The strongest breached rule decides: `reject` (403 `RISK_REJECTED`) >
//! `hold` (403 `RISK_REVIEW_REQUIRED`, a review item in the store) >
//! `alert` (the call goes through). A held call that an officer approved
//! (same app, API, amount and counterparty, within the review window) goes
//! through once. A refused call takes back what it added to the day's sums.
//! Every decision is written into the access record (`risk`).
//!
//! The rolling mean is an exponentially weighted mean over about the last
//! [`MEAN_SPAN`] admitted calls (a plain mean before that), kept in the hot
//! state for [`MEAN_TTL_SECS`] after the app's last funds call. Its
//! read-and-write is not atomic: two concurrent calls may count as one in
//! the mean (a statistic, not a limit).
//!
//! When the hot state or the store cannot answer, a `reject` or `hold`
//! rule fails closed (503), an `alert` rule lets the call through with a
//! note.

use menshen_model::risk::{mask_counterparty, Amount, HeldCall, HoldOutcome, RiskAction, RiskRule};
use menshen_model::LimitWindow;
use menshen_protocol::ErrorCode;
use menshen_store::{HotState, Store};
use serde_json::{json, Value};

use super::authenticate::Authenticated;
use super::authorize::Authorized;
use super::route::Routed;
use crate::exchange::Exchange;
use crate::GatewayError;

/// Stage name.
pub const NAME: &str = "risk";

/// Hot-state namespace of the daily sums.
pub const NS_DAY: &str = "rk";
/// Hot-state namespace of the rolling means.
pub const NS_MEAN: &str = "rkm";
/// The rolling mean's span (calls).
pub const MEAN_SPAN: u64 = 100;
/// How long a rolling mean is kept after the app's last funds call.
pub const MEAN_TTL_SECS: i64 = 90 * 86_400;

/// One rule the call broke.
struct Breach {
    rule: i64,
    action: RiskAction,
    what: String,
}

/// The call's figures, read from its body.
struct Figures {
    amount: Amount,
    counterparty: Option<String>,
    account_type: Option<String>,
}

/// The rolling mean of an app's amounts for one API: (calls, mean in fen).
fn parse_mean(v: &[u8]) -> Option<(u64, f64)> {
    let s = std::str::from_utf8(v).ok()?;
    let (n, m) = s.split_once(':')?;
    Some((n.parse().ok()?, m.parse().ok()?))
}

/// SM3 over app, API, amount and counterparty, length-prefixed: the exact
/// call an officer's approval lets through.
pub fn fingerprint(
    app_id: &str,
    api_id: &str,
    amount: Amount,
    counterparty: Option<&str>,
) -> String {
    let amount = amount.0.to_be_bytes();
    let cp = counterparty.unwrap_or("");
    let parts: [&[u8]; 4] = [app_id.as_bytes(), api_id.as_bytes(), &amount, cp.as_bytes()];
    let mut buf = Vec::new();
    for p in parts {
        buf.extend_from_slice(&(p.len() as u32).to_be_bytes());
        buf.extend_from_slice(p);
    }
    menshen_crypto::sm3(&buf)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn text_at(body: &Value, pointer: Option<&str>) -> Option<String> {
    match body.pointer(pointer?)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Check the call of a funds API against the app's risk rules.
pub async fn on_request(
    ex: &mut Exchange,
    routed: &Routed,
    auth: &Authenticated,
    _authorized: &Authorized,
    hot: &dyn HotState,
    store: &dyn Store,
) -> Result<(), GatewayError> {
    let fields = &routed.api.api.controls.risk;
    let Some(amount_ptr) = fields.amount.as_deref() else {
        return Ok(());
    };
    let (app_id, api_id) = (auth.app.app.app_id.clone(), routed.api.api.api_id.clone());
    let snapshot = ex.snapshot.clone();
    let rules: Vec<&RiskRule> = snapshot
        .risk_rules
        .iter()
        .filter(|r| r.matches(&app_id, &api_id))
        .collect();
    // Read as the upstream will, or not at all (`strict_json`): a member
    // named twice, or a sibling along a read pointer that a lenient binder
    // would take for it (`AMOUNT` beside `amount`), refuses the call.
    let (body, ambiguous) = match crate::strict_json::parse(&ex.body) {
        Ok(v) => {
            let at = [
                Some(amount_ptr),
                fields.counterparty.as_deref(),
                fields.account_type.as_deref(),
            ]
            .into_iter()
            .flatten()
            .find_map(|p| crate::strict_json::ambiguous_at(&v, p));
            (Some(v), at.map(|at| format!("the body also names {at}")))
        }
        Err(e) if e.classify() == serde_json::error::Category::Data => (None, Some(e.to_string())),
        Err(_) => (None, None),
    };
    if let Some(why) = ambiguous.filter(|_| !rules.is_empty()) {
        ex.risk = Some(json!({"decision": "reject", "reason": format!("ambiguous body: {why}")}));
        return Err(GatewayError::new(
            ErrorCode::RiskRejected,
            format!("risk: funds API call whose body is ambiguous ({why}): each member once, and none a lenient reader could take for {amount_ptr} or the counterparty"),
        ));
    }
    let amount = body
        .as_ref()
        .and_then(|b| b.pointer(amount_ptr))
        .and_then(Amount::from_json);
    let Some(amount) = amount else {
        if rules.is_empty() {
            return Ok(());
        }
        ex.risk = Some(
            json!({"decision": "reject", "reason": format!("no readable amount at {amount_ptr}")}),
        );
        return Err(GatewayError::new(
            ErrorCode::RiskRejected,
            format!("risk: funds API call without a readable amount at {amount_ptr} (a decimal of yuan, at most two places)"),
        ));
    };
    let body = body.unwrap_or(Value::Null);
    let fig = Figures {
        amount,
        counterparty: text_at(&body, fields.counterparty.as_deref()),
        account_type: text_at(&body, fields.account_type.as_deref()),
    };
    let now = ex.now_unix();
    let mean_key = format!("{app_id}:{api_id}");
    let mean = hot.get(NS_MEAN, &mean_key, now).await;
    let (mut breaches, mut notes) = (Vec::<Breach>::new(), Vec::<String>::new());
    let mut fail_closed: Option<String> = None;
    for rule in &rules {
        if let Some(max) = rule.max_per_txn {
            if fig.amount > max {
                breaches.push(Breach {
                    rule: rule.id,
                    action: rule.action,
                    what: format!(
                        "amount {} over the per-transaction maximum {max}",
                        fig.amount
                    ),
                });
            }
        }
        for (list, value, field, name) in [
            (
                &rule.counterparties,
                &fig.counterparty,
                &fields.counterparty,
                "counterparty",
            ),
            (
                &rule.account_types,
                &fig.account_type,
                &fields.account_type,
                "account type",
            ),
        ] {
            let Some(list) = list else { continue };
            let what = match (field, value) {
                (None, _) => Some(format!(
                    "{name} restricted but the API names no {name} field"
                )),
                (Some(p), None) => Some(format!("no {name} at {p}")),
                (Some(_), Some(v)) if !list.iter().any(|x| x == v) => Some(format!(
                    "{name} {} not allowed",
                    if name == "counterparty" {
                        mask_counterparty(v)
                    } else {
                        v.clone()
                    }
                )),
                _ => None,
            };
            if let Some(what) = what {
                breaches.push(Breach {
                    rule: rule.id,
                    action: rule.action,
                    what,
                });
            }
        }
        if let Some(k) = rule.unusual_multiple {
            match &mean {
                Ok(v) => {
                    if let Some((n, m)) = v.as_deref().and_then(parse_mean) {
                        if n >= u64::from(rule.unusual_min_count)
                            && (fig.amount.0 as f64) > f64::from(k) * m
                        {
                            breaches.push(Breach {
                                rule: rule.id,
                                action: rule.action,
                                what: format!(
                                    "unusual amount {}: over {k} x the app's mean {} of {n} calls",
                                    fig.amount,
                                    Amount(m.round() as u64)
                                ),
                            });
                        }
                    }
                }
                Err(e) if rule.action == RiskAction::Alert => notes.push(format!(
                    "risk rule {} unusual amount not checked: {e}",
                    rule.id
                )),
                Err(e) => {
                    fail_closed = Some(format!(
                        "risk rule {} unusual amount not checkable: {e}",
                        rule.id
                    ))
                }
            }
        }
    }
    // The day's sums: only when no rule refuses the call already.
    let strongest = |b: &[Breach]| b.iter().map(|b| b.action).max_by_key(|a| a.rank());
    let mut added: Vec<(String, RiskRule)> = Vec::new();
    let mut held_by_day: Vec<RiskRule> = Vec::new();
    let (day_start, day_end) = LimitWindow::Day.bounds(now);
    if fail_closed.is_none() && strongest(&breaches) != Some(RiskAction::Reject) {
        for rule in rules.iter().filter(|r| r.max_per_day.is_some()) {
            let max = rule.max_per_day.map_or(0, |a| a.0);
            let key = format!("{}:{app_id}:{day_start}", rule.id);
            let bound = (rule.action != RiskAction::Alert).then_some(max);
            match hot
                .add_amount(NS_DAY, &key, fig.amount.0 as i64, bound, day_end, now)
                .await
            {
                Ok(Ok(sum)) => {
                    added.push((key, (*rule).clone()));
                    if sum > max {
                        breaches.push(Breach {
                            rule: rule.id,
                            action: rule.action,
                            what: format!(
                                "day's sum {} over the daily maximum {}",
                                Amount(sum),
                                Amount(max)
                            ),
                        });
                    }
                }
                Ok(Err(cur)) => {
                    if rule.action == RiskAction::Hold {
                        held_by_day.push((*rule).clone());
                    }
                    breaches.push(Breach {
                        rule: rule.id,
                        action: rule.action,
                        what: format!(
                            "day's sum {} + {} over the daily maximum {}",
                            Amount(cur),
                            fig.amount,
                            Amount(max)
                        ),
                    });
                }
                Err(e) if rule.action == RiskAction::Alert => {
                    notes.push(format!("risk rule {} daily sum not checked: {e}", rule.id))
                }
                Err(e) => {
                    fail_closed = Some(format!(
                        "risk rule {} daily sum not checkable: {e}",
                        rule.id
                    ));
                    break;
                }
            }
        }
    }
    let record = |decision: &str, breaches: &[Breach], notes: &[String], review: Option<i64>| {
        let mut v = json!({
            "decision": decision,
            "amount": fig.amount,
            "rules": rules.iter().map(|r| r.id).collect::<Vec<_>>(),
            "breaches": breaches.iter().map(|b| json!({"rule": b.rule, "action": b.action, "what": b.what})).collect::<Vec<_>>(),
        });
        if let Some(c) = &fig.counterparty {
            v["counterparty"] = json!(mask_counterparty(c));
        }
        if !notes.is_empty() {
            v["notes"] = json!(notes);
        }
        if let Some(id) = review {
            v["review_id"] = json!(id);
        }
        v
    };
    let summary = |b: &[Breach], action: RiskAction| {
        b.iter()
            .filter(|b| b.action == action)
            .map(|b| format!("rule {}: {}", b.rule, b.what))
            .collect::<Vec<_>>()
            .join("; ")
    };
    if let Some(reason) = fail_closed {
        undo(hot, &added, fig.amount, day_end, now).await;
        tracing::error!(%app_id, %api_id, %reason, "risk rule not checkable: failing the call closed");
        ex.risk = Some(record("unavailable", &breaches, &notes, None));
        return Err(GatewayError::LimitsUnavailable(reason));
    }
    let decision = strongest(&breaches);
    match decision {
        Some(RiskAction::Reject) => {
            undo(hot, &added, fig.amount, day_end, now).await;
            let why = summary(&breaches, RiskAction::Reject);
            tracing::warn!(%app_id, %api_id, amount = %fig.amount, %why, "risk rule: call rejected");
            ex.risk = Some(record("reject", &breaches, &notes, None));
            Err(GatewayError::new(
                ErrorCode::RiskRejected,
                format!("risk: {why}"),
            ))
        }
        Some(RiskAction::Hold) => {
            let why = summary(&breaches, RiskAction::Hold);
            let window = rules
                .iter()
                .filter(|r| {
                    breaches
                        .iter()
                        .any(|b| b.rule == r.id && b.action == RiskAction::Hold)
                })
                .map(|r| r.review_window_secs)
                .max()
                .unwrap_or(menshen_model::risk::REVIEW_WINDOW_DEFAULT_SECS);
            let call = HeldCall {
                app_id: app_id.clone(),
                api_id: api_id.clone(),
                amount: fig.amount,
                counterparty_masked: fig.counterparty.as_deref().map(mask_counterparty),
                fingerprint: fingerprint(&app_id, &api_id, fig.amount, fig.counterparty.as_deref()),
                txn_id: ex.txn_id.clone(),
                reason: why.clone(),
                window_secs: window,
            };
            match store.risk_hold(&call, now).await {
                Ok(HoldOutcome::Approved(review)) => {
                    // Approved: the sums the hold rules stopped at now take it.
                    for rule in &held_by_day {
                        let key = format!("{}:{app_id}:{day_start}", rule.id);
                        match hot
                            .add_amount(NS_DAY, &key, fig.amount.0 as i64, None, day_end, now)
                            .await
                        {
                            Ok(_) => added.push((key, rule.clone())),
                            Err(e) => notes
                                .push(format!("risk rule {} daily sum not counted: {e}", rule.id)),
                        }
                    }
                    tracing::info!(%app_id, %api_id, review = review.id, "risk hold: approved retry let through");
                    ex.risk = Some(record("approved", &breaches, &notes, Some(review.id)));
                    ex.risk_undo = Undo::of(added, fig.amount, day_end, now);
                    update_mean(hot, &mean_key, mean.ok().flatten(), fig.amount, now).await;
                    Ok(())
                }
                Ok(HoldOutcome::Pending(review)) => {
                    undo(hot, &added, fig.amount, day_end, now).await;
                    tracing::warn!(%app_id, %api_id, amount = %fig.amount, review = review.id, %why, "risk rule: call held for review");
                    ex.risk = Some(record("hold", &breaches, &notes, Some(review.id)));
                    Err(GatewayError::new(
                        ErrorCode::RiskReviewRequired,
                        format!("risk: held for review {}: {why}", review.id),
                    ))
                }
                Err(e) => {
                    undo(hot, &added, fig.amount, day_end, now).await;
                    tracing::error!(%app_id, %api_id, error = %e, "risk hold: review item not stored: failing the call closed");
                    ex.risk = Some(record("unavailable", &breaches, &notes, None));
                    Err(GatewayError::LimitsUnavailable(format!(
                        "risk: held ({why}) but the review item could not be stored: {e}"
                    )))
                }
            }
        }
        Some(RiskAction::Alert) | None => {
            let d = if decision.is_some() { "alert" } else { "pass" };
            if decision.is_some() {
                tracing::warn!(%app_id, %api_id, amount = %fig.amount, why = %summary(&breaches, RiskAction::Alert), "risk rule breached (alert): call let through");
            }
            if !rules.is_empty() {
                ex.risk = Some(record(d, &breaches, &notes, None));
            }
            ex.risk_undo = Undo::of(added, fig.amount, day_end, now);
            update_mean(hot, &mean_key, mean.ok().flatten(), fig.amount, now).await;
            Ok(())
        }
    }
}

/// The day's sums a call let through was added to, kept on the exchange so
/// that a refusal after this stage, before the upstream could act, takes
/// the amount back out (RSK-2).
pub struct Undo {
    added: Vec<(String, RiskRule)>,
    amount: Amount,
    day_end: i64,
    now: i64,
}

impl Undo {
    fn of(added: Vec<(String, RiskRule)>, amount: Amount, day_end: i64, now: i64) -> Option<Undo> {
        (!added.is_empty()).then_some(Undo {
            added,
            amount,
            day_end,
            now,
        })
    }
}

/// Take the amount of a call refused after this stage (before the upstream
/// could act) back out of the day's sums it was added to.
pub async fn undo_call(hot: &dyn HotState, u: Undo) {
    undo(hot, &u.added, u.amount, u.day_end, u.now).await;
}

/// Take a refused call's amount back out of the sums it was added to.
async fn undo(
    hot: &dyn HotState,
    added: &[(String, RiskRule)],
    amount: Amount,
    day_end: i64,
    now: i64,
) {
    for (key, rule) in added {
        if let Err(e) = hot
            .add_amount(NS_DAY, key, -(amount.0 as i64), None, day_end, now)
            .await
        {
            tracing::warn!(rule = rule.id, error = %e, "risk: a refused call's amount could not be taken back out of the day's sum");
        }
    }
}

/// Fold an admitted call's amount into the app's rolling mean for the API.
async fn update_mean(
    hot: &dyn HotState,
    key: &str,
    cur: Option<Vec<u8>>,
    amount: Amount,
    now: i64,
) {
    let (n, m) = cur.as_deref().and_then(parse_mean).unwrap_or((0, 0.0));
    let n1 = n.saturating_add(1);
    let m1 = m + (amount.0 as f64 - m) / (n1.min(MEAN_SPAN) as f64);
    let v = format!("{n1}:{m1}").into_bytes();
    if let Err(e) = hot.put(NS_MEAN, key, v, now + MEAN_TTL_SECS, now).await {
        tracing::warn!(error = %e, "risk: the rolling mean could not be updated");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rsk_1_fingerprint_names_the_exact_call() {
        let a = fingerprint("app", "api", Amount(100), Some("62220001"));
        assert_eq!(a.len(), 64);
        assert_ne!(a, fingerprint("app", "api", Amount(101), Some("62220001")));
        assert_ne!(a, fingerprint("app", "api", Amount(100), Some("62220002")));
        assert_ne!(a, fingerprint("ap", "papi", Amount(100), Some("62220001")));
        assert_eq!(a, fingerprint("app", "api", Amount(100), Some("62220001")));
        assert_eq!(parse_mean(b"3:150.5"), Some((3, 150.5)));
    }
}
