/*
 * loratrace.collector._fastdecode: the Python face of the compiled OTLP decoder.
 *
 * OTLP ExportTraceServiceRequest bytes -> the store's span, event and link columns, walking the wire format
 * directly. It fills exactly the columns RowBuffer.add_traces fills (ids as lowercase hex, attribute maps as the
 * compact JSON text Python's json module writes) and, where it can be sure of the result, the promoted typed
 * columns decode.promote_frame would compute. What it cannot reproduce byte for byte goes to the Python path:
 *
 *   - a payload it cannot walk exactly (non-canonical wire forms such as a repeated singular message, wire
 *     type mismatches, groups, deep nesting, invalid UTF-8, timestamps past int64) -> decode_traces returns
 *     None and the caller decodes the whole payload with upb + Python;
 *   - event or link rows that need Python's conversions (an evaluation score sent as text, a span whose
 *     promoted values need Python's typing) -> the request's event and link rows are dropped from the batches
 *     and the indexes of its spans with events or links are returned, for the caller to add those rows;
 *   - a promoted attribute whose value is not of its column's own type -> the payload is reported "hard" and
 *     the caller runs promote_frame over the batch instead of using these promoted values.
 *
 * The promotion rules come from Python (configure(), called by decode.py at import); the columns of each
 * table, and their order, are this module's (SPAN_COLUMNS, EVENT_COLUMNS, LINK_COLUMNS, promoted_columns()).
 *
 * The parts: wire.h (protobuf wire format), otlp_fields.h (field numbers), text.c (JSON spelling),
 * attributes.c (attribute maps), promotion.c (promoted values), otlp_walk.c (the request walk), columns.c
 * (column builders), arrow_export.c (Arrow C data interface, with the vendored nanoarrow), key_window.c
 * (the duplicate window), scan.c (the receivers' request scans).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "arrow_export.h"
#include "module.h"
#include "otlp_fields.h"
#include "otlp_walk.h"
#include "promotion.h"

static Rules RULES = {.exception_column = -1};
static int CONFIGURED = 0;

static int not_configured(void) {
    PyErr_SetString(PyExc_RuntimeError, "_fastdecode.configure(rules) must be called first (decode.py does)");
    return -1;
}

/* ---------------------------------------------------------------------------------------------------------
 * configure
 */

static char *copy_utf8(PyObject *text, size_t *n_out) {
    Py_ssize_t n;
    const char *s = PyUnicode_AsUTF8AndSize(text, &n);
    if (!s) return NULL;
    char *d = PyMem_Malloc((size_t)n + 1);
    if (!d) {
        PyErr_NoMemory();
        return NULL;
    }
    memcpy(d, s, (size_t)n + 1);
    if (n_out) *n_out = (size_t)n;
    return d;
}

static int column_index(const Rules *r, PyObject *name) {
    const char *s = PyUnicode_AsUTF8(name);
    if (!s) return -2;
    for (int i = 0; i < r->n_columns; i++)
        if (strcmp(r->names[i], s) == 0) return i;
    return -1;
}

static int kind_of(const char *kind, int *type, int *how) {
    static const struct {
        const char *kind;
        int type, how;
    } kinds[] = {{"string", T_STR, P_STR}, {"int", T_I64, P_INT}, {"float", T_F64, P_FLOAT},
                 {"bool", T_BOOL, P_BOOL}, {"list", T_LIST, P_LIST}};
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
        if (strcmp(kind, kinds[i].kind) == 0) {
            *type = kinds[i].type;
            *how = kinds[i].how;
            return 0;
        }
    return -1;
}

