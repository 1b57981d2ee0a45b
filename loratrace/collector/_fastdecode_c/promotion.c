/* Attribute promotion; see promotion.h */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>

#include "otlp_fields.h"
#include "promotion.h"

static const Source *find_source(const Rules *rules, const uint8_t *k, size_t n, uint64_t h, int *next) {
    for (int s = *next; s < SOURCE_TABLE; s++) {
        int idx = rules->table[(h + (uint64_t)s) & (SOURCE_TABLE - 1)];
        if (idx < 0) return NULL;
        const Source *src = &rules->sources[idx];
        if (src->h == h && src->key_n == n && memcmp(src->key, k, n) == 0) {
            *next = s + 1;
            return src;
        }
    }
    return NULL;
}

enum { USABLE = 1, ABSENT = 0, EMPTY_LIST = 2, HARD = -1 };

/* is this AnyValue usable as-is for `how`? (stored in *pick) */
static int classify(const uint8_t *val, size_t val_n, int how, Pick *pick) {
    AnyValue v;
    if (val == NULL) return ABSENT;
    if (parse_any(val, val_n, &v) < 0) return HARD;
    if (v.kind == AV_NULL) return ABSENT;
    const int64_t lim = 9007199254740992ll; /* 2^53: exact through Python's int(float(value)) */
    switch (how) {
    case P_STR:
        if (v.kind != AV_STRING && v.kind != AV_BYTES) return HARD;
        pick->d = v.d, pick->n = v.n, pick->is_bytes = v.kind == AV_BYTES;
        return USABLE;
    case P_INT:
        if (v.kind != AV_INT || v.i > lim || v.i < -lim) return HARD;
        pick->i = v.i;
        return USABLE;
    case P_FLOAT:
        if (v.kind == AV_DOUBLE && isfinite(v.f)) {
            pick->f = v.f;
            return USABLE;
        }
        if (v.kind == AV_INT && v.i <= lim && v.i >= -lim) {
            pick->f = (double)v.i;
            return USABLE;
        }
        return HARD;
    case P_BOOL:
        if (v.kind != AV_BOOL) return HARD;
        pick->i = v.i;
        return USABLE;
    case P_LIST:
    case P_FIRST: {
        if (v.kind != AV_ARRAY) return HARD;
        const uint8_t *q = v.d, *end = v.d + v.n;
        Field f;
        int r;
        size_t count = 0;
        const uint8_t *first = NULL;
        size_t first_n = 0;
        while ((r = next_field(&q, end, &f)) > 0) {
            if (f.num != F_ARRAY_VALUES) continue;
            AnyValue e;
            if (f.wt != WT_LEN || parse_any(f.d, f.n, &e) < 0 || e.kind != AV_STRING) return HARD;
            if (count++ == 0) first = e.d, first_n = e.n;
        }
        if (r < 0) return HARD;
        if (how == P_FIRST) {
            if (count == 0) return EMPTY_LIST;
            pick->d = first, pick->n = first_n, pick->is_bytes = 0;
        } else {
            pick->d = v.d, pick->n = v.n;
        }
        return USABLE;
    }
    }
    return HARD;
}

void promote_attributes(const Rules *rules, const Work *w, size_t first, size_t last, Pick *picks,
                        PromoteFlags *flags) {
    for (int c = 0; c < rules->n_columns; c++) picks[c].set = 0;
    for (size_t i = first; i < last; i++) {
        const KV *kv = &w->kvs.items[i];
        if (kv->skip) continue;
        int next = 0;
        const Source *src;
        while ((src = find_source(rules, kv->key, kv->key_n, kv->h, &next)) != NULL) {
            Pick pk;
            int c = classify(kv->val, kv->val_n, src->how, &pk);
            if (c == HARD) {
                flags->hard = 1;
            } else if (c == EMPTY_LIST) {
                flags->row_differs = 1; /* promote() stops at an empty list; promote_frame reads on */
            } else if (c == USABLE) {
                Pick *cur = &picks[src->column];
                if (!cur->set || src->priority < cur->priority) {
                    pk.set = 1;
                    pk.priority = src->priority;
                    pk.how = src->how;
                    *cur = pk;
                }
            }
        }
    }
}

int put_pick(Column *c, const Pick *pk, double scale) {
    if (!pk->set) return col_null(c);
    switch (pk->how) {
    case P_STR:
    case P_FIRST: return pk->is_bytes ? col_hex(c, pk->d, pk->n) : col_str(c, pk->d, pk->n);
    case P_INT: return col_i64(c, pk->i);
    case P_FLOAT: return col_f64(c, scale == 1.0 ? pk->f : pk->f * scale);
    case P_BOOL: return col_bool(c, (int)pk->i);
    case P_LIST: return col_string_list(c, pk->d, pk->n);
    }
    return col_null(c);
}

void rules_free(Rules *rules) {
    for (int i = 0; i < rules->n_columns; i++) PyMem_Free(rules->names[i]);
    for (int i = 0; i < rules->n_sources; i++) PyMem_Free(rules->sources[i].key);
    PyMem_Free(rules->sources);
    PyMem_Free(rules->evaluation_event);
    for (int i = 0; i < 5; i++) PyMem_Free(rules->evaluation_keys[i]);
    memset(rules, 0, sizeof *rules);
    rules->exception_column = -1;
}
