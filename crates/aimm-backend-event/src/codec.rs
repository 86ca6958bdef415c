//! Model events: building them and reading them back.

use aimm_backend_api::{
    event_type, Event, EventPayload, EventType, InstanceId, Model, ROption, RegisterEvent,
};
use base64::Engine;
use serde::Deserialize;

/// The event type of model `id` under `prefix`.
pub fn model_type(prefix: &[String], id: InstanceId) -> EventType {
    event_type(prefix.iter().cloned().chain([id.to_string()]))
}

/// The type of claim events for `prefix`: beside the prefix, never under it.
pub fn claim_type(prefix: &[String]) -> EventType {
    match prefix.split_last() {
        Some((last, parent)) => {
            event_type(parent.iter().cloned().chain([format!("{last}#id-claims")]))
        }
        None => event_type(["#id-claims"]),
    }
}

/// The event that stores `model`.
pub fn model_event(prefix: &[String], model: &Model) -> RegisterEvent {
    let payload = serde_json::json!({
        "type": model.model_type.as_str(),
        "instance": base64::engine::general_purpose::STANDARD.encode(model.instance.as_slice()),
    });
    RegisterEvent {
        event_type: model_type(prefix, model.instance_id),
        source_timestamp: ROption::RNone,
        payload: ROption::RSome(EventPayload::Json(payload.to_string().into())),
    }
}

#[derive(Deserialize)]
struct Payload {
    #[serde(rename = "type")]
    model_type: String,
    instance: String,
}

/// The model `event` stores, or why it is not a model event.
pub fn model_of(prefix: &[String], event: &Event) -> Result<Model, String> {
    let segments: Vec<&str> = event.event_type.iter().map(|s| s.as_str()).collect();
    if segments.len() != prefix.len() + 1 || segments[..prefix.len()] != *prefix {
        return Err("its type is not [*model_prefix, id]".into());
    }
    let id: InstanceId = segments[prefix.len()]
        .parse()
        .map_err(|_| format!("id segment {:?} is not an integer", segments[prefix.len()]))?;
    let text = match &event.payload {
        ROption::RSome(EventPayload::Json(text)) => text,
        ROption::RSome(EventPayload::Binary { .. }) => {
            return Err("its payload is binary, not JSON".into())
        }
        ROption::RNone => return Err("it has no payload".into()),
    };
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|err| format!("its payload is not JSON: {err}"))?;
    if !value.is_object() {
        return Err(format!(
            "its payload is {value}, not an object {{\"type\", \"instance\"}}"
        ));
    }
    let payload = Payload::deserialize(&value).map_err(|err| {
        format!("its payload is not {{\"type\": string, \"instance\": base64}}: {err}")
    })?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(payload.instance.as_bytes())
        .map_err(|err| format!("its instance is not base64: {err}"))?;
    Ok(Model::new(id, payload.model_type, bytes))
}

/// A readable name of `event` for warnings.
pub fn describe(event: &Event) -> String {
    let segments: Vec<&str> = event.event_type.iter().map(|s| s.as_str()).collect();
    format!(
        "event {:?} (id {}/{}/{})",
        segments, event.id.server, event.id.session, event.id.instance
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use aimm_backend_api::{EventId, Timestamp};

    fn prefix() -> Vec<String> {
        vec!["aimm".into(), "model".into()]
    }

    fn segments(event_type: &EventType) -> Vec<&str> {
        event_type.iter().map(|s| s.as_str()).collect()
    }

    fn event(event_type: &[&str], payload: ROption<EventPayload>) -> Event {
        Event {
            id: EventId {
                server: 1,
                session: 2,
                instance: 3,
            },
            event_type: event_type_of(event_type),
            timestamp: Timestamp { s: 0, us: 0 },
            source_timestamp: ROption::RNone,
            payload,
        }
    }

    fn event_type_of(segments: &[&str]) -> EventType {
        event_type(segments.iter().copied())
    }

    fn json(text: &str) -> ROption<EventPayload> {
        ROption::RSome(EventPayload::Json(text.into()))
    }

    #[test]
    fn claims_sit_beside_the_prefix_never_under_it() {
        assert_eq!(
            segments(&claim_type(&prefix())),
            ["aimm", "model#id-claims"]
        );
        assert_eq!(segments(&claim_type(&["m".into()])), ["m#id-claims"]);
        assert_eq!(segments(&claim_type(&[])), ["#id-claims"]);
    }

    #[test]
    fn a_model_event_is_what_the_python_backend_writes_and_reads_back() {
        let model = Model::new(42, "my.Model", vec![0, 1, 2, 255]);
        let registered = model_event(&prefix(), &model);
        assert_eq!(segments(&registered.event_type), ["aimm", "model", "42"]);
        assert!(registered.source_timestamp.is_none());
        let ROption::RSome(EventPayload::Json(text)) = &registered.payload else {
            panic!("not a JSON payload: {:?}", registered.payload);
        };
        let value: serde_json::Value = serde_json::from_str(text).unwrap();
        assert_eq!(
            value,
            serde_json::json!({"type": "my.Model", "instance": "AAEC/w=="})
        );
        let stored = event(&["aimm", "model", "42"], registered.payload.clone());
        assert_eq!(model_of(&prefix(), &stored).unwrap(), model);
    }

    #[test]
    fn events_that_are_not_models_say_why() {
        let good = r#"{"type": "t", "instance": "AAEC"}"#;
        for (event_type, payload, why) in [
            (
                &["aimm", "model"][..],
                json(good),
                "not [*model_prefix, id]",
            ),
            (
                &["aimm", "other", "1"][..],
                json(good),
                "not [*model_prefix, id]",
            ),
            (
                &["aimm", "model", "1", "x"][..],
                json(good),
                "not [*model_prefix, id]",
            ),
            (&["aimm", "model", "x"][..], json(good), "is not an integer"),
            (&["aimm", "model", "1"][..], ROption::RNone, "no payload"),
            (
                &["aimm", "model", "1"][..],
                ROption::RSome(EventPayload::Binary {
                    payload_type: "b".into(),
                    data: vec![1].into(),
                }),
                "binary",
            ),
            (&["aimm", "model", "1"][..], json("not json"), "not JSON"),
            (&["aimm", "model", "1"][..], json("[1]"), "not an object"),
            (
                &["aimm", "model", "1"][..],
                json(r#"{"type": "t"}"#),
                "not {",
            ),
            (
                &["aimm", "model", "1"][..],
                json(r#"{"type": "t", "instance": "***"}"#),
                "not base64",
            ),
        ] {
            let err = model_of(&prefix(), &event(event_type, payload)).unwrap_err();
            assert!(err.contains(why), "{event_type:?}: {err}");
        }
    }

    #[test]
    fn a_description_names_the_type_and_the_id() {
        let text = describe(&event(&["aimm", "model", "7"], ROption::RNone));
        assert_eq!(text, r#"event ["aimm", "model", "7"] (id 1/2/3)"#);
    }
}
