//! `menshen authorize ...`: the app's side of customer authorization from a
//! terminal (issue 11): push the authorization request (signed, PKCE S256),
//! print the URL for the customer's browser, receive the code on the app's
//! loopback redirect URI, exchange it, and print the token.

use std::time::Duration;

use anyhow::{bail, Context};
use menshen_crypto::MacAlg;
use menshen_sdk::loopback::{wait_for_code, Redirect};
use menshen_sdk::{AuthorizationRequest, Client, Credentials, Pkce};

use super::AuthorizeArgs;

/// `menshen authorize ...`
pub async fn authorize(a: AuthorizeArgs) -> anyhow::Result<i32> {
    let creds = match (&a.secret_file, &a.key) {
        (_, Some(k)) => Credentials::key_pair_from_file(&a.app_id, k)
            .with_context(|| format!("--key {}", k.display()))?,
        (Some(f), None) => Credentials::hmac_from_file(&a.app_id, f, MacAlg::HmacSm3)
            .with_context(|| format!("--secret-file {}", f.display()))?,
        (None, None) => bail!("give --secret-file or --key"),
    };
    let mut b = Client::builder(&a.gateway)?
        .ca_pem_file(&a.ca)
        .with_context(|| format!("--ca {}", a.ca.display()))?
        .credentials(creds);
    if let Some(p) = &a.bank_key {
        b = b.bank_public_key_pem(
            &std::fs::read_to_string(p).with_context(|| format!("--bank-key {}", p.display()))?,
        )?;
    }
    let client = b.build()?;
    let pkce = Pkce::new();
    let state = menshen_crypto::random_token(16);
    let req = AuthorizationRequest {
        redirect_uri: a.redirect_uri.clone(),
        scope: a.scope.clone(),
        state: state.clone(),
        use_limit: a.use_limit.clone(),
        ..Default::default()
    };
    let par = match client.par(&req, &pkce).await? {
        Ok(p) => p,
        Err(e) => bail!(
            "pushed authorization request refused: HTTP {} {} {}",
            e.status,
            e.error,
            e.description
        ),
    };
    eprintln!(
        "Open this URL in a browser (it trusts {}), log in as the customer and approve:\n\n  {}\n\nWaiting for the redirect to {} (at most {} s)...",
        a.ca.display(),
        client.authorize_url(&par.request_uri),
        a.redirect_uri,
        a.wait_secs
    );
    let code = match wait_for_code(
        &a.redirect_uri,
        &state,
        a.gateway.trim_end_matches('/'),
        Duration::from_secs(a.wait_secs),
    )
    .await?
    {
        Redirect::Code(c) => c,
        Redirect::Error(e) => {
            eprintln!("not authorized: {e}");
            return Ok(1);
        }
    };
    let t = match client.exchange_code(&code, &a.redirect_uri, &pkce).await? {
        Ok(t) => t,
        Err(e) => bail!(
            "token request refused: HTTP {} {} {}",
            e.status,
            e.error,
            e.description
        ),
    };
    match &a.token_out {
        Some(f) => {
            crate::node::files::write_private(f, t.access_token.as_bytes())
                .with_context(|| format!("--token-out {}", f.display()))?;
            eprintln!("access token written to {} (mode 0600)", f.display());
        }
        None => crate::out!("{}", t.access_token),
    }
    eprintln!(
        "consent {}, scope `{}`, valid {} s; call with: --token-file <file> (or --token <token>)",
        t.consent_id, t.scope, t.expires_in
    );
    Ok(0)
}
