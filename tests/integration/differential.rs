//! Differential pushdown test: seeded random WHERE / ORDER BY / LIMIT / projection queries over
//! a table with NULLs, every type and tricky strings. Each query runs with pushdown on and off
//! and must return the same rows; the share of queries whose WHERE was pushed completely (no
//! FilterExec left) must stay at or above the backend's bar (memory: 80%).
//!
//! `run_differential(engine, table)` is backend-agnostic: each backend's `differential` test
//! (from `backend_suite!`) loads the same data with [`load_table`] and calls it, through
//! [`run_for_backend`]. Set `DK_DIFF_SEED` to reproduce a run, `DK_DIFF_QUERIES` to change the
//! count.

use datafusion::physical_plan::displayable;
use dataknobs::Engine;

use crate::common::{rows, sorted_rows};

/// SplitMix64: small, seeded, reproducible.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

const STRINGS: &[&str] = &[
    "", "a", "abc", "ABC", "a%b", "a_b", "a\\b", "it''s", "ü", "日本", " x", "x ", "%", "_",
    "abc%", "b;--", "\"q\"",
];
const LIKE_PATTERNS: &[&str] = &[
    "a%", "%b", "a_b", "a\\%b", "a\\_b", "%", "_", "", "%\\%%", "ab_", "A%", "%ü%", "__", "a\\\\b",
];
const REGEXES: &[&str] = &["^a", "b$", "[0-9]", "^$", "a.b", "(?i)abc", "^\\s"];

/// Creates and fills `table` (in the engine's default backend) with seeded rows.
pub async fn load_table(engine: &Engine, table: &str, rows: usize, seed: u64) {
    let mut rng = Rng::new(seed);
    engine
        .execute(&format!(
            "CREATE TABLE {table} (id BIGINT PRIMARY KEY, i BIGINT, n INT, f DOUBLE, s TEXT, b BOOLEAN, ts TIMESTAMP, bin BYTEA)"
        ))
        .await
        .expect("create table");
    let mut values = Vec::new();
    for id in 0..rows {
        let null = |rng: &mut Rng| rng.chance(15);
        let i = if null(&mut rng) {
            "NULL".to_string()
        } else {
            (rng.below(11) as i64 - 5).to_string()
        };
        let n = if null(&mut rng) {
            "NULL".to_string()
        } else {
            (rng.below(7) as i64 - 3).to_string()
        };
        let f = if null(&mut rng) {
            "NULL".to_string()
        } else {
            rng.pick(&["0.5", "-1.25", "0.0", "3.0", "2.5", "-0.0", "1e10", "'NaN'"])
                .to_string()
        };
        let s = if null(&mut rng) {
            "NULL".to_string()
        } else {
            format!("'{}'", rng.pick(STRINGS))
        };
        let b = if null(&mut rng) {
            "NULL".to_string()
        } else {
            rng.pick(&["true", "false"]).to_string()
        };
        let ts = if null(&mut rng) {
            "NULL".to_string()
        } else {
            format!(
                "'2024-01-{:02}T{:02}:00:00'",
                1 + rng.below(5),
                rng.below(24)
            )
        };
        let bin = if null(&mut rng) {
            "NULL".to_string()
        } else {
            rng.pick(&["X'00'", "X'ff00'", "X''", "X'61'"]).to_string()
        };
        values.push(format!(
            "({id}, {i}, {n}, CAST({f} AS DOUBLE), {s}, {b}, CAST({ts} AS TIMESTAMP), {bin})"
        ));
    }
    for chunk in values.chunks(100) {
        engine
            .execute(&format!("INSERT INTO {table} VALUES {}", chunk.join(", ")))
            .await
            .expect("insert rows");
    }
}

fn literal(rng: &mut Rng, col: &str) -> String {
    if rng.chance(5) {
        return "NULL".into();
    }
    match col {
        "i" | "id" => (rng.below(13) as i64 - 6).to_string(),
        "n" => (rng.below(9) as i64 - 4).to_string(),
        "f" => rng
            .pick(&["0.5", "-1.25", "0", "3", "2.5", "1e10", "-7"])
            .to_string(),
        "s" => format!("'{}'", rng.pick(STRINGS)),
        "b" => rng.pick(&["true", "false"]).to_string(),
        "ts" => format!(
            "TIMESTAMP '2024-01-{:02} {:02}:00:00'",
            1 + rng.below(5),
            rng.below(24)
        ),
        _ => "NULL".into(),
    }
}

