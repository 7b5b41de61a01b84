//! One KIP-848 consumer group (`group.protocol=consumer`): members heartbeat with
//! ConsumerGroupHeartbeat; the broker computes the target assignment (`uniform`, sticky,
//! or `range`) and reconciles each member towards it incrementally. A partition moves in
//! two steps: it is revoked from its owner first, and assigned to its new owner only once
//! the owner reported (by the partitions it says it owns) that it let it go.
//!
//! Epochs: the group epoch moves when membership, subscriptions or the partitions of
//! subscribed topics change; the target assignment is recomputed at once, so the
//! assignment epoch always equals the group epoch. A member's epoch reaches the
//! assignment epoch when it has nothing left to revoke.
//!
//! Pure logic like [`state`](super::state): time comes in as `now`, topics through
//! [`Topics`]. Membership lives in memory (after a restart members get
//! UNKNOWN_MEMBER_ID and rejoin with epoch 0); committed offsets are the coordinator's.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use indexmap::IndexMap;
use uuid::Uuid;

use super::code;
use super::limits::*;

/// Partitions by topic id.
pub type Assignment = BTreeMap<Uuid, BTreeSet<i32>>;

/// What the coordinator needs to know about topics (the handler answers from storage).
pub trait Topics {
    /// Id and partition count of a topic.
    fn by_name(&self, name: &str) -> Option<(Uuid, i32)>;
    /// Every topic name (regex subscriptions).
    fn names(&self) -> Vec<String>;
}

/// Server-side assignors (`group.remote.assignor`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Assignor {
    /// Balanced and sticky: members keep what they have up to their fair share.
    Uniform,
    /// Per topic, contiguous ranges over the members subscribed to it (by member id).
    Range,
}

impl Assignor {
    pub fn parse(name: &str) -> Option<Assignor> {
        match name {
            "uniform" => Some(Assignor::Uniform),
            "range" => Some(Assignor::Range),
            _ => None,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Assignor::Uniform => "uniform",
            Assignor::Range => "range",
        }
    }
}

/// Kafka's consumer group states (ListGroups, ConsumerGroupDescribe).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConsumerState {
    Empty,
    Reconciling,
    Stable,
}

impl ConsumerState {
    pub fn name(self) -> &'static str {
        match self {
            ConsumerState::Empty => "Empty",
            ConsumerState::Reconciling => "Reconciling",
            ConsumerState::Stable => "Stable",
        }
    }
}

/// Where a member stands in reconciling towards its target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Reconcile {
    Stable,
    /// Must give up `pending_revocation` before anything else happens.
    UnrevokedPartitions,
    /// At the assignment epoch, waiting for partitions others still hold.
    UnreleasedPartitions,
}

#[derive(Debug)]
pub struct ConsumerMember {
    pub id: String,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub epoch: i32,
    previous_epoch: i32,
    state: Reconcile,
    pub subscribed_names: Vec<String>,
    pub subscribed_regex: Option<String>,
    regex: Option<regex::Regex>,
    rebalance_timeout: Duration,
    session_deadline: Instant,
    /// Set while partitions wait for revocation: the member is removed past it.
    revoke_deadline: Option<Instant>,
    pub assigned: Assignment,
    pending_revocation: Assignment,
    /// A static member that left with epoch −2: kept (with its assignment) until its
    /// session times out or its instance rejoins.
    left_temporarily: bool,
}

/// A ConsumerGroupHeartbeat, validated for sizes by the coordinator.
#[derive(Clone, Debug)]
pub struct HeartbeatParams {
    pub member_id: String,
    pub member_epoch: i32,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub rebalance_timeout_ms: i32,
    pub subscribed_names: Option<Vec<String>>,
    pub subscribed_regex: Option<String>,
    pub server_assignor: Option<String>,
    pub owned: Option<Assignment>,
    pub client_id: String,
    pub client_host: String,
}

#[derive(Clone, Debug, Default)]
pub struct HeartbeatResult {
    pub error_code: i16,
    pub error_message: Option<String>,
    pub member_id: String,
    pub member_epoch: i32,
    pub heartbeat_interval_ms: i32,
    /// `None`: unchanged (only on errors and leaves here).
    pub assignment: Option<Assignment>,
}

