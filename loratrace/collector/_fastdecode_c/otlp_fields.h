/*
 * The OTLP trace messages' field numbers, by name, with the wire type each is encoded with.
 *
 * One X-macro table: it defines the F_* constants the walkers use and the table the module exports as
 * FIELDS, which tests/collector/test_fastdecode.py compares with the opentelemetry-proto descriptors, so a
 * number typed wrong here fails a test instead of silently dropping a field.
 */
#ifndef LORATRACE_OTLP_FIELDS_H
#define LORATRACE_OTLP_FIELDS_H

#include "wire.h"

#define OTLP_REQUEST "opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest"
#define OTLP_RESOURCE_SPANS "opentelemetry.proto.trace.v1.ResourceSpans"
#define OTLP_RESOURCE "opentelemetry.proto.resource.v1.Resource"
#define OTLP_SCOPE_SPANS "opentelemetry.proto.trace.v1.ScopeSpans"
#define OTLP_SCOPE "opentelemetry.proto.common.v1.InstrumentationScope"
#define OTLP_SPAN "opentelemetry.proto.trace.v1.Span"
#define OTLP_EVENT "opentelemetry.proto.trace.v1.Span.Event"
#define OTLP_LINK "opentelemetry.proto.trace.v1.Span.Link"
#define OTLP_STATUS "opentelemetry.proto.trace.v1.Status"
#define OTLP_KEY_VALUE "opentelemetry.proto.common.v1.KeyValue"
#define OTLP_ANY_VALUE "opentelemetry.proto.common.v1.AnyValue"
#define OTLP_ARRAY_VALUE "opentelemetry.proto.common.v1.ArrayValue"
#define OTLP_KEY_VALUE_LIST "opentelemetry.proto.common.v1.KeyValueList"

