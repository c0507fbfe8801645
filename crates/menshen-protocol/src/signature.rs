//! The RFC 9421 HTTP Message Signatures profile Menshen speaks.
//!
//! A request carries `Signature-Input: sig1=(<components>);created=..;nonce="..";
//! keyid="<App_ID>";alg=".."` and `Signature: sig1=:<base64>:`. The signature
//! base is built per RFC 9421 section 2.5 from the covered components; the
//! `@signature-params` line is the covered inner list re-serialized exactly as
//! parsed (parameter order kept). For the canonical form the SDKs send, that
//! serialization is the header's own text after `<label>=`, which the fast
//! path of [`ParsedSignature::parse`] takes as is (module `canonical`).

use base64::Engine;
use menshen_crypto::MacAlg;
use sfv::{
    BareItem, InnerList, Item, ListEntry, Parameters, Parser, RefBareItem, RefListSerializer,
    SerializeValue,
};

use crate::{headers, malformed, ProtocolError};

mod canonical;

/// The label clients should use; the gateway accepts any single label.
pub const SIGNATURE_LABEL: &str = "sig1";

/// Derived components the profile supports.
pub const DERIVED: &[&str] = &["@method", "@authority", "@path", "@query", "@scheme"];

/// Nonce length bounds (characters).
pub const NONCE_LEN: std::ops::RangeInclusive<usize> = 16..=128;

/// `keyid` (App_ID) length bounds (characters).
const KEYID_LEN: std::ops::RangeInclusive<usize> = 1..=128;

/// Whether the profile supports covering component `name` (without its
/// component parameters): a [`DERIVED`] component, `@status`, or a header
/// name of `a-z`, `0-9` and `-` (docs/protocol.md section 3.2).
fn supported_component(name: &str) -> bool {
    name == "@status"
        || DERIVED.contains(&name)
        || (!name.starts_with('@')
            && !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'))
}

/// Access to the parts of a message that can be covered.
pub trait Components {
    /// HTTP method, upper case.
    fn method(&self) -> &str;
    /// Host and port as the client addressed it.
    fn authority(&self) -> Option<&str>;
    /// URL scheme (`https`).
    fn scheme(&self) -> &str;
    /// Path, starting with `/`.
    fn path(&self) -> &str;
    /// Query without the `?`, if any.
    fn query(&self) -> Option<&str>;
    /// A header's field value (several lines joined by `, `), by lower-case name.
    fn header(&self, name: &str) -> Option<String>;
    /// The response status (`@status`); `None` for requests.
    fn status(&self) -> Option<u16> {
        None
    }
}

/// A plain request description implementing [`Components`], for clients.
#[derive(Debug, Clone)]
pub struct RequestView {
    /// Method.
    pub method: String,
    /// Authority.
    pub authority: String,
    /// Scheme.
    pub scheme: String,
    /// Path.
    pub path: String,
    /// Query without `?`.
    pub query: Option<String>,
    /// Headers (lower-case names).
    pub headers: Vec<(String, String)>,
}

impl Components for RequestView {
    fn method(&self) -> &str {
        &self.method
    }
    fn authority(&self) -> Option<&str> {
        Some(&self.authority)
    }
    fn scheme(&self) -> &str {
        &self.scheme
    }
    fn path(&self) -> &str {
        &self.path
    }
    fn query(&self) -> Option<&str> {
        self.query.as_deref()
    }
    fn header(&self, name: &str) -> Option<String> {
        crate::signature::combined_header(&self.headers, name)
    }
}

/// The field value of header `name` in a list of (name, value) pairs: every
/// line's value trimmed, joined by `, ` (RFC 9421 section 2.1).
pub fn combined_header(headers: &[(String, String)], name: &str) -> Option<String> {
    let mut vals = headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim());
    let mut out = vals.next()?.to_string();
    for v in vals {
        out.push_str(", ");
        out.push_str(v);
    }
    Some(out)
}

