/*
 * Request scans for the receivers: what a request will cost to parse, and whether any span is over the
 * attribute limits, read from the wire bytes before upb builds a single message.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "module.h"
#include "otlp_fields.h"

#define SCAN_DEPTH 32

/* messages nested in p..n (n itself excluded), counting every length-delimited field whose bytes parse as a
 * message: an upper bound of what upb allocates (strings that happen to parse are counted too). Visits each
 * byte at most once per level of nesting. -1 when p..n is not a message. */
static int64_t count_messages(const uint8_t *p, size_t n, int depth) {
    const uint8_t *end = p + n;
    Field f;
    int r;
    int64_t total = 0;
    while ((r = next_field(&p, end, &f)) > 0) {
        if (f.wt != WT_LEN) continue;
        if (depth >= SCAN_DEPTH) {
            total += 1;
            continue;
        }
        int64_t inner = count_messages(f.d, f.n, depth + 1);
        if (inner >= 0) total += 1 + inner;
    }
    return r < 0 ? -1 : total;
}

const char count_messages_doc[] =
"count_messages(payload) -> int\n\n"
"An upper bound of the protobuf messages nested in payload (for the memory a parse takes); -1 when payload\n"
"is not a protobuf message.";

PyObject *py_count_messages(PyObject *module, PyObject *arg) {
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0) return NULL;
    int64_t total;
    Py_BEGIN_ALLOW_THREADS
    total = count_messages(view.buf, (size_t)view.len, 0);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&view);
    return PyLong_FromLongLong(total);
}

/* One walk of an ExportTraceServiceRequest along its schema, stepping over strings without reading them: the
 * messages upb will build, and the spans over the attribute limits. */
typedef struct {
    int64_t messages;
    size_t max_count;
    size_t max_value;
    int over; /* the span being walked is over a limit */
} TraceScan;

/* an AnyValue (already counted): its nested array / kvlist messages; long strings and bytes set `over` */
static void scan_any(TraceScan *t, const uint8_t *p, size_t n, int depth, int in_array);

/* one KeyValue message (counted here, with its value) */
static inline void scan_kv(TraceScan *t, const uint8_t *q, size_t n, int depth, int limited) {
    const uint8_t *qe = q + n;
    t->messages++;
    /* the usual short key-value, read without next_field: a one-byte key length, then a scalar value
     * shorter than 128 bytes (the value limit applies only above that) */
    if (qe - q >= 2 && q[0] == TAG(F_KV_KEY, WT_LEN) && q[1] < 0x80 && qe - q >= 2 + q[1]) {
        const uint8_t *v = q + 2 + q[1];
        if (qe - v >= 3 && v[0] == TAG(F_KV_VALUE, WT_LEN) && v[1] < 0x80 && v + 2 + v[1] == qe &&
            v[2] != TAG(F_ANY_ARRAY, WT_LEN) && v[2] != TAG(F_ANY_KVLIST, WT_LEN) &&
            (v[1] <= t->max_value || v[2] == TAG(F_ANY_BOOL, WT_VARINT) || v[2] == TAG(F_ANY_INT, WT_VARINT) ||
             v[2] == TAG(F_ANY_DOUBLE, WT_I64))) {
            t->messages++;
            return;
        }
    }
    Field g;
    while (next_field(&q, qe, &g) > 0)
        if (g.num == F_KV_VALUE && g.wt == WT_LEN) {
            t->messages++;
            scan_any(t, g.d, g.n, depth + 1, limited ? 0 : -1);
        }
}

static void scan_kvs(TraceScan *t, const uint8_t *p, size_t n, uint32_t num, int depth, int limited) {
    const uint8_t *end = p + n;
    Field f;
    size_t count = 0;
    while (next_field(&p, end, &f) > 0) {
        if (f.num != num || f.wt != WT_LEN) continue;
        if (limited && ++count > t->max_count) t->over = 1;
        scan_kv(t, f.d, f.n, depth, limited);
    }
}

