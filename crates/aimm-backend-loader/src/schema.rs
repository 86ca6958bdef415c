//! JSON-schema validation with messages that name the JSON path and the rule.

use jsonschema::error::{TypeKind, ValidationErrorKind};
use serde_json::Value;

/// One way a document breaks its schema, e.g. `backend.path: expected string, got 5`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// Dotted path of the offending value (`backend.model_prefix[1]`).
    pub path: String,
    /// The rule it breaks, in words.
    pub rule: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path, self.rule)
    }
}

/// Parses a schema given as YAML (or JSON) text, and checks that it is a
/// JSON Schema a validator can be built from (the draft `$schema` names;
/// without it, 2020-12).
pub fn parse_schema(text: &str) -> Result<Value, String> {
    let schema: Value =
        serde_yaml::from_str(text).map_err(|err| format!("schema is not valid YAML: {err}"))?;
    jsonschema::validator_for(&schema)
        .map_err(|err| format!("schema is not a valid JSON Schema: {err}"))?;
    Ok(schema)
}

/// Validates `instance` (found at `root`, e.g. `backend`) against `schema`.
pub fn validate(schema: &Value, instance: &Value, root: &str) -> Result<(), Vec<Violation>> {
    let validator = jsonschema::validator_for(schema).map_err(|err| {
        vec![Violation {
            path: root.to_string(),
            rule: format!("the schema itself is invalid: {err}"),
        }]
    })?;
    let violations: Vec<Violation> = validator
        .iter_errors(instance)
        .map(|err| Violation {
            path: dotted_path(root, err.instance_path().as_str()),
            rule: describe(err.kind(), err.instance()),
        })
        .collect();
    if violations.is_empty() {
        Ok(())
    } else {
        Err(violations)
    }
}

/// Top-level schema rules that can allow keys `properties` does not list.
const COVERING_RULES: [&str; 10] = [
    "additionalProperties",
    "unevaluatedProperties",
    "patternProperties",
    "dependentSchemas",
    "allOf",
    "anyOf",
    "oneOf",
    "if",
    "$ref",
    "$dynamicRef",
];

/// The keys of `instance` that `schema` neither lists under `properties`
/// nor otherwise says anything about: allowed (JSON Schema allows any key
/// it is not told to refuse) but read by no one, so most likely misspelt.
/// Empty when the schema could cover other keys in some other way
/// (`additionalProperties`, pattern or conditional rules, references).
pub fn unlisted_keys(schema: &Value, instance: &Value) -> Vec<String> {
    let (Some(listed), Some(keys)) = (
        schema.get("properties").and_then(Value::as_object),
        instance.as_object(),
    ) else {
        return Vec::new();
    };
    if COVERING_RULES.iter().any(|rule| schema.get(rule).is_some()) {
        return Vec::new();
    }
    keys.keys()
        .filter(|key| !listed.contains_key(*key))
        .cloned()
        .collect()
}

/// What a config's section is shown as: `instance` with the value of each
/// key whose property `schema` marks `writeOnly: true` (JSON Schema's word
/// for a value that is given, never given back: a connection string with a
/// password) replaced by `"<not shown>"`.
pub fn shown(schema: &Value, instance: &Value) -> Value {
    let mut shown = instance.clone();
    let (Some(properties), Some(keys)) = (
        schema.get("properties").and_then(Value::as_object),
        shown.as_object_mut(),
    ) else {
        return shown;
    };
    for (key, value) in keys.iter_mut() {
        let write_only = properties
            .get(key)
            .and_then(|property| property.get("writeOnly"))
            .and_then(Value::as_bool)
            .unwrap_or(false);
        if write_only {
            *value = Value::String("<not shown>".into());
        }
    }
    shown
}

/// `/model_prefix/1` under `backend` becomes `backend.model_prefix[1]`.
fn dotted_path(root: &str, pointer: &str) -> String {
    let mut path = root.to_string();
    for segment in pointer.split('/').skip(1) {
        let segment = segment.replace("~1", "/").replace("~0", "~");
        if segment.parse::<usize>().is_ok() {
            path.push_str(&format!("[{segment}]"));
        } else {
            if !path.is_empty() {
                path.push('.');
            }
            path.push_str(&segment);
        }
    }
    if path.is_empty() {
        "(document)".to_string()
    } else {
        path
    }
}