impl HeartbeatResult {
    pub fn error(error_code: i16, message: &str) -> HeartbeatResult {
        HeartbeatResult {
            error_code,
            error_message: Some(message.to_string()),
            ..HeartbeatResult::default()
        }
    }
}

/// Longest `SubscribedTopicRegex` (Kafka bounds it by its RE2/J compile; here a length).
pub const REGEX_BYTES_MAX: usize = 1024;
/// Topic names one member may subscribe to by name.
pub const SUBSCRIBED_TOPICS_MAX: usize = 10_000;
/// Compiled size bound of a subscription regex.
const REGEX_COMPILED_BYTES_MAX: usize = 1 << 20;

#[derive(Debug)]
pub struct ConsumerGroup {
    pub id: String,
    pub group_epoch: i32,
    pub assignment_epoch: i32,
    pub assignor: Assignor,
    pub members: IndexMap<String, ConsumerMember>,
    static_members: HashMap<String, String>,
    pub target: HashMap<String, Assignment>,
    /// Topics subscribed by anyone, with id and partition count, as of the target.
    subscribed_metadata: BTreeMap<String, (Uuid, i32)>,
    pub emptied_at_ms: Option<i64>,
}

impl ConsumerGroup {
    pub fn new(id: &str) -> ConsumerGroup {
        ConsumerGroup {
            id: id.to_string(),
            group_epoch: 0,
            assignment_epoch: 0,
            assignor: Assignor::Uniform,
            members: IndexMap::new(),
            static_members: HashMap::new(),
            target: HashMap::new(),
            subscribed_metadata: BTreeMap::new(),
            emptied_at_ms: None,
        }
    }

    pub fn state(&self) -> ConsumerState {
        if self.members.is_empty() {
            ConsumerState::Empty
        } else if self
            .members
            .values()
            .all(|m| m.state == Reconcile::Stable && m.epoch == self.assignment_epoch)
        {
            ConsumerState::Stable
        } else {
            ConsumerState::Reconciling
        }
    }

    pub fn is_idle(&self) -> bool {
        self.members.is_empty()
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        self.members
            .values()
            .flat_map(|m| [Some(m.session_deadline), m.revoke_deadline])
            .flatten()
            .min()
    }

    /// Removes members whose session expired or who did not revoke in time.
    pub fn expire(&mut self, now: Instant, topics: &dyn Topics) -> bool {
        let gone: Vec<String> = self
            .members
            .values()
            .filter(|m| m.session_deadline <= now || m.revoke_deadline.is_some_and(|d| d <= now))
            .map(|m| m.id.clone())
            .collect();
        for id in &gone {
            tracing::info!(group = %self.id, member = %id, "consumer member expired (session or revocation timeout)");
            self.remove_member(id);
        }
        if !gone.is_empty() {
            self.bump_and_assign(topics);
        }
        !gone.is_empty()
    }

    fn remove_member(&mut self, id: &str) {
        if let Some(m) = self.members.shift_remove(id) {
            if let Some(instance) = &m.instance_id {
                if self.static_members.get(instance).map(String::as_str) == Some(id) {
                    self.static_members.remove(instance);
                }
            }
        }
        self.target.remove(id);
        if self.members.is_empty() {
            self.emptied_at_ms = Some(super::now_ms());
        }
    }

    /// Which members a commit or fetch may come from (Kafka's ConsumerGroup
    /// `validateOffsetCommit` / `validateOffsetFetch`): epoch < 0 for a group without
    /// members (commits) or without a member id (fetches: admin clients); otherwise a
    /// current member at its current epoch (UNKNOWN_MEMBER_ID, STALE_MEMBER_EPOCH).
    pub fn validate_member_epoch(
        &self,
        member_id: &str,
        epoch: i32,
        is_fetch: bool,
    ) -> Result<(), i16> {
        if epoch < 0 && (self.members.is_empty() || (is_fetch && member_id.is_empty())) {
            return Ok(());
        }
        let m = self.members.get(member_id).ok_or(code::UNKNOWN_MEMBER_ID)?;
        if m.epoch != epoch {
            return Err(code::STALE_MEMBER_EPOCH);
        }
        Ok(())
    }

