//! The change feed for embedders: reads by cursor, and a subscription that waits on the
//! store's signal when it has caught up (see [`crate::feed`]).

use super::Engine;
use crate::error::{Error, Result};
use crate::feed::{ChangePage, FeedItem, FeedPosition, FeedSignal, MAX_FEED_PAGE};
use crate::ids::{MemberId, ProgramId};
use crate::store::Store;
use futures::stream::BoxStream;
use std::collections::VecDeque;
use std::sync::Arc;

impl Engine {
    /// The program's current end of the feed: a subscription from here gets only what comes
    /// next.
    pub async fn feed_head(&self, program: &ProgramId) -> Result<FeedPosition> {
        self.get_program(program).await?;
        Ok(self.store.feed_head(program).await?)
    }

    /// Up to `limit` changes after `after` (of one member if given), in position order.
    pub async fn changes_after(
        &self,
        program: &ProgramId,
        after: FeedPosition,
        member: Option<&MemberId>,
        limit: usize,
    ) -> Result<ChangePage> {
        let limit = limit.clamp(1, MAX_FEED_PAGE);
        Ok(self
            .store
            .changes_after(program, after.max(0), member, limit)
            .await?)
    }

    /// A never-ending stream of the program's changes after `from` (from now on if `None`),
    /// of one member if given. It reads the store by cursor and waits on the store's signal
    /// when it has caught up, so it sees every committed change once, in order, also those of
    /// other processes on a shared database. A store failure is yielded as an error, and the
    /// stream carries on from where it was.
    pub fn subscribe(
        &self,
        program: ProgramId,
        from: Option<FeedPosition>,
        member: Option<MemberId>,
    ) -> BoxStream<'static, Result<FeedItem>> {
        let state = Subscription {
            store: Arc::clone(&self.store),
            signal: self.store.feed_signal(),
            program,
            member,
            cursor: from.map(|c| c.max(0)),
            buffered: VecDeque::new(),
        };
        Box::pin(futures::stream::unfold(state, |mut state| async move {
            let item = state.next().await;
            Some((item, state))
        }))
    }
}

struct Subscription {
    store: Arc<dyn Store>,
    signal: FeedSignal,
    program: ProgramId,
    member: Option<MemberId>,
    /// The last position handed out (`None` until the head is read).
    cursor: Option<FeedPosition>,
    buffered: VecDeque<FeedItem>,
}

impl Subscription {
    async fn next(&mut self) -> Result<FeedItem> {
        loop {
            if let Some(item) = self.buffered.pop_front() {
                if let FeedItem::Change(change) = &item {
                    self.cursor = Some(change.position);
                }
                return Ok(item);
            }
            let listener = self.signal.listen();
            let cursor = match self.cursor {
                Some(cursor) => cursor,
                None => {
                    let head = self.store.feed_head(&self.program).await?;
                    self.cursor = Some(head);
                    head
                }
            };
            let page = self
                .store
                .changes_after(&self.program, cursor, self.member.as_ref(), MAX_FEED_PAGE)
                .await
                .map_err(Error::from)?;
            if page.missed {
                self.buffered.push_back(FeedItem::Missed);
            }
            self.buffered
                .extend(page.changes.into_iter().map(FeedItem::Change));
            if self.buffered.is_empty() {
                listener.await;
            }
        }
    }
}
