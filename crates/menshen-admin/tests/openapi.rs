//! The OpenAPI document matches the router: every route is documented with its
//! methods, nothing is documented that the router lacks, and every `$ref`
//! resolves. Routes are read from the router's source, so adding a route
//! without documenting it fails here.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

fn routes_from_source() -> BTreeMap<String, BTreeSet<String>> {
    let src = include_str!("../src/lib.rs");
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let v1_start = src.find("let v1 = Router::new()").expect("v1 router");
    let v1_end = src[v1_start..]
        .find(".route_layer(")
        .map(|i| i + v1_start)
        .expect("v1 router end");
    for (i, _) in src.match_indices(".route(") {
        // The argument list, up to the matching parenthesis (rustfmt may
        // spread it over several lines).
        let args_start = i + ".route(".len();
        let mut depth = 1;
        let mut end = args_start;
        for (k, ch) in src[args_start..].char_indices() {
            match ch {
                '(' => depth += 1,
                ')' => {
                    depth -= 1;
                    if depth == 0 {
                        end = args_start + k;
                        break;
                    }
                }
                _ => {}
            }
        }
        let args = &src[args_start..end];
        let q1 = args.find('"').expect("path literal");
        let q2 = q1 + 1 + args[q1 + 1..].find('"').unwrap();
        let path = &args[q1 + 1..q2];
        let handlers = &args[q2 + 1..];
        let full = if i > v1_start && i < v1_end {
            format!("/v1{path}")
        } else {
            path.to_string()
        };
        for m in ["get", "post", "put", "patch", "delete"] {
            let called = handlers.match_indices(&format!("{m}(")).any(|(k, _)| {
                k == 0
                    || !handlers.as_bytes()[k - 1].is_ascii_alphanumeric()
                        && handlers.as_bytes()[k - 1] != b'_'
            });
            if called {
                out.entry(full.clone()).or_default().insert(m.to_string());
            }
        }
    }
    out
}

fn refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                if k == "$ref" {
                    out.push(x.as_str().unwrap().to_string());
                } else {
                    refs(x, out);
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| refs(x, out)),
        _ => {}
    }
}

#[test]
fn adm_2_openapi_document_matches_the_router() {
    let doc: Value = serde_json::from_str(menshen_admin::OPENAPI).expect("valid JSON");
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let routes = routes_from_source();
    assert!(routes.len() >= 20, "{routes:?}");
    let paths = doc["paths"].as_object().unwrap();
    for (path, methods) in &routes {
        let p = paths
            .get(path)
            .unwrap_or_else(|| panic!("{path} is not documented"));
        for m in methods {
            assert!(p.get(m).is_some(), "{m} {path} is not documented");
        }
    }
    for (path, ops) in paths {
        let methods = routes
            .get(path)
            .unwrap_or_else(|| panic!("{path} is documented but not routed"));
        for m in ops.as_object().unwrap().keys() {
            assert!(
                methods.contains(m),
                "{m} {path} is documented but not routed"
            );
        }
    }
    let mut all = vec![];
    refs(&doc, &mut all);
    for r in all {
        let name = r.strip_prefix("#/components/schemas/").unwrap();
        assert!(
            doc["components"]["schemas"].get(name).is_some(),
            "{r} does not resolve"
        );
    }
}