    /// The name of a subscribed topic id (as of the last target assignment).
    pub fn topic_name(&self, id: Uuid) -> Option<String> {
        self.subscribed_metadata
            .iter()
            .find(|(_, (t, _))| *t == id)
            .map(|(name, _)| name.clone())
    }

    /// Topics the members subscribe to (by name, and by regex as resolved last).
    pub fn subscribed_topics(&self) -> Vec<String> {
        self.subscribed_metadata.keys().cloned().collect()
    }

    /// ConsumerGroupHeartbeat. `new_id` is used when a joining member sends no id.
    pub fn heartbeat(
        &mut self,
        p: HeartbeatParams,
        new_id: String,
        session_timeout: Duration,
        now: Instant,
        topics: &dyn Topics,
    ) -> HeartbeatResult {
        let member_id = if p.member_id.is_empty() {
            new_id
        } else {
            p.member_id.clone()
        };
        match p.member_epoch {
            -1 | -2 => {
                let members_before = self.members.len();
                let result = self.leave(&member_id, &p, now);
                if self.members.len() != members_before {
                    self.bump_and_assign(topics);
                }
                return result;
            }
            0 => {
                if let Err(r) = self.join(&member_id, &p, now, session_timeout) {
                    return r;
                }
            }
            epoch => {
                let Some(m) = self.members.get(&member_id) else {
                    return HeartbeatResult::error(code::UNKNOWN_MEMBER_ID, "unknown member id");
                };
                if let Some(instance) = &p.instance_id {
                    if self.static_members.get(instance) != Some(&member_id) {
                        return HeartbeatResult::error(
                            code::FENCED_INSTANCE_ID,
                            "another member uses this instance id",
                        );
                    }
                }
                // A member that missed our last answer may still be on the previous
                // epoch, as long as it owns nothing it should not.
                let lost_answer = epoch == m.previous_epoch
                    && p.owned
                        .as_ref()
                        .is_some_and(|owned| is_subset(owned, &m.assigned));
                if epoch != m.epoch && !lost_answer {
                    return HeartbeatResult::error(
                        code::FENCED_MEMBER_EPOCH,
                        "the member epoch is not current; rejoin",
                    );
                }
            }
        }
        let mut changed = false;
        {
            let Some(m) = self.members.get_mut(&member_id) else {
                return HeartbeatResult::error(code::UNKNOWN_MEMBER_ID, "unknown member id");
            };
            m.session_deadline = now + session_timeout;
            m.client_host = p.client_host.clone();
            if p.rebalance_timeout_ms > 0 {
                m.rebalance_timeout = Duration::from_millis(p.rebalance_timeout_ms as u64);
            }
            if p.rack_id.is_some() {
                m.rack_id = p.rack_id.clone();
            }
            if let Some(names) = &p.subscribed_names {
                let mut names = names.clone();
                names.sort();
                names.dedup();
                if names != m.subscribed_names {
                    m.subscribed_names = names;
                    changed = true;
                }
            }
            if let Some(re) = &p.subscribed_regex {
                let new = (!re.is_empty()).then(|| re.clone());
                if new != m.subscribed_regex {
                    m.regex = match new.as_deref().map(compile_regex).transpose() {
                        Ok(r) => r,
                        Err(e) => {
                            return HeartbeatResult::error(code::INVALID_REGULAR_EXPRESSION, &e)
                        }
                    };
                    m.subscribed_regex = new;
                    changed = true;
                }
            }
        }
        if let Some(name) = &p.server_assignor {
            if let Some(a) = Assignor::parse(name) {
                if a != self.assignor {
                    self.assignor = a;
                    changed = true;
                }
            }
        }
        // Topics created, deleted or grown (or regexes matching new topics) move the
        // group epoch too.
        if changed || self.resolve_subscriptions(topics) != self.subscribed_metadata {
            self.bump_and_assign(topics);
        }
        let assignment_epoch = self.assignment_epoch;
        let owned_elsewhere = self.owned_by_others(&member_id);
        let target = self.target.get(&member_id).cloned().unwrap_or_default();
        let Some(m) = self.members.get_mut(&member_id) else {
            return HeartbeatResult::error(code::UNKNOWN_MEMBER_ID, "unknown member id");
        };
        if let Some(owned) = &p.owned {
            if m.state == Reconcile::UnrevokedPartitions
                && !intersects(owned, &m.pending_revocation)
            {
                m.pending_revocation.clear();
                m.revoke_deadline = None;
                m.state = Reconcile::UnreleasedPartitions;
            }
        }
        if m.state != Reconcile::UnrevokedPartitions
            && (m.epoch != assignment_epoch || m.state != Reconcile::Stable)
        {
            reconcile(m, &target, assignment_epoch, &owned_elsewhere, now);
        }
        HeartbeatResult {
            error_code: code::NONE,
            error_message: None,
            member_id,
            member_epoch: m.epoch,
            heartbeat_interval_ms: 0,
            assignment: Some(m.assigned.clone()),
        }
    }

