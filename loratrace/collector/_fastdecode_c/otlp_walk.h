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

/* The columns every batch of a table starts with (the promoted ones follow, in the rules' order), as
 * X(constant, name, type); span "exception_type" is the first exception event's type, what error_type falls
 * back to. */
#define SPAN_COLUMN_LIST(X)                                                                                   \
    X(S_TRACE_ID, "trace_id", T_STR) X(S_SPAN_ID, "span_id", T_STR) X(S_PARENT, "parent_span_id", T_STR)     \
    X(S_STATE, "trace_state", T_STR) X(S_NAME, "name", T_STR) X(S_KIND, "kind", T_STR)                        \
    X(S_SERVICE, "service_name", T_STR) X(S_SCOPE_NAME, "scope_name", T_STR)                                  \
    X(S_SCOPE_VERSION, "scope_version", T_STR) X(S_START, "start_time_unix_nano", T_I64)                      \
    X(S_END, "end_time_unix_nano", T_I64) X(S_DURATION, "duration_ns", T_I64) X(S_START_TIME, "start_time", T_TS) \
    X(S_STATUS, "status_code", T_STR) X(S_STATUS_MESSAGE, "status_message", T_STR)                            \
    X(S_RESOURCE, "resource_attributes", T_STR) X(S_ATTRIBUTES, "attributes", T_STR)                          \
    X(S_EXCEPTION_TYPE, "exception_type", T_STR)
#define EVENT_COLUMN_LIST(X)                                                                                  \
    X(E_TRACE_ID, "trace_id", T_STR) X(E_SPAN_ID, "span_id", T_STR) X(E_INDEX, "event_index", T_I64)           \
    X(E_TIME_UNIX_NANO, "time_unix_nano", T_I64) X(E_TIME, "time", T_TS) X(E_NAME, "name", T_STR)             \
    X(E_ATTRIBUTES, "attributes", T_STR) X(E_EVAL_NAME, "eval_name", T_STR) X(E_EVAL_SCORE, "eval_score", T_F64) \
    X(E_EVAL_LABEL, "eval_label", T_STR) X(E_EVAL_PASSED, "eval_passed", T_BOOL)                              \
    X(E_EVAL_EXPLANATION, "eval_explanation", T_STR) X(E_SERVICE, "service_name", T_STR)
#define LINK_COLUMN_LIST(X)                                                                                   \
    X(L_TRACE_ID, "trace_id", T_STR) X(L_SPAN_ID, "span_id", T_STR) X(L_INDEX, "link_index", T_I64)            \
    X(L_START_TIME, "start_time", T_TS) X(L_LINKED_TRACE_ID, "linked_trace_id", T_STR)                        \
    X(L_LINKED_SPAN_ID, "linked_span_id", T_STR) X(L_LINKED_TRACE_STATE, "linked_trace_state", T_STR)         \
    X(L_ATTRIBUTES, "attributes", T_STR)

#define COLUMN_ENUM(constant, name, type) constant,
enum { SPAN_COLUMN_LIST(COLUMN_ENUM) N_SPAN_COLUMNS };
enum { EVENT_COLUMN_LIST(COLUMN_ENUM) N_EVENT_COLUMNS };
enum { LINK_COLUMN_LIST(COLUMN_ENUM) N_LINK_COLUMNS };
#undef COLUMN_ENUM
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
