//! Handlers of the group APIs: FindCoordinator, JoinGroup, SyncGroup, Heartbeat,
//! LeaveGroup, OffsetCommit, OffsetFetch, ListGroups, DescribeGroups, DeleteGroups,
//! OffsetDelete. They translate between kafka-protocol structs and the
//! [`Coordinator`](crate::group::Coordinator), setting each response field only in the
//! versions that have it.
//!
//! A JoinGroup or SyncGroup that waits for the rest of the group parks like a Fetch
//! ([`ParkedJoin`], [`ParkedSync`]): the coordinator fills its slot and wakes the data
//! plane, which calls [`Broker::resume`](crate::broker::Broker::resume).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::acls::{authorized_operations, GROUP_OPERATIONS};
use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::find_coordinator_response::Coordinator as CoordinatorEntry;
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

use crate::broker::{enc, Broker, ConnContext, FrameError, Outcome, Parked};
use crate::group::limits::{
    OFFSET_METADATA_BYTES_MAX, REBALANCE_TIMEOUT_MS_MAX, SESSION_TIMEOUT_MS_MAX,
};
use crate::group::{
    code, Assignment, CommitBy, Committed, Coordinator, HeartbeatParams, JoinParams, JoinResult,
    PartitionKey, Slot, SyncParams, SyncResult, Topics,
};
use crate::protocol::response::write_response;

/// JoinGroup v4+: a new member first gets its id (MEMBER_ID_REQUIRED).
const JOIN_MEMBER_ID_REQUIRED_VERSION: i16 = 4;
/// OffsetCommit v9+: a commit with a generation to a group that does not exist gets
/// GROUP_ID_NOT_FOUND (ILLEGAL_GENERATION before), as in Kafka.
const COMMIT_GROUP_ID_NOT_FOUND_VERSION: i16 = 9;
/// Extra wait of a parked JoinGroup beyond its rebalance timeout: the timer completes
/// the join at the rebalance timeout, this only bounds a request whose answer was lost.
const PARKED_MARGIN_MS: u64 = 5_000;
/// A parked SyncGroup waits for the leader, whose session bounds it.
const SYNC_WAIT_MS_MAX: u64 = SESSION_TIMEOUT_MS_MAX as u64 + PARKED_MARGIN_MS;

/// A JoinGroup waiting for the rebalance to complete.
#[derive(Debug)]
pub struct ParkedJoin {
    correlation_id: i32,
    version: i16,
    slot: Arc<Slot<JoinResult>>,
    pub deadline: Instant,
}

/// A SyncGroup waiting for the leader's assignment.
#[derive(Debug)]
pub struct ParkedSync {
    correlation_id: i32,
    version: i16,
    slot: Arc<Slot<SyncResult>>,
    pub deadline: Instant,
}