fn describe(kind: &ValidationErrorKind, instance: &Value) -> String {
    match kind {
        ValidationErrorKind::Type {
            kind: TypeKind::Single(expected),
        } => format!("expected {expected}, got {}", show(instance)),
        ValidationErrorKind::Type {
            kind: TypeKind::Multiple(expected),
        } => format!("expected one of {expected:?}, got {}", show(instance)),
        ValidationErrorKind::Required { property } => {
            format!("missing required key {property}")
        }
        ValidationErrorKind::Enum { options } => {
            format!("expected one of {options}, got {}", show(instance))
        }
        ValidationErrorKind::AdditionalProperties { unexpected }
        | ValidationErrorKind::UnevaluatedProperties { unexpected } => unknown_keys(unexpected),
        _ => {
            let rule = jsonschema_error_text(kind, instance);
            format!("{rule} (rule `{}`)", kind.keyword())
        }
    }
}

fn jsonschema_error_text(kind: &ValidationErrorKind, instance: &Value) -> String {
    match kind {
        ValidationErrorKind::MinLength { limit } => {
            format!(
                "expected at least {limit} characters, got {}",
                show(instance)
            )
        }
        ValidationErrorKind::Minimum { limit } => {
            format!("expected at least {limit}, got {}", show(instance))
        }
        ValidationErrorKind::Maximum { limit } => {
            format!("expected at most {limit}, got {}", show(instance))
        }
        _ => format!("{} is not allowed here", show(instance)),
    }
}

/// The keys a schema allows no others than: named, not the whole object.
fn unknown_keys(keys: &[String]) -> String {
    let quoted: Vec<String> = keys.iter().map(|key| format!("{key:?}")).collect();
    let (noun, pronoun) = if keys.len() == 1 {
        ("key", "it")
    } else {
        ("keys", "them")
    };
    format!(
        "unknown {noun} {} (the schema allows no other keys here; remove {pronoun} or check the spelling)",
        quoted.join(", ")
    )
}

