//! Writes the seed corpus of the fuzz targets, valid encodings made by our
//! own encoder, into `fuzz/corpus/sbs_decode/` and `fuzz/corpus/chatter_frame/`
//! (existing files of the same names are replaced, others are kept).
//!
//! Built without the fuzzing flags, from the `fuzz` directory:
//!
//! ```sh
//! CARGO_TARGET_DIR=target/plain cargo run --release --bin gen_corpus
//! ```

use hat_eventer_client::chatter::{Data, Msg};
use hat_eventer_client::eventer_msg::*;
use hat_eventer_client_fuzz::{check_decoded_msg, check_message, MESSAGE_TYPES};
use std::path::Path;

fn ts(s: i64, us: i64) -> Timestamp {
    Timestamp { s, us }
}

fn event_type(segments: &[&str]) -> EventType {
    segments.iter().map(|s| s.to_string()).collect()
}

fn event(instance: i64, payload: Option<EventPayload>) -> Event {
    Event {
        id: EventId {
            server: 1,
            session: 2,
            instance,
        },
        event_type: event_type(&["aimm", "model", "3"]),
        timestamp: ts(1_700_000_000, 123_456),
        source_timestamp: (instance % 2 == 0).then(|| ts(-5, 999_999)),
        payload,
    }
}

fn binary() -> EventPayload {
    EventPayload::Binary {
        payload_type: "aimm.model".into(),
        data: vec![0, 1, 2, 0x7f, 0x80, 0xff],
    }
}

fn json() -> EventPayload {
    EventPayload::Json(r#"{"name": "m", "n": [1, 2.5, null]}"#.into())
}

fn register_event(payload: Option<EventPayload>) -> RegisterEvent {
    RegisterEvent {
        event_type: event_type(&["aimm", "action", "ü"]),
        source_timestamp: Some(ts(i64::MAX, i64::MIN)),
        payload,
    }
}

/// Seeds of `sbs_decode`: (name, message type, encoding).
fn messages() -> Vec<(String, &'static str, Vec<u8>)> {
    fn seed<T: Message>(name: &str, value: &T) -> (String, &'static str, Vec<u8>) {
        (name.to_string(), T::TYPE, encode(value))
    }
    let timeseries = QueryTimeseriesParams {
        event_types: Some(vec![event_type(&["a", "*"]), event_type(&["?", "b"])]),
        t_from: Some(ts(0, 0)),
        t_to: Some(ts(64, -65)),
        source_t_from: None,
        source_t_to: Some(ts(1 << 40, 1)),
        order: Order::Ascending,
        order_by: OrderBy::SourceTimestamp,
        max_results: Some(100),
        last_event_id: Some(EventId {
            server: 1,
            session: -1,
            instance: 300,
        }),
    };
    vec![
        seed(
            "init_req",
            &MsgInitReq {
                client_name: "aimm".into(),
                client_token: Some("secret".into()),
                subscriptions: vec![event_type(&["aimm", "*"]), event_type(&["x", "?", "y"])],
                server_id: Some(1),
                persisted: true,
            },
        ),
        seed(
            "init_req_minimal",
            &MsgInitReq {
                client_name: String::new(),
                client_token: None,
                subscriptions: Vec::new(),
                server_id: None,
                persisted: false,
            },
        ),
        seed(
            "init_res_success",
            &MsgInitRes::Success(Status::Operational),
        ),
        seed("init_res_error", &MsgInitRes::Error("refused".into())),
        seed("status_notify", &MsgStatusNotify(Status::Stopping)),
        seed(
            "events_notify",
            &MsgEventsNotify(vec![event(1, Some(binary())), event(2, Some(json()))]),
        ),
        seed("events_notify_bare", &MsgEventsNotify(vec![event(3, None)])),
        seed("events_ack", &MsgEventsAck),
        seed(
            "register_req",
            &MsgRegisterReq(vec![
                register_event(Some(binary())),
                register_event(Some(json())),
                register_event(None),
            ]),
        ),
        seed(
            "register_res_events",
            &MsgRegisterRes::Events(vec![event(4, Some(json()))]),
        ),
        seed("register_res_failure", &MsgRegisterRes::Failure),
        seed(
            "query_req_latest",
            &QueryParams::Latest {
                event_types: Some(vec![event_type(&["aimm", "*"])]),
            },
        ),
        seed("query_req_timeseries", &QueryParams::Timeseries(timeseries)),
        seed(
            "query_req_server",
            &QueryParams::Server(QueryServerParams {
                server_id: 7,
                persisted: true,
                max_results: None,
                last_event_id: None,
            }),
        ),
        seed(
            "query_res",
            &QueryResult {
                events: vec![event(5, Some(binary())), event(6, None)],
                more_follows: true,
            },
        ),
    ]
}

fn chatter(id: i64, data_type: &str, data: Vec<u8>) -> Msg {
    Msg {
        id,
        first: 1,
        owner: id % 2 == 1,
        token: true,
        last: id % 3 == 0,
        data: Data {
            data_type: data_type.into(),
            data: data.into(),
        },
    }
}

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    std::fs::write(dir.join(name), bytes).unwrap_or_else(|err| panic!("{name}: {err}"));
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let sbs_dir = root.join("sbs_decode");
    let frame_dir = root.join("chatter_frame");
    for dir in [&sbs_dir, &frame_dir] {
        std::fs::create_dir_all(dir).unwrap();
    }
    let messages = messages();

    for (name, data_type, bytes) in &messages {
        assert!(check_message(data_type, bytes), "{name} does not decode");
        let selector = MESSAGE_TYPES.iter().position(|t| t == data_type).unwrap() as u8;
        write(&sbs_dir, name, &[&[selector][..], bytes].concat());
    }
    let ping = chatter(1, "HatChatter.Ping", Vec::new());
    let body = ping.encode();
    let chatter_selector = MESSAGE_TYPES.len() as u8 - 1;
    write(
        &sbs_dir,
        "chatter_ping",
        &[&[chatter_selector][..], &body].concat(),
    );
    let (_, data_type, init) = &messages[0];
    let wrapped = chatter(-7, data_type, init.clone()).encode();
    assert!(check_message("HatChatter.Msg", &wrapped));
    write(
        &sbs_dir,
        "chatter_init_req",
        &[&[chatter_selector][..], &wrapped].concat(),
    );
    let mut integers = vec![MESSAGE_TYPES.len() as u8];
    for value in [0i64, 1, -1, 63, 64, -65, i64::MAX, i64::MIN] {
        integers.extend(encode(&value));
    }
    write(&sbs_dir, "integers", &integers);

    // chatter_frame: one frame per message type, and a conversation of
    // several frames (ping, pong, request, answer) in one stream.
    for (id, (name, data_type, bytes)) in (1..).zip(&messages) {
        let msg = chatter(id, data_type, bytes.clone());
        check_decoded_msg(&msg, msg.encode().len());
        write(&frame_dir, name, &msg.to_frame());
    }
    let mut stream = Vec::new();
    stream.extend(ping.to_frame());
    stream.extend(chatter(2, "HatChatter.Pong", Vec::new()).to_frame());
    for (id, index) in [(3, 0), (4, 2), (5, 12), (6, 14)] {
        let (_, data_type, bytes) = &messages[index];
        stream.extend(chatter(id, data_type, bytes.clone()).to_frame());
    }
    write(&frame_dir, "conversation", &stream);
    // A frame whose length field has leading zero bytes (allowed).
    let mut padded = vec![4, 0, 0, 0, body.len() as u8];
    padded.extend(&body);
    write(&frame_dir, "padded_length", &padded);
    println!("seeds written under {}", root.display());
}
