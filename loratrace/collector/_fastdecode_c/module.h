/* What module.c gathers from the other parts of the extension into loratrace.collector._fastdecode. */
#ifndef LORATRACE_MODULE_H
#define LORATRACE_MODULE_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "wire.h"

/* key_window.c */
extern PyTypeObject KeyWindowType;

/* scan.c */
PyObject *py_count_messages(PyObject *module, PyObject *arg);
PyObject *py_scan_traces(PyObject *module, PyObject *args);
extern const char count_messages_doc[];
extern const char scan_traces_doc[];

#endif