/// Signature parameters a client sets when signing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureParams {
    /// Covered components, in order.
    pub components: Vec<String>,
    /// Unix seconds when signed.
    pub created: i64,
    /// Optional unix seconds after which the signature is void.
    pub expires: Option<i64>,
    /// Unique per app within the replay window (16-128 characters).
    pub nonce: String,
    /// The App_ID (or key id).
    pub keyid: String,
    /// Algorithm name, e.g. `hmac-sm3`.
    pub alg: String,
}

impl SignatureParams {
    /// The components a request must cover: `@method`, `@authority`, `@path`,
    /// `@query` when it has a query, `content-digest` when it has a body.
    pub fn required_components(has_query: bool, has_body: bool) -> Vec<String> {
        let mut c: Vec<String> = ["@method", "@authority", "@path"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        if has_query {
            c.push("@query".into());
        }
        if has_body {
            c.push(headers::CONTENT_DIGEST.into());
        }
        c
    }

    fn to_inner_list(&self) -> InnerList {
        let items = self.components.iter().map(|c| component_item(c)).collect();
        let mut p = Parameters::new();
        p.insert("created".into(), BareItem::Integer(self.created));
        if let Some(e) = self.expires {
            p.insert("expires".into(), BareItem::Integer(e));
        }
        p.insert("nonce".into(), BareItem::String(self.nonce.clone()));
        p.insert("keyid".into(), BareItem::String(self.keyid.clone()));
        p.insert("alg".into(), BareItem::String(self.alg.clone()));
        InnerList::with_params(items, p)
    }

    /// The serialized inner list: the `@signature-params` value and the
    /// `Signature-Input` member value.
    pub fn serialize(&self) -> Result<String, ProtocolError> {
        serialize_inner(&self.to_inner_list())
    }
}

/// A component written as `name` or `name;param;param="v"` (RFC 9421
/// component parameters such as `;req` and `;key="sig1"`) as an sfv item.
fn component_item(c: &str) -> Item {
    let (name, rest) = c.split_once(';').unwrap_or((c, ""));
    let mut params = Parameters::new();
    if !rest.is_empty() {
        for p in rest.split(';') {
            match p.split_once('=') {
                Some((k, v)) => {
                    params.insert(
                        k.to_string(),
                        BareItem::String(v.trim_matches('"').to_string()),
                    );
                }
                None => {
                    params.insert(p.to_string(), BareItem::Boolean(true));
                }
            }
        }
    }
    Item::with_params(BareItem::String(name.to_string()), params)
}

/// The serialized component identifier, as it starts a signature-base line.
fn component_id(c: &str) -> Result<String, ProtocolError> {
    component_item(c)
        .serialize_value()
        .map_err(|e| malformed("signature-input", e))
}

/// Append the component identifier of `c` to `out`: what [`component_id`]
/// returns, written directly as `"c"` when `c` has no component parameters
/// and nothing the string serializer would escape or refuse (printable
/// ASCII other than `"` and `\`), as every request component has.
fn push_component_id(out: &mut String, c: &str) -> Result<(), ProtocolError> {
    if c.bytes()
        .all(|b| (0x20..=0x7e).contains(&b) && !matches!(b, b'"' | b'\\' | b';'))
    {
        out.push('"');
        out.push_str(c);
        out.push('"');
    } else {
        out.push_str(&component_id(c)?);
    }
    Ok(())
}

fn ref_item(b: &BareItem) -> RefBareItem<'_> {
    match b {
        BareItem::Integer(v) => RefBareItem::Integer(*v),
        BareItem::Decimal(v) => RefBareItem::Decimal(*v),
        BareItem::String(v) => RefBareItem::String(v),
        BareItem::ByteSeq(v) => RefBareItem::ByteSeq(v),
        BareItem::Boolean(v) => RefBareItem::Boolean(*v),
        BareItem::Token(v) => RefBareItem::Token(v),
    }
}

