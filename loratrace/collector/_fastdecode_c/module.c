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
 * attributes.c (attribute maps), promotion.c (promoted values), configure.c (the rules from Python),
 * otlp_walk.c (the request walk), columns.c (column builders), batch.c (a table's rows), arrow_export.c (Arrow C
 * data interface, with the vendored nanoarrow), key_window.c (the duplicate window), scan.c (the receivers'
 * request scans); this file, the Decoder and the module.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "arrow_export.h"
#include "module.h"
#include "otlp_fields.h"
#include "otlp_walk.h"
#include "promotion.h"

/* a tuple of n strings, the i-th from name_at(context, i) */
PyObject *names_tuple(int n, const char *(*name_at)(const void *, int), const void *context) {
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

static const char *spec_name(const void *specs, int i) { return ((const ColumnSpec *)specs)[i].name; }

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
