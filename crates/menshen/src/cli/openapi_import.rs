//! `menshen api import openapi.yaml` (LVL-5): an OpenAPI 3.0/3.1 document
//! (YAML or JSON) becomes catalog APIs with their schemas.
//!
//! Each operation (`get`, `post`, `put`, `patch`, `delete` under `paths`)
//! is one API:
//! - `api_id`: the operation's `x-menshen-api-id`, else its `operationId`;
//! - `path`: the path as written (OpenAPI's `{param}` is Menshen's syntax);
//! - `name`: the `summary`; `level`, `category`, `subcategory`,
//!   `upstream`: the operation's `x-menshen-level`, `x-menshen-category`,
//!   `x-menshen-subcategory`, `x-menshen-upstream`, else the command's
//!   options;
//! - the query schema: one object whose properties are the `in: query`
//!   parameters (path-level and operation-level), `required` from theirs,
//!   no other parameter allowed; the body schema: `requestBody`'s
//!   `application/json` schema (`null` allowed when the body is not
//!   required); the response schema: the `200`/`201` answer's;
//! - `x-menshen-screening` (`off`, `detect`, `block`) and
//!   `x-menshen-mask` (a list of `{pointer, kind}`) set those controls.
//!
//! References: `#/components/schemas/X` becomes `#/$defs/X` with every
//! component schema under `$defs`; `#/components/parameters/X` and
//! `#/components/requestBodies/X` are inlined. Any other reference (another
//! file, a URL) is refused: nothing is fetched. OpenAPI 3.0's
//! `nullable: true` becomes a `"null"` type.

use anyhow::{anyhow, bail, Context};
use serde_json::{json, Map, Value};

/// What the command's options give where an operation says nothing.
#[derive(Debug, Clone, Default)]
pub struct Defaults {
    /// Upstream base URL.
    pub upstream: Option<String>,
    /// Security level (`A1`...).
    pub level: Option<String>,
    /// First-level category.
    pub category: Option<u8>,
    /// Second-level category.
    pub subcategory: Option<u16>,
    /// Interface version.
    pub version: String,
}

/// One API to create (or whose controls to update).
#[derive(Debug, Clone)]
pub struct Imported {
    /// The `NewApi` body for `POST /v1/apis`.
    pub new_api: Value,
    /// The `ProtectionPatch` for an API that exists already.
    pub patch: Value,
}

/// Parse a document: JSON if it parses as JSON, else YAML.
pub fn parse_document(text: &str) -> anyhow::Result<Value> {
    if let Ok(v) = serde_json::from_str::<Value>(text) {
        return Ok(v);
    }
    serde_yaml_ng::from_str::<Value>(text).context("not a YAML or JSON document")
}

const METHODS: &[&str] = &["get", "post", "put", "patch", "delete"];

/// Every operation of `doc` as an API.
pub fn plan(doc: &Value, d: &Defaults) -> anyhow::Result<Vec<Imported>> {
    let version = doc.get("openapi").and_then(Value::as_str).unwrap_or("");
    if !version.starts_with("3.") {
        bail!("not an OpenAPI 3 document (`openapi: 3.x` missing)");
    }
    let defs = match doc.pointer("/components/schemas") {
        Some(Value::Object(m)) => {
            let mut out = Map::new();
            for (k, v) in m {
                out.insert(k.clone(), convert(v, doc, 0)?);
            }
            Some(Value::Object(out))
        }
        _ => None,
    };
    let paths = doc
        .get("paths")
        .and_then(Value::as_object)
        .ok_or_else(|| anyhow!("the document has no `paths`"))?;
    let mut out = vec![];
    for (path, item) in paths {
        let shared: Vec<Value> = item
            .get("parameters")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        for m in METHODS {
            let Some(op) = item.get(*m) else { continue };
            out.push(
                operation(path, m, op, &shared, doc, defs.as_ref(), d)
                    .with_context(|| format!("{} {path}", m.to_ascii_uppercase()))?,
            );
        }
    }
    if out.is_empty() {
        bail!("the document has no operations");
    }
    Ok(out)
}

fn ext<'a>(op: &'a Value, name: &str) -> Option<&'a Value> {
    op.get(format!("x-menshen-{name}"))
}

