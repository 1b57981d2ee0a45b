/* The walk of one ExportTraceServiceRequest; see otlp_walk.h */
#include <math.h>

#include "otlp_fields.h"
#include "otlp_walk.h"

#define COLUMN_SPEC(constant, name, type) [constant] = {name, type},
const ColumnSpec SPAN_COLUMNS[N_SPAN_COLUMNS] = {SPAN_COLUMN_LIST(COLUMN_SPEC)};
const ColumnSpec EVENT_COLUMNS[N_EVENT_COLUMNS] = {EVENT_COLUMN_LIST(COLUMN_SPEC)};
const ColumnSpec LINK_COLUMNS[N_LINK_COLUMNS] = {LINK_COLUMN_LIST(COLUMN_SPEC)};
#undef COLUMN_SPEC

static const char *KINDS[] = {"UNSPECIFIED", "INTERNAL", "SERVER", "CLIENT", "PRODUCER", "CONSUMER"};
static const char *STATUS[] = {"UNSET", "OK", "ERROR"};

/* what a span contributes to its event and link rows */
typedef struct {
    const uint8_t *trace_id, *span_id;
    size_t trace_n, span_n;
    uint64_t start;
    const Pick *picks;
} SpanContext;

/* the "exception.type" of the first "exception" event that has one, or NULL */
static int exception_type(const uint8_t *p, size_t n, const uint8_t **d, size_t *dn) {
    const uint8_t *end = p + n;
    Field f;
    int r;
    *d = NULL;
    while ((r = next_field(&p, end, &f)) > 0) {
        if (f.num != F_SPAN_EVENTS || f.wt != WT_LEN) continue;
        const uint8_t *q = f.d, *qe = f.d + f.n;
        Field g;
        int is_exc = 0;
        while (next_field(&q, qe, &g) > 0)
            if (g.num == F_EVENT_NAME && g.wt == WT_LEN) is_exc = g.n == 9 && memcmp(g.d, "exception", 9) == 0;
        if (!is_exc) continue;
        q = f.d;
        while (next_field(&q, qe, &g) > 0) {
            if (g.num != F_EVENT_ATTRIBUTES || g.wt != WT_LEN) continue;
            KVList one = {0};
            if (kv_parse_push(&one, g.d, g.n) < 0) {
                free(one.items);
                return -1;
            }
            KV kv = one.items[0];
            free(one.items);
            if (kv.key_n == 14 && memcmp(kv.key, "exception.type", 14) == 0) {
                AnyValue v;
                if (kv.val != NULL) {
                    if (parse_any(kv.val, kv.val_n, &v) < 0) return -1;
                    if (v.kind == AV_STRING && v.n) *d = v.d, *dn = v.n;
                }
                return 0;
            }
        }
    }
    return r < 0 ? -1 : 0;
}

/* -------------------------------------------------------------------------------------------------------
 * evaluation results: the conversions decode.RowBuffer._add_events applies to the event's attributes.
 * 1 = a value appended, 0 = this value needs the Python path (nothing appended), -2 = memory error.
 */

static int value_of(const KV *kv, AnyValue *v) {
    if (kv == NULL || kv->val == NULL) {
        v->kind = AV_NULL;
        return 0;
    }
    return parse_any(kv->val, kv->val_n, v);
}

/* How a value becomes text: str(value), None for no value; or, AS_JSON, _coerce("model", value): the string
 * itself, else json.dumps(value) (so an absent evaluation name reads "null"). */
enum { AS_STR, AS_JSON };

static int eval_text(Column *c, const KV *kv, Buf *tmp, int spelling) {
    AnyValue v;
    if (value_of(kv, &v) < 0) return 0;
    int json = spelling == AS_JSON;
    const char *text;
    tmp->len = 0;
    int rc;
    switch (v.kind) {
    case AV_NULL: return (json ? col_cstr(c, "null") : col_null(c)) < 0 ? -2 : 1;
    case AV_STRING: return col_str(c, v.d, v.n) < 0 ? -2 : 1;
    case AV_BYTES: return col_hex(c, v.d, v.n) < 0 ? -2 : 1;
    case AV_BOOL:
        text = json ? (v.i ? "true" : "false") : (v.i ? "True" : "False");
        rc = buf_put(tmp, text, strlen(text));
        break;
    case AV_INT:
    case AV_STRINDEX: rc = buf_int(tmp, v.i); break;
    case AV_DOUBLE:
        if (json && !isfinite(v.f)) {
            text = isnan(v.f) ? "NaN" : v.f > 0 ? "Infinity" : "-Infinity";
            rc = buf_put(tmp, text, strlen(text));
        } else {
            rc = buf_float_repr(tmp, v.f); /* repr(float): str() and json.dumps() agree on finite values */
        }
        break;
    default: return 0; /* a list / dict: Python's repr, or json.dumps' own separators */
    }
    if (rc < 0) return -2;
    return col_str(c, (const uint8_t *)tmp->p, tmp->len) < 0 ? -2 : 1;
}

