//! The Kafka request handlers, one file per api (or per family of small admin and
//! group apis), apart from the REST admin API (`crate::admin`). `Broker::handle`
//! dispatches here by the one api table (`protocol::request::APIS`).
//!
//! - [`produce`], [`fetch`]: the hot path, views in, responses encoded straight into
//!   the output buffer (no allocation).
//! - [`list_offsets`], [`metadata`], [`api_versions`], [`init_producer_id`].
//! - [`admin`]: CreateTopics, DeleteTopics, CreatePartitions,
//!   DescribeConfigs, AlterConfigs, IncrementalAlterConfigs, DescribeCluster.
//! - [`groups`]: the group apis, translating to the coordinator (`crate::group`).
//! - [`acls`]: the ACL apis, answered SECURITY_DISABLED (no authorizer).
//! - [`delete_records`]: DeleteRecords, moving a partition's log start offset.

pub(super) mod acls;
pub(super) mod admin;
pub(super) mod api_versions;
pub(super) mod delete_records;
pub(super) mod fetch;
pub(super) mod groups;
pub(super) mod init_producer_id;
pub(super) mod list_offsets;
pub(super) mod metadata;
pub(super) mod produce;
pub(crate) mod txn;
