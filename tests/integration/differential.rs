//! Differential test: seeded random statements over a table with NULLs, every type and tricky
//! strings, in the backend under test, checked against a reference — the same rows in a memory
//! table evaluated by DataFusion alone (pushdown off). Generated: WHERE (comparisons, `IN`,
//! `BETWEEN`, `LIKE`, `ILIKE`, regexes, casts, untranslatable expressions, AND/OR/NOT), ORDER BY
//! … LIMIT/OFFSET, `LIMIT` without ORDER BY (any rows of the answer, as many as the limit
//! allows), `count(*)`, GROUP BY … HAVING, joins between the backend's table and the memory
//! table, and at the end DML (UPDATE, DELETE, `INSERT … SELECT` from a memory table) run on both
//! tables and compared by count and by the rows left.
//!
//! Each query runs on the backend with pushdown on and off; both must give the reference's
//! rows. A statement that fails everywhere the same way is a failure too: more than 1% of
//! failures is red, and a statement that fails on one side only is a mismatch. The share of
//! plain queries whose WHERE was pushed completely (no FilterExec left) must stay at or above
//! the backend's bar (memory: 80%).
//!
//! `run_differential(engine, table, reference, …)` is backend-agnostic: each backend's
//! `differential` test (from `backend_suite!`) calls it through [`run_for_backend`]. Set
//! `DK_DIFF_SEED` to reproduce a run, `DK_DIFF_QUERIES` to change the count.

use datafusion::physical_plan::displayable;
use dataknobs::Engine;

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

