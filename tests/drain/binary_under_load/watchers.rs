//! The watchers of the drain under load: [`WATCHERS`] watch streams (WatchCalls and
//! WatchDevices) over [`WATCH_CHANNELS`] connections, each read to its end.

use std::sync::Arc;

use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::{USERS, WATCH_CHANNELS, WATCHERS, within};
use crate::common::binary::Binary;
use crate::common::{as_user, pb};

/// How a watch stream ended: its snapshot's epoch, the last event it carried, and its
/// status.
pub(super) struct WatchEnd {
    pub(super) epoch: String,
    pub(super) last_event: u64,
    pub(super) status: tonic::Status,
}

/// Opens `WATCHERS` watch streams; returns once each has had its snapshot.
pub(super) async fn open_watchers(gw: &Binary, ends: &mut JoinSet<WatchEnd>) {
    let ready = Arc::new(Semaphore::new(0));
    let mut channels = Vec::new();
    for _ in 0..WATCH_CHANNELS {
        let channel = tonic::transport::Endpoint::from_shared(gw.grpc_url())
            .unwrap()
            .connect()
            .await
            .unwrap();
        channels.push(channel);
    }
    for i in 0..WATCHERS {
        let channel = channels[i % WATCH_CHANNELS].clone();
        let user = USERS[i % USERS.len()];
        let ready = ready.clone();
        if i % 3 == 2 {
            ends.spawn(async move {
                let mut client = pb::device_service_client::DeviceServiceClient::new(channel);
                let request = as_user(user, pb::WatchDevicesRequest::default());
                let mut stream = client.watch_devices(request).await.unwrap().into_inner();
                let epoch = match stream.message().await.unwrap().unwrap().kind {
                    Some(pb::watch_devices_response::Kind::Snapshot(s)) => s.epoch,
                    other => panic!("expected a snapshot, got {other:?}"),
                };
                ready.add_permits(1);
                let mut last_event = 0;
                loop {
                    match stream.message().await {
                        Ok(Some(message)) => {
                            if let Some(pb::watch_devices_response::Kind::Event(e)) = message.kind {
                                last_event = e.sequence;
                            }
                        }
                        Ok(None) => panic!("a device watch ended without a status"),
                        Err(status) => {
                            return WatchEnd {
                                epoch,
                                last_event,
                                status,
                            };
                        }
                    }
                }
            });
        } else {
            ends.spawn(async move {
                let mut client = pb::call_service_client::CallServiceClient::new(channel);
                let request = as_user(user, pb::WatchCallsRequest::default());
                let mut stream = client.watch_calls(request).await.unwrap().into_inner();
                let epoch = match stream.message().await.unwrap().unwrap().kind {
                    Some(pb::watch_calls_response::Kind::Snapshot(s)) => s.epoch,
                    other => panic!("expected a snapshot, got {other:?}"),
                };
                ready.add_permits(1);
                let mut last_event = 0;
                loop {
                    match stream.message().await {
                        Ok(Some(message)) => {
                            if let Some(pb::watch_calls_response::Kind::Event(e)) = message.kind {
                                last_event = e.sequence;
                            }
                        }
                        Ok(None) => panic!("a call watch ended without a status"),
                        Err(status) => {
                            return WatchEnd {
                                epoch,
                                last_event,
                                status,
                            };
                        }
                    }
                }
            });
        }
    }
    let all = u32::try_from(WATCHERS).unwrap();
    within("every watcher's snapshot", ready.acquire_many(all))
        .await
        .unwrap()
        .forget();
}
