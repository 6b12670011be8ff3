//! Runs every script of `sql-examples/` through the real binary with the config file beside
//! them, against the test services of scripts/services.sh, and compares what it prints with
//! `sql-examples/expected/<name>.out` (snapshot-style; `DK_UPDATE_EXAMPLES=1` rewrites the
//! snapshots, to be read before committing). Each run gets its own tag, bucket and file folder.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::{raw_http, unique_name};

fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("sql-examples")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_sql_example_runs_against_the_services() {
    let dir = examples_dir();
    let mut scripts: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("sql-examples/")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "sql"))
        .collect();
    scripts.sort();
    assert!(scripts.len() >= 5, "the examples are there: {scripts:?}");
    let run_tag = unique_name("x").to_lowercase();
    let bucket = format!("dkx-{}", run_tag.replace('_', "-"));
    let (status, body) = raw_http(&crate::s3::endpoint(), "PUT", &format!("/{bucket}"), "").await;
    assert_eq!(status, 200, "creating bucket {bucket}: {body}");
    let work = tempfile::tempdir().unwrap();
    let files = work.path().join("files");
    std::fs::create_dir(&files).unwrap();
    let update = std::env::var_os("DK_UPDATE_EXAMPLES").is_some();
    let mut failures = Vec::new();
    for script in &scripts {
        let name = script.file_stem().unwrap().to_string_lossy().into_owned();
        let out = Command::new(env!("CARGO_BIN_EXE_dataknobs"))
            .current_dir(work.path())
            .env("HOME", work.path())
            .env("DK_EXAMPLES_RUN", &run_tag)
            .env("DK_EXAMPLES_BUCKET", &bucket)
            .env("DK_EXAMPLES_FILES", &files)
            .env("DK_TEST_OPENSEARCH_URL", crate::opensearch::url())
            .env("DK_TEST_S3_ENDPOINT", crate::s3::endpoint())
            .env("DK_TEST_S3_ACCESS_KEY", crate::s3::keys().0)
            .env("DK_TEST_S3_SECRET_KEY", crate::s3::keys().1)
            .env("DK_TEST_REDIS_URL", crate::redis_sql::redis_url())
            .env_remove("DATABASE_URL")
            .arg("--config")
            .arg(dir.join("dataknobs.toml"))
            .arg("-f")
            .arg(script)
            .output()
            .expect("run dataknobs");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        if !out.status.success() || !stderr.trim().is_empty() {
            failures.push(format!(
                "{name}: exit {:?}\n--- stderr ---\n{stderr}\n--- stdout ---\n{stdout}",
                out.status.code()
            ));
            continue;
        }
        let expected_path = dir.join("expected").join(format!("{name}.out"));
        if update {
            std::fs::create_dir_all(expected_path.parent().unwrap()).unwrap();
            std::fs::write(&expected_path, &stdout).unwrap();
            continue;
        }
        let expected = std::fs::read_to_string(&expected_path).unwrap_or_else(|e| {
            panic!(
                "{}: {e} (DK_UPDATE_EXAMPLES=1 writes it)",
                expected_path.display()
            )
        });
        if stdout != expected {
            failures.push(format!(
                "{name}: output differs from {}\n--- got ---\n{stdout}\n--- expected ---\n{expected}",
                expected_path.display()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
