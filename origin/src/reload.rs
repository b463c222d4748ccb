//! Re-reading files a running server depends on (tokens, certificates):
//! on a timer, because renewal tools rewrite files in place, and on
//! SIGHUP, for operators who want it now. A reload that fails keeps what
//! was loaded before, and each distinct failure is logged once rather
//! than every tick.

use std::fmt::Display;
use std::time::Duration;

use crate::listen::Stop;

/// Calls `reload` every `interval` and on SIGHUP until the server stops;
/// `reload` returns whether something new is in use. `what` names the
/// files in log lines.
pub async fn watch<E: Display>(
    what: &'static str,
    interval: Duration,
    stop: Stop,
    reload: impl Fn() -> Result<bool, E>,
) {
    let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    let mut last_error = None;
    loop {
        tokio::select! {
            () = stop.graceful.cancelled() => return,
            () = stop.kill.cancelled() => return,
            () = tokio::time::sleep(interval) => {}
            Some(()) = async { hangup.as_mut()?.recv().await } => {}
        }
        match reload() {
            Ok(changed) => {
                if changed {
                    tracing::info!(what, "reloaded");
                }
                last_error = None;
            }
            Err(e) => {
                let text = e.to_string();
                if last_error.as_ref() != Some(&text) {
                    tracing::error!(what, error = %text, "not reloaded; the previous ones stay in use");
                    last_error = Some(text);
                }
            }
        }
    }
}
