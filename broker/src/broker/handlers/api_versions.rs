//! ApiVersions: the versions of every api in the one table (`protocol::request::APIS`).

use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::ApiVersionsResponse;

use crate::broker::Broker;
use crate::protocol::request;

impl Broker {
    pub(in crate::broker) fn api_versions(&self) -> ApiVersionsResponse {
        let keys = request::supported_api_keys()
            .filter_map(|k| request::supported_versions(k).map(|range| (k, range)))
            .map(|(k, (min, max))| {
                ApiVersion::default()
                    .with_api_key(k)
                    .with_min_version(min)
                    .with_max_version(max)
            })
            .collect();
        ApiVersionsResponse::default()
            .with_api_keys(keys)
            .with_finalized_features_epoch(-1)
    }
}
