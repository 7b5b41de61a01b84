//! Coordinator scenarios without a network: the state machine and the timer.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::*;

fn params(group: &str, member: &str, protocols: &[&str]) -> JoinParams {
    JoinParams {
        group_id: group.into(),
        member_id: member.into(),
        group_instance_id: None,
        client_id: "client".into(),
        client_host: String::new(),
        session_timeout_ms: 1_000,
        rebalance_timeout_ms: 2_000,
        protocol_type: "consumer".into(),
        protocols: protocols
            .iter()
            .map(|p| (p.to_string(), Bytes::from(format!("meta-{p}"))))
            .collect(),
        require_known_member_id: true,
    }
}

fn sync_params(member: &str, generation_id: i32, assignments: &[(&str, &str)]) -> SyncParams {
    SyncParams {
        member_id: member.into(),
        group_instance_id: None,
        generation_id,
        protocol_type: None,
        protocol_name: None,
        assignments: assignments
            .iter()
            .map(|(m, a)| (m.to_string(), Bytes::from(a.to_string())))
            .collect(),
    }
}

fn taken<T>(slot: &Arc<Slot<T>>) -> T {
    slot.take().expect("answered at once")
}

/// Joins through the member-id-required round trip; returns the waiting slot.
fn join_new(c: &Coordinator, group: &str, protocols: &[&str]) -> (String, Arc<Slot<JoinResult>>) {
    let first = taken(&c.join(params(group, "", protocols)));
    assert_eq!(first.error_code, code::MEMBER_ID_REQUIRED);
    assert!(first.member_id.starts_with("client-"));
    let slot = c.join(params(group, &first.member_id, protocols));
    (first.member_id, slot)
}

#[test]
fn single_member_joins_syncs_and_is_stable() {
    let c = Coordinator::in_memory(crate::group::no_wake());
    let (id, slot) = join_new(&c, "g", &["range"]);
    let joined = taken(&slot);
    assert_eq!(joined.error_code, code::NONE);
    assert_eq!(joined.generation_id, 1);
    assert_eq!(joined.leader, id);
    assert_eq!(joined.protocol_name.as_deref(), Some("range"));
    assert_eq!(joined.members.len(), 1);
    assert_eq!(joined.members[0].metadata, Bytes::from("meta-range"));

    let synced = taken(&c.sync("g", sync_params(&id, 1, &[(&id, "all")])));
    assert_eq!(synced.error_code, code::NONE);
    assert_eq!(synced.assignment, Bytes::from("all"));
    assert_eq!(c.state_of("g"), Some((GroupState::Stable, 1, 1)));
    assert_eq!(c.heartbeat("g", &id, None, 1), code::NONE);
    assert_eq!(c.heartbeat("g", &id, None, 0), code::ILLEGAL_GENERATION);
    assert_eq!(c.heartbeat("g", "nobody", None, 1), code::UNKNOWN_MEMBER_ID);
}

#[test]
fn second_member_triggers_rebalance_and_both_get_the_common_protocol() {
    let c = Coordinator::in_memory(crate::group::no_wake());
    let (a, slot) = join_new(&c, "g", &["roundrobin", "range"]);
    let gen1 = taken(&slot).generation_id;
    taken(&c.sync("g", sync_params(&a, gen1, &[(&a, "x")])));

    let (b, b_join) = join_new(&c, "g", &["range"]);
    assert!(
        b_join.take().is_none(),
        "waits for the first member to rejoin"
    );
    assert_eq!(
        c.heartbeat("g", &a, None, gen1),
        code::REBALANCE_IN_PROGRESS
    );
    let a_join = c.join(params("g", &a, &["roundrobin", "range"]));
    let a_res = taken(&a_join);
    let b_res = taken(&b_join);
    assert_eq!(a_res.generation_id, gen1 + 1);
    assert_eq!(a_res.protocol_name.as_deref(), Some("range"));
    assert_eq!(a_res.leader, a, "the leader stays");
    assert_eq!(a_res.members.len(), 2);
    assert!(b_res.members.is_empty(), "followers get no member list");

    let b_sync = c.sync("g", sync_params(&b, a_res.generation_id, &[]));
    assert!(b_sync.take().is_none(), "a follower waits for the leader");
    let a_sync = c.sync(
        "g",
        sync_params(&a, a_res.generation_id, &[(&a, "p0"), (&b, "p1")]),
    );
    assert_eq!(taken(&a_sync).assignment, Bytes::from("p0"));
    assert_eq!(taken(&b_sync).assignment, Bytes::from("p1"));
}