fn atom(rng: &mut Rng) -> String {
    let col = *rng.pick(&["i", "n", "f", "s", "b", "ts", "id"]);
    match rng.below(100) {
        0..=41 => {
            let op = rng.pick(&["=", "!=", "<>", "<", "<=", ">", ">="]);
            if col == "b" && rng.chance(30) {
                return rng.pick(&["b", "NOT b"]).to_string();
            }
            let lit = literal(rng, col);
            if rng.chance(25) {
                format!("{lit} {op} {col}")
            } else {
                format!("{col} {op} {lit}")
            }
        }
        42..=51 => format!("{col} IS {}NULL", if rng.chance(50) { "NOT " } else { "" }),
        52..=66 => {
            let k = 1 + rng.below(4);
            let list: Vec<String> = (0..k).map(|_| literal(rng, col)).collect();
            format!(
                "{col} {}IN ({})",
                if rng.chance(40) { "NOT " } else { "" },
                list.join(", ")
            )
        }
        67..=81 => format!(
            "s {}LIKE '{}'",
            if rng.chance(30) { "NOT " } else { "" },
            rng.pick(LIKE_PATTERNS)
        ),
        82..=89 => format!("s ~ '{}'", rng.pick(REGEXES)),
        90..=95 => format!(
            "CAST(n AS BIGINT) {} {}",
            rng.pick(&["=", ">", "<="]),
            literal(rng, "i")
        ),
        // Not translatable: DataFusion must evaluate these itself.
        96..=97 => format!("i + 1 > {}", literal(rng, "i")),
        _ => format!("upper(s) = '{}'", rng.pick(&["ABC", "A%B", ""])),
    }
}

fn predicate(rng: &mut Rng, depth: u32) -> String {
    if depth >= 2 || rng.chance(45) {
        return atom(rng);
    }
    match rng.below(3) {
        0 => format!(
            "({} AND {})",
            predicate(rng, depth + 1),
            predicate(rng, depth + 1)
        ),
        1 => format!(
            "({} OR {})",
            predicate(rng, depth + 1),
            predicate(rng, depth + 1)
        ),
        _ => format!("NOT ({})", predicate(rng, depth + 1)),
    }
}

/// Generates one query: projection, WHERE (1–3 conjuncts), optional ORDER BY (0–2 random
/// keys with random direction and NULL placement, then `id`, so the order is total) with
/// LIMIT and sometimes OFFSET.
pub fn query(rng: &mut Rng, table: &str) -> String {
    let cols = ["id", "i", "n", "f", "s", "b", "ts", "bin"];
    let projection = if rng.chance(30) {
        "*".to_string()
    } else {
        let mut chosen: Vec<&str> = cols.iter().copied().filter(|_| rng.chance(50)).collect();
        if chosen.is_empty() {
            chosen.push("id");
        }
        chosen.join(", ")
    };
    let conjuncts: Vec<String> = (0..1 + rng.below(3)).map(|_| predicate(rng, 0)).collect();
    let mut sql = format!(
        "SELECT {projection} FROM {table} WHERE {}",
        conjuncts.join(" AND ")
    );
    if rng.chance(30) {
        let mut keys = Vec::new();
        for _ in 0..rng.below(3) {
            let col = *rng.pick(&["i", "n", "f", "s", "b", "ts", "bin"]);
            let dir = *rng.pick(&["", " ASC", " DESC"]);
            let nulls = *rng.pick(&["", " NULLS FIRST", " NULLS LAST"]);
            keys.push(format!("{col}{dir}{nulls}"));
        }
        keys.push(rng.pick(&["id", "id DESC"]).to_string());
        sql.push_str(&format!(
            " ORDER BY {} LIMIT {}",
            keys.join(", "),
            rng.below(20)
        ));
        if rng.chance(20) {
            sql.push_str(&format!(" OFFSET {}", rng.below(10)));
        }
    } else if rng.chance(10) {
        sql = format!(
            "SELECT count(*) AS c FROM {table} WHERE {}",
            conjuncts.join(" AND ")
        );
    }
    sql
}

/// Outcome of a differential run.
#[derive(Debug, Default)]
pub struct Outcome {
    pub queries: usize,
    pub mismatches: Vec<String>,
    pub fully_pushed: usize,
    /// Queries whose ORDER BY reached the backend (the scan shows `sort=[…]`).
    pub sort_pushed: usize,
    pub errors_both: usize,
}

async fn run_one(engine: &Engine, sql: &str) -> Result<(Vec<String>, String), String> {
    let df = engine.sql(sql).await.map_err(|e| e.to_string())?;
    let plan = df
        .clone()
        .create_physical_plan()
        .await
        .map_err(|e| e.to_string())?;
    let shown = displayable(plan.as_ref()).indent(true).to_string();
    let batches = df.collect().await.map_err(|e| e.to_string())?;
    // Generated ORDER BYs end with the unique id, so their order is total: compare it too.
    let rows = if sql.contains("ORDER BY") {
        rows(&batches)
    } else {
        sorted_rows(&batches)
    };
    Ok((rows, shown))
}