    fn join(
        &mut self,
        member_id: &str,
        p: &HeartbeatParams,
        now: Instant,
        session_timeout: Duration,
    ) -> Result<(), HeartbeatResult> {
        if p.subscribed_names.is_none() && p.subscribed_regex.is_none() {
            return Err(HeartbeatResult::error(
                code::INVALID_REQUEST,
                "SubscribedTopicNames or SubscribedTopicRegex must be set when joining",
            ));
        }
        if let Some(instance) = &p.instance_id {
            if let Some(old_id) = self.static_members.get(instance).cloned() {
                if old_id != member_id {
                    let Some(old) = self.members.get(&old_id) else {
                        return Err(HeartbeatResult::error(code::UNKNOWN_MEMBER_ID, "gone"));
                    };
                    if !old.left_temporarily {
                        return Err(HeartbeatResult::error(
                            code::UNRELEASED_INSTANCE_ID,
                            "the instance id is still used by a member that did not leave",
                        ));
                    }
                    // A static member back under a new id: it takes over the old one's
                    // assignment and epoch, without a rebalance.
                    if let Some(mut m) = self.members.shift_remove(&old_id) {
                        m.id = member_id.to_string();
                        m.left_temporarily = false;
                        m.session_deadline = now + session_timeout;
                        self.members.insert(member_id.to_string(), m);
                    }
                    if let Some(t) = self.target.remove(&old_id) {
                        self.target.insert(member_id.to_string(), t);
                    }
                    self.static_members
                        .insert(instance.clone(), member_id.to_string());
                    return Ok(());
                }
            }
        }
        if let Some(m) = self.members.get_mut(member_id) {
            // Rejoining with epoch 0: the member dropped everything it had.
            m.assigned.clear();
            m.pending_revocation.clear();
            m.revoke_deadline = None;
            m.epoch = 0;
            m.previous_epoch = 0;
            m.state = Reconcile::UnreleasedPartitions;
            m.left_temporarily = false;
            return Ok(());
        }
        if self.members.len() >= MEMBERS_PER_GROUP_MAX {
            return Err(HeartbeatResult::error(
                code::GROUP_MAX_SIZE_REACHED,
                "the group has the maximum number of members",
            ));
        }
        let regex = match p.subscribed_regex.as_deref().filter(|r| !r.is_empty()) {
            Some(r) => match compile_regex(r) {
                Ok(re) => Some(re),
                Err(e) => return Err(HeartbeatResult::error(code::INVALID_REGULAR_EXPRESSION, &e)),
            },
            None => None,
        };
        if let Some(instance) = &p.instance_id {
            self.static_members
                .insert(instance.clone(), member_id.to_string());
        }
        self.members.insert(
            member_id.to_string(),
            ConsumerMember {
                id: member_id.to_string(),
                instance_id: p.instance_id.clone(),
                rack_id: p.rack_id.clone(),
                client_id: p.client_id.clone(),
                client_host: p.client_host.clone(),
                epoch: 0,
                previous_epoch: 0,
                state: Reconcile::UnreleasedPartitions,
                subscribed_names: Vec::new(),
                subscribed_regex: None,
                regex: None,
                rebalance_timeout: Duration::from_millis(p.rebalance_timeout_ms.max(0) as u64),
                session_deadline: now + session_timeout,
                revoke_deadline: None,
                assigned: Assignment::new(),
                pending_revocation: Assignment::new(),
                left_temporarily: false,
            },
        );
        if let Some(m) = self.members.get_mut(member_id) {
            // Compiled above; stored by the common path (which compares with None).
            m.regex = regex;
        }
        self.emptied_at_ms = None;
        Ok(())
    }

