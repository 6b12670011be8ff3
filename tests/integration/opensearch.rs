//! The OpenSearch test server (started by `scripts/services.sh` from Maven Central artifacts,
//! see `tests/opensearch`): it must answer in CI. The Elasticsearch/OpenSearch backend's own
//! tests build on it.

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The server's URL: set by scripts/services.sh; outside it, the local default.
pub fn url() -> String {
    std::env::var("DK_TEST_OPENSEARCH_URL").unwrap_or_else(|_| "http://127.0.0.1:9200".into())
}

/// `GET path` over plain HTTP/1.0; the response's status line and body.
async fn get(path: &str) -> std::io::Result<(String, String)> {
    let url = url();
    let host = url.trim_start_matches("http://").trim_end_matches('/');
    let mut sock = tokio::net::TcpStream::connect(host).await?;
    sock.write_all(format!("GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n").as_bytes())
        .await?;
    let mut text = String::new();
    sock.read_to_string(&mut text).await?;
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    Ok((
        head.lines().next().unwrap_or_default().to_string(),
        body.to_string(),
    ))
}

/// The node answers `GET /` as OpenSearch, and its cluster is usable (green or yellow).
#[tokio::test]
async fn the_test_node_answers() {
    let (status, body) = get("/")
        .await
        .unwrap_or_else(|e| panic!("no OpenSearch at {} ({e}); run scripts/services.sh", url()));
    assert!(status.contains(" 200"), "{status}: {body}");
    assert!(body.contains("\"distribution\" : \"opensearch\""), "{body}");
    let (status, body) = get("/_cluster/health?wait_for_status=yellow&timeout=30s")
        .await
        .expect("cluster health");
    assert!(status.contains(" 200"), "{status}: {body}");
    assert!(
        body.contains("\"status\":\"green\"") || body.contains("\"status\":\"yellow\""),
        "{body}"
    );
}
