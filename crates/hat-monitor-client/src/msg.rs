//! The `HatObserver` messages a component exchanges with its monitor
//! server (hat-monitor 0.8.23), and their SBS codecs.
//!
//! Field order follows the `HatObserver` schema shipped with hat-monitor
//! 0.8.23 (`tests/sbs_differential.rs` checks every type here against the
//! Python `hat-sbs` encoding of it). A component sends [`MsgClient`] on
//! connecting and whenever its blessing response changes; the server sends
//! [`MsgServer`] whenever the state of the components changes, and
//! [`MsgClose`] when it wants the component to close.

use hat_eventer_client::{message_types, record};

/// A blessing request: what the monitor asks of a component. A component
/// is blessed while its request carries a token.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct BlessingReq {
    /// The blessing token, if the component is blessed.
    pub token: Option<i64>,
    /// When the blessing was given (seconds since the epoch).
    pub timestamp: Option<f64>,
}
record!(BlessingReq { token, timestamp });

/// A blessing response: what a component answers. A component takes part
/// in blessing only while `ready`; it confirms a blessing by answering
/// with its token.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct BlessingRes {
    /// The token of the blessing the component has taken up, if any.
    pub token: Option<i64>,
    /// Whether the component asks to be blessed.
    pub ready: bool,
}
record!(BlessingRes { token, ready });

/// One component as the monitor sees it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ComponentInfo {
    /// The component's id on its monitor.
    pub cid: i64,
    /// Its monitor's id.
    pub mid: i64,
    /// Its name.
    pub name: Option<String>,
    /// Its group (blessing is decided per group).
    pub group: Option<String>,
    /// Its data, JSON text (an event server publishes `server_id`,
    /// `eventer_server` and `server_token` there).
    pub data: String,
    /// Its rank (lower ranks are blessed first).
    pub rank: i64,
    /// The monitor's blessing request.
    pub blessing_req: BlessingReq,
    /// The component's blessing response.
    pub blessing_res: BlessingRes,
}
record!(ComponentInfo {
    cid,
    mid,
    name,
    group,
    data,
    rank,
    blessing_req,
    blessing_res
});

/// `HatObserver.MsgClient`: a component's name, group, data and blessing
/// response.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MsgClient {
    /// The component's name.
    pub name: String,
    /// Its group.
    pub group: String,
    /// Its data, JSON text.
    pub data: String,
    /// Its blessing response.
    pub blessing_res: BlessingRes,
}
record!(MsgClient {
    name,
    group,
    data,
    blessing_res
});

/// `HatObserver.MsgServer`: the receiving component's ids and every
/// component the monitor knows of.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MsgServer {
    /// The receiving component's id.
    pub cid: i64,
    /// Its monitor's id.
    pub mid: i64,
    /// Every component, the receiver included.
    pub components: Vec<ComponentInfo>,
}
record!(MsgServer {
    cid,
    mid,
    components
});

/// `HatObserver.MsgClose`: the monitor asks the component to close.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct MsgClose;

impl hat_eventer_client::eventer_msg::Sbs for MsgClose {
    fn write(&self, _: &mut hat_eventer_client::sbs::Writer) {}
    fn read(
        _: &mut hat_eventer_client::sbs::Reader<'_>,
    ) -> Result<Self, hat_eventer_client::sbs::DecodeError> {
        Ok(MsgClose)
    }
}

message_types! {
    MsgClient = "HatObserver.MsgClient",
    MsgServer = "HatObserver.MsgServer",
    MsgClose = "HatObserver.MsgClose",
}

#[cfg(test)]
mod tests {
    use super::*;
    use hat_eventer_client::eventer_msg::{decode, encode};

    #[test]
    fn a_client_message_is_its_fields_in_schema_order() {
        let msg = MsgClient {
            name: "a".into(),
            group: "g".into(),
            data: "null".into(),
            blessing_res: BlessingRes {
                token: Some(5),
                ready: true,
            },
        };
        let mut expected = vec![0x81, b'a', 0x81, b'g', 0x84];
        expected.extend(b"null");
        // Optional present (choice 1), 5, then the Boolean.
        expected.extend([0x81, 0x85, 0x01]);
        assert_eq!(encode(&msg), expected);
        assert_eq!(decode::<MsgClient>(&expected).unwrap(), msg);
    }

    #[test]
    fn a_server_message_round_trips() {
        let msg = MsgServer {
            cid: 3,
            mid: 0,
            components: vec![ComponentInfo {
                cid: 3,
                mid: 0,
                name: Some("event-1".into()),
                group: Some("event".into()),
                data: r#"{"server_id": 1}"#.into(),
                rank: 1,
                blessing_req: BlessingReq {
                    token: Some(7),
                    timestamp: Some(1.5),
                },
                blessing_res: BlessingRes {
                    token: Some(7),
                    ready: true,
                },
            }],
        };
        assert_eq!(decode::<MsgServer>(&encode(&msg)).unwrap(), msg);
    }

    #[test]
    fn a_close_message_has_no_bytes() {
        assert!(encode(&MsgClose).is_empty());
        assert_eq!(decode::<MsgClose>(&[]).unwrap(), MsgClose);
    }
}