    fn leave(&mut self, member_id: &str, p: &HeartbeatParams, now: Instant) -> HeartbeatResult {
        let id = match (&p.instance_id, self.members.contains_key(member_id)) {
            (_, true) => member_id.to_string(),
            (Some(i), false) => match self.static_members.get(i) {
                Some(id) => id.clone(),
                None => return HeartbeatResult::error(code::UNKNOWN_MEMBER_ID, "unknown member"),
            },
            (None, false) => {
                return HeartbeatResult::error(code::UNKNOWN_MEMBER_ID, "unknown member")
            }
        };
        let result = HeartbeatResult {
            member_id: id.clone(),
            member_epoch: p.member_epoch,
            ..HeartbeatResult::default()
        };
        if p.member_epoch == -2 && p.instance_id.is_some() {
            if let Some(m) = self.members.get_mut(&id) {
                tracing::info!(group = %self.id, member = %id, "static consumer member left temporarily");
                m.left_temporarily = true;
                m.session_deadline = m.session_deadline.max(now);
            }
            return result;
        }
        tracing::info!(group = %self.id, member = %id, "consumer member left");
        self.remove_member(&id);
        result
    }

    /// Moves the group epoch and recomputes the target assignment. Only called by the
    /// coordinator with the topics at hand.
    pub fn bump_and_assign(&mut self, topics: &dyn Topics) {
        self.group_epoch = self.group_epoch.wrapping_add(1).max(1);
        self.subscribed_metadata = self.resolve_subscriptions(topics);
        self.target = compute_target(
            self.assignor,
            &self.members,
            &self.subscribed_metadata,
            &self.target,
        );
        self.assignment_epoch = self.group_epoch;
        tracing::debug!(group = %self.id, epoch = self.group_epoch, "consumer group target assignment");
    }

    fn resolve_subscriptions(&self, topics: &dyn Topics) -> BTreeMap<String, (Uuid, i32)> {
        let mut names: BTreeSet<String> = BTreeSet::new();
        for m in self.members.values() {
            names.extend(m.subscribed_names.iter().cloned());
        }
        // Members usually share their regex: each distinct one is matched once.
        let regexes: BTreeMap<&str, &regex::Regex> = self
            .members
            .values()
            .filter_map(|m| Some((m.subscribed_regex.as_deref()?, m.regex.as_ref()?)))
            .collect();
        if !regexes.is_empty() {
            for name in topics.names() {
                if regexes.values().any(|r| r.is_match(&name)) {
                    names.insert(name);
                }
            }
        }
        names
            .into_iter()
            .filter_map(|n| topics.by_name(&n).map(|meta| (n, meta)))
            .collect()
    }

    /// Partitions other members hold: assigned, or assigned before and not yet revoked.
    fn owned_by_others(&self, member_id: &str) -> BTreeSet<(Uuid, i32)> {
        self.members
            .values()
            .filter(|m| m.id != member_id)
            .flat_map(|m| flatten(&m.assigned).chain(flatten(&m.pending_revocation)))
            .collect()
    }

    /// Topics of one member's subscription, as resolved against `subscribed_metadata`.
    fn member_topics(
        m: &ConsumerMember,
        metadata: &BTreeMap<String, (Uuid, i32)>,
    ) -> Vec<(Uuid, i32)> {
        metadata
            .iter()
            .filter(|(name, _)| {
                m.subscribed_names.binary_search(name).is_ok()
                    || m.regex.as_ref().is_some_and(|r| r.is_match(name))
            })
            .map(|(_, meta)| *meta)
            .collect()
    }

    /// (member, epoch, assigned, target) for ConsumerGroupDescribe.
    pub fn describe_members(&self) -> Vec<(&ConsumerMember, Assignment)> {
        self.members
            .values()
            .map(|m| (m, self.target.get(&m.id).cloned().unwrap_or_default()))
            .collect()
    }
}

fn compile_regex(re: &str) -> Result<regex::Regex, String> {
    if re.len() > REGEX_BYTES_MAX {
        return Err(format!("the regex is longer than {REGEX_BYTES_MAX} bytes"));
    }
    regex::RegexBuilder::new(&format!("^(?:{re})$"))
        .size_limit(REGEX_COMPILED_BYTES_MAX)
        .build()
        .map_err(|e| format!("invalid regular expression: {e}"))
}