/* float(value); None for no value, a bool, or a list / dict */
static int eval_score(Column *c, const KV *kv) {
    AnyValue v;
    if (value_of(kv, &v) < 0) return 0;
    switch (v.kind) {
    case AV_INT:
    case AV_STRINDEX: return col_f64(c, (double)v.i) < 0 ? -2 : 1;
    case AV_DOUBLE: return col_f64(c, v.f) < 0 ? -2 : 1;
    case AV_STRING:
    case AV_BYTES: return 0; /* float() of text: Python's own number parser */
    default: return col_null(c) < 0 ? -2 : 1;
    }
}

static int ascii_equal_nocase(const uint8_t *s, size_t n, const char *word) {
    size_t k = strlen(word);
    if (n != k) return 0;
    for (size_t i = 0; i < n; i++) {
        uint8_t ch = s[i];
        if (ch >= 'A' && ch <= 'Z') ch = (uint8_t)(ch + 32);
        if (ch != (uint8_t)word[i]) return 0;
    }
    return 1;
}

/* _coerce("fallback", value): a bool, or "true" / "false" in any case; None otherwise */
static int eval_passed(Column *c, const KV *kv) {
    AnyValue v;
    if (value_of(kv, &v) < 0) return 0;
    int rc;
    if (v.kind == AV_BOOL) rc = col_bool(c, (int)v.i);
    else if (v.kind == AV_STRING && ascii_equal_nocase(v.d, v.n, "true")) rc = col_bool(c, 1);
    else if (v.kind == AV_STRING && ascii_equal_nocase(v.d, v.n, "false")) rc = col_bool(c, 0);
    else rc = col_null(c);
    return rc < 0 ? -2 : 1;
}

static int evaluation_columns(Walk *o, size_t first, size_t last, int is_evaluation) {
    Column *col = o->events;
    if (!is_evaluation) {
        for (int i = E_EVAL_NAME; i <= E_EVAL_EXPLANATION; i++)
            if (col_null(&col[i]) < 0) return -2;
        return 1;
    }
    const Rules *rules = o->rules;
    const KV *kv[5];
    for (int i = 0; i < 5; i++) {
        const char *key = rules->evaluation_keys[i];
        kv[i] = key ? kv_lookup(o->work, first, last, key, strlen(key)) : NULL;
    }
    Buf *tmp = &o->work->scratch;
    int rc;
    if ((rc = eval_text(&col[E_EVAL_NAME], kv[0], tmp, AS_JSON)) <= 0) return rc;
    if ((rc = eval_score(&col[E_EVAL_SCORE], kv[1])) <= 0) return rc;
    if ((rc = eval_text(&col[E_EVAL_LABEL], kv[2], tmp, AS_STR)) <= 0) return rc;
    if (kv[3] == NULL) rc = col_null(&col[E_EVAL_PASSED]) < 0 ? -2 : 1;
    else rc = eval_passed(&col[E_EVAL_PASSED], kv[3]);
    if (rc <= 0) return rc;
    return eval_text(&col[E_EVAL_EXPLANATION], kv[4], tmp, AS_STR);
}

/* -------------------------------------------------------------------------------------------------------
 * events and links
 */

/* the resolved attributes first.. as JSON text in w->json (their entries stay on the stack) */
static int attributes_json(Work *w, size_t first) {
    int rc = kv_dedup_checked(w, first);
    w->json.len = 0;
    return rc ? rc : emit_kvlist_items(w, &w->json, first, w->kvs.n, 0);
}

/* An event's or a link's fields: the last of each known number in `last` (proto3: the last one wins), the
 * attributes pushed onto the stack, wire types and UTF-8 checked. expected[number] is the wire type + 1 (0: a
 * field this walk does not read). */
#define EXPECT(wire_type) ((wire_type) + 1)
enum { MAX_CHILD_FIELD = 7 };

