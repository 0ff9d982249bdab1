//! Services that stall instead of failing: a connection that stays open and answers nothing.

use serde_json::json;
use taskflow_core::domain::TaskStatus;
use taskflow_tests::ws::Received;
use taskflow_tests::{EVENT_TIMEOUT, Options, Proxied, TestApp, poll_until};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_half_open_status_subscription_is_noticed_replaced_and_clients_told_to_resync() {
    let app = TestApp::spawn_with(Options {
        proxied: Proxied::Api,
        vars: vec![("REDIS_KEEPALIVE_MS", "200".to_owned())],
        ..Options::default()
    })
    .await;
    let proxies = app.proxies.as_ref().unwrap();
    let mut ws = app.ws().await;

    // Act: Redis keeps the API's connections open and answers nothing.
    proxies.redis.blackhole();

    // Assert: /healthz says so, and once Redis answers again the subscription is a new one,
    // with a resync notice for what the silent one missed.
    let down = poll_until(EVENT_TIMEOUT, async || {
        let (_, _, body) = app.get("/healthz").await;
        body["components"]["redis"]["status"] == "down"
    });
    assert!(down.await, "healthz reported the silent Redis");
    proxies.redis.heal();
    loop {
        match ws.next().await {
            Received::Event(event) if event["event"] == "resync" => break,
            Received::Event(_) => {}
            Received::Closed(code) => panic!("closed ({code:?}) before a resync notice"),
        }
    }
    let id = app.create_task("after", json!({"message": "m"})).await;
    ws.wait_for(id, TaskStatus::Done).await;
    let up = poll_until(EVENT_TIMEOUT, async || {
        let (_, _, body) = app.get("/healthz").await;
        body["components"]["redis"]["status"] == "up"
    });
    assert!(up.await, "healthz reported Redis back");
}
