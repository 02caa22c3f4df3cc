//! SQL → DataFusion logical plan → per-batch operators. DataFusion plans and optimizes the query
//! once (type coercion, constant folding, function resolution); the stateless part is then
//! compiled into physical expressions that run on every changelog batch, carrying the row kinds
//! through and applying the changelog rules for filters. `UNION ALL` makes one branch per
//! `SELECT`; each branch reads one input table and the branches' results are merged in arrival
//! order. A stateful node — a GROUP BY (also `SELECT DISTINCT` and `UNION`, which the optimizer
//! plans as groupings), Flink's deduplication and Top-N (a filter on a `ROW_NUMBER()` window), a
//! regular join (two inputs, its left and right side) — becomes a [`StatefulSpec`] over the rows
//! of the nodes under it, followed by the stateless steps over its result (HAVING, the select
//! list); its state lives in an operator the runtime instantiates from the spec, one per node. The
//! planner follows each node's unique keys (a table's PRIMARY KEY, a GROUP BY's key, a join's, a
//! Top-N's), which a keyed sink needs. `NOT IN (sub-query)`, other OVER windows and LIMIT over an
//! updating result are not built yet: such queries are rejected at planning with a clear error.

mod aggregate;
mod insert;
mod join;
mod lookup;
mod rank;
mod table;

use std::sync::Arc;

use datafusion::arrow::array::{AsArray, RecordBatch, RecordBatchOptions};
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::common::{Column, DFSchema};
use datafusion::execution::context::SessionState;
use datafusion::logical_expr::{Expr, ExprSchemable, FetchType, LogicalPlan, Projection, SkipType};
use datafusion::physical_expr::PhysicalExpr;

pub use insert::{check_sink_key, insert_target, plan_insert, PlannedInsert, SinkTarget};
pub use table::{computed_columns, ChangelogTableProvider};

use crate::changelog::{filter_changes, ChangeBatch, ChangelogMode, Event, Retractions};
use crate::error::{Error, Result};
use crate::operators::{Operator, StatefulSpec};

#[derive(Debug, Clone)]
enum Step {
    /// Keep the columns at these indices (the table scan's projection).
    Select(Vec<usize>),
    Filter(Arc<dyn PhysicalExpr>),
    Project(Vec<Arc<dyn PhysicalExpr>>, SchemaRef),
    /// The same columns under the schema of the `UNION ALL` the branch feeds (its first branch's
    /// names, nullable where any branch is).
    Rename(SchemaRef),
}

/// Stateless steps over rows that are no changelog: those a lookup join finds in its table.
#[derive(Debug)]
pub struct RowSteps {
    steps: Vec<Step>,
    schema: SchemaRef,
}

impl RowSteps {
    fn new(steps: Vec<Step>, schema: SchemaRef) -> Self {
        RowSteps { steps, schema }
    }

    /// The rows the steps give, of [`RowSteps::schema`].
    pub fn apply(&self, rows: &RecordBatch) -> Result<RecordBatch> {
        let out = run_steps(&self.steps, &ChangeBatch::inserts(rows.clone()), Retractions::WholeRows)?;
        // The steps stop at the first empty result, which still has the columns of that point.
        if out.is_empty() {
            return Ok(RecordBatch::new_empty(self.schema.clone()));
        }
        Ok(out.rows().clone())
    }

    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }
}

/// One `SELECT … FROM table` of a query: the steps that turn a batch of the table into rows of the
/// query's result. A query without `UNION ALL` has one branch; each branch of a union has one.
#[derive(Debug)]
struct Branch {
    /// Index into [`CompiledQuery::inputs`].
    input: usize,
    steps: Vec<Step>,
    /// `LIMIT n` inside this branch of a union: the branch is done after n rows.
    limit: Option<usize>,
    /// Sets of the branch's columns that are each a unique key of its rows (its table's PRIMARY
    /// KEY, as far as the steps keep it).
    unique_keys: Vec<Vec<usize>>,
}

/// A query as a tree: stateless branches over the inputs at the leaves, stateful operators (a
/// GROUP BY) above them, each followed by the stateless steps over its result.
#[derive(Debug)]
enum Node {
    /// Branches whose results are merged in arrival order.
    Branches(Vec<Branch>),
    /// A stateful operator ([`CompiledQuery::stateful`]`[index]`) over the rows of `inputs` (its
    /// input i is `inputs[i]`), then `steps`.
    Stateful {
        inputs: Vec<Node>,
        /// The schema of the rows each of `inputs` gives.
        input_schemas: Vec<SchemaRef>,
        index: usize,
        steps: Vec<Step>,
        /// Sets of the result's columns that are each a unique key of it (a GROUP BY's key, a
        /// join's, as far as the steps keep them), smallest first; empty when there is none or
        /// the steps dropped or computed over a column of each.
        unique_keys: Vec<Vec<usize>>,
        /// The operator passes its input's retractions on as they are (a LEFT lookup join), so
        /// the steps after it treat them as the input's; otherwise they carry whole old rows.
        passes_retractions: bool,
    },
    /// A `UNION ALL` with a stateful branch.
    Union(Vec<Node>),
}

