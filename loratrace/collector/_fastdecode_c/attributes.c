/* OTLP attribute lists -> JSON object text; see attributes.h */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "attributes.h"
#include "otlp_fields.h"

/* AnyValue's oneof, by field number: the kind it gives and the wire type it must come with */
static const struct {
    int8_t kind;
    int8_t wire_type;
} ANY_FIELDS[] = {
    [F_ANY_STRING] = {AV_STRING, WT_LEN},   [F_ANY_BOOL] = {AV_BOOL, WT_VARINT},
    [F_ANY_INT] = {AV_INT, WT_VARINT},      [F_ANY_DOUBLE] = {AV_DOUBLE, WT_I64},
    [F_ANY_ARRAY] = {AV_ARRAY, WT_LEN},     [F_ANY_KVLIST] = {AV_KVLIST, WT_LEN},
    [F_ANY_BYTES] = {AV_BYTES, WT_LEN},     [F_ANY_STRINDEX] = {AV_STRINDEX, WT_VARINT},
};

int parse_any(const uint8_t *p, size_t n, AnyValue *out) {
    const uint8_t *end = p + n;
    Field f;
    int r, seen = 0;
    out->kind = AV_NULL;
    while ((r = next_field(&p, end, &f)) > 0) {
        if (f.num >= sizeof ANY_FIELDS / sizeof ANY_FIELDS[0] || ANY_FIELDS[f.num].kind == AV_NULL)
            continue; /* unknown field: ignored, like upb */
        if ((int)f.wt != ANY_FIELDS[f.num].wire_type) return -1;
        /* a oneof set twice is legal protobuf (last wins, messages merge); canonical encoders never do it */
        if (++seen > 1) return -1;
        out->kind = ANY_FIELDS[f.num].kind;
        switch (out->kind) {
        case AV_BOOL: out->i = f.v != 0; break;
        case AV_INT: out->i = (int64_t)f.v; break;
        case AV_STRINDEX: out->i = (int32_t)(uint32_t)f.v; break;
        case AV_DOUBLE: memcpy(&out->f, &f.v, 8); break;
        default: out->d = f.d, out->n = f.n;
        }
    }
    if (r < 0) return -1;
    if (out->kind == AV_STRING && !utf8_ok(out->d, out->n)) return -1;
    return 0;
}

uint64_t key_hash(const uint8_t *k, size_t n) {
    uint64_t a = 0, z = 0;
    if (n >= 8) {
        memcpy(&a, k, 8);
        memcpy(&z, k + n - 8, 8);
    } else {
        for (size_t i = 0; i < n; i++) a = (a << 8) | k[i];
    }
    uint64_t h = (a * 0x9e3779b97f4a7c15ull) ^ (z + 0x632be59bd9b4e019ull) ^ ((uint64_t)n << 56);
    h ^= h >> 29;
    h *= 0xbf58476d1ce4e5b9ull;
    h ^= h >> 32;
    return h;
}

static int kv_push(KVList *l, KV kv) {
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 32;
        KV *items = realloc(l->items, cap * sizeof(KV));
        if (!items) {
            PyErr_NoMemory();
            return -1;
        }
        l->items = items;
        l->cap = cap;
    }
    l->items[l->n++] = kv;
    return 0;
}

int kv_parse_push(KVList *l, const uint8_t *p, size_t n) {
    const uint8_t *end = p + n;
    Field f;
    int r, seen_val = 0;
    KV kv = {(const uint8_t *)"", 0, NULL, 0, 0, 0};
    while ((r = next_field(&p, end, &f)) > 0) {
        if (f.num == F_KV_KEY) {
            if (f.wt != WT_LEN) return -1;
            kv.key = f.d, kv.key_n = f.n;
        } else if (f.num == F_KV_VALUE) {
            if (f.wt != WT_LEN || seen_val++) return -1;
            kv.val = f.d, kv.val_n = f.n;
        } else if (f.num == F_KV_KEY_STRINDEX) {
            if (f.wt != WT_VARINT) return -1;
        }
    }
    if (r < 0 || !utf8_ok(kv.key, kv.key_n)) return -1;
    kv.h = key_hash(kv.key, kv.key_n);
    if (kv_push(l, kv) < 0) return -2;
    return 0;
}

int kv_push_fields(Work *w, const uint8_t *p, size_t n, uint32_t num) {
    const uint8_t *end = p + n;
    Field f;
    int r, rc;
    while ((r = next_field(&p, end, &f)) > 0) {
        if (f.num != num) continue;
        if (f.wt != WT_LEN) return -1;
        if ((rc = kv_parse_push(&w->kvs, f.d, f.n)) < 0) return rc;
    }
    return r < 0 ? -1 : 0;
}

/* Duplicate keys, found with an open-addressing table of entry indexes: on the stack for the usual short
 * lists, on the heap for long ones, so a span with a million attributes costs linear time (a pairwise scan
 * takes minutes for it and stalls the store writer). Returns 1 when a key repeats, 0 when none does, -2 on
 * a memory error. With `resolve`, the first occurrence of a key takes the last occurrence's value and the
 * later ones are marked `skip`, which is how Python's dict treats repeated keys. */