#[test]
fn no_common_protocol_is_inconsistent() {
    let c = Coordinator::in_memory(crate::group::no_wake());
    let (_, slot) = join_new(&c, "g", &["range"]);
    taken(&slot);
    let r = taken(&c.join(params("g", "", &["sticky"])));
    assert_eq!(r.error_code, code::INCONSISTENT_GROUP_PROTOCOL);
}

#[test]
fn member_that_stops_heartbeating_is_removed_by_the_timer() {
    let c = Coordinator::in_memory(crate::group::no_wake());
    let (a, slot) = join_new(&c, "g", &["range"]);
    let generation = taken(&slot).generation_id;
    taken(&c.sync("g", sync_params(&a, generation, &[(&a, "x")])));
    let started = Instant::now();
    // Session timeout 1 s; nobody heartbeats. Generous bound: only catches a hang.
    while c.state_of("g").is_some() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "member never expired"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(started.elapsed() >= Duration::from_millis(900));
}

#[test]
fn rebalance_timeout_completes_the_join_without_the_silent_member() {
    let c = Coordinator::in_memory(crate::group::no_wake());
    let (a, slot) = join_new(&c, "g", &["range"]);
    let generation = taken(&slot).generation_id;
    taken(&c.sync("g", sync_params(&a, generation, &[(&a, "x")])));
    // b joins; a keeps heartbeating (so its session lives) but never rejoins.
    let (_b, b_join) = join_new(&c, "g", &["range"]);
    let started = Instant::now();
    while b_join.take().map(|r| r.error_code).is_none() {
        assert_eq!(
            c.heartbeat("g", &a, None, generation),
            code::REBALANCE_IN_PROGRESS
        );
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "join never completed"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        c.heartbeat("g", &a, None, generation),
        code::UNKNOWN_MEMBER_ID
    );
    assert_eq!(
        c.state_of("g"),
        Some((GroupState::CompletingRebalance, 2, 1))
    );
}

#[test]
fn static_member_rejoining_fences_its_old_id_without_rebalance() {
    let c = Coordinator::in_memory(crate::group::no_wake());
    let static_params = |member: &str, instance: &str| JoinParams {
        group_instance_id: Some(instance.into()),
        ..params("g", member, &["range"])
    };
    // Static members get their id at once (no MEMBER_ID_REQUIRED).
    let a = taken(&c.join(static_params("", "a")));
    assert_eq!(a.error_code, code::NONE);
    taken(&c.sync(
        "g",
        sync_params(&a.member_id, a.generation_id, &[(&a.member_id, "pa")]),
    ));
    let b_slot = c.join(static_params("", "b"));
    taken(&c.join(static_params(&a.member_id, "a")));
    let b = taken(&b_slot);
    let leader_sync = c.sync(
        "g",
        sync_params(
            &a.member_id,
            b.generation_id,
            &[(&a.member_id, "pa"), (&b.member_id, "pb")],
        ),
    );
    taken(&leader_sync);
    taken(&c.sync("g", sync_params(&b.member_id, b.generation_id, &[])));

    // b restarts: new id, same instance, same generation, same assignment.
    let b2 = taken(&c.join(static_params("", "b")));
    assert_eq!(b2.error_code, code::NONE);
    assert_ne!(b2.member_id, b.member_id);
    assert_eq!(b2.generation_id, b.generation_id);
    let mut fenced = sync_params(&b.member_id, b.generation_id, &[]);
    fenced.group_instance_id = Some("b".into());
    assert_eq!(
        taken(&c.sync("g", fenced)).error_code,
        code::FENCED_INSTANCE_ID
    );
    let synced = taken(&c.sync("g", sync_params(&b2.member_id, b2.generation_id, &[])));
    assert_eq!(synced.assignment, Bytes::from("pb"));
    assert_eq!(
        c.state_of("g"),
        Some((GroupState::Stable, b.generation_id, 2))
    );
}

