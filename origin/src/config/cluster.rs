//! The `[cluster]` section: which regions form the Raft group and which one
//! this origin is.
//!
//! ```toml
//! [cluster]
//! node_id = 2
//! members = [
//!   { id = 1, addr = "10.0.1.10:7070" },
//!   { id = 2, addr = "10.0.2.10:7070" },
//!   { id = 3, addr = "10.0.3.10:7070" },
//! ]
//! ```
//!
//! Every region lists the same members; `addr` is where the other regions
//! reach this origin's HTTP API. Without the section the origin is a
//! single-region group of one.
//!
//! The list only matters for a node whose Raft log is empty: it is the
//! membership a new deployment is founded with. After that, membership
//! lives in the Raft log and changes at runtime. To add region 4, start it
//! with the current members plus itself,
//!
//! ```toml
//! [cluster]
//! node_id = 4
//! members = [
//!   { id = 1, addr = "10.0.1.10:7070" },
//!   { id = 2, addr = "10.0.2.10:7070" },
//!   { id = 3, addr = "10.0.3.10:7070" },
//!   { id = 4, addr = "10.0.4.10:7070" },
//! ]
//! ```
//!
//! then `POST /cluster/members {"id": 4, "addr": "10.0.4.10:7070"}` on any
//! member. Seeing that the others already form a cluster, it waits to be
//! added instead of founding its own ([`crate::raft::bootstrap`]). Update
//! the other regions' lists when convenient; they are not read again.

use std::collections::BTreeMap;

use serde::Deserialize;
use service_base::config_file::FieldError;

/// A validated cluster membership.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterConfig {
    /// This origin's member id.
    pub node_id: u64,
    /// Every member's id and advertised `host:port`.
    pub members: BTreeMap<u64, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCluster {
    node_id: Option<u64>,
    #[serde(default)]
    members: Vec<RawMember>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMember {
    id: u64,
    addr: String,
}

impl RawCluster {
    pub(super) fn validate(self) -> Result<ClusterConfig, FieldError> {
        let node_id = self.node_id.ok_or_else(|| {
            FieldError::new(
                "cluster.node_id",
                "is required: this origin's id among cluster.members",
            )
        })?;
        let config = ClusterConfig {
            node_id,
            members: BTreeMap::new(),
        };
        let mut config = config;
        for (i, m) in self.members.into_iter().enumerate() {
            if config.members.insert(m.id, m.addr).is_some() {
                return Err(FieldError::new(
                    format!("cluster.members[{i}].id"),
                    format!("id {} appears twice; every region needs its own id", m.id),
                ));
            }
        }
        config.validate()?;
        Ok(config)
    }
}

impl ClusterConfig {
    /// Checks the membership: ids non-zero, addresses `host:port` and
    /// distinct, and this origin among the members.
    pub fn validate(&self) -> Result<(), FieldError> {
        if self.members.is_empty() {
            return Err(FieldError::new(
                "cluster.members",
                "must list every region's origin (including this one) as { id, addr }",
            ));
        }
        let mut seen = BTreeMap::new();
        for (i, (id, addr)) in self.members.iter().enumerate() {
            if *id == 0 {
                return Err(FieldError::new(
                    format!("cluster.members[{i}].id"),
                    "must be 1 or more",
                ));
            }
            let port_ok = addr.rsplit_once(':').is_some_and(|(host, port)| {
                !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p != 0)
            });
            if !port_ok {
                return Err(FieldError::new(
                    format!("cluster.members[{i}].addr"),
                    format!(
                        "`{addr}` is not a host:port other regions can reach, like 10.0.1.10:7070"
                    ),
                ));
            }
            if let Some(other) = seen.insert(addr.clone(), *id) {
                return Err(FieldError::new(
                    format!("cluster.members[{i}].addr"),
                    format!("`{addr}` is also the address of member {other}"),
                ));
            }
        }
        if !self.members.contains_key(&self.node_id) {
            return Err(FieldError::new(
                "cluster.node_id",
                format!(
                    "{} is not the id of any entry in cluster.members",
                    self.node_id
                ),
            ));
        }
        Ok(())
    }
}