/// Creates and fills `table` (in the engine's default backend) with seeded rows. `finite`:
/// no NaN in `f` (for stores whose numbers are finite, as Elasticsearch's).
pub async fn load_table(engine: &Engine, table: &str, rows: usize, seed: u64, finite: bool) {
    let mut rng = Rng::new(seed);
    let columns = "i BIGINT, n INT, f DOUBLE, s TEXT, b BOOLEAN, ts TIMESTAMP, bin BYTEA";
    match engine
        .execute(&format!(
            "CREATE TABLE {table} (id BIGINT PRIMARY KEY, {columns})"
        ))
        .await
    {
        Ok(_) => {}
        // Datasets whose tables have no keys (files under an HDFS or S3 directory): the
        // queries compared here do not depend on one.
        Err(e)
            if e.kind() == dataknobs::ErrorKind::Unsupported
                && e.to_string().contains("no keys") =>
        {
            engine
                .execute(&format!("CREATE TABLE {table} (id BIGINT, {columns})"))
                .await
                .expect("create table without a key");
        }
        Err(e) => panic!("create table: {e}"),
    }
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
            let all = ["0.5", "-1.25", "0.0", "3.0", "2.5", "-0.0", "1e10", "'NaN'"];
            rng.pick(if finite { &all[..7] } else { &all[..] })
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
    match rng.below(110) {
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
        96..=102 => {
            let col = *rng.pick(&["i", "n", "f", "s", "ts", "id"]);
            format!(
                "{col} {}BETWEEN {} AND {}",
                if rng.chance(30) { "NOT " } else { "" },
                literal(rng, col),
                literal(rng, col)
            )
        }
        103..=106 => format!(
            "s {}ILIKE '{}'",
            if rng.chance(30) { "NOT " } else { "" },
            rng.pick(LIKE_PATTERNS)
        ),
        // Not translatable: DataFusion must evaluate these itself.
        107..=108 => format!("i + 1 > {}", literal(rng, "i")),
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

/// A WHERE clause's condition: 1–3 conjuncts.
fn condition(rng: &mut Rng) -> String {
    let conjuncts: Vec<String> = (0..1 + rng.below(3)).map(|_| predicate(rng, 0)).collect();
    conjuncts.join(" AND ")
}

const COLUMNS: [&str; 8] = ["id", "i", "n", "f", "s", "b", "ts", "bin"];

/// How a statement's answer is compared with the reference's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compare {
    /// Same rows in the same order (generated ORDER BYs end with the unique id).
    Ordered,
    /// Same rows in any order.
    Sorted,
    /// `LIMIT n` without ORDER BY: any `min(n, all)` rows of the reference's (unlimited) answer.
    AnyOf(usize),
}

/// One generated query. `{t}` stands for the table under test and `{r}` for the memory table
/// it is joined with; the reference runs `reference` with both standing for the memory table.
#[derive(Debug, Clone)]
pub struct Generated {
    pub sql: String,
    pub reference: String,
    pub compare: Compare,
    /// A plain filtered scan: counted in the pushed share.
    pub plain: bool,
}

/// A filtered scan. ILIKE is not in the query model (DataFusion always evaluates it), so scans
/// using it are not counted in the pushed share.
fn plain(sql: String, compare: Compare) -> Generated {
    Generated {
        reference: sql.clone(),
        plain: !sql.contains("ILIKE"),
        sql,
        compare,
    }
}

/// Generates one query: a filtered scan (projection, WHERE, sometimes ORDER BY … LIMIT …
/// OFFSET or `count(*)`), a bare LIMIT, a GROUP BY, or a join with the memory table.
pub fn query(rng: &mut Rng) -> Generated {
    let projection = if rng.chance(30) {
        "*".to_string()
    } else {
        let mut chosen: Vec<&str> = COLUMNS.iter().copied().filter(|_| rng.chance(50)).collect();
        if chosen.is_empty() {
            chosen.push("id");
        }
        chosen.join(", ")
    };
    let cond = condition(rng);
    match rng.below(100) {
        0..=64 => {
            let mut sql = format!("SELECT {projection} FROM {{t}} WHERE {cond}");
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
                plain(sql, Compare::Ordered)
            } else if rng.chance(10) {
                plain(
                    format!("SELECT count(*) AS c FROM {{t}} WHERE {cond}"),
                    Compare::Sorted,
                )
            } else {
                plain(sql, Compare::Sorted)
            }
        }
        65..=74 => {
            let limit = rng.below(15) as usize;
            let sql = format!("SELECT {projection} FROM {{t}} WHERE {cond}");
            Generated {
                sql: format!("{sql} LIMIT {limit}"),
                reference: sql,
                compare: Compare::AnyOf(limit),
                plain: false,
            }
        }
        75..=86 => {
            let key = *rng.pick(&["i", "n", "s", "b", "ts", "bin"]);
            let having = if rng.chance(30) {
                " HAVING count(*) > 1"
            } else {
                ""
            };
            let sql = format!(
                "SELECT {key}, count(*) AS c, min(id) AS lo, max(id) AS hi, count(f) AS nf \
                 FROM {{t}} WHERE {cond} GROUP BY {key}{having}"
            );
            Generated {
                reference: sql.clone(),
                sql,
                compare: Compare::Sorted,
                plain: false,
            }
        }
        _ => {
            let other = condition(rng);
            let on = match rng.below(10) {
                0..=5 => "x.id = y.id".to_string(),
                k => {
                    let col = ["i", "n", "s", "b"][k as usize - 6];
                    format!("x.{col} = y.{col} AND x.id < 40")
                }
            };
            let join = *rng.pick(&["JOIN", "LEFT JOIN"]);
            let sql = format!(
                "SELECT x.id AS a, y.id AS b, x.s AS xs, y.f AS yf \
                 FROM (SELECT * FROM {{t}} WHERE {cond}) x {join} \
                 (SELECT * FROM {{r}} WHERE {other}) y ON {on}"
            );
            Generated {
                reference: sql.clone(),
                sql,
                compare: Compare::Sorted,
                plain: false,
            }
        }
    }
}

