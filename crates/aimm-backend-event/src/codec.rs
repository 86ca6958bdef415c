//! Model events: building them and reading them back.

use aimm_backend_api::{
    event_type, Event, EventPayload, EventType, InstanceId, Model, ROption, RegisterEvent,
};
use base64::Engine;
use serde::Deserialize;
use std::borrow::Cow;
use std::hash::{Hash, Hasher};

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

/// The event that stores `model`, and the fingerprint of its content (see
/// [`fingerprint`]).
///
/// The payload is the Python backend's `{"type": ..., "instance": base64}`,
/// written straight into one buffer of its final size: a large model costs
/// its base64 text once, and nothing more.
pub fn model_event(prefix: &[String], model: &Model) -> (RegisterEvent, u64) {
    let type_json = serde_json::Value::from(model.model_type.as_str()).to_string();
    let instance = model.instance.as_slice();
    let mut text = String::with_capacity(type_json.len() + base64_len(instance.len()) + 24);
    text.push_str("{\"type\": ");
    text.push_str(&type_json);
    text.push_str(", \"instance\": \"");
    let start = text.len();
    BASE64.encode_string(instance, &mut text);
    let fingerprint = fingerprint(model.instance_id, model.model_type.as_str(), &text[start..]);
    text.push_str("\"}");
    let event = RegisterEvent {
        event_type: model_type(prefix, model.instance_id),
        source_timestamp: ROption::RNone,
        payload: ROption::RSome(EventPayload::Json(text.into())),
    };
    (event, fingerprint)
}

const BASE64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// The length of the padded base64 text of `len` bytes.
fn base64_len(len: usize) -> usize {
    len.div_ceil(3) * 4
}

/// A hash of what a listener would be told: id, type and (as base64, so
/// that a notified event need not be decoded to be recognised) bytes.
pub fn fingerprint(id: InstanceId, model_type: &str, instance_base64: &str) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    id.hash(&mut hasher);
    model_type.hash(&mut hasher);
    instance_base64.hash(&mut hasher);
    hasher.finish()
}

#[derive(Deserialize)]
struct Payload<'a> {
    #[serde(rename = "type", borrow)]
    model_type: Cow<'a, str>,
    #[serde(borrow)]
    instance: Cow<'a, str>,
}

/// A model event's payload, read but not decoded: its text borrowed from
/// the event wherever JSON escapes allow.
pub struct ModelPayload<'a> {
    /// The model's id, from the event type.
    pub id: InstanceId,
    /// The model type.
    pub model_type: Cow<'a, str>,
    /// The model's bytes as base64.
    pub instance: Cow<'a, str>,
}

