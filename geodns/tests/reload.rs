//! Reloads finish in the order they were asked for: a slow one started
//! first cannot overwrite a quick one started after it.

mod support;

use geodns::Config;
use support::{TestServer, config_text};

#[tokio::test(flavor = "multi_thread")]
async fn a_slow_reload_cannot_overwrite_a_later_one() {
    let t = TestServer::start(&config_text("")).await;
    // Thousands of extra records make the first snapshot slow to build.
    let many: String = (0..30_000)
        .map(|i| format!("  {{ name = \"n{i}\", type = \"A\", value = \"192.0.2.1\" }},\n"))
        .collect();
    let slow_text = config_text("")
        .replace("192.0.2.10", "192.0.2.50")
        .replace("{ name = \"ns1\"", &format!("{many}  {{ name = \"ns1\""));
    let slow = Config::parse(&t.config_path, &slow_text).unwrap();
    let quick = Config::parse(
        &t.config_path,
        &config_text("").replace("192.0.2.10", "192.0.2.60"),
    )
    .unwrap();
    let (a, b) = tokio::join!(t.server.apply(slow), t.server.apply(quick));
    a.unwrap();
    b.unwrap();
    assert_eq!(
        t.dig(&["static.waypost.test", "A"]).answer_data(),
        ["192.0.2.60"],
        "the reload asked for last is the one serving"
    );
    t.server.shutdown().await;
}