#[test]
fn group_size_is_bounded_including_handed_out_ids() {
    let c = Coordinator::in_memory(crate::group::no_wake());
    for _ in 0..limits::MEMBERS_PER_GROUP_MAX {
        let r = taken(&c.join(params("g", "", &["range"])));
        assert_eq!(r.error_code, code::MEMBER_ID_REQUIRED);
    }
    let r = taken(&c.join(params("g", "", &["range"])));
    assert_eq!(r.error_code, code::GROUP_MAX_SIZE_REACHED);
}

#[test]
fn delete_refuses_live_groups_and_removes_offsets() {
    let c = Coordinator::in_memory(crate::group::no_wake());
    let committed = Committed {
        offset: 5,
        leader_epoch: -1,
        metadata: String::new(),
        commit_timestamp_ms: 0,
    };
    c.commit(
        "simple",
        &CommitBy::simple(),
        vec![(("t".into(), 0), committed)],
    )
    .expect("simple commit");
    assert_eq!(c.describe("simple").state, GroupState::Empty);
    let (_, slot) = join_new(&c, "live", &["range"]);
    taken(&slot);
    assert_eq!(c.delete("live"), code::NON_EMPTY_GROUP);
    assert_eq!(c.delete("nothing"), code::GROUP_ID_NOT_FOUND);
    assert_eq!(c.delete(""), code::INVALID_GROUP_ID);
    assert_eq!(c.delete("simple"), code::NONE);
    assert_eq!(c.committed("simple", None), Ok(Vec::new()));
    assert_eq!(c.describe("simple").state, GroupState::Dead);
}

fn commit_as(c: &Coordinator, group: &str, member: &str, generation_id: i32) -> Result<(), i16> {
    let by = CommitBy {
        member_id: member,
        group_instance_id: None,
        generation_id,
        transactional: false,
        unknown_group_code: code::GROUP_ID_NOT_FOUND,
        member_epochs: true,
    };
    let committed = Committed {
        offset: 1,
        leader_epoch: -1,
        metadata: String::new(),
        commit_timestamp_ms: 0,
    };
    c.commit(group, &by, vec![(("t".into(), 0), committed)])
}

/// Kafka's ClassicGroup.validateOffsetCommit, state by state.
#[test]
fn offset_commits_are_fenced_by_member_and_generation_in_every_state() {
    let c = Coordinator::in_memory(crate::group::no_wake());
    let (a, slot) = join_new(&c, "g", &["range"]);
    let gen1 = taken(&slot).generation_id;
    // CompletingRebalance: the member waits for its assignment.
    assert_eq!(
        commit_as(&c, "g", &a, gen1),
        Err(code::REBALANCE_IN_PROGRESS)
    );
    assert_eq!(
        commit_as(&c, "g", &a, gen1 - 1),
        Err(code::ILLEGAL_GENERATION)
    );
    assert_eq!(commit_as(&c, "g", "", -1), Err(code::UNKNOWN_MEMBER_ID));
    assert_eq!(
        commit_as(&c, "g", "nobody", gen1),
        Err(code::UNKNOWN_MEMBER_ID)
    );
    taken(&c.sync("g", sync_params(&a, gen1, &[(&a, "x")])));

    // Stable.
    assert_eq!(commit_as(&c, "g", &a, gen1), Ok(()));
    assert_eq!(commit_as(&c, "g", &a, -1), Err(code::ILLEGAL_GENERATION));
    assert_eq!(commit_as(&c, "g", "", -1), Err(code::UNKNOWN_MEMBER_ID));
    let static_unknown = CommitBy {
        member_id: &a,
        group_instance_id: Some("not-registered"),
        generation_id: gen1,
        transactional: false,
        unknown_group_code: code::GROUP_ID_NOT_FOUND,
        member_epochs: true,
    };
    assert_eq!(
        c.commit("g", &static_unknown, Vec::new()),
        Err(code::UNKNOWN_MEMBER_ID)
    );

    // PreparingRebalance: a current member commits what it consumed before it rejoins
    // (its partitions are being revoked); that commit is kept.
    let (b, b_join) = join_new(&c, "g", &["range"]);
    assert_eq!(commit_as(&c, "g", &a, gen1), Ok(()));
    assert_eq!(
        commit_as(&c, "g", &b, gen1),
        Ok(()),
        "b is a member of gen1's group now"
    );
    let a_join = c.join(params("g", &a, &["range"]));
    let gen2 = taken(&a_join).generation_id;
    taken(&b_join);
    assert_eq!(gen2, gen1 + 1);
    // The next generation: the revoked generation's commit is refused.
    assert_eq!(commit_as(&c, "g", &a, gen1), Err(code::ILLEGAL_GENERATION));
    assert_eq!(
        commit_as(&c, "g", &b, gen2),
        Err(code::REBALANCE_IN_PROGRESS)
    );

    // A member that left cannot commit any more.
    assert_eq!(c.leave("g", &[(b.clone(), None)]), Ok(vec![code::NONE]));
    assert_eq!(commit_as(&c, "g", &b, gen2), Err(code::UNKNOWN_MEMBER_ID));

    // No such group: a generation names nothing (GROUP_ID_NOT_FOUND from v9, the
    // handler picks the code); generation −1 is a simple consumer, accepted, and then
    // the group exists, Empty, with offsets only.
    assert_eq!(commit_as(&c, "new", "m", 3), Err(code::GROUP_ID_NOT_FOUND));
    assert_eq!(commit_as(&c, "new", "", -1), Ok(()));
    assert_eq!(commit_as(&c, "new", "m", 3), Err(code::UNKNOWN_MEMBER_ID));
    assert_eq!(commit_as(&c, "new", "", -1), Ok(()));
}

