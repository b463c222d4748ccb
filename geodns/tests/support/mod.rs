//! Shared test support: a config with three regions, a server started
//! in-process on port 0, real clients (`dig`, raw UDP/TCP packets) and a
//! health endpoint that can be stopped and started again.

#![allow(dead_code)]

pub mod mmdb;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use geodns::{Config, RunningServer, Server};
use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query};
use hickory_proto::rr::rdata::opt::EdnsOption;
use hickory_proto::rr::{DNSClass, Name, RecordType};
use tempfile::TempDir;
use tokio::net::UdpSocket;
use tokio::task::JoinHandle;

/// The geo test database: London, Milton (WA) and Tokyo.
pub fn test_database() -> Vec<u8> {
    mmdb::write(&[
        mmdb::Entry {
            network: "81.2.69.0/24".parse().unwrap(),
            latitude: 51.5,
            longitude: -0.1,
            country: "GB",
            continent: "EU",
        },
        mmdb::Entry {
            network: "216.160.83.0/24".parse().unwrap(),
            latitude: 47.2,
            longitude: -122.3,
            country: "US",
            continent: "NA",
        },
        mmdb::Entry {
            network: "2001:db8::/32".parse().unwrap(),
            latitude: 35.7,
            longitude: 139.7,
            country: "JP",
            continent: "AS",
        },
    ])
}

/// Regions eu (Frankfurt), us (New York) and ap (Singapore); overrides
/// put 127.0.0.2 in eu and 127.0.0.3 in us. `{health}` is the eu
/// endpoint's health line (empty for none).
pub fn config_text(health: &str) -> String {
    format!(
        r#"
query_log = true
[listen]
dns = ["127.0.0.1:0"]
metrics = "127.0.0.1:0"
# The tests query in bursts from loopback; tests/abuse.rs limits itself.
[rate_limit]
exempt = ["127.0.0.0/8"]
[geoip]
database = "test.mmdb"
overrides = [
  {{ cidr = "127.0.0.2/32", region = "eu" }},
  {{ cidr = "127.0.0.3/32", region = "us" }},
  {{ cidr = "10.1.0.0/16", region = "ap" }},
]
[health]
interval = "100ms"
timeout = "200ms"
rise = 2
fall = 2
[regions.eu]
latitude = 50.1
longitude = 8.7
endpoints = [{{ address = "127.0.1.1" {health} }}, {{ address = "fd00::1" }}]
[regions.us]
latitude = 40.7
longitude = -74.0
endpoints = [{{ address = "127.0.2.1" }}]
[regions.ap]
latitude = 1.35
longitude = 103.8
endpoints = [{{ address = "127.0.3.1" }}]
[regions.w]
latitude = 0.0
longitude = 0.0
endpoints = [{{ address = "127.0.4.1", weight = 3 }}, {{ address = "127.0.4.2", weight = 1 }}]

[[zones]]
origin = "waypost.test"
nameservers = ["ns1.waypost.test."]
max_answers = 1
records = [
  {{ name = "@", type = "TXT", value = "\"v=spf1 -all\"" }},
  {{ name = "@", type = "MX", value = "10 mail.waypost.test." }},
  {{ name = "@", type = "CAA", value = "0 issue \"letsencrypt.org\"" }},
  {{ name = "ns1", type = "A", value = "127.0.0.1" }},
  {{ name = "www", type = "CNAME", value = "cdn.waypost.test." }},
  {{ name = "static", type = "A", value = "192.0.2.10" }},
  {{ name = "static", type = "AAAA", value = "2001:db8::10" }},
  {{ name = "x.deep", type = "A", value = "192.0.2.11" }},
  {{ name = "outside", type = "CNAME", value = "example.com." }},
{big}
]
geo = [
  {{ name = "cdn", regions = ["eu", "us", "ap"] }},
  {{ name = "weighted", regions = ["w"] }},
]
"#,
        big = (0..12)
            .map(|i| format!(
                "  {{ name = \"big\", type = \"TXT\", value = \"\\\"{}{i}\\\"\" }},\n",
                "x".repeat(200)
            ))
            .collect::<String>()
    )
}

pub struct TestServer {
    pub server: RunningServer,
    pub addr: SocketAddr,
    pub config_path: PathBuf,
    pub dir: TempDir,
}

