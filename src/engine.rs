//! The [`Engine`]: a DataFusion `SessionContext` whose catalogs are attached backends.
//!
//! `Engine::new()` attaches an in-memory backend as `memory` and makes it the default, so
//! `CREATE TABLE t (…)`, `INSERT INTO t …` and `SELECT … FROM t` work with no configuration.
//! DDL on backend tables (`CREATE TABLE`, `CREATE TABLE … AS SELECT`, `DROP TABLE`) is planned
//! here rather than by DataFusion's in-memory default: the collection is created in the
//! backend, then the query result is streamed into it, so a large CTAS never sits in memory.

use std::sync::Arc;

use datafusion::arrow::array::{RecordBatch, UInt64Array};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::common::{Constraint, TableReference};
use datafusion::dataframe::DataFrame;
use datafusion::execution::SessionStateBuilder;
use datafusion::execution::context::QueryPlanner;
use datafusion::execution::context::SessionConfig;
use datafusion::logical_expr::{DdlStatement, LogicalPlan};
use datafusion::physical_planner::{DefaultPhysicalPlanner, PhysicalPlanner};
use datafusion::prelude::SessionContext;
use parking_lot::RwLock;

use crate::backends::memory::MemoryBackend;
use crate::catalog::{BackendCatalog, BackendSchema, RootCatalog};
use crate::config::DatabaseFactory;
use crate::database::{Backend, CollectionSpec, Database};
use crate::error::{Error, Result};
use crate::options::DataknobsOptions;
use crate::table::BackendRegistry;

/// The default catalog's name.
pub const DEFAULT_CATALOG: &str = "dataknobs";
/// The default schema's name.
pub const DEFAULT_SCHEMA: &str = "public";
/// The name of the embedded memory backend.
pub const DEFAULT_BACKEND: &str = "memory";