#[test]
fn heartbeat_and_sync_answer_rebalance_in_progress_while_the_group_prepares_a_rebalance() {
    let c = Coordinator::in_memory(crate::group::no_wake());
    let (a, slot) = join_new(&c, "g", &["range"]);
    let gen1 = taken(&slot).generation_id;
    taken(&c.sync("g", sync_params(&a, gen1, &[(&a, "x")])));
    let (_b, _b_join) = join_new(&c, "g", &["range"]);
    assert_eq!(
        c.heartbeat("g", &a, None, gen1),
        code::REBALANCE_IN_PROGRESS
    );
    let synced = taken(&c.sync("g", sync_params(&a, gen1, &[(&a, "x")])));
    assert_eq!(synced.error_code, code::REBALANCE_IN_PROGRESS);
    // Identity is checked before the state: a stranger is unknown, a stale generation
    // illegal.
    assert_eq!(
        c.heartbeat("g", "nobody", None, gen1),
        code::UNKNOWN_MEMBER_ID
    );
    assert_eq!(
        c.heartbeat("g", &a, None, gen1 + 5),
        code::ILLEGAL_GENERATION
    );
}

/// Kafka's InitialDelayedJoin, on the state machine with explicit instants.
#[test]
fn initial_rebalance_delay_gathers_early_joiners_into_the_first_generation() {
    let delay = Duration::from_secs(3);
    let mut g = state::Group::new("g", delay);
    let t0 = Instant::now();
    let mut p = params("g", "", &["range"]);
    p.require_known_member_id = false;
    p.rebalance_timeout_ms = 60_000;
    let a = g.join(p.clone(), "a".into(), t0);
    assert!(a.take().is_none(), "the first join waits out the delay");
    assert_eq!(g.next_deadline(), Some(t0 + delay));
    assert!(!g.expire(t0 + Duration::from_secs(1)));
    // A second member during the delay extends it by a delay.
    let b = g.join(p.clone(), "b".into(), t0 + Duration::from_secs(2));
    assert_eq!(g.next_deadline(), Some(t0 + Duration::from_secs(5)));
    g.expire(t0 + Duration::from_secs(4));
    assert!(a.take().is_none() && b.take().is_none());
    assert!(g.expire(t0 + Duration::from_secs(5)));
    let (ra, rb) = (a.take().expect("a answered"), b.take().expect("b answered"));
    assert_eq!((ra.error_code, rb.error_code), (code::NONE, code::NONE));
    assert_eq!(
        (ra.generation_id, rb.generation_id),
        (1, 1),
        "one generation for both"
    );
    assert_eq!(
        ra.members.len() + rb.members.len(),
        2,
        "the leader sees both"
    );

    // The extension never passes the rebalance timeout.
    let mut g = state::Group::new("h", delay);
    p.rebalance_timeout_ms = 4_000;
    let _a = g.join(p.clone(), "a".into(), t0);
    let _b = g.join(p.clone(), "b".into(), t0 + Duration::from_secs(2));
    assert_eq!(g.next_deadline(), Some(t0 + Duration::from_secs(4)));

    // Without a delay the first join completes at once.
    let mut g = state::Group::new("i", Duration::ZERO);
    let a = g.join(p, "a".into(), t0);
    assert_eq!(a.take().map(|r| r.generation_id), Some(1));
}

