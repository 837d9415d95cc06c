//! Replay jobs: each runs in a tokio task of its own, its progress shared with the routes
//! that read it. The job's record is in the store: a replay another process runs is read
//! from there, and one left `running` by a process that stopped is resumed at start-up
//! ([`resume_replays`]) — applying again is harmless, as every change is made at most once.

use crate::AppState;
use loyalty_core::ids::ReplayId;
use loyalty_core::replay::{ReplayProgress, ReplayRecord};
use loyalty_core::Engine;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// The replays this process runs, by id.
#[derive(Debug, Default)]
pub struct ReplayJobs {
    running: Mutex<HashMap<ReplayId, Arc<ReplayProgress>>>,
}

impl ReplayJobs {
    /// The progress of a replay this process runs.
    pub fn progress(&self, id: &ReplayId) -> Option<Arc<ReplayProgress>> {
        self.lock().get(id).cloned()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ReplayId, Arc<ReplayProgress>>> {
        self.running.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs a recorded replay in a task of its own.
    pub fn start(self: &Arc<Self>, engine: Arc<Engine>, record: ReplayRecord) {
        let progress = ReplayProgress::new();
        let id = record.id.clone();
        self.lock().insert(id.clone(), progress.clone());
        let jobs = self.clone();
        tokio::spawn(async move {
            match engine.run_recorded_replay(record, &progress).await {
                Ok(done) => tracing::info!(
                    replay = %done.id,
                    state = done.state.as_str(),
                    processed = done.processed,
                    "replay ended"
                ),
                Err(error) => tracing::warn!(
                    replay = %id,
                    %error,
                    "a replay's end could not be recorded; it is resumed at the next start"
                ),
            }
            jobs.lock().remove(&id);
        });
    }
}

/// Resumes the replays left `running` by a process that stopped (all of them: the servers on
/// one database should be started one after another, or each resumes them, which is harmless
/// but twice the work).
pub async fn resume_replays(state: &AppState) -> loyalty_core::error::Result<usize> {
    let running = state.engine.running_replays().await?;
    let count = running.len();
    for record in running {
        tracing::info!(replay = %record.id, "resuming a replay left running");
        state.replays.start(state.engine.clone(), record);
    }
    Ok(count)
}