/// Kafka's CurrentAssignmentBuilder, for a member with nothing pending revocation:
/// first revoke what the target takes away (the epoch stays until the member
/// acknowledges), then take the epoch and every target partition nobody else holds.
fn reconcile(
    m: &mut ConsumerMember,
    target: &Assignment,
    assignment_epoch: i32,
    owned_elsewhere: &BTreeSet<(Uuid, i32)>,
    now: Instant,
) {
    let revoke = difference(&m.assigned, target);
    if !revoke.is_empty() {
        m.assigned = intersection(&m.assigned, target);
        m.pending_revocation = revoke;
        m.state = Reconcile::UnrevokedPartitions;
        m.revoke_deadline = Some(now + m.rebalance_timeout);
        return;
    }
    let mut unreleased = false;
    for (topic, partitions) in target {
        for p in partitions {
            if m.assigned.get(topic).is_some_and(|s| s.contains(p)) {
                continue;
            }
            if owned_elsewhere.contains(&(*topic, *p)) {
                unreleased = true;
            } else {
                m.assigned.entry(*topic).or_default().insert(*p);
            }
        }
    }
    if m.epoch != assignment_epoch {
        m.previous_epoch = m.epoch;
        m.epoch = assignment_epoch;
    }
    m.state = if unreleased {
        Reconcile::UnreleasedPartitions
    } else {
        Reconcile::Stable
    };
}

fn flatten(a: &Assignment) -> impl Iterator<Item = (Uuid, i32)> + '_ {
    a.iter()
        .flat_map(|(t, ps)| ps.iter().map(move |p| (*t, *p)))
}

fn is_subset(a: &Assignment, b: &Assignment) -> bool {
    flatten(a).all(|(t, p)| b.get(&t).is_some_and(|s| s.contains(&p)))
}

fn intersects(a: &Assignment, b: &Assignment) -> bool {
    flatten(a).any(|(t, p)| b.get(&t).is_some_and(|s| s.contains(&p)))
}

fn difference(a: &Assignment, b: &Assignment) -> Assignment {
    let mut out = Assignment::new();
    for (t, p) in flatten(a) {
        if !b.get(&t).is_some_and(|s| s.contains(&p)) {
            out.entry(t).or_default().insert(p);
        }
    }
    out
}

fn intersection(a: &Assignment, b: &Assignment) -> Assignment {
    let mut out = Assignment::new();
    for (t, p) in flatten(a) {
        if b.get(&t).is_some_and(|s| s.contains(&p)) {
            out.entry(t).or_default().insert(p);
        }
    }
    out
}