/// Generates one DML statement over `{t}`; `{src}` stands for an unchanging memory table with
/// the original rows and `{k}` for a number unique to the statement (new ids).
pub fn dml(rng: &mut Rng) -> String {
    let cond = condition(rng);
    match rng.below(10) {
        0..=5 => {
            let set = *rng.pick(&[
                "i = -i",
                "n = n + 1",
                "n = CASE WHEN n > 0 THEN n - 1 ELSE n END",
                "s = upper(s)",
                "s = s || 'x'",
                "b = NOT b",
                "f = f * 2",
                "i = NULL",
                "s = NULL, b = NULL",
                "i = n, n = i",
                "ts = ts + INTERVAL '1 hour'",
            ]);
            format!("UPDATE {{t}} SET {set} WHERE {cond}")
        }
        6..=7 => format!(
            "DELETE FROM {{t}} WHERE id % 5 = {} AND {cond}",
            rng.below(5)
        ),
        _ => format!(
            "INSERT INTO {{t}} SELECT id + {{k}}, i, n, f, s, b, ts, bin FROM {{src}} WHERE {cond}"
        ),
    }
}

/// Outcome of a differential run.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Statements run (queries and DML).
    pub queries: usize,
    pub mismatches: Vec<String>,
    /// Plain filtered scans, and those whose WHERE was pushed completely.
    pub plain: usize,
    pub fully_pushed: usize,
    /// Queries whose ORDER BY reached the backend (the scan shows `sort=[…]`).
    pub sort_pushed: usize,
    /// Statements that failed (the same way everywhere).
    pub failed: Vec<String>,
    pub dml: usize,
}

/// Rows as text, one cell after another (no padding, so rows of different answers compare).
fn cells(batches: &[datafusion::arrow::record_batch::RecordBatch]) -> Vec<String> {
    use datafusion::arrow::util::display::array_value_to_string;
    let mut out = Vec::new();
    for b in batches {
        for row in 0..b.num_rows() {
            let cells: Vec<String> = b
                .columns()
                .iter()
                .map(|c| {
                    if c.is_null(row) {
                        "NULL".to_string()
                    } else {
                        array_value_to_string(c, row).unwrap_or_else(|e| format!("<{e}>"))
                    }
                })
                .collect();
            out.push(cells.join(" | "));
        }
    }
    out
}

async fn run_one(
    engine: &Engine,
    sql: &str,
    pushdown: bool,
) -> Result<(Vec<String>, String), String> {
    engine.set_pushdown(pushdown);
    let df = engine.sql(sql).await.map_err(|e| e.to_string())?;
    let plan = df
        .clone()
        .create_physical_plan()
        .await
        .map_err(|e| e.to_string())?;
    let shown = displayable(plan.as_ref()).indent(true).to_string();
    let batches = df.collect().await.map_err(|e| e.to_string())?;
    Ok((cells(&batches), shown))
}

/// Does `got` answer like the reference's `want` under `compare`?
fn same(compare: Compare, got: &[String], want: &[String]) -> bool {
    match compare {
        Compare::Ordered => got == want,
        Compare::Sorted => {
            let (mut a, mut b) = (got.to_vec(), want.to_vec());
            a.sort();
            b.sort();
            a == b
        }
        Compare::AnyOf(limit) => {
            if got.len() != limit.min(want.len()) {
                return false;
            }
            let mut pool: std::collections::HashMap<&String, usize> =
                std::collections::HashMap::new();
            for w in want {
                *pool.entry(w).or_default() += 1;
            }
            got.iter().all(|g| match pool.get_mut(g) {
                Some(n) if *n > 0 => {
                    *n -= 1;
                    true
                }
                _ => false,
            })
        }
    }
}

fn short(rows: &[String]) -> String {
    if rows.len() > 12 {
        format!("{:?} … ({} rows)", &rows[..12], rows.len())
    } else {
        format!("{rows:?}")
    }
}