impl Node {
    fn push_step(&mut self, step: &Step) {
        match self {
            Node::Branches(branches) => branches.iter_mut().for_each(|b| b.steps.push(step.clone())),
            Node::Stateful { steps, .. } => steps.push(step.clone()),
            Node::Union(children) => children.iter_mut().for_each(|c| c.push_step(step)),
        }
    }

    /// The unique keys of the node's rows: a single branch's, a stateful node's; none for a
    /// union, whose branches may give the same row.
    fn unique_keys(&self) -> &[Vec<usize>] {
        match self {
            Node::Branches(branches) if branches.len() == 1 => &branches[0].unique_keys,
            Node::Stateful { unique_keys, .. } => unique_keys,
            _ => &[],
        }
    }

    /// Follows the unique keys through a step that moves or drops columns: `position` is where
    /// an input column ends up, if it is kept as it is. A key with a column not kept is lost.
    fn map_unique_keys(&mut self, position: impl Fn(usize) -> Option<usize>) {
        let map = |keys: &mut Vec<Vec<usize>>| {
            *keys = keys.drain(..).filter_map(|key| key.iter().map(|c| position(*c)).collect()).collect();
        };
        match self {
            Node::Branches(branches) => branches.iter_mut().for_each(|b| map(&mut b.unique_keys)),
            Node::Stateful { unique_keys, .. } => map(unique_keys),
            Node::Union(_) => {}
        }
    }

    fn has_limit(&self) -> bool {
        match self {
            Node::Branches(branches) => branches.iter().any(|b| b.limit.is_some()),
            Node::Stateful { inputs, .. } => inputs.iter().any(Node::has_limit),
            Node::Union(children) => children.iter().any(Node::has_limit),
        }
    }

    /// The changes of the query's rows for one batch of input `input`, in parts (no limits
    /// apply: a query with a stateful part has none).
    fn run(
        &self,
        input: usize,
        batch: &ChangeBatch,
        retractions: Retractions,
        stateful: &mut [Box<dyn Operator>],
        parts: &mut Vec<ChangeBatch>,
    ) -> Result<()> {
        match self {
            Node::Branches(branches) => {
                for branch in branches.iter().filter(|b| b.input == input) {
                    let out = run_steps(&branch.steps, batch, retractions)?;
                    if !out.is_empty() {
                        parts.push(out);
                    }
                }
            }
            Node::Stateful { inputs, input_schemas, index, steps, passes_retractions, .. } => {
                for (side, (child, schema)) in inputs.iter().zip(input_schemas).enumerate() {
                    let mut below = Vec::new();
                    child.run(input, batch, retractions, stateful, &mut below)?;
                    if below.is_empty() {
                        continue;
                    }
                    let rows = if below.len() == 1 { below.remove(0) } else { ChangeBatch::concat(schema, &below)? };
                    let mut out = Vec::new();
                    stateful
                        .get_mut(*index)
                        .ok_or_else(|| Error::internal("a query ran without the state of one of its operators"))?
                        .process(side, Event::changes(rows), &mut out)?;
                    for event in out {
                        let Event::Changes { changes, .. } = event else {
                            return Err(Error::internal(
                                "a query's stateful operator gave an event other than changes",
                            ));
                        };
                        // What a stateful operator gives carries whole old rows, unless it passes
                        // its input's on.
                        let carried = if *passes_retractions { retractions } else { Retractions::WholeRows };
                        let out = run_steps(steps, &changes, carried)?;
                        if !out.is_empty() {
                            parts.push(out);
                        }
                    }
                }
            }
            Node::Union(children) => {
                for child in children {
                    child.run(input, batch, retractions, stateful, parts)?;
                }
            }
        }
        Ok(())
    }

