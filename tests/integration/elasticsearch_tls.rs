//! `es+https://` with credentials, against the OpenSearch test node behind the nginx of
//! scripts/es-tls.sh (TLS with a throwaway CA; one user and password, or one API key; 401
//! with an Elasticsearch-style error otherwise): a user and password in the URL, an API key
//! from the variable `api_key_env` names, the CA from `ca_file` or `verify_tls=false`; wrong
//! credentials, an untrusted certificate and plain HTTP to the TLS port are clear errors, and
//! no secret shows in errors, EXPLAIN or Debug.

use dataknobs::Engine;

use crate::common::{compact_rows as rows, unique_name};

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_string())
}

/// The proxy's `https://127.0.0.1:9243`, its CA file and credentials (scripts/es-tls.sh).
struct Tls {
    https: String,
    ca: String,
    user: String,
    password: String,
}

fn tls() -> Tls {
    let t = Tls {
        https: env_or("DK_TEST_ES_TLS_URL", "https://127.0.0.1:9243"),
        ca: env_or("DK_TEST_ES_TLS_CA", "/var/tmp/dataknobs-es-tls/ca.pem"),
        user: env_or("DK_TEST_ES_TLS_USER", "dk_tls_user"),
        password: env_or("DK_TEST_ES_TLS_PASSWORD", "s3cret:p@ss/word"),
    };
    assert!(
        std::path::Path::new(&t.ca).exists(),
        "no CA file at {}: start the services with scripts/services.sh (start_es_tls)",
        t.ca
    );
    t
}

/// Percent-encodes everything but letters and digits.
fn encoded(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// `es+https://user:password@127.0.0.1:9243/?…` with a fresh index prefix.
fn url(t: &Tls, user: &str, password: &str, options: &str) -> (String, String) {
    let prefix = format!("{}_", unique_name("dkt"));
    let host = t.https.trim_start_matches("https://").trim_end_matches('/');
    let creds = if user.is_empty() {
        String::new()
    } else {
        format!("{}:{}@", encoded(user), encoded(password))
    };
    (
        format!("es+https://{creds}{host}/?index_prefix={prefix}&{options}"),
        prefix,
    )
}

async fn attach_err(u: &str) -> String {
    let engine = Engine::new();
    match engine.attach("es", u).await {
        Ok(_) => panic!("attaching {u} must fail"),
        Err(e) => format!("{e} | {e:?}"),
    }
}

/// Creates, fills, filters, counts and scans a table through the engine.
async fn round_trip(engine: &Engine) {
    for sql in [
        "CREATE TABLE es.t (id BIGINT PRIMARY KEY, s TEXT)",
        "INSERT INTO es.t SELECT v, 'row ' || v FROM generate_series(1, 12000) AS g(v)",
    ] {
        engine
            .execute(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    let got = rows(
        &engine
            .execute("SELECT count(*), sum(id), max(s) FROM es.t")
            .await
            .expect("scan"),
    );
    assert_eq!(got, ["12000|72006000|row 9999"]);
    let got = rows(
        &engine
            .execute("SELECT id FROM es.t WHERE s = 'row 7' OR id > 11999 ORDER BY id")
            .await
            .expect("filter"),
    );
    assert_eq!(got, ["7", "12000"]);
    engine.execute("DROP TABLE es.t").await.expect("drop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_and_password_over_https() {
    let t = tls();
    let (u, _) = url(&t, &t.user, &t.password, &format!("ca_file={}", t.ca));
    let engine = Engine::new();
    engine.attach("es", &u).await.expect("attach over https");
    round_trip(&engine).await;
    // The password shows nowhere.
    let plan = rows(
        &engine
            .execute("EXPLAIN SELECT * FROM es.nothing_here_yet LIMIT 1")
            .await
            .unwrap_or_default(),
    )
    .join("\n");
    let err = engine
        .execute("SELECT * FROM es.no_such_index")
        .await
        .expect_err("unknown index");
    let shown = format!("{plan}\n{err}\n{err:?}\n{engine:?}");
    assert!(!shown.contains(&t.password), "{shown}");
    assert!(!shown.contains(&encoded(&t.password)), "{shown}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_key_from_the_variable_api_key_env_names() {
    let t = tls();
    // scripts/es-tls.sh exports the key; the option names the variable.
    assert!(
        std::env::var("DK_TEST_ES_TLS_API_KEY").is_ok(),
        "DK_TEST_ES_TLS_API_KEY is not set: start the services with scripts/services.sh"
    );
    let (u, _) = url(
        &t,
        "",
        "",
        &format!("ca_file={}&api_key_env=DK_TEST_ES_TLS_API_KEY", t.ca),
    );
    let engine = Engine::new();
    engine
        .attach("es", &u)
        .await
        .expect("attach with an API key");
    round_trip(&engine).await;
    // A variable that is not set: no key is sent, and the server's refusal says what to check.
    let (u, _) = url(
        &t,
        "",
        "",
        &format!("ca_file={}&api_key_env=DK_TEST_NO_SUCH_VARIABLE", t.ca),
    );
    let err = attach_err(&u).await;
    assert!(err.contains("refused the credentials (HTTP 401)"), "{err}");
    assert!(err.contains("api_key_env"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_credentials_and_untrusted_certificates_fail_clearly() {
    let t = tls();
    // A wrong password: refused, and the password is not repeated.
    let (u, _) = url(
        &t,
        &t.user,
        "not-the-password",
        &format!("ca_file={}", t.ca),
    );
    let err = attach_err(&u).await;
    assert!(err.contains("refused the credentials (HTTP 401)"), "{err}");
    assert!(err.contains("user and password"), "{err}");
    assert!(!err.contains("not-the-password"), "{err}");
    // The server's certificate is signed by a CA the client does not know.
    let (u, _) = url(&t, &t.user, &t.password, "");
    let err = attach_err(&u).await;
    assert!(
        err.contains("cannot reach")
            && err.contains("certificate is not trusted: give its CA with the option ca_file"),
        "{err}"
    );
    assert!(!err.contains(&t.password), "{err}");
    // verify_tls=false trusts any certificate.
    let (u, _) = url(&t, &t.user, &t.password, "verify_tls=false");
    let engine = Engine::new();
    engine
        .attach("es", &u)
        .await
        .expect("attach without checking the certificate");
    assert_eq!(
        rows(&engine.execute("SELECT 1").await.expect("select")),
        ["1"]
    );
    // A CA file that is missing or not PEM.
    let (u, _) = url(&t, &t.user, &t.password, "ca_file=/nonexistent/ca.pem");
    let err = attach_err(&u).await;
    assert!(
        err.contains("cannot read the CA file /nonexistent/ca.pem"),
        "{err}"
    );
    // Plain HTTP to the TLS port.
    let plain = format!(
        "es+http://{}/?index_prefix=x_",
        t.https.trim_start_matches("https://").trim_end_matches('/')
    );
    let err = attach_err(&plain).await;
    assert!(err.contains("cannot reach") || err.contains("400"), "{err}");
}
