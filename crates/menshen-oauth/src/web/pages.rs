//! The pages (askama templates under `templates/`, HTML auto-escaped).

use askama::Template;
use menshen_model::{uapi, Api, Level};

/// The stylesheet served at `/oauth2/menshen.css` (CSP `style-src 'self'`).
pub const CSS: &str = include_str!("../../templates/menshen.css");

#[derive(Template)]
#[template(path = "login.html")]
pub struct Login<'a> {
    pub title: &'a str,
    pub heading: &'a str,
    pub app_name: &'a str,
    pub intro: &'a str,
    pub error: &'a str,
    pub action: &'a str,
    pub csrf: &'a str,
    pub username: &'a str,
    pub need_otp: bool,
    pub otp_hint: &'a str,
}

pub struct ApiView {
    pub name: String,
    pub api_id: String,
    pub level: String,
    pub category: String,
}

pub struct AccountView {
    pub number: String,
    pub shown: String,
}

#[derive(Template)]
#[template(path = "consent.html")]
pub struct ConsentPage<'a> {
    pub title: &'a str,
    pub heading: &'a str,
    pub customer: &'a str,
    pub app_name: &'a str,
    pub note: &'a str,
    pub error: &'a str,
    pub csrf: &'a str,
    pub apis: Vec<ApiView>,
    pub selectable: bool,
    pub accounts: Vec<AccountView>,
    pub valid_until: String,
    pub use_limit: String,
    pub daily_limit: String,
}

#[derive(Template)]
#[template(path = "error.html")]
pub struct ErrorPage<'a> {
    pub title: &'a str,
    pub message: &'a str,
    pub advice: &'a str,
}

pub struct ConsentRow {
    pub consent_id: String,
    pub app: String,
    pub state: String,
    pub apis: String,
    pub accounts: String,
    pub validity: String,
    pub uses: String,
    pub role: String,
    pub revocable: bool,
}

#[derive(Template)]
#[template(path = "consents.html")]
pub struct ConsentsPage<'a> {
    pub title: &'a str,
    pub customer: &'a str,
    pub csrf: &'a str,
    pub rows: Vec<ConsentRow>,
}

/// Render, or a plain message if a template fails (it does not: the
/// fields are plain strings).
pub fn render<T: Template>(t: &T) -> String {
    t.render()
        .unwrap_or_else(|_| "<!doctype html><title>Error</title><p>Error</p>".into())
}

/// The level in plain words, Chinese and English.
pub fn level_words(l: Level) -> &'static str {
    match l {
        Level::A1 => "A1 公开信息（只读）/ public information, read-only",
        Level::A2 => "A2 账户信息 / your account information",
        Level::A3 => "A3 资金交易与签约 / moving funds and signing services (two factors)",
    }
}

/// The API in plain words.
pub fn api_view(api_id: &str, api: Option<&Api>) -> ApiView {
    match api {
        Some(a) => ApiView {
            name: a.name.clone(),
            api_id: api_id.to_string(),
            level: level_words(a.level).to_string(),
            category: uapi::UApiId::decode(&a.u_api_id)
                .map(|u| format!("类别 / category: {}", uapi::category_name(u.category)))
                .unwrap_or_default(),
        },
        None => ApiView {
            name: api_id.to_string(),
            api_id: api_id.to_string(),
            level: String::new(),
            category: String::new(),
        },
    }
}

/// An account number as shown: the first 4 and last 4 digits.
pub fn mask_account(a: &str) -> String {
    let n = a.chars().count();
    if n <= 8 {
        return a.to_string();
    }
    let head: String = a.chars().take(4).collect();
    let tail: String = a.chars().skip(n - 4).collect();
    format!("{head} **** {tail}")
}

/// The use limit in words.
pub fn use_words(limit: Option<u32>) -> String {
    match limit {
        None => "到期前不限次数 / unlimited until the end date".into(),
        Some(1) => "仅一次 / once".into(),
        Some(n) => format!("最多 {n} 次 / at most {n} uses"),
    }
}

/// The daily limit in words (empty: none).
pub fn daily_words(limit: Option<u32>) -> String {
    match limit {
        None => String::new(),
        Some(n) => format!("每日最多 {n} 次 / at most {n} per day"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usr_4_pages_escape_what_they_show() {
        let p = render(&ErrorPage {
            title: "t",
            message: "<script>alert(1)</script>",
            advice: "\"'&",
        });
        assert!(!p.contains("<script>alert"));
        assert!(p.contains("&#60;script&#62;") || p.contains("&lt;script&gt;"));
        assert_eq!(mask_account("6222020000000001"), "6222 **** 0001");
    }
}
