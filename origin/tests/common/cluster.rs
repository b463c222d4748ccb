//! A Raft group of in-process origins, one per "region", each on its own
//! loopback address (127.0.0.11, .12, ...) and a port picked by the OS.
//! Listeners are bound before any region starts so every config can list
//! every member; readiness is Raft's own leader metric, never a sleep.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use origin::config::{ClusterConfig, PeerListener};
use origin::{Config, RunningServer, Server};
use reqwest::Client;
use tokio::net::TcpListener;

use super::TOKEN;

/// Changes every region's config before it starts.
pub type Adjust = Arc<dyn Fn(&mut Config) + Send + Sync>;

pub struct Cluster {
    nodes: Vec<Option<RunningServer>>,
    addrs: Vec<SocketAddr>,
    /// Each region's peer listener, when the regions have one.
    peer_addrs: Vec<Option<SocketAddr>>,
    dirs: Vec<tempfile::TempDir>,
    adjust: Option<Adjust>,
    pub client: Client,
}

impl Cluster {
    /// Starts `n` regions and waits until they agree on a leader.
    pub async fn start(n: usize) -> Self {
        Self::start_with(n, false, None).await
    }

    /// Starts `n` regions, with a peer listener each if `peer` (the
    /// members' addresses are then the peer listeners'), every config
    /// changed by `adjust`.
    pub async fn start_with(n: usize, peer: bool, adjust: Option<Adjust>) -> Self {
        let mut listeners = Vec::new();
        for i in 0..n {
            let ip = format!("127.0.0.{}:0", 11 + i);
            let public = TcpListener::bind(&ip).await.unwrap();
            let peer = match peer {
                true => Some(TcpListener::bind(&ip).await.unwrap()),
                false => None,
            };
            listeners.push((public, peer));
        }
        let addrs = listeners
            .iter()
            .map(|l| l.0.local_addr().unwrap())
            .collect();
        let peer_addrs = listeners
            .iter()
            .map(|l| l.1.as_ref().map(|p| p.local_addr().unwrap()))
            .collect();
        let dirs = (0..n).map(|_| tempfile::tempdir().unwrap()).collect();
        let mut cluster = Self {
            nodes: Vec::new(),
            addrs,
            peer_addrs,
            dirs,
            adjust,
            client: super::reading_client(Client::builder().timeout(Duration::from_secs(10))),
        };
        for (i, (public, peer)) in listeners.into_iter().enumerate() {
            let server = Server::start_on_listeners(cluster.config(i), public, peer)
                .await
                .unwrap();
            cluster.nodes.push(Some(server));
        }
        cluster.wait_for_leader(None, Duration::from_secs(10)).await;
        cluster
    }

    /// The address other regions reach region `j` at.
    fn member_addr(&self, j: usize) -> SocketAddr {
        self.peer_addrs[j].unwrap_or(self.addrs[j])
    }

    fn config(&self, i: usize) -> Config {
        let mut config = Config::for_data_dir(self.dirs[i].path(), TOKEN);
        config.listen = self.addrs[i];
        config.read_token = Some(super::READ_TOKEN.into());
        config.peer = self.peer_addrs[i].map(|listen| PeerListener {
            listen,
            limits: origin::listen::Limits::PEER,
            tls: None,
        });
        config.cluster = Some(ClusterConfig {
            node_id: i as u64 + 1,
            members: (0..self.addrs.len())
                .map(|j| (j as u64 + 1, self.member_addr(j).to_string()))
                .collect(),
        });
        if let Some(adjust) = &self.adjust {
            adjust(&mut config);
        }
        config
    }

    pub fn url(&self, i: usize, path: &str) -> String {
        format!("http://{}{}", self.addrs[i], path)
    }

    /// Region `i`'s data directory (blobs live under `blobs/sha256/`).
    pub fn data_dir(&self, i: usize) -> &std::path::Path {
        self.dirs[i].path()
    }

    /// Prometheus text of region `i`.
    pub async fn metrics(&self, i: usize) -> String {
        let resp = self
            .client
            .get(self.url(i, "/metrics"))
            .send()
            .await
            .unwrap();
        resp.text().await.unwrap()
    }

    pub fn len(&self) -> usize {
        self.addrs.len()
    }

    pub fn is_up(&self, i: usize) -> bool {
        self.nodes[i].is_some()
    }

    pub fn server(&self, i: usize) -> &RunningServer {
        self.nodes[i].as_ref().expect("region is running")
    }

    /// The index of the region every running region agrees is the leader.
    pub fn leader(&self) -> Option<usize> {
        let mut seen = None;
        for node in self.nodes.iter().flatten() {
            let leader = node.replica().raft.metrics().borrow().current_leader?;
            if seen.is_some_and(|s| s != leader) {
                return None;
            }
            seen = Some(leader);
        }
        seen.map(|id| id as usize - 1)
    }