static int add_source(Rules *r, PyObject *key, int column, int how, int priority, PyObject *list_attributes) {
    if (r->n_sources >= SOURCE_TABLE / 2) {
        PyErr_SetString(PyExc_ValueError, "too many promoted attribute sources");
        return -1;
    }
    if (!PyUnicode_Check(key)) {
        PyErr_SetString(PyExc_TypeError, "a promotion rule's attribute keys must be strings");
        return -1;
    }
    int is_list = PySequence_Contains(list_attributes, key);
    if (is_list < 0) return -1;
    Source *s = &r->sources[r->n_sources];
    s->key = copy_utf8(key, &s->key_n);
    if (!s->key) return -1;
    r->n_sources++;
    s->column = column;
    /* a list attribute feeding a string column gives its first element */
    s->how = how == P_STR && is_list ? P_FIRST : how;
    s->priority = priority;
    s->h = key_hash((const uint8_t *)s->key, s->key_n);
    uint64_t slot = s->h;
    while (r->table[slot & (SOURCE_TABLE - 1)] >= 0) slot++;
    r->table[slot & (SOURCE_TABLE - 1)] = (int16_t)(r->n_sources - 1);
    return 0;
}

static int add_rule(Rules *r, PyObject *rule, PyObject *list_attributes) {
    PyObject *column, *keys;
    const char *kind;
    double scale = 1.0;
    if (!PyArg_ParseTuple(rule, "UsO|d", &column, &kind, &keys, &scale)) return -1;
    int type, how;
    if (kind_of(kind, &type, &how) < 0) {
        PyErr_Format(PyExc_ValueError, "promotion rule %R: kind must be string, int, float, bool or list", rule);
        return -1;
    }
    if (scale != 1.0 && how != P_FLOAT) {
        PyErr_Format(PyExc_ValueError, "promotion rule %R: only a float column takes a scale", rule);
        return -1;
    }
    if (r->n_columns >= MAX_COLUMNS) {
        PyErr_Format(PyExc_ValueError, "at most %d promoted columns", MAX_COLUMNS);
        return -1;
    }
    int existing = column_index(r, column);
    if (existing == -2) return -1;
    if (existing >= 0) {
        PyErr_Format(PyExc_ValueError, "promoted column %R is defined twice", column);
        return -1;
    }
    int c = r->n_columns;
    if (!(r->names[c] = copy_utf8(column, NULL))) return -1;
    r->n_columns++;
    r->types[c] = type;
    r->scales[c] = scale;
    if (PyUnicode_Check(keys)) {
        PyErr_Format(PyExc_TypeError, "promotion rule %R: the attribute keys must be a sequence of strings, not one string",
                     rule);
        return -1;
    }
    PyObject *fast = PySequence_Fast(keys, "a promotion rule's attribute keys must be a sequence of strings");
    if (!fast) return -1;
    int rc = 0;
    for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(fast) && rc == 0; i++)
        rc = add_source(r, PySequence_Fast_GET_ITEM(fast, i), c, how, (int)i, list_attributes);
    Py_DECREF(fast);
    return rc;
}

static int set_evaluation(Rules *r, PyObject *evaluation) {
    if (evaluation == Py_None) return 0;
    PyObject *event, *keys[5];
    if (!PyArg_ParseTuple(evaluation, "UUUUUU", &event, &keys[0], &keys[1], &keys[2], &keys[3], &keys[4])) {
        PyErr_SetString(PyExc_TypeError,
                        "evaluation must be (event name, name, score, label, passed, explanation attribute)");
        return -1;
    }
    if (!(r->evaluation_event = copy_utf8(event, NULL))) return -1;
    for (int i = 0; i < 5; i++)
        if (!(r->evaluation_keys[i] = copy_utf8(keys[i], NULL))) return -1;
    return 0;
}