/* X(constant, message, field name, number, wire type) */
#define OTLP_FIELDS(X)                                                                 \
    X(F_REQUEST_RESOURCE_SPANS, OTLP_REQUEST, "resource_spans", 1, WT_LEN)             \
    X(F_RESOURCE_SPANS_RESOURCE, OTLP_RESOURCE_SPANS, "resource", 1, WT_LEN)           \
    X(F_RESOURCE_SPANS_SCOPE_SPANS, OTLP_RESOURCE_SPANS, "scope_spans", 2, WT_LEN)     \
    X(F_RESOURCE_SPANS_SCHEMA_URL, OTLP_RESOURCE_SPANS, "schema_url", 3, WT_LEN)       \
    X(F_RESOURCE_ATTRIBUTES, OTLP_RESOURCE, "attributes", 1, WT_LEN)                   \
    X(F_RESOURCE_DROPPED, OTLP_RESOURCE, "dropped_attributes_count", 2, WT_VARINT)     \
    X(F_RESOURCE_ENTITY_REFS, OTLP_RESOURCE, "entity_refs", 3, WT_LEN)                 \
    X(F_SCOPE_SPANS_SCOPE, OTLP_SCOPE_SPANS, "scope", 1, WT_LEN)                       \
    X(F_SCOPE_SPANS_SPANS, OTLP_SCOPE_SPANS, "spans", 2, WT_LEN)                       \
    X(F_SCOPE_SPANS_SCHEMA_URL, OTLP_SCOPE_SPANS, "schema_url", 3, WT_LEN)             \
    X(F_SCOPE_NAME, OTLP_SCOPE, "name", 1, WT_LEN)                                     \
    X(F_SCOPE_VERSION, OTLP_SCOPE, "version", 2, WT_LEN)                               \
    X(F_SCOPE_ATTRIBUTES, OTLP_SCOPE, "attributes", 3, WT_LEN)                         \
    X(F_SCOPE_DROPPED, OTLP_SCOPE, "dropped_attributes_count", 4, WT_VARINT)           \
    X(F_SPAN_TRACE_ID, OTLP_SPAN, "trace_id", 1, WT_LEN)                               \
    X(F_SPAN_SPAN_ID, OTLP_SPAN, "span_id", 2, WT_LEN)                                 \
    X(F_SPAN_TRACE_STATE, OTLP_SPAN, "trace_state", 3, WT_LEN)                         \
    X(F_SPAN_PARENT_SPAN_ID, OTLP_SPAN, "parent_span_id", 4, WT_LEN)                   \
    X(F_SPAN_NAME, OTLP_SPAN, "name", 5, WT_LEN)                                       \
    X(F_SPAN_KIND, OTLP_SPAN, "kind", 6, WT_VARINT)                                    \
    X(F_SPAN_START, OTLP_SPAN, "start_time_unix_nano", 7, WT_I64)                      \
    X(F_SPAN_END, OTLP_SPAN, "end_time_unix_nano", 8, WT_I64)                          \
    X(F_SPAN_ATTRIBUTES, OTLP_SPAN, "attributes", 9, WT_LEN)                           \
    X(F_SPAN_DROPPED_ATTRIBUTES, OTLP_SPAN, "dropped_attributes_count", 10, WT_VARINT) \
    X(F_SPAN_EVENTS, OTLP_SPAN, "events", 11, WT_LEN)                                  \
    X(F_SPAN_DROPPED_EVENTS, OTLP_SPAN, "dropped_events_count", 12, WT_VARINT)         \
    X(F_SPAN_LINKS, OTLP_SPAN, "links", 13, WT_LEN)                                    \
    X(F_SPAN_DROPPED_LINKS, OTLP_SPAN, "dropped_links_count", 14, WT_VARINT)           \
    X(F_SPAN_STATUS, OTLP_SPAN, "status", 15, WT_LEN)                                  \
    X(F_SPAN_FLAGS, OTLP_SPAN, "flags", 16, WT_I32)                                    \
    X(F_EVENT_TIME, OTLP_EVENT, "time_unix_nano", 1, WT_I64)                           \
    X(F_EVENT_NAME, OTLP_EVENT, "name", 2, WT_LEN)                                     \
    X(F_EVENT_ATTRIBUTES, OTLP_EVENT, "attributes", 3, WT_LEN)                         \
    X(F_EVENT_DROPPED, OTLP_EVENT, "dropped_attributes_count", 4, WT_VARINT)           \
    X(F_LINK_TRACE_ID, OTLP_LINK, "trace_id", 1, WT_LEN)                               \
    X(F_LINK_SPAN_ID, OTLP_LINK, "span_id", 2, WT_LEN)                                 \
    X(F_LINK_TRACE_STATE, OTLP_LINK, "trace_state", 3, WT_LEN)                         \
    X(F_LINK_ATTRIBUTES, OTLP_LINK, "attributes", 4, WT_LEN)                           \
    X(F_LINK_DROPPED, OTLP_LINK, "dropped_attributes_count", 5, WT_VARINT)             \
    X(F_LINK_FLAGS, OTLP_LINK, "flags", 6, WT_I32)                                     \
    X(F_STATUS_MESSAGE, OTLP_STATUS, "message", 2, WT_LEN)                             \
    X(F_STATUS_CODE, OTLP_STATUS, "code", 3, WT_VARINT)                                \
    X(F_KV_KEY, OTLP_KEY_VALUE, "key", 1, WT_LEN)                                      \
    X(F_KV_VALUE, OTLP_KEY_VALUE, "value", 2, WT_LEN)                                  \
    X(F_KV_KEY_STRINDEX, OTLP_KEY_VALUE, "key_strindex", 3, WT_VARINT)                 \
    X(F_ANY_STRING, OTLP_ANY_VALUE, "string_value", 1, WT_LEN)                         \
    X(F_ANY_BOOL, OTLP_ANY_VALUE, "bool_value", 2, WT_VARINT)                          \
    X(F_ANY_INT, OTLP_ANY_VALUE, "int_value", 3, WT_VARINT)                            \
    X(F_ANY_DOUBLE, OTLP_ANY_VALUE, "double_value", 4, WT_I64)                         \
    X(F_ANY_ARRAY, OTLP_ANY_VALUE, "array_value", 5, WT_LEN)                           \
    X(F_ANY_KVLIST, OTLP_ANY_VALUE, "kvlist_value", 6, WT_LEN)                         \
    X(F_ANY_BYTES, OTLP_ANY_VALUE, "bytes_value", 7, WT_LEN)                           \
    X(F_ANY_STRINDEX, OTLP_ANY_VALUE, "string_value_strindex", 8, WT_VARINT)           \
    X(F_ARRAY_VALUES, OTLP_ARRAY_VALUE, "values", 1, WT_LEN)                           \
    X(F_KVLIST_VALUES, OTLP_KEY_VALUE_LIST, "values", 1, WT_LEN)

#define OTLP_FIELD_ENUM(constant, message, field, number, wire_type) constant = number,
enum { OTLP_FIELDS(OTLP_FIELD_ENUM) };
#undef OTLP_FIELD_ENUM

#endif
