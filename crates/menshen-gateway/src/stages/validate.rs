//! Validate (LVL-5): the query parameters and the JSON body against the
//! API's schemas, after decryption (the schema sees plaintext) and before
//! anything reaches the upstream. The validators are compiled when the
//! snapshot is built ([`CompiledSchema::compile`]), never per request.
//!
//! A refusal is 400 `INVALID_REQUEST` whose `pointer` names the failing
//! field in a virtual document `{"query": {...}, "body": ...}`
//! (`/query/page`, `/body/payee/amount`; for a missing required member,
//! the member itself), and nothing else: the message never quotes the
//! schema, its keywords or its limits.
//!
//! Response phase (`validate_response`): where the API also carries a
//! response schema, the upstream's successful (2xx) answer is checked
//! against it before masking, encryption and signing. An answer that does
//! not match is withheld: the client gets 502 `UPSTREAM_RESPONSE_INVALID`
//! (the bank's side is at fault, the upstream may have acted), with nothing
//! of the schema or of the upstream's body; the access record names the
//! code and the failing pointer. So is an answer that is not JSON: not
//! labelled `application/json` (or `+json`), not UTF-8, nested deeper than
//! the parser's limit (128). The answer was already bounded by
//! `gateway.max_response_bytes` and the upstream timeout.

use std::collections::HashMap;
use std::marker::PhantomData;

use bytes::Bytes;
use http::Response;

use menshen_model::ApiSchema;
use serde_json::{Map, Value};

use super::authorize::Authorized;
use super::route::Routed;
use crate::exchange::Exchange;
use crate::GatewayError;

/// Stage name.
pub const NAME: &str = "validate";

/// Stage name of the response check (response phase).
pub const NAME_RESPONSE: &str = "validate_response";

/// Proof that the request matches the API's schemas (or it has none).
pub struct Validated {
    /// Private: no other module can make this proof.
    _sealed: PhantomData<()>,
}

/// How a query parameter's text becomes a JSON value, from the type its
/// schema property declares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum QueryType {
    Integer,
    Number,
    Boolean,
    Array,
}

/// An API's schemas, compiled once per snapshot.
pub struct CompiledSchema {
    query: Option<(jsonschema::Validator, HashMap<String, QueryType>)>,
    body: Option<jsonschema::Validator>,
    response: Option<jsonschema::Validator>,
}

impl std::fmt::Debug for CompiledSchema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompiledSchema")
            .field("query", &self.query.is_some())
            .field("body", &self.body.is_some())
            .field("response", &self.response.is_some())
            .finish()
    }
}

impl CompiledSchema {
    /// Compile an API's schemas (checked when the API was saved); `Err`
    /// names the part that does not compile.
    pub fn compile(s: &ApiSchema) -> Result<Option<CompiledSchema>, String> {
        if s.query.is_none() && s.body.is_none() && s.response.is_none() {
            return Ok(None);
        }
        let query = match &s.query {
            Some(q) => Some((
                menshen_model::compile_schema(q).map_err(|e| format!("query schema {e}"))?,
                query_types(q),
            )),
            None => None,
        };
        let body = match &s.body {
            Some(b) => {
                Some(menshen_model::compile_schema(b).map_err(|e| format!("body schema {e}"))?)
            }
            None => None,
        };
        let response = match &s.response {
            Some(r) => {
                Some(menshen_model::compile_schema(r).map_err(|e| format!("response schema {e}"))?)
            }
            None => None,
        };
        Ok(Some(CompiledSchema {
            query,
            body,
            response,
        }))
    }
}

/// The declared types of the query schema's top-level properties.
fn query_types(schema: &Value) -> HashMap<String, QueryType> {
    let mut out = HashMap::new();
    let Some(props) = schema.get("properties").and_then(Value::as_object) else {
        return out;
    };
    for (name, p) in props {
        let ty = match p.get("type") {
            Some(Value::String(t)) => Some(t.as_str()),
            // ["integer", "null"]: the first non-null type.
            Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).find(|t| *t != "null"),
            _ => None,
        };
        let q = match ty {
            Some("integer") => QueryType::Integer,
            Some("number") => QueryType::Number,
            Some("boolean") => QueryType::Boolean,
            Some("array") => QueryType::Array,
            _ => continue,
        };
        out.insert(name.clone(), q);
    }
    out
}

