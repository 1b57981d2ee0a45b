/* Columns -> an Arrow struct array with nanoarrow; see arrow_export.h */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "arrow_export.h"

/* strings go out as Utf8View, the layout Polars keeps them in, so it imports them without a copy; a view
 * addresses its buffer with an int32 offset, so a column past 2 GiB goes out as large utf8 instead */
static int as_view(const Column *c) { return c->type == T_STR && c->data.size_bytes <= INT32_MAX; }

static ArrowErrorCode column_schema(const Column *c, struct ArrowSchema *s) {
    switch (c->type) {
    case T_STR:
        NANOARROW_RETURN_NOT_OK(ArrowSchemaSetType(s, as_view(c) ? NANOARROW_TYPE_STRING_VIEW
                                                                  : NANOARROW_TYPE_LARGE_STRING));
        break;
    case T_I64: NANOARROW_RETURN_NOT_OK(ArrowSchemaSetType(s, NANOARROW_TYPE_INT64)); break;
    case T_F64: NANOARROW_RETURN_NOT_OK(ArrowSchemaSetType(s, NANOARROW_TYPE_DOUBLE)); break;
    case T_BOOL: NANOARROW_RETURN_NOT_OK(ArrowSchemaSetType(s, NANOARROW_TYPE_BOOL)); break;
    case T_TS:
        NANOARROW_RETURN_NOT_OK(
            ArrowSchemaSetTypeDateTime(s, NANOARROW_TYPE_TIMESTAMP, NANOARROW_TIME_UNIT_MICRO, NULL));
        break;
    default:
        NANOARROW_RETURN_NOT_OK(ArrowSchemaSetType(s, NANOARROW_TYPE_LARGE_LIST));
        NANOARROW_RETURN_NOT_OK(ArrowSchemaSetType(s->children[0], NANOARROW_TYPE_LARGE_STRING));
    }
    return ArrowSchemaSetName(s, c->name);
}

/* 16-byte views over a string column's data: length, then the bytes inline (<= 12) or prefix + offset */
static ArrowErrorCode string_views(const Column *c, struct ArrowBuffer *out) {
    NANOARROW_RETURN_NOT_OK(ArrowBufferReserve(out, c->length * 16));
    uint8_t *views = out->data;
    const int64_t *off = (const int64_t *)c->offsets.data;
    const uint8_t *data = c->data.data;
    memset(views, 0, (size_t)c->length * 16);
    for (int64_t i = 0; i < c->length; i++) {
        uint8_t *v = views + i * 16;
        int32_t len = (int32_t)(off[i + 1] - off[i]);
        memcpy(v, &len, 4);
        if (len <= 12) {
            if (len) memcpy(v + 4, data + off[i], (size_t)len);
        } else {
            int32_t buffer_index = 0, offset = (int32_t)off[i];
            memcpy(v + 4, data + off[i], 4);
            memcpy(v + 8, &buffer_index, 4);
            memcpy(v + 12, &offset, 4);
        }
    }
    out->size_bytes = c->length * 16;
    return NANOARROW_OK;
}

/* one byte per row (0/1) -> a bitmap */
static ArrowErrorCode pack_bits(const struct ArrowBuffer *bytes, int64_t n, struct ArrowBitmap *bits) {
    NANOARROW_RETURN_NOT_OK(ArrowBitmapReserve(bits, n));
    ArrowBitmapAppendInt8Unsafe(bits, (const int8_t *)bytes->data, n);
    return NANOARROW_OK;
}

static ArrowErrorCode column_array(Column *c, struct ArrowArray *a) {
    a->length = c->length;
    a->null_count = c->nulls;
    if (c->nulls) NANOARROW_RETURN_NOT_OK(pack_bits(&c->valid, c->length, ArrowArrayValidityBitmap(a)));
    switch (c->type) {
    case T_STR:
        if (as_view(c)) {
            NANOARROW_RETURN_NOT_OK(string_views(c, ArrowArrayBuffer(a, 1)));
            NANOARROW_RETURN_NOT_OK(ArrowArrayAddVariadicBuffers(a, 1));
            ArrowBufferMove(&c->data, ArrowArrayBuffer(a, 2));
        } else {
            ArrowBufferMove(&c->offsets, ArrowArrayBuffer(a, 1));
            ArrowBufferMove(&c->data, ArrowArrayBuffer(a, 2));
        }
        break;
    case T_BOOL: {
        struct ArrowBitmap values;
        ArrowBitmapInit(&values);
        ArrowErrorCode rc = pack_bits(&c->data, c->length, &values);
        if (rc != NANOARROW_OK) {
            ArrowBitmapReset(&values);
            return rc;
        }
        ArrowBufferMove(&values.buffer, ArrowArrayBuffer(a, 1));
        break;
    }
    case T_LIST: {
        struct ArrowArray *items = a->children[0];
        ArrowBufferMove(&c->offsets, ArrowArrayBuffer(a, 1));
        items->length = c->child_length;
        items->null_count = 0;
        ArrowBufferMove(&c->child_offsets, ArrowArrayBuffer(items, 1));
        ArrowBufferMove(&c->data, ArrowArrayBuffer(items, 2));
        break;
    }
    default: ArrowBufferMove(&c->data, ArrowArrayBuffer(a, 1));
    }
    return NANOARROW_OK;
}

int columns_export(Column *cols, int n_cols, int64_t rows, struct ArrowSchema *schema, struct ArrowArray *array) {
    struct ArrowError error;
    ArrowErrorInit(&error);
    ArrowErrorCode rc;
    array->release = NULL;
    ArrowSchemaInit(schema);
    rc = ArrowSchemaSetTypeStruct(schema, n_cols);
    for (int i = 0; i < n_cols && rc == NANOARROW_OK; i++) rc = column_schema(&cols[i], schema->children[i]);
    if (rc == NANOARROW_OK) rc = ArrowArrayInitFromSchema(array, schema, &error);
    if (rc == NANOARROW_OK) {
        array->length = rows;
        array->null_count = 0;
        for (int i = 0; i < n_cols && rc == NANOARROW_OK; i++) rc = column_array(&cols[i], array->children[i]);
    }
    if (rc == NANOARROW_OK) rc = ArrowArrayFinishBuildingDefault(array, &error);
    for (int i = 0; i < n_cols; i++) {
        if (col_reset(&cols[i]) < 0) {
            if (rc == NANOARROW_OK) rc = ENOMEM;
        }
    }
    if (rc == NANOARROW_OK) return 0;
    if (array->release) array->release(array);
    if (schema->release) schema->release(schema);
    if (PyErr_Occurred()) return -1;
    if (rc == ENOMEM) PyErr_NoMemory();
    else
        PyErr_Format(PyExc_RuntimeError, "loratrace's decoder built an invalid Arrow array: %s", error.message);
    return -1;
}
