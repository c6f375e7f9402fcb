//! Column builders that append straight into reusable buffers and can roll back a partial row.

use std::sync::Arc;

use arrow_array::types::ArrowPrimitiveType;
use arrow_array::{ArrayRef, PrimitiveArray, StringArray};
use arrow_buffer::{ArrowNativeType, Buffer, NullBufferBuilder, OffsetBuffer, ScalarBuffer};
use arrow_schema::ArrowError;

/// A Utf8 column: one values buffer, i32 offsets, lazy validity.
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

    /// True when `extra` more bytes still fit in i32 offsets.
    #[inline]
    pub(crate) fn has_room(&self, extra: usize) -> bool {
        self.values.len() + extra <= i32::MAX as usize
    }

    /// Appends bytes the caller has checked are UTF-8 and fit ([`has_room`](Self::has_room)).
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

    /// Drops rows past `rows`.
    pub(crate) fn truncate(&mut self, rows: usize) {
        if rows + 1 < self.offsets.len() {
            self.offsets.truncate(rows + 1);
            self.values.truncate(self.offsets[rows] as usize);
            self.nulls.truncate(rows);
        }
    }

    /// Builds the array and starts an empty one sized like this batch.
    pub(crate) fn finish(&mut self) -> Result<ArrayRef, ArrowError> {
        let rows = self.offsets.len() - 1;
        let bytes = self.values.len();
        let offsets = std::mem::replace(&mut self.offsets, Vec::with_capacity(rows + 1));
        self.offsets.push(0);
        let values = std::mem::replace(&mut self.values, Vec::with_capacity(bytes));
        let nulls = self.nulls.finish();
        self.nulls = NullBufferBuilder::new(rows);
        // `try_new` validates UTF-8 again; without unsafe there is no way to skip it, and it
        // runs at memory speed over the whole buffer.
        let array = StringArray::try_new(
            OffsetBuffer::new(ScalarBuffer::from(offsets)),
            Buffer::from_vec(values),
            nulls,
        )?;
        Ok(Arc::new(array))
    }
}

/// A primitive column (Int32, Int64, Float64, Timestamp, Date32).
pub(crate) struct PrimColumn<T: ArrowPrimitiveType> {
    values: Vec<T::Native>,
    nulls: Option<NullBufferBuilder>,
    data_type: arrow_schema::DataType,
}

impl<T: ArrowPrimitiveType> PrimColumn<T> {
    /// `nullable` columns keep a validity bitmap; others never hold nulls.
    pub(crate) fn new(rows: usize, nullable: bool, data_type: arrow_schema::DataType) -> Self {
        Self {
            values: Vec::with_capacity(rows),
            nulls: nullable.then(|| NullBufferBuilder::new(rows)),
            data_type,
        }
    }

    #[inline(always)]
    pub(crate) fn push(&mut self, v: T::Native) {
        self.values.push(v);
        if let Some(n) = &mut self.nulls {
            n.append_non_null();
        }
    }

    #[inline(always)]
    pub(crate) fn push_null(&mut self) {
        self.values.push(T::Native::usize_as(0));
        if let Some(n) = &mut self.nulls {
            n.append_null();
        }
    }

    pub(crate) fn truncate(&mut self, rows: usize) {
        self.values.truncate(rows);
        if let Some(n) = &mut self.nulls {
            n.truncate(rows);
        }
    }

    pub(crate) fn finish(&mut self) -> Result<ArrayRef, ArrowError> {
        let rows = self.values.len();
        let values = std::mem::replace(&mut self.values, Vec::with_capacity(rows));
        let nulls = self.nulls.as_mut().and_then(NullBufferBuilder::finish);
        if let Some(n) = &mut self.nulls {
            *n = NullBufferBuilder::new(rows);
        }
        let array = PrimitiveArray::<T>::try_new(ScalarBuffer::from(values), nulls)?
            .with_data_type(self.data_type.clone());
        Ok(Arc::new(array))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::Array;
    use arrow_array::types::Int64Type;
    use arrow_schema::DataType;

    #[test]
    fn text_column_rolls_back_and_finishes() {
        let mut c = TextColumn::new(4, 16);
        c.push(b"ab");
        c.push_null();
        c.push(b"cde");
        c.truncate(2);
        c.push(b"f");
        let a = c.finish().unwrap();
        let a = a.as_any().downcast_ref::<StringArray>().unwrap();
        assert_eq!(a.iter().collect::<Vec<_>>(), [Some("ab"), None, Some("f")]);
        c.push(b"again");
        assert_eq!(c.finish().unwrap().len(), 1);
    }

    #[test]
    fn prim_column_nulls_only_when_nullable() {
        let mut c = PrimColumn::<Int64Type>::new(2, true, DataType::Int64);
        c.push(1);
        c.push_null();
        c.push(3);
        c.truncate(2);
        let a = c.finish().unwrap();
        assert_eq!(a.null_count(), 1);
        assert_eq!(a.len(), 2);
        let mut c = PrimColumn::<Int64Type>::new(2, false, DataType::Int64);
        c.push(1);
        assert!(c.finish().unwrap().nulls().is_none());
    }
}
