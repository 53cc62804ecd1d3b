//! Route matching with API Gateway HTTP API semantics.
//!
//! Among the routes whose path matches, the most specific wins, compared segment by
//! segment from the left: a literal beats `{param}`, which beats `{greedy+}`. So
//! `GET /api/streams/live` reaches the route declared for it, never `/api/streams/{id}`
//! with `id=live`, whatever order the template lists them in. A method-specific route
//! beats `ANY` on the same path, and `$default` only catches what nothing else does.

use std::collections::HashMap;

use crate::template::HttpRoute;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Rank {
    Literal = 0,
    Param = 1,
    Greedy = 2,
}

#[derive(Debug, Clone)]
enum Segment {
    Literal(String),
    Param(String),
    /// `{name+}`: zero or more remaining segments; only valid last.
    Greedy(String),
}

/// Path ranks, then "method is ANY": lower is more specific.
type Specificity = (Vec<Rank>, bool);

#[derive(Debug, Clone)]
struct CompiledRoute {
    function: String,
    route_key: String,
    /// `None` = `ANY`.
    method: Option<String>,
    /// `None` = `$default`.
    segments: Option<Vec<Segment>>,
}

/// A route chosen for a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteMatch {
    pub function: String,
    /// `routeKey` of the event, e.g. `POST /api/streams/{id}/start`.
    pub route_key: String,
    /// Percent-decoded path parameters.
    pub path_parameters: HashMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    Found(RouteMatch),
    /// Some route has this path, none has this method; `allowed` lists the methods that do.
    MethodMismatch {
        allowed: Vec<String>,
    },
    NotFound,
}

/// All HTTP routes of the template, ready to match.
#[derive(Debug, Clone, Default)]
pub struct Router {
    routes: Vec<CompiledRoute>,
}

#[derive(Debug, thiserror::Error)]
#[error("route {route_key} of {function}: {message}")]
pub struct RouteError {
    pub function: String,
    pub route_key: String,
    pub message: String,
}

impl Router {
    /// Builds a router from `(function name, route)` pairs.
    pub fn new<'a>(
        routes: impl IntoIterator<Item = (&'a str, &'a HttpRoute)>,
    ) -> Result<Self, RouteError> {
        let mut compiled = Vec::new();
        for (function, route) in routes {
            let err = |message: &str| RouteError {
                function: function.to_owned(),
                route_key: route.route_key(),
                message: message.to_owned(),
            };
            let segments = if route.path == "$default" {
                None
            } else {
                Some(compile_path(&route.path).map_err(|m| err(&m))?)
            };
            let method = (route.method != "ANY").then(|| route.method.clone());
            let new = CompiledRoute {
                function: function.to_owned(),
                route_key: route.route_key(),
                method,
                segments,
            };
            if let Some(existing) = compiled
                .iter()
                .find(|r: &&CompiledRoute| r.route_key == new.route_key)
            {
                return Err(err(&format!("also declared by {}", existing.function)));
            }
            compiled.push(new);
        }
        Ok(Self { routes: compiled })
    }

    /// Finds the route for `method` and the raw (still percent-encoded) `path`.
    pub fn lookup(&self, method: &str, path: &str) -> Lookup {
        let segments: Vec<&str> = path.strip_prefix('/').unwrap_or(path).split('/').collect();
        let mut best: Option<(Specificity, &CompiledRoute, HashMap<String, String>)> = None;
        let mut allowed: Vec<String> = Vec::new();
        let mut default: Option<&CompiledRoute> = None;

        for route in &self.routes {
            let method_ok = route.method.as_deref().is_none_or(|m| m == method);
            let Some(pattern) = &route.segments else {
                if method_ok {
                    default = Some(route);
                }
                continue;
            };
            let Some((ranks, params)) = match_segments(pattern, &segments) else {
                continue;
            };
            if !method_ok {
                if let Some(m) = &route.method {
                    allowed.push(m.clone());
                }
                continue;
            }
            let key = (ranks, route.method.is_none());
            if best.as_ref().is_none_or(|(best_key, _, _)| key < *best_key) {
                best = Some((key, route, params));
            }
        }

        if let Some((_, route, path_parameters)) = best {
            return Lookup::Found(RouteMatch {
                function: route.function.clone(),
                route_key: route.route_key.clone(),
                path_parameters,
            });
        }
        if let Some(route) = default {
            return Lookup::Found(RouteMatch {
                function: route.function.clone(),
                route_key: route.route_key.clone(),
                path_parameters: HashMap::new(),
            });
        }
        if allowed.is_empty() {
            Lookup::NotFound
        } else {
            allowed.sort();
            allowed.dedup();
            Lookup::MethodMismatch { allowed }
        }
    }
}

fn compile_path(path: &str) -> Result<Vec<Segment>, String> {
    let raw: Vec<&str> = path.strip_prefix('/').unwrap_or(path).split('/').collect();
    let mut segments = Vec::with_capacity(raw.len());
    for (i, seg) in raw.iter().enumerate() {
        let segment = match seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            Some(name) => match name.strip_suffix('+') {
                Some(name) if i + 1 == raw.len() => Segment::Greedy(name.to_owned()),
                Some(_) => return Err("a greedy {name+} must be the last segment".into()),
                None if name.is_empty() => return Err("empty parameter name".into()),
                None => Segment::Param(name.to_owned()),
            },
            None if seg.contains(['{', '}']) => {
                return Err(format!("segment {seg:?} mixes text and a parameter"));
            }
            None => Segment::Literal((*seg).to_owned()),
        };
        segments.push(segment);
    }
    Ok(segments)
}