/// The inner list serialized (RFC 8941 section 4.1.1.1), straight from the
/// parsed value (no copy of it).
fn serialize_inner(il: &InnerList) -> Result<String, ProtocolError> {
    let bad = |e| malformed("signature-input", e);
    let mut out = String::with_capacity(160);
    let mut inner = RefListSerializer::new(&mut out).open_inner_list();
    for item in &il.items {
        inner = inner
            .inner_list_bare_item(&ref_item(&item.bare_item))
            .map_err(bad)?;
        for (k, v) in &item.params {
            inner = inner.inner_list_parameter(k, &ref_item(v)).map_err(bad)?;
        }
    }
    let mut list = inner.close_inner_list();
    for (k, v) in &il.params {
        list = list.parameter(k, &ref_item(v)).map_err(bad)?;
    }
    Ok(out)
}

/// A signature parsed from request headers.
#[derive(Debug, Clone)]
pub struct ParsedSignature {
    /// The label.
    pub label: String,
    /// The parameters.
    pub params: SignatureParams,
    /// The exact `@signature-params` value to put in the base.
    pub params_value: String,
    /// The signature bytes.
    pub signature: Vec<u8>,
}

fn str_param<'a>(p: &'a Parameters, name: &'static str) -> Result<Option<&'a str>, ProtocolError> {
    match p.get(name) {
        None => Ok(None),
        Some(BareItem::String(s)) => Ok(Some(s.as_str())),
        Some(_) => Err(malformed(
            "signature-input",
            format!("`{name}` must be a string"),
        )),
    }
}

fn int_param(p: &Parameters, name: &'static str) -> Result<Option<i64>, ProtocolError> {
    match p.get(name) {
        None => Ok(None),
        Some(BareItem::Integer(i)) => Ok(Some(*i)),
        Some(_) => Err(malformed(
            "signature-input",
            format!("`{name}` must be an integer"),
        )),
    }
}

impl ParsedSignature {
    /// Parse `Signature-Input` and `Signature`. With several labels, the one
    /// named [`SIGNATURE_LABEL`] is used; with one label, that one.
    ///
    /// Refused with [`ProtocolError::Duplicate`]: a label twice in either
    /// header, or a parameter twice in one parameter set (`created` twice,
    /// `;req;req` on a component), even with equal values, since a
    /// dictionary parser keeps only the last. Refused with
    /// [`ProtocolError::ExpiresNotAfterCreated`]: `expires` <= `created`.
    ///
    /// The canonical form every SDK sends (docs/protocol.md sections 3.5 and
    /// 3.8) is recognised by a hand-written fast path (INT-1: this runs on
    /// every A1 request); anything else, every refusal included, is decided
    /// by the general path ([`Self::parse_general`]). Both give the same
    /// answer on every input.
    pub fn parse(signature_input: &str, signature: &str) -> Result<Self, ProtocolError> {
        match canonical::parse(signature_input, signature) {
            Some(parsed) => Ok(parsed),
            None => Self::parse_general(signature_input, signature),
        }
    }

