//! The admin API attacked as an attacker or a careless operator would
//! (ADM-1): what a change's record shows when the target is named by a
//! number or in percent-encoded form, and the answer to path and query
//! parameters that do not parse.

mod common;

use common::{admin_records, Harness};
use serde_json::{json, Value};

/// The result record (not the `(requested)` one) of `action`.
fn result_record<'a>(recs: &'a [Value], action: &str) -> &'a Value {
    recs.iter()
        .find(|r| r["action"] == action)
        .unwrap_or_else(|| panic!("no record of {action}: {recs:#?}"))
}

/// ADM-1: removing an IP rule, a risk rule or a credential (all named by a
/// number) records what was removed in `before`: the CIDR and action, the
/// rule, the credential. Before, `before` was null, so the log said only
/// "DELETE /v1/ip-rules/1" and a removed blocklist entry could not be told
/// from the log. A change to an app named in percent-encoded form
/// (`/v1/apps/%61%70%70.../suspend` suspends the app) records the app's
/// state before, as the plain form does (it was null).
#[tokio::test]
async fn adm_1_records_of_removals_and_encoded_targets_show_the_state_before() {
    let h = Harness::start().await;
    let (app_id, _secret) = h.app("Careless Co", "server").await;

    // An IP rule, removed.
    let (s, rule) = h
        .admin(
            "POST",
            "/v1/ip-rules",
            Some(json!({"action": "deny", "cidr": "203.0.113.0/24", "note": "scanner"})),
        )
        .await;
    assert_eq!(s, 201, "{rule}");
    let ip_id = rule["id"].as_i64().unwrap();
    let (s, _) = h
        .admin("DELETE", &format!("/v1/ip-rules/{ip_id}"), None)
        .await;
    assert_eq!(s, 204);

    // A risk rule, removed.
    let (s, risk) = h
        .admin(
            "POST",
            "/v1/risk-rules",
            Some(json!({"app_id": app_id, "max_per_txn": "50000.00"})),
        )
        .await;
    assert_eq!(s, 201, "{risk}");
    let risk_id = risk["id"].as_i64().unwrap();
    let (s, _) = h
        .admin("DELETE", &format!("/v1/risk-rules/{risk_id}"), None)
        .await;
    assert_eq!(s, 204);

    // The App_Secret credential, revoked.
    let (_, creds) = h
        .admin("GET", &format!("/v1/apps/{app_id}/credentials"), None)
        .await;
    let cred_id = creds[0]["id"].as_i64().unwrap();
    let (s, _) = h
        .admin(
            "DELETE",
            &format!("/v1/apps/{app_id}/credentials/{cred_id}"),
            None,
        )
        .await;
    assert_eq!(s, 204);

    // The app suspended through its percent-encoded id.
    let encoded: String = app_id.bytes().map(|b| format!("%{b:02X}")).collect();
    let (s, v) = h
        .admin("POST", &format!("/v1/apps/{encoded}/suspend"), None)
        .await;
    assert_eq!((s, v["status"].as_str()), (200, Some("suspended")), "{v}");

    let recs = admin_records(&h).await;
    let before = |action: &str| result_record(&recs, action)["before"].clone();

    let b = before(&format!("DELETE /v1/ip-rules/{ip_id}"));
    assert_eq!(
        (b["cidr"].as_str(), b["action"].as_str(), b["id"].as_i64()),
        (Some("203.0.113.0/24"), Some("deny"), Some(ip_id)),
        "the removed IP rule: {b}"
    );
    let b = before(&format!("DELETE /v1/risk-rules/{risk_id}"));
    assert_eq!(
        (b["id"].as_i64(), b["app_id"].as_str()),
        (Some(risk_id), Some(app_id.as_str())),
        "the removed risk rule: {b}"
    );
    assert!(b.to_string().contains("50000"), "its limit: {b}");
    let b = before(&format!("DELETE /v1/apps/{app_id}/credentials/{cred_id}"));
    assert_eq!(
        (b["id"].as_i64(), b["kind"].as_str(), b["revoked"].as_bool()),
        (Some(cred_id), Some("secret"), Some(false)),
        "the revoked credential as it was: {b}"
    );
    assert!(
        b.get("sealed_secret").is_none(),
        "no sealed secret in a record: {b}"
    );
    let b = before(&format!("POST /v1/apps/{encoded}/suspend"));
    assert_eq!(
        (b["app_id"].as_str(), b["status"].as_str()),
        (Some(app_id.as_str()), Some("active")),
        "the app before it was suspended: {b}"
    );
}

