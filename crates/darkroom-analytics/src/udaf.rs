//! `window_funnel`: the funnel search as a SQL aggregate, registered in every session.
//!
//! ```sql
//! window_funnel([modes,] window, ts, cond1, ..., condN)  -- the level reached, 0..N (UInt8)
//! ```
//!
//! - `modes`: an optional string literal, comma-separated: `strict_order`,
//!   `strict_deduplication`, `strict_increase` (combinable), or `any_order`.
//! - `window`: an interval literal (`INTERVAL '30 days'`; months are refused, they have no fixed
//!   length) or a number of seconds. With an integer `ts` column the number is in the column's
//!   own unit, as in ClickHouse.
//! - `ts`: a timestamp (seconds to microseconds; nanoseconds are rounded down to microseconds),
//!   a date, or an integer. Rows whose `ts` is NULL are skipped.
//! - `condK`: booleans; NULL counts as false. At most 32.
//!
//! Each group keeps its step events packed in 8 bytes each (rows matching no step are not kept,
//! except under `strict_order`, where they stop a chain), sorts them once when the result is
//! asked for, and makes one pass over them.

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Int64Array, ListArray, UInt8Array,
};
use datafusion::arrow::buffer::{BooleanBuffer, NullBuffer, OffsetBuffer, ScalarBuffer};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, TimeUnit};
use datafusion::common::{Result, ScalarValue, exec_err, plan_err};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::utils::AggregateOrderSensitivity;
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, EmitTo, GroupsAccumulator, Signature, Volatility,
};
use datafusion::physical_expr::expressions::Literal;

use crate::funnel::{self, MAX_STEPS, Mode};

/// The SQL name.
pub const NAME: &str = "window_funnel";