    /// The general path of [`Self::parse`]: the headers parsed as RFC 8941
    /// dictionaries by sfv, scanned for repeats, and `params_value`
    /// re-serialized from the parsed inner list. [`Self::parse`] returns
    /// exactly what this returns; it is public only so that tests and the
    /// `parse_bench` example can compare the two.
    #[doc(hidden)]
    pub fn parse_general(signature_input: &str, signature: &str) -> Result<Self, ProtocolError> {
        let inputs = Parser::parse_dictionary(signature_input.as_bytes())
            .map_err(|e| malformed("signature-input", e))?;
        let sigs = Parser::parse_dictionary(signature.as_bytes())
            .map_err(|e| malformed("signature", e))?;
        crate::sf::unique_members(headers::SIGNATURE_INPUT, signature_input)?;
        crate::sf::unique_members(headers::SIGNATURE, signature)?;
        let (label, entry) = if inputs.len() == 1 {
            inputs.iter().next().expect("one entry")
        } else {
            inputs.get_key_value(SIGNATURE_LABEL).ok_or_else(|| {
                malformed(
                    "signature-input",
                    format!("several signatures and none labelled `{SIGNATURE_LABEL}`"),
                )
            })?
        };
        let ListEntry::InnerList(il) = entry else {
            return Err(malformed(
                "signature-input",
                "member must be an inner list of components",
            ));
        };
        let mut components = Vec::with_capacity(il.items.len());
        for item in &il.items {
            let BareItem::String(name) = &item.bare_item else {
                return Err(malformed("signature-input", "components must be strings"));
            };
            let mut suffix = String::new();
            for (k, v) in &item.params {
                match (k.as_str(), v) {
                    ("req", BareItem::Boolean(true)) => suffix.push_str(";req"),
                    ("key", BareItem::String(key))
                        if !key.is_empty()
                            && key.bytes().all(|b| {
                                b.is_ascii_lowercase()
                                    || b.is_ascii_digit()
                                    || b == b'-'
                                    || b == b'_'
                            }) =>
                    {
                        suffix.push_str(&format!(";key=\"{key}\""))
                    }
                    _ => {
                        return Err(malformed(
                            "signature-input",
                            format!("component parameter `{k}` on `{name}` is not supported"),
                        ))
                    }
                }
            }
            if !supported_component(name) {
                return Err(malformed(
                    "signature-input",
                    format!("unsupported component `{name}`"),
                ));
            }
            let full = format!("{name}{suffix}");
            if components.contains(&full) {
                return Err(malformed(
                    "signature-input",
                    format!("component `{name}` listed twice"),
                ));
            }
            components.push(full);
        }
        let p = &il.params;
        let created = int_param(p, "created")?
            .ok_or_else(|| ProtocolError::MissingComponent("the `created` parameter".into()))?;
        let expires = int_param(p, "expires")?;
        if let Some(expires) = expires {
            if expires <= created {
                return Err(ProtocolError::ExpiresNotAfterCreated { created, expires });
            }
        }
        let nonce = str_param(p, "nonce")?
            .ok_or_else(|| ProtocolError::MissingComponent("the `nonce` parameter".into()))?;
        if !NONCE_LEN.contains(&nonce.len()) {
            return Err(malformed(
                "signature-input",
                "nonce must be 16-128 characters",
            ));
        }
        let keyid = str_param(p, "keyid")?.ok_or_else(|| {
            ProtocolError::MissingComponent("the `keyid` parameter (App_ID)".into())
        })?;
        if !KEYID_LEN.contains(&keyid.len()) {
            return Err(malformed(
                "signature-input",
                "keyid must be 1-128 characters",
            ));
        }
        let alg = str_param(p, "alg")?
            .ok_or_else(|| ProtocolError::MissingComponent("the `alg` parameter".into()))?;
        let signature = match sigs.get(label.as_str()) {
            Some(ListEntry::Item(Item {
                bare_item: BareItem::ByteSeq(b),
                ..
            })) => b.clone(),
            Some(_) => return Err(malformed("signature", "value must be a byte sequence")),
            None => {
                return Err(malformed(
                    "signature",
                    format!("no signature labelled `{label}`"),
                ))
            }
        };
        Ok(ParsedSignature {
            label: label.clone(),
            params_value: serialize_inner(il)?,
            params: SignatureParams {
                components,
                created,
                expires,
                nonce: nonce.to_string(),
                keyid: keyid.to_string(),
                alg: alg.to_string(),
            },
            signature,
        })
    }

    /// Check that the signature covers what the profile requires for this
    /// message.
    pub fn check_coverage(&self, has_query: bool, has_body: bool) -> Result<(), ProtocolError> {
        for c in SignatureParams::required_components(has_query, has_body) {
            if !self.params.components.contains(&c) {
                return Err(ProtocolError::MissingComponent(format!("`{c}`")));
            }
        }
        Ok(())
    }
}

/// Build the RFC 9421 signature base for `components` over `msg`, ending with
/// the `@signature-params` line whose value is `params_value`.
pub fn signature_base(
    components: &[String],
    params_value: &str,
    msg: &impl Components,
) -> Result<String, ProtocolError> {
    signature_base_with_request(components, params_value, msg, None)
}

