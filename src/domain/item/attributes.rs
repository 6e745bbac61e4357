//! The free-JSON attributes of an item or variant: normalized (keys and
//! strings on one line, bounded nesting) and stored as compact JSON.

use serde_json::{Map, Value};

use super::{MAX_ATTRIBUTE_BYTES, MAX_ATTRIBUTE_DEPTH};
use crate::domain::text::{char_len, single_line};
use crate::domain::FieldErrors;

/// Normalizes an attributes object; returns its compact JSON (`{}` when absent).
pub(super) fn check_attributes(
    errors: &mut FieldErrors,
    field: &str,
    value: Option<Value>,
) -> String {
    let object = match value {
        None | Some(Value::Null) => return "{}".into(),
        Some(Value::Object(map)) => map,
        Some(_) => {
            errors.add(field, "must be a JSON object");
            return "{}".into();
        }
    };
    let mut problem = None;
    let normalized = normalize_object(object, 1, &mut problem);
    if let Some(message) = problem {
        errors.add(field, message);
        return "{}".into();
    }
    let json = Value::Object(normalized).to_string();
    if json.len() > MAX_ATTRIBUTE_BYTES {
        errors.add(
            field,
            format!("must be at most {MAX_ATTRIBUTE_BYTES} bytes as JSON"),
        );
        return "{}".into();
    }
    json
}

fn normalize_object(
    object: Map<String, Value>,
    depth: usize,
    problem: &mut Option<String>,
) -> Map<String, Value> {
    let mut out = Map::new();
    for (key, value) in object {
        let key = single_line(&key);
        if key.is_empty() || char_len(&key) > 100 {
            *problem = Some("keys must be 1..=100 characters".into());
            continue;
        }
        out.insert(key, normalize_value(value, depth, problem));
    }
    out
}

fn normalize_value(value: Value, depth: usize, problem: &mut Option<String>) -> Value {
    let nested = |problem: &mut Option<String>| {
        if depth + 1 > MAX_ATTRIBUTE_DEPTH {
            *problem = Some(format!(
                "must nest at most {MAX_ATTRIBUTE_DEPTH} levels deep"
            ));
            false
        } else {
            true
        }
    };
    match value {
        Value::String(s) => Value::String(single_line(&s)),
        Value::Object(map) if nested(problem) => {
            Value::Object(normalize_object(map, depth + 1, problem))
        }
        Value::Array(items) if nested(problem) => Value::Array(
            items
                .into_iter()
                .map(|v| normalize_value(v, depth + 1, problem))
                .collect(),
        ),
        Value::Object(_) | Value::Array(_) => Value::Null,
        other => other,
    }
}
