//! Gathers concurrent single verifications into batches for the core's `decide_many`,
//! whose Ed25519 batch verification costs about half a single verification per code.
//!
//! No timer and no waiting: a request queues its code; if fewer than one leader per
//! worker thread is running, it starts one. A leader first yields once (so requests that
//! are already ready can queue behind it), then decides everything queued, 64 at a time,
//! until the queue is empty. At low load every batch holds one code and costs what
//! `decide` costs; under load the queue fills while a batch runs. Leaders run as their
//! own tasks, so a client that disconnects never strands the codes queued behind it.

use std::sync::Arc;

use gateway_core::{Decision, RequestError};
use parking_lot::Mutex;
use tokio::sync::oneshot;

use crate::app::App;

/// Most codes decided in one call.
pub const MAX_BATCH: usize = 64;

type Reply = oneshot::Sender<Result<Decision, RequestError>>;

struct Job {
    code: String,
    venue: String,
    reply: Reply,
}

#[derive(Default)]
struct Queue {
    jobs: Vec<Job>,
    leaders: usize,
}

/// The queue shared by every request.
pub struct Batcher {
    queue: Mutex<Queue>,
    max_leaders: usize,
}

impl Batcher {
    pub fn new(max_leaders: usize) -> Self {
        Batcher {
            queue: Mutex::new(Queue::default()),
            max_leaders: max_leaders.max(1),
        }
    }

    /// Decides one code, possibly in a batch with others.
    pub async fn decide(
        app: &Arc<App>,
        code: String,
        venue: String,
    ) -> Option<Result<Decision, RequestError>> {
        let (reply, rx) = oneshot::channel();
        let lead = {
            let mut q = app.batcher.queue.lock();
            q.jobs.push(Job { code, venue, reply });
            if q.leaders < app.batcher.max_leaders {
                q.leaders += 1;
                true
            } else {
                false
            }
        };
        if lead {
            let app = app.clone();
            tokio::spawn(async move {
                tokio::task::yield_now().await;
                lead_until_empty(&app);
            });
        }
        rx.await.ok()
    }
}

fn lead_until_empty(app: &App) {
    loop {
        let batch: Vec<Job> = {
            let mut q = app.batcher.queue.lock();
            if q.jobs.is_empty() {
                q.leaders -= 1;
                return;
            }
            let n = q.jobs.len().min(MAX_BATCH);
            q.jobs.drain(..n).collect()
        };
        let items: Vec<(&str, &str)> = batch
            .iter()
            .map(|j| (j.code.as_str(), j.venue.as_str()))
            .collect();
        let results = app.verifier.decide_many(&items, app.now());
        for (job, result) in batch.into_iter().zip(results) {
            if let Ok(d) = &result {
                app.metrics.decision(d.holder.reason);
            }
            let _ = job.reply.send(result);
        }
    }
}