    /// Waits until the running regions agree on a leader other than `not`;
    /// returns its index.
    pub async fn wait_for_leader(&self, not: Option<usize>, limit: Duration) -> usize {
        let mut watches: Vec<_> = self
            .nodes
            .iter()
            .flatten()
            .map(|n| n.replica().raft.metrics())
            .collect();
        tokio::time::timeout(limit, async {
            loop {
                if let Some(l) = self.leader().filter(|l| Some(*l) != not && self.is_up(*l)) {
                    return l;
                }
                let changes = watches.iter_mut().map(|w| Box::pin(w.changed()));
                let _ = futures::future::select_all(changes).await;
            }
        })
        .await
        .expect("no leader elected in time")
    }

    /// Starts one more region (id `len() + 1`) whose config lists every
    /// region and itself, as an operator would write it; it finds the
    /// running cluster and waits to be added. Returns its index.
    pub async fn add_region(&mut self) -> usize {
        let i = self.addrs.len();
        let listener = TcpListener::bind(format!("127.0.0.{}:0", 11 + i))
            .await
            .unwrap();
        self.addrs.push(listener.local_addr().unwrap());
        self.peer_addrs.push(None);
        self.dirs.push(tempfile::tempdir().unwrap());
        let server = Server::start_on(self.config(i), listener).await.unwrap();
        self.nodes.push(Some(server));
        i
    }

    /// Region `i`'s advertised address.
    pub fn addr(&self, i: usize) -> SocketAddr {
        self.addrs[i]
    }

    /// Crashes region `i`: connections cut, Raft stopped, disk kept.
    pub async fn kill(&mut self, i: usize) {
        self.nodes[i]
            .take()
            .expect("region is running")
            .kill()
            .await;
    }

    /// Restarts region `i` like [`Cluster::restart`], returning why it
    /// refused to start instead of panicking.
    pub async fn try_restart(&mut self, i: usize) -> Result<(), origin::StartError> {
        let listener = TcpListener::bind(self.addrs[i]).await.unwrap();
        let peer = match self.peer_addrs[i] {
            Some(addr) => Some(TcpListener::bind(addr).await.unwrap()),
            None => None,
        };
        let server = Server::start_on_listeners(self.config(i), listener, peer).await?;
        self.nodes[i] = Some(server);
        Ok(())
    }

    /// Deletes everything in region `i`'s data directory (it must be down),
    /// like a lost disk.
    pub fn wipe(&self, i: usize) {
        assert!(!self.is_up(i), "wipe a region only while it is down");
        for entry in std::fs::read_dir(self.data_dir(i)).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                std::fs::remove_dir_all(path).unwrap();
            } else {
                std::fs::remove_file(path).unwrap();
            }
        }
    }

    /// Restarts region `i` on its old addresses and data directory.
    pub async fn restart(&mut self, i: usize) {
        let listener = TcpListener::bind(self.addrs[i]).await.unwrap();
        let peer = match self.peer_addrs[i] {
            Some(addr) => Some(TcpListener::bind(addr).await.unwrap()),
            None => None,
        };
        let server = Server::start_on_listeners(self.config(i), listener, peer)
            .await
            .unwrap();
        self.nodes[i] = Some(server);
    }

    /// Waits until region `i` has applied at least `index`.
    pub async fn wait_applied(&self, i: usize, index: u64, limit: Duration) {
        self.server(i)
            .replica()
            .raft
            .wait(Some(limit))
            .applied_index_at_least(Some(index), "catch up")
            .await
            .expect("region did not catch up in time");
    }

    pub async fn put_kv(
        &self,
        i: usize,
        ns: &str,
        key: &str,
        value: &str,
    ) -> reqwest::Result<reqwest::Response> {
        self.client
            .put(self.url(i, &format!("/kv/{ns}/{key}")))
            .bearer_auth(TOKEN)
            .body(value.to_string())
            .send()
            .await
    }

    /// Every key in `ns` as region `i` sees it (strongly consistent if
    /// asked), following `truncated` pages.
    pub async fn kv_keys(&self, i: usize, ns: &str, strong: bool) -> Vec<String> {
        let mut keys = Vec::new();
        let mut after = String::new();
        loop {
            let mut url = format!(
                "{}?prefix=&after={after}",
                self.url(i, &format!("/kv/{ns}"))
            );
            if strong {
                url.push_str("&consistency=strong");
            }
            let page: serde_json::Value = self
                .client
                .get(url)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            for e in page["entries"].as_array().unwrap() {
                keys.push(e["key"].as_str().unwrap().to_string());
            }
            if !page["truncated"].as_bool().unwrap() {
                return keys;
            }
            after = keys.last().unwrap().clone();
        }
    }

    pub async fn shutdown(mut self) {
        for node in self.nodes.iter_mut() {
            if let Some(n) = node.take() {
                n.shutdown().await;
            }
        }
    }
}
