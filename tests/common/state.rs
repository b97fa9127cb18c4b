//! What a refused request must leave unchanged, read through the gateway's own APIs: the
//! gateway-wide event sequence, every call view and every device of the demo users.

use pb::call_service_client::CallServiceClient;
use pb::device_service_client::DeviceServiceClient;
use tonic::transport::Channel;

use super::{TestGateway, WAIT, as_service, as_user, pb};

/// The demo users, for naming them in a difference of state.
pub const USERS: [&str; 7] = [
    "agent1",
    "agent2",
    "agent3",
    "supervisor1",
    "supervisor2",
    "admin",
    "basic1",
];

/// What a refused request must not change: the gateway-wide event sequence (any committed
/// change of any call or device moves it), and every call view and device of every user.
#[derive(Debug, Clone, PartialEq)]
pub struct GatewayState {
    /// The last event sequence, from a WatchCalls snapshot.
    pub last_sequence: u64,
    /// Every user's views of the calls that are not released (durations zeroed).
    pub calls: Vec<pb::Call>,
    /// Every user's device.
    pub devices: Vec<pb::Device>,
}

impl GatewayState {
    /// Reads everything a refused request must leave unchanged: the demo contact center
    /// through the service account's snapshots, basic1 through its own lists.
    pub async fn read(gw: &TestGateway) -> Self {
        Self::read_with(&gw.calls().await, &gw.devices().await).await
    }

    /// Like [`Self::read`], over clients the caller holds (no new connection per read).
    pub async fn read_with(
        calls: &CallServiceClient<Channel>,
        devices: &DeviceServiceClient<Channel>,
    ) -> Self {
        let whole_center = || as_service(None, ());
        let (mut calls, mut devices) = (calls.clone(), devices.clone());
        let (mut basic_calls, mut basic_devices) = (calls.clone(), devices.clone());
        let center_calls = async {
            let request = whole_center().map(|()| pb::WatchCallsRequest {
                from_sequence: None,
                contact_center: true,
                epoch: String::new(),
            });
            let mut watch = calls.watch_calls(request).await.unwrap().into_inner();
            match watch.message().await.unwrap().unwrap().kind {
                Some(pb::watch_calls_response::Kind::Snapshot(snapshot)) => snapshot,
                other => panic!("a watch opens with a snapshot, not {other:?}"),
            }
        };
        let center_devices = async {
            let request = whole_center().map(|()| pb::WatchDevicesRequest {
                from_sequence: None,
                contact_center: true,
                epoch: String::new(),
            });
            let mut watch = devices.watch_devices(request).await.unwrap().into_inner();
            match watch.message().await.unwrap().unwrap().kind {
                Some(pb::watch_devices_response::Kind::Snapshot(snapshot)) => snapshot,
                other => panic!("a watch opens with a snapshot, not {other:?}"),
            }
        };
        let basic_calls = basic_calls.list_calls(as_user("basic1", pb::ListCallsRequest {}));
        let basic_devices =
            basic_devices.list_devices(as_user("basic1", pb::ListDevicesRequest {}));
        let read = async { tokio::join!(center_calls, center_devices, basic_calls, basic_devices) };
        let (center_calls, center_devices, basic_calls, basic_devices) =
            tokio::time::timeout(WAIT, read)
                .await
                .expect("the gateway's state within the wait");
        let mut calls = center_calls.calls;
        calls.extend(basic_calls.unwrap().into_inner().calls);
        // The one field that changes with time alone.
        calls.iter_mut().for_each(|c| c.duration_seconds = 0);
        let mut devices = center_devices.devices;
        devices.extend(basic_devices.unwrap().into_inner().devices);
        GatewayState {
            last_sequence: center_calls.sequence,
            calls,
            devices,
        }
    }

    /// Reads the state again and fails, naming `what`, if it differs from `self`.
    pub async fn assert_unchanged(&self, gw: &TestGateway, what: &str) {
        let now = Self::read(gw).await;
        if let Some(diff) = self.diff(&now) {
            panic!("{what} changed the gateway: {diff}");
        }
    }

    /// Describes how `after` differs from `self`, or `None` when it does not.
    pub fn diff(&self, after: &Self) -> Option<String> {
        let mut parts = Vec::new();
        if self.last_sequence != after.last_sequence {
            parts.push(format!(
                "events {}..={} were committed",
                self.last_sequence + 1,
                after.last_sequence
            ));
        }
        for user in USERS {
            let views = |calls: &[pb::Call]| -> Vec<pb::Call> {
                calls
                    .iter()
                    .filter(|c| c.user_name == user)
                    .cloned()
                    .collect()
            };
            let (before, now) = (views(&self.calls), views(&after.calls));
            if before != now {
                parts.push(format!("{user}'s calls: {before:?} became {now:?}"));
            }
            let device =
                |devices: &[pb::Device]| devices.iter().find(|d| d.user_name == user).cloned();
            let (before, now) = (device(&self.devices), device(&after.devices));
            if before != now {
                parts.push(format!("{user}'s device: {before:?} became {now:?}"));
            }
        }
        if parts.is_empty() && self != after {
            parts.push(format!("{self:?} became {after:?}"));
        }
        (!parts.is_empty()).then(|| parts.join("; "))
    }
}
