//! An A2 call signed with an SM2 key pair; the SDK refuses the answer unless
//! the bank's SM2 signature over it verifies. Against the demo:
//!
//!     cargo run -p menshen -- demo &
//!     cargo run -p menshen-sdk --example a2_call -- ./menshen-demo/demo.json

use menshen_sdk::{Client, Credentials};

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
    let bank_key =
        std::fs::read_to_string(demo["bank_signing_public_key"].as_str().ok_or("bank key")?)?;
    let client = Client::builder(demo["gateway_url"].as_str().ok_or("gateway_url")?)?
        .ca_pem_file(demo["ca_cert"].as_str().ok_or("ca_cert")?)?
        .credentials(creds)
        .bank_public_key_pem(&bank_key)?
        .build()?;
    // The response signature is verified inside `call`; an Err means it did not verify.
    let resp = client
        .call("GET", "/v1/accounts/6222020200112233445/balance", None)
        .await?;
    println!(
        "{} (bank signature verified) {}",
        resp.status,
        String::from_utf8_lossy(&resp.body)
    );
    let transfer = serde_json::json!({"from_account": "6222020200112233445", "to_account": "6217000010001234567", "amount": "100.00", "currency": "CNY"});
    let resp = client
        .call(
            "POST",
            "/v1/transfers",
            Some(transfer.to_string().into_bytes()),
        )
        .await?;
    println!(
        "{} (bank signature verified) {}",
        resp.status,
        String::from_utf8_lossy(&resp.body)
    );
    Ok(())
}
