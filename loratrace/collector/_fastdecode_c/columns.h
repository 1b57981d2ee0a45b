/*
 * Column builders: the rows of one table in Arrow layout (nanoarrow buffers), appended one value at a time,
 * truncated when a request has to be undone, and exported without a copy (arrow_export.c).
 */
#ifndef LORATRACE_COLUMNS_H
#define LORATRACE_COLUMNS_H

#include <stddef.h>
#include <stdint.h>

#include "nanoarrow/nanoarrow.h"

enum { T_STR = 1, T_I64 = 2, T_F64 = 3, T_BOOL = 4, T_TS = 5, T_LIST = 6 };

typedef struct {
    int type;
    const char *name; /* static storage, or owned by the batch that made the column */
    int64_t length;
    int64_t nulls;
    struct ArrowBuffer valid;         /* one byte per row while building; bit-packed on export */
    struct ArrowBuffer data;          /* values (8 bytes, or 1 byte for bools) or string bytes */
    struct ArrowBuffer offsets;       /* int64 offsets: strings (into data) or lists (into child_offsets) */
    struct ArrowBuffer child_offsets; /* list<string>: the strings' int64 offsets into data */
    int64_t child_length;
} Column;

/* all return 0, or -1 with a Python MemoryError set */
int col_init(Column *c, int type, const char *name);
int col_reset(Column *c); /* empty again, after an export took the buffers */
void col_free(Column *c);
void col_truncate(Column *c, int64_t rows);

int col_null(Column *c);
int col_str(Column *c, const uint8_t *s, size_t n);
int col_cstr(Column *c, const char *s);
int col_str_or_null(Column *c, const uint8_t *s, size_t n); /* empty -> null */
int col_hex(Column *c, const uint8_t *s, size_t n);
int col_i64(Column *c, int64_t v);
int col_f64(Column *c, double v);
int col_bool(Column *c, int v);
/* a list<string> row from an ArrayValue body whose items are all strings (checked by the caller) */
int col_string_list(Column *c, const uint8_t *p, size_t n);

#endif
