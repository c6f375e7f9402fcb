//! SQL functions models use, registered in every session that plans or reads them.
//!
//! `surrogate_key(a, b, ...)`: a stable BIGINT key from a natural key — the first 8 bytes of
//! the BLAKE3 hash of the values' text, separated by U+001F, NULL written as U+0000. The same
//! values give the same key on every machine and every rebuild; -1 is never produced (it is
//! the key of each dimension's "unknown" member).

use std::fmt::Write as _;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, Int64Builder};
use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::common::{Result, ScalarValue, exec_err};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::prelude::SessionContext;

/// The surrogate key of the "unknown" member of a dimension.
pub const UNKNOWN_KEY: i64 = -1;

/// Register Darkroom's functions in a session (and the analytics ones: `window_funnel`, so a
/// model can compute funnel levels too).
pub fn register(ctx: &SessionContext) {
    ctx.register_udf(ScalarUDF::from(SurrogateKey::new()));
    darkroom_analytics::register(ctx);
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct SurrogateKey {
    signature: Signature,
}

impl SurrogateKey {
    fn new() -> Self {
        Self {
            signature: Signature::variadic_any(Volatility::Immutable),
        }
    }
}

/// The key of one row's values (each already as text, `None` for NULL).
pub fn surrogate_key<'a>(values: impl IntoIterator<Item = Option<&'a str>>) -> i64 {
    let mut hasher = blake3::Hasher::new();
    for (i, v) in values.into_iter().enumerate() {
        if i > 0 {
            hasher.update(b"\x1f");
        }
        match v {
            Some(text) => hasher.update(text.as_bytes()),
            None => hasher.update(b"\0"),
        };
    }
    let bytes = hasher.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&bytes.as_bytes()[..8]);
    match i64::from_le_bytes(first) {
        UNKNOWN_KEY => -2,
        k => k,
    }
}

impl ScalarUDFImpl for SurrogateKey {
    fn name(&self) -> &str {
        "surrogate_key"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Int64)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        if args.args.is_empty() {
            return exec_err!("surrogate_key needs at least one column");
        }
        let rows = args.number_rows;
        let all_scalar = args
            .args
            .iter()
            .all(|a| matches!(a, ColumnarValue::Scalar(_)));
        let arrays: Vec<ArrayRef> = args
            .args
            .iter()
            .map(|a| a.to_array(rows))
            .collect::<Result<_>>()?;
        let options = FormatOptions::default();
        let formatters: Vec<ArrayFormatter<'_>> = arrays
            .iter()
            .map(|a| ArrayFormatter::try_new(a.as_ref(), &options))
            .collect::<std::result::Result<_, _>>()?;
        let mut out = Int64Builder::with_capacity(rows);
        let mut texts: Vec<String> = vec![String::new(); arrays.len()];
        for row in 0..rows {
            for (k, f) in formatters.iter().enumerate() {
                texts[k].clear();
                if !arrays[k].is_null(row) {
                    write!(texts[k], "{}", f.value(row))
                        .map_err(|e| datafusion::error::DataFusionError::External(Box::new(e)))?;
                }
            }
            let key = surrogate_key(
                texts
                    .iter()
                    .enumerate()
                    .map(|(k, t)| (!arrays[k].is_null(row)).then_some(t.as_str())),
            );
            out.append_value(key);
        }
        let array: ArrayRef = Arc::new(out.finish());
        if all_scalar {
            return Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(
                &array, 0,
            )?));
        }
        Ok(ColumnarValue::Array(array))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_stable_and_never_the_unknown_key() {
        let a = surrogate_key([Some("42")]);
        assert_eq!(a, surrogate_key([Some("42")]));
        assert_ne!(a, surrogate_key([Some("43")]));
        // separators matter: ("a", "bc") is not ("ab", "c"); NULL is not ""
        assert_ne!(
            surrogate_key([Some("a"), Some("bc")]),
            surrogate_key([Some("ab"), Some("c")])
        );
        assert_ne!(surrogate_key([None]), surrogate_key([Some("")]));
        assert_ne!(a, UNKNOWN_KEY);
    }
}