    /// The changelog of the node's result, given its inputs' changelogs and what their
    /// retractions carry.
    fn changelog(&self, query: &CompiledQuery, modes: &[ChangelogMode]) -> Result<ChangelogMode> {
        match self {
            Node::Branches(branches) => Ok(merged_changelog(branches.iter().map(|b| modes[b.input]))),
            Node::Union(children) => {
                let modes = children.iter().map(|c| c.changelog(query, modes)).collect::<Result<Vec<_>>>()?;
                Ok(merged_changelog(modes.into_iter()))
            }
            Node::Stateful { inputs, index, passes_retractions, .. } => {
                let spec = &query.stateful[*index];
                let below = inputs.iter().map(|c| c.changelog(query, modes)).collect::<Result<Vec<_>>>()?;
                let mut read = Vec::new();
                self.inputs(&mut read);
                // A LEFT lookup join keeps a retraction's key whatever it finds: key-only
                // retractions pass through it to a keyed sink.
                if *passes_retractions {
                    read.clear();
                }
                for i in read {
                    if modes[i] == ChangelogMode::Upsert || query.retractions[i] == Retractions::MaybeKeyOnly {
                        let lookup = if matches!(spec, StatefulSpec::Lookup(_)) {
                            "; or make it a LEFT JOIN, which passes a retraction on with its key whatever the \
                             lookup finds (an INNER JOIN would drop the ones whose lookup key is unknown)"
                        } else {
                            ""
                        };
                        return Err(Error::user(format!(
                            "{} over table `{}` needs the whole old row of every update and delete, which its \
                             source does not send (an upsert changelog, or retractions with the key only); for \
                             postgres-cdc set REPLICA IDENTITY FULL on the table and 'changelog-mode' = 'all'{lookup}",
                            spec.construct(),
                            query.inputs[i]
                        )));
                    }
                }
                Ok(spec.changelog(&below))
            }
        }
    }

    /// The inputs the node reads.
    fn inputs(&self, out: &mut Vec<usize>) {
        match self {
            Node::Branches(branches) => out.extend(branches.iter().map(|b| b.input)),
            Node::Stateful { inputs, .. } => inputs.iter().for_each(|c| c.inputs(out)),
            Node::Union(children) => children.iter().for_each(|c| c.inputs(out)),
        }
    }
}

/// A query over changelog tables, compiled to run batch by batch: each input table's batches go
/// through the branches that read it, then through the stateful operators above them; what comes
/// out is the query's result, in arrival order.
#[derive(Debug)]
pub struct CompiledQuery {
    /// The tables the query reads, each once, in the order the query names them. A table read by
    /// several branches of a `UNION ALL` is still one input (one source, one position).
    pub inputs: Vec<String>,
    root: Node,
    /// The query's stateful operators, in the order of the plan (their state's names follow it).
    stateful: Vec<StatefulSpec>,
    /// Per stateful operator, a fingerprint of the computation its state belongs to.
    fingerprints: Vec<u64>,
    /// Schema of the batches [`CompiledQuery::apply`] returns.
    pub output_schema: SchemaRef,
    /// `LIMIT n` over the whole result: the query is done after n rows.
    pub limit: Option<usize>,
    /// What each input's retractions carry, which filters must respect.
    retractions: Vec<Retractions>,
    /// How long stateful operators keep state no change touched (`table.exec.state.ttl`).
    pub state_ttl: Option<std::time::Duration>,
}

/// How many more rows each limited branch of a query may give, and the query as a whole; kept
/// by whoever runs the query.
#[derive(Debug, Clone)]
pub struct Limits {
    branches: Vec<Option<usize>>,
    total: Option<usize>,
}

impl Limits {
    /// Nothing more can come out: the query's limit, or every branch's, is reached.
    pub fn exhausted(&self) -> bool {
        self.total == Some(0) || (!self.branches.is_empty() && self.branches.iter().all(|b| *b == Some(0)))
    }
}

impl CompiledQuery {
    /// Compiles an optimized logical plan. Fails for plans that read no table or need what is
    /// not built.
    pub fn compile(state: &SessionState, plan: &LogicalPlan) -> Result<Self> {
        let mut compiler = Compiler { state, inputs: Vec::new(), stateful: Vec::new(), fingerprints: Vec::new() };
        let mut limit = None;
        let root = compiler.node(plan, &mut limit)?;
        if limit.is_some() && !matches!(root, Node::Branches(_)) {
            return Err(Error::user(
                "LIMIT over the result of a GROUP BY (an updating result) is not supported, nor over a Top-N's; for \
                 the first rows by an order use Flink's Top-N: SELECT … FROM (SELECT *, ROW_NUMBER() OVER (ORDER BY …) \
                 AS rn FROM …) WHERE rn <= N",
            ));
        }
        let retractions = vec![Retractions::WholeRows; compiler.inputs.len()];
        Ok(CompiledQuery {
            inputs: compiler.inputs,
            root,
            stateful: compiler.stateful,
            fingerprints: compiler.fingerprints,
            output_schema: Arc::new(plan.schema().as_arrow().clone()),
            limit,
            retractions,
            state_ttl: None,
        })
    }

    /// Tells the query what an input's retractions carry (whole rows unless told otherwise).
    pub fn set_retractions(&mut self, input: usize, retractions: Retractions) {
        if let Some(r) = self.retractions.get_mut(input) {
            *r = retractions;
        }
    }

