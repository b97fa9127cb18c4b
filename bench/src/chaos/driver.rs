//! The driver: groups of `plan.party_size` agents, all groups at once, make calls through
//! the gateway's gRPC operations (straight to the gateway, not through the proxy). The
//! first agent of a group dials the second, who answers; with more than two, the first
//! adds each other agent with SingleStepConference and that agent answers. Then cycles of
//! UpdateUserData (a new mark) followed by StartCallRecording, Hold, Retrieve or
//! StopCallRecording in turn, and the call ends (Hangup, or ClearCall for a conference).
//! A conference also adds [`BUSY_NUMBER`], whose leg fails after the answer delay: the
//! parties see it leave, and the owner gets an asynchronous error (a `CallError` on
//! WatchCalls, an `ErrorMessage` on CometD), which is an event of the stream like the
//! others; the driver waits for it before ending the call, since a leg released first
//! fails silently. Every operation changes the state, recording state, parties or mark of
//! every party's view, so each event is unique per user (see [`super::keys`]); a conference
//! makes one operation an event for each of its parties, so the operations the driver pays
//! for are spread over more events.
//!
//! Groups start new calls until the reference has counted the planned events; then one
//! last call of the first group closes the log.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use futures::future::try_join_all;
use tonic::transport::Channel;
use voice_gateway::grpc::pb;
use voice_gateway::grpc::pb::call_service_client::CallServiceClient;

use super::ChaosPlan;
use super::keys::MARK;
use super::reference::ReferenceWatcher;
use crate::setup::{as_agent, phone};

type Calls = CallServiceClient<Channel>;

/// An outside number that answers busy (`switch.busy_numbers` of the chaos configuration):
/// each conference adds it, and the leg fails, an asynchronous error for the owner.
pub const BUSY_NUMBER: &str = "9165550486";
/// How long the simulated outside world takes to answer (or to fail).
pub const EXTERNAL_ANSWER_MS: u64 = 50;

/// Drives calls until the reference counted `plan.events` call events and has seen the
/// closing call end.
pub async fn drive(
    grpc: SocketAddr,
    plan: &ChaosPlan,
    reference: &ReferenceWatcher,
) -> anyhow::Result<()> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{grpc}"))?
        .connect()
        .await
        .context("the driver cannot connect")?;
    let client = CallServiceClient::new(channel);
    let size = plan.party_size.max(2);
    let groups = (0..plan.users / size).map(|group| {
        let mut call = GroupCall {
            client: client.clone(),
            agents: (group * size..(group + 1) * size).collect(),
            mark: 0,
        };
        async move {
            while reference.count() < plan.events {
                call.one(plan.cycles_per_call, reference).await?;
            }
            anyhow::Ok(())
        }
    });
    tokio::time::timeout(plan.drive_limit, try_join_all(groups))
        .await
        .with_context(|| {
            format!(
                "the driver did not finish within {:?} ({} of {} events)",
                plan.drive_limit,
                reference.count(),
                plan.events
            )
        })??;
    // The closing call: once every party's release is in the reference's log, every
    // event committed before (all the groups' calls) is there too.
    let mut closing = GroupCall {
        client,
        agents: (0..size).collect(),
        mark: 0,
    };
    let id = tokio::time::timeout(Duration::from_secs(30), closing.one(0, reference))
        .await
        .context("the closing call did not end within 30 s")??;
    reference
        .wait_until(
            "the closing call's release",
            Duration::from_secs(30),
            |log| {
                log.events
                    .iter()
                    .rev()
                    .filter(|e| e.key.view.id == id && e.key.view.is_released())
                    .count()
                    == size
            },
        )
        .await
}

/// One group's calls.
struct GroupCall {
    client: Calls,
    /// The agents; the first one places the call and acts on it.
    agents: Vec<usize>,
    /// The last mark set (unique within the group's calls).
    mark: i64,
}

