//! INSERT's sink into a collection, and a wrapper that names what a failing stream was doing.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::datasource::sink::DataSink;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, ExecutionPlanProperties, PlanProperties,
};
use futures::TryStreamExt;

use super::BackendRegistry;
use crate::database::Location;

/// Streams inserted rows into a backend collection.
#[derive(Debug)]
pub(super) struct DatabaseSink {
    pub(super) location: Location,
    pub(super) schema: SchemaRef,
}

impl DisplayAs for DatabaseSink {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "DataknobsSink: table={}", self.location)
    }
}

#[async_trait]
impl DataSink for DatabaseSink {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    async fn write_all(
        &self,
        data: SendableRecordBatchStream,
        context: &Arc<TaskContext>,
    ) -> DfResult<u64> {
        let registry = BackendRegistry::of(context)?;
        let db = registry
            .open(
                &self.location.attached,
                &self.location.schema,
                &self.location.collection,
            )
            .await?;
        // Count the rows as the backend pulls them (the prompt's progress and summary).
        let read = Arc::new(AtomicU64::new(0));
        let counted = {
            let (read, registry) = (read.clone(), registry.clone());
            let schema = data.schema();
            Box::pin(RecordBatchStreamAdapter::new(
                schema,
                data.inspect_ok(move |b| {
                    let n = b.num_rows() as u64;
                    read.fetch_add(n, Ordering::Relaxed);
                    registry.progress.read.fetch_add(n, Ordering::Relaxed);
                }),
            ))
        };
        let result = db.insert(counted).await;
        let rows = read.load(Ordering::Relaxed);
        let target = self.location.to_string();
        match &result {
            Ok(n) => registry
                .progress
                .record(target, rows, *n, rows.saturating_sub(*n)),
            Err(_) => registry.progress.record(target, rows, 0, rows),
        }
        result.map_err(|e| {
            let text = e.to_string();
            // DataFusion's NOT NULL check names the column by position only.
            match not_null_column(&text).and_then(|i| self.schema.fields().get(i)) {
                Some(field) => crate::Error::query(format!(
                    "INSERT into {}: a row gives NULL to column '{}', which is NOT NULL",
                    self.location,
                    field.name()
                ))
                .into(),
                None => e.into(),
            }
        })
    }
}

/// Rows INSERT sinks have read and written since the last [`WriteProgress::take`], per
/// target table: the prompt shows the rows read while a statement runs and a summary after.
#[derive(Debug, Default)]
pub struct WriteProgress {
    read: AtomicU64,
    targets: parking_lot::Mutex<Vec<TargetCount>>,
}

/// What one INSERT did to one table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetCount {
    pub target: String,
    pub read: u64,
    pub written: u64,
    pub failed: u64,
}

impl WriteProgress {
    /// Rows read by every sink so far (since the last take).
    pub fn rows_read(&self) -> u64 {
        self.read.load(Ordering::Relaxed)
    }

    /// The counts per target since the last take, and a fresh start.
    pub fn take(&self) -> Vec<TargetCount> {
        self.read.store(0, Ordering::Relaxed);
        std::mem::take(&mut *self.targets.lock())
    }

    fn record(&self, target: String, read: u64, written: u64, failed: u64) {
        let mut targets = self.targets.lock();
        match targets.iter_mut().find(|t| t.target == target) {
            Some(t) => {
                t.read += read;
                t.written += written;
                t.failed += failed;
            }
            None => targets.push(TargetCount {
                target,
                read,
                written,
                failed,
            }),
        }
    }
}

/// The column position in DataFusion's "Invalid batch column at '3' has null but schema
/// specifies non-nullable" message.
fn not_null_column(message: &str) -> Option<usize> {
    let rest = message.split("Invalid batch column at '").nth(1)?;
    if !rest.contains("non-nullable") {
        return None;
    }
    rest.split('\'').next()?.parse().ok()
}

/// Wraps a plan so that errors from its streams say what was being done (e.g. which file was
/// being read): DataFusion's file readers report the line but not the file.
#[derive(Debug)]
pub struct ErrorContextExec {
    inner: Arc<dyn ExecutionPlan>,
    context: String,
    /// A context per output partition (e.g. the files it reads); `context` where empty.
    partitions: Vec<String>,
}

impl ErrorContextExec {
    pub fn new(inner: Arc<dyn ExecutionPlan>, context: String) -> Self {
        ErrorContextExec {
            inner,
            context,
            partitions: Vec::new(),
        }
    }

    /// Errors of output partition `i` say `partitions[i]`; EXPLAIN shows `context`.
    pub fn per_partition(
        inner: Arc<dyn ExecutionPlan>,
        context: String,
        partitions: Vec<String>,
    ) -> Self {
        ErrorContextExec {
            inner,
            context,
            partitions,
        }
    }
}

impl DisplayAs for ErrorContextExec {
    fn fmt_as(&self, t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        match t {
            DisplayFormatType::TreeRender => write!(f, "{}", self.context),
            _ => write!(f, "ErrorContextExec: {}", self.context),
        }
    }
}

impl ExecutionPlan for ErrorContextExec {
    fn name(&self) -> &str {
        "ErrorContextExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        self.inner.properties()
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.inner]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> DfResult<TreeNodeRecursion>,
    ) -> DfResult<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn maintains_input_order(&self) -> Vec<bool> {
        vec![true]
    }

    fn with_new_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        match (children.pop(), children.is_empty()) {
            (Some(inner), true) => {
                // A new child may partition differently: keep per-partition names only
                // while the partition count is unchanged.
                let partitions = if inner.output_partitioning().partition_count()
                    == self.inner.output_partitioning().partition_count()
                {
                    self.partitions.clone()
                } else {
                    Vec::new()
                };
                Ok(Arc::new(ErrorContextExec::per_partition(
                    inner,
                    self.context.clone(),
                    partitions,
                )))
            }
            _ => Err(DataFusionError::Internal(
                "ErrorContextExec takes one child".into(),
            )),
        }
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> DfResult<SendableRecordBatchStream> {
        let what = self
            .partitions
            .get(partition)
            .unwrap_or(&self.context)
            .clone();
        let stream = self
            .inner
            .execute(partition, context)
            .map_err(|e| DataFusionError::Context(what.clone(), Box::new(e)))?;
        let schema = stream.schema();
        let mapped = stream.map_err(move |e| DataFusionError::Context(what.clone(), Box::new(e)));
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, mapped)))
    }
}