/// The aggregate, ready to register: `ctx.register_udaf(window_funnel())`.
pub fn window_funnel() -> AggregateUDF {
    AggregateUDF::from(WindowFunnel {
        signature: Signature::user_defined(Volatility::Immutable),
    })
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct WindowFunnel {
    signature: Signature,
}

/// How the `ts` column becomes the `i64` the search compares.
#[derive(Debug, Clone, Copy)]
enum TimeScale {
    /// Integers (and timestamps) as they are.
    Raw,
    /// Nanoseconds, rounded down to microseconds.
    NanosToMicros,
    /// Dates, as seconds.
    DaysToSeconds,
}

/// What the literal arguments say.
#[derive(Debug, Clone, Copy)]
struct Setup {
    mode: Mode,
    /// In the unit of the scaled `ts`.
    window: i64,
    /// The index of the `ts` argument (2 after a modes literal, else 1).
    ts_arg: usize,
    steps: usize,
    scale: TimeScale,
}

/// Units per second of a `ts` type after scaling (`None` for integers: the unit is theirs).
fn units_per_second(ts: &DataType) -> Result<(Option<i64>, TimeScale)> {
    Ok(match ts {
        DataType::Timestamp(TimeUnit::Second, _) => (Some(1), TimeScale::Raw),
        DataType::Timestamp(TimeUnit::Millisecond, _) => (Some(1_000), TimeScale::Raw),
        DataType::Timestamp(TimeUnit::Microsecond, _) => (Some(1_000_000), TimeScale::Raw),
        DataType::Timestamp(TimeUnit::Nanosecond, _) => (Some(1_000_000), TimeScale::NanosToMicros),
        DataType::Date32 => (Some(1), TimeScale::DaysToSeconds),
        DataType::Date64 => (Some(1_000), TimeScale::Raw),
        t if t.is_integer() => (None, TimeScale::Raw),
        other => {
            return plan_err!(
                "{NAME}: the time argument must be a timestamp, a date or an integer, not {other}"
            );
        }
    })
}

/// Whether the first argument is the modes string (then the window is the second).
fn leads_with_modes(types: &[DataType]) -> bool {
    matches!(
        types.first(),
        Some(DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8)
    )
}

fn literal(expr: &Arc<dyn datafusion::physical_expr::PhysicalExpr>) -> Option<&ScalarValue> {
    expr.downcast_ref::<Literal>().map(Literal::value)
}

/// The window in microseconds of an interval literal.
fn interval_micros(v: &ScalarValue) -> Result<Option<i64>> {
    Ok(match v {
        ScalarValue::IntervalYearMonth(Some(m)) if *m != 0 => {
            return plan_err!(
                "{NAME}: a window in months or years has no fixed length; give it in days \
                 (INTERVAL '30 days')"
            );
        }
        ScalarValue::IntervalYearMonth(Some(_)) => Some(0),
        ScalarValue::IntervalDayTime(Some(v)) => {
            Some(i64::from(v.days) * 86_400_000_000 + i64::from(v.milliseconds) * 1_000)
        }
        ScalarValue::IntervalMonthDayNano(Some(v)) => {
            if v.months != 0 {
                return plan_err!(
                    "{NAME}: a window in months or years has no fixed length; give it in days \
                     (INTERVAL '30 days')"
                );
            }
            Some(i64::from(v.days) * 86_400_000_000 + v.nanoseconds / 1_000)
        }
        _ => None,
    })
}

impl Setup {
    fn parse(
        exprs: &[Arc<dyn datafusion::physical_expr::PhysicalExpr>],
        types: &[DataType],
    ) -> Result<Self> {
        let has_mode = leads_with_modes(types);
        let mode = if has_mode {
            match exprs.first().and_then(literal) {
                Some(
                    ScalarValue::Utf8(Some(s))
                    | ScalarValue::Utf8View(Some(s))
                    | ScalarValue::LargeUtf8(Some(s)),
                ) => Mode::parse(s).map_err(|e| {
                    datafusion::error::DataFusionError::Plan(format!("{NAME}: {e}"))
                })?,
                _ => return plan_err!("{NAME}: the modes must be a string literal"),
            }
        } else {
            Mode::default()
        };
        let window_arg = usize::from(has_mode);
        let ts_arg = window_arg + 1;
        let steps = types.len().saturating_sub(ts_arg + 1);
        if steps == 0 {
            return plan_err!(
                "{NAME}([modes,] window, ts, cond1, ..., condN) needs at least one condition"
            );
        }
        if steps > MAX_STEPS {
            return plan_err!("{NAME}: at most {MAX_STEPS} steps, got {steps}");
        }
        let (per_second, scale) = units_per_second(&types[ts_arg])?;
        let Some(w) = exprs.get(window_arg).and_then(literal) else {
            return plan_err!(
                "{NAME}: the window must be a literal (INTERVAL '30 days' or seconds)"
            );
        };
        let window = if let Some(micros) = interval_micros(w)? {
            let Some(per_second) = per_second else {
                return plan_err!(
                    "{NAME}: an INTERVAL window needs a timestamp or date column; with an \
                     integer time column give the window as a number in the column's unit"
                );
            };
            // in the ts unit: micros * per_second / 1e6, without overflow for sane windows
            (i128::from(micros) * i128::from(per_second) / 1_000_000) as i64
        } else {
            let seconds = match w {
                ScalarValue::Float64(Some(f)) => *f,
                ScalarValue::Float32(Some(f)) => f64::from(*f),
                other => match other.cast_to(&DataType::Int64) {
                    Ok(ScalarValue::Int64(Some(i))) => i as f64,
                    _ => {
                        return plan_err!(
                            "{NAME}: the window must be an interval or a number of seconds, \
                             not {other}"
                        );
                    }
                },
            };
            (seconds * per_second.unwrap_or(1) as f64) as i64
        };
        if window < 0 {
            return plan_err!("{NAME}: the window cannot be negative");
        }
        Ok(Self {
            mode,
            window,
            ts_arg,
            steps,
            scale,
        })
    }

    fn from_args(args: &AccumulatorArgs<'_>) -> Result<Self> {
        let types: Vec<DataType> = args
            .expr_fields
            .iter()
            .map(|f| f.data_type().clone())
            .collect();
        Self::parse(args.exprs, &types)
    }

    /// The `ts` column as `i64` in the window's unit.
    fn times(&self, ts: &ArrayRef) -> Result<Int64Array> {
        let raw = datafusion::arrow::compute::cast(ts, &DataType::Int64)?;
        let raw = raw.as_primitive::<datafusion::arrow::datatypes::Int64Type>();
        Ok(match self.scale {
            TimeScale::Raw => raw.clone(),
            TimeScale::NanosToMicros => raw.unary(|v| v.div_euclid(1_000)),
            TimeScale::DaysToSeconds => raw.unary(|v| v * 86_400),
        })
    }

    /// Append each row's step events to its group's list.
    fn add_rows(
        &self,
        values: &[ArrayRef],
        filter: Option<&BooleanArray>,
        mut push: impl FnMut(usize, i64),
    ) -> Result<()> {
        let ts = self.times(&values[self.ts_arg])?;
        let conds: Vec<BooleanArray> = values[self.ts_arg + 1..]
            .iter()
            .map(|c| {
                let c = match c.data_type() {
                    DataType::Boolean => Arc::clone(c),
                    _ => datafusion::arrow::compute::cast(c, &DataType::Boolean)?,
                };
                // NULL counts as false
                Ok(match c.as_boolean().nulls() {
                    Some(n) => BooleanArray::new(c.as_boolean().values() & n.inner(), None),
                    None => c.as_boolean().clone(),
                })
            })
            .collect::<Result<_>>()?;
        // The rows that count: a time, and the aggregate's FILTER (if any) true.
        let mut keep: Option<BooleanBuffer> = ts.nulls().map(|n| n.inner().clone());
        if let Some(f) = filter {
            let pass = match f.nulls() {
                Some(n) => f.values() & n.inner(),
                None => f.values().clone(),
            };
            keep = Some(match keep {
                Some(k) => &k & &pass,
                None => pass,
            });
        }
        let times = ts.values();
        // Condition by condition, only the rows that match: most rows match one step or none.
        for (j, c) in conds.iter().enumerate() {
            let hits = match &keep {
                Some(k) => c.values() & k,
                None => c.values().clone(),
            };
            for row in hits.set_indices() {
                let t = times[row];
                let Some(p) = funnel::pack(t, (j + 1) as u8) else {
                    return out_of_range(t);
                };
                push(row, p);
            }
        }
        if self.mode.strict_order {
            // rows matching no step stop a chain: kept as step 0
            let mut any = BooleanBuffer::new_unset(ts.len());
            for c in &conds {
                any = &any | c.values();
            }
            let none = match &keep {
                Some(k) => &!&any & k,
                None => !&any,
            };
            for row in none.set_indices() {
                let t = times[row];
                let Some(p) = funnel::pack(t, 0) else {
                    return out_of_range(t);
                };
                push(row, p);
            }
        }
        Ok(())
    }

    fn level(&self, events: &mut [i64]) -> u8 {
        funnel::level(events, self.steps, self.window, self.mode)
    }
}

fn out_of_range(t: i64) -> Result<()> {
    exec_err!(
        "{NAME}: time value {t} is out of range (at most ±2^57 in the column's unit; \
         nanosecond timestamps are used as microseconds)"
    )
}

fn state_field(name: &str) -> FieldRef {
    Arc::new(Field::new(
        format!("{name}[events]"),
        DataType::List(Arc::new(Field::new_list_field(DataType::Int64, false))),
        true,
    ))
}

impl AggregateUDFImpl for WindowFunnel {
    fn name(&self) -> &str {
        NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        let ts_arg = usize::from(leads_with_modes(arg_types)) + 1;
        if arg_types.len() < ts_arg + 2 {
            return plan_err!(
                "{NAME}([modes,] window, ts, cond1, ..., condN): got {} arguments",
                arg_types.len()
            );
        }
        units_per_second(&arg_types[ts_arg])?;
        Ok(arg_types
            .iter()
            .enumerate()
            .map(|(i, t)| {
                if i > ts_arg {
                    DataType::Boolean
                } else {
                    t.clone()
                }
            })
            .collect())
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::UInt8)
    }

    fn is_nullable(&self) -> bool {
        false
    }

    fn order_sensitivity(&self) -> AggregateOrderSensitivity {
        AggregateOrderSensitivity::Insensitive
    }

    fn state_fields(&self, args: StateFieldsArgs<'_>) -> Result<Vec<FieldRef>> {
        Ok(vec![state_field(args.name)])
    }

    fn accumulator(&self, args: AccumulatorArgs<'_>) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(OneFunnel {
            setup: Setup::from_args(&args)?,
            events: Vec::new(),
            done: false,
        }))
    }

    fn groups_accumulator_supported(&self, _args: AccumulatorArgs<'_>) -> bool {
        true
    }

    fn create_groups_accumulator(
        &self,
        args: AccumulatorArgs<'_>,
    ) -> Result<Box<dyn GroupsAccumulator>> {
        Ok(Box::new(FunnelGroups {
            setup: Setup::from_args(&args)?,
            events: Vec::new(),
            done: Vec::new(),
            held: 0,
        }))
    }

    fn default_value(&self, _data_type: &DataType) -> Result<ScalarValue> {
        Ok(ScalarValue::UInt8(Some(0)))
    }
}