impl TestServer {
    /// Writes the database and `config` into a fresh directory and starts
    /// the server from that file, returning once it answers.
    pub async fn start(config: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("test.mmdb"), test_database()).unwrap();
        let config_path = dir.path().join("geo.toml");
        std::fs::write(&config_path, config).unwrap();
        let server = Server::start(Config::load(&config_path).unwrap())
            .await
            .unwrap();
        let addr = server.udp_addrs()[0];
        let me = Self {
            server,
            addr,
            config_path,
            dir,
        };
        me.wait_ready().await;
        me
    }

    /// Probes with a real query until one is answered.
    pub async fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            let q = query("waypost.test.", RecordType::SOA);
            if udp_exchange(self.addr, "127.0.0.1", &q, Duration::from_millis(200))
                .await
                .is_some()
            {
                return;
            }
        }
        panic!("server at {} never answered", self.addr);
    }

    pub fn dig(&self, args: &[&str]) -> Dig {
        dig(self.addr, args)
    }

    /// Waits until every health-checked endpoint of the config has had its
    /// first check (they start unknown, and are not answered until then).
    pub async fn wait_checked(&self) {
        let config = std::fs::read_to_string(&self.config_path).unwrap();
        let checked = config.matches("health = \"").count();
        let known = || {
            self.server
                .metrics_text()
                .lines()
                .filter(|l| l.starts_with("geodns_endpoint_up{"))
                .count()
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while known() < checked {
            assert!(
                Instant::now() < deadline,
                "{} of {checked} health-checked endpoints checked",
                known()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// A query message for `name`/`qtype` with EDNS (1232-byte payload).
pub fn query(name: &str, qtype: RecordType) -> Message {
    let mut message = Message::new(rand::random(), MessageType::Query, OpCode::Query);
    message.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
    let mut edns = Edns::new();
    edns.set_max_payload(1232);
    message.set_edns(edns);
    message
}

/// `message` with a raw EDNS Client Subnet option (code 8) of `payload`.
pub fn with_raw_ecs(mut message: Message, payload: Vec<u8>) -> Message {
    let mut edns = Edns::new();
    edns.set_max_payload(1232);
    edns.options_mut().insert(EdnsOption::Unknown(8, payload));
    message.set_edns(edns);
    message
}

pub fn class(mut message: Message, class: DNSClass) -> Message {
    let name = message.queries[0].name().clone();
    let qtype = message.queries[0].query_type();
    let mut q = Query::query(name, qtype);
    q.set_query_class(class);
    message.queries = vec![q];
    message
}

/// Sends `message` over UDP from `source_ip` and returns the reply.
pub async fn udp_exchange(
    server: SocketAddr,
    source_ip: &str,
    message: &Message,
    wait: Duration,
) -> Option<Message> {
    let bytes = message.to_vec().unwrap();
    udp_raw(server, source_ip, &bytes, wait)
        .await
        .map(|reply| Message::from_vec(&reply).unwrap())
}

pub async fn udp_raw(
    server: SocketAddr,
    source_ip: &str,
    bytes: &[u8],
    wait: Duration,
) -> Option<Vec<u8>> {
    let socket = UdpSocket::bind((source_ip.parse::<IpAddr>().unwrap(), 0))
        .await
        .unwrap();
    socket.send_to(bytes, server).await.unwrap();
    let mut buf = vec![0u8; 65535];
    let (n, _) = tokio::time::timeout(wait, socket.recv_from(&mut buf))
        .await
        .ok()?
        .ok()?;
    buf.truncate(n);
    Some(buf)
}

/// What `dig` printed, parsed.
#[derive(Debug)]
pub struct Dig {
    pub status: String,
    pub flags: Vec<String>,
    /// (name, type, data) of the answer section.
    pub answers: Vec<(String, String, String)>,
    pub authority: Vec<(String, String, String)>,
    /// `address/source/scope` from `; CLIENT-SUBNET:`.
    pub ecs: Option<String>,
    pub ttls: Vec<u32>,
    pub raw: String,
}

impl Dig {
    pub fn answer_data(&self) -> Vec<String> {
        self.answers.iter().map(|a| a.2.clone()).collect()
    }
}

/// Runs the real `dig` against `server` and parses its output.
pub fn dig(server: SocketAddr, args: &[&str]) -> Dig {
    let output = std::process::Command::new("dig")
        .arg(format!("@{}", server.ip()))
        .args(["-p", &server.port().to_string(), "+tries=1", "+time=2"])
        .args(args)
        .output()
        .expect("dig is installed (Debian package dnsutils; .ci/run installs it)");
    let raw = String::from_utf8_lossy(&output.stdout).into_owned();
    let mut dig = Dig {
        status: String::new(),
        flags: Vec::new(),
        answers: Vec::new(),
        authority: Vec::new(),
        ecs: None,
        ttls: Vec::new(),
        raw: raw.clone(),
    };
    let mut section = "";
    for line in raw.lines() {
        if let Some(rest) = line.split("status: ").nth(1) {
            dig.status = rest.split(',').next().unwrap().to_owned();
        } else if let Some(rest) = line.strip_prefix(";; flags: ") {
            dig.flags = rest
                .split(';')
                .next()
                .unwrap()
                .split_whitespace()
                .map(str::to_owned)
                .collect();
        } else if let Some(rest) = line.strip_prefix("; CLIENT-SUBNET: ") {
            dig.ecs = Some(rest.trim().to_owned());
        } else if line.starts_with(";; ANSWER SECTION") {
            section = "answer";
        } else if line.starts_with(";; AUTHORITY SECTION") {
            section = "authority";
        } else if line.starts_with(";;") || line.trim().is_empty() {
            section = "";
        } else if !line.starts_with(';') && !section.is_empty() {
            let parts: Vec<&str> = line.split_whitespace().collect();
            let record = (
                parts[0].to_owned(),
                parts[3].to_owned(),
                parts[4..].join(" "),
            );
            if section == "answer" {
                dig.ttls.push(parts[1].parse().unwrap());
                dig.answers.push(record);
            } else {
                dig.authority.push(record);
            }
        }
    }
    dig
}

/// An HTTP `/healthz` endpoint answering 200 (or a 302 to `redirect`)
/// that can be stopped (every connection closes) and started again on the
/// same address.
pub struct HealthServer {
    pub addr: SocketAddr,
    redirect: Option<String>,
    task: Option<JoinHandle<()>>,
}

impl HealthServer {
    pub async fn start() -> Self {
        Self::serving(None).await
    }

    /// Answers every request with `302 Found` to `location`.
    pub async fn redirecting(location: String) -> Self {
        Self::serving(Some(location)).await
    }

    async fn serving(redirect: Option<String>) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        Self {
            addr,
            task: Some(tokio::spawn(serve_health(listener, redirect.clone()))),
            redirect,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}/healthz", self.addr)
    }

    pub fn stop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }

    pub async fn restart(&mut self) {
        let listener = tokio::net::TcpListener::bind(self.addr).await.unwrap();
        self.task = Some(tokio::spawn(serve_health(listener, self.redirect.clone())));
    }
}

impl Drop for HealthServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Connections live in this task's JoinSet, so aborting the task closes
/// them too (a pooled keep-alive connection must not outlive a "stop").
async fn serve_health(listener: tokio::net::TcpListener, redirect: Option<String>) {
    use hyper::service::service_fn;
    use hyper_util::rt::{TokioExecutor, TokioIo};
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let (stream, _) = listener.accept().await.unwrap();
        let redirect = redirect.clone();
        connections.spawn(async move {
            let service = service_fn(move |_req: http::Request<hyper::body::Incoming>| {
                let mut response = http::Response::new(http_body_util::Full::new(
                    bytes::Bytes::from_static(b"ok"),
                ));
                if let Some(location) = &redirect {
                    *response.status_mut() = http::StatusCode::FOUND;
                    response
                        .headers_mut()
                        .insert(http::header::LOCATION, location.parse().unwrap());
                }
                async move { Ok::<_, std::convert::Infallible>(response) }
            });
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// Polls `check` every 20 ms until it holds or `within` passes; returns
/// how long it took.
pub async fn eventually(
    within: Duration,
    mut check: impl AsyncFnMut() -> bool,
) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < within {
        if check().await {
            return Some(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}
