//! One classic consumer group: members, generations, protocol selection and the state
//! machine Empty → PreparingRebalance → CompletingRebalance → Stable (→ Dead when
//! deleted), following Kafka's GroupCoordinator. Pure logic: time comes in as `now`,
//! waiting requests are [`Slot`]s filled here and read by the data plane.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use indexmap::IndexMap;

use super::code;
use super::limits::*;

/// A one-shot answer for a request that waits (JoinGroup, SyncGroup).
#[derive(Debug)]
pub struct Slot<T>(Mutex<Option<T>>);

impl<T> Slot<T> {
    pub fn empty() -> Arc<Slot<T>> {
        Arc::new(Slot(Mutex::new(None)))
    }
    pub fn filled(value: T) -> Arc<Slot<T>> {
        Arc::new(Slot(Mutex::new(Some(value))))
    }
    /// Sets the answer unless one is there already (the first answer wins).
    pub fn fill(&self, value: T) {
        let mut v = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if v.is_none() {
            *v = Some(value);
        }
    }
    pub fn take(&self) -> Option<T> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GroupState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
    Dead,
}

impl GroupState {
    /// The name Kafka uses in ListGroups and DescribeGroups.
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }
}

/// A JoinGroup request, validated for sizes by the coordinator.
#[derive(Clone, Debug)]
pub struct JoinParams {
    pub group_id: String,
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub protocol_type: String,
    /// (name, metadata) in the member's order of preference.
    pub protocols: Vec<(String, Bytes)>,
    /// JoinGroup v4+: a new dynamic member first gets its id with MEMBER_ID_REQUIRED.
    pub require_known_member_id: bool,
}

#[derive(Clone, Debug, Default)]
pub struct JoinMember {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub metadata: Bytes,
}

/// What a JoinGroup is answered with.
#[derive(Clone, Debug, Default)]
pub struct JoinResult {
    pub error_code: i16,
    pub generation_id: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader: String,
    pub member_id: String,
    /// Only the leader gets the member list (with the chosen protocol's metadata).
    pub members: Vec<JoinMember>,
    /// A static leader that rejoined without a rebalance must not reassign (v9+).
    pub skip_assignment: bool,
}