    /// The query's stateful operators, each run by an operator that keeps its state
    /// ([`StatefulSpec::instantiate`]).
    pub fn stateful(&self) -> &[StatefulSpec] {
        &self.stateful
    }

    /// The names of the stateful operators' state in checkpoints: the construct, its place in the
    /// plan and a fingerprint of the computation (`query GROUP BY 1 (4f2a…)`), so that a job file
    /// whose stateful node, or anything under it, changed does not take the old state for its own.
    pub fn state_names(&self) -> Vec<String> {
        self.stateful
            .iter()
            .zip(&self.fingerprints)
            .enumerate()
            .map(|(i, (spec, fingerprint))| format!("query {} {} ({fingerprint:016x})", spec.construct(), i + 1))
            .collect()
    }

    /// Puts Flink's upsert materializer over the result, by the PRIMARY KEY of `sink`, whose
    /// persisted columns the result's are.
    pub fn materialize_upserts(&mut self, sink: &crate::sql::TableSpec) -> Result<()> {
        if self.has_limit() {
            return Err(Error::user(
                "a LIMIT in a query whose rows need an upsert materializer before the sink is not supported",
            ));
        }
        let columns: Vec<&str> = sink.persisted_columns().map(|c| c.name.as_str()).collect();
        let key = sink
            .primary_key
            .iter()
            .map(|k| columns.iter().position(|c| c == k))
            .collect::<Option<Vec<usize>>>()
            .ok_or_else(|| Error::internal("a sink's PRIMARY KEY column is not one of its columns"))?;
        let schema = self.output_schema.clone();
        let text = format!("upsert materializer by {key:?} over {schema:?}");
        self.stateful.push(StatefulSpec::Materialize(Arc::new(crate::operators::MaterializeSpec {
            key: key.clone(),
            schema: schema.clone(),
        })));
        self.fingerprints.push(crate::changelog::fnv1a64(text.as_bytes()));
        let below = std::mem::replace(&mut self.root, Node::Branches(Vec::new()));
        self.root = Node::Stateful {
            inputs: vec![below],
            input_schemas: vec![schema],
            index: self.stateful.len() - 1,
            steps: Vec::new(),
            unique_keys: vec![key],
            passes_retractions: false,
        };
        Ok(())
    }

    /// What the query's lookup joins count, for the job's metrics.
    pub fn lookup_counters(&self) -> Vec<Arc<crate::operators::LookupCounters>> {
        self.stateful
            .iter()
            .filter_map(|s| match s {
                StatefulSpec::Lookup(spec) => Some(spec.counters.clone()),
                _ => None,
            })
            .collect()
    }

    /// Whether the query keeps state (a GROUP BY, `SELECT DISTINCT`, `UNION`, a join, a Top-N).
    pub fn is_stateful(&self) -> bool {
        self.stateful.iter().any(StatefulSpec::keeps_state)
    }

    /// The changelog of the query's result, given each input's changelog: the most general of the
    /// inputs' for a stateless query, an updating one after a GROUP BY. Fails when a GROUP BY
    /// would get retractions it cannot take.
    pub fn changelog(&self, modes: &[ChangelogMode]) -> Result<ChangelogMode> {
        if modes.len() != self.inputs.len() {
            return Err(Error::internal("a changelog for each input of the query is needed"));
        }
        self.root.changelog(self, modes)
    }

    /// Sets of the result's columns that are each a unique key of it, smallest first.
    pub fn unique_keys(&self) -> &[Vec<usize>] {
        self.root.unique_keys()
    }

