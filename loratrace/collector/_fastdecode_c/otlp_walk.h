/*
 * The walk of one ExportTraceServiceRequest: resources, scopes, spans, their events and links, appended to the
 * span / event / link columns exactly as RowBuffer.add_traces fills them.
 */
#ifndef LORATRACE_OTLP_WALK_H
#define LORATRACE_OTLP_WALK_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "attributes.h"
#include "columns.h"
#include "promotion.h"

typedef struct {
    const char *name;
    int type;
} ColumnSpec;

/* the columns every batch of a table starts with (the promoted ones follow, in the rules' order) */
enum {
    S_TRACE_ID, S_SPAN_ID, S_PARENT, S_STATE, S_NAME, S_KIND, S_SERVICE, S_SCOPE_NAME, S_SCOPE_VERSION,
    S_START, S_END, S_DURATION, S_START_TIME, S_STATUS, S_STATUS_MESSAGE, S_RESOURCE, S_ATTRIBUTES,
    S_EXCEPTION_TYPE, N_SPAN_COLUMNS
};
enum {
    E_TRACE_ID, E_SPAN_ID, E_INDEX, E_TIME_UNIX_NANO, E_TIME, E_NAME, E_ATTRIBUTES, E_EVAL_NAME, E_EVAL_SCORE,
    E_EVAL_LABEL, E_EVAL_PASSED, E_EVAL_EXPLANATION, E_SERVICE, N_EVENT_COLUMNS
};
enum {
    L_TRACE_ID, L_SPAN_ID, L_INDEX, L_START_TIME, L_LINKED_TRACE_ID, L_LINKED_SPAN_ID, L_LINKED_TRACE_STATE,
    L_ATTRIBUTES, N_LINK_COLUMNS
};
extern const ColumnSpec SPAN_COLUMNS[N_SPAN_COLUMNS];
extern const ColumnSpec EVENT_COLUMNS[N_EVENT_COLUMNS];
extern const ColumnSpec LINK_COLUMNS[N_LINK_COLUMNS];

typedef struct {
    const Rules *rules;
    Work *work;
    Column *spans, *events, *links; /* the three batches' columns */
    PyObject *children;             /* indexes of the spans with events or links */
    Buf service;                    /* this resource's service name (has_service: not null) */
    int has_service;
    Buf resource_json;
    const uint8_t *scope_name, *scope_version;
    size_t scope_name_n, scope_version_n;
    Py_ssize_t span_rows;
    int64_t event_rows, link_rows;
    int hard;              /* promote_frame must type the span batch's promoted columns */
    int children_python;   /* some event or link row needs the Python path: it adds all of this request's */
} Walk;

/* 0 ok, -1 leave the whole payload to the Python path, -2 Python error set */
int walk_request(Walk *walk, const uint8_t *p, size_t n);

#endif