static void scan_any(TraceScan *t, const uint8_t *p, size_t n, int depth, int in_array) {
    if (depth > SCAN_DEPTH) return; /* upb refuses deeper nesting */
    const uint8_t *end = p + n;
    Field f;
    while (next_field(&p, end, &f) > 0) {
        if (f.wt != WT_LEN) continue;
        /* in_array: 0 an attribute's value, 1 an element of its array, -1 not under the limits */
        if ((f.num == F_ANY_STRING || f.num == F_ANY_BYTES) && in_array >= 0 && f.n > t->max_value) t->over = 1;
        if (f.num == F_ANY_ARRAY || f.num == F_ANY_KVLIST) {
            t->messages++;
            const uint8_t *q = f.d, *qe = f.d + f.n;
            Field g;
            if (f.num == F_ANY_KVLIST) {
                scan_kvs(t, f.d, f.n, F_KVLIST_VALUES, depth + 1, 0);
                continue;
            }
            while (next_field(&q, qe, &g) > 0)
                if (g.num == F_ARRAY_VALUES && g.wt == WT_LEN) {
                    t->messages++;
                    scan_any(t, g.d, g.n, depth + 1, in_array == 0 ? 1 : -1);
                }
        }
    }
}

static void scan_span(TraceScan *t, const uint8_t *p, size_t n) {
    const uint8_t *end = p + n;
    Field f;
    size_t count = 0;
    t->over = 0;
    while (next_field(&p, end, &f) > 0) {
        if (f.wt != WT_LEN) continue;
        if (f.num == F_SPAN_ATTRIBUTES) {
            if (++count > t->max_count) t->over = 1;
            scan_kv(t, f.d, f.n, 0, 1);
        } else if (f.num == F_SPAN_EVENTS) {
            t->messages++;
            scan_kvs(t, f.d, f.n, F_EVENT_ATTRIBUTES, 0, 1);
        } else if (f.num == F_SPAN_LINKS) {
            t->messages++;
            scan_kvs(t, f.d, f.n, F_LINK_ATTRIBUTES, 0, 1);
        } else if (f.num == F_SPAN_STATUS) {
            t->messages++;
        }
    }
}

/* level 0 a ResourceSpans, 1 a ScopeSpans: the singular resource / scope (its attributes), then each repeated
 * message; returns the spans over the limits */
static int64_t scan_container(TraceScan *t, const uint8_t *p, size_t n, int level) {
    static const uint32_t single[] = {F_RESOURCE_SPANS_RESOURCE, F_SCOPE_SPANS_SCOPE};
    static const uint32_t attributes[] = {F_RESOURCE_ATTRIBUTES, F_SCOPE_ATTRIBUTES};
    static const uint32_t repeated[] = {F_RESOURCE_SPANS_SCOPE_SPANS, F_SCOPE_SPANS_SPANS};
    const uint8_t *end = p + n;
    int64_t over = 0;
    Field f;
    while (next_field(&p, end, &f) > 0) {
        if (f.wt != WT_LEN) continue;
        if (f.num == single[level]) {
            t->messages++;
            scan_kvs(t, f.d, f.n, attributes[level], 0, 0);
        } else if (f.num == repeated[level]) {
            t->messages++;
            if (level == 0) {
                over += scan_container(t, f.d, f.n, 1);
            } else {
                scan_span(t, f.d, f.n);
                over += t->over;
            }
        }
    }
    return over;
}

const char scan_traces_doc[] =
"scan_traces(payload, max_attributes, max_value_bytes) -> (messages, spans_over_limits)\n\n"
"Reads an ExportTraceServiceRequest's wire bytes along its schema, without building it: the number of\n"
"messages a parse allocates (resource / scope / span / event / link / key-value / value messages), and how\n"
"many spans have more than max_attributes attributes (on the span, one event or one link) or a string /\n"
"bytes attribute value (or array element) over max_value_bytes bytes. Malformed parts are left to upb.";

PyObject *py_scan_traces(PyObject *module, PyObject *args) {
    Py_buffer view;
    Py_ssize_t max_count, max_value;
    if (!PyArg_ParseTuple(args, "y*nn", &view, &max_count, &max_value)) return NULL;
    if (max_count < 0 || max_value < 0) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_ValueError, "limits must not be negative");
        return NULL;
    }
    TraceScan t = {0, (size_t)max_count, (size_t)max_value, 0};
    int64_t over = 0;
    Py_BEGIN_ALLOW_THREADS
    const uint8_t *p = view.buf, *end = p + view.len;
    Field rs;
    while (next_field(&p, end, &rs) > 0) {
        if (rs.num != F_REQUEST_RESOURCE_SPANS || rs.wt != WT_LEN) continue;
        t.messages++;
        over += scan_container(&t, rs.d, rs.n, 0);
    }
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&view);
    return Py_BuildValue("(LL)", (long long)t.messages, (long long)over);
}