    /// What the result's unique key is made of, for messages ("GROUP BY columns").
    pub fn key_columns(&self) -> &'static str {
        match &self.root {
            Node::Stateful { index, .. } => self.stateful[*index].key_columns(),
            _ => "GROUP BY or PARTITION BY columns",
        }
    }

    /// Whether any `LIMIT` bounds the query or one of its branches.
    pub fn has_limit(&self) -> bool {
        self.limit.is_some() || self.root.has_limit()
    }

    /// The limits of a fresh run of the query.
    pub fn limits(&self) -> Limits {
        let branches = match &self.root {
            Node::Branches(branches) => branches.iter().map(|b| b.limit).collect(),
            _ => Vec::new(),
        };
        Limits { branches, total: self.limit }
    }

    /// Whether an input can still contribute rows under `limits`.
    pub fn input_wanted(&self, input: usize, limits: &Limits) -> bool {
        match &self.root {
            Node::Branches(branches) => {
                limits.total != Some(0)
                    && branches.iter().zip(&limits.branches).any(|(b, l)| b.input == input && *l != Some(0))
            }
            _ => true,
        }
    }

    /// Runs the query on one batch of input `input`, within `limits` (which it counts down), with
    /// the state of its stateful operators (one per [`CompiledQuery::stateful`], in order).
    pub fn apply(
        &self,
        input: usize,
        batch: &ChangeBatch,
        limits: &mut Limits,
        stateful: &mut [Box<dyn Operator>],
    ) -> Result<ChangeBatch> {
        let retractions = self.retractions.get(input).copied().unwrap_or(Retractions::WholeRows);
        let mut parts = Vec::new();
        match &self.root {
            Node::Branches(branches) => {
                for (branch, left) in branches.iter().zip(limits.branches.iter_mut()) {
                    if branch.input != input || *left == Some(0) || limits.total == Some(0) {
                        continue;
                    }
                    let mut out = run_steps(&branch.steps, batch, retractions)?;
                    for limit in [left, &mut limits.total] {
                        if let Some(n) = limit.as_mut() {
                            out = out.head(*n);
                            *n = n.saturating_sub(out.num_rows());
                        }
                    }
                    if !out.is_empty() {
                        parts.push(out);
                    }
                }
            }
            root => root.run(input, batch, retractions, stateful, &mut parts)?,
        }
        match parts.len() {
            0 => Ok(ChangeBatch::inserts(RecordBatch::new_empty(self.output_schema.clone()))),
            1 => Ok(parts.remove(0)),
            _ => ChangeBatch::concat(&self.output_schema, &parts),
        }
    }
}

/// The changelog of a `UNION ALL` of inputs with these changelogs: the most general of them
/// (an upsert input without `-U` makes the union an upsert changelog).
pub fn merged_changelog(modes: impl Iterator<Item = ChangelogMode>) -> ChangelogMode {
    modes.fold(ChangelogMode::InsertOnly, |a, b| match (a, b) {
        (ChangelogMode::Upsert, _) | (_, ChangelogMode::Upsert) => ChangelogMode::Upsert,
        (ChangelogMode::All, _) | (_, ChangelogMode::All) => ChangelogMode::All,
        _ => ChangelogMode::InsertOnly,
    })
}

fn run_steps(steps: &[Step], batch: &ChangeBatch, retractions: Retractions) -> Result<ChangeBatch> {
    let mut current = batch.clone();
    for step in steps {
        if current.is_empty() {
            break;
        }
        current = match step {
            Step::Select(indices) => current.with_rows(current.rows().project(indices)?)?,
            Step::Filter(predicate) => {
                let result = predicate.evaluate(current.rows())?.into_array(current.num_rows())?;
                let passes = result.as_boolean_opt().ok_or_else(|| {
                    Error::internal(format!("filter gave {} instead of booleans", result.data_type()))
                })?;
                filter_changes(&current, passes, retractions)?
            }
            Step::Project(exprs, schema) => {
                let rows = current.rows();
                let columns = exprs
                    .iter()
                    .zip(schema.fields())
                    .map(|(e, field)| {
                        e.evaluate(rows)
                            .and_then(|v| v.into_array(rows.num_rows()))
                            .map_err(|err| Error::from(err).context(format!("computing column `{}`", field.name())))
                    })
                    .collect::<Result<Vec<_>>>()?;
                let options = RecordBatchOptions::new().with_row_count(Some(rows.num_rows()));
                current.with_rows(RecordBatch::try_new_with_options(schema.clone(), columns, &options)?)?
            }
            Step::Rename(schema) => {
                let options = RecordBatchOptions::new().with_row_count(Some(current.num_rows()));
                let columns = current.rows().columns().to_vec();
                current.with_rows(RecordBatch::try_new_with_options(schema.clone(), columns, &options)?)?
            }
        };
    }
    Ok(current)
}

/// Whether a plan reads any table (a query like `SELECT 1 + 1` does not).
pub fn reads_a_table(plan: &LogicalPlan) -> bool {
    let mut found = false;
    let _ = plan.apply(|node| {
        if matches!(node, LogicalPlan::TableScan(_)) {
            found = true;
        }
        Ok(TreeNodeRecursion::Continue)
    });
    found
}

/// Compiles a plan into [`Node`]s, collecting the tables it reads and its stateful operators.
struct Compiler<'a> {
    state: &'a SessionState,
    inputs: Vec<String>,
    stateful: Vec<StatefulSpec>,
    fingerprints: Vec<u64>,
}