/// Lists of events as one `List<Int64>` array; a group known to have reached the last step
/// (`done`) is a NULL list.
fn to_list<L: AsRef<[i64]>>(lists: &[L], done: Option<&[bool]>) -> ArrayRef {
    let total: usize = lists.iter().map(|l| l.as_ref().len()).sum();
    let mut values = Vec::with_capacity(total);
    let mut offsets = Vec::with_capacity(lists.len() + 1);
    offsets.push(0i32);
    for l in lists {
        values.extend_from_slice(l.as_ref());
        offsets.push(values.len() as i32);
    }
    let nulls = done.map(|d| NullBuffer::from(d.iter().map(|done| !done).collect::<Vec<_>>()));
    Arc::new(ListArray::new(
        Arc::new(Field::new_list_field(DataType::Int64, false)),
        OffsetBuffer::new(ScalarBuffer::from(offsets)),
        Arc::new(Int64Array::from(values)),
        nulls,
    ))
}

/// In the modes where more events can only raise the level, a group's events are checked
/// when their number reaches each power of two from this on; a group at the last step is
/// done and keeps no events.
const CHECK_FROM: usize = 64;

/// One group's packed events: up to three inline, without an allocation (most persons hold
/// a few step events; millions of small allocations would cost more than the search).
type GroupEvents = smallvec::SmallVec<[i64; 3]>;