fn committed_at(offset: i64, commit_timestamp_ms: i64) -> Committed {
    Committed {
        offset,
        leader_epoch: -1,
        metadata: String::new(),
        commit_timestamp_ms,
    }
}

/// Offsets retention (KIP-211): offsets of empty groups expire, those of groups with
/// members stay; a retention pass is called directly (no waiting on the timer).
#[test]
fn offsets_of_empty_groups_expire_and_those_of_live_groups_stay() {
    let config = GroupConfig {
        offsets_retention: Duration::ZERO,
        ..GroupConfig::immediate()
    };
    let c = Coordinator::in_memory_with(config, crate::group::no_wake());
    let now = super::now_ms();
    c.commit(
        "simple",
        &CommitBy::simple(),
        vec![(("t".into(), 0), committed_at(3, now))],
    )
    .expect("simple commit");
    let (a, slot) = join_new(&c, "live", &["range"]);
    let generation = taken(&slot).generation_id;
    taken(&c.sync("live", sync_params(&a, generation, &[(&a, "x")])));
    let by = CommitBy {
        member_id: &a,
        generation_id: generation,
        ..CommitBy::simple()
    };
    c.commit("live", &by, vec![(("t".into(), 0), committed_at(7, now))])
        .expect("member commit");

    let pass = || drop(super::expire_offsets(&c.inner, lock(&c.inner.groups)));
    pass();
    assert_eq!(c.committed("simple", None), Ok(Vec::new()), "expired");
    assert_eq!(
        c.describe("simple").state,
        GroupState::Dead,
        "and forgotten"
    );
    assert_eq!(
        c.committed("live", None).expect("live").len(),
        1,
        "a live group keeps its offsets"
    );

    assert_eq!(c.leave("live", &[(a, None)]), Ok(vec![code::NONE]));
    assert_eq!(c.describe("live").state, GroupState::Empty);
    pass();
    assert_eq!(
        c.committed("live", None),
        Ok(Vec::new()),
        "emptied: expired"
    );
    assert_eq!(c.describe("live").state, GroupState::Dead);

    // With Kafka's 7 days an old commit of a group not seen emptying is counted from
    // the coordinator's start: nothing expires earlier than Kafka would.
    let c = Coordinator::in_memory(crate::group::no_wake());
    c.commit(
        "old",
        &CommitBy::simple(),
        vec![(("t".into(), 0), committed_at(1, 0))],
    )
    .expect("commit");
    drop(super::expire_offsets(&c.inner, lock(&c.inner.groups)));
    assert_eq!(c.committed("old", None).expect("old").len(), 1);
}

#[test]
fn session_timeouts_outside_the_configured_bounds_are_refused() {
    let config = GroupConfig {
        session_timeout_ms_min: 6_000,
        session_timeout_ms_max: 30_000,
        ..GroupConfig::immediate()
    };
    let c = Coordinator::in_memory_with(config, crate::group::no_wake());
    for (ms, expected) in [
        (5_999, code::INVALID_SESSION_TIMEOUT),
        (6_000, code::MEMBER_ID_REQUIRED),
        (30_000, code::MEMBER_ID_REQUIRED),
        (30_001, code::INVALID_SESSION_TIMEOUT),
    ] {
        let mut p = params("g", "", &["range"]);
        p.session_timeout_ms = ms;
        assert_eq!(taken(&c.join(p)).error_code, expected, "{ms} ms");
    }
}