/// The value of member `key` of a dictionary header, re-serialized (RFC 9421
/// section 2.1.2).
fn dictionary_member(value: &str, key: &str) -> Option<String> {
    let dict = Parser::parse_dictionary(value.as_bytes()).ok()?;
    let entry = dict.get(key)?;
    match entry {
        ListEntry::Item(i) => i.serialize_value().ok(),
        ListEntry::InnerList(il) => serialize_inner(il).ok(),
    }
}

/// A component's value in the signature base, as [`signature_base_with_request`]
/// writes it.
enum Value<'a> {
    /// As is.
    Plain(&'a str),
    /// ASCII lower-cased.
    Lower(&'a str),
    /// `?` followed by this.
    Query(&'a str),
    /// Computed.
    Owned(String),
}

/// Like [`signature_base`], for a response whose components may name parts of
/// the request (`;req`), such as `signature;req;key="sig1"`.
pub fn signature_base_with_request(
    components: &[String],
    params_value: &str,
    msg: &dyn Components,
    req: Option<&dyn Components>,
) -> Result<String, ProtocolError> {
    let mut base = String::with_capacity(params_value.len() + 24 + 64 * components.len());
    for c in components {
        let (name, rest) = c.split_once(';').unwrap_or((c.as_str(), ""));
        let mut from_req = false;
        let mut key = None;
        for p in rest.split(';').filter(|p| !p.is_empty()) {
            match p.split_once('=') {
                Some(("key", v)) => key = Some(v.trim_matches('"')),
                None if p == "req" => from_req = true,
                _ => return Err(ProtocolError::ComponentAbsent(c.clone())),
            }
        }
        let src: &dyn Components = if from_req {
            req.ok_or_else(|| ProtocolError::ComponentAbsent(c.clone()))?
        } else {
            msg
        };
        let absent = || ProtocolError::ComponentAbsent(c.clone());
        // The value is resolved (and may be refused) before the identifier
        // is written, as before; borrowed where the message holds it.
        let value = match name {
            "@method" => Value::Plain(src.method()),
            "@authority" => Value::Lower(src.authority().ok_or_else(absent)?),
            "@scheme" => Value::Lower(src.scheme()),
            "@path" => {
                let p = src.path();
                Value::Plain(if p.is_empty() { "/" } else { p })
            }
            "@query" => Value::Query(src.query().unwrap_or("")),
            "@status" => Value::Owned(src.status().ok_or_else(absent)?.to_string()),
            header => {
                let v = src.header(header).ok_or_else(absent)?;
                Value::Owned(match key {
                    Some(k) => dictionary_member(&v, k).ok_or_else(absent)?,
                    None => v,
                })
            }
        };
        push_component_id(&mut base, c)?;
        base.push_str(": ");
        match value {
            Value::Plain(v) => base.push_str(v),
            Value::Lower(v) => {
                let at = base.len();
                base.push_str(v);
                base[at..].make_ascii_lowercase();
            }
            Value::Query(q) => {
                base.push('?');
                base.push_str(q);
            }
            Value::Owned(v) => base.push_str(&v),
        }
        base.push('\n');
    }
    base.push_str("\"@signature-params\": ");
    base.push_str(params_value);
    Ok(base)
}

/// Sign `msg` with an HMAC algorithm; returns the `Signature-Input` and
/// `Signature` header values and the signature base (for debugging).
pub fn sign_mac(
    alg: MacAlg,
    secret: &[u8],
    params: &SignatureParams,
    msg: &impl Components,
) -> Result<(String, String, String), ProtocolError> {
    let params_value = params.serialize()?;
    let base = signature_base(&params.components, &params_value, msg)?;
    let tag = alg.mac(secret, base.as_bytes());
    let b64 = base64::engine::general_purpose::STANDARD.encode(tag);
    Ok((
        format!("{SIGNATURE_LABEL}={params_value}"),
        format!("{SIGNATURE_LABEL}=:{b64}:"),
        base,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view() -> RequestView {
        RequestView {
            method: "POST".into(),
            authority: "Gateway.Example:8443".into(),
            scheme: "https".into(),
            path: "/v1/transfers".into(),
            query: Some("a=1&b=2".into()),
            headers: vec![("content-digest".into(), "sm3=:AAAA:".into())],
        }
    }

    fn params() -> SignatureParams {
        SignatureParams {
            components: SignatureParams::required_components(true, true),
            created: 1_700_000_000,
            expires: None,
            nonce: "0123456789abcdef".into(),
            keyid: "app1".into(),
            alg: "hmac-sm3".into(),
        }
    }

    #[test]
    fn base_layout() {
        let p = params();
        let base = signature_base(&p.components, &p.serialize().unwrap(), &view()).unwrap();
        assert_eq!(
            base,
            "\"@method\": POST\n\"@authority\": gateway.example:8443\n\"@path\": /v1/transfers\n\"@query\": ?a=1&b=2\n\"content-digest\": sm3=:AAAA:\n\"@signature-params\": (\"@method\" \"@authority\" \"@path\" \"@query\" \"content-digest\");created=1700000000;nonce=\"0123456789abcdef\";keyid=\"app1\";alg=\"hmac-sm3\""
        );
    }

    #[test]
    fn sign_then_parse_round_trip() {
        let (si, s, base) = sign_mac(MacAlg::HmacSm3, b"secret", &params(), &view()).unwrap();
        let parsed = ParsedSignature::parse(&si, &s).unwrap();
        assert_eq!(parsed.params, params());
        let base2 =
            signature_base(&parsed.params.components, &parsed.params_value, &view()).unwrap();
        assert_eq!(base, base2);
        assert!(MacAlg::HmacSm3.verify(b"secret", base2.as_bytes(), &parsed.signature));
        parsed.check_coverage(true, true).unwrap();
    }

    #[test]
    fn parse_rejects_bad_input() {
        let ok_sig = "sig1=:AAAA:";
        for bad in [
            "sig1=(\"@method\");nonce=\"0123456789abcdef\";keyid=\"a\";alg=\"hmac-sm3\"",
            "sig1=(\"@method\");created=1;keyid=\"a\";alg=\"hmac-sm3\"",
            "sig1=(\"@method\");created=1;nonce=\"short\";keyid=\"a\";alg=\"hmac-sm3\"",
            "sig1=(\"@method\");created=1;nonce=\"0123456789abcdef\";alg=\"hmac-sm3\"",
            "sig1=(\"@method\");created=1;nonce=\"0123456789abcdef\";keyid=\"a\"",
            "sig1=(\"@bogus\");created=1;nonce=\"0123456789abcdef\";keyid=\"a\";alg=\"x\"",
            "sig1=(\"@method\" \"@method\");created=1;nonce=\"0123456789abcdef\";keyid=\"a\";alg=\"x\"",
            "sig1=(\"Host\");created=1;nonce=\"0123456789abcdef\";keyid=\"a\";alg=\"x\"",
            "sig1=\"x\"",
            "garbage((",
        ] {
            assert!(ParsedSignature::parse(bad, ok_sig).is_err(), "{bad}");
        }
        let good = "sig1=(\"@method\");created=1;nonce=\"0123456789abcdef\";keyid=\"a\";alg=\"x\"";
        assert!(ParsedSignature::parse(good, ok_sig).is_ok());
        assert!(ParsedSignature::parse(good, "sig2=:AAAA:").is_err());
        assert!(ParsedSignature::parse(good, "sig1=1").is_err());
        let p = ParsedSignature::parse(good, ok_sig).unwrap();
        assert!(p.check_coverage(false, false).is_err());
    }

    const GOOD_INPUT: &str =
        r#"sig1=("@method");created=1700000000;nonce="0123456789abcdef";keyid="a";alg="x""#;

    fn dup(header: &'static str, what: &'static str, key: &str) -> ProtocolError {
        ProtocolError::Duplicate {
            header,
            what,
            key: key.into(),
        }
    }

    #[test]
    fn expires_must_be_after_created() {
        let with = |expires: i64| {
            ParsedSignature::parse(
                &format!(
                    r#"sig1=("@method");created=1700000000;expires={expires};nonce="0123456789abcdef";keyid="a";alg="x""#
                ),
                "sig1=:AAAA:",
            )
        };
        for expires in [1_700_000_000, 1_699_999_999, 0, -1] {
            assert_eq!(
                with(expires).unwrap_err(),
                ProtocolError::ExpiresNotAfterCreated {
                    created: 1_700_000_000,
                    expires
                }
            );
        }
        assert_eq!(
            with(1_700_000_001).unwrap().params.expires,
            Some(1_700_000_001)
        );
        assert_eq!(
            ParsedSignature::parse(GOOD_INPUT, "sig1=:AAAA:")
                .unwrap()
                .params
                .expires,
            None
        );
    }

    /// A parameter twice in `Signature-Input` is refused, even with equal
    /// values; sfv alone would keep the last and re-serialize one.
    #[test]
    fn repeated_signature_parameter_is_refused() {
        for (param, input) in [
            (
                "created",
                r#"sig1=("@method");created=1;nonce="0123456789abcdef";keyid="a";alg="x";created=2"#,
            ),
            (
                "created",
                r#"sig1=("@method");created=1;created=1;nonce="0123456789abcdef";keyid="a";alg="x""#,
            ),
            (
                "expires",
                r#"sig1=("@method");created=1;expires=9;expires=9;nonce="0123456789abcdef";keyid="a";alg="x""#,
            ),
            (
                "nonce",
                r#"sig1=("@method");created=1;nonce="0123456789abcdef";nonce="fedcba9876543210";keyid="a";alg="x""#,
            ),
            (
                "keyid",
                r#"sig1=("@method");created=1;nonce="0123456789abcdef";keyid="a";keyid="b";alg="x""#,
            ),
            (
                "alg",
                r#"sig1=("@method");created=1;nonce="0123456789abcdef";keyid="a";alg="x";alg="hmac-sm3""#,
            ),
            (
                "tag",
                r#"sig1=("@method");created=1;nonce="0123456789abcdef";keyid="a";alg="x";tag="t";tag="t""#,
            ),
            (
                "req",
                r#"sig1=("signature";req;req;key="sig1");created=1;nonce="0123456789abcdef";keyid="a";alg="x""#,
            ),
            (
                "key",
                r#"sig1=("signature";key="sig1";key="sig2");created=1;nonce="0123456789abcdef";keyid="a";alg="x""#,
            ),
        ] {
            assert_eq!(
                ParsedSignature::parse(input, "sig1=:AAAA:").unwrap_err(),
                dup("signature-input", "parameter", param),
                "{input}"
            );
        }
        // The same parameter names on a component and on the list are fine.
        let p = ParsedSignature::parse(
            r#"sig1=("signature";key="sig1");created=1;nonce="0123456789abcdef";keyid="a";alg="x";key="k""#,
            "sig1=:AAAA:",
        )
        .unwrap();
        assert_eq!(p.params.components, [r#"signature;key="sig1""#]);
    }

    /// A label twice in either header is refused, even with equal values.
    #[test]
    fn repeated_label_is_refused() {
        let other =
            r#"sig1=("@path");created=1700000000;nonce="fedcba9876543210";keyid="b";alg="y""#;
        for input in [
            format!("{GOOD_INPUT}, {GOOD_INPUT}"),
            format!("{other}, {GOOD_INPUT}"),
            format!("{GOOD_INPUT}, sig2=(), {GOOD_INPUT}"),
        ] {
            assert_eq!(
                ParsedSignature::parse(&input, "sig1=:AAAA:").unwrap_err(),
                dup("signature-input", "member", "sig1"),
                "{input}"
            );
        }
        for sig in [
            "sig1=:AAAA:, sig1=:AAAA:",
            "sig1=:BBBB:,sig1=:AAAA:",
            "sig1=:AAAA:, sig1",
        ] {
            assert_eq!(
                ParsedSignature::parse(GOOD_INPUT, sig).unwrap_err(),
                dup("signature", "member", "sig1"),
                "{sig}"
            );
        }
        // Distinct labels: `sig1` is used, as before.
        let p = ParsedSignature::parse(
            &format!("sig2=(), {GOOD_INPUT}"),
            "sig2=:BBBB:, sig1=:AAAA:",
        )
        .unwrap();
        assert_eq!(p.label, "sig1");
        assert_eq!(p.params.keyid, "a");
    }

    /// The identifier `signature_base` writes directly is the one the
    /// serializer writes, and refused where the serializer refuses.
    #[test]
    fn component_ids_match_the_serializer() {
        for c in [
            "@method",
            "@authority",
            "content-digest",
            "x-app-id",
            "Host",
            "",
            "a b",
            "a\"b",
            "a\\b",
            "a\tb",
            "\u{7f}",
            "\u{0}",
            "é",
            "x;",
            ";",
            "signature;req",
            r#"signature;req;key="sig1""#,
            "~!#$%&'()*+,-./:<=>?@[]^_`{|}",
        ] {
            let mut out = String::from("prefix");
            let ours = push_component_id(&mut out, c).map(|()| out);
            let theirs = component_id(c).map(|id| format!("prefix{id}"));
            assert_eq!(ours, theirs, "{c:?}");
        }
    }

    /// Derived values borrowed from the message: lower-cased authority and
    /// scheme, `/` for an empty path, `?` for an absent query.
    #[test]
    fn base_derived_values() {
        let v = RequestView {
            method: "get".into(),
            authority: "API.Bank.Example:8443".into(),
            scheme: "HTTPS".into(),
            path: "".into(),
            query: None,
            headers: vec![
                ("X-Two".into(), " a ".into()),
                ("x-two".into(), "\tb".into()),
            ],
        };
        let comps: Vec<String> = [
            "@method",
            "@authority",
            "@scheme",
            "@path",
            "@query",
            "x-two",
        ]
        .iter()
        .map(|c| c.to_string())
        .collect();
        assert_eq!(
            signature_base(&comps, "()", &v).unwrap(),
            "\"@method\": get\n\"@authority\": api.bank.example:8443\n\"@scheme\": https\n\"@path\": /\n\"@query\": ?\n\"x-two\": a, b\n\"@signature-params\": ()"
        );
        assert_eq!(
            signature_base(&["x-three".to_string()], "()", &v),
            Err(ProtocolError::ComponentAbsent("x-three".into()))
        );
        assert_eq!(
            signature_base(&["@status".to_string()], "()", &v),
            Err(ProtocolError::ComponentAbsent("@status".into()))
        );
    }

    /// `@signature-params` is the canonical serialization of the member's
    /// inner list, whatever spacing the client used; the serializer that
    /// writes it from the parsed value agrees with sfv's own.
    #[test]
    fn signature_params_serialize_canonically() {
        for input in [
            r#"sig1=("@method" "@authority" "@path");created=1;nonce="n";keyid="k";alg="hmac-sm3""#,
            r#"sig1=(   "@method"   "content-digest" );created=1796006374;expires=1796006400"#,
            r#"sig1=("@status" "content-digest";req "@method";req "x";key="a-b");tag=tok;f=?0;t;b=:AAE=:;d=1.5;s="q\"\\""#,
            r#"sig1=();created=1"#,
        ] {
            let dict = Parser::parse_dictionary(input.as_bytes()).unwrap();
            let ListEntry::InnerList(il) = dict.values().next().unwrap() else {
                panic!("{input}");
            };
            let ours = serialize_inner(il).unwrap();
            let theirs = vec![ListEntry::InnerList(il.clone())]
                .serialize_value()
                .unwrap();
            assert_eq!(ours, theirs, "{input}");
        }
    }
}
