//! Lambda event filtering (`FilterCriteria`) for the stream mappings: a record reaches the
//! function only if it matches one of the mapping's filter patterns, as on AWS. Without
//! this, every function got every record locally, so a filter that forgot a prefix passed
//! every local test and dropped events on AWS, and each function decoded (and the gateway
//! serialised) records AWS would never send it.
//!
//! The pattern language is Lambda's ("Control which events Lambda sends to your function",
//! Lambda developer guide), the subset of EventBridge patterns it supports:
//! - an object pattern matches when every key matches the record's field of that name
//!   (nested objects recurse; `$or` takes a list of object patterns, any may match);
//! - a list is a set of alternatives for the field's value (for a list-valued field, any
//!   element may match): literals (string, number, boolean, `null`) match equal values;
//!   `{"prefix": s}`, `{"suffix": s}`, `{"equals-ignore-case": s}`,
//!   `{"anything-but": v | [v...]}`, `{"exists": bool}` and
//!   `{"numeric": [op, n, (op, n)]}` match as their names say.
//!
//! Invariants: a pattern the gateway cannot evaluate exactly (an unknown operator, a
//! malformed value) is refused when the template is read, never treated as "matches
//! everything"; filters are OR-ed; a mapping without `FilterCriteria` passes every record.

use serde_json::{Map, Number, Value};

/// A mapping's `FilterCriteria.Filters`: a record passes if any pattern matches.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filters(Vec<Pattern>);