static int read_child(Work *w, const uint8_t *p, size_t n, const int8_t expected[MAX_CHILD_FIELD], uint32_t attributes,
                      uint32_t string_fields, Field last[MAX_CHILD_FIELD]) {
    const uint8_t *end = p + n;
    Field f;
    int r, rc;
    memset(last, 0, MAX_CHILD_FIELD * sizeof(Field));
    while ((r = next_field(&p, end, &f)) > 0) {
        if (f.num >= MAX_CHILD_FIELD || !expected[f.num]) continue;
        if ((int)f.wt + 1 != expected[f.num]) return -1;
        if (f.num == attributes) {
            if ((rc = kv_parse_push(&w->kvs, f.d, f.n)) != 0) return rc;
        } else if ((string_fields >> f.num & 1) && !utf8_ok(f.d, f.n)) {
            return -1;
        }
        last[f.num] = f;
    }
    return r < 0 ? -1 : 0;
}

static const int8_t EVENT_FIELDS[MAX_CHILD_FIELD] = {
    [F_EVENT_TIME] = EXPECT(WT_I64), [F_EVENT_NAME] = EXPECT(WT_LEN), [F_EVENT_ATTRIBUTES] = EXPECT(WT_LEN),
    [F_EVENT_DROPPED] = EXPECT(WT_VARINT)};
static const int8_t LINK_FIELDS[MAX_CHILD_FIELD] = {
    [F_LINK_TRACE_ID] = EXPECT(WT_LEN),    [F_LINK_SPAN_ID] = EXPECT(WT_LEN), [F_LINK_TRACE_STATE] = EXPECT(WT_LEN),
    [F_LINK_ATTRIBUTES] = EXPECT(WT_LEN),  [F_LINK_DROPPED] = EXPECT(WT_VARINT), [F_LINK_FLAGS] = EXPECT(WT_I32)};

static int walk_event(Walk *o, const SpanContext *span, int64_t index, const uint8_t *p, size_t n) {
    Work *w = o->work;
    size_t first = w->kvs.n;
    Field fields[MAX_CHILD_FIELD];
    int rc = read_child(w, p, n, EVENT_FIELDS, F_EVENT_ATTRIBUTES, 1u << F_EVENT_NAME, fields);
    uint64_t time = fields[F_EVENT_TIME].v;
    const uint8_t *name = fields[F_EVENT_NAME].num ? fields[F_EVENT_NAME].d : (const uint8_t *)"";
    size_t name_n = fields[F_EVENT_NAME].num ? fields[F_EVENT_NAME].n : 0;
    if (rc == 0 && time > (uint64_t)INT64_MAX) rc = -1;
    if (rc == 0) rc = attributes_json(w, first);
    if (rc) {
        w->kvs.n = first;
        return rc;
    }
    const Buf *json = &w->json;
    Column *col = o->events;
    const char *eval_event = o->rules->evaluation_event;
    int is_evaluation = eval_event && name_n == strlen(eval_event) && memcmp(name, eval_event, name_n) == 0;
    int64_t mark = o->event_rows;
    if (col_hex(&col[E_TRACE_ID], span->trace_id, span->trace_n) < 0 ||
        col_hex(&col[E_SPAN_ID], span->span_id, span->span_n) < 0 || col_i64(&col[E_INDEX], index) < 0 ||
        col_i64(&col[E_TIME_UNIX_NANO], (int64_t)time) < 0 || col_i64(&col[E_TIME], (int64_t)(time / 1000)) < 0 ||
        col_str(&col[E_NAME], name, name_n) < 0 ||
        col_str(&col[E_ATTRIBUTES], (const uint8_t *)json->p, json->len) < 0) {
        w->kvs.n = first;
        return -2;
    }
    rc = evaluation_columns(o, first, w->kvs.n, is_evaluation);
    w->kvs.n = first;
    if (rc <= 0) { /* undo this row's first columns; the caller undoes the request's event rows */
        for (int i = 0; i < N_EVENT_COLUMNS; i++) col_truncate(&col[i], mark);
        if (rc == 0) o->children_python = 1;
        return rc == 0 ? 0 : -2;
    }
    if ((o->has_service ? col_str(&col[E_SERVICE], (const uint8_t *)o->service.p, o->service.len)
                        : col_null(&col[E_SERVICE])) < 0)
        return -2;
    const Rules *rules = o->rules;
    for (int i = 0; i < rules->n_event_columns; i++) {
        int c = rules->event_columns[i];
        if (put_pick(&col[N_EVENT_COLUMNS + i], &span->picks[c], rules->scales[c]) < 0) return -2;
    }
    o->event_rows++;
    return 0;
}