/// The target assignment of every member.
fn compute_target(
    assignor: Assignor,
    members: &IndexMap<String, ConsumerMember>,
    metadata: &BTreeMap<String, (Uuid, i32)>,
    previous: &HashMap<String, Assignment>,
) -> HashMap<String, Assignment> {
    let mut ids: Vec<&String> = members.keys().collect();
    ids.sort();
    let eligible: HashMap<&String, BTreeSet<Uuid>> = ids
        .iter()
        .map(|id| {
            let topics = ConsumerGroup::member_topics(&members[*id], metadata);
            (*id, topics.into_iter().map(|(t, _)| t).collect())
        })
        .collect();
    let mut out: HashMap<String, Assignment> = ids
        .iter()
        .map(|id| ((*id).clone(), Assignment::new()))
        .collect();
    let all: Vec<(Uuid, i32)> = metadata
        .values()
        .flat_map(|(t, n)| (0..*n).map(move |p| (*t, p)))
        .collect();
    match assignor {
        Assignor::Range => {
            for (topic, n) in metadata.values() {
                let subs: Vec<&&String> = ids
                    .iter()
                    .filter(|id| eligible[**id].contains(topic))
                    .collect();
                if subs.is_empty() {
                    continue;
                }
                let (per, extra) = (*n as usize / subs.len(), *n as usize % subs.len());
                let mut next = 0i32;
                for (i, id) in subs.iter().enumerate() {
                    let count = per + usize::from(i < extra);
                    let set = out
                        .entry((**id).clone())
                        .or_default()
                        .entry(*topic)
                        .or_default();
                    for _ in 0..count {
                        set.insert(next);
                        next += 1;
                    }
                }
            }
        }
        Assignor::Uniform => {
            // Sticky: keep the previous target where still eligible; then place the
            // rest on the least loaded eligible member; then even out.
            // A member keeps at most an even share (rounded up): the rest is placed
            // afresh, so evening out below rarely has anything to do.
            let share = all.len().div_ceil(ids.len().max(1));
            let mut owner: HashMap<(Uuid, i32), String> = HashMap::new();
            for id in &ids {
                if let Some(prev) = previous.get(*id) {
                    let mut kept = 0usize;
                    for (t, p) in flatten(prev) {
                        let valid = eligible[*id].contains(&t)
                            && metadata.values().any(|(mt, n)| *mt == t && p < *n);
                        if valid && kept < share && !owner.contains_key(&(t, p)) {
                            owner.insert((t, p), (*id).clone());
                            kept += 1;
                        }
                    }
                }
            }
            let mut count: HashMap<&String, usize> = ids.iter().map(|id| (*id, 0)).collect();
            for id in owner.values() {
                if let Some(c) = ids
                    .iter()
                    .find(|i| **i == id)
                    .and_then(|i| count.get_mut(*i))
                {
                    *c += 1;
                }
            }
            for tp in &all {
                if owner.contains_key(tp) {
                    continue;
                }
                let best = ids
                    .iter()
                    .filter(|id| eligible[**id].contains(&tp.0))
                    .min_by_key(|id| count[**id]);
                if let Some(id) = best {
                    owner.insert(*tp, (*id).clone());
                    *count.get_mut(*id).expect("counted") += 1;
                }
            }
            // Even out: move from the most to the least loaded eligible member while
            // they differ by more than one. Each move lowers the spread; bounded.
            let mut load: Vec<(String, usize)> =
                ids.iter().map(|id| ((*id).clone(), count[*id])).collect();
            for _ in 0..all.len() {
                load.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
                let mut step: Option<((Uuid, i32), usize, usize)> = None;
                'outer: for (fi, (from, from_n)) in load.iter().enumerate() {
                    for (ti, (to, to_n)) in load.iter().enumerate().rev() {
                        if *from_n <= to_n + 1 {
                            break;
                        }
                        let to_topics = &eligible[to];
                        let candidate = all
                            .iter()
                            .rev()
                            .find(|tp| owner.get(*tp) == Some(from) && to_topics.contains(&tp.0));
                        if let Some(tp) = candidate {
                            step = Some((*tp, fi, ti));
                            break 'outer;
                        }
                    }
                }
                let Some((tp, fi, ti)) = step else {
                    break;
                };
                owner.insert(tp, load[ti].0.clone());
                load[fi].1 -= 1;
                load[ti].1 += 1;
            }
            for ((t, p), id) in owner {
                out.entry(id).or_default().entry(t).or_default().insert(p);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    struct FakeTopics(Vec<(&'static str, Uuid, i32)>);

    impl Topics for FakeTopics {
        fn by_name(&self, name: &str) -> Option<(Uuid, i32)> {
            self.0.iter().find(|t| t.0 == name).map(|t| (t.1, t.2))
        }
        fn names(&self) -> Vec<String> {
            self.0.iter().map(|t| t.0.to_string()).collect()
        }
    }

    fn join_params(id: &str, topics: &[&str]) -> HeartbeatParams {
        HeartbeatParams {
            member_id: id.into(),
            member_epoch: 0,
            instance_id: None,
            rack_id: None,
            rebalance_timeout_ms: 30_000,
            subscribed_names: Some(topics.iter().map(|t| t.to_string()).collect()),
            subscribed_regex: None,
            server_assignor: None,
            owned: None,
            client_id: "c".into(),
            client_host: String::new(),
        }
    }

    fn beat(id: &str, epoch: i32, owned: &Assignment) -> HeartbeatParams {
        HeartbeatParams {
            member_epoch: epoch,
            subscribed_names: None,
            owned: Some(owned.clone()),
            ..join_params(id, &[])
        }
    }

    /// No partition is ever assigned to two members at once, whatever the order of
    /// heartbeats; and the group converges to an even, complete split.
    #[test]
    fn reconciliation_never_assigns_a_partition_twice_and_converges() {
        let t = Uuid::from_u128(1);
        let topics = FakeTopics(vec![("t", t, 6)]);
        let mut g = ConsumerGroup::new("g");
        let now = Instant::now();
        let session = Duration::from_secs(60);
        // Each member's view: (epoch, what it owns).
        let mut view: BTreeMap<String, (i32, Assignment)> = BTreeMap::new();
        for (i, id) in ["a", "b", "c"].iter().enumerate() {
            let r = g.heartbeat(
                join_params(id, &["t"]),
                String::new(),
                session,
                now,
                &topics,
            );
            assert_eq!(r.error_code, code::NONE);
            view.insert(
                id.to_string(),
                (r.member_epoch, r.assignment.unwrap_or_default()),
            );
            // Heartbeats in a rotating order, several rounds.
            for round in 0..6 {
                let mut order: Vec<String> = view.keys().cloned().collect();
                let n = order.len();
                order.rotate_left((round + i) % n);
                for id in order {
                    let (epoch, owned) = view[&id].clone();
                    let r = g.heartbeat(
                        beat(&id, epoch, &owned),
                        String::new(),
                        session,
                        now,
                        &topics,
                    );
                    assert_eq!(r.error_code, code::NONE, "{id}: {r:?}");
                    view.insert(
                        id.clone(),
                        (r.member_epoch, r.assignment.unwrap_or_default()),
                    );
                    let mut seen = BTreeSet::new();
                    for (_, owned) in view.values() {
                        for tp in flatten(owned) {
                            assert!(seen.insert(tp), "partition {tp:?} owned twice: {view:?}");
                        }
                    }
                }
            }
        }
        let counts: Vec<usize> = view.values().map(|(_, a)| flatten(a).count()).collect();
        assert_eq!(counts, vec![2, 2, 2], "{view:?}");
        assert_eq!(g.state(), ConsumerState::Stable);
        assert!(view.values().all(|(e, _)| *e == g.group_epoch));
    }

    fn target_counts(t: &HashMap<String, Assignment>) -> BTreeMap<String, usize> {
        t.iter()
            .map(|(id, a)| (id.clone(), flatten(a).count()))
            .collect()
    }

    #[test]
    fn uniform_is_sticky_and_respects_subscriptions() {
        let (x, y) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let topics = FakeTopics(vec![("x", x, 4), ("y", y, 2)]);
        let mut g = ConsumerGroup::new("g");
        let now = Instant::now();
        let s = Duration::from_secs(60);
        g.heartbeat(
            join_params("a", &["x", "y"]),
            String::new(),
            s,
            now,
            &topics,
        );
        g.heartbeat(
            join_params("b", &["x", "y"]),
            String::new(),
            s,
            now,
            &topics,
        );
        let before = g.target.clone();
        assert_eq!(target_counts(&before).values().sum::<usize>(), 6);
        g.heartbeat(join_params("c", &["y"]), String::new(), s, now, &topics);
        let after = g.target.clone();
        // c only takes partitions of y; a and b keep a subset of what they had.
        assert!(after["c"].keys().all(|t| *t == y), "{after:?}");
        assert!(!after["c"].is_empty());
        for id in ["a", "b"] {
            assert!(
                is_subset(&after[id], &before[id]),
                "{id}: {before:?} -> {after:?}"
            );
        }
        assert_eq!(target_counts(&after).values().sum::<usize>(), 6);
    }

    #[test]
    fn range_assigns_contiguous_ranges_per_topic() {
        let x = Uuid::from_u128(1);
        let topics = FakeTopics(vec![("x", x, 5)]);
        let mut g = ConsumerGroup::new("g");
        let now = Instant::now();
        let s = Duration::from_secs(60);
        let mut p = join_params("a", &["x"]);
        p.server_assignor = Some("range".into());
        g.heartbeat(p, String::new(), s, now, &topics);
        g.heartbeat(join_params("b", &["x"]), String::new(), s, now, &topics);
        assert_eq!(g.assignor, Assignor::Range);
        let a: Vec<i32> = g.target["a"][&x].iter().copied().collect();
        let b: Vec<i32> = g.target["b"][&x].iter().copied().collect();
        assert_eq!((a, b), (vec![0, 1, 2], vec![3, 4]));
    }
}
