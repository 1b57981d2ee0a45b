/* Column builders; see columns.h */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "attributes.h"
#include "columns.h"
#include "otlp_fields.h"
#include "text.h"

static int nomem(void) {
    PyErr_NoMemory();
    return -1;
}

static inline int put(struct ArrowBuffer *b, const void *s, int64_t n) {
    return ArrowBufferAppend(b, s, n) == NANOARROW_OK ? 0 : nomem();
}

static inline int put_i64(struct ArrowBuffer *b, int64_t v) { return put(b, &v, 8); }

int col_reset(Column *c) {
    c->length = c->nulls = c->child_length = 0;
    c->valid.size_bytes = c->data.size_bytes = c->offsets.size_bytes = c->child_offsets.size_bytes = 0;
    if ((c->type == T_STR || c->type == T_LIST) && put_i64(&c->offsets, 0) < 0) return -1;
    if (c->type == T_LIST && put_i64(&c->child_offsets, 0) < 0) return -1;
    return 0;
}

int col_init(Column *c, int type, const char *name) {
    c->type = type;
    c->name = name;
    ArrowBufferInit(&c->valid);
    ArrowBufferInit(&c->data);
    ArrowBufferInit(&c->offsets);
    ArrowBufferInit(&c->child_offsets);
    return col_reset(c);
}

void col_free(Column *c) {
    ArrowBufferReset(&c->valid);
    ArrowBufferReset(&c->data);
    ArrowBufferReset(&c->offsets);
    ArrowBufferReset(&c->child_offsets);
}

static inline int col_valid(Column *c, int ok) {
    if (ArrowBufferAppendInt8(&c->valid, (int8_t)ok) != NANOARROW_OK) return nomem();
    c->nulls += !ok;
    c->length++;
    return 0;
}

static inline int col_end_offset(Column *c) {
    return put_i64(&c->offsets, c->type == T_LIST ? c->child_length : c->data.size_bytes);
}

int col_null(Column *c) {
    int rc;
    switch (c->type) {
    case T_STR:
    case T_LIST: rc = col_end_offset(c); break;
    case T_BOOL: rc = ArrowBufferAppendInt8(&c->data, 0) == NANOARROW_OK ? 0 : nomem(); break;
    default: rc = put_i64(&c->data, 0);
    }
    return rc < 0 ? -1 : col_valid(c, 0);
}

int col_str(Column *c, const uint8_t *s, size_t n) {
    if (put(&c->data, s, (int64_t)n) < 0 || col_end_offset(c) < 0) return -1;
    return col_valid(c, 1);
}

int col_cstr(Column *c, const char *s) { return col_str(c, (const uint8_t *)s, strlen(s)); }

int col_str_or_null(Column *c, const uint8_t *s, size_t n) { return n ? col_str(c, s, n) : col_null(c); }

int col_hex(Column *c, const uint8_t *s, size_t n) {
    if (ArrowBufferReserve(&c->data, 2 * (int64_t)n) != NANOARROW_OK) return nomem();
    hex_into((char *)c->data.data + c->data.size_bytes, s, n);
    c->data.size_bytes += 2 * (int64_t)n;
    if (col_end_offset(c) < 0) return -1;
    return col_valid(c, 1);
}

int col_i64(Column *c, int64_t v) { return put_i64(&c->data, v) < 0 ? -1 : col_valid(c, 1); }

int col_f64(Column *c, double v) { return put(&c->data, &v, 8) < 0 ? -1 : col_valid(c, 1); }

int col_bool(Column *c, int v) {
    if (ArrowBufferAppendInt8(&c->data, (int8_t)(v != 0)) != NANOARROW_OK) return nomem();
    return col_valid(c, 1);
}

int col_string_list(Column *c, const uint8_t *p, size_t n) {
    const uint8_t *end = p + n;
    Field f = {0};
    while (next_field(&p, end, &f) > 0) {
        if (f.num != F_ARRAY_VALUES || f.wt != WT_LEN) continue; /* checked by the caller */
        AnyValue e;
        if (parse_any(f.d, f.n, &e) < 0) return -1;
        if (put(&c->data, e.d, (int64_t)e.n) < 0 || put_i64(&c->child_offsets, c->data.size_bytes) < 0) return -1;
        c->child_length++;
    }
    if (col_end_offset(c) < 0) return -1;
    return col_valid(c, 1);
}

void col_truncate(Column *c, int64_t rows) {
    if (rows >= c->length) return;
    const uint8_t *valid = c->valid.data;
    for (int64_t i = rows; i < c->length; i++) c->nulls -= !valid[i];
    c->valid.size_bytes = rows;
    const int64_t *offsets = (const int64_t *)c->offsets.data;
    switch (c->type) {
    case T_STR:
        c->data.size_bytes = offsets[rows];
        c->offsets.size_bytes = (rows + 1) * 8;
        break;
    case T_LIST: {
        int64_t items = offsets[rows];
        c->child_length = items;
        c->child_offsets.size_bytes = (items + 1) * 8;
        c->data.size_bytes = ((const int64_t *)c->child_offsets.data)[items];
        c->offsets.size_bytes = (rows + 1) * 8;
        break;
    }
    case T_BOOL: c->data.size_bytes = rows; break;
    default: c->data.size_bytes = rows * 8;
    }
    c->length = rows;
}
