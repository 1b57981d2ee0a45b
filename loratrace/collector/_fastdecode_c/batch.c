/*
 * SpanBatch: the rows of one table (spans, span_events or span_links) as column builders, exported to Polars
 * through the Arrow C data interface.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "arrow_export.h"
#include "module.h"
#include "otlp_walk.h"

const char *const TABLE_NAMES[] = {"spans", "span_events", "span_links"};

void batch_truncate(SpanBatch *self, int64_t rows) {
    for (int i = 0; i < self->n_columns; i++) col_truncate(&self->columns[i], rows);
    if (rows < self->rows) self->rows = rows;
}

static void batch_free_columns(SpanBatch *self) {
    for (int i = 0; i < self->n_columns; i++) {
        col_free(&self->columns[i]);
        PyMem_Free((void *)self->columns[i].name);
    }
    PyMem_Free(self->columns);
    self->columns = NULL;
    self->n_columns = 0;
}

static int batch_add_column(SpanBatch *self, const char *name, int type) {
    size_t n = strlen(name) + 1;
    char *copy = PyMem_Malloc(n);
    if (!copy) {
        PyErr_NoMemory();
        return -1;
    }
    memcpy(copy, name, n);
    Column *c = &self->columns[self->n_columns++];
    if (col_init(c, type, copy) < 0) return -1;
    return 0;
}

static int SpanBatch_init(SpanBatch *self, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"table", NULL};
    const char *table;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "s", kwlist, &table)) return -1;
    if (!CONFIGURED) return not_configured();
    int t = -1;
    for (int i = 0; i < 3; i++)
        if (strcmp(table, TABLE_NAMES[i]) == 0) t = i;
    if (t < 0) {
        PyErr_Format(PyExc_ValueError, "no compiled batch for table %s (spans, span_events or span_links)", table);
        return -1;
    }
    batch_free_columns(self);
    const ColumnSpec *specs = t == TABLE_SPANS ? SPAN_COLUMNS : t == TABLE_EVENTS ? EVENT_COLUMNS : LINK_COLUMNS;
    int n_fixed = t == TABLE_SPANS ? N_SPAN_COLUMNS : t == TABLE_EVENTS ? N_EVENT_COLUMNS : N_LINK_COLUMNS;
    int n_promoted = t == TABLE_SPANS ? RULES.n_columns : t == TABLE_EVENTS ? RULES.n_event_columns : 0;
    self->columns = PyMem_Calloc((size_t)(n_fixed + n_promoted) + 1, sizeof(Column));
    if (!self->columns) {
        PyErr_NoMemory();
        return -1;
    }
    self->table = t;
    self->rows = 0;
    for (int i = 0; i < n_fixed; i++)
        if (batch_add_column(self, specs[i].name, specs[i].type) < 0) return -1;
    for (int i = 0; i < n_promoted; i++) {
        int c = t == TABLE_SPANS ? i : RULES.event_columns[i];
        if (batch_add_column(self, RULES.names[c], RULES.types[c]) < 0) return -1;
    }
    return 0;
}

static void SpanBatch_dealloc(SpanBatch *self) {
    batch_free_columns(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *SpanBatch_rows(SpanBatch *self, PyObject *unused) { return PyLong_FromLongLong(self->rows); }

static PyObject *SpanBatch_truncate(SpanBatch *self, PyObject *arg) {
    long long rows = PyLong_AsLongLong(arg);
    if (rows == -1 && PyErr_Occurred()) return NULL;
    batch_truncate(self, rows < 0 ? 0 : rows);
    Py_RETURN_NONE;
}

static void capsule_schema_free(PyObject *capsule) {
    struct ArrowSchema *s = PyCapsule_GetPointer(capsule, "arrow_schema");
    if (s) {
        if (s->release) s->release(s);
        PyMem_RawFree(s);
    }
}

static void capsule_array_free(PyObject *capsule) {
    struct ArrowArray *a = PyCapsule_GetPointer(capsule, "arrow_array");
    if (a) {
        if (a->release) a->release(a);
        PyMem_RawFree(a);
    }
}

PyDoc_STRVAR(arrow_doc,
"__arrow_c_array__(requested_schema=None) -> (schema capsule, array capsule)\n\n"
"Export the buffered rows as an Arrow struct array (one child per column) and empty the batch: the\n"
"memory moves to the consumer (pl.Series(batch)).");

static PyObject *SpanBatch_arrow_c_array(SpanBatch *self, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"requested_schema", NULL};
    PyObject *requested = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|O", kwlist, &requested)) return NULL;
    struct ArrowSchema *schema = PyMem_RawCalloc(1, sizeof *schema);
    struct ArrowArray *array = PyMem_RawCalloc(1, sizeof *array);
    if (!schema || !array) {
        PyMem_RawFree(schema);
        PyMem_RawFree(array);
        return PyErr_NoMemory();
    }
    int64_t rows = self->rows;
    self->rows = 0;
    if (columns_export(self->columns, self->n_columns, rows, schema, array) < 0) {
        PyMem_RawFree(schema);
        PyMem_RawFree(array);
        return NULL;
    }
    PyObject *schema_capsule = PyCapsule_New(schema, "arrow_schema", capsule_schema_free);
    if (!schema_capsule) {
        schema->release(schema);
        PyMem_RawFree(schema);
        array->release(array);
        PyMem_RawFree(array);
        return NULL;
    }
    PyObject *array_capsule = PyCapsule_New(array, "arrow_array", capsule_array_free);
    if (!array_capsule) {
        Py_DECREF(schema_capsule);
        array->release(array);
        PyMem_RawFree(array);
        return NULL;
    }
    return Py_BuildValue("(NN)", schema_capsule, array_capsule);
}

static const char *column_name(const void *columns, int i) { return ((const Column *)columns)[i].name; }

static PyObject *SpanBatch_columns(SpanBatch *self, PyObject *unused) {
    return names_tuple(self->n_columns, column_name, self->columns);
}

static PyMethodDef SpanBatch_methods[] = {
    {"__arrow_c_array__", (PyCFunction)(void (*)(void))SpanBatch_arrow_c_array, METH_VARARGS | METH_KEYWORDS,
     arrow_doc},
    {"rows", (PyCFunction)SpanBatch_rows, METH_NOARGS, "rows() -> number of buffered rows"},
    {"truncate", (PyCFunction)SpanBatch_truncate, METH_O, "truncate(rows): drop the rows past `rows`"},
    {"columns", (PyCFunction)SpanBatch_columns, METH_NOARGS, "columns() -> the column names, in export order"},
    {NULL, NULL, 0, NULL},
};

PyTypeObject SpanBatchType =
    LORATRACE_TYPE(SpanBatch, "SpanBatch",
                   "SpanBatch(table): rows of spans, span_events or span_links in Arrow layout, filled by\n"
                   "Decoder.decode_traces, exported with __arrow_c_array__.",
                   SpanBatch_init, SpanBatch_dealloc, SpanBatch_methods);
