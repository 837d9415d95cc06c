//! The committers' queue: callers' batches wait here, and a committer takes what is waiting as
//! one group, within the group's size limit and without merging batches that disagree on
//! enrolment.

use loyalty_core::ledger::LogEntry;
use loyalty_core::store::{CommitBatch, StoreResult};
use std::collections::HashMap;
use tokio::sync::{mpsc, oneshot};

/// One caller's batch, waiting for a committer.
pub(crate) struct Job {
    pub(crate) batch: CommitBatch,
    pub(crate) reply: oneshot::Sender<StoreResult<Vec<LogEntry>>>,
}

/// The committers' shared end of the queue.
pub(crate) struct Queue {
    rx: mpsc::Receiver<Job>,
    /// A job taken from the channel that did not fit the previous group: it opens the next.
    held: Option<Job>,
}

impl Queue {
    pub(crate) fn new(rx: mpsc::Receiver<Job>) -> Self {
        Self { rx, held: None }
    }

    /// Waits for one job, then takes whatever else is already waiting, up to `max_items`
    /// items. `None` once every sender is gone.
    pub(super) async fn next_group(&mut self, max_items: usize) -> Option<Vec<Job>> {
        let first = match self.held.take() {
            Some(job) => job,
            None => self.rx.recv().await?,
        };
        let mut items = first.batch.items.len();
        // Whether an item may be accepted is decided from the members known before its
        // transaction and its batch's enrolment flag. Two batches of one program that disagree
        // on the flag (it changed between them) could enrol a member for each other, which
        // that decision would miss, so they are never merged.
        let mut enrolment = HashMap::from([(
            first.batch.program_id.clone(),
            first.batch.enroll_unknown_members,
        )]);
        let mut group = vec![first];
        while items < max_items {
            let Ok(job) = self.rx.try_recv() else { break };
            let fits = items + job.batch.items.len() <= max_items;
            let agrees = enrolment
                .get(&job.batch.program_id)
                .is_none_or(|flag| *flag == job.batch.enroll_unknown_members);
            if !fits || !agrees {
                self.held = Some(job);
                break;
            }
            items += job.batch.items.len();
            enrolment.insert(
                job.batch.program_id.clone(),
                job.batch.enroll_unknown_members,
            );
            group.push(job);
        }
        Some(group)
    }
}