static int walk_link(Walk *o, const SpanContext *span, int64_t index, const uint8_t *p, size_t n) {
    Work *w = o->work;
    size_t first = w->kvs.n;
    Field fields[MAX_CHILD_FIELD];
    int rc = read_child(w, p, n, LINK_FIELDS, F_LINK_ATTRIBUTES, 1u << F_LINK_TRACE_STATE, fields);
    const Field *trace_id = &fields[F_LINK_TRACE_ID], *span_id = &fields[F_LINK_SPAN_ID],
                *state = &fields[F_LINK_TRACE_STATE];
    if (rc == 0) rc = attributes_json(w, first);
    w->kvs.n = first;
    if (rc) return rc;
    const Buf *json = &w->json;
    Column *col = o->links;
    if (col_hex(&col[L_TRACE_ID], span->trace_id, span->trace_n) < 0 ||
        col_hex(&col[L_SPAN_ID], span->span_id, span->span_n) < 0 || col_i64(&col[L_INDEX], index) < 0 ||
        col_i64(&col[L_START_TIME], (int64_t)(span->start / 1000)) < 0 ||
        col_hex(&col[L_LINKED_TRACE_ID], trace_id->d, trace_id->num ? trace_id->n : 0) < 0 ||
        col_hex(&col[L_LINKED_SPAN_ID], span_id->d, span_id->num ? span_id->n : 0) < 0 ||
        col_str_or_null(&col[L_LINKED_TRACE_STATE], state->d, state->num ? state->n : 0) < 0 ||
        col_str(&col[L_ATTRIBUTES], (const uint8_t *)json->p, json->len) < 0)
        return -2;
    o->link_rows++;
    return 0;
}

/* the event and link rows of one span (already walked once, so its fields are well-formed) */
static int walk_children(Walk *o, const SpanContext *span, const uint8_t *p, size_t n) {
    const uint8_t *end = p + n;
    Field f;
    int64_t events = 0, links = 0;
    int rc;
    while (next_field(&p, end, &f) > 0) {
        if (f.num == F_SPAN_EVENTS) {
            if ((rc = walk_event(o, span, events++, f.d, f.n)) != 0) return rc;
        } else if (f.num == F_SPAN_LINKS) {
            if ((rc = walk_link(o, span, links++, f.d, f.n)) != 0) return rc;
        }
        if (o->children_python) return 0;
    }
    return 0;
}

/* -------------------------------------------------------------------------------------------------------
 * spans
 */