fn operation(
    path: &str,
    method: &str,
    op: &Value,
    shared: &[Value],
    doc: &Value,
    defs: Option<&Value>,
    d: &Defaults,
) -> anyhow::Result<Imported> {
    let api_id = ext(op, "api-id")
        .or_else(|| op.get("operationId"))
        .and_then(Value::as_str)
        .ok_or_else(|| anyhow!("no operationId (or x-menshen-api-id) to name the API"))?
        .to_string();
    let upstream = ext(op, "upstream")
        .and_then(Value::as_str)
        .map(str::to_string)
        .or_else(|| d.upstream.clone())
        .ok_or_else(|| anyhow!("no upstream: pass --upstream or set x-menshen-upstream"))?;
    let level = ext(op, "level")
        .and_then(Value::as_str)
        .map(str::to_string)
        .or_else(|| d.level.clone())
        .unwrap_or_else(|| "A1".into())
        .to_ascii_uppercase();
    let category = ext(op, "category")
        .and_then(Value::as_u64)
        .or(d.category.map(u64::from))
        .ok_or_else(|| anyhow!("no category: pass --category or set x-menshen-category"))?;
    let subcategory = ext(op, "subcategory")
        .and_then(Value::as_u64)
        .or(d.subcategory.map(u64::from))
        .unwrap_or(1);

    // Query parameters: path-level first, an operation's own of the same
    // name replaces it.
    let mut params: Vec<Value> = vec![];
    for p in shared.iter().chain(
        op.get("parameters")
            .and_then(Value::as_array)
            .into_iter()
            .flatten(),
    ) {
        let p = resolve(p, doc)?;
        let key = (p.get("name").cloned(), p.get("in").cloned());
        params.retain(|x| (x.get("name").cloned(), x.get("in").cloned()) != key);
        params.push(p);
    }
    let mut props = Map::new();
    let mut required = vec![];
    for p in params
        .iter()
        .filter(|p| p.get("in").and_then(Value::as_str) == Some("query"))
    {
        let name = p
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| anyhow!("a query parameter without a name"))?;
        let schema = p
            .get("schema")
            .cloned()
            .unwrap_or(json!({"type": "string"}));
        props.insert(name.to_string(), convert(&schema, doc, 0)?);
        if p.get("required").and_then(Value::as_bool) == Some(true) {
            required.push(json!(name));
        }
    }
    let mut schema = Map::new();
    if !props.is_empty() || method == "get" || method == "delete" {
        let mut q = json!({"type": "object", "properties": props, "additionalProperties": false});
        if !required.is_empty() {
            q["required"] = Value::Array(required);
        }
        schema.insert("query".into(), with_defs(q, defs));
    }
    if let Some(rb) = op.get("requestBody") {
        let rb = resolve(rb, doc)?;
        if let Some(s) = rb.pointer("/content/application~1json/schema") {
            let mut s = convert(s, doc, 0)?;
            if rb.get("required").and_then(Value::as_bool) != Some(true) {
                s = json!({"anyOf": [{"type": "null"}, s]});
            }
            schema.insert("body".into(), with_defs(s, defs));
        }
    }
    for code in ["200", "201"] {
        if let Some(s) = op.pointer(&format!(
            "/responses/{code}/content/application~1json/schema"
        )) {
            schema.insert("response".into(), with_defs(convert(s, doc, 0)?, defs));
            break;
        }
    }
    let mut patch = json!({ "schema": schema });
    if let Some(m) = ext(op, "screening").and_then(Value::as_str) {
        patch["screening"] = json!({ "mode": m });
    }
    if let Some(m) = ext(op, "mask") {
        patch["response_mask"] = json!({ "fields": m });
    }
    let controls = patch.clone();
    let new_api = json!({
        "api_id": api_id,
        "version": d.version,
        "name": op.get("summary").and_then(Value::as_str).map(|s| s.chars().take(128).collect::<String>()),
        "method": method.to_ascii_uppercase(),
        "path": path,
        "upstream": upstream,
        "level": level,
        "category": category,
        "subcategory": subcategory,
        "controls": controls,
    });
    Ok(Imported { new_api, patch })
}

/// `s` with the component schemas under `$defs` when it refers to any.
fn with_defs(mut s: Value, defs: Option<&Value>) -> Value {
    if let (Some(defs), Some(o)) = (defs, s.as_object_mut()) {
        if s_refers(o) {
            o.insert("$defs".into(), defs.clone());
        }
    }
    s
}

fn s_refers(o: &Map<String, Value>) -> bool {
    Value::Object(o.clone()).to_string().contains("#/$defs/")
}

/// A parameter or request body, following a local component reference.
fn resolve(v: &Value, doc: &Value) -> anyhow::Result<Value> {
    match v.get("$ref").and_then(Value::as_str) {
        None => Ok(v.clone()),
        Some(r) => {
            let p = r.strip_prefix('#').ok_or_else(|| {
                anyhow!("reference `{r}` is not inside this document: refused (nothing is fetched)")
            })?;
            doc.pointer(p)
                .cloned()
                .ok_or_else(|| anyhow!("reference `{r}` does not resolve"))
        }
    }
}