/// Every group's events.
struct FunnelGroups {
    setup: Setup,
    events: Vec<GroupEvents>,
    /// Groups known to be at the last step (their events are dropped).
    done: Vec<bool>,
    /// Events held over all groups (what `size` reports: it is asked once per batch, so it
    /// must not walk the groups).
    held: usize,
}

impl FunnelGroups {
    fn recount(&mut self) {
        self.held = self.events.iter().map(|e| e.len()).sum();
    }

    fn grow(&mut self, total_num_groups: usize) {
        if self.events.len() < total_num_groups {
            self.events.resize_with(total_num_groups, GroupEvents::new);
            self.done.resize(total_num_groups, false);
        }
    }
}

impl GroupsAccumulator for FunnelGroups {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        self.grow(total_num_groups);
        let Self {
            setup,
            events,
            done,
            held,
        } = self;
        let check = setup.mode.is_monotone();
        setup.add_rows(values, opt_filter, |row, p| {
            let g = group_indices[row];
            if done[g] {
                return;
            }
            let e = &mut events[g];
            e.push(p);
            *held += 1;
            if check
                && e.len() >= CHECK_FROM
                && e.len().is_power_of_two()
                && usize::from(setup.level(e)) == setup.steps
            {
                done[g] = true;
                *held -= e.len();
                *e = GroupEvents::new();
            }
        })
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        let mut groups = emit_to.take_needed(&mut self.events);
        let done = emit_to.take_needed(&mut self.done);
        self.recount();
        let steps = self.setup.steps as u8;
        let levels: Vec<u8> = groups
            .iter_mut()
            .zip(done)
            .map(|(e, done)| if done { steps } else { self.setup.level(e) })
            .collect();
        Ok(Arc::new(UInt8Array::from(levels)))
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        let groups = emit_to.take_needed(&mut self.events);
        let done = emit_to.take_needed(&mut self.done);
        self.recount();
        Ok(vec![to_list(&groups, Some(&done))])
    }

    fn merge_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        total_num_groups: usize,
    ) -> Result<()> {
        self.grow(total_num_groups);
        let lists = values[0].as_list::<i32>();
        let flat = lists
            .values()
            .as_primitive::<datafusion::arrow::datatypes::Int64Type>();
        let flat = flat.values();
        let offsets = lists.value_offsets();
        for (row, &g) in group_indices.iter().enumerate() {
            if lists.is_null(row) {
                self.done[g] = true;
                self.held -= self.events[g].len();
                self.events[g] = GroupEvents::new();
            } else if !self.done[g] {
                let (a, b) = (offsets[row] as usize, offsets[row + 1] as usize);
                self.events[g].extend_from_slice(&flat[a..b]);
                self.held += b - a;
            }
        }
        Ok(())
    }

    fn convert_to_state(
        &self,
        values: &[ArrayRef],
        opt_filter: Option<&BooleanArray>,
    ) -> Result<Vec<ArrayRef>> {
        // each row its own group: a list of its events
        let rows = values.first().map_or(0, |v| v.len());
        let mut lists: Vec<Vec<i64>> = vec![Vec::new(); rows];
        self.setup
            .add_rows(values, opt_filter, |row, p| lists[row].push(p))?;
        Ok(vec![to_list(&lists, None)])
    }

    fn size(&self) -> usize {
        // vectors grow by doubling: a quarter more than their lengths on average
        self.events.capacity() * (std::mem::size_of::<GroupEvents>() + 1) + self.held * 10
    }
}

/// One group's events (queries without GROUP BY, window frames).
#[derive(Debug)]
struct OneFunnel {
    setup: Setup,
    events: Vec<i64>,
    /// Merged from a state that had reached the last step.
    done: bool,
}

impl Accumulator for OneFunnel {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let events = &mut self.events;
        self.setup.add_rows(values, None, |_, p| events.push(p))
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        if self.done {
            return Ok(ScalarValue::UInt8(Some(self.setup.steps as u8)));
        }
        let mut events = self.events.clone();
        Ok(ScalarValue::UInt8(Some(self.setup.level(&mut events))))
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self) + self.events.capacity() * 8
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        let list = to_list(std::slice::from_ref(&self.events), Some(&[self.done]));
        Ok(vec![ScalarValue::List(Arc::new(
            list.as_list::<i32>().clone(),
        ))])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let lists = states[0].as_list::<i32>();
        for row in 0..lists.len() {
            if lists.is_null(row) {
                self.done = true;
            } else {
                let v = lists.value(row);
                self.events.extend_from_slice(
                    v.as_primitive::<datafusion::arrow::datatypes::Int64Type>()
                        .values(),
                );
            }
        }
        Ok(())
    }
}
