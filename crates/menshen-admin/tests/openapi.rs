//! Keeps `src/openapi.json` honest: every route registered in `router()` (read
//! from `src/lib.rs` as text, so there is no hand-kept list to drift) must be
//! documented with the same methods, nothing else may be documented, and every
//! `$ref` must resolve.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

const LIB_RS: &str = include_str!("../src/lib.rs");

/// Method-router constructors of `axum::routing`.
const METHODS: &[&str] = &[
    "get", "post", "put", "patch", "delete", "head", "options", "trace",
];

/// Route path -> HTTP methods (lower case, as OpenAPI path item keys).
type Routes = BTreeMap<String, BTreeSet<String>>;

/// Index of the `)` matching the `(` at `open`, skipping string literals.
fn matching_paren(s: &str, open: usize) -> usize {
    let b = s.as_bytes();
    assert_eq!(b[open], b'(');
    let (mut depth, mut i, mut in_str) = (0usize, open, false);
    while i < b.len() {
        match (in_str, b[i]) {
            (true, b'\\') => i += 1,
            (true, b'"') => in_str = false,
            (false, b'"') => in_str = true,
            (false, b'(') => depth += 1,
            (false, b')') => {
                depth -= 1;
                if depth == 0 {
                    return i;
                }
            }
            _ => {}
        }
        i += 1;
    }
    panic!("unbalanced parenthesis at byte {open}");
}