/// Runs `count` generated queries over `table` (pushdown on and off) and `reference` (a memory
/// table with the same rows, pushdown off), then `count / 10` DML statements on both, with
/// `source` (a memory table with the original rows, never changed) feeding the INSERTs.
pub async fn run_differential(
    engine: &Engine,
    table: &str,
    reference: &str,
    source: &str,
    count: usize,
    seed: u64,
    insert_only: bool,
) -> Outcome {
    let mut rng = Rng::new(seed);
    let mut out = Outcome::default();
    for _ in 0..count {
        let q = query(&mut rng);
        let sql = q.sql.replace("{t}", table).replace("{r}", reference);
        let ref_sql = q
            .reference
            .replace("{t}", reference)
            .replace("{r}", reference);
        let on = run_one(engine, &sql, true).await;
        let off = run_one(engine, &sql, false).await;
        let want = run_one(engine, &ref_sql, false).await;
        engine.set_pushdown(true);
        out.queries += 1;
        match (on, off, want) {
            (Ok((a, plan)), Ok((b, plan_off)), Ok((w, _))) => {
                for (side, got) in [("on", &a), ("off", &b)] {
                    if !same(q.compare, got, &w) {
                        out.mismatches.push(format!(
                            "{sql}\n  pushdown {side}: {}\n  reference:    {}\n{plan}",
                            short(got),
                            short(&w)
                        ));
                        break;
                    }
                }
                assert!(
                    !plan_off.contains("filters=[") || plan_off.contains("filters=[]"),
                    "pushdown off still pushed filters: {sql}\n{plan_off}"
                );
                if plan.contains(" sort=[") {
                    out.sort_pushed += 1;
                }
                if q.plain {
                    out.plain += 1;
                    if !plan.contains("FilterExec") && !plan.contains("filters=[]") {
                        out.fully_pushed += 1;
                    } else if std::env::var_os("DK_DIFF_VERBOSE").is_some() {
                        eprintln!("not fully pushed: {sql}\n{plan}");
                    }
                }
            }
            (Err(a), Err(b), Err(w)) if a == b => {
                // The same failure with pushdown on and off: counted against the 1% budget
                // (the reference's message may name its own table).
                out.failed
                    .push(format!("{sql}\n  error: {a}\n  reference: {w}"));
            }
            (a, b, w) => out.mismatches.push(format!(
                "{sql}\n  on: {}\n  off: {}\n  reference: {}",
                brief(&a),
                brief(&b),
                brief(&w)
            )),
        }
    }
    run_dml(
        engine,
        table,
        reference,
        source,
        count / 10,
        &mut rng,
        &mut out,
        insert_only,
    )
    .await;
    out
}

fn brief(r: &Result<(Vec<String>, String), String>) -> String {
    match r {
        Ok((rows, _)) => short(rows),
        Err(e) => format!("error: {e}"),
    }
}

/// Runs `count` generated DML statements on `table` (pushdown on or off, at random) and on
/// `reference` (pushdown off); the counts and the rows left must match after each.
#[allow(clippy::too_many_arguments)]
async fn run_dml(
    engine: &Engine,
    table: &str,
    reference: &str,
    source: &str,
    count: usize,
    rng: &mut Rng,
    out: &mut Outcome,
    insert_only: bool,
) {
    for k in 0..count {
        let mut template = dml(rng);
        while insert_only && !template.starts_with("INSERT") {
            template = dml(rng);
        }
        let ids = ((k + 1) * 10_000).to_string();
        let fill = |t: &str| {
            template
                .replace("{t}", t)
                .replace("{src}", source)
                .replace("{k}", &ids)
        };
        let (sql, ref_sql) = (fill(table), fill(reference));
        let pushdown = rng.chance(50);
        let got = run_one(engine, &sql, pushdown).await;
        let want = run_one(engine, &ref_sql, false).await;
        engine.set_pushdown(true);
        out.queries += 1;
        out.dml += 1;
        match (&got, &want) {
            (Ok((a, _)), Ok((w, _))) if a == w => {}
            (Err(a), Err(_)) => out.failed.push(format!("{sql}\n  error: {a}")),
            _ => out.mismatches.push(format!(
                "{sql} (pushdown {pushdown})\n  got: {}\n  reference: {}",
                brief(&got),
                brief(&want)
            )),
        }
        let all = "SELECT * FROM {t}";
        let left = run_one(engine, &all.replace("{t}", table), false).await;
        let left_ref = run_one(engine, &all.replace("{t}", reference), false).await;
        engine.set_pushdown(true);
        match (left, left_ref) {
            (Ok((a, _)), Ok((w, _))) if same(Compare::Sorted, &a, &w) => {}
            (a, w) => {
                out.mismatches.push(format!(
                    "rows left after {sql} (pushdown {pushdown}) differ\n  got: {}\n  reference: {}",
                    brief(&a),
                    brief(&w)
                ));
                // Later statements would only repeat the difference.
                return;
            }
        }
    }
}