static int walk_span(Walk *o, const uint8_t *p, size_t n) {
    const uint8_t *start_p = p, *end = p + n;
    const uint8_t *trace_id = NULL, *span_id = NULL, *parent = NULL, *state = NULL, *name = NULL;
    size_t trace_n = 0, span_n = 0, parent_n = 0, state_n = 0, name_n = 0;
    const uint8_t *status_msg = NULL;
    size_t status_msg_n = 0;
    uint64_t start = 0, endt = 0;
    int32_t kind = 0, status_code = 0;
    int has_events = 0, has_links = 0, seen_status = 0;
    const Rules *rules = o->rules;
    Work *w = o->work;
    size_t first = w->kvs.n;
    Field f;
    int r, rc;
    while ((r = next_field(&p, end, &f)) > 0) {
        switch (f.num) {
        case F_SPAN_TRACE_ID: if (f.wt != WT_LEN) return -1; trace_id = f.d, trace_n = f.n; break;
        case F_SPAN_SPAN_ID: if (f.wt != WT_LEN) return -1; span_id = f.d, span_n = f.n; break;
        case F_SPAN_TRACE_STATE:
            if (f.wt != WT_LEN || !utf8_ok(f.d, f.n)) return -1;
            state = f.d, state_n = f.n;
            break;
        case F_SPAN_PARENT_SPAN_ID: if (f.wt != WT_LEN) return -1; parent = f.d, parent_n = f.n; break;
        case F_SPAN_NAME:
            if (f.wt != WT_LEN || !utf8_ok(f.d, f.n)) return -1;
            name = f.d, name_n = f.n;
            break;
        case F_SPAN_KIND: if (f.wt != WT_VARINT) return -1; kind = (int32_t)(uint32_t)f.v; break;
        case F_SPAN_START: if (f.wt != WT_I64) return -1; start = f.v; break;
        case F_SPAN_END: if (f.wt != WT_I64) return -1; endt = f.v; break;
        case F_SPAN_ATTRIBUTES:
            if (f.wt != WT_LEN) return -1;
            if ((rc = kv_parse_push(&w->kvs, f.d, f.n)) < 0) return rc;
            break;
        case F_SPAN_DROPPED_ATTRIBUTES:
        case F_SPAN_DROPPED_EVENTS:
        case F_SPAN_DROPPED_LINKS: if (f.wt != WT_VARINT) return -1; break;
        case F_SPAN_FLAGS: if (f.wt != WT_I32) return -1; break;
        case F_SPAN_EVENTS: if (f.wt != WT_LEN) return -1; has_events = 1; break;
        case F_SPAN_LINKS: if (f.wt != WT_LEN) return -1; has_links = 1; break;
        case F_SPAN_STATUS: {
            if (f.wt != WT_LEN || seen_status++) return -1;
            const uint8_t *q = f.d, *qe = f.d + f.n;
            Field g;
            int s;
            while ((s = next_field(&q, qe, &g)) > 0) {
                if (g.num == F_STATUS_MESSAGE) {
                    if (g.wt != WT_LEN || !utf8_ok(g.d, g.n)) return -1;
                    status_msg = g.d, status_msg_n = g.n;
                } else if (g.num == F_STATUS_CODE) {
                    if (g.wt != WT_VARINT) return -1;
                    status_code = (int32_t)(uint32_t)g.v;
                }
            }
            if (s < 0) return -1;
            break;
        }
        default: break;
        }
    }
    if (r < 0) return -1;
    /* past int64 the Python path behaves differently per column; leave such spans to it */
    if (start > (uint64_t)INT64_MAX || endt > (uint64_t)INT64_MAX) return -1;

    /* attributes: JSON text and promoted values, one pass over the deduplicated list */
    if ((rc = kv_dedup_checked(w, first)) != 0) return rc;
    Pick picks[MAX_COLUMNS];
    PromoteFlags flags = {0, 0};
    promote_attributes(rules, w, first, w->kvs.n, picks, &flags);
    o->hard |= flags.hard;
    Buf *json = &w->json;
    json->len = 0;
    rc = emit_kvlist_items(w, json, first, w->kvs.n, 0);
    w->kvs.n = first;
    if (rc) return rc;

    const uint8_t *exc = NULL;
    size_t exc_n = 0;
    if (status_code == 2 && has_events && exception_type(start_p, n, &exc, &exc_n) < 0) return -1;

    Column *col = o->spans;
    int status = (status_code >= 0 && status_code < 3) ? status_code : 0;
    if (col_hex(&col[S_TRACE_ID], trace_id, trace_n) < 0 || col_hex(&col[S_SPAN_ID], span_id, span_n) < 0 ||
        (parent_n ? col_hex(&col[S_PARENT], parent, parent_n) : col_null(&col[S_PARENT])) < 0 ||
        col_str_or_null(&col[S_STATE], state, state_n) < 0 ||
        col_str(&col[S_NAME], name ? name : (const uint8_t *)"", name_n) < 0 ||
        col_cstr(&col[S_KIND], KINDS[(kind >= 0 && kind < 6) ? kind : 0]) < 0 ||
        (o->has_service ? col_str(&col[S_SERVICE], (const uint8_t *)o->service.p, o->service.len)
                        : col_null(&col[S_SERVICE])) < 0 ||
        col_str_or_null(&col[S_SCOPE_NAME], o->scope_name, o->scope_name_n) < 0 ||
        col_str_or_null(&col[S_SCOPE_VERSION], o->scope_version, o->scope_version_n) < 0 ||
        col_i64(&col[S_START], (int64_t)start) < 0 || col_i64(&col[S_END], (int64_t)endt) < 0 ||
        (endt >= start ? col_i64(&col[S_DURATION], (int64_t)(endt - start)) : col_null(&col[S_DURATION])) < 0 ||
        col_i64(&col[S_START_TIME], (int64_t)(start / 1000)) < 0 || col_cstr(&col[S_STATUS], STATUS[status]) < 0 ||
        col_str_or_null(&col[S_STATUS_MESSAGE], status_msg, status_msg_n) < 0 ||
        col_str(&col[S_RESOURCE], (const uint8_t *)o->resource_json.p, o->resource_json.len) < 0 ||
        col_str(&col[S_ATTRIBUTES], (const uint8_t *)json->p, json->len) < 0 ||
        (exc ? col_str(&col[S_EXCEPTION_TYPE], exc, exc_n) : col_null(&col[S_EXCEPTION_TYPE])) < 0)
        return -2;
    Column *promoted = col + N_SPAN_COLUMNS;
    for (int c = 0; c < rules->n_columns; c++) {
        int e;
        if (!picks[c].set && c == rules->exception_column && exc) e = col_str(&promoted[c], exc, exc_n);
        else e = put_pick(&promoted[c], &picks[c], rules->scales[c]);
        if (e < 0) return -2;
    }
    if (has_events || has_links) {
        PyObject *index = PyLong_FromSsize_t(o->span_rows);
        if (!index || PyList_Append(o->children, index) < 0) {
            Py_XDECREF(index);
            return -2;
        }
        Py_DECREF(index);
        /* the event rows copy the span's promoted values as promote() computes them: the same as here
         * unless a value needs Python's typing */
        if (has_events && (flags.hard || flags.row_differs)) o->children_python = 1;
        if (!o->children_python) {
            SpanContext span = {trace_id, span_id, trace_n, span_n, start, picks};
            if ((rc = walk_children(o, &span, start_p, n)) != 0) return rc;
        }
    }
    o->span_rows++;
    return 0;
}

