//! The live stream's plumbing: per program, one hub that reads the store's change feed once
//! for all of this process's stream clients and fans it out over a bounded broadcast
//! channel, so that a thousand clients cost one reader, and a slow client costs nothing but
//! its own place in the channel: when it falls a whole channel behind it is dropped (with a
//! last message saying so), never buffered without bound, and ingestion never waits for it.
//!
//! A client first catches up from the store, from its cursor (`Last-Event-ID`) or from the
//! head, at its own pace; it subscribes to the hub before that, and then skips what it
//! already had, so nothing falls between the two.

use futures::stream::{BoxStream, StreamExt};
use loyalty_core::feed::{Change, ChangeKind, FeedPosition, MAX_FEED_PAGE};
use loyalty_core::ids::{MemberId, ProgramId};
use loyalty_core::Engine;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;
use tokio::sync::{broadcast, watch};
use tokio::task::AbortHandle;

/// How many changes a client may fall behind the hub before it is dropped.
pub const CLIENT_LAG_LIMIT: usize = 4096;

/// One message of the stream, serialized once for every client.
#[derive(Debug)]
pub struct Frame {
    pub position: FeedPosition,
    pub kind: ChangeKind,
    pub member: Option<MemberId>,
    /// The message's JSON text.
    pub data: String,
}

impl Frame {
    fn of(change: &Change) -> Self {
        Self {
            position: change.position,
            kind: change.kind(),
            member: change.member_id().cloned(),
            data: change.data_json(),
        }
    }
}

/// What a client's stream yields besides changes.
#[derive(Clone, Debug)]
pub enum StreamItem {
    Change(Arc<Frame>),
    /// Changes after the client's cursor are past retention (or the cursor was never handed
    /// out): what follows starts at the oldest change kept.
    Reset,
    /// The last message: the client is dropped, for this reason (`too_slow`: it fell a
    /// whole channel behind; `store_unavailable`: the store failed while it caught up). It
    /// may reconnect with its cursor.
    Dropped(&'static str),
}

/// The hubs of this process, by program, and the signal that ends every stream at shutdown.
#[derive(Debug)]
pub struct StreamHubs {
    hubs: Mutex<HashMap<ProgramId, Weak<Hub>>>,
    closing: watch::Sender<bool>,
}

impl Default for StreamHubs {
    fn default() -> Self {
        Self {
            hubs: Mutex::new(HashMap::new()),
            closing: watch::Sender::new(false),
        }
    }
}

#[derive(Debug)]
struct Hub {
    sender: broadcast::Sender<Arc<Frame>>,
    task: AbortHandle,
}

impl Drop for Hub {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl StreamHubs {
    /// Ends every stream (the server is shutting down: graceful shutdown waits for
    /// responses in flight, and a stream never ends by itself).
    pub fn close_all(&self) {
        self.closing.send_replace(true);
    }

    /// A subscription to the program's live changes, starting the hub if none runs.
    fn subscribe(
        &self,
        engine: &Arc<Engine>,
        program: &ProgramId,
        head: FeedPosition,
    ) -> (Arc<Hub>, broadcast::Receiver<Arc<Frame>>) {
        let mut hubs = self.hubs.lock().unwrap_or_else(|e| e.into_inner());
        hubs.retain(|_, hub| hub.strong_count() > 0);
        if let Some(hub) = hubs.get(program).and_then(Weak::upgrade) {
            let receiver = hub.sender.subscribe();
            return (hub, receiver);
        }
        let (sender, receiver) = broadcast::channel(CLIENT_LAG_LIMIT);
        let task = tokio::spawn(run_hub(
            Arc::clone(engine),
            program.clone(),
            head,
            sender.clone(),
        ));
        let hub = Arc::new(Hub {
            sender,
            task: task.abort_handle(),
        });
        hubs.insert(program.clone(), Arc::downgrade(&hub));
        (hub, receiver)
    }

