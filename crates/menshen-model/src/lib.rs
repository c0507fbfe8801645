//! Domain types of Menshen: application parties, credentials, the API catalog,
//! grants, IP rules and flow-control limits, with their validation. No I/O here.
#![forbid(unsafe_code)]
// The ban list (clippy.toml): no `unwrap` outside tests (an `expect` names
// its invariant), no printing from a library (tracing instead).
#![deny(
    clippy::unwrap_used,
    clippy::print_stdout,
    clippy::print_stderr,
    clippy::dbg_macro
)]

// One file per entity; everything is re-exported here, so callers write
// `menshen_model::App` whatever file it lives in.

/// A string enum with its wire names (`ALL`, `as_str`, `parse`, `names`,
/// `Display`). Defined before the modules so each can use it.
macro_rules! str_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $var:ident = $s:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum $name { $($(#[$vm])* #[serde(rename = $s)] $var),+ }
        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$var),+];
            /// The wire name.
            pub fn as_str(self) -> &'static str { match self { $($name::$var => $s),+ } }
            /// Parse the wire name.
            pub fn parse(s: &str) -> Option<Self> { match s { $($s => Some($name::$var),)+ _ => None } }
            /// The accepted names, for error messages.
            pub fn names() -> String { [$($s),+].join(", ") }
        }
        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result { f.write_str(self.as_str()) }
        }
    };
}

pub mod alert;
mod api;
mod app;
pub mod baseline;
mod blacklist;
mod consent;
mod controls;
mod credential;
mod envelope;
mod error;
mod fallback;
mod grant;
mod headers;
mod ip_rule;
mod level;
mod limit;
pub mod notice;
pub mod path;
mod protection;
pub mod risk;
pub mod uapi;

pub use api::{
    upstream_name, upstream_name_valid, validate_upstream, Api, Integration, Lifecycle, Method,
    NewApi,
};
pub use app::{
    check_notify_url, is_public_ip, notify_ip_permitted, App, AppKind, AppStatus, NewApp,
    NotifyUrlKind,
};
pub use blacklist::{
    validate_reason as validate_blacklist_reason, BlacklistAction, BlacklistEntry, BlacklistEvent,
    BLACKLIST_REASON_MAX,
};
pub use consent::{Consent, ConsentRule, ConsentState, Customer, RevokedBy, TokenProfile};
pub use controls::{ApiControls, AuthMethod, MessageRetention, NewApiControls};
pub use credential::CredentialKind;
pub use envelope::{
    validate_pointers as validate_envelope_pointers, FieldEnvelopes, ENVELOPE_MEMBER,
    MAX_ENVELOPE_POINTERS,
};
pub use error::ValidationError;
pub use fallback::Fallback;
pub use grant::Grant;
pub use headers::{forwardable_header, NEVER_FORWARDED_HEADERS};
pub use ip_rule::{parse_cidr, IpAction, IpRule, NewIpRule};
pub use level::{Level, LevelProfile};
pub use limit::{
    civil_from_days, days_from_civil, LimitAction, LimitPer, LimitRule, LimitWindow, NewLimitRule,
    LIMIT_MAX, PAUSE_MAX_SECS, SHANGHAI_OFFSET_SECS,
};
pub use path::{PathPattern, PathPatternError};
pub use protection::{
    compile as compile_schema, valid_pointer, ApiSchema, MaskField, MaskKind, ProtectionPatch,
    ResponseMask, ScreenMode, Screening, MAX_SCHEMA_BYTES, SCREEN_MAX_DEPTH, SCREEN_MAX_STRINGS,
};
pub use uapi::{UApiId, UApiIdError, UApiType};
