/* What module.c gathers from the other parts of the extension into loratrace.collector._fastdecode. */
#ifndef LORATRACE_MODULE_H
#define LORATRACE_MODULE_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "columns.h"
#include "promotion.h"
#include "wire.h"

/* a Python type of this module with the usual slots */
#define LORATRACE_TYPE(c_type, py_name, doc, init, dealloc, methods)                      \
    {                                                                                   \
        PyVarObject_HEAD_INIT(NULL, 0).tp_name = "loratrace.collector._fastdecode." py_name, \
        .tp_basicsize = sizeof(c_type), .tp_flags = Py_TPFLAGS_DEFAULT, .tp_doc = doc,  \
        .tp_new = PyType_GenericNew, .tp_init = (initproc)(init),                       \
        .tp_dealloc = (destructor)(dealloc), .tp_methods = methods,                     \
    }

/* configure.c: the promotion rules, set once by configure() */
extern Rules RULES;
extern int CONFIGURED;
int not_configured(void); /* -1 with a RuntimeError set */
PyObject *py_configure(PyObject *module, PyObject *args, PyObject *kwds);
PyObject *py_promoted_columns(PyObject *module, PyObject *unused);
extern const char configure_doc[];

/* batch.c: the rows of one table */
enum { TABLE_SPANS, TABLE_EVENTS, TABLE_LINKS };
extern const char *const TABLE_NAMES[];
typedef struct {
    PyObject_HEAD
    int table;
    Column *columns;
    int n_columns;
    int64_t rows;
} SpanBatch;
extern PyTypeObject SpanBatchType;
void batch_truncate(SpanBatch *self, int64_t rows);

/* module.c: a tuple of n strings, the i-th from name_at(context, i) */
PyObject *names_tuple(int n, const char *(*name_at)(const void *, int), const void *context);

/* key_window.c */
extern PyTypeObject KeyWindowType;

/* scan.c */
PyObject *py_count_messages(PyObject *module, PyObject *arg);
PyObject *py_scan_traces(PyObject *module, PyObject *args);
extern const char count_messages_doc[];
extern const char scan_traces_doc[];

#endif