/// Split `s` at top-level commas.
fn split_args(s: &str) -> Vec<&str> {
    let (mut out, mut depth, mut start, mut in_str) = (Vec::new(), 0i32, 0, false);
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match (in_str, b[i]) {
            (true, b'\\') => i += 1,
            (true, b'"') => in_str = false,
            (false, b'"') => in_str = true,
            (false, b'(' | b'[' | b'{') => depth += 1,
            (false, b')' | b']' | b'}') => depth -= 1,
            (false, b',') if depth == 0 => {
                out.push(s[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    let last = s[start..].trim();
    if !last.is_empty() {
        out.push(last);
    }
    out
}

fn string_literal(arg: &str) -> String {
    let arg = arg.trim();
    assert!(
        arg.len() >= 2 && arg.starts_with('"') && arg.ends_with('"'),
        "route path must be a string literal, got `{arg}`"
    );
    arg[1..arg.len() - 1].to_string()
}

/// HTTP methods of a method-router expression like `get(a).post(b)`: every
/// identifier directly followed by `(` that is not inside an argument list.
fn methods_of(expr: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let b = expr.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i].is_ascii_alphabetic() || b[i] == b'_' {
            let start = i;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                i += 1;
            }
            let ident = &expr[start..i];
            if i < b.len() && b[i] == b'(' {
                assert!(
                    METHODS.contains(&ident),
                    "unsupported method router `{ident}(..)` in `{expr}`: teach tests/openapi.rs about it"
                );
                out.insert(ident.to_string());
                i = matching_paren(expr, i) + 1;
            }
        } else {
            i += 1;
        }
    }
    assert!(!out.is_empty(), "no HTTP method found in `{expr}`");
    out
}

/// The identifier bound by `let NAME = ` right before byte `at`, if any.
fn let_binding_before(src: &str, at: usize) -> Option<String> {
    let before = src[..at].trim_end();
    let before = before.strip_suffix('=')?.trim_end();
    let name_start = before
        .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .map_or(0, |p| p + 1);
    let name = &before[name_start..];
    let rest = before[..name_start].trim_end();
    let rest = rest.strip_suffix("mut").map_or(rest, str::trim_end);
    rest.ends_with("let").then(|| name.to_string())
}

/// Every route of a router source: `.route("PATH", get(..).post(..))` calls,
/// grouped by the `Router::new()` chain they belong to, with `.nest("PREFIX",
/// NAME)` prefixes applied to chains bound by `let NAME = Router::new()...`.
fn routes_from_source(src: &str) -> Routes {
    // Drop comment lines so doc text cannot look like code.
    let src: String = src
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .map(|l| format!("{l}\n"))
        .collect();
    for unsupported in [".route_service(", ".nest_service(", ".merge("] {
        assert!(
            !src.contains(unsupported),
            "`{unsupported}..)` in lib.rs: teach tests/openapi.rs about it"
        );
    }

    // Router chains: (start byte, binding name if `let NAME = Router::new()`).
    let chains: Vec<(usize, Option<String>)> = src
        .match_indices("Router::new()")
        .map(|(at, _)| (at, let_binding_before(&src, at)))
        .collect();
    assert!(!chains.is_empty(), "no Router::new() in lib.rs");
    let chain_of = |at: usize| {
        chains
            .iter()
            .rev()
            .find(|(start, _)| *start < at)
            .unwrap_or_else(|| panic!("call at byte {at} is outside any Router::new() chain"))
    };

    // Calls `.NAME(args)` with their arguments.
    let calls = |name: &str| -> Vec<(usize, Vec<String>)> {
        let pat = format!(".{name}(");
        src.match_indices(&pat)
            .map(|(at, _)| {
                let open = at + pat.len() - 1;
                let close = matching_paren(&src, open);
                let args = split_args(&src[open + 1..close])
                    .into_iter()
                    .map(str::to_string)
                    .collect();
                (at, args)
            })
            .collect()
    };

    // Prefix of each named router (nesting may be several levels deep).
    let mut nested: BTreeMap<String, (String, Option<String>)> = BTreeMap::new();
    for (at, args) in calls("nest") {
        assert_eq!(args.len(), 2, "unexpected .nest(..) call: {args:?}");
        let parent = chain_of(at).1.clone();
        nested.insert(args[1].clone(), (string_literal(&args[0]), parent));
    }
    let prefix_of = |name: &Option<String>| -> String {
        let mut prefix = String::new();
        let mut cur = name.clone();
        let mut hops = 0;
        while let Some(n) = cur {
            match nested.get(&n) {
                Some((p, parent)) => {
                    prefix = format!("{p}{prefix}");
                    cur = parent.clone();
                }
                None => panic!("router `{n}` is built but never nested"),
            }
            hops += 1;
            assert!(hops < 16, "nesting cycle");
        }
        prefix
    };

    let mut routes = Routes::new();
    for (at, args) in calls("route") {
        assert_eq!(args.len(), 2, "unexpected .route(..) call: {args:?}");
        let path = format!("{}{}", prefix_of(&chain_of(at).1), string_literal(&args[0]));
        let methods = methods_of(&args[1]);
        let entry = routes.entry(path.clone()).or_default();
        for m in methods {
            assert!(entry.insert(m.clone()), "{m} {path} registered twice");
        }
    }
    routes
}

fn spec() -> Value {
    serde_json::from_str(menshen_admin::OPENAPI).expect("src/openapi.json is valid JSON")
}

/// Operations documented in `paths` (path-item keys that are HTTP methods).
fn documented(spec: &Value) -> Routes {
    let paths = spec["paths"].as_object().expect("`paths` is an object");
    paths
        .iter()
        .map(|(path, item)| {
            let item = item.as_object().expect("path item is an object");
            let methods = item
                .keys()
                .filter(|k| METHODS.contains(&k.as_str()))
                .cloned()
                .collect();
            (path.clone(), methods)
        })
        .collect()
}

/// Human-readable differences between the router and the document.
fn drift(router: &Routes, doc: &Routes) -> Vec<String> {
    let mut out = Vec::new();
    for (path, methods) in router {
        let have = doc.get(path).cloned().unwrap_or_default();
        for m in methods.difference(&have) {
            out.push(format!("undocumented route: {} {path}", m.to_uppercase()));
        }
    }
    for (path, methods) in doc {
        let have = router.get(path).cloned().unwrap_or_default();
        if methods.is_empty() {
            out.push(format!("documented path without operations: {path}"));
        }
        for m in methods.difference(&have) {
            out.push(format!(
                "documented but not routed: {} {path}",
                m.to_uppercase()
            ));
        }
    }
    out
}

#[test]
fn document_is_openapi_3() {
    let spec = spec();
    let version = spec["openapi"].as_str().expect("`openapi` is a string");
    assert!(version.starts_with("3."), "openapi version {version}");
    assert_eq!(spec["info"]["title"], "Menshen admin API");
    assert!(spec["info"]["version"].is_string());
    let desc = spec["info"]["description"].as_str().unwrap_or_default();
    assert!(desc.contains("Authorization: Bearer <admin token>"));
    assert!(desc.contains("menshen admin init"));
}

#[test]
fn router_parser_sees_known_routes() {
    let routes = routes_from_source(LIB_RS);
    let has = |m: &str, p: &str| routes.get(p).is_some_and(|s| s.contains(m));
    assert!(has("get", "/healthz"));
    assert!(has("get", "/openapi.json"));
    assert!(has("get", "/v1/apps") && has("post", "/v1/apps"));
    assert!(has("delete", "/v1/grants/{app_id}/{api_id}"));
    assert!(routes.len() >= 20, "only {} routes parsed", routes.len());
}

#[test]
fn every_route_is_documented_and_nothing_else() {
    let drift = drift(&routes_from_source(LIB_RS), &documented(&spec()));
    assert!(
        drift.is_empty(),
        "src/openapi.json does not match router() in src/lib.rs:\n  {}",
        drift.join("\n  ")
    );
}

#[test]
fn an_added_route_would_be_caught() {
    let grown = LIB_RS.replacen(
        ".route(\"/bank-keys\", get(list_bank_keys))",
        ".route(\"/bank-keys\", get(list_bank_keys))\n        .route(\"/audit\", get(x).put(y))",
        1,
    );
    assert_ne!(grown, LIB_RS, "test fixture out of date: no /bank-keys route");
    let drift = drift(&routes_from_source(&grown), &documented(&spec()));
    assert!(drift.contains(&"undocumented route: GET /v1/audit".to_string()));
    assert!(drift.contains(&"undocumented route: PUT /v1/audit".to_string()));
}

#[test]
fn security_applies_to_v1_only() {
    let spec = spec();
    let scheme = &spec["components"]["securitySchemes"]["bearerAuth"];
    assert_eq!(scheme["type"], "http");
    assert_eq!(scheme["scheme"], "bearer");
    let global_bearer = spec["security"]
        .as_array()
        .is_some_and(|a| a.iter().any(|r| r.get("bearerAuth").is_some()));
    for (path, methods) in documented(&spec) {
        for m in methods {
            let op = &spec["paths"][&path][&m];
            let bearer = match op.get("security") {
                Some(sec) => sec
                    .as_array()
                    .expect("security is an array")
                    .iter()
                    .any(|r| r.get("bearerAuth").is_some()),
                None => global_bearer,
            };
            assert_eq!(
                bearer,
                path.starts_with("/v1/"),
                "{m} {path}: bearer auth must apply exactly to /v1/..."
            );
            if path.starts_with("/v1/") {
                assert!(
                    op["responses"].get("401").is_some(),
                    "{m} {path}: no 401 response"
                );
            }
        }
    }
}

#[test]
fn path_parameters_are_declared() {
    let spec = spec();
    for (path, methods) in documented(&spec) {
        let item = &spec["paths"][&path];
        let wanted: BTreeSet<&str> = path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{')?.strip_suffix('}'))
            .collect();
        for m in methods {
            let mut declared = BTreeSet::new();
            for list in [&item["parameters"], &item[&m]["parameters"]] {
                for p in list.as_array().into_iter().flatten() {
                    if p["in"] == "path" {
                        assert_eq!(p["required"], true, "{m} {path}: path parameter not required");
                        declared.insert(p["name"].as_str().expect("parameter name"));
                    }
                }
            }
            assert_eq!(declared, wanted, "{m} {path}: path parameters");
            assert!(
                item[&m]["responses"].as_object().is_some_and(|r| !r.is_empty()),
                "{m} {path}: no responses"
            );
        }
    }
}

fn collect_refs<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
    match v {
        Value::Object(map) => {
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("$ref", Value::String(r)) => out.push(r),
                    _ => collect_refs(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_refs(v, out)),
        _ => {}
    }
}

#[test]
fn every_ref_resolves() {
    let spec = spec();
    let mut refs = Vec::new();
    collect_refs(&spec, &mut refs);
    assert!(!refs.is_empty());
    for r in refs {
        let pointer = r
            .strip_prefix('#')
            .unwrap_or_else(|| panic!("external $ref {r}"));
        assert!(
            pointer.starts_with("/components/"),
            "$ref {r} is not a component"
        );
        assert!(spec.pointer(pointer).is_some(), "$ref {r} does not resolve");
    }
    let error = &spec["components"]["schemas"]["Error"];
    for field in ["code", "message", "field"] {
        assert!(error["properties"].get(field).is_some(), "Error.{field}");
    }
}