static int kv_find_duplicates(KV *items, size_t n, int resolve) {
    if (n < 2) return 0;
    uint32_t stack_slots[256];
    uint32_t *slots = stack_slots;
    size_t size = 256;
    if (n > 128) {
        if (n > (size_t)UINT32_MAX / 4) {
            PyErr_SetString(PyExc_OverflowError, "too many attributes in one list");
            return -2;
        }
        size = 512;
        while (size < 2 * n) size *= 2;
        slots = malloc(size * sizeof(uint32_t));
        if (!slots) {
            PyErr_NoMemory();
            return -2;
        }
    }
    memset(slots, 0xff, size * sizeof(uint32_t));
    size_t mask = size - 1;
    int dup = 0;
    for (size_t i = 0; i < n; i++) {
        size_t s = (size_t)(items[i].h & mask);
        int found = 0;
        while (slots[s] != 0xffffffffu) {
            KV *o = &items[slots[s]];
            if (o->h == items[i].h && o->key_n == items[i].key_n && memcmp(o->key, items[i].key, o->key_n) == 0) {
                found = 1;
                break;
            }
            s = (s + 1) & mask;
        }
        if (!found) {
            slots[s] = (uint32_t)i;
            continue;
        }
        dup = 1;
        if (!resolve) break;
        KV *first = &items[slots[s]];
        first->val = items[i].val;
        first->val_n = items[i].val_n;
        items[i].skip = 1;
    }
    if (slots != stack_slots) free(slots);
    return dup;
}

int emit_kvlist_items(Work *w, Buf *b, size_t first, size_t last, int depth) {
    int rc = buf_putc(b, '{');
    int comma = 0;
    for (size_t i = first; i < last && rc == 0; i++) {
        KV *kv = &w->kvs.items[i];
        if (kv->skip) continue;
        if (comma && buf_putc(b, ',') < 0) return -2;
        comma = 1;
        if (buf_json_string(b, kv->key, kv->key_n) < 0 || buf_putc(b, ':') < 0) return -2;
        if (kv->val == NULL) {
            if (buf_put(b, "null", 4) < 0) return -2;
        } else {
            /* re-read from the array: emit_any may grow (move) it */
            rc = emit_any(w, b, w->kvs.items[i].val, w->kvs.items[i].val_n, depth + 1);
        }
    }
    if (rc) return rc;
    return buf_putc(b, '}') < 0 ? -2 : 0;
}

/* a KeyValueList body as a JSON object */
static int emit_kvlist(Work *w, Buf *b, const uint8_t *p, size_t n, int depth) {
    if (depth > MAX_DEPTH) return -1;
    size_t first = w->kvs.n;
    int rc = kv_push_fields(w, p, n, F_KVLIST_VALUES);
    if (rc == 0) rc = kv_dedup_checked(w, first);
    if (rc == 0) rc = emit_kvlist_items(w, b, first, w->kvs.n, depth);
    w->kvs.n = first;
    return rc;
}

int emit_any(Work *w, Buf *b, const uint8_t *p, size_t n, int depth) {
    AnyValue v;
    if (depth > MAX_DEPTH || parse_any(p, n, &v) < 0) return -1;
    int rc = 0;
    switch (v.kind) {
    case AV_NULL: rc = buf_put(b, "null", 4); break;
    case AV_STRING: rc = buf_json_string(b, v.d, v.n); break;
    case AV_BOOL: rc = v.i ? buf_put(b, "true", 4) : buf_put(b, "false", 5); break;
    case AV_INT:
    case AV_STRINDEX: rc = buf_int(b, v.i); break;
    case AV_DOUBLE: rc = buf_json_double(b, v.f); break;
    case AV_BYTES:
        rc = buf_putc(b, '"');
        if (!rc) rc = buf_hex(b, v.d, v.n);
        if (!rc) rc = buf_putc(b, '"');
        break;
    case AV_ARRAY: {
        const uint8_t *q = v.d, *end = v.d + v.n;
        Field f;
        int r, comma = 0;
        if (buf_putc(b, '[') < 0) return -2;
        while ((r = next_field(&q, end, &f)) > 0) {
            if (f.num != F_ARRAY_VALUES) continue;
            if (f.wt != WT_LEN) return -1;
            if (comma && buf_putc(b, ',') < 0) return -2;
            comma = 1;
            int e = emit_any(w, b, f.d, f.n, depth + 1);
            if (e) return e;
        }
        if (r < 0) return -1;
        rc = buf_putc(b, ']');
        break;
    }
    case AV_KVLIST: return emit_kvlist(w, b, v.d, v.n, depth + 1);
    }
    return rc < 0 ? -2 : 0;
}

int kv_dedup_checked(Work *w, size_t first) {
    size_t n = w->kvs.n - first;
    int dup = kv_find_duplicates(w->kvs.items + first, n, 0);
    if (dup <= 0) return dup;
    Buf *b = &w->check;
    for (size_t i = first; i < first + n; i++) {
        if (w->kvs.items[i].val == NULL) continue;
        b->len = 0;
        int rc = emit_any(w, b, w->kvs.items[i].val, w->kvs.items[i].val_n, 1);
        if (rc) return rc;
    }
    return kv_find_duplicates(w->kvs.items + first, n, 1) < 0 ? -2 : 0;
}

const KV *kv_lookup(const Work *w, size_t first, size_t last, const char *key, size_t key_n) {
    for (size_t i = first; i < last; i++) {
        const KV *kv = &w->kvs.items[i];
        if (!kv->skip && kv->key_n == key_n && memcmp(kv->key, key, key_n) == 0) return kv;
    }
    return NULL;
}

void work_free(Work *w) {
    buf_free(&w->json);
    buf_free(&w->scratch);
    buf_free(&w->check);
    free(w->kvs.items);
    w->kvs.items = NULL;
    w->kvs.n = w->kvs.cap = 0;
}
