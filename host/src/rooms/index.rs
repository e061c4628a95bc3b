//! The subscription index: which subscriptions a publish reaches.
//!
//! # Shape
//!
//! ```text
//! key set ["customer","target"] ──► customer: "1" ──► target: "chat" ──► leaf {room, subscriptions}
//!                                   │                 └─ "*"          ──► leaf
//!                                   ├─ 2     ──► …
//!                                   └─ "*"   ──► target: "chat"       ──► leaf
//! key set ["user"]              ──► …
//! ```
//!
//! Rooms are grouped by their sorted key names (a publish can only reach
//! rooms with exactly its keys), then a trie with one level per key. Each
//! level branches by concrete value, plus one separate `"*"` branch. Walking
//! it for a published room:
//! - a concrete published value follows its own branch and the `"*"` branch;
//! - a published `"*"` follows every branch.
//!
//! Each leaf is one room and owns that room's subscriptions in a dense `Vec`,
//! so delivery is a linear walk. A subscription lives in exactly one leaf, so
//! a publish to several rooms is deduplicated by leaf, not per subscription.
//! The cost of a publish is the trie nodes visited (at most the matching
//! rooms times the key count, except that a published `"*"` visits the
//! siblings it fans out to) plus one call per delivered subscription; it
//! never scans unrelated subscriptions.
//!
//! A per-session reverse index (request id → room and slot in the leaf's
//! `Vec`) makes unsubscribe and disconnect O(keys) per subscription. Empty
//! leaves, trie nodes and key sets are removed as soon as they empty, and
//! oversized containers are shrunk, so churn does not leak memory.
//!
//! The index does no I/O and takes no locks: the caller owns it behind
//! whatever lock suits (publish needs `&self`, so an `RwLock` lets
//! publishers run side by side). `S` is the caller's subscriber handle
//! (the gateway stores an outbox sender).

use std::collections::{HashMap, HashSet};
use std::hash::Hash;
use std::sync::Arc;

use super::room::{Room, RoomValue};

/// Why a subscription was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IndexError {
    /// The session already has a subscription under this request id; one
    /// request id never binds two rooms (high-templar allowed that).
    #[error("request id already in use in this session")]
    RequestIdInUse,
}

/// See the module docs.
pub struct RoomIndex<S> {
    key_sets: HashMap<Box<[Arc<str>]>, Node<S>>,
    /// session → request id → where its subscription lives.
    sessions: HashMap<u64, HashMap<Arc<str>, Slot>>,
    num_rooms: usize,
    num_subscriptions: usize,
}

struct Slot {
    room: Room,
    /// Position in the leaf's `subscriptions`; kept current on swap_remove.
    index: usize,
}

enum Node<S> {
    /// One level per key, in sorted key order.
    Branch(Branch<S>),
    /// Below the last key: one room.
    Leaf(Leaf<S>),
}

struct Branch<S> {
    values: HashMap<RoomValue, Node<S>>,
    /// Never stored in `values`.
    wildcard: Option<Box<Node<S>>>,
}

struct Leaf<S> {
    room: Room,
    subscriptions: Vec<Subscription<S>>,
}

struct Subscription<S> {
    session: u64,
    request_id: Arc<str>,
    handle: S,
}

impl<S> Default for RoomIndex<S> {
    fn default() -> Self {
        RoomIndex {
            key_sets: HashMap::new(),
            sessions: HashMap::new(),
            num_rooms: 0,
            num_subscriptions: 0,
        }
    }
}

impl<S> RoomIndex<S> {
    pub fn new() -> Self {
        Self::default()
    }

    /// Add `session`'s subscription `request_id` to `room`. The caller has
    /// already checked the room against the session's allowed rooms.
    pub fn subscribe(
        &mut self,
        session: u64,
        request_id: Arc<str>,
        room: Room,
        handle: S,
    ) -> Result<(), IndexError> {
        let by_id = self.sessions.entry(session).or_default();
        if by_id.contains_key(&request_id) {
            return Err(IndexError::RequestIdInUse);
        }

        if !self.key_sets.contains_key(room.keys()) {
            self.key_sets
                .insert(room.keys().into(), Node::for_depth(&room, 0));
        }
        let mut node = self
            .key_sets
            .get_mut(room.keys())
            .expect("inserted just above");
        for (depth, value) in room.values().iter().enumerate() {
            let Node::Branch(branch) = node else {
                unreachable!("a key set's trie has one branch level per key");
            };
            node = if value.is_wildcard() {
                branch
                    .wildcard
                    .get_or_insert_with(|| Box::new(Node::for_depth(&room, depth + 1)))
            } else {
                branch
                    .values
                    .entry(value.clone())
                    .or_insert_with(|| Node::for_depth(&room, depth + 1))
            };
        }
        let Node::Leaf(leaf) = node else {
            unreachable!("a key set's trie ends in leaves after the last key");
        };
        if leaf.subscriptions.is_empty() {
            self.num_rooms += 1;
        }
        leaf.subscriptions.push(Subscription {
            session,
            request_id: request_id.clone(),
            handle,
        });
        let index = leaf.subscriptions.len() - 1;
        by_id.insert(request_id, Slot { room, index });
        self.num_subscriptions += 1;
        Ok(())
    }