/* -------------------------------------------------------------------------------------------------------
 * resources and scopes
 */

/* str(value) of a resource's service.name, as the Python path does; -1 for kinds left to Python */
static int service_name(const KV *kv, Walk *o) {
    AnyValue v;
    Buf *b = &o->service;
    b->len = 0;
    o->has_service = 0;
    if (kv->val == NULL) return 0;
    if (parse_any(kv->val, kv->val_n, &v) < 0) return -1;
    o->has_service = 1;
    switch (v.kind) {
    case AV_NULL: o->has_service = 0; return 0;
    case AV_STRING: return buf_put(b, v.d, v.n) < 0 ? -2 : 0;
    case AV_BYTES: return buf_hex(b, v.d, v.n) < 0 ? -2 : 0;
    case AV_BOOL: return buf_put(b, v.i ? "True" : "False", v.i ? 4 : 5) < 0 ? -2 : 0;
    case AV_INT:
    case AV_STRINDEX: return buf_int(b, v.i) < 0 ? -2 : 0;
    case AV_DOUBLE: return buf_float_repr(b, v.f) < 0 ? -2 : 0;
    default: return -1; /* str() of a list / dict: Python's repr */
    }
}

static int walk_resource_attributes(Walk *o, const uint8_t *resource, size_t resource_n) {
    Work *w = o->work;
    size_t first = w->kvs.n;
    Field f;
    int r = 0, rc = 0;
    if (resource) {
        /* Resource: attributes, dropped_attributes_count, entity_refs (left to Python) */
        const uint8_t *q = resource, *qe = resource + resource_n;
        while ((r = next_field(&q, qe, &f)) > 0) {
            if (f.num == F_RESOURCE_ATTRIBUTES) rc = f.wt != WT_LEN ? -1 : kv_parse_push(&w->kvs, f.d, f.n);
            else if (f.num == F_RESOURCE_DROPPED) rc = f.wt != WT_VARINT ? -1 : 0;
            else if (f.num == F_RESOURCE_ENTITY_REFS) rc = -1;
            if (rc) break;
        }
        if (r < 0) rc = -1;
    }
    if (rc == 0) rc = kv_dedup_checked(w, first);
    o->has_service = 0;
    if (rc == 0) {
        const KV *kv = kv_lookup(w, first, w->kvs.n, "service.name", 12);
        if (kv) rc = service_name(kv, o);
    }
    o->resource_json.len = 0;
    if (rc == 0) rc = emit_kvlist_items(w, &o->resource_json, first, w->kvs.n, 0);
    w->kvs.n = first;
    return rc;
}

/* an InstrumentationScope: its name and version; its attributes are not stored, but upb would reject
 * invalid ones */
