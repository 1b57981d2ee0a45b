/*
 * configure(): the promotion rules decode.py gives the module at import, checked and kept in RULES for every
 * Decoder and SpanBatch made afterwards.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "module.h"

Rules RULES = {.exception_column = -1};
int CONFIGURED = 0;

int not_configured(void) {
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
        PyErr_Format(PyExc_TypeError,
                     "promotion rule %R: the attribute keys must be a sequence of strings, not one string", rule);
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

const char configure_doc[] =
"configure(rules, *, list_attributes=(), exception_fallback=None, event_span_columns=(), evaluation=None)\n\n"
"Set the promotion rules every Decoder and SpanBatch made afterwards uses.\n\n"
"rules: (column, kind, attribute keys in priority order[, scale]) per promoted column, kind one of string,\n"
"int, float, bool, list; the first key present with a usable value wins; a float column's values are\n"
"multiplied by scale. list_attributes: keys sent as arrays; one feeding a string column gives its first\n"
"element. exception_fallback: the string column that takes the first exception event's exception.type\n"
"when no key fed it. event_span_columns: promoted columns copied onto each event row. evaluation:\n"
"(event name, name, score, label, passed, explanation attribute) of evaluation-result events.";

PyObject *py_configure(PyObject *module, PyObject *args, PyObject *kwds) {
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

static const char *rule_name(const void *rules, int i) { return ((const Rules *)rules)->names[i]; }

PyObject *py_promoted_columns(PyObject *module, PyObject *unused) {
    return names_tuple(RULES.n_columns, rule_name, &RULES);
}