static int build_rules(Rules *r, PyObject *rules, PyObject *list_attributes, PyObject *exception_fallback,
                       PyObject *event_span_columns, PyObject *evaluation) {
    for (int i = 0; i < SOURCE_TABLE; i++) r->table[i] = -1;
    r->sources = PyMem_Calloc(SOURCE_TABLE / 2, sizeof(Source));
    if (!r->sources) {
        PyErr_NoMemory();
        return -1;
    }
    PyObject *fast = PySequence_Fast(rules, "rules must be a sequence of (column, kind, attribute keys)");
    if (!fast) return -1;
    int rc = 0;
    for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(fast) && rc == 0; i++)
        rc = add_rule(r, PySequence_Fast_GET_ITEM(fast, i), list_attributes);
    Py_DECREF(fast);
    if (rc) return -1;
    if (exception_fallback != Py_None) {
        r->exception_column = column_index(r, exception_fallback);
        if (r->exception_column == -2) return -1;
        if (r->exception_column < 0 || r->types[r->exception_column] != T_STR) {
            PyErr_Format(PyExc_ValueError, "exception_fallback %R is not a string promoted column", exception_fallback);
            return -1;
        }
    }
    fast = PySequence_Fast(event_span_columns, "event_span_columns must be a sequence of promoted columns");
    if (!fast) return -1;
    for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(fast) && rc == 0; i++) {
        int c = column_index(r, PySequence_Fast_GET_ITEM(fast, i));
        if (c == -1)
            PyErr_Format(PyExc_ValueError, "event span column %R is not a promoted column",
                         PySequence_Fast_GET_ITEM(fast, i));
        if (c < 0) rc = -1;
        else r->event_columns[r->n_event_columns++] = c;
    }
    Py_DECREF(fast);
    if (rc) return -1;
    return set_evaluation(r, evaluation);
}

PyDoc_STRVAR(configure_doc,
"configure(rules, *, list_attributes=(), exception_fallback=None, event_span_columns=(), evaluation=None)\n\n"
"Set the promotion rules every Decoder and SpanBatch made afterwards uses.\n\n"
"rules: (column, kind, attribute keys in priority order[, scale]) per promoted column, kind one of string,\n"
"int, float, bool, list; the first key present with a usable value wins; a float column's values are\n"
"multiplied by scale. list_attributes: keys sent as arrays; one feeding a string column gives its first\n"
"element. exception_fallback: the string column that takes the first exception event's exception.type\n"
"when no key fed it. event_span_columns: promoted columns copied onto each event row. evaluation:\n"
"(event name, name, score, label, passed, explanation attribute) of evaluation-result events.");

static PyObject *py_configure(PyObject *module, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"rules", "list_attributes", "exception_fallback", "event_span_columns", "evaluation",
                             NULL};
    PyObject *rules, *list_attributes = NULL, *exception_fallback = Py_None, *event_span_columns = NULL,
                     *evaluation = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O|$OOOO", kwlist, &rules, &list_attributes, &exception_fallback,
                                     &event_span_columns, &evaluation))
        return NULL;
    PyObject *empty = PyTuple_New(0);
    if (!empty) return NULL;
    Rules r;
    memset(&r, 0, sizeof r);
    r.exception_column = -1;
    int rc = build_rules(&r, rules, list_attributes ? list_attributes : empty, exception_fallback,
                         event_span_columns ? event_span_columns : empty, evaluation);
    Py_DECREF(empty);
    if (rc < 0) {
        rules_free(&r);
        return NULL;
    }
    rules_free(&RULES);
    RULES = r;
    CONFIGURED = 1;
    Py_RETURN_NONE;
}

/* a tuple of n strings, the i-th from name_at(context, i) */
static PyObject *names_tuple(int n, const char *(*name_at)(const void *, int), const void *context) {
    PyObject *out = PyTuple_New(n);
    if (!out) return NULL;
    for (int i = 0; i < n; i++) {
        PyObject *name = PyUnicode_FromString(name_at(context, i));
        if (!name) {
            Py_DECREF(out);
            return NULL;
        }
        PyTuple_SET_ITEM(out, i, name);
    }
    return out;
}

static const char *rule_name(const void *rules, int i) { return ((const Rules *)rules)->names[i]; }
static const char *spec_name(const void *specs, int i) { return ((const ColumnSpec *)specs)[i].name; }
static const char *column_name(const void *columns, int i) { return ((const Column *)columns)[i].name; }

static PyObject *py_promoted_columns(PyObject *module, PyObject *unused) {
    return names_tuple(RULES.n_columns, rule_name, &RULES);
}

/* ---------------------------------------------------------------------------------------------------------
 * SpanBatch: the rows of one table
 */

enum { TABLE_SPANS, TABLE_EVENTS, TABLE_LINKS };
static const char *TABLE_NAMES[] = {"spans", "span_events", "span_links"};

