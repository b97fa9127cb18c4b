//! The driver: calls between the watched users (dial, answer, hang up), each operation on
//! the next instance up, at a paced rate, while a case runs. An operation that fails (its
//! instance went away under it) is recorded and the call hung up elsewhere; only calls
//! whose three operations succeeded are checked for completeness.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::watcher::Instances;
use crate::common::{as_user, pb};

type Client = pb::call_service_client::CallServiceClient<tonic::transport::Channel>;

/// The bound on one operation (its reply waits for the event from the shared log, which
/// waits for a takeover while no instance owns the user).
const OPERATION_BOUND: Duration = Duration::from_secs(3);
/// The pause between two calls of the driver: its rate, not a synchronisation.
const PACE: Duration = Duration::from_millis(30);

/// A call the driver dialed.
#[derive(Debug, Clone)]
pub struct Done {
    pub id: String,
    pub caller: &'static str,
    pub callee: &'static str,
    /// Whether its answer and hang-up succeeded too.
    pub completed: bool,
}

/// (caller, callee, callee's number).
pub const PAIRS: [(&str, &str, &str); 3] = [
    ("agent1", "agent2", "15001"),
    ("agent2", "agent3", "15002"),
    ("agent3", "agent1", "15000"),
];

/// The running driver.
pub struct Driver {
    pub done: Arc<Mutex<Vec<Done>>>,
    pub failed: Arc<Mutex<Vec<String>>>,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl Driver {
    /// Starts making calls through `instances`.
    pub fn start(instances: Arc<Instances>) -> Self {
        let done = Arc::new(Mutex::new(Vec::new()));
        let failed = Arc::new(Mutex::new(Vec::new()));
        let stop = CancellationToken::new();
        let task = tokio::spawn(drive(instances, done.clone(), failed.clone(), stop.clone()));
        Self {
            done,
            failed,
            stop,
            task,
        }
    }

    /// Stops after the call in progress; returns the calls dialed.
    pub async fn stop(self) -> Vec<Done> {
        self.stop.cancel();
        tokio::time::timeout(4 * OPERATION_BOUND, self.task)
            .await
            .expect("the driver stops after its call in progress")
            .unwrap();
        self.done.lock().unwrap().clone()
    }

    /// How many calls were carried out (dialed, answered, hung up) so far.
    pub fn count(&self) -> usize {
        self.done
            .lock()
            .unwrap()
            .iter()
            .filter(|d| d.completed)
            .count()
    }
}

async fn drive(
    instances: Arc<Instances>,
    done: Arc<Mutex<Vec<Done>>>,
    failed: Arc<Mutex<Vec<String>>>,
    stop: CancellationToken,
) {
    let mut next = 0;
    for round in 0.. {
        if stop.is_cancelled() {
            return;
        }
        let (caller, callee, number) = PAIRS[round % PAIRS.len()];
        let (id, outcome) = call(&instances, &mut next, caller, callee, number).await;
        if let Some(id) = id {
            let completed = outcome.is_ok();
            done.lock().unwrap().push(Done {
                id,
                caller,
                callee,
                completed,
            });
        }
        if let Err(error) = outcome {
            failed.lock().unwrap().push(error);
        }
        tokio::time::sleep(PACE).await;
    }
}

async fn client(instances: &Instances, next: &mut usize) -> Result<Client, String> {
    let on = instances.up_from(*next);
    *next = on + 1;
    tokio::time::timeout(OPERATION_BOUND, Client::connect(instances.urls[on].clone()))
        .await
        .map_err(|_| format!("connecting to {on} took too long"))?
        .map_err(|e| format!("connecting to {on}: {e}"))
}

/// Dials, answers and hangs up; returns the call id if the dial succeeded, and whether
/// the rest did.
async fn call(
    instances: &Instances,
    next: &mut usize,
    caller: &'static str,
    callee: &'static str,
    number: &str,
) -> (Option<String>, Result<(), String>) {
    let dial = pb::DialRequest {
        destination: number.into(),
        ..Default::default()
    };
    let dialed = async {
        let mut on = client(instances, next).await?;
        let call = bounded("dial", on.dial(as_user(caller, dial))).await?.call;
        Ok::<_, String>(call.ok_or("a dial without its call")?.id)
    };
    let id = match dialed.await {
        Ok(id) => id,
        Err(error) => return (None, Err(error)),
    };
    let answered = async {
        let mut on = client(instances, next).await?;
        let answer = pb::AnswerRequest {
            call_id: id.clone(),
        };
        bounded("answer", on.answer(as_user(callee, answer))).await?;
        let mut on = client(instances, next).await?;
        let hangup = pb::HangupRequest {
            call_id: id.clone(),
        };
        bounded("hangup", on.hangup(as_user(caller, hangup))).await
    };
    match answered.await {
        Ok(_) => (Some(id), Ok(())),
        Err(error) => {
            // Clean up elsewhere so the pair is free for its next call; the call is not
            // counted as carried out.
            if let Ok(mut on) = client(instances, next).await {
                let hangup = pb::HangupRequest {
                    call_id: id.clone(),
                };
                let _ = bounded("cleanup", on.hangup(as_user(caller, hangup))).await;
            }
            let error = format!("call {id}: {error}");
            (Some(id), Err(error))
        }
    }
}

async fn bounded<T>(
    what: &str,
    reply: impl std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
) -> Result<T, String> {
    match tokio::time::timeout(OPERATION_BOUND, reply).await {
        Ok(Ok(reply)) => Ok(reply.into_inner()),
        Ok(Err(status)) => Err(format!("{what}: {status:?}")),
        Err(_) => Err(format!("{what}: no reply within {OPERATION_BOUND:?}")),
    }
}