/// Runs `count` generated queries over `table` with pushdown on and off.
pub async fn run_differential(engine: &Engine, table: &str, count: usize, seed: u64) -> Outcome {
    let mut rng = Rng::new(seed);
    let mut out = Outcome::default();
    for _ in 0..count {
        let sql = query(&mut rng, table);
        engine.set_pushdown(true);
        let on = run_one(engine, &sql).await;
        engine.set_pushdown(false);
        let off = run_one(engine, &sql).await;
        engine.set_pushdown(true);
        out.queries += 1;
        match (on, off) {
            (Ok((a, plan)), Ok((b, plan_off))) => {
                if a != b {
                    out.mismatches.push(format!(
                        "{sql}\n  pushdown on:  {a:?}\n  pushdown off: {b:?}\n{plan}"
                    ));
                }
                assert!(
                    !plan_off.contains("filters=[") || plan_off.contains("filters=[]"),
                    "pushdown off still pushed filters: {sql}\n{plan_off}"
                );
                if plan.contains(" sort=[") {
                    out.sort_pushed += 1;
                }
                if !plan.contains("FilterExec") && !plan.contains("filters=[]") {
                    out.fully_pushed += 1;
                } else if std::env::var_os("DK_DIFF_VERBOSE").is_some() {
                    eprintln!("not fully pushed: {sql}\n{plan}");
                }
            }
            (Err(a), Err(b)) => {
                // Both fail the same way (e.g. a regex DataFusion rejects): not a mismatch.
                if a != b {
                    out.mismatches
                        .push(format!("{sql}\n  errors differ: on: {a}\n  off: {b}"));
                }
                out.errors_both += 1;
            }
            (a, b) => out
                .mismatches
                .push(format!("{sql}\n  on: {a:?}\n  off: {b:?}")),
        }
    }
    out
}

/// Asserts the acceptance criteria on an outcome: [`check_results`], and that at least
/// `min_share` of the queries had their WHERE pushed completely.
pub fn check_share(outcome: &Outcome, backend: &str, min_share: f64) {
    check_results(outcome, backend);
    let share = outcome.fully_pushed as f64 / outcome.queries as f64;
    assert!(
        share >= min_share,
        "{backend}: only {:.1}% of queries were pushed completely (need ≥ {:.0}%)",
        share * 100.0,
        min_share * 100.0
    );
    eprintln!(
        "{backend}: {} queries, 0 mismatches, {:.1}% fully pushed, {} with ORDER BY pushed, {} failed identically both ways",
        outcome.queries,
        share * 100.0,
        outcome.sort_pushed,
        outcome.errors_both
    );
}

/// Asserts that enough queries ran and none differed (for backends whose scans DataFusion
/// itself prunes, such as files, where the pushed share is DataFusion's business).
pub fn check_results(outcome: &Outcome, backend: &str) {
    assert!(
        outcome.queries >= 1000,
        "{backend}: only {} queries ran",
        outcome.queries
    );
    assert!(
        outcome.mismatches.is_empty(),
        "{backend}: {} of {} queries differ with pushdown on/off; first:\n{}",
        outcome.mismatches.len(),
        outcome.queries,
        outcome
            .mismatches
            .iter()
            .take(3)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n\n")
    );
    eprintln!(
        "{backend}: {} queries, 0 mismatches, {} fully pushed",
        outcome.queries, outcome.fully_pushed
    );
}

pub fn seed_from_env() -> u64 {
    std::env::var("DK_DIFF_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5EED_DA7A)
}

pub fn count_from_env() -> usize {
    std::env::var("DK_DIFF_QUERIES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1200)
        .max(1000)
}

/// A backend's whole differential test (what `backend_suite!` runs): loads `rows` seeded rows
/// into `diff` in the engine's default backend, runs the generated queries, and checks the
/// results with [`check_share`] given a bar, else with [`check_results`]. Returns the outcome
/// for backend-specific checks.
pub async fn run_for_backend(
    engine: &Engine,
    backend: &str,
    rows: usize,
    min_share: Option<f64>,
) -> Outcome {
    let seed = seed_from_env();
    load_table(engine, "diff", rows, seed).await;
    let outcome = run_differential(engine, "diff", count_from_env(), seed).await;
    match min_share {
        Some(share) => check_share(&outcome, backend, share),
        None => check_results(&outcome, backend),
    }
    outcome
}
