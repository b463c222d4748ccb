//! Shared test harness: an origin started in-process on port 0 with a fresh
//! temporary data directory, and a reqwest client pointed at it.

#![allow(dead_code)]

pub mod cluster;
pub mod pki;

use origin::{CacheRule, Config, RunningServer, Server};
use reqwest::{Client, RequestBuilder};

pub const TOKEN: &str = "test-token";
/// The read token every test origin accepts; the harness clients send it
/// on every request, as edges and monitoring do.
pub const READ_TOKEN: &str = "test-read-token";

/// A client that presents [`READ_TOKEN`] unless a request sets its own
/// `Authorization`.
pub fn reading_client(builder: reqwest::ClientBuilder) -> Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {READ_TOKEN}").parse().unwrap(),
    );
    builder.default_headers(headers).build().unwrap()
}

pub struct Origin {
    pub server: RunningServer,
    pub client: Client,
    pub base: String,
    _data: tempfile::TempDir,
}

impl Origin {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(adjust: impl FnOnce(&mut Config)) -> Self {
        let data = tempfile::tempdir().unwrap();
        let mut config = Config::for_data_dir(data.path(), TOKEN);
        config.listen = "127.0.0.1:0".parse().unwrap();
        config.read_token = Some(READ_TOKEN.into());
        adjust(&mut config);
        let server = Server::start(config).await.unwrap();
        let base = format!("http://{}", server.local_addr());
        Self {
            server,
            client: reading_client(Client::builder()),
            base,
            _data: data,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub fn data_dir(&self) -> &std::path::Path {
        self._data.path()
    }

    pub fn put(&self, path: &str, body: impl Into<reqwest::Body>) -> RequestBuilder {
        self.client
            .put(self.url(path))
            .bearer_auth(TOKEN)
            .body(body)
    }

    pub fn get(&self, path: &str) -> RequestBuilder {
        self.client.get(self.url(path))
    }
}

pub fn rule(prefix: &str, cache_control: &str) -> CacheRule {
    CacheRule {
        prefix: prefix.into(),
        cache_control: cache_control.into(),
    }
}

pub fn header<'a>(resp: &'a reqwest::Response, name: &str) -> &'a str {
    resp.headers()
        .get(name)
        .unwrap_or_else(|| panic!("missing header {name}"))
        .to_str()
        .unwrap()
}

/// Sends a request with `path` exactly as given (no URL normalisation) and
/// returns the status line.
pub async fn raw_status(addr: std::net::SocketAddr, method: &str, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: origin\r\nAuthorization: Bearer {TOKEN}\r\n\
         Content-Length: 1\r\nConnection: close\r\n\r\nx"
    );
    conn.write_all(request.as_bytes()).await.unwrap();
    let mut reply = Vec::new();
    conn.read_to_end(&mut reply).await.unwrap();
    let reply = String::from_utf8_lossy(&reply);
    reply.lines().next().unwrap_or_default().to_string()
}