/// One parameter's text as JSON: a number or boolean where declared and
/// parseable (else the string, which the schema then refuses).
fn typed(t: Option<QueryType>, s: String) -> Value {
    match t {
        Some(QueryType::Integer) => s
            .parse::<i64>()
            .map(Value::from)
            .unwrap_or(Value::String(s)),
        Some(QueryType::Number) => match s.parse::<f64>() {
            Ok(f) if f.is_finite() => serde_json::Number::from_f64(f)
                .map(Value::Number)
                .unwrap_or(Value::String(s)),
            _ => Value::String(s),
        },
        Some(QueryType::Boolean) => match s.as_str() {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            _ => Value::String(s),
        },
        _ => Value::String(s),
    }
}

/// The query string as the object the query schema sees.
fn query_object(query: &str, types: &HashMap<String, QueryType>) -> Value {
    let mut m = Map::new();
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        let t = types.get(k.as_ref()).copied();
        let k = k.into_owned();
        match (t, m.get_mut(&k)) {
            (Some(QueryType::Array), Some(Value::Array(a))) => {
                a.push(Value::String(v.into_owned()))
            }
            (Some(QueryType::Array), _) => {
                m.insert(k, Value::Array(vec![Value::String(v.into_owned())]));
            }
            // A parameter sent twice that is not an array: the schema sees
            // both (and refuses them unless it allows an array).
            (_, Some(prev)) => {
                let first = prev.take();
                *prev = Value::Array(vec![first, typed(t, v.into_owned())]);
            }
            (_, None) => {
                m.insert(k, typed(t, v.into_owned()));
            }
        }
    }
    Value::Object(m)
}

/// The pointer of the first error of `v` against `validator`, if any.
fn first_error(validator: &jsonschema::Validator, v: &Value) -> Option<String> {
    let e = validator.iter_errors(v).next()?;
    let mut p = e.instance_path().as_str().to_string();
    if let jsonschema::error::ValidationErrorKind::Required { property } = e.kind() {
        if let Some(name) = property.as_str() {
            p.push('/');
            p.push_str(&name.replace('~', "~0").replace('/', "~1"));
        }
    }
    Some(p)
}

/// `p` kept to 256 bytes (on a character boundary).
fn truncated(mut p: String) -> String {
    if p.len() > 256 {
        let mut end = 256;
        while !p.is_char_boundary(end) {
            end -= 1;
        }
        p.truncate(end);
    }
    p
}

/// A refusal naming `pointer` (kept to 256 characters).
fn invalid(pointer: String) -> GatewayError {
    let p = truncated(pointer);
    GatewayError::InvalidRequest {
        reason: format!("schema: {p} does not match"),
        pointer: p,
    }
}

/// Check the query and body against the API's compiled schemas. The
/// authorization server's endpoints have none.
pub fn on_request(
    ex: &Exchange,
    routed: &Routed,
    _authorized: &Authorized,
) -> Result<Validated, GatewayError> {
    let ok = Validated {
        _sealed: PhantomData,
    };
    let Some(schema) = &routed.api.schema else {
        return Ok(ok);
    };
    if let Some((validator, types)) = &schema.query {
        let q = query_object(ex.parts.uri.query().unwrap_or(""), types);
        if let Some(p) = first_error(validator, &q) {
            return Err(invalid(format!("/query{p}")));
        }
    }
    if let Some(validator) = &schema.body {
        let body = if ex.body.is_empty() {
            Value::Null
        } else {
            match serde_json::from_slice::<Value>(&ex.body) {
                Ok(v) => v,
                Err(_) => return Err(invalid("/body".into())),
            }
        };
        if let Some(p) = first_error(validator, &body) {
            return Err(invalid(format!("/body{p}")));
        }
    }
    Ok(ok)
}