impl ModelPayload<'_> {
    /// The model's bytes.
    pub fn decode(&self) -> Result<Vec<u8>, String> {
        BASE64
            .decode(self.instance.as_bytes())
            .map_err(|err| format!("its instance is not base64: {err}"))
    }

    /// How many bytes the instance holds, checked as [`Self::decode`]
    /// checks it but without keeping the bytes.
    pub fn decoded_len(&self) -> Result<u64, String> {
        let mut len = 0u64;
        self.decode_in_pieces(|piece| {
            len += piece.len() as u64;
            true
        })?;
        Ok(len)
    }

    /// Whether this payload holds a model of `model_type` with exactly
    /// `bytes`, decoded piece by piece (never a second copy of the model).
    /// A payload that is not valid base64 holds nothing.
    pub fn holds(&self, model_type: &str, bytes: &[u8]) -> bool {
        if self.model_type != model_type || self.instance.len() != base64_len(bytes.len()) {
            return false;
        }
        let mut rest = bytes;
        let equal = self.decode_in_pieces(|piece| match rest.split_at_checked(piece.len()) {
            Some((head, tail)) if head == piece => {
                rest = tail;
                true
            }
            _ => false,
        });
        equal == Ok(true) && rest.is_empty()
    }

    /// Decodes the instance in pieces of at most 48 KiB, handing each to
    /// `each` until it returns false; returns whether every piece was
    /// handed over, or why the text is not base64.
    fn decode_in_pieces(&self, mut each: impl FnMut(&[u8]) -> bool) -> Result<bool, String> {
        const QUADS: usize = 16 << 10;
        let mut buf = vec![0u8; QUADS * 3];
        for piece in self.instance.as_bytes().chunks(QUADS * 4) {
            let n = BASE64
                .decode_slice(piece, &mut buf)
                .map_err(|err| format!("its instance is not base64: {err}"))?;
            if !each(&buf[..n]) {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// The model, decoded.
    pub fn into_model(self) -> Result<Model, String> {
        let bytes = self.decode()?;
        Ok(Model::new(self.id, self.model_type.into_owned(), bytes))
    }

    /// See [`fingerprint`].
    pub fn fingerprint(&self) -> u64 {
        fingerprint(self.id, &self.model_type, &self.instance)
    }
}

/// The payload of the model `event` stores, or why it is not a model event.
pub fn payload_of<'a>(prefix: &[String], event: &'a Event) -> Result<ModelPayload<'a>, String> {
    let segments: Vec<&str> = event.event_type.iter().map(|s| s.as_str()).collect();
    if segments.len() != prefix.len() + 1 || segments[..prefix.len()] != *prefix {
        return Err("its type is not [*model_prefix, id]".into());
    }
    let id: InstanceId = segments[prefix.len()]
        .parse()
        .map_err(|_| format!("id segment {:?} is not an integer", segments[prefix.len()]))?;
    let text = match &event.payload {
        ROption::RSome(EventPayload::Json(text)) => text.as_str(),
        ROption::RSome(EventPayload::Binary { .. }) => {
            return Err("its payload is binary, not JSON".into())
        }
        ROption::RNone => return Err("it has no payload".into()),
    };
    // Serde would read a struct from an array too; the payload is an object.
    let payload: Payload<'a> = match text.trim_start().starts_with('{') {
        true => serde_json::from_str(text).map_err(|_| why_not_a_payload(text))?,
        false => return Err(why_not_a_payload(text)),
    };
    Ok(ModelPayload {
        id,
        model_type: payload.model_type,
        instance: payload.instance,
    })
}

/// Why `text` is not `{"type": string, "instance": string}` (the slow
/// path: only for events that fail to read).
fn why_not_a_payload(text: &str) -> String {
    let value: serde_json::Value = match serde_json::from_str(text) {
        Ok(value) => value,
        Err(err) => return format!("its payload is not JSON: {err}"),
    };
    if !value.is_object() {
        return format!("its payload is {value}, not an object {{\"type\", \"instance\"}}");
    }
    match Payload::deserialize(&value) {
        Err(err) => format!("its payload is not {{\"type\": string, \"instance\": base64}}: {err}"),
        Ok(_) => "its payload is not {\"type\": string, \"instance\": base64}".into(),
    }
}

/// The model `event` stores, or why it is not a model event.
#[cfg(test)]
pub fn model_of(prefix: &[String], event: &Event) -> Result<Model, String> {
    payload_of(prefix, event)?.into_model()
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
        let (registered, _) = model_event(&prefix(), &model);
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
    fn a_payload_holds_exactly_the_model_it_encodes() {
        // Across several 48 KiB decoding pieces, ending mid-piece.
        let bytes: Vec<u8> = (0..150_001u32).map(|i| (i * 31 + i / 977) as u8).collect();
        let model = Model::new(7, "t", bytes.clone());
        let (registered, _) = model_event(&prefix(), &model);
        let stored = event(&["aimm", "model", "7"], registered.payload);
        let payload = payload_of(&prefix(), &stored).unwrap();
        assert!(payload.holds("t", &bytes));
        assert!(!payload.holds("u", &bytes), "another type");
        for at in [0, 49_151, 49_152, 150_000] {
            let mut changed = bytes.clone();
            changed[at] ^= 1;
            assert!(!payload.holds("t", &changed), "byte {at} changed");
        }
        assert!(!payload.holds("t", &bytes[..150_000]), "one byte shorter");
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(!payload.holds("t", &longer), "one byte longer");
        let empty = event(
            &["aimm", "model", "7"],
            json(r#"{"type": "t", "instance": ""}"#),
        );
        assert!(payload_of(&prefix(), &empty).unwrap().holds("t", &[]));
        let broken = event(
            &["aimm", "model", "7"],
            json(r#"{"type": "t", "instance": "AA*C"}"#),
        );
        let broken = payload_of(&prefix(), &broken).unwrap();
        assert!(!broken.holds("t", &[0, 0, 2]), "not base64: holds nothing");
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