    /// The client's stream: what came after `after` (from `head` if `None`), then live
    /// changes, of one member if given. It ends at shutdown, after a `Dropped` or a `Failed`.
    pub fn client(
        &self,
        engine: &Arc<Engine>,
        program: ProgramId,
        head: FeedPosition,
        after: Option<FeedPosition>,
        member: Option<MemberId>,
    ) -> BoxStream<'static, StreamItem> {
        let (hub, live) = self.subscribe(engine, &program, head);
        let client = Client {
            engine: Arc::clone(engine),
            program,
            member,
            cursor: after.unwrap_or(head),
            catching_up: true,
            pending: std::collections::VecDeque::new(),
            live,
            _hub: hub,
            done: false,
        };
        let mut closing = self.closing.subscribe();
        let items = futures::stream::unfold(client, |mut client| async move {
            let item = client.next().await?;
            Some((item, client))
        });
        let closed = async move {
            let _ = closing.wait_for(|closed| *closed).await;
        };
        Box::pin(items.take_until(closed))
    }
}

/// Reads the program's feed after `cursor` whenever the store signals a commit, and
/// broadcasts each change once. Stops when its last client is gone (the hub is dropped).
async fn run_hub(
    engine: Arc<Engine>,
    program: ProgramId,
    mut cursor: FeedPosition,
    sender: broadcast::Sender<Arc<Frame>>,
) {
    let signal = engine.store().feed_signal();
    loop {
        let listener = signal.listen();
        match engine
            .changes_after(&program, cursor, None, MAX_FEED_PAGE)
            .await
        {
            Ok(page) => {
                let caught_up = page.changes.is_empty();
                for change in &page.changes {
                    cursor = change.position;
                    // No receiver at the moment is fine: clients come and go.
                    let _ = sender.send(Arc::new(Frame::of(change)));
                }
                if !caught_up {
                    continue;
                }
            }
            Err(error) => {
                tracing::warn!(%error, "reading the change feed");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        }
        // The store's signal, or a look now and then in case a wake-up was lost (a
        // notification sent while the listening connection was being replaced).
        let _ = tokio::time::timeout(Duration::from_secs(5), listener).await;
    }
}

struct Client {
    engine: Arc<Engine>,
    program: ProgramId,
    member: Option<MemberId>,
    /// The last position sent (or the start).
    cursor: FeedPosition,
    catching_up: bool,
    pending: std::collections::VecDeque<StreamItem>,
    live: broadcast::Receiver<Arc<Frame>>,
    /// Keeps the hub running while the client is connected.
    _hub: Arc<Hub>,
    done: bool,
}

impl Client {
    async fn next(&mut self) -> Option<StreamItem> {
        loop {
            if self.done && self.pending.is_empty() {
                return None;
            }
            if let Some(item) = self.pending.pop_front() {
                if let StreamItem::Change(frame) = &item {
                    self.cursor = frame.position;
                }
                return Some(item);
            }
            if self.catching_up {
                self.catch_up().await;
                continue;
            }
            match self.live.recv().await {
                Ok(frame) => {
                    let theirs = self
                        .member
                        .as_ref()
                        .is_none_or(|m| frame.member.as_ref() == Some(m));
                    if frame.position > self.cursor && theirs {
                        self.cursor = frame.position;
                        return Some(StreamItem::Change(frame));
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    self.done = true;
                    return Some(StreamItem::Dropped("too_slow"));
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }

    /// One page from the store; when it is empty the client goes live.
    async fn catch_up(&mut self) {
        let page = self
            .engine
            .changes_after(
                &self.program,
                self.cursor,
                self.member.as_ref(),
                MAX_FEED_PAGE,
            )
            .await;
        match page {
            Ok(page) => {
                if page.missed {
                    self.pending.push_back(StreamItem::Reset);
                }
                if page.changes.is_empty() {
                    self.catching_up = false;
                }
                self.pending.extend(
                    page.changes
                        .iter()
                        .map(|change| StreamItem::Change(Arc::new(Frame::of(change)))),
                );
            }
            Err(error) => {
                tracing::warn!(%error, "catching up with the change feed");
                self.pending
                    .push_back(StreamItem::Dropped("store_unavailable"));
                self.done = true;
            }
        }
    }
}