/// ADM-1: a path or query parameter that does not parse (a rule id that
/// is not a number or overflows, an id that is not UTF-8 once decoded, a
/// query parameter given twice) is answered 400 with the documented error body
/// naming the parameter, and changes nothing. Before, axum's plain-text
/// rejection went out (no `code`, no `field`).
#[tokio::test]
async fn adm_1_bad_path_and_query_parameters_get_the_error_body_naming_the_field() {
    let h = Harness::start().await;
    let (app_id, _secret) = h.app("Hostile Input Co", "server").await;
    let (s, rule) = h
        .admin(
            "POST",
            "/v1/ip-rules",
            Some(json!({"action": "deny", "cidr": "198.51.100.7"})),
        )
        .await;
    assert_eq!(s, 201, "{rule}");

    let cases: [(&str, String, &str); 8] = [
        ("DELETE", "/v1/ip-rules/abc".into(), "id"),
        (
            "DELETE",
            "/v1/ip-rules/99999999999999999999999".into(),
            "id",
        ),
        ("DELETE", "/v1/limits/-".into(), "id"),
        ("POST", "/v1/alerts/1e3/ack".into(), "id"),
        ("GET", "/v1/apps/%FF%FE".into(), "app_id"),
        ("DELETE", format!("/v1/apps/{app_id}/credentials/one"), "id"),
        (
            "GET",
            "/v1/alerts?state=open&state=resolved".into(),
            "state",
        ),
        ("GET", "/v1/audit?limit=many".into(), "query"),
    ];
    for (method, path, field) in cases {
        let (s, v) = h.admin_raw(method, &path, None, Some(&h.admin_token)).await;
        assert_eq!(s, 400, "{method} {path}: {v}");
        assert_eq!(v["code"], "INVALID_INPUT", "{method} {path}: {v}");
        assert_eq!(v["field"], field, "{method} {path}: {v}");
        let msg = v["message"].as_str().unwrap_or_default();
        assert!(
            msg.starts_with(&format!("{field}: ")),
            "{method} {path}: {v}"
        );
    }

    // Nothing changed.
    let (_, rules) = h.admin("GET", "/v1/ip-rules", None).await;
    assert_eq!(rules.as_array().map(Vec::len), Some(1), "{rules}");
    let (_, creds) = h
        .admin("GET", &format!("/v1/apps/{app_id}/credentials"), None)
        .await;
    assert_eq!(creds[0]["revoked"], false, "{creds}");
}

/// The whole log as text (flushed first), for "this never appears" checks.
async fn log_text(h: &Harness) -> String {
    h.node().audit.flush().await.unwrap();
    menshen_audit::writer::read_all_records(h.node().audit.dir())
        .unwrap()
        .join("\n")
}

