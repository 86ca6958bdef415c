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