/// An OpenAPI schema as JSON Schema: component references rewritten,
/// `nullable` folded into `type`, other references refused.
fn convert(v: &Value, doc: &Value, depth: usize) -> anyhow::Result<Value> {
    if depth > 64 {
        bail!("schema nested deeper than 64 levels");
    }
    Ok(match v {
        Value::Object(m) => {
            let mut out = Map::new();
            for (k, x) in m {
                if k == "$ref" {
                    let r = x.as_str().unwrap_or("");
                    if let Some(name) = r.strip_prefix("#/components/schemas/") {
                        out.insert(k.clone(), json!(format!("#/$defs/{name}")));
                        continue;
                    }
                    if r.starts_with('#') {
                        // Another local place: inline it.
                        let target = resolve(v, doc)?;
                        return convert(&target, doc, depth + 1);
                    }
                    bail!(
                        "reference `{r}` is not inside this document: refused (nothing is fetched)"
                    );
                }
                if k == "nullable" {
                    continue;
                }
                out.insert(k.clone(), convert(x, doc, depth + 1)?);
            }
            if m.get("nullable").and_then(Value::as_bool) == Some(true) {
                match out.get("type").cloned() {
                    Some(Value::String(t)) => {
                        out.insert("type".into(), json!([t, "null"]));
                    }
                    Some(Value::Array(mut a)) if !a.contains(&json!("null")) => {
                        a.push(json!("null"));
                        out.insert("type".into(), Value::Array(a));
                    }
                    _ => {}
                }
            }
            Value::Object(out)
        }
        Value::Array(a) => Value::Array(
            a.iter()
                .map(|x| convert(x, doc, depth + 1))
                .collect::<anyhow::Result<_>>()?,
        ),
        other => other.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = r##"
openapi: 3.0.3
info: {title: demo, version: "1.0"}
components:
  schemas:
    Party:
      type: object
      required: [account, name]
      properties:
        account: {type: string, pattern: "^[0-9]{12,20}$"}
        name: {type: string, maxLength: 64}
        remark: {type: string, nullable: true}
  parameters:
    Page: {name: page, in: query, schema: {type: integer, minimum: 1}}
paths:
  /v1/products:
    get:
      operationId: product-list
      summary: Product list
      x-menshen-screening: block
      parameters:
        - $ref: "#/components/parameters/Page"
        - {name: q, in: query, required: true, schema: {type: string, maxLength: 64}}
      responses:
        "200": {description: ok}
  /v1/transfers:
    post:
      operationId: transfer
      x-menshen-level: A3
      x-menshen-category: 2
      requestBody:
        required: true
        content:
          application/json:
            schema:
              type: object
              required: [payee, amount]
              properties:
                payee: {$ref: "#/components/schemas/Party"}
                amount: {type: string}
      responses:
        "200": {description: ok}
"##;

    #[test]
    fn lvl_5_openapi_operations_become_apis_with_schemas() {
        let doc = parse_document(DOC).unwrap();
        let d = Defaults {
            upstream: Some("http://127.0.0.1:9".into()),
            category: Some(3),
            version: "v1".into(),
            ..Default::default()
        };
        let apis = plan(&doc, &d).unwrap();
        assert_eq!(apis.len(), 2);
        let list = &apis[0].new_api;
        assert_eq!(list["api_id"], "product-list");
        assert_eq!(list["level"], "A1");
        assert_eq!(list["controls"]["screening"]["mode"], "block");
        let q = &list["controls"]["schema"]["query"];
        assert_eq!(q["properties"]["page"]["type"], "integer");
        assert_eq!(q["required"], json!(["q"]));
        assert_eq!(q["additionalProperties"], false);
        let t = &apis[1].new_api;
        assert_eq!(t["level"], "A3");
        assert_eq!(t["category"], 2);
        let body = &t["controls"]["schema"]["body"];
        assert_eq!(body["properties"]["payee"]["$ref"], "#/$defs/Party");
        assert_eq!(
            body["$defs"]["Party"]["properties"]["remark"]["type"],
            json!(["string", "null"])
        );
        // The result is a schema the model accepts.
        let s: menshen_model::ApiSchema =
            serde_json::from_value(t["controls"]["schema"].clone()).unwrap();
        s.validate().unwrap();
    }

    #[test]
    fn lvl_5_remote_references_are_refused() {
        let doc = parse_document(
            r#"{"openapi":"3.1.0","paths":{"/x":{"post":{"operationId":"x",
            "requestBody":{"content":{"application/json":{"schema":{"$ref":"https://evil.example/s.json"}}}}}}}}"#,
        )
        .unwrap();
        let d = Defaults {
            upstream: Some("http://127.0.0.1:9".into()),
            category: Some(3),
            version: "v1".into(),
            ..Default::default()
        };
        let e = plan(&doc, &d).unwrap_err();
        assert!(
            format!("{e:#}").contains("not inside this document"),
            "{e:#}"
        );
    }
}
