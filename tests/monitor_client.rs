//! The monitor client against a real `hat-monitor` 0.8.23 and real
//! `hat-event-server` 0.9.44 of one group: it names the blessed server and
//! moves with the blessing, names none without a monitor, and never takes
//! a blessing itself.

use aimm_backend_tests::*;
use hat_eventer_client::eventer_msg::Status;
use hat_monitor_client::msg::ComponentInfo;
use hat_monitor_client::{follow_active, is_blessed, Component, FollowConfig, ServerData};
use std::time::Duration;
use tokio::runtime::Runtime;
use tokio::sync::watch;

/// A runtime whose drop waits at most 5 s for its tasks: a follower that
/// spins without yielding must fail the test, not hang it in the drop.
struct TestRuntime(Option<Runtime>);

impl std::ops::Deref for TestRuntime {
    type Target = Runtime;

    fn deref(&self) -> &Runtime {
        self.0.as_ref().expect("until dropped")
    }
}

impl Drop for TestRuntime {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_timeout(Duration::from_secs(5));
        }
    }
}

fn runtime() -> TestRuntime {
    TestRuntime(Some(
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap(),
    ))
}

fn follow(runtime: &Runtime, monitor: &HatMonitor) -> watch::Receiver<Option<ServerData>> {
    let _entered = runtime.enter();
    follow_active(FollowConfig {
        monitor: format!("127.0.0.1:{}", monitor.port),
        name: "follower".into(),
        group: "aimm".into(),
        server_group: "event".into(),
        client_token: None,
        timeout: Duration::from_secs(3),
        max_backoff: Duration::from_millis(300),
    })
}

/// Waits (60 s at most) until the followed server is `expected` (`None`:
/// no server). The wait's deadline is a thread's, not the runtime's: a
/// follower that spins without yielding must fail the test, not hang it.
fn wait_for(
    runtime: &Runtime,
    active: &mut watch::Receiver<Option<ServerData>>,
    expected: Option<&HatServer>,
) -> Option<ServerData> {
    let address = expected.map(HatServer::address);
    let handle = runtime.handle().clone();
    let mut receiver = active.clone();
    let wanted = address.clone();
    let waited = within_for("the follower", Duration::from_secs(65), move || {
        handle.block_on(async {
            let waiting = receiver.wait_for(|data: &Option<ServerData>| {
                data.as_ref().map(|d| d.address.clone()) == wanted
            });
            let data = tokio::time::timeout(Duration::from_secs(60), waiting).await;
            data.map(|data| data.expect("the follower runs").clone())
        })
    });
    match waited {
        Ok(data) => data,
        Err(_) => {
            let now = active.borrow().clone();
            panic!("after 60 s the active server is {now:?}, not {address:?}")
        }
    }
}

#[test]
fn the_follower_names_the_blessed_server_and_moves_with_the_blessing() {
    let runtime = runtime();
    let monitor = HatMonitor::start();
    let mut active = follow(&runtime, &monitor);
    wait_for(&runtime, &mut active, None);
    let first = HatServer::start_in_group(&monitor, 1);
    let data = wait_for(&runtime, &mut active, Some(&first)).unwrap();
    assert_eq!(data.server_id, 1);
    assert_eq!(data.server_token.as_deref(), Some("aimm-test"));
    let second = HatServer::start_in_group(&monitor, 2);
    wait_status(&second, Status::Standby);
    assert_eq!(
        active.borrow().as_ref(),
        Some(&data),
        "a standby is not active"
    );

    first.kill();
    let data = wait_for(&runtime, &mut active, Some(&second)).unwrap();
    assert_eq!(data.server_id, 2);
    second.stop();
    wait_for(&runtime, &mut active, None);
}

#[test]
fn a_follower_is_never_blessed_and_names_no_server_without_a_monitor() {
    let runtime = runtime();
    let monitor = HatMonitor::start();
    let server = HatServer::start_in_group(&monitor, 1);
    let mut active = follow(&runtime, &monitor);
    wait_for(&runtime, &mut active, Some(&server));
    let state = runtime.block_on(async {
        let mut observer = Component::connect(
            &format!("127.0.0.1:{}", monitor.port),
            "observer",
            "aimm",
            Duration::from_secs(3),
        )
        .await
        .unwrap();
        // The first states list the observer without its name and group:
        // the monitor has not taken in its announcement yet.
        let includes_itself = async {
            loop {
                let state = observer.next_state().await.unwrap().expect("a state");
                let announced = |c: &ComponentInfo| c.cid == state.cid && c.group.is_some();
                if state.components.iter().any(announced) {
                    return state;
                }
            }
        };
        let state = tokio::time::timeout(Duration::from_secs(10), includes_itself)
            .await
            .expect("a state naming the observer within 10 s");
        observer.close().await;
        state
    });
    let ours: Vec<_> = state
        .components
        .iter()
        .filter(|c| c.group.as_deref() == Some("aimm"))
        .collect();
    assert_eq!(ours.len(), 2, "the follower and the observer: {ours:?}");
    assert!(
        ours.iter().all(|c| !c.blessing_res.ready && !is_blessed(c)),
        "{ours:?}"
    );
    drop(monitor);
    wait_for(&runtime, &mut active, None);
}
