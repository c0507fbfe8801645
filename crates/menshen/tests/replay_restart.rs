//! INT-4 across restarts: after a clean stop the log's nonces are trusted;
//! after an unclean one (the running marker left behind) a request signed
//! before the restart is refused for one replay window, since its nonce may
//! not have reached the disk.

mod common;

use bytes::Bytes;
use common::{Harness, HarnessOptions};
use menshen_sdk::SignOptions;

async fn app_and_request(h: &Harness) -> (String, String, http::Request<Bytes>) {
    h.api("items", "GET", "/v1/items/{id}", "A1").await;
    let (app, secret) = h.app("Fintech One", "server").await;
    h.grant(&app, "items").await;
    let c = h.client(&app, &secret);
    let mut req = c.request("GET", "/v1/items/1", None).unwrap();
    // Signed a few seconds before the restart, still inside the window.
    c.sign(
        &mut req,
        Some(&SignOptions {
            created: Some(menshen_store::now_unix() - 5),
            ..Default::default()
        }),
    )
    .unwrap();
    (app, secret, req)
}

#[tokio::test]
async fn int_4_after_a_clean_stop_earlier_signatures_within_the_window_are_accepted() {
    let h = Harness::start_with(HarnessOptions::default()).await;
    let (_, _, req) = app_and_request(&h).await;
    let h = h.restart().await;
    let c = h.client("x", "y");
    let r = c.send_unverified(req).await.unwrap();
    assert_eq!(r.status, 200, "{:?}", String::from_utf8_lossy(&r.body));
}

#[tokio::test]
async fn int_4_after_an_unclean_stop_requests_signed_before_the_restart_are_refused() {
    let h = Harness::start_with(HarnessOptions::default()).await;
    let (app, secret, req) = app_and_request(&h).await;
    let h = h.restart_unclean().await;
    let c = h.client("x", "y");
    let r = c.send_unverified(req).await.unwrap();
    let e = r.error().expect("refused");
    assert_eq!((r.status, e.code.as_str()), (401, "STALE_TIMESTAMP"));
    let rec = h.record(&e.txn_id).await;
    assert!(
        rec.reason.unwrap_or_default().contains("unclean stop"),
        "the record says why"
    );
    // Dated more than 5 s ahead: refused during the guard window (it could
    // be a pre-crash request signed with a fast clock).
    let c2 = h.client(&app, &secret);
    let mut ahead = c2.request("GET", "/v1/items/3", None).unwrap();
    c2.sign(
        &mut ahead,
        Some(&SignOptions {
            created: Some(menshen_store::now_unix() + 60),
            ..Default::default()
        }),
    )
    .unwrap();
    let r = c2.send_unverified(ahead).await.unwrap();
    assert_eq!(r.error().expect("refused").code, "STALE_TIMESTAMP");
    // A request signed now passes.
    let r = h
        .client(&app, &secret)
        .call("GET", "/v1/items/2", None)
        .await
        .unwrap();
    assert_eq!(r.status, 200);
}
