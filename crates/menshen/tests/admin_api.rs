//! Admin API: authentication, input validation that names the field, nothing
//! half-written, U_API_ID assignment (LVL-1, UID-2, ONB-2, ADM-1 partially).

mod common;

use common::Harness;
use serde_json::json;

#[tokio::test]
async fn adm_1_admin_api_requires_a_valid_token() {
    let h = Harness::start().await;
    let (s, v) = h.admin_raw("GET", "/v1/apps", None, None).await;
    assert_eq!((s, v["code"].as_str()), (401, Some("UNAUTHORIZED")));
    let (s, _) = h
        .admin_raw("GET", "/v1/apps", None, Some("msk_wrong"))
        .await;
    assert_eq!(s, 401);
    let (s, _) = h
        .admin_raw(
            "POST",
            "/v1/apps",
            Some(r#"{"name":"x","kind":"server"}"#.into()),
            None,
        )
        .await;
    assert_eq!(s, 401);
    assert_eq!(
        h.admin("GET", "/v1/apps", None).await.1,
        json!([]),
        "unauthenticated create wrote nothing"
    );
    // The OpenAPI document is public.
    let (s, v) = h.admin_raw("GET", "/openapi.json", None, None).await;
    assert_eq!(s, 200);
    assert!(v["openapi"].as_str().unwrap_or("").starts_with("3."), "{v}");
}

#[tokio::test]
async fn lvl_1_bad_input_names_the_field_and_writes_nothing() {
    let h = Harness::start().await;
    let up = h.upstream_url.clone();
    let good = json!({"api_id": "p", "method": "GET", "path": "/v1/p", "upstream": up, "level": "A1", "category": 3, "subcategory": 1});
    let cases = [
        ("api_id", json!({"api_id": "bad id!"})),
        ("method", json!({"method": "FETCH"})),
        ("path", json!({"path": "v1/no-slash"})),
        ("path", json!({"path": "/v1/../etc"})),
        ("upstream", json!({"upstream": "ftp://10.0.0.1"})),
        ("upstream", json!({"upstream": "http://user:pw@10.0.0.1"})),
        ("level", json!({"level": "A9"})),
        ("category", json!({"category": 0})),
        ("subcategory", json!({"subcategory": 0})),
        (
            "integrations",
            json!({"level": "A2", "integrations": ["mobile_to_server"]}),
        ),
        ("surprise", json!({"surprise": 1})),
    ];
    for (field, patch) in cases {
        let mut body = good.clone();
        for (k, v) in patch.as_object().unwrap() {
            body[k] = v.clone();
        }
        let (s, v) = h.admin("POST", "/v1/apis", Some(body)).await;
        assert_eq!(s, 400, "{field}: {v}");
        assert_eq!(v["code"], "INVALID_INPUT");
        assert_eq!(v["field"], field, "{v}");
        assert!(v["message"].as_str().unwrap().contains(field), "{v}");
    }
    let mut missing = good.clone();
    missing.as_object_mut().unwrap().remove("level");
    let (s, v) = h.admin("POST", "/v1/apis", Some(missing)).await;
    assert_eq!((s, v["field"].as_str()), (400, Some("level")), "{v}");
    let (s, v) = h
        .admin_raw(
            "POST",
            "/v1/apis",
            Some("{not json".into()),
            Some(&h.admin_token),
        )
        .await;
    assert_eq!(s, 400, "{v}");
    assert_eq!(
        h.admin("GET", "/v1/apis", None).await.1,
        json!([]),
        "nothing half-written"
    );

    // Apps.
    for (field, body) in [
        ("kind", json!({"name": "A", "kind": "robot"})),
        ("name", json!({"name": "", "kind": "server"})),
        ("kind", json!({"name": "A"})),
    ] {
        let (s, v) = h.admin("POST", "/v1/apps", Some(body)).await;
        assert_eq!((s, v["field"].as_str()), (400, Some(field)), "{v}");
    }
    assert_eq!(h.admin("GET", "/v1/apps", None).await.1, json!([]));

    // Grants and IP rules.
    let (app, _) = h.app("A", "server").await;
    h.api("p", "GET", "/v1/p", "A1").await;
    let (s, v) = h
        .admin(
            "POST",
            "/v1/grants",
            Some(json!({"app_id": "app_nope", "api_id": "p"})),
        )
        .await;
    assert_eq!((s, v["field"].as_str()), (400, Some("app_id")), "{v}");
    let (s, v) = h
        .admin(
            "POST",
            "/v1/grants",
            Some(json!({"app_id": app, "api_id": "nope"})),
        )
        .await;
    assert_eq!((s, v["field"].as_str()), (400, Some("api_id")), "{v}");
    let (s, v) = h
        .admin(
            "POST",
            "/v1/ip-rules",
            Some(json!({"action": "deny", "cidr": "10.0.0.300/8"})),
        )
        .await;
    assert_eq!((s, v["field"].as_str()), (400, Some("cidr")), "{v}");
    let (s, v) = h
        .admin(
            "POST",
            "/v1/ip-rules",
            Some(json!({"action": "block", "cidr": "10.0.0.0/8"})),
        )
        .await;
    assert_eq!((s, v["field"].as_str()), (400, Some("action")), "{v}");
    assert_eq!(h.admin("GET", "/v1/ip-rules", None).await.1, json!([]));
    let (s, v) = h
        .admin(
            "POST",
            "/v1/apis/p/lifecycle",
            Some(json!({"state": "gone"})),
        )
        .await;
    assert_eq!((s, v["field"].as_str()), (400, Some("state")), "{v}");
    let (s, _) = h.admin("GET", "/v1/apps/app_nope", None).await;
    assert_eq!(s, 404);
}

#[tokio::test]
async fn onb_2_onb_3_app_created_active_without_grants_secret_shown_once() {
    let h = Harness::start().await;
    let (s, v) = h
        .admin(
            "POST",
            "/v1/apps",
            Some(json!({"name": "Fintech", "kind": "server"})),
        )
        .await;
    assert_eq!(s, 201);
    let app_id = v["app"]["app_id"].as_str().unwrap();
    assert!(v["app_secret"].as_str().unwrap().len() >= 43);
    let (_, shown) = h.admin("GET", &format!("/v1/apps/{app_id}"), None).await;
    assert_eq!(shown["status"], "active");
    assert_eq!(shown["grants"], json!([]));
    assert!(!shown
        .to_string()
        .contains(v["app_secret"].as_str().unwrap()));
    let (_, creds) = h
        .admin("GET", &format!("/v1/apps/{app_id}/credentials"), None)
        .await;
    assert_eq!(creds.as_array().unwrap().len(), 1);
    assert!(creds[0].get("sealed_secret").is_none(), "{creds}");
}

#[tokio::test]
async fn uid_2_uapi_assigned_decoded_and_cancelled() {
    let h = Harness::start().await;
    let a = h.api("a", "GET", "/v1/a", "A1").await;
    let code = a["u_api_id"].as_str().unwrap().to_string();
    let (s, d) = h.admin("GET", &format!("/v1/uapi/{code}"), None).await;
    assert_eq!(s, 200);
    assert_eq!(
        (
            d["institution"].as_str(),
            d["sequence"].as_u64(),
            d["cancelled"].as_bool()
        ),
        (Some("C10305"), Some(1), Some(false))
    );
    h.admin(
        "POST",
        "/v1/apis/a/lifecycle",
        Some(json!({"state": "offline"})),
    )
    .await;
    let (_, d) = h.admin("GET", &format!("/v1/uapi/{code}"), None).await;
    assert_eq!(d["cancelled"], true);
    let b = h.api("b", "GET", "/v1/b", "A1").await;
    assert_ne!(b["u_api_id"], a["u_api_id"]);
    let (s, d) = h
        .admin("GET", "/v1/uapi/0PC103050101000000000100", None)
        .await;
    assert_eq!((s, d["field"].as_str()), (400, Some("subcategory")), "{d}");
}
