/*
 * Columns -> one Arrow struct array through the Arrow C data interface, built and validated by nanoarrow;
 * Polars imports it without copying (pl.Series(batch)).
 */
#ifndef LORATRACE_ARROW_EXPORT_H
#define LORATRACE_ARROW_EXPORT_H

#include "columns.h"

/* Moves the columns' memory into `array` (described by `schema`) and empties the columns. 0, or -1 with a
 * Python exception set; `schema` and `array` are then released. */
int columns_export(Column *cols, int n_cols, int64_t rows, struct ArrowSchema *schema, struct ArrowArray *array);

#endif