/// One SQL engine over every attached backend.
pub struct Engine {
    ctx: SessionContext,
    registry: Arc<BackendRegistry>,
    root: Arc<RootCatalog>,
    catalogs: RwLock<std::collections::HashMap<String, Arc<BackendCatalog>>>,
    factory: DatabaseFactory,
    default_backend: RwLock<String>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field(
                "backends",
                &self
                    .backends()
                    .iter()
                    .map(|(n, b)| format!("{n}={}", b.location()))
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Engine {
    /// An engine with an in-memory backend attached as `memory` (the default). SQL decimal
    /// literals (`1.005`) are exact decimals, as in PostgreSQL and DuckDB, not floats
    /// (`datafusion.sql_parser.parse_float_as_decimal`; `1.5e0` is still a float).
    pub fn new() -> Self {
        let mut config = SessionConfig::new();
        config.options_mut().sql_parser.parse_float_as_decimal = true;
        Self::with_config(config)
    }

    /// Like [`Engine::new`] with a DataFusion session config (target partitions, batch size…).
    pub fn with_config(config: SessionConfig) -> Self {
        let registry = Arc::new(BackendRegistry::default());
        let config = config
            .with_default_catalog_and_schema(DEFAULT_CATALOG, DEFAULT_SCHEMA)
            .with_create_default_catalog_and_schema(false)
            .with_information_schema(true)
            .with_option_extension(DataknobsOptions::default())
            .with_extension(registry.clone());
        // `SELECT … FROM 'path/file.parquet'` queries a file directly, as in datafusion-cli.
        let state = SessionStateBuilder::new()
            .with_config(config)
            .with_default_features()
            .with_analyzer_rules(vec![
                Arc::new(datafusion::optimizer::analyzer::resolve_grouping_function::ResolveGroupingFunction::new()),
                Arc::new(crate::rules::NullableInsertValuesRule),
                Arc::new(crate::rules::FloatMeetsDecimalRule),
                Arc::new(datafusion::optimizer::analyzer::type_coercion::TypeCoercion::new()),
            ])
            .with_physical_optimizer_rules({
                use crate::backends::file::nan::{ParquetFloatStatsRule, ParquetNanRule};
                let mut rules = datafusion::physical_optimizer::optimizer::PhysicalOptimizer::new().rules;
                rules.insert(0, Arc::new(ParquetFloatStatsRule));
                rules.push(Arc::new(ParquetNanRule));
                rules.push(Arc::new(crate::table::count::CountPushdownRule));
                // Last: wraps Parquet scans so their errors name the file.
                rules.push(Arc::new(crate::backends::file::names::ParquetFileNamesRule));
                rules
            })
            .with_query_planner(Arc::new(DataknobsQueryPlanner))
            .build();
        let ctx = SessionContext::new_with_state(state).enable_url_table();
        for f in crate::fulltext::functions() {
            ctx.register_udf(f.as_ref().clone());
        }
        ctx.add_analyzer_rule(Arc::new(crate::depth::DepthLimitRule));
        ctx.add_analyzer_rule(Arc::new(crate::rules::LikeEscapeRule));
        ctx.add_analyzer_rule(Arc::new(crate::rules::RegexBackslashRule));
        // Last, after type coercion: DELETE/UPDATE/TRUNCATE on backend tables.
        ctx.add_analyzer_rule(Arc::new(crate::dml::DmlRule));
        let root = Arc::new(RootCatalog::default());
        ctx.register_catalog(DEFAULT_CATALOG, root.clone());
        let engine = Engine {
            ctx,
            registry,
            root,
            catalogs: RwLock::new(Default::default()),
            factory: DatabaseFactory::with_builtin(),
            default_backend: RwLock::new(String::new()),
        };
        // Cannot fail: the name is valid and nothing is attached yet.
        let _ = engine.attach_backend(DEFAULT_BACKEND, Arc::new(MemoryBackend::new()));
        let _ = engine.set_default_backend(DEFAULT_BACKEND);
        engine
    }

    /// The DataFusion context (for registering functions, files, …).
    pub fn context(&self) -> &SessionContext {
        &self.ctx
    }

    /// The backend factory.
    pub fn factory(&self) -> &DatabaseFactory {
        &self.factory
    }

    /// Rows INSERT statements have read and written (for progress and summaries).
    pub fn write_progress(&self) -> &crate::table::WriteProgress {
        &self.registry.progress
    }

    /// The registry that holds [`Engine::write_progress`], for a task that outlives a borrow.
    pub fn write_progress_handle(&self) -> Arc<BackendRegistry> {
        self.registry.clone()
    }

    /// The name of the backend unqualified table names refer to.
    pub fn default_backend(&self) -> String {
        self.default_backend.read().clone()
    }

    /// The backend factory (register more kinds here before attaching).
    pub fn factory_mut(&mut self) -> &mut DatabaseFactory {
        &mut self.factory
    }

    /// Turns pushdown on or off for this engine's session (`SET dataknobs.pushdown = …`).
    pub fn set_pushdown(&self, on: bool) {
        let state = self.ctx.state_ref();
        let mut state = state.write();
        if let Some(o) = state
            .config_mut()
            .options_mut()
            .extensions
            .get_mut::<DataknobsOptions>()
        {
            o.pushdown = on;
        }
    }

    /// Is pushdown on in this engine's session?
    pub fn pushdown(&self) -> bool {
        crate::options::pushdown(self.ctx.state_ref().read().config_options())
    }

    /// Attaches a backend from a URL (`memory://`, …) under `name`.
    pub async fn attach(&self, name: &str, url: &str) -> Result<()> {
        check_attach_name(name)?;
        let backend = self.factory.open(url).await?;
        self.attach_backend(name, backend)
    }

    /// Attaches a backend object under `name` (a catalog `name`, and `name.table` for its
    /// default schema).
    pub fn attach_backend(&self, name: &str, backend: Arc<dyn Backend>) -> Result<()> {
        check_attach_name(name)?;
        if self.registry.get(name).is_some() {
            return Err(Error::already_exists(format!(
                "a backend is already attached as '{name}'; detach it first or pick another name"
            )));
        }
        if let Some((url, store)) = backend.object_store() {
            let runtime = self.ctx.runtime_env();
            // The first attachment of a bucket serves its URL (COPY … TO 's3://bucket/…').
            if runtime.object_store_registry.get_store(&url).is_err() {
                runtime.register_object_store(&url, store);
            }
        }
        let catalog = Arc::new(BackendCatalog::new(name, backend.clone()));
        let default_schema = catalog.backend_schema(&backend.default_schema());
        self.registry.insert(name, backend);
        self.ctx.register_catalog(name, catalog.clone());
        self.root.set(name, default_schema);
        self.catalogs.write().insert(name.to_string(), catalog);
        Ok(())
    }

    /// Detaches a backend (its data stays where it is).
    pub fn detach(&self, name: &str) -> Result<()> {
        if *self.default_backend.read() == name {
            return Err(Error::query(format!(
                "'{name}' is the default backend; make another one the default first"
            )));
        }
        self.registry
            .remove(name)
            .ok_or_else(|| Error::not_found(format!("no backend is attached as '{name}'")))?;
        self.root.remove(name);
        self.catalogs.write().remove(name);
        // DataFusion has no way to remove a catalog: leave an empty one in its place.
        self.ctx.register_catalog(
            name,
            Arc::new(datafusion::catalog::MemoryCatalogProvider::new()),
        );
        Ok(())
    }

    /// Makes `name` the backend that unqualified table names refer to.
    pub fn set_default_backend(&self, name: &str) -> Result<()> {
        let catalog = self
            .catalogs
            .read()
            .get(name)
            .cloned()
            .ok_or_else(|| Error::not_found(format!("no backend is attached as '{name}'")))?;
        let backend = self
            .registry
            .get(name)
            .ok_or_else(|| Error::not_found(format!("no backend '{name}'")))?;
        self.root.set(
            DEFAULT_SCHEMA,
            catalog.backend_schema(&backend.default_schema()),
        );
        *self.default_backend.write() = name.to_string();
        Ok(())
    }

    /// The attached backends, by name.
    pub fn backends(&self) -> Vec<(String, Arc<dyn Backend>)> {
        self.registry.list()
    }

    /// The backend attached as `name`.
    pub fn backend(&self, name: &str) -> Option<Arc<dyn Backend>> {
        self.registry.get(name)
    }

    /// The record API of a table: `"t"`, `"name.t"` or `"name.schema.t"`.
    pub async fn database(&self, table: &str) -> Result<Arc<dyn Database>> {
        let reference = TableReference::parse_str(table);
        let (schema, name) = self.resolve(&reference)?;
        let (attached, schema_name, backend) = schema.target();
        backend.open(schema_name, &name).await?.ok_or_else(|| {
            Error::not_found(format!(
                "table '{attached}.{schema_name}.{name}' does not exist"
            ))
        })
    }

    /// Plans one SQL statement. Queries are lazy: the returned DataFrame runs when collected.
    /// DDL on backend tables runs now.
    pub async fn sql(&self, sql: &str) -> Result<DataFrame> {
        let state = self.ctx.state();
        let statement = crate::depth::parse(&state, sql)?;
        if let Some(batch) = self.show_statement(&statement).await? {
            return Ok(self.ctx.read_batch(batch)?);
        }
        let plan = state
            .statement_to_plan(statement)
            .await
            .map_err(|e| Error::from(e).map_message(user_names))?;
        self.run_plan(plan).await
    }

    /// `SHOW TABLES [IN backend]`, `SHOW COLUMNS FROM t` and `DESCRIBE t`, answered from the
    /// attached backends (see [`crate::describe`]); None for every other statement.
    async fn show_statement(
        &self,
        statement: &datafusion::sql::parser::Statement,
    ) -> Result<Option<RecordBatch>> {
        use datafusion::sql::parser::Statement as Df;
        use datafusion::sql::sqlparser::ast::Statement as S;
        let Df::Statement(s) = statement else {
            return Ok(None);
        };
        let parent = |o: &datafusion::sql::sqlparser::ast::ShowStatementOptions| {
            o.show_in
                .as_ref()
                .and_then(|i| i.parent_name.as_ref())
                .map(|n| n.to_string())
        };
        let plain = |o: &datafusion::sql::sqlparser::ast::ShowStatementOptions| {
            o.starts_with.is_none() && o.limit.is_none() && o.filter_position.is_none()
        };
        match s.as_ref() {
            S::ShowTables {
                show_options,
                history: false,
                terse: false,
                ..
            } if plain(show_options) => Ok(Some(
                self.list_tables(parent(show_options).as_deref()).await?,
            )),
            S::ShowColumns { show_options, .. } if plain(show_options) => {
                match parent(show_options) {
                    Some(t) => Ok(Some(self.describe(&t).await?)),
                    None => Ok(None),
                }
            }
            S::ExplainTable {
                table_name,
                hive_format: None,
                ..
            } => Ok(Some(self.describe(&table_name.to_string()).await?)),
            _ => Ok(None),
        }
    }

    /// Runs one statement to completion and returns its batches (then syncs backends that
    /// buffer writes).
    pub async fn execute(&self, sql: &str) -> Result<Vec<RecordBatch>> {
        let df = self.sql(sql).await?;
        let batches = df.collect().await?;
        self.sync().await?;
        Ok(batches)
    }

    /// A table as a DataFrame: the Rust builder API (`filter`, `select`, `sort`, `limit`, …).
    pub async fn table(&self, name: &str) -> Result<DataFrame> {
        Ok(self.ctx.table(name).await?)
    }

    /// Asks every backend to make buffered changes durable.
    pub async fn sync(&self) -> Result<()> {
        for (name, b) in self.registry.list() {
            b.sync()
                .await
                .map_err(|e| Error::new(e.kind(), format!("saving '{name}': {}", e.message())))?;
        }
        Ok(())
    }

    async fn run_plan(&self, plan: LogicalPlan) -> Result<DataFrame> {
        match &plan {
            LogicalPlan::Ddl(DdlStatement::CreateMemoryTable(cmd)) => {
                if let Some(target) = self.backend_target(&cmd.name)? {
                    return self.create_table(target, cmd).await;
                }
            }
            LogicalPlan::Ddl(DdlStatement::DropTable(cmd)) => {
                if let Some((schema, name)) = self.backend_target(&cmd.name)?
                    && !schema.has_overlay(&name)
                {
                    let (_, schema_name, backend) = schema.target();
                    backend
                        .drop_collection(schema_name, &name, cmd.if_exists)
                        .await?;
                    return self.count_frame(0);
                }
            }
            _ => {}
        }
        Ok(self.ctx.execute_logical_plan(plan).await?)
    }

    fn count_frame(&self, n: u64) -> Result<DataFrame> {
        let schema = Arc::new(Schema::new(vec![Field::new(
            "count",
            DataType::UInt64,
            false,
        )]));
        let batch = RecordBatch::try_new(schema, vec![Arc::new(UInt64Array::from(vec![n]))])?;
        Ok(self.ctx.read_batch(batch)?)
    }

    /// The backend schema a table reference names, if it names one of ours.
    fn resolve(&self, r: &TableReference) -> Result<(Arc<BackendSchema>, String)> {
        self.backend_target(r)?.ok_or_else(|| {
            Error::not_found(format!(
                "'{r}' does not name a table of an attached backend (attached: {})",
                self.registry
                    .list()
                    .into_iter()
                    .map(|(n, _)| n)
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })
    }

    fn backend_target(&self, r: &TableReference) -> Result<Option<(Arc<BackendSchema>, String)>> {
        let table = r.table().to_string();
        let schema = match r {
            TableReference::Bare { .. } => self.root.get(DEFAULT_SCHEMA),
            TableReference::Partial { schema, .. } => self.root.get(schema),
            TableReference::Full {
                catalog, schema, ..
            } => {
                if catalog.as_ref() == DEFAULT_CATALOG {
                    self.root.get(schema)
                } else {
                    self.catalogs
                        .read()
                        .get(catalog.as_ref())
                        .map(|c| c.backend_schema(schema))
                }
            }
        };
        Ok(schema.map(|s| (s, table)))
    }

    async fn create_table(
        &self,
        (schema, name): (Arc<BackendSchema>, String),
        cmd: &datafusion::logical_expr::CreateMemoryTable,
    ) -> Result<DataFrame> {
        let (attached, schema_name, backend) = schema.target();
        if !cmd.column_defaults.is_empty() {
            return Err(Error::unsupported(format!(
                "column DEFAULT values are not supported for backend tables ({attached}.{schema_name}.{name})"
            )));
        }
        let arrow_schema = Arc::new(cmd.input.schema().as_arrow().clone());
        let mut key = None;
        for c in cmd.constraints.iter() {
            match c {
                Constraint::PrimaryKey(cols) if cols.len() == 1 => {
                    key = Some(arrow_schema.field(cols[0]).name().clone());
                }
                Constraint::PrimaryKey(_) => {
                    return Err(Error::unsupported(
                        "composite primary keys are not supported; use one key column",
                    ));
                }
                Constraint::Unique(_) => {
                    return Err(Error::unsupported(
                        "UNIQUE constraints are not supported; use PRIMARY KEY on one column",
                    ));
                }
            }
        }
        let exists = backend.open(schema_name, &name).await?.is_some();
        if exists {
            if cmd.if_not_exists {
                return self.count_frame(0);
            }
            if cmd.or_replace {
                backend.drop_collection(schema_name, &name, true).await?;
            } else {
                return Err(Error::already_exists(format!(
                    "table '{attached}.{schema_name}.{name}' already exists"
                ))
                .with_backend(backend.kind().to_string()));
            }
        }
        let has_rows =
            !matches!(cmd.input.as_ref(), LogicalPlan::EmptyRelation(e) if !e.produce_one_row);
        // A CTAS without a PRIMARY KEY: the backend may pick one (a key-value store's key).
        let key = match key {
            None if has_rows => backend.ctas_key(&arrow_schema),
            k => k,
        };
        let spec = CollectionSpec {
            schema: arrow_schema,
            key,
            record_ids: false,
        };
        let db = backend
            .create_collection(schema_name, &name, spec, false)
            .await?;
        if !has_rows {
            return self.count_frame(0);
        }
        let df = DataFrame::new(self.ctx.state(), cmd.input.as_ref().clone());
        let stream = df.execute_stream().await?;
        match db.insert(stream).await {
            Ok(n) => self.count_frame(n),
            Err(e) => {
                // CTAS is all or nothing: remove the half-made table.
                let _ = backend.drop_collection(schema_name, &name, true).await;
                Err(e)
            }
        }
    }
}

/// DataFusion's physical planner plus dataknobs' own logical nodes ([`crate::dml`]).
#[derive(Debug)]
struct DataknobsQueryPlanner;

#[async_trait::async_trait]
impl QueryPlanner for DataknobsQueryPlanner {
    async fn create_physical_plan(
        &self,
        logical_plan: &LogicalPlan,
        session: &dyn datafusion::catalog::Session,
    ) -> datafusion::error::Result<Arc<dyn datafusion::physical_plan::ExecutionPlan>> {
        DefaultPhysicalPlanner::with_extension_planners(vec![Arc::new(crate::dml::DmlPlanner)])
            .create_physical_plan(logical_plan, session)
            .await
    }
}

impl Default for Engine {
    fn default() -> Self {
        Self::new()
    }
}

fn check_attach_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !name.starts_with(|c: char| c.is_ascii_digit());
    if !ok {
        // A URL given where the name goes must not be echoed (it may hold a password).
        let shown = if name.contains(':') || name.contains('@') {
            crate::config::redact_url(name)
        } else {
            name.to_string()
        };
        return Err(Error::config(format!(
            "invalid backend name '{shown}': use lower-case letters, digits and _, starting with a letter"
        )));
    }
    if name == DEFAULT_CATALOG || name == DEFAULT_SCHEMA || name == "information_schema" {
        return Err(Error::config(format!(
            "'{name}' is reserved; pick another backend name"
        )));
    }
    Ok(())
}

/// A planner message with tables named as users write them: the engine's own catalog
/// (`dataknobs.public.t`, `dataknobs.pg.t`) is how DataFusion resolves `t` and `pg.t`, not a
/// name anyone typed.
pub fn user_names(message: &str) -> String {
    let public = format!("{DEFAULT_CATALOG}.{DEFAULT_SCHEMA}.");
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(at) = rest.find(DEFAULT_CATALOG) {
        let starts_word = rest[..at]
            .chars()
            .next_back()
            .is_none_or(|c| !(c.is_alphanumeric() || c == '_' || c == '.'));
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        if starts_word && tail.starts_with(&public) {
            rest = &tail[public.len()..];
        } else if starts_word && tail[DEFAULT_CATALOG.len()..].starts_with('.') {
            rest = &tail[DEFAULT_CATALOG.len() + 1..];
        } else {
            out.push_str(DEFAULT_CATALOG);
            rest = &tail[DEFAULT_CATALOG.len()..];
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod name_tests {
    use super::user_names;

    #[test]
    fn the_engine_catalog_is_dropped_from_messages() {
        assert_eq!(
            user_names("table 'dataknobs.public.orders' not found"),
            "table 'orders' not found"
        );
        assert_eq!(
            user_names("table 'dataknobs.pg.orders' not found"),
            "table 'pg.orders' not found"
        );
        assert_eq!(
            user_names("no field mydataknobs.x in dataknobs"),
            "no field mydataknobs.x in dataknobs"
        );
    }
}