static int walk_scope(Walk *o, const uint8_t *scope, size_t scope_n) {
    o->scope_name = o->scope_version = NULL;
    o->scope_name_n = o->scope_version_n = 0;
    if (!scope) return 0;
    Work *w = o->work;
    const uint8_t *t = scope, *te = scope + scope_n;
    Field h;
    int s, rc;
    while ((s = next_field(&t, te, &h)) > 0) {
        if (h.num == F_SCOPE_NAME || h.num == F_SCOPE_VERSION) {
            if (h.wt != WT_LEN || !utf8_ok(h.d, h.n)) return -1;
            if (h.num == F_SCOPE_NAME) o->scope_name = h.d, o->scope_name_n = h.n;
            else o->scope_version = h.d, o->scope_version_n = h.n;
        } else if (h.num == F_SCOPE_ATTRIBUTES) {
            if (h.wt != WT_LEN) return -1;
            Buf *b = &w->scratch;
            b->len = 0;
            size_t mark = w->kvs.n;
            rc = kv_parse_push(&w->kvs, h.d, h.n);
            if (!rc && w->kvs.items[mark].val)
                rc = emit_any(w, b, w->kvs.items[mark].val, w->kvs.items[mark].val_n, 1);
            w->kvs.n = mark;
            if (rc) return rc;
        } else if (h.num == F_SCOPE_DROPPED) {
            if (h.wt != WT_VARINT) return -1;
        }
    }
    return s < 0 ? -1 : 0;
}

/* ResourceSpans and ScopeSpans share one shape: a singular message (the resource / the scope), a repeated one
 * (scope_spans / spans) and a schema_url string. Finds the singular message (it may follow the repeated ones
 * on the wire) and checks the others' wire form. */
static int container_head(const uint8_t *p, size_t n, uint32_t single, uint32_t repeated, uint32_t url,
                          const uint8_t **d, size_t *dn) {
    const uint8_t *end = p + n;
    int seen = 0;
    Field f;
    int r;
    *d = NULL;
    *dn = 0;
    while ((r = next_field(&p, end, &f)) > 0) {
        if (f.num == single) {
            if (f.wt != WT_LEN || seen++) return -1;
            *d = f.d, *dn = f.n;
        } else if (f.num == repeated || f.num == url) {
            if (f.wt != WT_LEN) return -1;
            if (f.num == url && !utf8_ok(f.d, f.n)) return -1;
        }
    }
    return r < 0 ? -1 : 0;
}

/* each repeated message of a container already checked by container_head */
static int container_walk(Walk *o, const uint8_t *p, size_t n, uint32_t repeated,
                          int (*walk)(Walk *, const uint8_t *, size_t)) {
    const uint8_t *end = p + n;
    Field f;
    int rc;
    while (next_field(&p, end, &f) > 0) {
        if (f.num == repeated && (rc = walk(o, f.d, f.n)) != 0) return rc;
    }
    return 0;
}

static int walk_scope_spans(Walk *o, const uint8_t *p, size_t n) {
    const uint8_t *scope;
    size_t scope_n;
    int rc = container_head(p, n, F_SCOPE_SPANS_SCOPE, F_SCOPE_SPANS_SPANS, F_SCOPE_SPANS_SCHEMA_URL, &scope, &scope_n);
    if (rc == 0) rc = walk_scope(o, scope, scope_n);
    return rc ? rc : container_walk(o, p, n, F_SCOPE_SPANS_SPANS, walk_span);
}

static int walk_resource_spans(Walk *o, const uint8_t *p, size_t n) {
    const uint8_t *resource;
    size_t resource_n;
    int rc = container_head(p, n, F_RESOURCE_SPANS_RESOURCE, F_RESOURCE_SPANS_SCOPE_SPANS,
                            F_RESOURCE_SPANS_SCHEMA_URL, &resource, &resource_n);
    if (rc == 0) rc = walk_resource_attributes(o, resource, resource_n);
    return rc ? rc : container_walk(o, p, n, F_RESOURCE_SPANS_SCOPE_SPANS, walk_scope_spans);
}

int walk_request(Walk *o, const uint8_t *p, size_t n) {
    const uint8_t *end = p + n;
    Field f;
    int r, rc = 0;
    o->work->kvs.n = 0;
    while ((r = next_field(&p, end, &f)) > 0) {
        if (f.num != F_REQUEST_RESOURCE_SPANS) continue;
        if (f.wt != WT_LEN) return -1;
        if ((rc = walk_resource_spans(o, f.d, f.n)) != 0) return rc;
    }
    return r < 0 ? -1 : 0;
}