/// Asserts the acceptance criteria on an outcome: [`check_results`], and that at least
/// `min_share` of the plain queries had their WHERE pushed completely.
pub fn check_share(outcome: &Outcome, backend: &str, min_share: f64) {
    check_results(outcome, backend);
    let share = outcome.fully_pushed as f64 / outcome.plain.max(1) as f64;
    assert!(
        share >= min_share,
        "{backend}: only {:.1}% of plain queries were pushed completely (need ≥ {:.0}%)",
        share * 100.0,
        min_share * 100.0
    );
    eprintln!(
        "{backend}: {:.1}% of {} plain queries fully pushed, {} with ORDER BY pushed",
        share * 100.0,
        outcome.plain,
        outcome.sort_pushed,
    );
}

/// Asserts that enough statements ran, none differed from the reference, and at most 1%
/// failed.
pub fn check_results(outcome: &Outcome, backend: &str) {
    assert!(
        outcome.mismatches.is_empty(),
        "{backend}: {} of {} statements differ from the reference; first:\n{}",
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
    assert!(
        outcome.queries >= 1000 && outcome.dml >= 100,
        "{backend}: only {} statements ({} DML) ran",
        outcome.queries,
        outcome.dml
    );
    assert!(
        outcome.failed.len() * 100 <= outcome.queries,
        "{backend}: {} of {} statements failed (more than 1%); first:\n{}",
        outcome.failed.len(),
        outcome.queries,
        outcome
            .failed
            .iter()
            .take(3)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n\n")
    );
    eprintln!(
        "{backend}: {} statements ({} DML), 0 mismatches, {} failed everywhere",
        outcome.queries,
        outcome.dml,
        outcome.failed.len()
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
/// into `diff` in the engine's default backend and into two memory tables (the reference and
/// the INSERTs' source), runs the generated statements, and checks the results with
/// [`check_share`] given a bar, else with [`check_results`]. Returns the outcome for
/// backend-specific checks.
pub async fn run_for_backend(
    engine: &Engine,
    backend: &str,
    rows: usize,
    min_share: Option<f64>,
) -> Outcome {
    run_for(engine, backend, rows, min_share, false).await
}

/// [`run_for_backend`] for tables that take INSERT but no UPDATE or DELETE (datasets of
/// files, where each INSERT adds a file): the DML run is `INSERT … SELECT` only.
pub async fn run_for_insert_only_backend(engine: &Engine, backend: &str, rows: usize) -> Outcome {
    run_for(engine, backend, rows, None, true).await
}

async fn run_for(
    engine: &Engine,
    backend: &str,
    rows: usize,
    min_share: Option<f64>,
    insert_only: bool,
) -> Outcome {
    let seed = seed_from_env();
    let (reference, source) = ("memory.diff_reference", "memory.diff_source");
    let finite = backend == "elasticsearch";
    load_table(engine, "diff", rows, seed, finite).await;
    load_table(engine, reference, rows, seed, finite).await;
    load_table(engine, source, rows, seed, finite).await;
    let outcome = run_differential(
        engine,
        "diff",
        reference,
        source,
        count_from_env(),
        seed,
        insert_only,
    )
    .await;
    match min_share {
        Some(share) => check_share(&outcome, backend, share),
        None => check_results(&outcome, backend),
    }
    outcome
}