typedef struct {
    PyObject_HEAD
    int table;
    Column *columns;
    int n_columns;
    int64_t rows;
} SpanBatch;

static void batch_truncate(SpanBatch *self, int64_t rows) {
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

static PyTypeObject SpanBatchType =
    LORATRACE_TYPE(SpanBatch, "SpanBatch",
                   "SpanBatch(table): rows of spans, span_events or span_links in Arrow layout, filled by\n"
                   "Decoder.decode_traces, exported with __arrow_c_array__.",
                   SpanBatch_init, SpanBatch_dealloc, SpanBatch_methods);

/* ---------------------------------------------------------------------------------------------------------
 * Decoder
 */

typedef struct {
    PyObject_HEAD
    Work work;
} Decoder;

static int Decoder_init(Decoder *self, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "", kwlist)) return -1;
    return CONFIGURED ? 0 : not_configured();
}

static void Decoder_dealloc(Decoder *self) {
    work_free(&self->work);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int batch_matches(SpanBatch *b, int table) {
    int expected = table == TABLE_SPANS    ? N_SPAN_COLUMNS + RULES.n_columns
                   : table == TABLE_EVENTS ? N_EVENT_COLUMNS + RULES.n_event_columns
                                           : N_LINK_COLUMNS;
    if (b->table == table && b->n_columns == expected) return 1;
    PyErr_Format(PyExc_ValueError, "not a %s batch of the current configuration", TABLE_NAMES[table]);
    return 0;
}

PyDoc_STRVAR(decode_traces_doc,
"decode_traces(payload, spans, events, links) -> (spans added, python_children, hard) | None\n\n"
"Append the rows of one serialized ExportTraceServiceRequest to the three SpanBatch objects.\n"
"python_children: empty, or the indexes of the request's spans with events or links, whose event and link\n"
"rows the caller adds in Python (none of them were appended). hard: a promoted attribute had a value of\n"
"another type, so decode.promote_frame must recompute the promoted columns. None (nothing appended):\n"
"decode this payload in Python.");

static PyObject *Decoder_decode_traces(Decoder *self, PyObject *args) {
    Py_buffer view;
    SpanBatch *spans, *events, *links;
    if (!PyArg_ParseTuple(args, "y*O!O!O!", &view, &SpanBatchType, &spans, &SpanBatchType, &events, &SpanBatchType,
                          &links))
        return NULL;
    if (!batch_matches(spans, TABLE_SPANS) || !batch_matches(events, TABLE_EVENTS) ||
        !batch_matches(links, TABLE_LINKS)) {
        PyBuffer_Release(&view);
        return NULL;
    }
    Walk walk;
    memset(&walk, 0, sizeof walk);
    walk.rules = &RULES;
    walk.work = &self->work;
    walk.spans = spans->columns;
    walk.events = events->columns;
    walk.links = links->columns;
    walk.children = PyList_New(0);
    if (!walk.children) {
        PyBuffer_Release(&view);
        return NULL;
    }
    int64_t marks[3] = {spans->rows, events->rows, links->rows};
    int rc = walk_request(&walk, view.buf, (size_t)view.len);
    buf_free(&walk.service);
    buf_free(&walk.resource_json);
    PyBuffer_Release(&view);
    if (rc == 0) {
        spans->rows += walk.span_rows;
        if (walk.children_python) {
            batch_truncate(events, marks[1]);
            batch_truncate(links, marks[2]);
        } else {
            events->rows += walk.event_rows;
            links->rows += walk.link_rows;
            Py_SETREF(walk.children, PyList_New(0));
            if (!walk.children) return NULL;
        }
        return Py_BuildValue("(nNO)", walk.span_rows, walk.children, walk.hard ? Py_True : Py_False);
    }
    Py_DECREF(walk.children);
    batch_truncate(spans, marks[0]);
    batch_truncate(events, marks[1]);
    batch_truncate(links, marks[2]);
    if (rc == -2) {
        if (!PyErr_Occurred()) PyErr_NoMemory();
        return NULL;
    }
    PyErr_Clear(); /* the Python path decodes (or rejects) this payload */
    Py_RETURN_NONE;
}

static PyMethodDef Decoder_methods[] = {
    {"decode_traces", (PyCFunction)Decoder_decode_traces, METH_VARARGS, decode_traces_doc},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject DecoderType =
    LORATRACE_TYPE(Decoder, "Decoder", "OTLP trace request bytes -> span, event and link columns; see decode_traces.",
                   Decoder_init, Decoder_dealloc, Decoder_methods);

/* ---------------------------------------------------------------------------------------------------------
 * the module
 */

/* {(message full name, field name): (number, wire type)} */
static PyObject *field_table(void) {
    PyObject *out = PyDict_New();
    if (!out) return NULL;
#define OTLP_FIELD_ENTRY(constant, message, field, number, wire_type)                   \
    {                                                                                   \
        PyObject *k = Py_BuildValue("(ss)", message, field);                            \
        PyObject *v = Py_BuildValue("(ii)", number, wire_type);                         \
        int bad = !k || !v || PyDict_SetItem(out, k, v) < 0;                            \
        Py_XDECREF(k);                                                                  \
        Py_XDECREF(v);                                                                  \
        if (bad) {                                                                      \
            Py_DECREF(out);                                                             \
            return NULL;                                                                \
        }                                                                               \
    }
    OTLP_FIELDS(OTLP_FIELD_ENTRY)
#undef OTLP_FIELD_ENTRY
    return out;
}

static PyMethodDef module_methods[] = {
    {"configure", (PyCFunction)(void (*)(void))py_configure, METH_VARARGS | METH_KEYWORDS, configure_doc},
    {"promoted_columns", (PyCFunction)py_promoted_columns, METH_NOARGS,
     "promoted_columns() -> the promoted columns of the configuration, in batch order"},
    {"count_messages", (PyCFunction)py_count_messages, METH_O, count_messages_doc},
    {"scan_traces", (PyCFunction)py_scan_traces, METH_VARARGS, scan_traces_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_fastdecode",
    "Compiled OTLP trace decoder for loratrace.collector.decode (optional accelerator).", -1, module_methods,
    NULL, NULL, NULL, NULL,
};

static int add_type(PyObject *m, const char *name, PyTypeObject *type) {
    if (PyType_Ready(type) < 0) return -1;
    Py_INCREF(type);
    if (PyModule_AddObject(m, name, (PyObject *)type) < 0) {
        Py_DECREF(type);
        return -1;
    }
    return 0;
}

static int add_object(PyObject *m, const char *name, PyObject *value) {
    if (!value) return -1;
    if (PyModule_AddObject(m, name, value) < 0) {
        Py_DECREF(value);
        return -1;
    }
    return 0;
}

PyMODINIT_FUNC PyInit__fastdecode(void) {
    const uint16_t probe = 1;
    if (*(const uint8_t *)&probe != 1) {
        PyErr_SetString(PyExc_ImportError, "loratrace's compiled decoder supports little-endian hosts only");
        return NULL;
    }
    PyObject *m = PyModule_Create(&module);
    if (!m) return NULL;
    if (add_type(m, "Decoder", &DecoderType) < 0 || add_type(m, "SpanBatch", &SpanBatchType) < 0 ||
        add_type(m, "KeyWindow", &KeyWindowType) < 0 ||
        add_object(m, "SPAN_COLUMNS", names_tuple(N_SPAN_COLUMNS, spec_name, SPAN_COLUMNS)) < 0 ||
        add_object(m, "EVENT_COLUMNS", names_tuple(N_EVENT_COLUMNS, spec_name, EVENT_COLUMNS)) < 0 ||
        add_object(m, "LINK_COLUMNS", names_tuple(N_LINK_COLUMNS, spec_name, LINK_COLUMNS)) < 0 ||
        add_object(m, "FIELDS", field_table()) < 0 ||
        add_object(m, "NANOARROW_VERSION", PyUnicode_FromString(NANOARROW_VERSION)) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
