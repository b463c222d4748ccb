//! The `[raft]` section: how quickly the regions notice a dead leader,
//! traded against how slow a link between regions they tolerate.
//!
//! ```toml
//! [raft]
//! heartbeat_interval = "150ms"
//! election_timeout_min = "300ms"
//! election_timeout_max = "500ms"
//! ```
//!
//! openraft 0.9 uses the heartbeat interval as the timeout of every
//! AppendEntries RPC, and resends a timed-out batch unchanged, so the
//! interval must exceed the round trip between the farthest regions plus
//! sending and fsyncing one batch (at most 1 MiB), or replication to that
//! region never progresses. A leader's death costs the leader lease plus
//! one election timeout, and a survivor whose vote request was refused for
//! a shorter log waits twice more; openraft derives both from
//! `election_timeout_max`, so the worst single round is about
//! 4 × `election_timeout_max`. The defaults fail over in about 1 s (2 s in
//! that worst round) and tolerate round trips up to ~100 ms (regions on one
//! continent); for intercontinental regions use `250ms` / `700ms` /
//! `1000ms` (about 2 s to fail over, up to ~4–5 s).

use std::time::Duration;

use serde::Deserialize;
use service_base::config_file::FieldError;

/// Validated Raft timing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RaftTiming {
    pub heartbeat_interval: Duration,
    pub election_timeout_min: Duration,
    pub election_timeout_max: Duration,
}

impl Default for RaftTiming {
    fn default() -> Self {
        Self {
            heartbeat_interval: Duration::from_millis(150),
            election_timeout_min: Duration::from_millis(300),
            election_timeout_max: Duration::from_millis(500),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRaftTiming {
    #[serde(default, with = "humantime_serde")]
    heartbeat_interval: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    election_timeout_min: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    election_timeout_max: Option<Duration>,
}

impl RawRaftTiming {
    pub(super) fn validate(self) -> Result<RaftTiming, FieldError> {
        let d = RaftTiming::default();
        let timing = RaftTiming {
            heartbeat_interval: self.heartbeat_interval.unwrap_or(d.heartbeat_interval),
            election_timeout_min: self.election_timeout_min.unwrap_or(d.election_timeout_min),
            election_timeout_max: self.election_timeout_max.unwrap_or(d.election_timeout_max),
        };
        timing.validate()?;
        Ok(timing)
    }
}

impl RaftTiming {
    /// Leaders send heartbeats on a tick of 1.5 × the interval; a follower
    /// that stood for election after less than a tick and some slack would
    /// depose a healthy leader over one late heartbeat.
    pub fn validate(&self) -> Result<(), FieldError> {
        if self.heartbeat_interval < Duration::from_millis(10) {
            return Err(FieldError::new(
                "raft.heartbeat_interval",
                "must be at least 10ms",
            ));
        }
        if self.election_timeout_min < self.heartbeat_interval * 2 {
            return Err(FieldError::new(
                "raft.election_timeout_min",
                format!(
                    "must be at least 2 × heartbeat_interval ({:?}), more than one heartbeat tick",
                    self.heartbeat_interval * 2
                ),
            ));
        }
        if self.election_timeout_max <= self.election_timeout_min {
            return Err(FieldError::new(
                "raft.election_timeout_max",
                "must be above election_timeout_min (the spread keeps elections from colliding)",
            ));
        }
        Ok(())
    }

    pub(crate) fn millis(d: Duration) -> u64 {
        d.as_millis().try_into().unwrap_or(u64::MAX)
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use super::RaftTiming;
    use crate::Config;

    fn parse(raft: &str) -> Result<Config, String> {
        let text = format!("data_dir = \"/x\"\ntoken = \"t\"\n[raft]\n{raft}\n");
        Config::parse(Path::new("origin.toml"), &text).map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_and_wan_settings_parse() {
        assert_eq!(parse("").unwrap().raft, RaftTiming::default());
        let wan = parse(
            "heartbeat_interval = \"250ms\"\nelection_timeout_min = \"700ms\"\nelection_timeout_max = \"1s\"",
        )
        .unwrap()
        .raft;
        assert_eq!(wan.heartbeat_interval, Duration::from_millis(250));
        assert_eq!(wan.election_timeout_max, Duration::from_secs(1));
    }

    #[test]
    fn timings_that_would_depose_healthy_leaders_name_the_field() {
        for (raft, field) in [
            (
                "election_timeout_min = \"250ms\"",
                "raft.election_timeout_min",
            ),
            (
                "election_timeout_max = \"300ms\"",
                "raft.election_timeout_max",
            ),
            ("heartbeat_interval = \"1ms\"", "raft.heartbeat_interval"),
        ] {
            let err = parse(raft).unwrap_err();
            assert!(
                err.contains("origin.toml") && err.contains(field),
                "{raft}: {err}"
            );
        }
    }
}