/// ADM-1, AUD-5: the `before` of an admin record is scrubbed like its
/// request and answer. Before, it was recorded as read from the store: the
/// bank revoking a consent put the customer's full account numbers in the
/// log (the answer beside it had them masked), and any change to an app
/// whose notification URL carries a token (`?token=...`, scrubbed from the
/// request that set it) put that token in the log.
#[tokio::test]
async fn adm_1_aud_5_the_state_before_a_change_is_scrubbed_too() {
    use menshen_model::{Consent, ConsentState};
    let h = Harness::start().await;
    let (app_id, _secret) = h.app("Leaky Before Co", "server").await;
    let account = "6222020000000001";
    let now = menshen_store::now_unix();
    let consent_id = menshen_store::new_consent_id();
    h.node()
        .cp
        .store
        .insert_consent(&Consent {
            consent_id: consent_id.clone(),
            app_id: app_id.clone(),
            user_id: Some("C1".into()),
            scopes: vec!["balance".into()],
            accounts: vec![account.into()],
            state: ConsentState::Authorised,
            expires_at: now + 3600,
            use_limit: None,
            daily_limit: None,
            uses: 0,
            agent_user_id: None,
            agent_approved: false,
            two_factor: false,
            created_at: now,
            authorised_at: Some(now),
            revoked_by: None,
            ended_at: None,
        })
        .await
        .unwrap();
    let (s, v) = h
        .admin("POST", &format!("/v1/consents/{consent_id}/revoke"), None)
        .await;
    assert_eq!((s, v["state"].as_str()), (200, Some("revoked")), "{v}");

    let token = "NotifyTokenAbcdef0123456789";
    let url = format!("https://hooks.fintech.example/menshen?token={token}");
    let (s, v) = h
        .admin(
            "PUT",
            &format!("/v1/apps/{app_id}/notify-url"),
            Some(json!({ "notify_url": url })),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = h
        .admin("POST", &format!("/v1/apps/{app_id}/suspend"), None)
        .await;
    assert_eq!(s, 200, "{v}");

    let recs = admin_records(&h).await;
    let revoke = result_record(&recs, &format!("POST /v1/consents/{consent_id}/revoke"));
    assert_eq!(revoke["before"]["state"], "authorised", "{revoke}");
    assert_eq!(
        revoke["before"]["app_id"], app_id,
        "identifiers stay whole: {revoke}"
    );
    let suspend = result_record(&recs, &format!("POST /v1/apps/{app_id}/suspend"));
    assert_eq!(suspend["before"]["status"], "active", "{suspend}");
    let text = log_text(&h).await;
    assert!(
        !text.contains(token),
        "the notification URL's token is in the log"
    );
    assert!(
        !text.contains(account),
        "a full account number is in the log"
    );
}

/// ADM-1: `/metrics` accepts an admin token (as well as the scrape token),
/// so a refused token there is recorded like one on `/v1/...` (without the
/// token). Before, it was only logged to the console: `/metrics` answered
/// 200 or 401 to any candidate admin token and the audit log never showed
/// the attempts.
#[tokio::test]
async fn adm_1_refused_tokens_on_metrics_are_recorded_like_on_the_admin_api() {
    let h = Harness::start().await;
    let guess = "msk_GuessedTokenThatIsNotValid0123456789";
    let scrape = |token: Option<String>| {
        let h = &h;
        async move {
            let mut b = http::Request::builder()
                .method("GET")
                .uri(format!("{}/metrics", h.admin_url));
            if let Some(t) = token {
                b = b.header("authorization", format!("Bearer {t}"));
            }
            menshen_sdk::send(&h.admin_http, b.body(bytes::Bytes::new()).unwrap())
                .await
                .unwrap()
                .status
        }
    };
    assert_eq!(scrape(Some(guess.to_string())).await, 401);
    assert_eq!(scrape(None).await, 401);
    assert_eq!(scrape(Some(h.admin_token.clone())).await, 200);

    let recs = admin_records(&h).await;
    let wrong = result_record(&recs, "GET /metrics (refused: wrong admin token)");
    assert_eq!(wrong["status"], 401, "{wrong}");
    assert_eq!(wrong["actor"], menshen_admin::UNAUTHENTICATED, "{wrong}");
    assert_eq!(wrong["request"]["token"], "wrong", "{wrong}");
    let absent = result_record(&recs, "GET /metrics (refused: no admin token)");
    assert_eq!(absent["request"]["token"], "absent", "{absent}");
    assert_eq!(
        recs.iter()
            .filter(|r| r["action"]
                .as_str()
                .unwrap_or("")
                .starts_with("GET /metrics"))
            .count(),
        2,
        "the accepted scrape is not a refusal: {recs:#?}"
    );
    assert!(
        !log_text(&h).await.contains(guess),
        "the refused token itself is never recorded"
    );
}

/// USR-6, AUTH-6: an app that exits (`POST /v1/apps/{id}/status`
/// `exited`, also after a suspension) has its customers' consents revoked
/// by the bank; those already ended stay as they are. Before, they stayed
/// `authorised` for good: the customer's own page showed them as still
/// shared with an app that is gone (the model's `RevokedBy::Bank` names
/// "a suspension or exit of the app", and `void_app_tokens` says an exit
/// should also revoke them; nothing did).
#[tokio::test]
async fn usr_6_auth_6_an_app_that_exits_has_its_consents_revoked() {
    use menshen_model::{Consent, ConsentState, RevokedBy};
    let h = Harness::start().await;
    let (app_id, _) = h.app("Leaving Co", "server").await;
    let (other_app, _) = h.app("Staying Co", "server").await;
    let now = menshen_store::now_unix();
    let consent = |app: &str, state: ConsentState| Consent {
        consent_id: menshen_store::new_consent_id(),
        app_id: app.into(),
        user_id: Some("C1".into()),
        scopes: vec!["balance".into()],
        accounts: vec!["6222020000000001".into()],
        state,
        expires_at: now + 3600,
        use_limit: None,
        daily_limit: None,
        uses: 0,
        agent_user_id: None,
        agent_approved: false,
        two_factor: false,
        created_at: now,
        authorised_at: Some(now),
        revoked_by: None,
        ended_at: None,
    };
    let live = consent(&app_id, ConsentState::Authorised);
    let waiting = consent(&app_id, ConsentState::AwaitingAuthorisation);
    let mut ended = consent(&app_id, ConsentState::Revoked);
    ended.revoked_by = Some(RevokedBy::Customer);
    let others = consent(&other_app, ConsentState::Authorised);
    for c in [&live, &waiting, &ended, &others] {
        h.node().cp.store.insert_consent(c).await.unwrap();
    }
    // Suspended first: the consents stay (a suspension may be lifted).
    let (s, v) = h
        .admin("POST", &format!("/v1/apps/{app_id}/suspend"), None)
        .await;
    assert_eq!(s, 200, "{v}");
    let cp = h.node().cp.clone();
    let state = |id: String| {
        let cp = cp.clone();
        async move { cp.store.get_consent(&id).await.unwrap() }
    };
    assert_eq!(
        state(live.consent_id.clone()).await.state,
        ConsentState::Authorised
    );
    let (s, v) = h
        .admin(
            "POST",
            &format!("/v1/apps/{app_id}/status"),
            Some(json!({"status": "exited"})),
        )
        .await;
    assert_eq!((s, v["status"].as_str()), (200, Some("exited")), "{v}");
    for c in [&live, &waiting] {
        let now = state(c.consent_id.clone()).await;
        assert_eq!(
            (now.state, now.revoked_by),
            (ConsentState::Revoked, Some(RevokedBy::Bank)),
            "{now:?}"
        );
    }
    let now = state(ended.consent_id.clone()).await;
    assert_eq!(now.revoked_by, Some(RevokedBy::Customer), "{now:?}");
    assert_eq!(
        state(others.consent_id.clone()).await.state,
        ConsentState::Authorised,
        "another app's consent is untouched"
    );
}