    /// Remove one subscription. Returns false if there was none (e.g. a
    /// second unsubscribe), so the caller can answer `not-subscribed`.
    pub fn unsubscribe(&mut self, session: u64, request_id: &str) -> bool {
        let Some(by_id) = self.sessions.get_mut(&session) else {
            return false;
        };
        let Some(slot) = by_id.remove(request_id) else {
            return false;
        };
        if by_id.is_empty() {
            self.sessions.remove(&session);
        } else {
            shrink_map(by_id);
        }
        shrink_map(&mut self.sessions);
        self.detach(slot);
        true
    }

    /// Remove every subscription of a session (on disconnect). Returns how
    /// many there were. Costs O(that number), not O(all subscriptions).
    pub fn remove_session(&mut self, session: u64) -> usize {
        let Some(by_id) = self.sessions.get(&session) else {
            return 0;
        };
        // One at a time through `unsubscribe`, so the slot fix-ups of
        // subscriptions moved inside a leaf (which may be this session's
        // own) always find their entry.
        let ids: Vec<Arc<str>> = by_id.keys().cloned().collect();
        for id in &ids {
            self.unsubscribe(session, id);
        }
        ids.len()
    }

    /// Take a subscription out of its leaf and prune what became empty.
    fn detach(&mut self, slot: Slot) {
        let Some(root) = self.key_sets.get_mut(slot.room.keys()) else {
            debug_assert!(false, "subscription without a key set");
            return;
        };
        let mut outcome = Detached::default();
        let root_empty = detach_from(root, slot.room.values(), slot.index, &mut outcome);
        if root_empty {
            self.key_sets.remove(slot.room.keys());
            shrink_map(&mut self.key_sets);
        }
        if outcome.removed {
            self.num_subscriptions -= 1;
        }
        if outcome.room_closed {
            self.num_rooms -= 1;
        }
        if let Some((session, request_id)) = outcome.moved {
            // swap_remove moved the leaf's last subscription into the hole.
            if let Some(moved) = self
                .sessions
                .get_mut(&session)
                .and_then(|by_id| by_id.get_mut(&request_id))
            {
                moved.index = slot.index;
            }
        }
    }

    /// Call `f(subscription's room, session, request id, handle)` once for
    /// every subscription reached by any of the `published` rooms. A
    /// subscription reached by several published rooms is called once.
    pub fn for_each_match<F>(&self, published: &[Room], mut f: F)
    where
        F: FnMut(&Room, u64, &Arc<str>, &S),
    {
        let mut deliver = |leaf: &Leaf<S>| {
            for sub in &leaf.subscriptions {
                f(&leaf.room, sub.session, &sub.request_id, &sub.handle);
            }
        };
        match published {
            [] => {}
            // One published room reaches each leaf by at most one path.
            [room] => self.visit_matching_leaves(room, &mut deliver),
            // Each leaf is delivered the first time a room reaches it, so
            // what this holds is bounded by the leaves reached, not by the
            // rooms times the leaves each reaches (several wildcard rooms
            // reaching 20,000 leaves each once collected 34 million
            // entries before de-duplicating).
            rooms => {
                let mut seen: HashSet<*const Leaf<S>> = HashSet::new();
                for room in rooms {
                    self.visit_matching_leaves(room, &mut |leaf| {
                        if seen.insert(std::ptr::from_ref(leaf)) {
                            deliver(leaf);
                        }
                    });
                }
            }
        }
    }

    fn visit_matching_leaves<'a>(&'a self, published: &Room, out: &mut impl FnMut(&'a Leaf<S>)) {
        if let Some(root) = self.key_sets.get(published.keys()) {
            visit(root, published.values(), out);
        }
    }

    /// Rooms with at least one subscription.
    pub fn num_rooms(&self) -> usize {
        self.num_rooms
    }

    pub fn num_subscriptions(&self) -> usize {
        self.num_subscriptions
    }

    /// How many subscriptions a session holds (for a per-connection limit).
    pub fn session_subscriptions(&self, session: u64) -> usize {
        self.sessions.get(&session).map_or(0, HashMap::len)
    }

    /// The request id and room of each subscription of `session`.
    pub fn session_rooms(&self, session: u64) -> Vec<(Arc<str>, Room)> {
        self.sessions.get(&session).map_or_else(Vec::new, |by_id| {
            by_id
                .iter()
                .map(|(id, slot)| (id.clone(), slot.room.clone()))
                .collect()
        })
    }

    /// Removes the subscriptions of `session` whose room `keep` refuses
    /// (the user's rights shrank); returns their request ids. Costs that
    /// session's subscriptions.
    pub fn retain_session(&mut self, session: u64, keep: impl Fn(&Room) -> bool) -> Vec<Arc<str>> {
        let Some(by_id) = self.sessions.get(&session) else {
            return Vec::new();
        };
        let dropped: Vec<Arc<str>> = by_id
            .iter()
            .filter(|(_, slot)| !keep(&slot.room))
            .map(|(id, _)| id.clone())
            .collect();
        for id in &dropped {
            self.unsubscribe(session, id);
        }
        dropped
    }