fn match_segments(
    pattern: &[Segment],
    path: &[&str],
) -> Option<(Vec<Rank>, HashMap<String, String>)> {
    let mut ranks = Vec::with_capacity(pattern.len());
    let mut params = HashMap::new();
    for (i, segment) in pattern.iter().enumerate() {
        match segment {
            Segment::Greedy(name) => {
                params.insert(name.clone(), decode(&path.get(i..)?.join("/")));
                ranks.push(Rank::Greedy);
                return Some((ranks, params));
            }
            Segment::Literal(lit) => {
                if decode(path.get(i)?) != *lit {
                    return None;
                }
                ranks.push(Rank::Literal);
            }
            Segment::Param(name) => {
                let value = path.get(i)?;
                if value.is_empty() {
                    return None;
                }
                params.insert(name.clone(), decode(value));
                ranks.push(Rank::Param);
            }
        }
    }
    (pattern.len() == path.len()).then_some((ranks, params))
}

fn decode(segment: &str) -> String {
    urlencoding::decode(segment)
        .map(|s| s.into_owned())
        .unwrap_or_else(|_| segment.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(method: &str, path: &str) -> HttpRoute {
        HttpRoute {
            method: method.into(),
            path: path.into(),
        }
    }

    fn router(routes: &[(&str, HttpRoute)]) -> Router {
        Router::new(routes.iter().map(|(f, r)| (*f, r))).expect("valid routes")
    }

    fn found(lookup: Lookup) -> RouteMatch {
        match lookup {
            Lookup::Found(m) => m,
            other => panic!("expected a match, got {other:?}"),
        }
    }

    fn streams_router() -> Router {
        // The parameter route comes first on purpose: order must not matter.
        router(&[
            ("streams-get", route("GET", "/api/streams/{id}")),
            ("streams-update", route("PATCH", "/api/streams/{id}")),
            ("streams-list", route("GET", "/api/streams/live")),
            ("streams-start", route("POST", "/api/streams/{id}/start")),
            (
                "chat-delete",
                route("DELETE", "/api/streams/{id}/chat/{msgId}"),
            ),
            (
                "chat-pin",
                route("POST", "/api/streams/{id}/chat/{msgId}/pin"),
            ),
        ])
    }

    #[test]
    fn literal_segment_beats_parameter() {
        let m = found(streams_router().lookup("GET", "/api/streams/live"));
        assert_eq!(m.function, "streams-list");
        assert_eq!(m.route_key, "GET /api/streams/live");
        assert!(m.path_parameters.is_empty());
    }

    #[test]
    fn parameter_captures_one_segment() {
        let r = streams_router();
        let m = found(r.lookup("GET", "/api/streams/01HXYZ"));
        assert_eq!(m.function, "streams-get");
        assert_eq!(m.route_key, "GET /api/streams/{id}");
        assert_eq!(m.path_parameters["id"], "01HXYZ");

        let m = found(r.lookup("POST", "/api/streams/abc/chat/m%201/pin"));
        assert_eq!(m.function, "chat-pin");
        assert_eq!(m.path_parameters["id"], "abc");
        assert_eq!(m.path_parameters["msgId"], "m 1", "parameters are decoded");

        assert_eq!(r.lookup("GET", "/api/streams/a/b"), Lookup::NotFound);
        assert_eq!(r.lookup("GET", "/api/streams/"), Lookup::NotFound);
    }

    #[test]
    fn method_mismatch_is_reported_with_allowed_methods() {
        let r = streams_router();
        assert_eq!(
            r.lookup("DELETE", "/api/streams/abc"),
            Lookup::MethodMismatch {
                allowed: vec!["GET".into(), "PATCH".into()]
            }
        );
        assert_eq!(r.lookup("GET", "/api/nothing"), Lookup::NotFound);
    }

    #[test]
    fn greedy_parameter_takes_the_rest_and_is_optional() {
        let r = router(&[
            ("proxy", route("ANY", "/files/{proxy+}")),
            ("exact", route("GET", "/files/readme")),
        ]);
        let m = found(r.lookup("GET", "/files/a/b/c"));
        assert_eq!(m.function, "proxy");
        assert_eq!(m.route_key, "ANY /files/{proxy+}");
        assert_eq!(m.path_parameters["proxy"], "a/b/c");
        assert_eq!(found(r.lookup("GET", "/files/readme")).function, "exact");
        assert_eq!(found(r.lookup("POST", "/files/readme")).function, "proxy");
        assert_eq!(
            found(r.lookup("GET", "/files")).path_parameters["proxy"],
            ""
        );
    }

    #[test]
    fn specific_method_beats_any() {
        let r = router(&[
            ("any", route("ANY", "/x/{id}")),
            ("get", route("GET", "/x/{id}")),
        ]);
        assert_eq!(found(r.lookup("GET", "/x/1")).function, "get");
        assert_eq!(found(r.lookup("PUT", "/x/1")).function, "any");
    }

    #[test]
    fn default_route_catches_only_unmatched_requests() {
        let r = router(&[
            ("fallback", route("ANY", "$default")),
            ("get", route("GET", "/x")),
        ]);
        assert_eq!(found(r.lookup("GET", "/x")).function, "get");
        let m = found(r.lookup("POST", "/x"));
        assert_eq!(
            (m.function.as_str(), m.route_key.as_str()),
            ("fallback", "$default")
        );
    }

    #[test]
    fn duplicate_and_malformed_routes_are_rejected() {
        let a = route("GET", "/x/{id}");
        let b = route("GET", "/x/{id}");
        assert!(Router::new([("a", &a), ("b", &b)]).is_err());
        let bad = route("GET", "/x/{rest+}/y");
        assert!(Router::new([("a", &bad)]).is_err());
        let mixed = route("GET", "/x/a{id}");
        assert!(Router::new([("a", &mixed)]).is_err());
    }
}