fn s(text: &str) -> StrBytes {
    StrBytes::from_string(text.to_string())
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl Broker {
    pub(in crate::broker) fn find_coordinator(
        &self,
        req: FindCoordinatorRequest,
        version: i16,
    ) -> FindCoordinatorResponse {
        let (host, port) = (s(&self.advertised.0), self.advertised.1);
        let node = self.node_id().into();
        let resp = FindCoordinatorResponse::default();
        if version >= 4 {
            // Batched keys (v4+): this broker coordinates every group.
            let coordinators = req
                .coordinator_keys
                .into_iter()
                .map(|key| {
                    CoordinatorEntry::default()
                        .with_key(key)
                        .with_node_id(node)
                        .with_host(host.clone())
                        .with_port(port)
                })
                .collect();
            resp.with_coordinators(coordinators)
        } else {
            resp.with_node_id(node).with_host(host).with_port(port)
        }
    }

    pub(in crate::broker) fn join_group(
        &self,
        req: JoinGroupRequest,
        version: i16,
        correlation_id: i32,
        (client_id, conn): (&str, &ConnContext),
        out: &mut Vec<u8>,
    ) -> Result<Outcome, FrameError> {
        let wait_ms = req
            .rebalance_timeout_ms
            .max(req.session_timeout_ms)
            .clamp(0, REBALANCE_TIMEOUT_MS_MAX) as u64;
        let params = JoinParams {
            group_id: req.group_id.0.to_string(),
            member_id: req.member_id.to_string(),
            group_instance_id: req.group_instance_id.map(|i| i.to_string()),
            client_id: client_id.to_string(),
            client_host: conn.client_host(),
            session_timeout_ms: req.session_timeout_ms,
            rebalance_timeout_ms: if version >= 1 {
                req.rebalance_timeout_ms
            } else {
                0
            },
            protocol_type: req.protocol_type.to_string(),
            protocols: req
                .protocols
                .into_iter()
                .map(|p| (p.name.to_string(), p.metadata))
                .collect(),
            require_known_member_id: version >= JOIN_MEMBER_ID_REQUIRED_VERSION,
        };
        let mut parked = ParkedJoin {
            correlation_id,
            version,
            slot: self.groups().join(params),
            deadline: Instant::now() + Duration::from_millis(wait_ms + PARKED_MARGIN_MS),
        };
        if self.resume_join(&mut parked, out, false)? {
            Ok(Outcome::Responded)
        } else {
            Ok(Outcome::Park(Box::new(Parked::Join(parked))))
        }
    }

    /// Answers a waiting JoinGroup when its slot is filled, its deadline passed or on
    /// `force` (shutdown); otherwise appends nothing and returns false.
    pub(in crate::broker) fn resume_join(
        &self,
        parked: &mut ParkedJoin,
        out: &mut Vec<u8>,
        force: bool,
    ) -> Result<bool, FrameError> {
        let result = match parked.slot.take() {
            Some(result) => result,
            None if force || Instant::now() >= parked.deadline => {
                JoinResult::error(code::REBALANCE_IN_PROGRESS, "")
            }
            None => return Ok(false),
        };
        let v = parked.version;
        let members = result
            .members
            .into_iter()
            .map(|m| {
                let member = JoinGroupResponseMember::default()
                    .with_member_id(s(&m.member_id))
                    .with_metadata(m.metadata);
                if v >= 5 {
                    member.with_group_instance_id(m.group_instance_id.map(|i| s(&i)))
                } else {
                    member
                }
            })
            .collect();
        // Before v7 the protocol name is a non-nullable string.
        let protocol_name = match (v >= 7, result.protocol_name) {
            (true, name) => name.map(|n| s(&n)),
            (false, name) => Some(s(&name.unwrap_or_default())),
        };
        let mut resp = JoinGroupResponse::default()
            .with_error_code(result.error_code)
            .with_generation_id(result.generation_id)
            .with_protocol_name(protocol_name)
            .with_leader(s(&result.leader))
            .with_member_id(s(&result.member_id))
            .with_members(members);
        if v >= 7 {
            resp.protocol_type = result.protocol_type.map(|t| s(&t));
        }
        if v >= 9 {
            resp.skip_assignment = result.skip_assignment;
        }
        write_response(out, parked.correlation_id, v, &resp).map_err(enc)?;
        Ok(true)
    }

    pub(in crate::broker) fn sync_group(
        &self,
        req: SyncGroupRequest,
        version: i16,
        correlation_id: i32,
        out: &mut Vec<u8>,
    ) -> Result<Outcome, FrameError> {
        let params = SyncParams {
            member_id: req.member_id.to_string(),
            group_instance_id: req.group_instance_id.map(|i| i.to_string()),
            generation_id: req.generation_id,
            protocol_type: req.protocol_type.map(|t| t.to_string()),
            protocol_name: req.protocol_name.map(|n| n.to_string()),
            assignments: req
                .assignments
                .into_iter()
                .map(|a| (a.member_id.to_string(), a.assignment))
                .collect(),
        };
        let mut parked = ParkedSync {
            correlation_id,
            version,
            slot: self.groups().sync(&req.group_id.0, params),
            deadline: Instant::now() + Duration::from_millis(SYNC_WAIT_MS_MAX),
        };
        if self.resume_sync(&mut parked, out, false)? {
            Ok(Outcome::Responded)
        } else {
            Ok(Outcome::Park(Box::new(Parked::Sync(parked))))
        }
    }

    /// Answers a waiting SyncGroup (see [`Broker::resume_join`]).
    pub(in crate::broker) fn resume_sync(
        &self,
        parked: &mut ParkedSync,
        out: &mut Vec<u8>,
        force: bool,
    ) -> Result<bool, FrameError> {
        let result = match parked.slot.take() {
            Some(result) => result,
            None if force || Instant::now() >= parked.deadline => {
                SyncResult::error(code::REBALANCE_IN_PROGRESS)
            }
            None => return Ok(false),
        };
        let mut resp = SyncGroupResponse::default()
            .with_error_code(result.error_code)
            .with_assignment(result.assignment);
        if parked.version >= 5 {
            resp.protocol_type = result.protocol_type.map(|t| s(&t));
            resp.protocol_name = result.protocol_name.map(|n| s(&n));
        }
        write_response(out, parked.correlation_id, parked.version, &resp).map_err(enc)?;
        Ok(true)
    }

    pub(in crate::broker) fn heartbeat(&self, req: HeartbeatRequest) -> HeartbeatResponse {
        let error_code = self.groups().heartbeat(
            &req.group_id.0,
            &req.member_id,
            req.group_instance_id.as_deref(),
            req.generation_id,
        );
        HeartbeatResponse::default().with_error_code(error_code)
    }

    pub(in crate::broker) fn leave_group(
        &self,
        req: LeaveGroupRequest,
        version: i16,
    ) -> LeaveGroupResponse {
        let members: Vec<(String, Option<String>)> = if version <= 2 {
            vec![(req.member_id.to_string(), None)]
        } else {
            req.members
                .iter()
                .map(|m| {
                    (
                        m.member_id.to_string(),
                        m.group_instance_id.as_ref().map(|i| i.to_string()),
                    )
                })
                .collect()
        };
        let resp = LeaveGroupResponse::default();
        match self.groups().leave(&req.group_id.0, &members) {
            Err(c) => resp.with_error_code(c),
            // Before v3 there is one member and its error is the response's.
            Ok(codes) if version <= 2 => {
                resp.with_error_code(codes.first().copied().unwrap_or(code::NONE))
            }
            Ok(codes) => resp.with_members(
                members
                    .into_iter()
                    .zip(codes)
                    .map(|((id, instance), c)| {
                        MemberResponse::default()
                            .with_member_id(s(&id))
                            .with_group_instance_id(instance.map(|i| s(&i)))
                            .with_error_code(c)
                    })
                    .collect(),
            ),
        }
    }

    pub(in crate::broker) fn offset_commit(
        &self,
        req: OffsetCommitRequest,
        version: i16,
    ) -> OffsetCommitResponse {
        let timestamp_ms = now_ms();
        // Per partition: the error found while validating, or None when it is committed.
        let mut verdicts: Vec<(String, Vec<PartitionVerdict>)> = Vec::new();
        let mut commits: Vec<(PartitionKey, Committed)> = Vec::new();
        for t in &req.topics {
            let topic = t.name.0.to_string();
            let mut partitions = Vec::with_capacity(t.partitions.len());
            for p in &t.partitions {
                let metadata = p.committed_metadata.as_deref().unwrap_or("");
                let error = if self.storage.partition(&topic, p.partition_index).is_none() {
                    Some(code::UNKNOWN_TOPIC_OR_PARTITION)
                } else if metadata.len() > OFFSET_METADATA_BYTES_MAX {
                    Some(code::OFFSET_METADATA_TOO_LARGE)
                } else {
                    commits.push((
                        (topic.clone(), p.partition_index),
                        Committed {
                            offset: p.committed_offset,
                            leader_epoch: if version >= 6 {
                                p.committed_leader_epoch
                            } else {
                                -1
                            },
                            metadata: metadata.to_string(),
                            commit_timestamp_ms: timestamp_ms,
                        },
                    ));
                    None
                };
                partitions.push((p.partition_index, error));
            }
            verdicts.push((topic, partitions));
        }
        let outcome = if commits.is_empty() {
            Ok(())
        } else {
            let by = CommitBy {
                member_id: &req.member_id,
                group_instance_id: req.group_instance_id.as_deref(),
                generation_id: req.generation_id_or_member_epoch,
                transactional: false,
                unknown_group_code: if version >= COMMIT_GROUP_ID_NOT_FOUND_VERSION {
                    code::GROUP_ID_NOT_FOUND
                } else {
                    code::ILLEGAL_GENERATION
                },
                member_epochs: version >= COMMIT_GROUP_ID_NOT_FOUND_VERSION,
            };
            self.groups().commit(&req.group_id.0, &by, commits)
        };
        let committed_code = outcome.err().unwrap_or(code::NONE);
        let topics = verdicts
            .into_iter()
            .map(|(name, partitions)| {
                OffsetCommitResponseTopic::default()
                    .with_name(TopicName(s(&name)))
                    .with_partitions(
                        partitions
                            .into_iter()
                            .map(|(index, error)| {
                                OffsetCommitResponsePartition::default()
                                    .with_partition_index(index)
                                    .with_error_code(error.unwrap_or(committed_code))
                            })
                            .collect(),
                    )
            })
            .collect();
        OffsetCommitResponse::default().with_topics(topics)
    }

    pub(in crate::broker) fn offset_fetch(
        &self,
        req: OffsetFetchRequest,
        version: i16,
    ) -> OffsetFetchResponse {
        let resp = OffsetFetchResponse::default();
        if version >= 8 {
            let groups = req
                .groups
                .into_iter()
                .map(|g| {
                    let wanted = g.topics.map(|ts| {
                        ts.into_iter()
                            .map(|t| (t.name.0.to_string(), t.partition_indexes))
                            .collect::<Vec<_>>()
                    });
                    let group =
                        OffsetFetchResponseGroup::default().with_group_id(g.group_id.clone());
                    // v9+: a KIP-848 member names itself (admin clients do not).
                    let member = match (&g.member_id, g.member_epoch) {
                        (None, epoch) if epoch < 0 => None,
                        (id, epoch) => Some((id.as_deref().unwrap_or(""), epoch)),
                    };
                    match self
                        .groups()
                        .committed_for(&g.group_id.0, wanted.as_deref(), member)
                    {
                        Err(c) => group.with_error_code(c),
                        Ok(found) => group.with_topics(
                            by_topic(found)
                                .into_iter()
                                .map(|(name, partitions)| {
                                    OffsetFetchResponseTopics::default()
                                        .with_name(TopicName(s(&name)))
                                        .with_partitions(
                                            partitions
                                                .into_iter()
                                                .map(|(p, c)| {
                                                    let (offset, epoch, meta) = committed_fields(c);
                                                    OffsetFetchResponsePartitions::default()
                                                        .with_partition_index(p)
                                                        .with_committed_offset(offset)
                                                        .with_committed_leader_epoch(epoch)
                                                        .with_metadata(Some(s(&meta)))
                                                })
                                                .collect(),
                                        )
                                })
                                .collect(),
                        ),
                    }
                })
                .collect();
            return resp.with_groups(groups);
        }
        // v1 has no "all topics" (null) and no top-level error code: errors go to the
        // partitions.
        let wanted = req.topics.map(|ts| {
            ts.into_iter()
                .map(|t| (t.name.0.to_string(), t.partition_indexes))
                .collect::<Vec<_>>()
        });
        let (found, error) = match self.groups().committed(&req.group_id.0, wanted.as_deref()) {
            Ok(found) => (found, code::NONE),
            Err(c) => {
                let none = wanted
                    .iter()
                    .flatten()
                    .flat_map(|(t, ps)| ps.iter().map(|p| ((t.clone(), *p), None)))
                    .collect();
                (none, c)
            }
        };
        let topics = by_topic(found)
            .into_iter()
            .map(|(name, partitions)| {
                OffsetFetchResponseTopic::default()
                    .with_name(TopicName(s(&name)))
                    .with_partitions(
                        partitions
                            .into_iter()
                            .map(|(p, c)| {
                                let (offset, epoch, meta) = committed_fields(c);
                                let mut part = OffsetFetchResponsePartition::default()
                                    .with_partition_index(p)
                                    .with_committed_offset(offset)
                                    .with_metadata(Some(s(&meta)));
                                if version >= 5 {
                                    part.committed_leader_epoch = epoch;
                                }
                                if version < 2 {
                                    part.error_code = error;
                                }
                                part
                            })
                            .collect(),
                    )
            })
            .collect();
        let resp = resp.with_topics(topics);
        if version >= 2 {
            resp.with_error_code(error)
        } else {
            resp
        }
    }

    pub(in crate::broker) fn list_groups(
        &self,
        req: ListGroupsRequest,
        version: i16,
    ) -> ListGroupsResponse {
        let states: Vec<String> = req
            .states_filter
            .iter()
            .map(|st| st.to_ascii_lowercase())
            .collect();
        let types: Vec<String> = req
            .types_filter
            .iter()
            .map(|t| t.to_ascii_lowercase())
            .collect();
        let groups = self
            .groups()
            .list()
            .into_iter()
            .filter(|g| version < 5 || types.is_empty() || types.iter().any(|t| t == g.group_type))
            .filter(|g| {
                version < 4
                    || states.is_empty()
                    || states.contains(&g.state_name.to_ascii_lowercase())
            })
            .map(|g| {
                let mut listed = ListedGroup::default()
                    .with_group_id(GroupId(s(&g.group_id)))
                    .with_protocol_type(s(&g.protocol_type));
                if version >= 4 {
                    listed.group_state = s(g.state_name);
                }
                if version >= 5 {
                    listed.group_type = s(g.group_type);
                }
                listed
            })
            .collect();
        ListGroupsResponse::default().with_groups(groups)
    }

    pub(in crate::broker) fn describe_groups(
        &self,
        req: DescribeGroupsRequest,
        version: i16,
    ) -> DescribeGroupsResponse {
        let groups = req
            .groups
            .iter()
            .map(|id| {
                let d = self.groups().describe(&id.0);
                let members = d
                    .members
                    .into_iter()
                    .map(|m| {
                        let member = DescribedGroupMember::default()
                            .with_member_id(s(&m.member_id))
                            .with_client_id(s(&m.client_id))
                            .with_client_host(s(&m.client_host))
                            .with_member_metadata(m.metadata)
                            .with_member_assignment(m.assignment);
                        if version >= 4 {
                            member.with_group_instance_id(m.group_instance_id.map(|i| s(&i)))
                        } else {
                            member
                        }
                    })
                    .collect();
                DescribedGroup::default()
                    .with_authorized_operations(authorized_operations(
                        req.include_authorized_operations,
                        GROUP_OPERATIONS,
                    ))
                    .with_error_code(d.error_code)
                    .with_group_id(id.clone())
                    .with_group_state(s(d.state.name()))
                    .with_protocol_type(s(&d.protocol_type))
                    .with_protocol_data(s(&d.protocol_name))
                    .with_members(members)
            })
            .collect();
        DescribeGroupsResponse::default().with_groups(groups)
    }

    pub(in crate::broker) fn delete_groups(
        &self,
        req: DeleteGroupsRequest,
    ) -> DeleteGroupsResponse {
        let results = req
            .groups_names
            .into_iter()
            .map(|id| {
                let error_code = self.groups().delete(&id.0);
                DeletableGroupResult::default()
                    .with_group_id(id)
                    .with_error_code(error_code)
            })
            .collect();
        DeleteGroupsResponse::default().with_results(results)
    }

    pub(in crate::broker) fn offset_delete(
        &self,
        req: OffsetDeleteRequest,
    ) -> OffsetDeleteResponse {
        let mut unknown: Vec<PartitionKey> = Vec::new();
        let mut keys: Vec<PartitionKey> = Vec::new();
        for t in &req.topics {
            for p in &t.partitions {
                let key = (t.name.0.to_string(), p.partition_index);
                if self.storage.partition(&key.0, key.1).is_some() {
                    keys.push(key);
                } else {
                    unknown.push(key);
                }
            }
        }
        let resp = OffsetDeleteResponse::default();
        let mut results = match self.groups().delete_offsets(&req.group_id.0, keys) {
            Err(c) => return resp.with_error_code(c),
            Ok(results) => results,
        };
        results.extend(
            unknown
                .into_iter()
                .map(|k| (k, code::UNKNOWN_TOPIC_OR_PARTITION)),
        );
        let mut topics: BTreeMap<String, Vec<(i32, i16)>> = BTreeMap::new();
        for ((topic, p), c) in results {
            topics.entry(topic).or_default().push((p, c));
        }
        resp.with_topics(
            topics
                .into_iter()
                .map(|(name, mut partitions)| {
                    partitions.sort_unstable();
                    OffsetDeleteResponseTopic::default()
                        .with_name(TopicName(s(&name)))
                        .with_partitions(
                            partitions
                                .into_iter()
                                .map(|(p, c)| {
                                    OffsetDeleteResponsePartition::default()
                                        .with_partition_index(p)
                                        .with_error_code(c)
                                })
                                .collect(),
                        )
                })
                .collect(),
        )
    }

    pub(in crate::broker) fn consumer_group_heartbeat(
        &self,
        req: ConsumerGroupHeartbeatRequest,
        (client_id, conn): (&str, &ConnContext),
    ) -> ConsumerGroupHeartbeatResponse {
        let owned = req.topic_partitions.as_ref().map(|tps| {
            let mut a = Assignment::new();
            for tp in tps {
                a.entry(tp.topic_id)
                    .or_default()
                    .extend(tp.partitions.iter().copied());
            }
            a
        });
        let params = HeartbeatParams {
            member_id: req.member_id.to_string(),
            member_epoch: req.member_epoch,
            instance_id: req.instance_id.as_ref().map(|i| i.to_string()),
            rack_id: req.rack_id.as_ref().map(|r| r.to_string()),
            rebalance_timeout_ms: req.rebalance_timeout_ms,
            subscribed_names: req
                .subscribed_topic_names
                .as_ref()
                .map(|ns| ns.iter().map(|n| n.0.to_string()).collect()),
            subscribed_regex: req.subscribed_topic_regex.as_ref().map(|r| r.to_string()),
            server_assignor: req.server_assignor.as_ref().map(|a| a.to_string()),
            owned,
            client_id: client_id.to_string(),
            client_host: conn.client_host(),
        };
        let r = self.groups().consumer_heartbeat(&req.group_id.0, params);
        let resp = ConsumerGroupHeartbeatResponse::default()
            .with_error_code(r.error_code)
            .with_error_message(r.error_message.map(|m| s(&m)))
            .with_member_epoch(r.member_epoch)
            .with_heartbeat_interval_ms(r.heartbeat_interval_ms);
        if r.error_code != code::NONE {
            return resp;
        }
        resp.with_member_id(Some(s(&r.member_id)))
            .with_assignment(r.assignment.map(|a| {
                consumer_group_heartbeat_response::Assignment::default().with_topic_partitions(
                    a.into_iter()
                        .map(|(id, ps)| {
                            consumer_group_heartbeat_response::TopicPartitions::default()
                                .with_topic_id(id)
                                .with_partitions(ps.into_iter().collect())
                        })
                        .collect(),
                )
            }))
    }

    pub(in crate::broker) fn consumer_group_describe(
        &self,
        req: ConsumerGroupDescribeRequest,
    ) -> ConsumerGroupDescribeResponse {
        use consumer_group_describe_response as d;
        let to_assignment = |a: crate::group::Assignment| {
            d::Assignment::default().with_topic_partitions(
                a.into_iter()
                    .map(|(id, ps)| {
                        let name = self
                            .storage
                            .topic_by_id(id)
                            .map(|t| t.name)
                            .unwrap_or_default();
                        d::TopicPartitions::default()
                            .with_topic_id(id)
                            .with_topic_name(TopicName(s(&name)))
                            .with_partitions(ps.into_iter().collect())
                    })
                    .collect(),
            )
        };
        let groups = req
            .group_ids
            .into_iter()
            .map(|id| {
                let group = d::DescribedGroup::default()
                    .with_group_id(id.clone())
                    .with_authorized_operations(authorized_operations(
                        req.include_authorized_operations,
                        GROUP_OPERATIONS,
                    ));
                if let Err(c) = crate::group::validate_group_id(&id.0, false) {
                    return group.with_error_code(c);
                }
                let Some(desc) = self.groups().consumer_describe(&id.0) else {
                    return group
                        .with_error_code(code::GROUP_ID_NOT_FOUND)
                        .with_error_message(Some(s("not a consumer group (or no such group)")))
                        .with_group_state(s("Dead"));
                };
                group
                    .with_group_state(s(desc.state.name()))
                    .with_group_epoch(desc.group_epoch)
                    .with_assignment_epoch(desc.assignment_epoch)
                    .with_assignor_name(s(desc.assignor))
                    .with_members(
                        desc.members
                            .into_iter()
                            .map(|m| {
                                d::Member::default()
                                    .with_member_id(s(&m.member_id))
                                    .with_instance_id(m.instance_id.map(|i| s(&i)))
                                    .with_rack_id(m.rack_id.map(|r| s(&r)))
                                    .with_member_epoch(m.member_epoch)
                                    .with_client_id(s(&m.client_id))
                                    .with_client_host(s(&m.client_host))
                                    .with_subscribed_topic_names(
                                        m.subscribed_topic_names
                                            .iter()
                                            .map(|n| TopicName(s(n)))
                                            .collect(),
                                    )
                                    .with_subscribed_topic_regex(
                                        m.subscribed_topic_regex.map(|r| s(&r)),
                                    )
                                    .with_assignment(to_assignment(m.assignment))
                                    .with_target_assignment(to_assignment(m.target_assignment))
                            })
                            .collect(),
                    )
            })
            .collect();
        ConsumerGroupDescribeResponse::default().with_groups(groups)
    }

    /// The group coordinator.
    pub fn groups(&self) -> &Arc<Coordinator> {
        &self.groups
    }
}

/// Offset, leader epoch and metadata of a partition; -1/-1/"" when nothing is committed.
fn committed_fields(c: Option<Committed>) -> (i64, i32, String) {
    match c {
        Some(c) => (c.offset, c.leader_epoch, c.metadata),
        None => (-1, -1, String::new()),
    }
}

/// A partition of an OffsetCommit and the error found while validating it (`None`:
/// it is committed, and gets the commit's outcome).
type PartitionVerdict = (i32, Option<i16>);
/// A partition and what is committed for it.
type PartitionCommitted = (i32, Option<Committed>);

/// Partitions grouped by topic, topics in first-seen order.
fn by_topic(
    found: Vec<(PartitionKey, Option<Committed>)>,
) -> Vec<(String, Vec<PartitionCommitted>)> {
    let mut out: indexmap::IndexMap<String, Vec<PartitionCommitted>> = indexmap::IndexMap::new();
    for ((topic, p), c) in found {
        out.entry(topic).or_default().push((p, c));
    }
    out.into_iter().collect()
}

/// Topic metadata of the storage, for KIP-848 target assignments.
pub struct StorageTopics(pub Arc<crate::storage::Storage>);

impl Topics for StorageTopics {
    fn by_name(&self, name: &str) -> Option<(uuid::Uuid, i32)> {
        self.0.topic(name).map(|t| (t.id, t.partitions))
    }
    fn names(&self) -> Vec<String> {
        self.0.topics().into_iter().map(|t| t.name).collect()
    }
}