    /// The room a session's subscription is bound to.
    pub fn subscription_room(&self, session: u64, request_id: &str) -> Option<&Room> {
        Some(&self.sessions.get(&session)?.get(request_id)?.room)
    }

    /// Every room and its number of subscriptions, in no particular order
    /// (for the admin API).
    pub fn rooms(&self) -> impl Iterator<Item = (&Room, usize)> + '_ {
        let mut stack: Vec<&Node<S>> = self.key_sets.values().collect();
        std::iter::from_fn(move || {
            while let Some(node) = stack.pop() {
                match node {
                    Node::Leaf(leaf) => return Some((&leaf.room, leaf.subscriptions.len())),
                    Node::Branch(branch) => {
                        stack.extend(branch.values.values());
                        stack.extend(branch.wildcard.as_deref());
                    }
                }
            }
            None
        })
    }

    /// Trie nodes (branches and leaves, including each key set's root)
    /// currently allocated. Zero when there are no subscriptions; tests use
    /// it to check that nothing leaks.
    pub fn debug_node_count(&self) -> usize {
        fn count<S>(node: &Node<S>) -> usize {
            match node {
                Node::Leaf(_) => 1,
                Node::Branch(branch) => {
                    1 + branch.values.values().map(count).sum::<usize>()
                        + branch.wildcard.as_deref().map_or(0, count)
                }
            }
        }
        self.key_sets.values().map(count).sum()
    }
}

impl<S> Node<S> {
    /// A fresh node for trie level `depth` of `room`'s key set.
    fn for_depth(room: &Room, depth: usize) -> Node<S> {
        if depth == room.len() {
            // Room for the one subscription that creates the leaf: most
            // rooms have a single subscriber (a user's, a document's), and
            // a Vec's first push reserves four (issue 13: idle memory).
            Node::Leaf(Leaf {
                room: room.clone(),
                subscriptions: Vec::with_capacity(1),
            })
        } else {
            Node::Branch(Branch {
                values: HashMap::new(),
                wildcard: None,
            })
        }
    }
}

fn visit<'a, S>(node: &'a Node<S>, values: &[RoomValue], out: &mut impl FnMut(&'a Leaf<S>)) {
    match (node, values) {
        (Node::Leaf(leaf), []) => out(leaf),
        (Node::Branch(branch), [value, rest @ ..]) => {
            if value.is_wildcard() {
                for child in branch.values.values() {
                    visit(child, rest, out);
                }
            } else if let Some(child) = branch.values.get(value) {
                visit(child, rest, out);
            }
            if let Some(child) = &branch.wildcard {
                visit(child, rest, out);
            }
        }
        // Depth always equals the key count; nothing else can be reached.
        _ => {}
    }
}

#[derive(Default)]
struct Detached {
    removed: bool,
    room_closed: bool,
    /// The subscription swap_remove moved into the vacated slot.
    moved: Option<(u64, Arc<str>)>,
}

/// Remove the subscription at `index` of the leaf at `values` below `node`.
/// Returns whether `node` is now empty (and should be removed by its parent).
fn detach_from<S>(
    node: &mut Node<S>,
    values: &[RoomValue],
    index: usize,
    outcome: &mut Detached,
) -> bool {
    match (node, values) {
        (Node::Leaf(leaf), []) => {
            if index < leaf.subscriptions.len() {
                leaf.subscriptions.swap_remove(index);
                outcome.removed = true;
                if let Some(moved) = leaf.subscriptions.get(index) {
                    outcome.moved = Some((moved.session, moved.request_id.clone()));
                }
                outcome.room_closed = leaf.subscriptions.is_empty();
                shrink_vec(&mut leaf.subscriptions);
            }
            leaf.subscriptions.is_empty()
        }
        (Node::Branch(branch), [value, rest @ ..]) => {
            if value.is_wildcard() {
                if let Some(child) = branch.wildcard.as_deref_mut()
                    && detach_from(child, rest, index, outcome)
                {
                    branch.wildcard = None;
                }
            } else if let Some(child) = branch.values.get_mut(value)
                && detach_from(child, rest, index, outcome)
            {
                branch.values.remove(value);
                shrink_map(&mut branch.values);
            }
            branch.values.is_empty() && branch.wildcard.is_none()
        }
        _ => false,
    }
}

/// Give memory back after a burst: a map that emptied to a quarter of its
/// capacity shrinks to twice its length.
fn shrink_map<K: Eq + Hash, V>(map: &mut HashMap<K, V>) {
    if map.capacity() > 16 && map.len() < map.capacity() / 4 {
        map.shrink_to(map.len() * 2);
    }
}

fn shrink_vec<T>(vec: &mut Vec<T>) {
    if vec.capacity() > 16 && vec.len() < vec.capacity() / 4 {
        vec.shrink_to(vec.len() * 2);
    }
}

#[cfg(test)]
mod tests;