impl Compiler<'_> {
    /// The node of `plan`; `limit` collects a limit over all of its rows.
    fn node(&mut self, plan: &LogicalPlan, limit: &mut Option<usize>) -> Result<Node> {
        match plan {
            LogicalPlan::TableScan(scan) if lookup::lookup_side(plan).is_some() => Err(Error::user(format!(
                "`{}` FOR SYSTEM_TIME AS OF is looked up by a JOIN: write … JOIN {} FOR SYSTEM_TIME AS OF s.proc ON \
                 s.k = {}.id, with the looked-up table on the right",
                scan.table_name.table(),
                scan.table_name.table(),
                scan.table_name.table()
            ))),
            LogicalPlan::TableScan(scan) => {
                if !scan.filters.is_empty() {
                    return Err(Error::internal("filters were pushed into a changelog table scan"));
                }
                let table = scan.table_name.table().to_string();
                let input = match self.inputs.iter().position(|t| *t == table) {
                    Some(i) => i,
                    None => {
                        self.inputs.push(table);
                        self.inputs.len() - 1
                    }
                };
                let steps = scan.projection.iter().map(|p| Step::Select(p.clone())).collect();
                if let Some(fetch) = scan.fetch {
                    *limit = Some(limit.map_or(fetch, |l| l.min(fetch)));
                }
                let primary_key = datafusion::datasource::source_as_provider(&scan.source)?
                    .downcast_ref::<ChangelogTableProvider>()
                    .and_then(|t| t.primary_key().map(<[usize]>::to_vec));
                let mut node = Node::Branches(vec![Branch {
                    input,
                    steps,
                    limit: None,
                    unique_keys: primary_key.into_iter().collect(),
                }]);
                if let Some(projection) = &scan.projection {
                    node.map_unique_keys(|c| projection.iter().position(|p| *p == c));
                }
                Ok(node)
            }
            LogicalPlan::Filter(filter) => {
                if let Some(top_n) = rank::recognise(filter)? {
                    // Nothing above chose the columns: the result shows the row number.
                    return self.top_n(top_n, true);
                }
                let mut node = self.node(&filter.input, limit)?;
                refuse_sub_query(&filter.predicate)?;
                let predicate = self.state.create_physical_expr(filter.predicate.clone(), filter.input.schema())?;
                node.push_step(&Step::Filter(predicate));
                Ok(node)
            }
            LogicalPlan::Projection(projection) => {
                let top_n = match projection.input.as_ref() {
                    LogicalPlan::Filter(filter) => rank::recognise(filter)?,
                    _ => None,
                };
                let mut node = match top_n {
                    Some(top_n) => {
                        let numbered = projection.expr.iter().any(|e| top_n.reads_number(e));
                        self.top_n(top_n, numbered)?
                    }
                    None => self.node(&projection.input, limit)?,
                };
                self.project(&mut node, projection)?;
                Ok(node)
            }
            LogicalPlan::SubqueryAlias(alias) => self.node(&alias.input, limit),
            LogicalPlan::Limit(l) => {
                if !matches!(l.get_skip_type()?, SkipType::Literal(0)) {
                    return Err(Error::user("OFFSET is not supported on a changelog stream"));
                }
                let node = self.node(&l.input, limit)?;
                if let FetchType::Literal(Some(fetch)) = l.get_fetch_type()? {
                    *limit = Some(limit.map_or(fetch, |x| x.min(fetch)));
                }
                Ok(node)
            }
            LogicalPlan::Union(union) => {
                let schema = Arc::new(union.schema.as_arrow().clone());
                let mut children = Vec::new();
                for child in &union.inputs {
                    // A limit inside one branch bounds that branch only.
                    let mut branch_limit = None;
                    let mut node = self.node(child, &mut branch_limit)?;
                    let nested = match &node {
                        Node::Branches(branches) => branches.len() > 1,
                        _ => true,
                    };
                    if nested && branch_limit.is_some() {
                        // It would bound each inner branch on its own, not the inner union's rows.
                        return Err(Error::user(
                            "a LIMIT over a UNION ALL that is itself one branch of a UNION ALL is not supported, nor \
                             one over a GROUP BY in a branch; put the LIMIT over the whole query or inside single \
                             SELECTs",
                        ));
                    }
                    let child_schema = child.schema().as_arrow();
                    let same_types = child_schema.fields().len() == schema.fields().len()
                        && child_schema
                            .fields()
                            .iter()
                            .zip(schema.fields())
                            .all(|(a, b)| same_type(a.data_type(), b.data_type()));
                    if !same_types {
                        return Err(Error::internal(format!(
                            "a UNION ALL branch gives {child_schema:?} where the union has {schema:?}"
                        )));
                    }
                    node.push_step(&Step::Rename(schema.clone()));
                    if let Node::Branches(branches) = &mut node {
                        for branch in branches {
                            branch.limit = match (branch.limit, branch_limit) {
                                (Some(a), Some(b)) => Some(a.min(b)),
                                (a, b) => a.or(b),
                            };
                        }
                    }
                    children.push(node);
                }
                // Stateless branches merge into one list of branches, as the runtime counts their
                // limits; a stateful one keeps the tree.
                if children.iter().all(|c| matches!(c, Node::Branches(_))) {
                    let branches = children
                        .into_iter()
                        .flat_map(|c| match c {
                            Node::Branches(b) => b,
                            _ => Vec::new(),
                        })
                        .collect();
                    Ok(Node::Branches(branches))
                } else if children.iter().any(Node::has_limit) {
                    // The branches' limits are counted where the query's root is branches only.
                    Err(Error::user(
                        "a LIMIT inside one branch of a UNION ALL whose other branches keep state (a GROUP BY, JOIN or \
                         Top-N) is not supported on a changelog stream",
                    ))
                } else {
                    Ok(Node::Union(children))
                }
            }
            LogicalPlan::Aggregate(aggregate) => {
                let mut below = None;
                let input = self.node(&aggregate.input, &mut below)?;
                if below.is_some() || input.has_limit() {
                    return Err(Error::user(
                        "a LIMIT under a GROUP BY, DISTINCT or UNION is not supported on a changelog stream: which rows \
                         it keeps would change as rows are retracted",
                    ));
                }
                let spec = StatefulSpec::Aggregate(Arc::new(aggregate::compile(self.state, aggregate)?));
                Ok(self.stateful(spec, vec![(input, aggregate.input.schema().as_arrow().clone())], plan))
            }
            LogicalPlan::Join(logical) if lookup::lookup_side(&logical.left).is_some() => Err(Error::user(
                "the table after FOR SYSTEM_TIME AS OF must be on the right of its JOIN, as in Flink: FROM s JOIN dim \
                 FOR SYSTEM_TIME AS OF s.proc ON …",
            )),
            LogicalPlan::Join(logical) if lookup::lookup_side(&logical.right).is_some() => {
                let provider =
                    lookup::lookup_side(&logical.right).ok_or_else(|| Error::internal("lookup side lost"))?;
                let mut below = None;
                let left = self.node(&logical.left, &mut below)?;
                if below.is_some() || left.has_limit() {
                    return Err(Error::user(
                        "a LIMIT under a lookup join is not supported on a changelog stream; put it over the whole query",
                    ));
                }
                let spec = lookup::compile(self.state, logical, provider, left.unique_keys())?;
                let input = (left, logical.left.schema().as_arrow().clone());
                Ok(self.stateful(StatefulSpec::Lookup(Arc::new(spec)), vec![input], plan))
            }
            LogicalPlan::Join(logical) => {
                let kind = join::kind(logical)?;
                let mut sides = Vec::with_capacity(2);
                for input in [&logical.left, &logical.right] {
                    let mut below = None;
                    let node = self.node(input, &mut below)?;
                    if below.is_some() || node.has_limit() {
                        return Err(Error::user(
                            "a LIMIT under a JOIN is not supported on a changelog stream: which rows it keeps would \
                             change as rows are retracted",
                        ));
                    }
                    sides.push((node, input.schema().as_arrow().clone()));
                }
                let keys = [sides[0].0.unique_keys(), sides[1].0.unique_keys()];
                let spec = join::compile(self.state, logical, kind, keys)?;
                Ok(self.stateful(StatefulSpec::Join(Arc::new(spec)), sides, plan))
            }
            LogicalPlan::Sort(_) => Err(Error::user("ORDER BY is not supported on a changelog stream")),
            LogicalPlan::Distinct(_) => Err(Error::internal("a DISTINCT the optimizer did not turn into a grouping")),
            // A window of Flink's deduplication or Top-N is planned at the filter above it.
            LogicalPlan::Window(window) => Err(rank::refusal(window)),
            LogicalPlan::EmptyRelation(_) | LogicalPlan::Values(_) => {
                Err(Error::user("an INSERT must read a table: SELECT … FROM <source table>"))
            }
            other => Err(Error::user(format!("{} is not supported on a changelog stream", other.display()))),
        }
    }
}