impl GroupCall {
    fn next_mark(&mut self) -> Vec<pb::KeyValue> {
        self.mark += 1;
        vec![pb::KeyValue {
            key: MARK.into(),
            value: Some(pb::key_value::Value::IntValue(self.mark)),
        }]
    }

    /// Makes one call with `cycles` cycles; returns its id.
    async fn one(&mut self, cycles: usize, reference: &ReferenceWatcher) -> anyhow::Result<String> {
        let owner = self.agents[0];
        let dial = pb::DialRequest {
            destination: phone(self.agents[1]),
            ..Default::default()
        };
        let id = self
            .client
            .dial(as_agent(owner, dial))
            .await
            .context("Dial")?
            .into_inner()
            .call
            .context("a call in the Dial response")?
            .id;
        self.answer(&id, self.agents[1]).await?;
        for k in 2..self.agents.len() {
            self.add(&id, &phone(self.agents[k])).await?;
            self.answer(&id, self.agents[k]).await?;
        }
        let conference = self.agents.len() > 2;
        // The error comes after this point of the log.
        let before = reference.count() as usize;
        if conference {
            self.add(&id, BUSY_NUMBER).await?;
        }
        for cycle in 0..cycles {
            self.cycle(&id, cycle).await?;
        }
        if conference {
            let failed = |log: &super::reference::ReferenceLog| {
                log.events[before.min(log.events.len())..]
                    .iter()
                    .any(|e| e.key.is_error() && e.key.view.id == id)
            };
            reference
                .wait_until("the busy party's error", Duration::from_secs(30), failed)
                .await?;
            let clear = pb::ClearCallRequest {
                call_id: id.clone(),
            };
            self.client
                .clear_call(as_agent(owner, clear))
                .await
                .context("ClearCall")?;
        } else {
            let hangup = pb::HangupRequest {
                call_id: id.clone(),
            };
            self.client
                .hangup(as_agent(owner, hangup))
                .await
                .context("Hangup")?;
        }
        Ok(id)
    }

    /// Adds `number` to the call with SingleStepConference (with a new mark).
    async fn add(&mut self, id: &str, number: &str) -> anyhow::Result<()> {
        let add = pb::SingleStepConferenceRequest {
            call_id: id.to_owned(),
            destination: number.to_owned(),
            location: String::new(),
            user_data: self.next_mark(),
        };
        self.client
            .single_step_conference(as_agent(self.agents[0], add))
            .await
            .with_context(|| format!("SingleStepConference to {number}"))?;
        Ok(())
    }

    async fn answer(&mut self, id: &str, agent: usize) -> anyhow::Result<()> {
        let answer = pb::AnswerRequest {
            call_id: id.to_owned(),
        };
        self.client
            .answer(as_agent(agent, answer))
            .await
            .context("Answer")?;
        Ok(())
    }

    /// UpdateUserData with a new mark, then the cycle's operation.
    async fn cycle(&mut self, id: &str, cycle: usize) -> anyhow::Result<()> {
        let owner = self.agents[0];
        let call_id = || id.to_owned();
        let update = pb::UpdateUserDataRequest {
            call_id: call_id(),
            user_data: self.next_mark(),
        };
        let client = &mut self.client;
        client
            .update_user_data(as_agent(owner, update))
            .await
            .context("UpdateUserData")?;
        let done = match cycle % 4 {
            0 => client
                .start_call_recording(as_agent(
                    owner,
                    pb::StartCallRecordingRequest { call_id: call_id() },
                ))
                .await
                .map(drop),
            1 => client
                .hold(as_agent(owner, pb::HoldRequest { call_id: call_id() }))
                .await
                .map(drop),
            2 => client
                .retrieve(as_agent(owner, pb::RetrieveRequest { call_id: call_id() }))
                .await
                .map(drop),
            _ => client
                .stop_call_recording(as_agent(
                    owner,
                    pb::StopCallRecordingRequest { call_id: call_id() },
                ))
                .await
                .map(drop),
        };
        done.with_context(|| format!("the operation of cycle {cycle}"))
    }
}