/// A short rendering of a JSON value for messages.
fn show(value: &Value) -> String {
    let text = value.to_string();
    if text.chars().count() > 60 {
        let cut: String = text.chars().take(57).collect();
        format!("{cut}...")
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        parse_schema(
            "type: object\nrequired: [path]\nproperties:\n  path: {type: string}\n  \
             prefix: {type: array, items: {type: string}}\n",
        )
        .unwrap()
    }

    #[test]
    fn keys_the_schema_does_not_list_are_found_unless_it_covers_others() {
        let conf = json!({"path": "x", "paht": "y", "prefix": [], "zz": 1});
        assert_eq!(unlisted_keys(&schema(), &conf), ["paht", "zz"]);
        assert!(unlisted_keys(&schema(), &json!({"path": "x"})).is_empty());
        assert!(unlisted_keys(&schema(), &json!(["not", "an", "object"])).is_empty());
        assert!(unlisted_keys(&json!({"type": "object"}), &conf).is_empty());
        for rule in COVERING_RULES {
            let mut covering = schema();
            covering[rule] = json!(true);
            assert!(unlisted_keys(&covering, &conf).is_empty(), "{rule}");
        }
    }

    #[test]
    fn type_error_names_path_and_rule() {
        let err = validate(&schema(), &json!({"path": 5}), "backend").unwrap_err();
        assert_eq!(err[0].to_string(), "backend.path: expected string, got 5");
    }

    #[test]
    fn missing_key_is_reported_at_the_parent() {
        let err = validate(&schema(), &json!({}), "backend").unwrap_err();
        assert_eq!(err[0].to_string(), "backend: missing required key \"path\"");
    }

    #[test]
    fn array_items_use_brackets() {
        let err = validate(
            &schema(),
            &json!({"path": "x", "prefix": ["a", 1]}),
            "backend",
        )
        .unwrap_err();
        assert_eq!(
            err[0].to_string(),
            "backend.prefix[1]: expected string, got 1"
        );
    }

    #[test]
    fn keys_the_schema_does_not_allow_are_named_not_the_whole_object() {
        let closed = parse_schema(
            "type: object\nadditionalProperties: false\nproperties:\n  path: {type: string}\n",
        )
        .unwrap();
        let err = validate(
            &closed,
            &json!({"path": "x", "paht": 5, "big": "y".repeat(100)}),
            "backend",
        )
        .unwrap_err();
        let text = err[0].to_string();
        assert!(
            text.starts_with("backend: unknown keys \"big\", \"paht\" (")
                || text.starts_with("backend: unknown keys \"paht\", \"big\" ("),
            "{text}"
        );
        assert!(!text.contains("yyyy"), "the object is not printed: {text}");
        let one = validate(&closed, &json!({"paht": 5}), "backend").unwrap_err();
        assert!(
            one[0]
                .to_string()
                .starts_with("backend: unknown key \"paht\" ("),
            "{}",
            one[0]
        );
    }

    #[test]
    fn a_schema_that_is_not_yaml_or_not_a_schema_is_refused_as_such() {
        let not_yaml = parse_schema("type: [object\n").unwrap_err();
        assert!(
            not_yaml.starts_with("schema is not valid YAML"),
            "{not_yaml}"
        );
        let not_a_schema = parse_schema("type: 5\n").unwrap_err();
        assert!(
            not_a_schema.starts_with("schema is not a valid JSON Schema"),
            "{not_a_schema}"
        );
    }

    #[test]
    fn each_rule_is_said_in_words_with_the_value_found() {
        let rules = parse_schema(
            "type: object\nproperties:\n  a: {type: string, minLength: 3}\n  \
             b: {type: integer, minimum: 1, maximum: 9}\n  c: {enum: [x, y]}\n  \
             d: {type: [string, integer]}\n",
        )
        .unwrap();
        let said = |instance: Value| {
            let violations = validate(&rules, &instance, "backend").unwrap_err();
            violations[0].to_string()
        };
        assert_eq!(
            said(json!({"a": "xy"})),
            "backend.a: expected at least 3 characters, got \"xy\" (rule `minLength`)"
        );
        assert_eq!(
            said(json!({"b": 0})),
            "backend.b: expected at least 1, got 0 (rule `minimum`)"
        );
        assert_eq!(
            said(json!({"b": 10})),
            "backend.b: expected at most 9, got 10 (rule `maximum`)"
        );
        assert_eq!(
            said(json!({"c": "z"})),
            "backend.c: expected one of [\"x\",\"y\"], got \"z\""
        );
        assert_eq!(
            said(json!({"d": true})),
            "backend.d: expected one of (integer, string), got true"
        );
    }

    #[test]
    fn long_values_are_cut_to_60_characters() {
        assert_eq!(
            show(&json!("a".repeat(58))),
            format!("\"{}\"", "a".repeat(58))
        );
        let cut = show(&json!("a".repeat(59)));
        assert_eq!(cut.chars().count(), 60, "{cut}");
        assert!(cut.ends_with("..."), "{cut}");
    }

    #[test]
    fn write_only_values_are_not_shown_and_the_rest_is() {
        let schema = json!({"properties": {
            "url": {"type": "string", "writeOnly": true},
            "schema": {"type": "string", "writeOnly": false},
            "table": {"type": "string"},
        }});
        let section =
            json!({"url": "postgresql://u:s3cret@h/d", "schema": "s", "table": "t", "other": 1});
        assert_eq!(
            shown(&schema, &section),
            json!({"url": "<not shown>", "schema": "s", "table": "t", "other": 1})
        );
        assert_eq!(
            shown(&json!({}), &section),
            section,
            "no properties: as it is"
        );
        assert_eq!(shown(&schema, &json!(5)), json!(5));
    }

    #[test]
    fn valid_documents_pass() {
        assert!(validate(&schema(), &json!({"path": "x"}), "backend").is_ok());
    }
}