/// One object pattern: every field must match.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Pattern {
    fields: Vec<(String, FieldPattern)>,
    /// `$or`: at least one of these must match too.
    any_of: Vec<Pattern>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum FieldPattern {
    Nested(Pattern),
    Alternatives(Vec<Matcher>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Matcher {
    Literal(Value),
    Prefix(String),
    Suffix(String),
    EqualsIgnoreCase(String),
    AnythingBut(Vec<Value>),
    Exists(bool),
    Numeric(Vec<(Comparison, Number)>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Comparison {
    Eq,
    Lt,
    Le,
    Gt,
    Ge,
}

impl Filters {
    /// `FilterCriteria` as written in the template: `{Filters: [{Pattern: "<json>"}]}`.
    pub fn parse(criteria: &Value) -> Result<Self, String> {
        let filters = criteria
            .get("Filters")
            .and_then(Value::as_array)
            .ok_or("FilterCriteria has no Filters list")?;
        let patterns = filters
            .iter()
            .map(|f| {
                let text = f
                    .get("Pattern")
                    .and_then(Value::as_str)
                    .ok_or("a filter has no literal Pattern string")?;
                let json: Value = serde_json::from_str(text)
                    .map_err(|e| format!("filter pattern is not JSON: {e}"))?;
                Pattern::parse(&json)
            })
            .collect::<Result<Vec<_>, String>>()?;
        Ok(Self(patterns))
    }

    /// Whether `record` (a record as the function receives it) passes. No filters: all do.
    pub fn pass(&self, record: &Value) -> bool {
        self.0.is_empty() || self.0.iter().any(|p| p.matches(record))
    }
}

impl Pattern {
    fn parse(json: &Value) -> Result<Self, String> {
        let object = json
            .as_object()
            .ok_or_else(|| format!("a filter pattern must be an object, not {json}"))?;
        let mut pattern = Pattern {
            fields: Vec::new(),
            any_of: Vec::new(),
        };
        for (key, value) in object {
            if key == "$or" {
                let list = value.as_array().ok_or("$or takes a list of patterns")?;
                pattern.any_of = list.iter().map(Pattern::parse).collect::<Result<_, _>>()?;
                continue;
            }
            let field = match value {
                Value::Object(_) => FieldPattern::Nested(Pattern::parse(value)?),
                Value::Array(items) => FieldPattern::Alternatives(
                    items.iter().map(Matcher::parse).collect::<Result<_, _>>()?,
                ),
                other => {
                    return Err(format!(
                        "the pattern of {key:?} must be a list or an object, not {other}"
                    ));
                }
            };
            pattern.fields.push((key.clone(), field));
        }
        Ok(pattern)
    }

    fn matches(&self, record: &Value) -> bool {
        let object = record.as_object();
        let fields_match = self.fields.iter().all(|(key, field)| {
            let value = object.and_then(|o| o.get(key));
            match field {
                FieldPattern::Nested(inner) => {
                    value.is_some_and(|v| v.is_object() && inner.matches(v))
                }
                FieldPattern::Alternatives(matchers) => matchers.iter().any(|m| m.matches(value)),
            }
        });
        fields_match && (self.any_of.is_empty() || self.any_of.iter().any(|p| p.matches(record)))
    }
}

impl Matcher {
    fn parse(json: &Value) -> Result<Self, String> {
        let Value::Object(operator) = json else {
            return match json {
                Value::Array(_) => Err("a list inside a list is not a filter value".into()),
                literal => Ok(Matcher::Literal(literal.clone())),
            };
        };
        let (name, arg) = single(operator)?;
        let text = || {
            arg.as_str()
                .map(str::to_owned)
                .ok_or_else(|| format!("{name} takes a string"))
        };
        Ok(match name {
            "prefix" => Matcher::Prefix(text()?),
            "suffix" => Matcher::Suffix(text()?),
            "equals-ignore-case" => Matcher::EqualsIgnoreCase(text()?.to_lowercase()),
            "exists" => Matcher::Exists(arg.as_bool().ok_or("exists takes true or false")?),
            "anything-but" => Matcher::AnythingBut(match arg {
                Value::Array(items) if items.iter().all(is_scalar) => items.clone(),
                v if is_scalar(v) => vec![v.clone()],
                _ => return Err("anything-but takes a value or a list of values".into()),
            }),
            "numeric" => Matcher::Numeric(numeric(arg)?),
            other => {
                return Err(format!(
                    "filter operator {other:?} is not supported locally"
                ));
            }
        })
    }

    /// `value` is the field's value, `None` when the record lacks the field.
    fn matches(&self, value: Option<&Value>) -> bool {
        if let Matcher::Exists(wanted) = self {
            return value.is_some() == *wanted;
        }
        match value {
            None => false,
            Some(Value::Array(items)) => items.iter().any(|v| self.matches_scalar(v)),
            Some(v) => self.matches_scalar(v),
        }
    }

    fn matches_scalar(&self, value: &Value) -> bool {
        match self {
            Matcher::Literal(literal) => literal == value || numbers_equal(literal, value),
            Matcher::Prefix(p) => value.as_str().is_some_and(|s| s.starts_with(p.as_str())),
            Matcher::Suffix(p) => value.as_str().is_some_and(|s| s.ends_with(p.as_str())),
            Matcher::EqualsIgnoreCase(p) => value.as_str().is_some_and(|s| s.to_lowercase() == *p),
            Matcher::AnythingBut(refused) => !refused
                .iter()
                .any(|r| r == value || numbers_equal(r, value)),
            Matcher::Exists(_) => true,
            Matcher::Numeric(bounds) => value.as_f64().is_some_and(|x| {
                value.is_number()
                    && bounds.iter().all(|(op, n)| {
                        let n = n.as_f64().unwrap_or(f64::NAN);
                        match op {
                            Comparison::Eq => x == n,
                            Comparison::Lt => x < n,
                            Comparison::Le => x <= n,
                            Comparison::Gt => x > n,
                            Comparison::Ge => x >= n,
                        }
                    })
            }),
        }
    }
}

fn single(operator: &Map<String, Value>) -> Result<(&str, &Value), String> {
    let mut entries = operator.iter();
    match (entries.next(), entries.next()) {
        (Some((name, arg)), None) => Ok((name.as_str(), arg)),
        _ => Err("a filter operator object has exactly one key".into()),
    }
}

fn is_scalar(v: &Value) -> bool {
    !matches!(v, Value::Array(_) | Value::Object(_))
}

fn numbers_equal(a: &Value, b: &Value) -> bool {
    matches!((a.as_f64(), b.as_f64()), (Some(x), Some(y)) if a.is_number() && b.is_number() && x == y)
}

fn numeric(arg: &Value) -> Result<Vec<(Comparison, Number)>, String> {
    let items = arg.as_array().ok_or("numeric takes a list")?;
    if items.is_empty() || items.len() % 2 != 0 || items.len() > 4 {
        return Err("numeric takes one or two (operator, number) pairs".into());
    }
    items
        .chunks(2)
        .map(|pair| {
            let op = match pair[0].as_str() {
                Some("=") => Comparison::Eq,
                Some("<") => Comparison::Lt,
                Some("<=") => Comparison::Le,
                Some(">") => Comparison::Gt,
                Some(">=") => Comparison::Ge,
                _ => {
                    return Err(format!(
                        "numeric operator {} is not one of = < <= > >=",
                        pair[0]
                    ));
                }
            };
            match &pair[1] {
                Value::Number(n) => Ok((op, n.clone())),
                other => Err(format!("numeric bound {other} is not a number")),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn filters(patterns: &[&str]) -> Filters {
        let list: Vec<Value> = patterns.iter().map(|p| json!({"Pattern": p})).collect();
        Filters::parse(&json!({ "Filters": list })).expect("valid filter")
    }

    fn record(event: &str, pk: &str, sk: &str) -> Value {
        json!({"eventName": event, "dynamodb": {"Keys": {"pk": {"S": pk}, "sk": {"S": sk}}}})
    }

    /// The template's own presence filter: key prefixes and a literal.
    const PRESENCE: &str = r#"{"dynamodb": {"Keys": {"pk": {"S": [{"prefix": "STREAM#"}]}, "sk": {"S": ["META", {"prefix": "CONN#"}, {"prefix": "VIEWER#"}]}}}}"#;

    #[test]
    fn key_prefixes_and_literals_pass_only_their_items() {
        let f = filters(&[PRESENCE]);
        assert!(f.pass(&record("INSERT", "STREAM#a", "CONN#1")));
        assert!(f.pass(&record("MODIFY", "STREAM#a", "META")));
        assert!(f.pass(&record("REMOVE", "STREAM#a", "VIEWER#9")));
        assert!(
            !f.pass(&record("INSERT", "STREAM#a", "METADATA")),
            "a literal is exact"
        );
        assert!(!f.pass(&record("INSERT", "STREAM#a", "EVENT#1")));
        assert!(!f.pass(&record("INSERT", "NODE#x", "CONN#1")));
        assert!(
            !f.pass(&json!({"eventName": "INSERT"})),
            "a missing field never matches"
        );
    }

    #[test]
    fn filters_are_or_ed_and_fields_and_ed() {
        let f = filters(&[
            r#"{"eventName": ["INSERT"], "dynamodb": {"Keys": {"sk": {"S": [{"prefix": "EVENT#"}]}}}}"#,
            r#"{"eventName": ["REMOVE"]}"#,
        ]);
        assert!(f.pass(&record("INSERT", "STREAM#a", "EVENT#5")));
        assert!(
            !f.pass(&record("MODIFY", "STREAM#a", "EVENT#5")),
            "both fields must match"
        );
        assert!(
            f.pass(&record("REMOVE", "STREAM#a", "CHAT#1")),
            "the second filter"
        );
        assert!(
            Filters::default().pass(&record("MODIFY", "x", "y")),
            "no filters: all pass"
        );
    }

    #[test]
    fn operators_match_as_lambda_documents_them() {
        let f = filters(&[
            r#"{"a": [{"anything-but": ["x", "y"]}], "b": [{"exists": false}], "c": [{"numeric": [">", 1, "<=", 5]}], "d": [{"suffix": ".png"}, {"equals-ignore-case": "HI"}], "e": [null, 3]}"#,
        ]);
        let ok = json!({"a": "z", "c": 5, "d": "Hi", "e": 3.0});
        assert!(f.pass(&ok));
        assert!(
            !f.pass(&json!({"a": "x", "c": 5, "d": "Hi", "e": 3})),
            "anything-but"
        );
        assert!(
            !f.pass(&json!({"a": "z", "b": 1, "c": 5, "d": "Hi", "e": 3})),
            "exists false"
        );
        assert!(
            !f.pass(&json!({"a": "z", "c": 1, "d": "Hi", "e": 3})),
            "numeric bound"
        );
        assert!(
            !f.pass(&json!({"a": "z", "c": "3", "d": "Hi", "e": 3})),
            "a string is no number"
        );
        assert!(
            f.pass(&json!({"a": "z", "c": 2, "d": "x.png", "e": null})),
            "null literal"
        );
        assert!(
            f.pass(&json!({"a": ["x", "q"], "c": 2, "d": "x.png", "e": 3})),
            "any list element"
        );
        let or = filters(&[r#"{"k": ["1"], "$or": [{"a": ["x"]}, {"b": ["y"]}]}"#]);
        assert!(or.pass(&json!({"k": "1", "b": "y"})));
        assert!(!or.pass(&json!({"k": "1", "b": "n"})));
    }

    #[test]
    fn a_pattern_that_cannot_be_evaluated_exactly_is_refused() {
        for bad in [
            r#"{"a": [{"wildcard": "x*"}]}"#,
            r#"{"a": "x"}"#,
            r#"{"a": [[1]]}"#,
            r#"{"a": [{"prefix": 1}]}"#,
            r#"{"a": [{"numeric": [">", "1"]}]}"#,
            r#"{"a": [{"prefix": "x", "suffix": "y"}]}"#,
            r#"["a"]"#,
            "not json",
        ] {
            let criteria = json!({"Filters": [{"Pattern": bad}]});
            assert!(Filters::parse(&criteria).is_err(), "{bad}");
        }
        assert!(Filters::parse(&json!({"Filters": [{"Pattern": {"a": 1}}]})).is_err());
    }
}
