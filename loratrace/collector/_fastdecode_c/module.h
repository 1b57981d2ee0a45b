/* What module.c gathers from the other parts of the extension into loratrace.collector._fastdecode. */
#ifndef LORATRACE_MODULE_H
#define LORATRACE_MODULE_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "wire.h"

/* a Python type of this module with the usual slots */
#define LORATRACE_TYPE(c_type, py_name, doc, init, dealloc, methods)                      \
    {                                                                                   \
        PyVarObject_HEAD_INIT(NULL, 0).tp_name = "loratrace.collector._fastdecode." py_name, \
        .tp_basicsize = sizeof(c_type), .tp_flags = Py_TPFLAGS_DEFAULT, .tp_doc = doc,  \
        .tp_new = PyType_GenericNew, .tp_init = (initproc)(init),                       \
        .tp_dealloc = (destructor)(dealloc), .tp_methods = methods,                     \
    }

/* key_window.c */
extern PyTypeObject KeyWindowType;

/* scan.c */
PyObject *py_count_messages(PyObject *module, PyObject *arg);
PyObject *py_scan_traces(PyObject *module, PyObject *args);
extern const char count_messages_doc[];
extern const char scan_traces_doc[];

#endif
