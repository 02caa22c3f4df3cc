//! `now()` / `current_timestamp` evaluated when a batch is processed, not when the query is planned.
//!
//! DataFusion's `now()` is `Stable` and its `simplify` turns it into the query start time, which
//! is right for a batch query but freezes the clock for a streaming job that is planned once and
//! runs for months. Flink evaluates NOW()/CURRENT_TIMESTAMP per record in streaming mode; this
//! replacement registers under the same name and alias so it shadows the built-in, is `Volatile`
//! so constant folding leaves it alone, and reads the clock on every invocation (once per batch).

use std::sync::{Arc, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use datafusion::arrow::datatypes::{DataType, Field, FieldRef, TimeUnit};
use datafusion::common::config::ConfigOptions;
use datafusion::common::{exec_datafusion_err, Result, ScalarValue};
use datafusion::logical_expr::scalar_doc_sections::DOC_SECTION_DATETIME;
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct NowFunc {
    signature: Signature,
    aliases: Vec<String>,
    /// The session time zone (`datafusion.execution.time_zone`), part of the return type exactly
    /// as in DataFusion's `now()` so replacing it changes no plan's schema.
    timezone: Option<Arc<str>>,
}

impl Default for NowFunc {
    fn default() -> Self {
        Self::new_with_config(&ConfigOptions::default())
    }
}

impl NowFunc {
    pub(crate) fn new_with_config(config: &ConfigOptions) -> Self {
        Self {
            signature: Signature::nullary(Volatility::Volatile),
            aliases: vec!["current_timestamp".to_string()],
            timezone: config.execution.time_zone.as_deref().map(Arc::from),
        }
    }
}

impl ScalarUDFImpl for NowFunc {
    fn name(&self) -> &str {
        "now"
    }

    fn aliases(&self) -> &[String] {
        &self.aliases
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn with_updated_config(&self, config: &ConfigOptions) -> Option<ScalarUDF> {
        Some(Self::new_with_config(config).into())
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Timestamp(TimeUnit::Nanosecond, self.timezone.clone()))
    }

    fn return_field_from_args(&self, _args: ReturnFieldArgs) -> Result<FieldRef> {
        Ok(Arc::new(Field::new(self.name(), self.return_type(&[])?, false)))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        // The planned type is authoritative: the value must match the schema the plan was built
        // with even if the session time zone changed since.
        let timezone = match args.return_field.data_type() {
            DataType::Timestamp(_, tz) => tz.clone(),
            _ => self.timezone.clone(),
        };
        let since_epoch = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_err(|e| exec_datafusion_err!("now: system clock is before 1970: {e}"))?;
        let nanos = i64::try_from(since_epoch.as_nanos())
            .map_err(|_| exec_datafusion_err!("now: system clock is past year 2262"))?;
        Ok(ColumnarValue::Scalar(ScalarValue::TimestampNanosecond(Some(nanos), timezone)))
    }

    fn documentation(&self) -> Option<&Documentation> {
        static DOC: OnceLock<Documentation> = OnceLock::new();
        Some(DOC.get_or_init(|| {
            Documentation::builder(
                DOC_SECTION_DATETIME,
                "Current timestamp, read when each batch is processed (Flink streaming semantics \
                 of NOW() / CURRENT_TIMESTAMP), in the session time zone.",
                "now()",
            )
            .with_alternative_syntax("current_timestamp")
            .build()
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Array, RecordBatch, TimestampNanosecondArray};
    use datafusion::physical_plan::collect;
    use datafusion::prelude::SessionContext;

    fn ctx() -> SessionContext {
        let ctx = SessionContext::new();
        for udf in crate::all() {
            ctx.register_udf(udf);
        }
        ctx
    }

    fn epoch_nanos() -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .ok()
            .and_then(|d| i64::try_from(d.as_nanos()).ok())
            .unwrap_or_default()
    }

    fn timestamp(batches: &[RecordBatch]) -> i64 {
        let col = batches[0].column(0);
        let ts = col.as_any().downcast_ref::<TimestampNanosecondArray>().expect("timestamp column");
        assert!(ts.is_valid(0));
        ts.value(0)
    }

    #[tokio::test]
    async fn builtin_now_is_folded_ours_is_not() -> Result<()> {
        // The built-in really is folded; otherwise the assertions below would prove nothing.
        let builtin =
            SessionContext::new().sql("SELECT now()").await?.into_optimized_plan()?.display_indent().to_string();
        assert!(builtin.contains("TimestampNanosecond("), "{builtin}");

        let ctx = ctx();
        for sql in [
            "SELECT now()",
            "SELECT NOW()",
            "SELECT CURRENT_TIMESTAMP",
            "SELECT current_timestamp()",
            "SELECT now() + INTERVAL '1' SECOND > now()",
        ] {
            let plan = ctx.sql(sql).await?.into_optimized_plan()?.display_indent().to_string();
            assert!(plan.contains("now()") || plan.contains("current_timestamp()"), "{sql}: {plan}");
            assert!(!plan.contains("TimestampNanosecond("), "{sql}: {plan}");
        }
        Ok(())
    }

    #[tokio::test]
    async fn same_type_as_builtin_and_follows_session_time_zone() -> Result<()> {
        let builtin = SessionContext::new().sql("SELECT now()").await?;
        let ours = ctx().sql("SELECT now()").await?;
        assert_eq!(builtin.schema().field(0).data_type(), ours.schema().field(0).data_type());
        assert_eq!(ours.schema().field(0).data_type(), &DataType::Timestamp(TimeUnit::Nanosecond, None));

        let ctx = ctx();
        ctx.sql("SET datafusion.execution.time_zone = '+02:00'").await?.collect().await?;
        let df = ctx.sql("SELECT CURRENT_TIMESTAMP").await?;
        assert_eq!(df.schema().field(0).data_type(), &DataType::Timestamp(TimeUnit::Nanosecond, Some("+02:00".into())));
        let plan = df.into_optimized_plan()?.display_indent().to_string();
        assert!(!plan.contains("TimestampNanosecond("), "{plan}");
        Ok(())
    }

    #[tokio::test]
    async fn physical_plan_reads_the_clock_on_every_execution() -> Result<()> {
        let ctx = ctx();
        let plan = ctx.sql("SELECT now()").await?.create_physical_plan().await?;
        let before = epoch_nanos();
        let first = timestamp(&collect(Arc::clone(&plan), ctx.task_ctx()).await?);
        std::thread::sleep(std::time::Duration::from_millis(5));
        let second = timestamp(&collect(plan, ctx.task_ctx()).await?);
        let after = epoch_nanos();
        assert!(before <= first && first < second && second <= after);
        Ok(())
    }
}
