//! Behaviour of the echo upstream and the port helper.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::Value;
use testkit::free_port;
use testkit::upstream::EchoUpstream;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn echoes_method_path_query_headers_and_body() {
    let up = EchoUpstream::start().await;
    assert_eq!(up.url(), format!("http://{}", up.addr()));
    let resp = reqwest::Client::new()
        .post(format!("{}/some/path?a=1&b=two", up.url()))
        .header("X-Multi", "one")
        .header("X-Multi", "two")
        .header("X-Single", "v")
        .body("payload")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["method"], "POST");
    assert_eq!(body["path"], "/some/path");
    assert_eq!(body["query"], "a=1&b=two");
    assert_eq!(body["headers"]["x-multi"], "one, two");
    assert_eq!(body["headers"]["x-single"], "v");
    assert_eq!(body["headers"]["host"], up.addr().to_string());
    assert_eq!(body["body"], "payload");

    // A plain GET to /ws is echoed too.
    let body: Value = reqwest::get(format!("{}/ws", up.url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["path"], "/ws");
    assert_eq!(body["query"], "");
    assert_eq!(up.request_count(), 2);
}

#[tokio::test]
async fn websocket_echoes_text_frames() {
    let up = EchoUpstream::start().await;
    let (mut ws, resp) = tokio_tungstenite::connect_async(up.ws_url()).await.unwrap();
    assert_eq!(resp.status(), 101);
    for text in ["hello", "second frame"] {
        ws.send(Message::text(text)).await.unwrap();
        match ws.next().await.unwrap().unwrap() {
            Message::Text(echoed) => assert_eq!(echoed.as_str(), text),
            other => panic!("unexpected frame {other:?}"),
        }
    }
    ws.close(None).await.unwrap();
}

#[tokio::test]
async fn dropping_the_server_stops_it() {
    let up = EchoUpstream::start().await;
    let url = up.url();
    drop(up);
    tokio::task::yield_now().await;
    assert!(reqwest::get(&url).await.is_err());
}

#[test]
fn free_port_is_bindable() {
    let port = free_port();
    assert_ne!(port, 0);
    std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
}
