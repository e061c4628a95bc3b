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

use std::collections::HashMap;
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
            rooms => {
                let mut leaves: Vec<&Leaf<S>> = Vec::new();
                for room in rooms {
                    self.visit_matching_leaves(room, &mut |leaf| leaves.push(leaf));
                }
                leaves.sort_unstable_by_key(|leaf| std::ptr::from_ref::<Leaf<S>>(leaf));
                leaves.dedup_by(|a, b| std::ptr::eq(*a, *b));
                for leaf in leaves {
                    deliver(leaf);
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
            Node::Leaf(Leaf {
                room: room.clone(),
                subscriptions: Vec::new(),
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
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::{Value, json};
    use std::collections::BTreeSet;

    fn room(v: Value) -> Room {
        Room::parse(&v).unwrap()
    }

    fn id(s: &str) -> Arc<str> {
        s.into()
    }

    /// (session, request id) of every delivery, in order.
    fn deliveries(index: &RoomIndex<u32>, published: &[Room]) -> Vec<(u64, String)> {
        let mut out = Vec::new();
        index.for_each_match(published, |r, session, request_id, handle| {
            assert_eq!(*handle as u64, session * 1000 + u64::from(r.len() as u32));
            out.push((session, request_id.to_string()));
        });
        out
    }

    fn sorted(mut v: Vec<(u64, String)>) -> Vec<(u64, String)> {
        v.sort();
        v
    }

    fn handle(session: u64, r: &Room) -> u32 {
        (session * 1000 + r.len() as u64) as u32
    }

    fn sub(index: &mut RoomIndex<u32>, session: u64, request_id: &str, r: Value) {
        let r = room(r);
        let h = handle(session, &r);
        index.subscribe(session, id(request_id), r, h).unwrap();
    }

    #[test]
    fn wildcards_in_both_directions() {
        let mut index = RoomIndex::new();
        sub(
            &mut index,
            1,
            "one",
            json!({"target": "chat", "customer": "1"}),
        );
        sub(
            &mut index,
            2,
            "two",
            json!({"target": "chat", "customer": 2}),
        );
        sub(
            &mut index,
            3,
            "all",
            json!({"target": "chat", "customer": "*"}),
        );
        sub(
            &mut index,
            4,
            "other",
            json!({"target": "mail", "customer": "1"}),
        );
        sub(&mut index, 5, "short", json!({"customer": "1"}));
        assert_eq!(index.num_rooms(), 5);

        // Concrete publish reaches its own room and the "*" subscription.
        let got = sorted(deliveries(
            &index,
            &[room(json!({"customer": "1", "target": "chat"}))],
        ));
        assert_eq!(got, [(1, "one".into()), (3, "all".into())]);
        // Type-sensitive: 1 is not "1".
        let got = sorted(deliveries(
            &index,
            &[room(json!({"customer": 1, "target": "chat"}))],
        ));
        assert_eq!(got, [(3, "all".into())]);
        // A "*" publish reaches every customer of that target.
        let got = sorted(deliveries(
            &index,
            &[room(json!({"customer": "*", "target": "chat"}))],
        ));
        assert_eq!(
            got,
            [(1, "one".into()), (2, "two".into()), (3, "all".into())]
        );
        // "*" everywhere reaches every room with these keys.
        let got = sorted(deliveries(
            &index,
            &[room(json!({"customer": "*", "target": "*"}))],
        ));
        assert_eq!(got.len(), 4);
        // Other key sets are separate.
        let got = deliveries(&index, &[room(json!({"customer": "*"}))]);
        assert_eq!(got, [(5, "short".into())]);
        assert!(deliveries(&index, &[room(json!({"nobody": "*"}))]).is_empty());
        assert!(deliveries(&index, &[]).is_empty());
    }

    #[test]
    fn several_published_rooms_deliver_once() {
        let mut index = RoomIndex::new();
        sub(&mut index, 1, "one", json!({"customer": "1"}));
        sub(&mut index, 1, "all", json!({"customer": "*"}));
        sub(&mut index, 2, "one", json!({"customer": "1"}));
        let published = [
            room(json!({"customer": "*"})),
            room(json!({"customer": "1"})),
            room(json!({"customer": "2"})),
            room(json!({"customer": "1"})),
        ];
        let got = deliveries(&index, &published);
        assert_eq!(got.len(), 3, "{got:?}");
        assert_eq!(
            sorted(got),
            [(1, "all".into()), (1, "one".into()), (2, "one".into())]
        );
    }

    #[test]
    fn request_id_binds_one_room() {
        let mut index = RoomIndex::new();
        sub(&mut index, 1, "r", json!({"a": 1}));
        let again = index.subscribe(1, id("r"), room(json!({"a": 2})), 0);
        assert_eq!(again, Err(IndexError::RequestIdInUse));
        let same = index.subscribe(1, id("r"), room(json!({"a": 1})), 0);
        assert_eq!(same, Err(IndexError::RequestIdInUse));
        // Another session may use the same id.
        sub(&mut index, 2, "r", json!({"a": 2}));
        assert_eq!(index.num_subscriptions(), 2);
        assert_eq!(
            index.subscription_room(1, "r"),
            Some(&room(json!({"a": 1})))
        );
        assert!(deliveries(&index, &[room(json!({"a": 2}))]) == [(2, "r".into())]);
    }

    #[test]
    fn unsubscribe_twice() {
        let mut index = RoomIndex::new();
        sub(&mut index, 1, "r", json!({"a": "*"}));
        assert!(index.unsubscribe(1, "r"));
        assert!(!index.unsubscribe(1, "r"));
        assert!(!index.unsubscribe(9, "r"));
        assert_eq!(index.num_rooms(), 0);
        assert_eq!(index.num_subscriptions(), 0);
        assert_eq!(index.debug_node_count(), 0);
        // The id is free again.
        sub(&mut index, 1, "r", json!({"a": 1}));
        assert_eq!(index.session_subscriptions(1), 1);
    }

    #[test]
    fn remove_session_cleans_everything() {
        let mut index = RoomIndex::new();
        for i in 0..50_u64 {
            sub(
                &mut index,
                7,
                &format!("c{i}"),
                json!({"customer": i % 5, "target": "chat"}),
            );
            sub(
                &mut index,
                7,
                &format!("w{i}"),
                json!({"customer": "*", "target": i % 3}),
            );
            sub(&mut index, 7, &format!("e{i}"), json!({}));
        }
        sub(
            &mut index,
            8,
            "keep",
            json!({"customer": 1, "target": "chat"}),
        );
        assert_eq!(index.session_subscriptions(7), 150);
        assert_eq!(index.num_rooms(), 5 + 3 + 1);

        assert_eq!(index.remove_session(7), 150);
        assert_eq!(index.remove_session(7), 0);
        assert_eq!(index.session_subscriptions(7), 0);
        assert_eq!(index.num_subscriptions(), 1);
        assert_eq!(index.num_rooms(), 1);
        // key set root + customer branch + target leaf
        assert_eq!(index.debug_node_count(), 3);
        assert_eq!(
            deliveries(&index, &[room(json!({"customer": "*", "target": "*"}))]),
            [(8, "keep".into())]
        );

        assert_eq!(index.remove_session(8), 1);
        assert_eq!(index.num_rooms(), 0);
        assert_eq!(index.num_subscriptions(), 0);
        assert_eq!(index.debug_node_count(), 0);
        assert!(index.key_sets.is_empty() && index.sessions.is_empty());
        assert_eq!(index.rooms().count(), 0);
    }

    #[test]
    fn empty_room_only_reaches_empty_subscriptions() {
        let mut index = RoomIndex::new();
        sub(&mut index, 1, "e", json!({}));
        sub(&mut index, 1, "a", json!({"a": "*"}));
        assert_eq!(deliveries(&index, &[room(json!({}))]), [(1, "e".into())]);
        assert_eq!(
            deliveries(&index, &[room(json!({"a": 1}))]),
            [(1, "a".into())]
        );
        assert_eq!(index.debug_node_count(), 3);
    }

    #[test]
    fn rooms_lists_subscriber_counts() {
        let mut index = RoomIndex::new();
        sub(&mut index, 1, "x", json!({"a": 1}));
        sub(&mut index, 2, "x", json!({"a": 1.0}));
        sub(&mut index, 2, "y", json!({"a": "*"}));
        let mut rooms: Vec<(String, usize)> =
            index.rooms().map(|(r, n)| (r.to_string(), n)).collect();
        rooms.sort();
        assert_eq!(
            rooms,
            [(r#"{"a":"*"}"#.into(), 1), (r#"{"a":1}"#.into(), 2)]
        );
    }

    #[test]
    fn slots_stay_correct_after_swap_remove() {
        let mut index = RoomIndex::new();
        for s in 0..6 {
            sub(&mut index, s, "r", json!({"a": 1}));
        }
        assert!(index.unsubscribe(0, "r")); // moves session 5 to slot 0
        assert!(index.unsubscribe(5, "r"));
        assert!(index.unsubscribe(2, "r"));
        let got = sorted(deliveries(&index, &[room(json!({"a": 1}))]));
        assert_eq!(got, [(1, "r".into()), (3, "r".into()), (4, "r".into())]);
    }

    // ---- model check against a brute-force scan -------------------------

    #[derive(Debug, Clone)]
    enum Op {
        Subscribe {
            session: u64,
            request_id: u8,
            room: Room,
        },
        Unsubscribe {
            session: u64,
            request_id: u8,
        },
        RemoveSession(u64),
        Publish(Vec<Room>),
    }

    fn arb_value() -> impl Strategy<Value = Value> {
        prop_oneof![
            3 => Just(json!("*")),
            2 => Just(json!("a")),
            2 => Just(json!("b")),
            2 => Just(json!("1")),
            2 => Just(json!(1)),
            1 => Just(json!(1.0)),
            1 => Just(json!(2)),
            1 => Just(json!(null)),
            1 => Just(json!(true)),
        ]
    }

    fn arb_room() -> impl Strategy<Value = Room> {
        let keys = prop_oneof![
            Just(vec!["k", "l"]),
            Just(vec!["k", "m"]),
            Just(vec!["k", "l", "m"]),
        ];
        keys.prop_flat_map(|keys| {
            proptest::collection::vec(arb_value(), keys.len()).prop_map(move |values| {
                let map: serde_json::Map<String, Value> =
                    keys.iter().map(|k| k.to_string()).zip(values).collect();
                Room::parse(&Value::Object(map)).unwrap()
            })
        })
    }

    fn arb_op() -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => (0..4_u64, 0..4_u8, arb_room()).prop_map(|(session, request_id, room)| {
                Op::Subscribe { session, request_id, room }
            }),
            2 => (0..4_u64, 0..4_u8)
                .prop_map(|(session, request_id)| Op::Unsubscribe { session, request_id }),
            1 => (0..4_u64).prop_map(Op::RemoveSession),
            4 => proptest::collection::vec(arb_room(), 1..4).prop_map(Op::Publish),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn index_agrees_with_brute_force(ops in proptest::collection::vec(arb_op(), 1..80)) {
            let mut index: RoomIndex<(u64, u8)> = RoomIndex::new();
            // The model: (session, request id) → room.
            let mut model: Vec<(u64, u8, Room)> = Vec::new();
            for op in ops {
                match op {
                    Op::Subscribe { session, request_id, room } => {
                        let taken = model.iter().any(|(s, r, _)| *s == session && *r == request_id);
                        let got = index.subscribe(
                            session, request_id.to_string().into(), room.clone(), (session, request_id),
                        );
                        prop_assert_eq!(got.is_err(), taken);
                        if !taken {
                            model.push((session, request_id, room));
                        }
                    }
                    Op::Unsubscribe { session, request_id } => {
                        let before = model.len();
                        model.retain(|(s, r, _)| !(*s == session && *r == request_id));
                        let removed = index.unsubscribe(session, &request_id.to_string());
                        prop_assert_eq!(removed, model.len() < before);
                    }
                    Op::RemoveSession(session) => {
                        let before = model.len();
                        model.retain(|(s, _, _)| *s != session);
                        prop_assert_eq!(index.remove_session(session), before - model.len());
                    }
                    Op::Publish(published) => {
                        let mut got = Vec::new();
                        index.for_each_match(&published, |room, session, request_id, handle| {
                            assert_eq!(*handle, (session, request_id.parse::<u8>().unwrap()));
                            got.push((session, request_id.to_string(), room.to_string()));
                        });
                        let mut want: Vec<_> = model
                            .iter()
                            .filter(|(_, _, room)| published.iter().any(|p| p.matches(room)))
                            .map(|(s, r, room)| (*s, r.to_string(), room.to_string()))
                            .collect();
                        got.sort();
                        want.sort();
                        // Sorted equality with no duplicates in `want` also
                        // proves each subscription was called once.
                        prop_assert_eq!(got, want);
                    }
                }
                prop_assert_eq!(index.num_subscriptions(), model.len());
                let distinct: BTreeSet<String> = model.iter().map(|(_, _, r)| r.to_string()).collect();
                prop_assert_eq!(index.num_rooms(), distinct.len());
                prop_assert_eq!(index.rooms().count(), distinct.len());
                for session in 0..4 {
                    prop_assert_eq!(
                        index.session_subscriptions(session),
                        model.iter().filter(|(s, _, _)| *s == session).count()
                    );
                }
            }
            for session in 0..4 {
                index.remove_session(session);
            }
            prop_assert_eq!(index.debug_node_count(), 0);
            prop_assert_eq!(index.num_rooms(), 0);
            prop_assert!(index.sessions.is_empty());
        }
    }
}
