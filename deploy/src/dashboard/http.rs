//! The dashboard's HTTP side: the page and its script (embedded in the
//! binary, nothing fetched from elsewhere), `/api/state`, and a login that
//! trades the operator's token for a session cookie (HttpOnly,
//! SameSite=Strict; the token itself never sits in the browser). `/api/state`
//! also takes `Authorization: Bearer <token>` for scripts.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use service_base::secrets::constant_time_eq;

use super::history::History;

const PAGE: &str = include_str!("page.html");
const SCRIPT: &str = include_str!("app.js");
const LOGIN: &str = include_str!("login.html");
const COOKIE: &str = "waypost_dashboard";
/// Sessions kept at once; the oldest goes first.
const MAX_SESSIONS: usize = 64;
const SESSION_LIFETIME: Duration = Duration::from_secs(12 * 3600);
/// A login form is a token and little else.
const MAX_FORM_BYTES: usize = 4096;

pub struct App {
    pub token: String,
    pub history: Arc<Mutex<History>>,
    sessions: Mutex<HashMap<String, Instant>>,
}

impl App {
    pub fn new(token: String, history: Arc<Mutex<History>>) -> Self {
        Self {
            token,
            history,
            sessions: Mutex::new(HashMap::new()),
        }
    }

    pub async fn handle(
        &self,
        req: Request<Incoming>,
    ) -> Result<Response<Full<Bytes>>, Infallible> {
        let path = req.uri().path().to_string();
        let resp = match (req.method(), path.as_str()) {
            (&Method::GET, "/healthz") => text(StatusCode::OK, "text/plain", "ok\n".into()),
            (&Method::GET, "/login") => login_page(StatusCode::OK, ""),
            (&Method::POST, "/login") => self.login(req).await,
            (&Method::GET, "/app.js") => text(
                StatusCode::OK,
                "text/javascript; charset=utf-8",
                SCRIPT.into(),
            ),
            (&Method::GET, "/" | "/api/state") if !self.authorized(&req) => {
                if path == "/" {
                    redirect("/login")
                } else {
                    text(
                        StatusCode::UNAUTHORIZED,
                        "text/plain",
                        "log in at /login or send Authorization: Bearer <token>\n".into(),
                    )
                }
            }
            (&Method::GET, "/") => text(StatusCode::OK, "text/html; charset=utf-8", PAGE.into()),
            (&Method::GET, "/api/state") => {
                let since = req
                    .uri()
                    .query()
                    .and_then(|q| q.strip_prefix("since="))
                    .and_then(|v| v.parse::<f64>().ok())
                    .unwrap_or(0.0);
                let history = self.history.lock().unwrap_or_else(|e| e.into_inner());
                let json = serde_json::to_string(&history.state(since)).unwrap_or_default();
                text(StatusCode::OK, "application/json", json)
            }
            _ => text(
                StatusCode::NOT_FOUND,
                "text/plain",
                "no such page; the dashboard is at /\n".into(),
            ),
        };
        Ok(secure(resp))
    }

    fn authorized<B>(&self, req: &Request<B>) -> bool {
        let bearer = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if bearer.is_some_and(|t| constant_time_eq(t.as_bytes(), self.token.as_bytes())) {
            return true;
        }
        let Some(session) = session_cookie(req) else {
            return false;
        };
        let sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        sessions.iter().any(|(id, at)| {
            constant_time_eq(id.as_bytes(), session.as_bytes()) && at.elapsed() < SESSION_LIFETIME
        })
    }

    async fn login(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        let Ok(body) = Limited::new(req.into_body(), MAX_FORM_BYTES)
            .collect()
            .await
        else {
            return login_page(StatusCode::PAYLOAD_TOO_LARGE, "That form was too large.");
        };
        let body = body.to_bytes();
        let token = form_urlencoded::parse(&body)
            .find(|(k, _)| k == "token")
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default();
        if !constant_time_eq(token.trim().as_bytes(), self.token.as_bytes()) {
            tracing::warn!("dashboard: a login with a wrong token");
            return login_page(
                StatusCode::UNAUTHORIZED,
                "That token is not the operator's token.",
            );
        }
        let id = hex::encode(rand::random::<[u8; 32]>());
        {
            let mut sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
            sessions.retain(|_, at| at.elapsed() < SESSION_LIFETIME);
            if sessions.len() >= MAX_SESSIONS
                && let Some(oldest) = sessions
                    .iter()
                    .min_by_key(|(_, at)| **at)
                    .map(|(k, _)| k.clone())
            {
                sessions.remove(&oldest);
            }
            sessions.insert(id.clone(), Instant::now());
        }
        let mut resp = redirect("/");
        if let Ok(cookie) = HeaderValue::from_str(&format!(
            "{COOKIE}={id}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}",
            SESSION_LIFETIME.as_secs()
        )) {
            resp.headers_mut().insert(header::SET_COOKIE, cookie);
        }
        resp
    }
}

fn session_cookie<B>(req: &Request<B>) -> Option<String> {
    req.headers()
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| {
            c.trim()
                .strip_prefix(&format!("{COOKIE}="))
                .map(str::to_string)
        })
}

fn login_page(status: StatusCode, message: &str) -> Response<Full<Bytes>> {
    let escaped = message.replace('&', "&amp;").replace('<', "&lt;");
    text(
        status,
        "text/html; charset=utf-8",
        LOGIN.replace("{message}", &escaped),
    )
}

fn redirect(to: &'static str) -> Response<Full<Bytes>> {
    let mut resp = text(StatusCode::SEE_OTHER, "text/plain", format!("see {to}\n"));
    resp.headers_mut()
        .insert(header::LOCATION, HeaderValue::from_static(to));
    resp
}

fn text(status: StatusCode, content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

/// Headers every answer carries: nothing cached, framed, or loaded from
/// elsewhere.
fn secure(mut resp: Response<Full<Bytes>>) -> Response<Full<Bytes>> {
    let h = resp.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'unsafe-inline'; connect-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'",
        ),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    resp
}
