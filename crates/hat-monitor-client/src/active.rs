//! Which event server of a group is the active one, as the monitor's state
//! tells: the component of the group whose blessing request carries a
//! token and whose response confirms that token (the rule of
//! `hat.event.component` in hat-event 0.9.44).

use crate::msg::ComponentInfo;
use serde_json::Value;

/// An event server as it publishes itself through the monitor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerData {
    /// Its `server_id`.
    pub server_id: i64,
    /// `host:port` of its eventer interface.
    pub address: String,
    /// Its `server_token`, if it has one.
    pub server_token: Option<String>,
}

/// The active server of `server_group` among `components`, if any: blessed
/// (the request's token is confirmed by the response) and publishing a
/// usable address. With `client_token`, only a server whose token equals
/// it. A blessed component whose data is not an event server's is skipped
/// with a warning.
pub fn active_server(
    components: &[ComponentInfo],
    server_group: &str,
    client_token: Option<&str>,
) -> Option<ServerData> {
    components
        .iter()
        .filter(|info| info.group.as_deref() == Some(server_group) && is_blessed(info))
        .find_map(|info| match server_data(&info.data) {
            Ok(data) => Some(data),
            Err(why) => {
                tracing::warn!(
                    group = server_group,
                    cid = info.cid,
                    "a blessed component is not usable as an event server: {why}"
                );
                None
            }
        })
        .filter(|data| client_token.is_none() || data.server_token.as_deref() == client_token)
}

/// Whether the monitor blesses `info` and `info` has taken the blessing up.
pub fn is_blessed(info: &ComponentInfo) -> bool {
    info.blessing_req.token.is_some() && info.blessing_req.token == info.blessing_res.token
}

/// `data` as an event server publishes it: `{"server_id": int,
/// "eventer_server": {"host": str, "port": int}, "server_token": str or
/// null}`.
fn server_data(data: &str) -> Result<ServerData, String> {
    let value: Value =
        serde_json::from_str(data).map_err(|err| format!("its data is not JSON: {err}"))?;
    let server_id = value["server_id"]
        .as_i64()
        .ok_or("its data has no integer server_id")?;
    let host = value["eventer_server"]["host"]
        .as_str()
        .ok_or("its data has no eventer_server.host string")?;
    let port = value["eventer_server"]["port"]
        .as_u64()
        .filter(|port| *port <= u16::MAX.into())
        .ok_or("its data has no eventer_server.port from 0 to 65535")?;
    let server_token = match &value["server_token"] {
        Value::Null => None,
        Value::String(token) => Some(token.clone()),
        _ => return Err("its data's server_token is neither a string nor null".into()),
    };
    Ok(ServerData {
        server_id,
        address: format!("{host}:{port}"),
        server_token,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::msg::{BlessingReq, BlessingRes};

    fn server(cid: i64, group: &str, request: Option<i64>, response: Option<i64>) -> ComponentInfo {
        ComponentInfo {
            cid,
            group: Some(group.into()),
            data: format!(
                r#"{{"server_id": {cid}, "eventer_server": {{"host": "127.0.0.1", "port": {}}}, "server_token": "t"}}"#,
                23000 + cid
            ),
            blessing_req: BlessingReq {
                token: request,
                timestamp: request.map(|_| 1.0),
            },
            blessing_res: BlessingRes {
                token: response,
                ready: true,
            },
            ..ComponentInfo::default()
        }
    }

    #[test]
    fn the_active_server_is_the_blessed_one_that_took_its_blessing_up() {
        let components = [
            server(1, "event", None, None),
            server(2, "event", Some(9), Some(9)),
            server(3, "other", Some(4), Some(4)),
        ];
        assert_eq!(
            active_server(&components, "event", None),
            Some(ServerData {
                server_id: 2,
                address: "127.0.0.1:23002".into(),
                server_token: Some("t".into()),
            })
        );
        assert_eq!(
            active_server(&components, "other", None).unwrap().server_id,
            3
        );
        assert_eq!(active_server(&components, "none", None), None);
    }

    #[test]
    fn a_blessing_not_yet_taken_up_or_given_up_is_no_active_server() {
        for (request, response) in [
            (Some(9), None),
            (Some(9), Some(8)),
            (None, Some(9)),
            (None, None),
        ] {
            let components = [server(1, "event", request, response)];
            assert_eq!(
                active_server(&components, "event", None),
                None,
                "request {request:?}, response {response:?}"
            );
        }
    }

    #[test]
    fn a_server_of_another_token_is_not_taken() {
        let components = [server(1, "event", Some(2), Some(2))];
        assert!(active_server(&components, "event", Some("t")).is_some());
        assert_eq!(active_server(&components, "event", Some("u")), None);
    }

    #[test]
    fn a_blessed_component_without_an_event_server_s_data_is_skipped() {
        let mut broken = server(1, "event", Some(2), Some(2));
        let good = server(2, "event", Some(3), Some(3));
        for data in [
            "not json",
            r#"{"eventer_server": {"host": "h", "port": 1}}"#,
            r#"{"server_id": 1, "eventer_server": {"port": 1}}"#,
            r#"{"server_id": 1, "eventer_server": {"host": "h", "port": 70000}}"#,
            r#"{"server_id": 1, "eventer_server": {"host": "h", "port": 1}, "server_token": 5}"#,
        ] {
            broken.data = data.into();
            assert_eq!(
                active_server(&[broken.clone()], "event", None),
                None,
                "{data}"
            );
            let found = active_server(&[broken.clone(), good.clone()], "event", None);
            assert_eq!(found.map(|d| d.server_id), Some(2), "{data}");
        }
        broken.data = r#"{"server_id": 1, "eventer_server": {"host": "h", "port": 1}}"#.into();
        let found = active_server(&[broken], "event", None).unwrap();
        assert_eq!((found.address.as_str(), found.server_token), ("h:1", None));
    }
}