impl Compiler<'_> {
    /// Adds a projection's step to `node`, following the node's unique key through it.
    fn project(&self, node: &mut Node, projection: &Projection) -> Result<()> {
        projection.expr.iter().try_for_each(refuse_sub_query)?;
        let exprs = projection
            .expr
            .iter()
            .map(|e| self.state.create_physical_expr(e.clone(), projection.input.schema()))
            .collect::<datafusion::error::Result<Vec<_>>>()?;
        let schema = Arc::new(projection.schema.as_arrow().clone());
        node.map_unique_keys(|c| projected_position(&projection.expr, projection.input.schema(), c));
        node.push_step(&Step::Project(exprs, schema));
        Ok(())
    }

    /// The node of Flink's deduplication or Top-N: the rank operator over the window's input, then
    /// the projections between the window and the filter, then the filter's other conditions;
    /// `numbered` when the query's result shows the row number.
    fn top_n(&mut self, top_n: rank::TopN, numbered: bool) -> Result<Node> {
        let mut below = None;
        let input = self.node(&top_n.window.input, &mut below)?;
        if below.is_some() || input.has_limit() {
            return Err(Error::user(
                "a LIMIT under a ROW_NUMBER() OVER (…) is not supported on a changelog stream: which rows it keeps \
                 would change as rows are retracted",
            ));
        }
        let spec = StatefulSpec::Rank(Arc::new(top_n.compile(self.state, numbered)?));
        let what = LogicalPlan::Filter(top_n.filter.clone());
        let mut node = self.stateful(spec, vec![(input, top_n.window.input.schema().as_arrow().clone())], &what);
        for plan in top_n.between.iter().rev() {
            if let LogicalPlan::Projection(projection) = plan {
                self.project(&mut node, projection)?;
            }
        }
        if let Some(rest) = top_n.rest {
            node.push_step(&Step::Filter(self.state.create_physical_expr(rest, top_n.filter.input.schema())?));
        }
        Ok(node)
    }

    /// A stateful node of `spec` over `inputs` (each with the schema of its rows).
    /// A stateful node of `spec` over `inputs` (each with the schema of its rows), planned from
    /// `plan`: its text (the node and everything under it) is fingerprinted into the name of the
    /// node's state, so that a checkpoint's state is only restored into the same computation.
    fn stateful(
        &mut self,
        spec: StatefulSpec,
        inputs: Vec<(Node, datafusion::arrow::datatypes::Schema)>,
        plan: &LogicalPlan,
    ) -> Node {
        let unique_keys = spec.unique_keys();
        let passes_retractions = matches!(&spec, StatefulSpec::Lookup(l) if l.outer);
        let fingerprint = crate::changelog::fnv1a64(plan.display_indent_schema().to_string().as_bytes());
        self.stateful.push(spec);
        self.fingerprints.push(fingerprint);
        let (inputs, schemas) = inputs.into_iter().map(|(n, s)| (n, Arc::new(s))).unzip();
        Node::Stateful {
            inputs,
            input_schemas: schemas,
            index: self.stateful.len() - 1,
            steps: Vec::new(),
            unique_keys,
            passes_retractions,
        }
    }
}

