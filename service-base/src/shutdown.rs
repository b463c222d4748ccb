//! The signals that stop a server: Ctrl-C, and SIGTERM (what `kill`,
//! systemd and Kubernetes send before SIGKILL), so every binary drains
//! in-flight work on both.

/// Returns once Ctrl-C or SIGTERM arrives. An error means a handler could
/// not be installed: the process can then only be stopped by SIGKILL.
pub async fn requested() -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate())?;
        tokio::select! {
            _ = term.recv() => Ok(()),
            r = tokio::signal::ctrl_c() => r,
        }
    }
    #[cfg(not(unix))]
    tokio::signal::ctrl_c().await
}