impl JoinResult {
    pub fn error(error_code: i16, member_id: &str) -> JoinResult {
        JoinResult {
            error_code,
            generation_id: -1,
            member_id: member_id.to_string(),
            ..JoinResult::default()
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct SyncResult {
    pub error_code: i16,
    pub assignment: Bytes,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
}

impl SyncResult {
    pub fn error(error_code: i16) -> SyncResult {
        SyncResult {
            error_code,
            ..SyncResult::default()
        }
    }
}

#[derive(Clone, Debug)]
pub struct SyncParams {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub generation_id: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignments: Vec<(String, Bytes)>,
}

#[derive(Debug)]
pub struct Member {
    pub id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    session_timeout: Duration,
    rebalance_timeout: Duration,
    pub protocols: Vec<(String, Bytes)>,
    pub assignment: Bytes,
    session_deadline: Instant,
    awaiting_join: Option<Arc<Slot<JoinResult>>>,
    awaiting_sync: Option<Arc<Slot<SyncResult>>>,
}

impl Member {
    fn metadata_for(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|(name, _)| name == protocol)
            .map(|(_, m)| m.clone())
            .unwrap_or_default()
    }

    fn same_protocols(&self, protocols: &[(String, Bytes)]) -> bool {
        self.protocols == protocols
    }

    /// Members waiting in a join or a sync are kept alive by the rebalance, not by
    /// heartbeats (they cannot heartbeat on the connection they wait on).
    fn session_expires(&self) -> Option<Instant> {
        if self.awaiting_join.is_some() || self.awaiting_sync.is_some() {
            None
        } else {
            Some(self.session_deadline)
        }
    }
}

#[derive(Debug)]
pub struct Group {
    pub id: String,
    pub state: GroupState,
    pub generation_id: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader: Option<String>,
    /// Insertion order: the first member becomes leader when the leader left.
    pub members: IndexMap<String, Member>,
    /// Member ids handed out with MEMBER_ID_REQUIRED and their expiry.
    pending: HashMap<String, Instant>,
    /// group.instance.id → member id.
    static_members: HashMap<String, String>,
    rebalance_deadline: Option<Instant>,
    /// `group.initial.rebalance.delay.ms`: how long the first join of an empty group
    /// waits for more members (zero: no wait).
    initial_delay: Duration,
    /// While the initial delay runs: when it ends (extended by each new member, never
    /// past the rebalance deadline). The join does not complete before.
    initial_delay_until: Option<Instant>,
    /// Wall clock (ms) when the group last became Empty (offsets retention counts
    /// from here); `None` while it has members or never had any.
    pub emptied_at_ms: Option<i64>,
}

impl Group {
    pub fn new(id: &str, initial_delay: Duration) -> Group {
        Group {
            id: id.to_string(),
            state: GroupState::Empty,
            generation_id: 0,
            protocol_type: None,
            protocol_name: None,
            leader: None,
            members: IndexMap::new(),
            pending: HashMap::new(),
            static_members: HashMap::new(),
            rebalance_deadline: None,
            initial_delay,
            initial_delay_until: None,
            emptied_at_ms: None,
        }
    }

    /// Members plus ids handed out and not yet used: what the size limit counts.
    pub fn size(&self) -> usize {
        self.members.len() + self.pending.len()
    }

    /// Empty with nobody about to join: may be forgotten (when it has no offsets).
    pub fn is_idle(&self) -> bool {
        self.state == GroupState::Empty && self.members.is_empty() && self.pending.is_empty()
    }

    /// The nearest instant at which [`Group::expire`] has something to do.
    pub fn next_deadline(&self) -> Option<Instant> {
        let members = self.members.values().filter_map(Member::session_expires);
        let pending = self.pending.values().copied();
        let rebalance = match self.state {
            GroupState::PreparingRebalance => self.rebalance_deadline,
            _ => None,
        };
        members
            .chain(pending)
            .chain(rebalance)
            .chain(self.initial_delay_until)
            .min()
    }

    /// Removes members whose session expired and completes a rebalance whose timeout
    /// passed. Returns true when anything changed.
    pub fn expire(&mut self, now: Instant) -> bool {
        let mut changed = false;
        let before = self.pending.len();
        self.pending.retain(|_, deadline| *deadline > now);
        if self.pending.len() != before {
            changed = true;
            self.try_complete_join(now);
        }
        let expired: Vec<String> = self
            .members
            .values()
            .filter(|m| m.session_expires().is_some_and(|d| d <= now))
            .map(|m| m.id.clone())
            .collect();
        for id in expired {
            tracing::info!(group = %self.id, member = %id, "session timeout; removing member");
            self.remove_member(&id);
            self.after_member_removed(now);
            changed = true;
        }
        if self.initial_delay_until.is_some_and(|d| d <= now) {
            self.initial_delay_until = None;
            self.try_complete_join(now);
            changed = true;
        }
        if self.state == GroupState::PreparingRebalance
            && self.rebalance_deadline.is_some_and(|d| d <= now)
        {
            tracing::info!(group = %self.id, "rebalance timeout; completing join without the missing members");
            self.complete_join(now);
            changed = true;
        }
        changed
    }

    fn is_fenced(&self, member_id: &str, instance: Option<&str>) -> bool {
        instance
            .and_then(|i| self.static_members.get(i))
            .is_some_and(|id| id != member_id)
    }

    /// Protocols every current member (other than `except`) supports, in no order.
    fn supports(&self, protocol_type: &str, protocols: &[(String, Bytes)], except: &str) -> bool {
        let others: Vec<&Member> = self.members.values().filter(|m| m.id != except).collect();
        if others.is_empty() {
            return true;
        }
        if self.protocol_type.as_deref() != Some(protocol_type) {
            return false;
        }
        protocols.iter().any(|(name, _)| {
            others
                .iter()
                .all(|m| m.protocols.iter().any(|(n, _)| n == name))
        })
    }

    pub fn join(
        &mut self,
        p: JoinParams,
        new_member_id: String,
        now: Instant,
    ) -> Arc<Slot<JoinResult>> {
        let done = |code: i16, id: &str| Slot::filled(JoinResult::error(code, id));
        if p.protocol_type.is_empty() || p.protocols.is_empty() {
            return done(code::INCONSISTENT_GROUP_PROTOCOL, &p.member_id);
        }
        if !self.supports(&p.protocol_type, &p.protocols, &p.member_id) {
            return done(code::INCONSISTENT_GROUP_PROTOCOL, &p.member_id);
        }
        if p.member_id.is_empty() {
            return self.join_new(p, new_member_id, now);
        }
        let member_id = p.member_id.clone();
        if self.pending.remove(&member_id).is_some() {
            let slot = Slot::empty();
            self.add_member(member_id, &p, now, Some(slot.clone()));
            self.maybe_prepare_rebalance(now);
            return slot;
        }
        if self.is_fenced(&member_id, p.group_instance_id.as_deref()) {
            return done(code::FENCED_INSTANCE_ID, &member_id);
        }
        if !self.members.contains_key(&member_id) {
            return done(code::UNKNOWN_MEMBER_ID, &member_id);
        }
        match self.state {
            GroupState::PreparingRebalance => {
                let slot = Slot::empty();
                self.update_member(&member_id, &p, now, slot.clone());
                self.try_complete_join(now);
                slot
            }
            GroupState::CompletingRebalance | GroupState::Stable => {
                let same = self.members[&member_id].same_protocols(&p.protocols);
                let is_leader = self.leader.as_deref() == Some(&member_id);
                if same && (self.state == GroupState::CompletingRebalance || !is_leader) {
                    // A repeated join (the client missed the answer): the current
                    // generation, unchanged.
                    if let Some(m) = self.members.get_mut(&member_id) {
                        m.session_deadline = now + m.session_timeout;
                    }
                    Slot::filled(self.current_join_result(&member_id, false))
                } else {
                    let slot = Slot::empty();
                    self.update_member(&member_id, &p, now, slot.clone());
                    self.prepare_rebalance(now);
                    slot
                }
            }
            GroupState::Empty | GroupState::Dead => done(code::UNKNOWN_MEMBER_ID, &member_id),
        }
    }

    fn join_new(&mut self, p: JoinParams, new_id: String, now: Instant) -> Arc<Slot<JoinResult>> {
        if let Some(instance) = p.group_instance_id.clone() {
            if let Some(old_id) = self.static_members.get(&instance).cloned() {
                return self.replace_static_member(&old_id, new_id, &p, now);
            }
        } else if p.require_known_member_id {
            if self.size() >= MEMBERS_PER_GROUP_MAX {
                return Slot::filled(JoinResult::error(code::GROUP_MAX_SIZE_REACHED, ""));
            }
            let session = session_timeout(&p);
            self.pending.insert(new_id.clone(), now + session);
            return Slot::filled(JoinResult::error(code::MEMBER_ID_REQUIRED, &new_id));
        }
        if self.size() >= MEMBERS_PER_GROUP_MAX {
            return Slot::filled(JoinResult::error(code::GROUP_MAX_SIZE_REACHED, ""));
        }
        let slot = Slot::empty();
        self.add_member(new_id, &p, now, Some(slot.clone()));
        self.maybe_prepare_rebalance(now);
        slot
    }

    /// A static member came back (restart) with a new member id: the old id is fenced.
    /// In a stable group with unchanged protocols this needs no rebalance; a returning
    /// leader gets the member list with `skip_assignment` (v9+; older clients compute an
    /// assignment whose SyncGroup, in a Stable group, returns the stored one).
    fn replace_static_member(
        &mut self,
        old_id: &str,
        new_id: String,
        p: &JoinParams,
        now: Instant,
    ) -> Arc<Slot<JoinResult>> {
        let Some(mut member) = self.members.shift_remove(old_id) else {
            return Slot::filled(JoinResult::error(code::UNKNOWN_MEMBER_ID, ""));
        };
        // Whoever still waits with the old id is fenced.
        if let Some(s) = member.awaiting_join.take() {
            s.fill(JoinResult::error(code::FENCED_INSTANCE_ID, old_id));
        }
        if let Some(s) = member.awaiting_sync.take() {
            s.fill(SyncResult::error(code::FENCED_INSTANCE_ID));
        }
        let unchanged = member.same_protocols(&p.protocols);
        member.id = new_id.clone();
        member.client_id = p.client_id.clone();
        member.client_host = p.client_host.clone();
        member.session_timeout = session_timeout(p);
        member.rebalance_timeout = rebalance_timeout(p);
        member.protocols = p.protocols.clone();
        member.session_deadline = now + member.session_timeout;
        let was_leader = self.leader.as_deref() == Some(old_id);
        if was_leader {
            self.leader = Some(new_id.clone());
        }
        if let Some(instance) = &p.group_instance_id {
            self.static_members.insert(instance.clone(), new_id.clone());
        }
        self.members.insert(new_id.clone(), member);
        match self.state {
            GroupState::Stable if unchanged => {
                tracing::info!(group = %self.id, member = %new_id, "static member rejoined without a rebalance");
                Slot::filled(self.current_join_result(&new_id, was_leader))
            }
            GroupState::PreparingRebalance => {
                let slot = Slot::empty();
                if let Some(m) = self.members.get_mut(&new_id) {
                    m.awaiting_join = Some(slot.clone());
                }
                self.try_complete_join(now);
                slot
            }
            _ => {
                let slot = Slot::empty();
                if let Some(m) = self.members.get_mut(&new_id) {
                    m.awaiting_join = Some(slot.clone());
                }
                self.prepare_rebalance(now);
                slot
            }
        }
    }

    fn add_member(
        &mut self,
        id: String,
        p: &JoinParams,
        now: Instant,
        slot: Option<Arc<Slot<JoinResult>>>,
    ) {
        if self.members.is_empty() {
            self.protocol_type = Some(p.protocol_type.clone());
            self.emptied_at_ms = None;
        }
        if let Some(until) = self.initial_delay_until.as_mut() {
            // Kafka's InitialDelayedJoin: each member arriving during the delay buys
            // the others another delay, within the rebalance timeout.
            let extended = now + self.initial_delay;
            *until = match self.rebalance_deadline {
                Some(cap) => extended.min(cap),
                None => extended,
            }
            .max(*until);
        }
        if self.leader.is_none() {
            self.leader = Some(id.clone());
        }
        if let Some(instance) = &p.group_instance_id {
            self.static_members.insert(instance.clone(), id.clone());
        }
        let session = session_timeout(p);
        self.members.insert(
            id.clone(),
            Member {
                id,
                group_instance_id: p.group_instance_id.clone(),
                client_id: p.client_id.clone(),
                client_host: p.client_host.clone(),
                session_timeout: session,
                rebalance_timeout: rebalance_timeout(p),
                protocols: p.protocols.clone(),
                assignment: Bytes::new(),
                session_deadline: now + session,
                awaiting_join: slot,
                awaiting_sync: None,
            },
        );
    }

    fn update_member(
        &mut self,
        id: &str,
        p: &JoinParams,
        now: Instant,
        slot: Arc<Slot<JoinResult>>,
    ) {
        if let Some(m) = self.members.get_mut(id) {
            m.protocols = p.protocols.clone();
            m.session_timeout = session_timeout(p);
            m.rebalance_timeout = rebalance_timeout(p);
            m.session_deadline = now + m.session_timeout;
            if let Some(old) = m.awaiting_join.replace(slot) {
                // A second join from the same member supersedes the first.
                old.fill(JoinResult::error(code::REBALANCE_IN_PROGRESS, id));
            }
        }
    }

    fn maybe_prepare_rebalance(&mut self, now: Instant) {
        match self.state {
            GroupState::Empty | GroupState::Stable | GroupState::CompletingRebalance => {
                self.prepare_rebalance(now)
            }
            GroupState::PreparingRebalance => self.try_complete_join(now),
            GroupState::Dead => {}
        }
    }

    fn prepare_rebalance(&mut self, now: Instant) {
        let from_empty = self.state == GroupState::Empty;
        if self.state == GroupState::CompletingRebalance {
            // The assignment being built is void: its members rejoin.
            for m in self.members.values_mut() {
                if let Some(s) = m.awaiting_sync.take() {
                    s.fill(SyncResult::error(code::REBALANCE_IN_PROGRESS));
                }
                m.session_deadline = now + m.session_timeout;
            }
        }
        let timeout = self
            .members
            .values()
            .map(|m| m.rebalance_timeout)
            .max()
            .unwrap_or_default();
        self.state = GroupState::PreparingRebalance;
        self.rebalance_deadline = Some(now + timeout);
        if from_empty && !self.initial_delay.is_zero() {
            self.initial_delay_until = Some(now + self.initial_delay.min(timeout));
        }
        tracing::debug!(group = %self.id, members = self.members.len(), "preparing rebalance");
        self.try_complete_join(now);
    }

    fn try_complete_join(&mut self, now: Instant) {
        if self.state == GroupState::PreparingRebalance
            && self.initial_delay_until.is_none()
            && self.pending.is_empty()
            && self.members.values().all(|m| m.awaiting_join.is_some())
        {
            self.complete_join(now);
        }
    }

    fn complete_join(&mut self, now: Instant) {
        let missing: Vec<String> = self
            .members
            .values()
            .filter(|m| m.awaiting_join.is_none())
            .map(|m| m.id.clone())
            .collect();
        for id in missing {
            tracing::info!(group = %self.id, member = %id, "member did not rejoin in time; removing it");
            self.remove_member(&id);
        }
        self.generation_id = self.generation_id.wrapping_add(1);
        self.rebalance_deadline = None;
        self.initial_delay_until = None;
        if self.members.is_empty() {
            self.state = GroupState::Empty;
            self.emptied_at_ms = Some(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
            );
            self.protocol_name = None;
            self.leader = None;
            return;
        }
        self.protocol_name = self.select_protocol();
        self.state = GroupState::CompletingRebalance;
        if !self
            .leader
            .as_ref()
            .is_some_and(|l| self.members.contains_key(l))
        {
            self.leader = self.members.keys().next().cloned();
        }
        tracing::info!(
            group = %self.id,
            generation = self.generation_id,
            members = self.members.len(),
            protocol = ?self.protocol_name,
            "join phase complete"
        );
        let ids: Vec<String> = self.members.keys().cloned().collect();
        for id in ids {
            let result = self.current_join_result(&id, false);
            if let Some(m) = self.members.get_mut(&id) {
                m.session_deadline = now + m.session_timeout;
                if let Some(slot) = m.awaiting_join.take() {
                    slot.fill(result);
                }
            }
        }
    }

    /// The protocol that the most members prefer among those all members support
    /// (ties: the first member's preference).
    fn select_protocol(&self) -> Option<String> {
        let first = self.members.values().next()?;
        let candidates: Vec<&String> = first
            .protocols
            .iter()
            .map(|(n, _)| n)
            .filter(|name| {
                self.members
                    .values()
                    .all(|m| m.protocols.iter().any(|(n, _)| n == *name))
            })
            .collect();
        let mut votes: Vec<usize> = vec![0; candidates.len()];
        for m in self.members.values() {
            let pick = m
                .protocols
                .iter()
                .find_map(|(n, _)| candidates.iter().position(|c| *c == n));
            if let Some(i) = pick {
                votes[i] += 1;
            }
        }
        let best = votes.iter().max()?;
        let i = votes.iter().position(|v| v == best)?;
        candidates.get(i).map(|s| s.to_string())
    }

    fn current_join_result(&self, member_id: &str, skip_assignment: bool) -> JoinResult {
        let leader = self.leader.clone().unwrap_or_default();
        let protocol = self.protocol_name.clone().unwrap_or_default();
        let members = if leader == member_id {
            self.members
                .values()
                .map(|m| JoinMember {
                    member_id: m.id.clone(),
                    group_instance_id: m.group_instance_id.clone(),
                    metadata: m.metadata_for(&protocol),
                })
                .collect()
        } else {
            Vec::new()
        };
        JoinResult {
            error_code: code::NONE,
            generation_id: self.generation_id,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol_name.clone(),
            leader,
            member_id: member_id.to_string(),
            members,
            skip_assignment,
        }
    }

    fn remove_member(&mut self, id: &str) {
        let Some(mut m) = self.members.shift_remove(id) else {
            return;
        };
        if let Some(instance) = &m.group_instance_id {
            if self.static_members.get(instance).map(String::as_str) == Some(id) {
                self.static_members.remove(instance);
            }
        }
        if let Some(s) = m.awaiting_join.take() {
            s.fill(JoinResult::error(code::UNKNOWN_MEMBER_ID, id));
        }
        if let Some(s) = m.awaiting_sync.take() {
            s.fill(SyncResult::error(code::UNKNOWN_MEMBER_ID));
        }
        if self.leader.as_deref() == Some(id) {
            self.leader = self.members.keys().next().cloned();
        }
    }

    fn after_member_removed(&mut self, now: Instant) {
        match self.state {
            GroupState::Stable | GroupState::CompletingRebalance => self.prepare_rebalance(now),
            GroupState::PreparingRebalance => self.try_complete_join(now),
            GroupState::Empty | GroupState::Dead => {}
        }
    }

    pub fn sync(&mut self, p: SyncParams, now: Instant) -> Arc<Slot<SyncResult>> {
        let done = |c: i16| Slot::filled(SyncResult::error(c));
        if let Err(c) = self.validate_member(&p.member_id, p.group_instance_id.as_deref()) {
            return done(c);
        }
        if p.generation_id != self.generation_id {
            return done(code::ILLEGAL_GENERATION);
        }
        if p.protocol_type
            .as_ref()
            .is_some_and(|t| Some(t) != self.protocol_type.as_ref())
            || p.protocol_name
                .as_ref()
                .is_some_and(|n| Some(n) != self.protocol_name.as_ref())
        {
            return done(code::INCONSISTENT_GROUP_PROTOCOL);
        }
        match self.state {
            GroupState::Empty | GroupState::Dead => done(code::UNKNOWN_MEMBER_ID),
            GroupState::PreparingRebalance => done(code::REBALANCE_IN_PROGRESS),
            GroupState::Stable => {
                let m = &mut self.members[&p.member_id];
                m.session_deadline = now + m.session_timeout;
                let assignment = m.assignment.clone();
                Slot::filled(self.sync_result(assignment))
            }
            GroupState::CompletingRebalance => {
                let is_leader = self.leader.as_deref() == Some(&p.member_id);
                if is_leader
                    && p.assignments
                        .iter()
                        .any(|(_, a)| a.len() > ASSIGNMENT_BYTES_MAX)
                {
                    return done(code::INVALID_REQUEST);
                }
                let slot = Slot::empty();
                {
                    let m = &mut self.members[&p.member_id];
                    m.session_deadline = now + m.session_timeout;
                    if let Some(old) = m.awaiting_sync.replace(slot.clone()) {
                        old.fill(SyncResult::error(code::REBALANCE_IN_PROGRESS));
                    }
                }
                if is_leader {
                    let mut given: HashMap<String, Bytes> = p.assignments.into_iter().collect();
                    for m in self.members.values_mut() {
                        m.assignment = given.remove(&m.id).unwrap_or_default();
                    }
                    self.state = GroupState::Stable;
                    tracing::info!(group = %self.id, generation = self.generation_id, "group stable");
                    let results: Vec<(String, SyncResult)> = self
                        .members
                        .values()
                        .map(|m| (m.id.clone(), self.sync_result(m.assignment.clone())))
                        .collect();
                    for (id, result) in results {
                        if let Some(m) = self.members.get_mut(&id) {
                            if let Some(s) = m.awaiting_sync.take() {
                                s.fill(result);
                            }
                            m.session_deadline = now + m.session_timeout;
                        }
                    }
                }
                slot
            }
        }
    }

    fn sync_result(&self, assignment: Bytes) -> SyncResult {
        SyncResult {
            error_code: code::NONE,
            assignment,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol_name.clone(),
        }
    }

    pub fn heartbeat(
        &mut self,
        member_id: &str,
        instance: Option<&str>,
        generation_id: i32,
        now: Instant,
    ) -> i16 {
        if let Err(c) = self.validate_member(member_id, instance) {
            return c;
        }
        if generation_id != self.generation_id {
            return code::ILLEGAL_GENERATION;
        }
        if let Some(m) = self.members.get_mut(member_id) {
            m.session_deadline = now + m.session_timeout;
        }
        match self.state {
            GroupState::Empty | GroupState::Dead => code::UNKNOWN_MEMBER_ID,
            GroupState::PreparingRebalance => code::REBALANCE_IN_PROGRESS,
            GroupState::CompletingRebalance | GroupState::Stable => code::NONE,
        }
    }

    /// LeaveGroup for one member (by id, or by instance id when the id is empty).
    pub fn leave(&mut self, member_id: &str, instance: Option<&str>, now: Instant) -> i16 {
        let id = match (member_id.is_empty(), instance) {
            (true, Some(i)) => match self.static_members.get(i) {
                Some(id) => id.clone(),
                None => return code::UNKNOWN_MEMBER_ID,
            },
            _ => member_id.to_string(),
        };
        if self.is_fenced(&id, instance) {
            return code::FENCED_INSTANCE_ID;
        }
        if self.pending.remove(&id).is_some() {
            self.try_complete_join(now);
            return code::NONE;
        }
        if !self.members.contains_key(&id) {
            return code::UNKNOWN_MEMBER_ID;
        }
        tracing::info!(group = %self.id, member = %id, "member left");
        self.remove_member(&id);
        self.after_member_removed(now);
        code::NONE
    }

    /// Kafka's `validateMember`: a static member is known by its instance id (another
    /// member id for it is fenced), a dynamic one by its member id.
    pub fn validate_member(&self, member_id: &str, instance: Option<&str>) -> Result<(), i16> {
        match instance {
            Some(instance) => match self.static_members.get(instance) {
                None => Err(code::UNKNOWN_MEMBER_ID),
                Some(id) if id != member_id => Err(code::FENCED_INSTANCE_ID),
                Some(_) => Ok(()),
            },
            None if self.members.contains_key(member_id) => Ok(()),
            None => Err(code::UNKNOWN_MEMBER_ID),
        }
    }

    /// Kafka's rules for who may commit offsets to this group (ClassicGroup's
    /// `validateOffsetCommit`), the one place OffsetCommit and, later, TxnOffsetCommit
    /// fence stale members:
    /// - generation < 0 in an Empty group: a consumer without group management (or an
    ///   admin client) commits, accepted;
    /// - otherwise a member id, an instance id or a generation ≥ 0 must name a current
    ///   member (UNKNOWN_MEMBER_ID, FENCED_INSTANCE_ID) of the current generation
    ///   (ILLEGAL_GENERATION): a member revoked by a rebalance that completed without it
    ///   cannot overwrite the progress of the partition's new owner;
    /// - generation −1 without member and instance id in a group with members:
    ///   UNKNOWN_MEMBER_ID (non-transactional commits only);
    /// - a current member while the group waits for the leader's assignment
    ///   (CompletingRebalance): REBALANCE_IN_PROGRESS (non-transactional only). While
    ///   the group prepares a rebalance a current member may still commit what it
    ///   consumed: that is what a consumer does when its partitions are revoked.
    ///
    /// A successful commit by a member counts as a sign of life (its session restarts).
    pub fn validate_commit(
        &mut self,
        member_id: &str,
        instance: Option<&str>,
        generation_id: i32,
        transactional: bool,
        now: Instant,
    ) -> Result<(), i16> {
        if self.state == GroupState::Dead {
            return Err(code::COORDINATOR_NOT_AVAILABLE);
        }
        if generation_id < 0 && self.state == GroupState::Empty {
            return Ok(());
        }
        if generation_id >= 0 || !member_id.is_empty() || instance.is_some() {
            self.validate_member(member_id, instance)?;
            if generation_id != self.generation_id {
                return Err(code::ILLEGAL_GENERATION);
            }
        } else if !transactional && self.state != GroupState::Empty {
            return Err(code::UNKNOWN_MEMBER_ID);
        }
        if !transactional && self.state == GroupState::CompletingRebalance {
            return Err(code::REBALANCE_IN_PROGRESS);
        }
        if let Some(m) = self.members.get_mut(member_id) {
            m.session_deadline = now + m.session_timeout;
        }
        Ok(())
    }

    /// Answers every waiting request (shutdown or deletion) and empties the group.
    pub fn kill(&mut self) {
        for m in self.members.values_mut() {
            if let Some(s) = m.awaiting_join.take() {
                s.fill(JoinResult::error(code::UNKNOWN_MEMBER_ID, &m.id));
            }
            if let Some(s) = m.awaiting_sync.take() {
                s.fill(SyncResult::error(code::UNKNOWN_MEMBER_ID));
            }
        }
        self.members.clear();
        self.pending.clear();
        self.static_members.clear();
        self.state = GroupState::Dead;
    }

    /// Topics the consumer-protocol members subscribe to (for OffsetDelete). `None` when
    /// a subscription cannot be read, which callers treat as "subscribed to everything".
    pub fn subscribed_topics(&self) -> Option<Vec<String>> {
        if self.protocol_type.as_deref() != Some("consumer") {
            return Some(Vec::new());
        }
        let protocol = self.protocol_name.clone()?;
        let mut topics = Vec::new();
        for m in self.members.values() {
            topics.extend(parse_subscription_topics(&m.metadata_for(&protocol))?);
        }
        Some(topics)
    }
}

fn session_timeout(p: &JoinParams) -> Duration {
    Duration::from_millis(p.session_timeout_ms.max(0) as u64)
}

/// JoinGroup v0 has no rebalance timeout: Kafka uses the session timeout.
fn rebalance_timeout(p: &JoinParams) -> Duration {
    let ms = if p.rebalance_timeout_ms > 0 {
        p.rebalance_timeout_ms.min(REBALANCE_TIMEOUT_MS_MAX)
    } else {
        p.session_timeout_ms
    };
    Duration::from_millis(ms.max(0) as u64)
}

/// The topics of a ConsumerProtocolSubscription (`i16 version, [i16 string] topics, ...`).
/// The only place the broker looks inside member metadata: OffsetDelete must refuse
/// topics the group consumes.
fn parse_subscription_topics(metadata: &[u8]) -> Option<Vec<String>> {
    let mut pos = 0usize;
    let mut take = |n: usize| -> Option<std::ops::Range<usize>> {
        let end = pos.checked_add(n).filter(|end| *end <= metadata.len())?;
        let range = pos..end;
        pos = end;
        Some(range)
    };
    let _version = take(2)?;
    let count = i32::from_be_bytes(metadata[take(4)?].try_into().ok()?);
    let mut topics = Vec::new();
    for _ in 0..count.max(0) {
        let len = i16::from_be_bytes(metadata[take(2)?].try_into().ok()?);
        let name = &metadata[take(len.max(0) as usize)?];
        topics.push(String::from_utf8_lossy(name).into_owned());
    }
    Some(topics)
}