/// Check the upstream's successful answer against the API's response
/// schema, if it has one (response phase, before `mask`). Answers that are
/// not 2xx are the upstream's errors and pass unchecked (the schema
/// describes the success answer); so does a fallback answer, which is the
/// bank's own configuration and not the upstream's.
pub fn on_response(routed: &Routed, resp: &Response<Bytes>) -> Result<(), GatewayError> {
    let Some(validator) = routed.api.schema.as_ref().and_then(|s| s.response.as_ref()) else {
        return Ok(());
    };
    if !resp.status().is_success()
        || resp
            .headers()
            .contains_key(super::upstream::DEGRADED_HEADER)
    {
        return Ok(());
    }
    // The schema describes a JSON answer: a body must say it is JSON, or a
    // schema-valid body could reach the app labelled as something else
    // (`text/html` with markup inside JSON strings, for a browser or a web
    // view to render).
    if !resp.body().is_empty() && !is_json(resp.headers()) {
        return Err(GatewayError::UpstreamResponseInvalid(
            "the upstream's answer is not labelled JSON (content-type); the API has a response schema"
                .into(),
        ));
    }
    // The answer may hold fields the `encrypt` stage is about to seal: the
    // parsed copy is wiped when dropped (CONF-4).
    let body = menshen_protocol::envelope::PlainBody(if resp.body().is_empty() {
        Value::Null
    } else {
        match serde_json::from_slice::<Value>(resp.body()) {
            Ok(v) => v,
            Err(_) => {
                return Err(GatewayError::UpstreamResponseInvalid(
                    "the upstream's answer is not JSON; the API has a response schema".into(),
                ))
            }
        }
    });
    match first_error(validator, &body) {
        None => Ok(()),
        Some(p) => Err(GatewayError::UpstreamResponseInvalid(format!(
            "the upstream's answer does not match the API's response schema at {}",
            truncated(p)
        ))),
    }
}

/// Whether an answer claims to be JSON: labelled so (`Content-Type`), or
/// shaped so (its first byte after blanks and a UTF-8 byte-order mark opens
/// an object or an array). The response stages that address fields by
/// pointer (`mask`, `encrypt`) withhold such an answer when it does not
/// parse (a lone surrogate escape, nesting beyond the parser's limit, a
/// byte-order mark) instead of passing it on unread: its listed fields
/// would reach the app in clear (CONF-1, CONF-3).
pub(crate) fn claims_json(resp: &Response<Bytes>) -> bool {
    if is_json(resp.headers()) {
        return true;
    }
    let body: &[u8] = resp.body();
    let body = body.strip_prefix(b"\xef\xbb\xbf").unwrap_or(body);
    body.iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|b| *b == b'{' || *b == b'[')
}

/// Whether `Content-Type` is `application/json` or `application/<x>+json`
/// (parameters such as `charset` allowed).
fn is_json(h: &http::HeaderMap) -> bool {
    let Some(v) = h
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = v
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match essence.strip_prefix("application/") {
        Some(sub) => sub == "json" || (sub.ends_with("+json") && sub.len() > 5),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn compiled(s: ApiSchema) -> CompiledSchema {
        CompiledSchema::compile(&s).unwrap().unwrap()
    }

    #[test]
    fn lvl_5_query_parameters_are_typed_by_the_schema() {
        let c = compiled(ApiSchema {
            query: Some(json!({
                "type": "object",
                "properties": {
                    "page": {"type": "integer", "minimum": 1},
                    "tag": {"type": "array", "items": {"type": "string"}},
                    "q": {"type": "string", "maxLength": 8}
                },
                "required": ["page"],
                "additionalProperties": false
            })),
            ..Default::default()
        });
        let (v, t) = c.query.as_ref().unwrap();
        let ok = query_object("page=2&tag=a&tag=b&q=%E5%BC%A0+x", t);
        assert_eq!(ok, json!({"page": 2, "tag": ["a", "b"], "q": "张 x"}));
        assert_eq!(first_error(v, &ok), None);
        assert_eq!(first_error(v, &query_object("page=x", t)).unwrap(), "/page");
        assert_eq!(first_error(v, &query_object("q=a", t)).unwrap(), "/page");
        assert_eq!(
            first_error(v, &query_object("page=1&q=123456789", t)).unwrap(),
            "/q"
        );
    }

    #[test]
    fn lvl_5_required_member_is_named_by_its_own_pointer() {
        let c = compiled(ApiSchema {
            body: Some(json!({
                "type": "object",
                "properties": {"payee": {"type": "object", "required": ["account/no"]}},
                "required": ["payee"]
            })),
            ..Default::default()
        });
        let v = c.body.as_ref().unwrap();
        assert_eq!(first_error(v, &json!({})).unwrap(), "/payee");
        assert_eq!(
            first_error(v, &json!({"payee": {}})).unwrap(),
            "/payee/account~1no"
        );
    }
}
