//! An A1 call with App_ID + App_Secret (HMAC-SM3), against the demo:
//!
//!     cargo run -p menshen -- demo &          # writes ./menshen-demo/demo.json
//!     cargo run -p menshen-sdk --example a1_call -- ./menshen-demo/demo.json

use menshen_sdk::{Client, Credentials};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "menshen-demo/demo.json".into());
    let demo: serde_json::Value = serde_json::from_slice(&std::fs::read(&path)?)?;
    let app = &demo["apps"][0];
    let secret = std::fs::read_to_string(app["secret_file"].as_str().ok_or("secret_file")?)?;
    let client = Client::builder(demo["gateway_url"].as_str().ok_or("gateway_url")?)?
        .ca_pem_file(demo["ca_cert"].as_str().ok_or("ca_cert")?)?
        .credentials(Credentials::hmac_sm3(
            app["app_id"].as_str().ok_or("app_id")?,
            secret.trim().as_bytes().to_vec(),
        ))
        .build()?;
    let resp = client.call("GET", "/v1/products", None).await?;
    match resp.error() {
        None => println!("{} {}", resp.status, String::from_utf8_lossy(&resp.body)),
        Some(e) => println!("refused: {} ({}) txn {}", e.code, e.message, e.txn_id),
    }
    Ok(())
}