/// Sub-queries the optimizer turned into joins are gone from expressions; one that is left (not
/// correlated with the outer query) would be run once by DataFusion, not kept current.
fn refuse_sub_query(e: &Expr) -> Result<()> {
    let sub_query = e.exists(|e| Ok(matches!(e, Expr::ScalarSubquery(_) | Expr::Exists(_) | Expr::InSubquery(_))))?;
    if sub_query {
        return Err(Error::user(
            "a sub-query that does not refer to the outer query's columns (`v > (SELECT AVG(v) FROM t2)`) is not \
             supported on a changelog stream; join its result instead: … CROSS JOIN (SELECT AVG(v) AS a FROM t2) s \
             WHERE v > s.a",
        ));
    }
    Ok(())
}

/// Where column `column` of a projection's input is in its output: an output that is the column
/// itself, perhaps renamed or cast (the casts a plan adds cannot merge two values into one).
fn projected_position(exprs: &[Expr], input: &DFSchema, column: usize) -> Option<usize> {
    exprs.iter().position(|e| column_of(e, input).is_some_and(|c| is_column(c, input, column)))
}

/// The column an expression over `schema` is, perhaps renamed or cast to a type that keeps its
/// values apart: a cast that could turn two values into one (`CAST(price AS INT)`, `CAST(ts AS
/// DATE)`, a `TRY_CAST` that makes failures NULL) is not the column any more, for unique keys.
fn column_of<'a>(mut e: &'a Expr, schema: &DFSchema) -> Option<&'a Column> {
    loop {
        match e {
            Expr::Alias(a) => e = &a.expr,
            Expr::Cast(c) => {
                let from = c.expr.get_type(schema).ok()?;
                if !crate::sql::types::implicit_cast_allowed(&from, c.field.data_type()) {
                    return None;
                }
                e = &c.expr;
            }
            Expr::TryCast(c) if c.expr.get_type(schema).ok()? == *c.field.data_type() => e = &c.expr,
            Expr::Column(c) => return Some(c),
            _ => return None,
        }
    }
}

/// Whether `c`, in an expression over `schema`, is its column `index`.
fn is_column(c: &Column, schema: &DFSchema, index: usize) -> bool {
    let (qualifier, field) = schema.qualified_field(index);
    c.name == *field.name() && (c.relation.is_none() || c.relation.as_ref() == qualifier)
}

/// Arrow's `DataType` equality also compares field names of nested types; sinks only care that
/// the values fit.
pub fn same_type(a: &DataType, b: &DataType) -> bool {
    a.equals_datatype(b)
}
