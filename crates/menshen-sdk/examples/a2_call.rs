//! An A2 call on a customer's account: the app signs with its SM2 key pair,
//! the customer authorizes it at the bank (PAR + PKCE, the login and consent
//! pages in a browser), and the call carries the customer's token. The SDK
//! refuses any answer whose bank SM2 signature does not verify. Against the
//! demo:
//!
//!     cargo run -p menshen -- demo &
//!     cargo run -p menshen-sdk --example a2_call -- ./menshen-demo/demo.json
//!
//! then open the printed URL, log in as `alice` (password in `demo.json`),
//! tick an account and approve.

use std::time::Duration;

use menshen_sdk::loopback::{wait_for_code, Redirect};
use menshen_sdk::{AuthorizationRequest, Client, Credentials, Pkce};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "menshen-demo/demo.json".into());
    let demo: serde_json::Value = serde_json::from_slice(&std::fs::read(&path)?)?;
    let app = &demo["apps"][1];
    let creds = Credentials::key_pair_from_file(
        app["app_id"].as_str().ok_or("app_id")?,
        std::path::Path::new(app["private_key"].as_str().ok_or("private_key")?),
    )?;
    let redirect_uri = app["redirect_uri"].as_str().ok_or("redirect_uri")?;
    let gateway = demo["gateway_url"].as_str().ok_or("gateway_url")?;
    let bank_key =
        std::fs::read_to_string(demo["bank_signing_public_key"].as_str().ok_or("bank key")?)?;
    let client = Client::builder(gateway)?
        .ca_pem_file(demo["ca_cert"].as_str().ok_or("ca_cert")?)?
        .credentials(creds)
        .bank_public_key_pem(&bank_key)?
        .build()?;

    // 1. Push the authorization request (signed like any call).
    let pkce = Pkce::new();
    let state = menshen_crypto::random_token(16);
    let req = AuthorizationRequest {
        redirect_uri: redirect_uri.into(),
        scope: vec!["account-balance".into()],
        state: state.clone(),
        ..Default::default()
    };
    let par = client
        .par(&req, &pkce)
        .await?
        .map_err(|e| format!("PAR: {e:?}"))?;
    // 2. The customer authorizes in a browser; the code comes back to us.
    println!(
        "Open in a browser (demo CA: {}):\n  {}",
        demo["ca_cert"],
        client.authorize_url(&par.request_uri)
    );
    let code = match wait_for_code(redirect_uri, &state, gateway, Duration::from_secs(300)).await? {
        Redirect::Code(c) => c,
        Redirect::Error(e) => return Err(format!("not authorized: {e}").into()),
    };
    // 3. Exchange it for the customer's token (bound to this app).
    let token = client
        .exchange_code(&code, redirect_uri, &pkce)
        .await?
        .map_err(|e| format!("token: {e:?}"))?;
    // 4. The call: signed, carrying the token, answer signed by the bank.
    let account = demo["customers"][0]["accounts"][0]
        .as_str()
        .ok_or("account")?;
    let resp = client
        .call_with_token(
            "GET",
            &format!("/v1/accounts/{account}/balance"),
            None,
            &token.access_token,
        )
        .await?;
    println!(
        "{} (bank signature verified) {}",
        resp.status,
        String::from_utf8_lossy(&resp.body)
    );
    Ok(())
}
