//! Column builders that append straight into reusable buffers: cheaper per value than Arrow's
//! generic builders, which matters at a dozen values per line.

use std::sync::Arc;

use arrow_array::types::ArrowPrimitiveType;
use arrow_array::{ArrayRef, PrimitiveArray, StringArray};
use arrow_buffer::{Buffer, NullBufferBuilder, OffsetBuffer, ScalarBuffer};
use arrow_schema::{ArrowError, DataType};

/// A Utf8 column: one values buffer, i32 offsets, validity built only once a null appears.
pub(crate) struct TextColumn {
    offsets: Vec<i32>,
    values: Vec<u8>,
    nulls: NullBufferBuilder,
}

impl TextColumn {
    pub(crate) fn new(rows: usize, bytes: usize) -> Self {
        let mut offsets = Vec::with_capacity(rows + 1);
        offsets.push(0);
        Self {
            offsets,
            values: Vec::with_capacity(bytes),
            nulls: NullBufferBuilder::new(rows),
        }
    }

    /// Bytes held so far.
    #[inline(always)]
    pub(crate) fn bytes(&self) -> usize {
        self.values.len()
    }

    /// Appends text (UTF-8 checked by the caller, and fitting i32 offsets).
    #[inline(always)]
    pub(crate) fn push(&mut self, value: &[u8]) {
        self.values.extend_from_slice(value);
        self.offsets.push(self.values.len() as i32);
        self.nulls.append_non_null();
    }

    #[inline(always)]
    pub(crate) fn push_null(&mut self) {
        self.offsets.push(self.values.len() as i32);
        self.nulls.append_null();
    }

    /// Builds the array and starts an empty column sized like this one (plus an eighth, so a
    /// slightly bigger batch does not reallocate).
    pub(crate) fn finish(&mut self) -> Result<ArrayRef, ArrowError> {
        let rows = self.offsets.len() - 1;
        let bytes = self.values.len();
        let mut next = Self::new(rows, bytes + bytes / 8);
        std::mem::swap(self, &mut next);
        // `try_new` checks UTF-8 once more over the whole buffer: safe Rust has no way to vouch
        // for the per-line checks, and one pass over a large buffer is fast.
        let array = StringArray::try_new(
            OffsetBuffer::new(ScalarBuffer::from(next.offsets)),
            Buffer::from_vec(next.values),
            next.nulls.finish(),
        )?;
        Ok(Arc::new(array))
    }
}

/// A primitive column (Int32, Int64, Float64, Timestamp, Date32).
pub(crate) struct PrimColumn<T: ArrowPrimitiveType> {
    values: Vec<T::Native>,
    nulls: NullBufferBuilder,
    data_type: DataType,
}

impl<T: ArrowPrimitiveType> PrimColumn<T> {
    pub(crate) fn new(rows: usize, data_type: DataType) -> Self {
        Self {
            values: Vec::with_capacity(rows),
            nulls: NullBufferBuilder::new(rows),
            data_type,
        }
    }

    #[inline(always)]
    pub(crate) fn push(&mut self, v: T::Native) {
        self.values.push(v);
        self.nulls.append_non_null();
    }

    #[inline(always)]
    pub(crate) fn push_option(&mut self, v: Option<T::Native>) {
        match v {
            Some(v) => self.push(v),
            None => {
                self.values.push(T::Native::default());
                self.nulls.append_null();
            }
        }
    }

    pub(crate) fn finish(&mut self) -> Result<ArrayRef, ArrowError> {
        let rows = self.values.len();
        let values = std::mem::replace(&mut self.values, Vec::with_capacity(rows));
        let nulls = self.nulls.finish();
        self.nulls = NullBufferBuilder::new(rows);
        let array = PrimitiveArray::<T>::try_new(ScalarBuffer::from(values), nulls)?
            .with_data_type(self.data_type.clone());
        Ok(Arc::new(array))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::Array;
    use arrow_array::cast::AsArray;
    use arrow_array::types::Int64Type;

    #[test]
    fn text_column_finishes_and_restarts() {
        let mut c = TextColumn::new(4, 16);
        c.push(b"ab");
        c.push_null();
        c.push(b"f");
        let a = c.finish().unwrap();
        assert_eq!(
            a.as_string::<i32>().iter().collect::<Vec<_>>(),
            [Some("ab"), None, Some("f")]
        );
        c.push("été".as_bytes());
        let a = c.finish().unwrap();
        assert_eq!(a.as_string::<i32>().value(0), "été");
        assert!(a.nulls().is_none());
        c.push(b"\xFF");
        assert!(c.finish().is_err());
    }

    #[test]
    fn prim_column_nulls() {
        let mut c = PrimColumn::<Int64Type>::new(2, DataType::Int64);
        c.push(1);
        c.push_option(None);
        c.push_option(Some(3));
        let a = c.finish().unwrap();
        assert_eq!(a.null_count(), 1);
        assert_eq!(a.as_primitive::<Int64Type>().value(2), 3);
        c.push(1);
        assert!(c.finish().unwrap().nulls().is_none());
    }
}
