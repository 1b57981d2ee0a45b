/*
 * OTLP ExportTraceServiceRequest protobuf bytes -> the store's span columns, walking the wire format directly.
 *
 * The accelerator of loratrace.collector.decode: it fills exactly the columns that RowBuffer.add_traces fills
 * (ids as lowercase hex, attribute maps as the same compact JSON text Python's json module writes) and, where
 * it can be sure of the result, the promoted typed columns that decode.promote_frame would compute. Anything
 * it is not certain to reproduce byte for byte is left to the Python path:
 *
 *   - a payload it cannot walk exactly (non-canonical wire forms such as a repeated singular message, wire
 *     type mismatches, groups, deep nesting, invalid UTF-8, timestamps past int64) -> decode_traces returns
 *     None and the caller decodes the whole payload with upb + Python;
 *   - spans with events or links -> their indexes are returned and the caller adds those rows in Python;
 *   - a promoted attribute whose value is not of its column's own type -> the payload is reported "hard" and
 *     the caller runs promote_frame over the batch instead of using these promoted values.
 *
 * Nothing here keeps Python state between calls except the Decoder's attribute-name table.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------------------------------------------------
 * wire format
 */

enum { WT_VARINT = 0, WT_I64 = 1, WT_LEN = 2, WT_I32 = 5 };
#define MAX_DEPTH 32

typedef struct {
    uint32_t num;
    uint32_t wt;
    uint64_t v;         /* varint / fixed value */
    const uint8_t *d;   /* length-delimited data */
    size_t n;
} Field;

/* 1 = a field read, 0 = end of message, -1 = malformed or a form we leave to upb */
static inline int next_field(const uint8_t **pp, const uint8_t *end, Field *f) {
    const uint8_t *p = *pp;
    if (p >= end) return 0;
    uint64_t tag = 0;
    int shift = 0;
    for (;;) {
        if (p >= end || shift > 35) return -1;
        uint8_t b = *p++;
        tag |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) break;
        shift += 7;
    }
    if (tag > 0xffffffffu) return -1;
    f->num = (uint32_t)(tag >> 3);
    f->wt = (uint32_t)(tag & 7);
    if (f->num == 0 || f->num > 536870911u) return -1;
    switch (f->wt) {
    case WT_VARINT: {
        uint64_t v = 0;
        shift = 0;
        for (;;) {
            if (p >= end || shift > 63) return -1;
            uint8_t b = *p++;
            v |= (uint64_t)(b & 0x7f) << shift;
            if (!(b & 0x80)) break;
            shift += 7;
        }
        f->v = v;
        break;
    }
    case WT_I64:
        if (end - p < 8) return -1;
        memcpy(&f->v, p, 8); /* little-endian hosts only: checked at module init */
        p += 8;
        break;
    case WT_I32: {
        uint32_t v;
        if (end - p < 4) return -1;
        memcpy(&v, p, 4);
        f->v = v;
        p += 4;
        break;
    }
    case WT_LEN: {
        uint64_t n = 0;
        shift = 0;
        for (;;) {
            if (p >= end || shift > 63) return -1;
            uint8_t b = *p++;
            n |= (uint64_t)(b & 0x7f) << shift;
            if (!(b & 0x80)) break;
            shift += 7;
        }
        if (n > (uint64_t)(end - p)) return -1;
        f->d = p;
        f->n = (size_t)n;
        p += n;
        break;
    }
    default:
        return -1; /* groups (3, 4) and invalid wire types */
    }
    *pp = p;
    return 1;
}

/* strict UTF-8 (what upb demands of proto3 strings): no overlongs, no surrogates, nothing past U+10FFFF */
static int utf8_ok(const uint8_t *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        while (i + 8 <= n) {
            uint64_t w;
            memcpy(&w, s + i, 8);
            if (w & 0x8080808080808080ull) break;
            i += 8;
        }
        if (i >= n) break;
        uint8_t c = s[i];
        if (c < 0x80) {
            i++;
        } else if (c >= 0xc2 && c <= 0xdf) {
            if (i + 1 >= n || (s[i + 1] & 0xc0) != 0x80) return 0;
            i += 2;
        } else if (c >= 0xe0 && c <= 0xef) {
            if (i + 2 >= n) return 0;
            uint8_t c1 = s[i + 1], c2 = s[i + 2];
            if ((c1 & 0xc0) != 0x80 || (c2 & 0xc0) != 0x80) return 0;
            if (c == 0xe0 && c1 < 0xa0) return 0;
            if (c == 0xed && c1 > 0x9f) return 0;
            i += 3;
        } else if (c >= 0xf0 && c <= 0xf4) {
            if (i + 3 >= n) return 0;
            uint8_t c1 = s[i + 1], c2 = s[i + 2], c3 = s[i + 3];
            if ((c1 & 0xc0) != 0x80 || (c2 & 0xc0) != 0x80 || (c3 & 0xc0) != 0x80) return 0;
            if (c == 0xf0 && c1 < 0x90) return 0;
            if (c == 0xf4 && c1 > 0x8f) return 0;
            i += 4;
        } else {
            return 0;
        }
    }
    return 1;
}

/* ---------------------------------------------------------------------------------------------------------
 * output buffer
 */

typedef struct {
    char *p;
    size_t len;
    size_t cap;
} Buf;

static int buf_reserve(Buf *b, size_t extra) {
    if (b->len + extra <= b->cap) return 0;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + extra) cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) {
        PyErr_NoMemory();
        return -1;
    }
    b->p = p;
    b->cap = cap;
    return 0;
}

static inline int buf_put(Buf *b, const char *s, size_t n) {
    if (n == 0) return 0;
    if (buf_reserve(b, n) < 0) return -1;
    memcpy(b->p + b->len, s, n);
    b->len += n;
    return 0;
}

static inline int buf_putc(Buf *b, char c) {
    if (b->len >= b->cap && buf_reserve(b, 1) < 0) return -1;
    b->p[b->len++] = c;
    return 0;
}

static const char HEX[] = "0123456789abcdef";

/* a JSON string exactly as json.dumps(..., ensure_ascii=False) spells it */
static int buf_json_string(Buf *b, const uint8_t *s, size_t n) {
    if (buf_reserve(b, n + 2) < 0) return -1;
    b->p[b->len++] = '"';
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        /* 8 bytes at a time while none needs escaping (no byte < 0x20, no '"', no '\\') */
        while (i + 8 <= n) {
            uint64_t w, q, bs;
            memcpy(&w, s + i, 8);
            q = w ^ 0x2222222222222222ull;
            bs = w ^ 0x5c5c5c5c5c5c5c5cull;
            uint64_t hit = ((w - 0x2020202020202020ull) | (q - 0x0101010101010101ull) | (bs - 0x0101010101010101ull)) &
                           ~w & 0x8080808080808080ull;
            if (hit) break;
            i += 8;
        }
        if (i >= n) break;
        uint8_t c = s[i];
        if (c >= 0x20 && c != '"' && c != '\\') continue;
        if (buf_put(b, (const char *)s + run, i - run) < 0) return -1;
        run = i + 1;
        char esc[6];
        size_t k = 2;
        esc[0] = '\\';
        switch (c) {
        case '"': esc[1] = '"'; break;
        case '\\': esc[1] = '\\'; break;
        case '\n': esc[1] = 'n'; break;
        case '\r': esc[1] = 'r'; break;
        case '\t': esc[1] = 't'; break;
        case '\b': esc[1] = 'b'; break;
        case '\f': esc[1] = 'f'; break;
        default:
            esc[1] = 'u';
            esc[2] = '0';
            esc[3] = '0';
            esc[4] = HEX[c >> 4];
            esc[5] = HEX[c & 15];
            k = 6;
        }
        if (buf_put(b, esc, k) < 0) return -1;
    }
    if (buf_put(b, (const char *)s + run, n - run) < 0) return -1;
    return buf_putc(b, '"');
}

static int buf_hex(Buf *b, const uint8_t *s, size_t n) {
    if (buf_reserve(b, 2 * n) < 0) return -1;
    char *o = b->p + b->len;
    for (size_t i = 0; i < n; i++) {
        o[2 * i] = HEX[s[i] >> 4];
        o[2 * i + 1] = HEX[s[i] & 15];
    }
    b->len += 2 * n;
    return 0;
}

/* repr(float) for a finite double; non-finite values are JSON strings (see decode._finite) */
static int buf_double(Buf *b, double v) {
    if (isnan(v)) return buf_put(b, "\"NaN\"", 5);
    if (isinf(v)) return v > 0 ? buf_put(b, "\"Infinity\"", 10) : buf_put(b, "\"-Infinity\"", 11);
    /* repeated values (temperatures, alphas) are common: a small cache of repr() by bit pattern */
    static struct { uint64_t bits; char text[32]; uint8_t n; } cache[256];
    uint64_t bits;
    memcpy(&bits, &v, 8);
    unsigned slot = (unsigned)((bits * 0x9e3779b97f4a7c15ull) >> 56);
    if (cache[slot].n && cache[slot].bits == bits) return buf_put(b, cache[slot].text, cache[slot].n);
    char *s = PyOS_double_to_string(v, 'r', 0, Py_DTSF_ADD_DOT_0, NULL);
    if (!s) return -1;
    size_t n = strlen(s);
    int rc = buf_put(b, s, n);
    if (n < sizeof cache[slot].text) {
        cache[slot].bits = bits;
        memcpy(cache[slot].text, s, n);
        cache[slot].n = (uint8_t)n;
    }
    PyMem_Free(s);
    return rc;
}

static int buf_int(Buf *b, int64_t v) {
    char tmp[24];
    char *e = tmp + sizeof tmp, *q = e;
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    do {
        *--q = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0) *--q = '-';
    return buf_put(b, q, (size_t)(e - q));
}

/* ---------------------------------------------------------------------------------------------------------
 * AnyValue / KeyValue
 */

enum {
    AV_NULL = 0,
    AV_STRING,
    AV_BOOL,
    AV_INT,
    AV_DOUBLE,
    AV_ARRAY,
    AV_KVLIST,
    AV_BYTES,
    AV_STRINDEX
};

typedef struct {
    int kind;
    int64_t i;  /* bool / int / strindex */
    double f;
    const uint8_t *d; /* string / bytes / array / kvlist body */
    size_t n;
} AnyValue;

/* parse one AnyValue message body; -1 for anything but exactly one (or no) value field */
static int parse_any(const uint8_t *p, size_t n, AnyValue *out) {
    const uint8_t *end = p + n;
    Field f;
    int r, seen = 0;
    out->kind = AV_NULL;
    while ((r = next_field(&p, end, &f)) > 0) {
        switch (f.num) {
        case 1:
            if (f.wt != WT_LEN) return -1;
            out->kind = AV_STRING, out->d = f.d, out->n = f.n;
            break;
        case 2:
            if (f.wt != WT_VARINT) return -1;
            out->kind = AV_BOOL, out->i = f.v != 0;
            break;
        case 3:
            if (f.wt != WT_VARINT) return -1;
            out->kind = AV_INT, out->i = (int64_t)f.v;
            break;
        case 4:
            if (f.wt != WT_I64) return -1;
            out->kind = AV_DOUBLE;
            memcpy(&out->f, &f.v, 8);
            break;
        case 5:
            if (f.wt != WT_LEN) return -1;
            out->kind = AV_ARRAY, out->d = f.d, out->n = f.n;
            break;
        case 6:
            if (f.wt != WT_LEN) return -1;
            out->kind = AV_KVLIST, out->d = f.d, out->n = f.n;
            break;
        case 7:
            if (f.wt != WT_LEN) return -1;
            out->kind = AV_BYTES, out->d = f.d, out->n = f.n;
            break;
        case 8:
            if (f.wt != WT_VARINT) return -1;
            out->kind = AV_STRINDEX, out->i = (int32_t)(uint32_t)f.v;
            break;
        default:
            continue; /* unknown field: ignored, like upb */
        }
        /* a oneof set twice is legal protobuf (last wins, messages merge); canonical encoders never do it */
        if (++seen > 1) return -1;
    }
    if (r < 0) return -1;
    if (out->kind == AV_STRING && !utf8_ok(out->d, out->n)) return -1;
    return 0;
}

typedef struct {
    const uint8_t *key;
    size_t key_n;
    const uint8_t *val; /* AnyValue body; NULL when the KeyValue has no value */
    size_t val_n;
    uint64_t h;
    int skip; /* a later duplicate of this key exists: the dict keeps the first position, last value */
} KV;

static inline uint64_t key_hash(const uint8_t *k, size_t n) {
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

typedef struct {
    KV *items;
    size_t n;
    size_t cap;
} KVList;

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

/* parse a KeyValue body and append it; -1 on malformed input */
static int kv_parse_push(KVList *l, const uint8_t *p, size_t n) {
    const uint8_t *end = p + n;
    Field f;
    int r, seen_val = 0;
    KV kv = {(const uint8_t *)"", 0, NULL, 0, 0, 0};
    while ((r = next_field(&p, end, &f)) > 0) {
        if (f.num == 1) {
            if (f.wt != WT_LEN) return -1;
            kv.key = f.d, kv.key_n = f.n;
        } else if (f.num == 2) {
            if (f.wt != WT_LEN || seen_val++) return -1;
            kv.val = f.d, kv.val_n = f.n;
        } else if (f.num == 3) {
            if (f.wt != WT_VARINT) return -1;
        }
    }
    if (r < 0 || !utf8_ok(kv.key, kv.key_n)) return -1;
    kv.h = key_hash(kv.key, kv.key_n);
    if (kv_push(l, kv) < 0) return -2;
    return 0;
}

/* Duplicate keys, found with an open-addressing table of entry indexes: on the stack for the usual short
 * lists, on the heap for long ones, so a span with a million attributes costs linear time (a pairwise scan
 * once took 500 s for it and stalled the store writer). Returns 1 when a key repeats, 0 when none does, -2 on
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

typedef struct {
    Buf json;
    Buf scratch;
    Buf check;
    KVList kvs;   /* a stack: nested kvlists push above their parent's entries */
} Work;

static int emit_any(Work *w, Buf *b, const uint8_t *p, size_t n, int depth);
static int kv_dedup_checked(Work *w, size_t first);

static int emit_kvlist_items(Work *w, Buf *b, size_t first, size_t last, int depth) {
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

/* a repeated KeyValue field body list (fields numbered `num` of message p..n) as a JSON object */
static int emit_kvlist(Work *w, Buf *b, const uint8_t *p, size_t n, uint32_t num, int depth) {
    if (depth > MAX_DEPTH) return -1;
    const uint8_t *end = p + n;
    size_t first = w->kvs.n;
    Field f;
    int r, rc;
    while ((r = next_field(&p, end, &f)) > 0) {
        if (f.num != num) continue;
        if (f.wt != WT_LEN) {
            w->kvs.n = first;
            return -1;
        }
        if ((rc = kv_parse_push(&w->kvs, f.d, f.n)) < 0) {
            w->kvs.n = first;
            return rc;
        }
    }
    if (r < 0) {
        w->kvs.n = first;
        return -1;
    }
    if ((rc = kv_dedup_checked(w, first)) != 0) {
        w->kvs.n = first;
        return rc;
    }
    rc = emit_kvlist_items(w, b, first, w->kvs.n, depth);
    w->kvs.n = first;
    return rc;
}

/* returns 0 ok, -1 leave to Python, -2 Python error set */
static int emit_any(Work *w, Buf *b, const uint8_t *p, size_t n, int depth) {
    AnyValue v;
    if (depth > MAX_DEPTH || parse_any(p, n, &v) < 0) return -1;
    int rc = 0;
    switch (v.kind) {
    case AV_NULL: rc = buf_put(b, "null", 4); break;
    case AV_STRING: rc = buf_json_string(b, v.d, v.n); break;
    case AV_BOOL: rc = v.i ? buf_put(b, "true", 4) : buf_put(b, "false", 5); break;
    case AV_INT:
    case AV_STRINDEX: rc = buf_int(b, v.i); break;
    case AV_DOUBLE: rc = buf_double(b, v.f); break;
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
            if (f.num != 1) continue;
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
    case AV_KVLIST: return emit_kvlist(w, b, v.d, v.n, 1, depth + 1);
    }
    return rc < 0 ? -2 : 0;
}

/* deduplicate entries first..kvs.n of the stack; values a later duplicate overrides are never emitted, so
 * they are checked here (upb rejects a request with, say, bad UTF-8 in any of them) */
static int kv_dedup_checked(Work *w, size_t first) {
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

/* ---------------------------------------------------------------------------------------------------------
 * columns: Arrow-layout builders, exported through the Arrow C data interface (Polars imports them)
 */

enum { T_STR = 1, T_I64 = 2, T_F64 = 3, T_BOOL = 4, T_TS = 5, T_LIST = 6 };

typedef struct {
    int type;
    char *name;
    int64_t length;
    int64_t nulls;
    Buf valid;   /* one byte per row while building; bit-packed on export */
    Buf data;    /* values (8 bytes, or 1 byte for bools) or string bytes */
    Buf offsets; /* int64 offsets: strings (into data) or lists (into child_offsets) */
    Buf child_offsets; /* list<string>: the strings' int64 offsets into data */
    int64_t child_length;
} Column;

static int col_init(Column *c) {
    int64_t zero = 0;
    c->length = c->nulls = c->child_length = 0;
    c->valid.len = c->data.len = c->offsets.len = c->child_offsets.len = 0;
    if (c->type == T_STR || c->type == T_LIST) {
        if (buf_put(&c->offsets, (const char *)&zero, 8) < 0) return -1;
    }
    if (c->type == T_LIST && buf_put(&c->child_offsets, (const char *)&zero, 8) < 0) return -1;
    return 0;
}

static inline int col_valid(Column *c, int ok) {
    if (buf_putc(&c->valid, (char)ok) < 0) return -1;
    c->nulls += !ok;
    c->length++;
    return 0;
}

static inline int col_end_offset(Column *c) {
    int64_t end = c->type == T_LIST ? c->child_length : (int64_t)c->data.len;
    return buf_put(&c->offsets, (const char *)&end, 8);
}

static int col_null(Column *c) {
    switch (c->type) {
    case T_STR:
    case T_LIST:
        if (col_end_offset(c) < 0) return -1;
        break;
    case T_BOOL:
        if (buf_putc(&c->data, 0) < 0) return -1;
        break;
    default: {
        int64_t zero = 0;
        if (buf_put(&c->data, (const char *)&zero, 8) < 0) return -1;
    }
    }
    return col_valid(c, 0);
}

static int col_str(Column *c, const uint8_t *s, size_t n) {
    if (buf_put(&c->data, (const char *)s, n) < 0 || col_end_offset(c) < 0) return -1;
    return col_valid(c, 1);
}

static int col_str_or_null(Column *c, const uint8_t *s, size_t n) {
    return n ? col_str(c, s, n) : col_null(c);
}

static int col_hex(Column *c, const uint8_t *s, size_t n) {
    if (buf_hex(&c->data, s, n) < 0 || col_end_offset(c) < 0) return -1;
    return col_valid(c, 1);
}

static int col_i64(Column *c, int64_t v) {
    if (buf_put(&c->data, (const char *)&v, 8) < 0) return -1;
    return col_valid(c, 1);
}

static int col_f64(Column *c, double v) {
    if (buf_put(&c->data, (const char *)&v, 8) < 0) return -1;
    return col_valid(c, 1);
}

static int col_bool(Column *c, int v) {
    if (buf_putc(&c->data, (char)(v != 0)) < 0) return -1;
    return col_valid(c, 1);
}

/* a list<string> row from an ArrayValue body whose items are all strings (checked by classify) */
static int col_string_list(Column *c, const uint8_t *p, size_t n) {
    const uint8_t *end = p + n;
    Field f;
    while (next_field(&p, end, &f) > 0) {
        if (f.num != 1) continue;
        AnyValue e;
        if (parse_any(f.d, f.n, &e) < 0) return -1;
        if (buf_put(&c->data, (const char *)e.d, e.n) < 0) return -1;
        int64_t off = (int64_t)c->data.len;
        if (buf_put(&c->child_offsets, (const char *)&off, 8) < 0) return -1;
        c->child_length++;
    }
    if (col_end_offset(c) < 0) return -1;
    return col_valid(c, 1);
}

static void col_truncate(Column *c, int64_t rows) {
    if (rows >= c->length) return;
    const uint8_t *valid = (const uint8_t *)c->valid.p;
    for (int64_t i = rows; i < c->length; i++) c->nulls -= !valid[i];
    c->valid.len = (size_t)rows;
    switch (c->type) {
    case T_STR: {
        int64_t end = ((const int64_t *)c->offsets.p)[rows];
        c->data.len = (size_t)end;
        c->offsets.len = (size_t)(rows + 1) * 8;
        break;
    }
    case T_LIST: {
        int64_t items = ((const int64_t *)c->offsets.p)[rows];
        c->child_length = items;
        c->child_offsets.len = (size_t)(items + 1) * 8;
        c->data.len = (size_t)((const int64_t *)c->child_offsets.p)[items];
        c->offsets.len = (size_t)(rows + 1) * 8;
        break;
    }
    case T_BOOL: c->data.len = (size_t)rows; break;
    default: c->data.len = (size_t)rows * 8;
    }
    c->length = rows;
}

static void buf_free(Buf *b) {
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

/* the Arrow C data interface (https://arrow.apache.org/docs/format/CDataInterface.html) */
struct ArrowSchema {
    const char *format;
    const char *name;
    const char *metadata;
    int64_t flags;
    int64_t n_children;
    struct ArrowSchema **children;
    struct ArrowSchema *dictionary;
    void (*release)(struct ArrowSchema *);
    void *private_data;
};

struct ArrowArray {
    int64_t length;
    int64_t null_count;
    int64_t offset;
    int64_t n_buffers;
    int64_t n_children;
    const void **buffers;
    struct ArrowArray **children;
    struct ArrowArray *dictionary;
    void (*release)(struct ArrowArray *);
    void *private_data;
};

#define ARROW_FLAG_NULLABLE 2

/* everything an exported array owns, freed by its release callback (any thread, no GIL needed) */
typedef struct {
    void *buffers[4];
    const void *buffer_ptrs[4];
    struct ArrowArray *children[1];
} ArrayPrivate;

static void release_array(struct ArrowArray *a) {
    if (!a->release) return;
    for (int64_t i = 0; i < a->n_children; i++) {
        struct ArrowArray *child = a->children[i];
        if (child->release) child->release(child);
        free(child);
    }
    ArrayPrivate *priv = a->private_data;
    if (priv) { /* a column: its buffers (and a list's child pointer) live in priv */
        for (int i = 0; i < 4; i++) free(priv->buffers[i]);
        free(priv);
    } else { /* the struct parent */
        free(a->children);
        free(a->buffers);
    }
    a->release = NULL;
}

static void release_schema(struct ArrowSchema *s) {
    if (!s->release) return;
    for (int64_t i = 0; i < s->n_children; i++) {
        struct ArrowSchema *child = s->children[i];
        if (child->release) child->release(child);
        free(child);
    }
    free(s->children);
    free((void *)s->name);
    s->release = NULL;
}

static char *dup_str(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

static int fill_schema(struct ArrowSchema *s, const char *format, const char *name, int64_t n_children) {
    memset(s, 0, sizeof *s);
    s->format = format;
    s->name = dup_str(name);
    s->flags = ARROW_FLAG_NULLABLE;
    s->n_children = n_children;
    s->release = release_schema;
    if (n_children) {
        s->children = calloc((size_t)n_children, sizeof(struct ArrowSchema *));
        if (!s->children) return -1;
        for (int64_t i = 0; i < n_children; i++) {
            s->children[i] = calloc(1, sizeof(struct ArrowSchema));
            if (!s->children[i]) return -1;
        }
    }
    return s->name ? 0 : -1;
}

/* strings go out as Utf8View ("vu"), the layout Polars keeps them in, so it imports them without a copy;
 * a view addresses its buffer with an int32 offset, so a column past 2 GiB is sent as large utf8 instead */
static int col_as_view(const Column *c) { return c->type == T_STR && c->data.len <= (size_t)INT32_MAX; }

static const char *col_format(const Column *c) {
    switch (c->type) {
    case T_STR: return col_as_view(c) ? "vu" : "U";
    case T_I64: return "l";
    case T_F64: return "g";
    case T_BOOL: return "b";
    case T_TS: return "tsu:";
    default: return "+L";
    }
}

/* 16-byte views over a string column's data: length, then the bytes inline (<= 12) or prefix + offset */
static void *string_views(const Column *c) {
    uint8_t *views = malloc((size_t)c->length * 16 + 16);
    if (!views) return NULL;
    const int64_t *off = (const int64_t *)c->offsets.p;
    const uint8_t *data = (const uint8_t *)c->data.p;
    for (int64_t i = 0; i < c->length; i++) {
        uint8_t *v = views + i * 16;
        int32_t len = (int32_t)(off[i + 1] - off[i]);
        memset(v, 0, 16);
        memcpy(v, &len, 4);
        if (len <= 12) {
            if (len) memcpy(v + 4, data + off[i], (size_t)len);
        } else {
            int32_t buffer_index = 0, offset = (int32_t)off[i];
            memcpy(v + 4, data + off[i], 4);
            memcpy(v + 8, &buffer_index, 4);
            memcpy(v + 12, &offset, 4);
        }
    }
    return views;
}

/* bytes (one per row, 0/1) -> a fresh bit-packed buffer */
static void *pack_bits(const Buf *bytes, int64_t n) {
    uint8_t *bits = calloc((size_t)(n + 7) / 8 + 1, 1);
    if (!bits) return NULL;
    const uint8_t *v = (const uint8_t *)bytes->p;
    for (int64_t i = 0; i < n; i++) bits[i >> 3] |= (uint8_t)((v[i] != 0) << (i & 7));
    return bits;
}

/* take a buffer's memory out of the builder (it now belongs to the exported array) */
static void *steal(Buf *b) {
    void *p = b->p;
    if (!p) p = malloc(8);
    b->p = NULL;
    b->len = b->cap = 0;
    return p;
}

static int export_column(Column *c, struct ArrowArray *a) {
    memset(a, 0, sizeof *a);
    ArrayPrivate *priv = calloc(1, sizeof(ArrayPrivate));
    if (!priv) return -1;
    a->private_data = priv;
    a->release = release_array;
    a->length = c->length;
    a->null_count = c->nulls;
    a->buffers = priv->buffer_ptrs;
    void *validity = c->nulls ? pack_bits(&c->valid, c->length) : NULL;
    if (c->nulls && !validity) return -1;
    priv->buffers[0] = validity;
    switch (c->type) {
    case T_STR:
        if (col_as_view(c)) {
            int64_t *sizes = malloc(sizeof(int64_t));
            priv->buffers[1] = string_views(c);
            if (!sizes || !priv->buffers[1]) {
                free(sizes);
                return -1;
            }
            *sizes = (int64_t)c->data.len;
            a->n_buffers = 4;
            priv->buffers[2] = steal(&c->data);
            priv->buffers[3] = sizes;
        } else {
            a->n_buffers = 3;
            priv->buffers[1] = steal(&c->offsets);
            priv->buffers[2] = steal(&c->data);
        }
        break;
    case T_BOOL:
        a->n_buffers = 2;
        priv->buffers[1] = pack_bits(&c->data, c->length);
        if (!priv->buffers[1]) return -1;
        break;
    case T_LIST: {
        a->n_buffers = 2;
        priv->buffers[1] = steal(&c->offsets);
        struct ArrowArray *child = calloc(1, sizeof *child);
        if (!child) return -1;
        a->n_children = 1;
        priv->children[0] = child;
        a->children = priv->children;
        ArrayPrivate *cp = calloc(1, sizeof(ArrayPrivate));
        if (!cp) return -1;
        child->private_data = cp;
        child->release = release_array;
        child->length = c->child_length;
        child->n_buffers = 3;
        child->buffers = cp->buffer_ptrs;
        cp->buffers[1] = steal(&c->child_offsets);
        cp->buffers[2] = steal(&c->data);
        for (int i = 0; i < 3; i++) cp->buffer_ptrs[i] = cp->buffers[i];
        break;
    }
    default:
        a->n_buffers = 2;
        priv->buffers[1] = steal(&c->data);
    }
    for (int i = 0; i < 4; i++) priv->buffer_ptrs[i] = priv->buffers[i];
    return 0;
}

typedef struct {
    PyObject_HEAD
    Column *columns;
    int n_columns;
    int64_t rows;
} SpanBatch;

static void batch_truncate(SpanBatch *self, int64_t rows) {
    for (int i = 0; i < self->n_columns; i++) col_truncate(&self->columns[i], rows);
    if (rows < self->rows) self->rows = rows;
}

static void batch_free_columns(SpanBatch *self) {
    for (int i = 0; i < self->n_columns; i++) {
        Column *c = &self->columns[i];
        buf_free(&c->valid);
        buf_free(&c->data);
        buf_free(&c->offsets);
        buf_free(&c->child_offsets);
        free(c->name);
    }
    free(self->columns);
    self->columns = NULL;
    self->n_columns = 0;
}

/* SpanBatch(columns): columns = [(name, type), ...] */
static int SpanBatch_init(SpanBatch *self, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"columns", NULL};
    PyObject *seq;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O", kwlist, &seq)) return -1;
    PyObject *fast = PySequence_Fast(seq, "columns must be a sequence of (name, type)");
    if (!fast) return -1;
    batch_free_columns(self);
    Py_ssize_t n = PySequence_Fast_GET_SIZE(fast);
    self->columns = calloc((size_t)n + 1, sizeof(Column));
    if (!self->columns) {
        Py_DECREF(fast);
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        const char *name;
        int type;
        if (!PyArg_ParseTuple(PySequence_Fast_GET_ITEM(fast, i), "si", &name, &type) || type < T_STR ||
            type > T_LIST) {
            if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "unknown column type");
            Py_DECREF(fast);
            return -1;
        }
        Column *c = &self->columns[i];
        c->type = type;
        c->name = dup_str(name);
        self->n_columns = (int)i + 1;
        if (!c->name || col_init(c) < 0) {
            Py_DECREF(fast);
            PyErr_NoMemory();
            return -1;
        }
    }
    Py_DECREF(fast);
    self->rows = 0;
    return 0;
}

static void SpanBatch_dealloc(SpanBatch *self) {
    batch_free_columns(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *SpanBatch_len(SpanBatch *self, PyObject *unused) { return PyLong_FromLongLong(self->rows); }

static PyObject *SpanBatch_truncate(SpanBatch *self, PyObject *arg) {
    long long rows = PyLong_AsLongLong(arg);
    if (rows == -1 && PyErr_Occurred()) return NULL;
    if (rows < 0) rows = 0;
    batch_truncate(self, rows);
    Py_RETURN_NONE;
}

static void capsule_schema_free(PyObject *capsule) {
    struct ArrowSchema *s = PyCapsule_GetPointer(capsule, "arrow_schema");
    if (s) {
        if (s->release) s->release(s);
        free(s);
    }
}

static void capsule_array_free(PyObject *capsule) {
    struct ArrowArray *a = PyCapsule_GetPointer(capsule, "arrow_array");
    if (a) {
        if (a->release) a->release(a);
        free(a);
    }
}

PyDoc_STRVAR(arrow_doc,
"__arrow_c_array__(requested_schema=None) -> (schema capsule, array capsule)\n\n"
"Export the buffered rows as an Arrow struct array (one child per column) and empty the batch: the\n"
"memory moves to the consumer (pl.Series(batch)).");

static PyObject *SpanBatch_arrow_c_array(SpanBatch *self, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"requested_schema", NULL};
    PyObject *requested = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|O", kwlist, &requested)) return NULL;
    struct ArrowSchema *schema = calloc(1, sizeof *schema);
    struct ArrowArray *array = calloc(1, sizeof *array);
    PyObject *schema_capsule = NULL, *array_capsule = NULL;
    if (!schema || !array) goto nomem;
    if (fill_schema(schema, "+s", "", self->n_columns) < 0) goto nomem;
    for (int i = 0; i < self->n_columns; i++) {
        Column *c = &self->columns[i];
        if (fill_schema(schema->children[i], col_format(c), c->name, c->type == T_LIST) < 0) goto nomem;
        if (c->type == T_LIST && fill_schema(schema->children[i]->children[0], "U", "item", 0) < 0) goto nomem;
    }
    array->release = release_array;
    array->length = self->rows;
    array->n_buffers = 1;
    array->buffers = calloc(1, sizeof(void *));
    array->n_children = self->n_columns;
    array->children = calloc((size_t)self->n_columns + 1, sizeof(struct ArrowArray *));
    if (!array->buffers || !array->children) goto nomem;
    for (int i = 0; i < self->n_columns; i++) {
        array->children[i] = calloc(1, sizeof(struct ArrowArray));
        if (!array->children[i] || export_column(&self->columns[i], array->children[i]) < 0) {
            array->n_children = i + (array->children[i] != NULL);
            goto nomem;
        }
    }
    for (int i = 0; i < self->n_columns; i++)
        if (col_init(&self->columns[i]) < 0) goto nomem;
    self->rows = 0;
    schema_capsule = PyCapsule_New(schema, "arrow_schema", capsule_schema_free);
    if (!schema_capsule) goto fail;
    schema = NULL;
    array_capsule = PyCapsule_New(array, "arrow_array", capsule_array_free);
    if (!array_capsule) goto fail;
    return Py_BuildValue("(NN)", schema_capsule, array_capsule);
nomem:
    PyErr_NoMemory();
fail:
    Py_XDECREF(schema_capsule);
    if (schema) {
        if (schema->release) schema->release(schema);
        free(schema);
    }
    if (array && !array_capsule) {
        if (array->release) array->release(array);
        free(array);
    }
    for (int i = 0; i < self->n_columns; i++) col_truncate(&self->columns[i], 0);
    self->rows = 0;
    return NULL;
}

static PyMethodDef SpanBatch_methods[] = {
    {"__arrow_c_array__", (PyCFunction)(void (*)(void))SpanBatch_arrow_c_array, METH_VARARGS | METH_KEYWORDS,
     arrow_doc},
    {"rows", (PyCFunction)SpanBatch_len, METH_NOARGS, "rows() -> number of buffered rows"},
    {"truncate", (PyCFunction)SpanBatch_truncate, METH_O, "truncate(rows): drop the rows past `rows`"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject SpanBatchType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "loratrace.collector._fastdecode.SpanBatch",
    .tp_basicsize = sizeof(SpanBatch),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Span rows in Arrow layout, filled by Decoder.decode_traces, exported with __arrow_c_array__.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)SpanBatch_init,
    .tp_dealloc = (destructor)SpanBatch_dealloc,
    .tp_methods = SpanBatch_methods,
};

/* ---------------------------------------------------------------------------------------------------------
 * promotion
 */

/* how an attribute feeds its promoted column (decode.py builds the table from its own rules) */
enum {
    P_STR = 1,    /* String column: string (or bytes, as hex) values */
    P_INT = 2,    /* Int64 column: integers within +-2^53 */
    P_FLOAT = 3,  /* Float64 column: finite doubles, integers within +-2^53 */
    P_BOOL = 4,   /* Boolean column: bools */
    P_LIST = 5,   /* List(String) column: arrays of strings */
    P_TTFT = 6,   /* Float64 milliseconds from seconds */
    P_FIRST = 7,  /* String column from the first string of an array (empty array: next name) */
};

typedef struct {
    const char *key;
    Py_ssize_t key_n;
    uint64_t h;
    int column;
    int how;
    int priority;
} Source;

typedef struct {
    int set;
    int priority;
    int how;
    int64_t i;
    double f;
    const uint8_t *d; /* string / bytes / array body */
    size_t n;
    int is_bytes;
} Pick;

#define MAX_COLUMNS 64
#define TABLE 256

typedef struct {
    PyObject_HEAD
    Source *sources;
    Py_ssize_t n_sources;
    int n_columns;
    int error_column; /* promoted error_type: falls back to the exception event's type */
    int16_t table[TABLE]; /* open addressing over sources; -1 empty */
    PyObject *source_keys; /* keeps the key strings alive */
    Work work;
} Decoder;

static const char *KINDS[] = {"UNSPECIFIED", "INTERNAL", "SERVER", "CLIENT", "PRODUCER", "CONSUMER"};
static const char *STATUS[] = {"UNSET", "OK", "ERROR"};

static const Source *find_source(Decoder *self, const uint8_t *k, size_t n, uint64_t h, int *next) {
    for (int s = *next; s < TABLE; s++) {
        int idx = self->table[(h + (uint64_t)s) & (TABLE - 1)];
        if (idx < 0) return NULL;
        const Source *src = &self->sources[idx];
        if (src->h == h && (size_t)src->key_n == n && memcmp(src->key, k, n) == 0) {
            *next = s + 1;
            return src;
        }
    }
    return NULL;
}

/* is this AnyValue usable as-is for `how`? 1 yes (stored in *pick), 0 null / no value, -1 hard */
static int classify(const uint8_t *val, size_t val_n, int how, Pick *pick) {
    AnyValue v;
    if (val == NULL) return 0;
    if (parse_any(val, val_n, &v) < 0) return -1;
    if (v.kind == AV_NULL) return 0;
    const int64_t lim = 9007199254740992ll;
    switch (how) {
    case P_STR:
        if (v.kind != AV_STRING && v.kind != AV_BYTES) return -1;
        pick->d = v.d, pick->n = v.n, pick->is_bytes = v.kind == AV_BYTES;
        return 1;
    case P_INT:
        if (v.kind != AV_INT || v.i > lim || v.i < -lim) return -1;
        pick->i = v.i;
        return 1;
    case P_FLOAT:
    case P_TTFT:
        if (v.kind == AV_DOUBLE && isfinite(v.f)) {
            pick->f = v.f;
            return 1;
        }
        if (v.kind == AV_INT && v.i <= lim && v.i >= -lim) {
            pick->f = (double)v.i;
            return 1;
        }
        return -1;
    case P_BOOL:
        if (v.kind != AV_BOOL) return -1;
        pick->i = v.i;
        return 1;
    case P_LIST:
    case P_FIRST: {
        if (v.kind != AV_ARRAY) return -1;
        const uint8_t *q = v.d, *end = v.d + v.n;
        Field f;
        int r;
        size_t count = 0;
        const uint8_t *first = NULL;
        size_t first_n = 0;
        while ((r = next_field(&q, end, &f)) > 0) {
            if (f.num != 1) continue;
            AnyValue e;
            if (f.wt != WT_LEN || parse_any(f.d, f.n, &e) < 0 || e.kind != AV_STRING) return -1;
            if (count++ == 0) first = e.d, first_n = e.n;
        }
        if (r < 0) return -1;
        if (how == P_FIRST) {
            if (count == 0) return 0;
            pick->d = first, pick->n = first_n, pick->is_bytes = 0;
        } else {
            pick->d = v.d, pick->n = v.n;
        }
        return 1;
    }
    }
    return -1;
}

static int put_pick(Column *c, const Pick *pk) {
    switch (pk->how) {
    case P_STR:
    case P_FIRST: return pk->is_bytes ? col_hex(c, pk->d, pk->n) : col_str(c, pk->d, pk->n);
    case P_INT: return col_i64(c, pk->i);
    case P_FLOAT: return col_f64(c, pk->f);
    case P_TTFT: return col_f64(c, pk->f * 1000.0);
    case P_BOOL: return col_bool(c, (int)pk->i);
    case P_LIST: return col_string_list(c, pk->d, pk->n);
    }
    return col_null(c);
}

/* ---------------------------------------------------------------------------------------------------------
 * the decoder
 */

enum {
    C_TRACE_ID, C_SPAN_ID, C_PARENT, C_STATE, C_NAME, C_KIND, C_SERVICE, C_SCOPE_NAME, C_SCOPE_VERSION,
    C_START, C_END, C_DURATION, C_START_TIME, C_STATUS, C_STATUS_MESSAGE, C_RESOURCE, C_ATTRIBUTES,
    C_ERROR, N_SPAN_COLUMNS
};

static const int SPAN_COLUMN_TYPES[N_SPAN_COLUMNS] = {
    T_STR, T_STR, T_STR, T_STR, T_STR, T_STR, T_STR, T_STR, T_STR,
    T_I64, T_I64, T_I64, T_TS, T_STR, T_STR, T_STR, T_STR, T_STR,
};

typedef struct {
    Column *cols;   /* N_SPAN_COLUMNS span columns, then the promoted ones */
    PyObject *slow; /* indexes of spans with events or links */
    Buf service;    /* this resource's service name (has_service: not null) */
    int has_service;
    Buf resource_json;
    const uint8_t *scope_name, *scope_version;
    size_t scope_name_n, scope_version_n;
    Py_ssize_t span_index;
    int hard;
} Out;

/* the "exception.type" of the first "exception" event that has one, or NULL (the ERROR spans' error_type) */
static int exception_type(const uint8_t *p, size_t n, const uint8_t **d, size_t *dn) {
    const uint8_t *end = p + n;
    Field f;
    int r;
    *d = NULL;
    while ((r = next_field(&p, end, &f)) > 0) {
        if (f.num != 11 || f.wt != WT_LEN) continue;
        const uint8_t *q = f.d, *qe = f.d + f.n;
        Field g;
        int is_exc = 0;
        while (next_field(&q, qe, &g) > 0)
            if (g.num == 2 && g.wt == WT_LEN) is_exc = g.n == 9 && memcmp(g.d, "exception", 9) == 0;
        if (!is_exc) continue;
        q = f.d;
        while (next_field(&q, qe, &g) > 0) {
            if (g.num != 3 || g.wt != WT_LEN) continue;
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

/* one Span: -1 leave the payload to Python, -2 Python error (memory) */
static int decode_span(Decoder *self, Out *out, const uint8_t *p, size_t n) {
    const uint8_t *start_p = p, *end = p + n;
    const uint8_t *trace_id = NULL, *span_id = NULL, *parent = NULL, *state = NULL, *name = NULL;
    size_t trace_n = 0, span_n = 0, parent_n = 0, state_n = 0, name_n = 0;
    const uint8_t *status_msg = NULL;
    size_t status_msg_n = 0;
    uint64_t start = 0, endt = 0;
    int32_t kind = 0, status_code = 0;
    int has_events = 0, has_links = 0, seen_status = 0;
    Work *w = &self->work;
    size_t first = w->kvs.n;
    Field f;
    int r, rc;
    while ((r = next_field(&p, end, &f)) > 0) {
        switch (f.num) {
        case 1: if (f.wt != WT_LEN) return -1; trace_id = f.d, trace_n = f.n; break;
        case 2: if (f.wt != WT_LEN) return -1; span_id = f.d, span_n = f.n; break;
        case 3: if (f.wt != WT_LEN || !utf8_ok(f.d, f.n)) return -1; state = f.d, state_n = f.n; break;
        case 4: if (f.wt != WT_LEN) return -1; parent = f.d, parent_n = f.n; break;
        case 5: if (f.wt != WT_LEN || !utf8_ok(f.d, f.n)) return -1; name = f.d, name_n = f.n; break;
        case 6: if (f.wt != WT_VARINT) return -1; kind = (int32_t)(uint32_t)f.v; break;
        case 7: if (f.wt != WT_I64) return -1; start = f.v; break;
        case 8: if (f.wt != WT_I64) return -1; endt = f.v; break;
        case 9:
            if (f.wt != WT_LEN) return -1;
            if ((rc = kv_parse_push(&w->kvs, f.d, f.n)) < 0) return rc;
            break;
        case 10: case 12: case 14: if (f.wt != WT_VARINT) return -1; break;
        case 16: if (f.wt != WT_I32) return -1; break;
        case 11: if (f.wt != WT_LEN) return -1; has_events = 1; break;
        case 13: if (f.wt != WT_LEN) return -1; has_links = 1; break;
        case 15: {
            if (f.wt != WT_LEN || seen_status++) return -1;
            const uint8_t *q = f.d, *qe = f.d + f.n;
            Field g;
            int s;
            while ((s = next_field(&q, qe, &g)) > 0) {
                if (g.num == 2) {
                    if (g.wt != WT_LEN || !utf8_ok(g.d, g.n)) return -1;
                    status_msg = g.d, status_msg_n = g.n;
                } else if (g.num == 3) {
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
    size_t count = w->kvs.n - first;
    if ((rc = kv_dedup_checked(w, first)) != 0) return rc;
    Pick picks[MAX_COLUMNS];
    for (int c = 0; c < self->n_columns; c++) picks[c].set = 0;
    for (size_t i = 0; i < count; i++) {
        KV *kv = &w->kvs.items[first + i];
        if (kv->skip) continue;
        int next = 0;
        const Source *src;
        while ((src = find_source(self, kv->key, kv->key_n, kv->h, &next)) != NULL) {
            Pick pk;
            int c = classify(kv->val, kv->val_n, src->how, &pk);
            if (c < 0) {
                out->hard = 1;
            } else if (c > 0) {
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
    Buf *json = &w->json;
    json->len = 0;
    rc = emit_kvlist_items(w, json, first, w->kvs.n, 0);
    w->kvs.n = first;
    if (rc) return rc;

    const uint8_t *exc = NULL;
    size_t exc_n = 0;
    if (status_code == 2 && has_events && exception_type(start_p, n, &exc, &exc_n) < 0) return -1;

    Column *col = out->cols;
    int status = (status_code >= 0 && status_code < 3) ? status_code : 0;
    const char *kind_s = KINDS[(kind >= 0 && kind < 6) ? kind : 0];
    if (col_hex(&col[C_TRACE_ID], trace_id, trace_n) < 0 || col_hex(&col[C_SPAN_ID], span_id, span_n) < 0 ||
        (parent_n ? col_hex(&col[C_PARENT], parent, parent_n) : col_null(&col[C_PARENT])) < 0 ||
        col_str_or_null(&col[C_STATE], state, state_n) < 0 ||
        col_str(&col[C_NAME], name ? name : (const uint8_t *)"", name_n) < 0 ||
        col_str(&col[C_KIND], (const uint8_t *)kind_s, strlen(kind_s)) < 0 ||
        (out->has_service ? col_str(&col[C_SERVICE], (const uint8_t *)out->service.p, out->service.len)
                          : col_null(&col[C_SERVICE])) < 0 ||
        col_str_or_null(&col[C_SCOPE_NAME], out->scope_name, out->scope_name_n) < 0 ||
        col_str_or_null(&col[C_SCOPE_VERSION], out->scope_version, out->scope_version_n) < 0 ||
        col_i64(&col[C_START], (int64_t)start) < 0 || col_i64(&col[C_END], (int64_t)endt) < 0 ||
        (endt >= start ? col_i64(&col[C_DURATION], (int64_t)(endt - start)) : col_null(&col[C_DURATION])) < 0 ||
        col_i64(&col[C_START_TIME], (int64_t)(start / 1000)) < 0 ||
        col_str(&col[C_STATUS], (const uint8_t *)STATUS[status], strlen(STATUS[status])) < 0 ||
        col_str_or_null(&col[C_STATUS_MESSAGE], status_msg, status_msg_n) < 0 ||
        col_str(&col[C_RESOURCE], (const uint8_t *)out->resource_json.p, out->resource_json.len) < 0 ||
        col_str(&col[C_ATTRIBUTES], (const uint8_t *)json->p, json->len) < 0 ||
        (exc ? col_str(&col[C_ERROR], exc, exc_n) : col_null(&col[C_ERROR])) < 0)
        return -2;
    Column *promo = col + N_SPAN_COLUMNS;
    for (int c = 0; c < self->n_columns; c++) {
        int e;
        if (picks[c].set) e = put_pick(&promo[c], &picks[c]);
        else if (c == self->error_column && exc) e = col_str(&promo[c], exc, exc_n);
        else e = col_null(&promo[c]);
        if (e < 0) return -2;
    }
    if (has_events || has_links) {
        PyObject *index = PyLong_FromSsize_t(out->span_index);
        if (!index || PyList_Append(out->slow, index) < 0) {
            Py_XDECREF(index);
            return -2;
        }
        Py_DECREF(index);
    }
    out->span_index++;
    return 0;
}

/* str(value) of a resource's service.name, as the Python path does; -1 for kinds left to Python */
static int service_name(const KV *kv, Out *out) {
    AnyValue v;
    Buf *b = &out->service;
    b->len = 0;
    out->has_service = 0;
    if (kv->val == NULL) return 0;
    if (parse_any(kv->val, kv->val_n, &v) < 0) return -1;
    out->has_service = 1;
    switch (v.kind) {
    case AV_NULL: out->has_service = 0; return 0;
    case AV_STRING: return buf_put(b, (const char *)v.d, v.n) < 0 ? -2 : 0;
    case AV_BYTES: return buf_hex(b, v.d, v.n) < 0 ? -2 : 0;
    case AV_BOOL: return buf_put(b, v.i ? "True" : "False", v.i ? 4 : 5) < 0 ? -2 : 0;
    case AV_INT:
    case AV_STRINDEX: return buf_int(b, v.i) < 0 ? -2 : 0;
    case AV_DOUBLE: {
        char *s = PyOS_double_to_string(v.f, 'r', 0, Py_DTSF_ADD_DOT_0, NULL);
        if (!s) return -2;
        int rc = buf_put(b, s, strlen(s));
        PyMem_Free(s);
        return rc < 0 ? -2 : 0;
    }
    default: return -1; /* str() of a list / dict: Python's repr */
    }
}

static int decode_resource(Decoder *self, Out *out, const uint8_t *p, size_t n) {
    const uint8_t *start_p = p, *end = p + n;
    const uint8_t *resource = NULL;
    size_t resource_n = 0;
    int seen_resource = 0;
    Field f;
    int r, rc = 0;
    Work *w = &self->work;
    /* the resource may follow its scope_spans on the wire: find it first */
    while ((r = next_field(&p, end, &f)) > 0) {
        if (f.num == 1) {
            if (f.wt != WT_LEN || seen_resource++) return -1;
            resource = f.d, resource_n = f.n;
        } else if (f.num == 2 || f.num == 3) {
            if (f.wt != WT_LEN) return -1;
            if (f.num == 3 && !utf8_ok(f.d, f.n)) return -1;
        }
    }
    if (r < 0) return -1;
    /* Resource: attributes (1), dropped_attributes_count (2), entity_refs (3: left to Python) */
    size_t first = w->kvs.n;
    if (resource) {
        const uint8_t *q = resource, *qe = resource + resource_n;
        while ((r = next_field(&q, qe, &f)) > 0) {
            if (f.num == 1) {
                if (f.wt != WT_LEN) rc = -1;
                else rc = kv_parse_push(&w->kvs, f.d, f.n);
            } else if (f.num == 2) {
                if (f.wt != WT_VARINT) rc = -1;
            } else if (f.num == 3) {
                rc = -1;
            }
            if (rc) break;
        }
        if (r < 0) rc = -1;
    }
    if (rc) {
        w->kvs.n = first;
        return rc;
    }
    if ((rc = kv_dedup_checked(w, first)) != 0) {
        w->kvs.n = first;
        return rc;
    }
    out->has_service = 0;
    for (size_t i = first; i < w->kvs.n; i++) {
        KV *kv = &w->kvs.items[i];
        if (!kv->skip && kv->key_n == 12 && memcmp(kv->key, "service.name", 12) == 0) {
            if ((rc = service_name(kv, out)) != 0) {
                w->kvs.n = first;
                return rc;
            }
        }
    }
    out->resource_json.len = 0;
    rc = emit_kvlist_items(w, &out->resource_json, first, w->kvs.n, 0);
    w->kvs.n = first;
    if (rc) return rc;

    p = start_p;
    while ((r = next_field(&p, end, &f)) > 0) {
        if (f.num != 2) continue;
        /* ScopeSpans: scope (1), spans (2), schema_url (3) */
        const uint8_t *q = f.d, *qe = f.d + f.n;
        const uint8_t *scope = NULL;
        size_t scope_n = 0;
        int seen_scope = 0;
        Field g;
        int s;
        while ((s = next_field(&q, qe, &g)) > 0) {
            if (g.num == 1) {
                if (g.wt != WT_LEN || seen_scope++) return -1;
                scope = g.d, scope_n = g.n;
            } else if (g.num == 2 || g.num == 3) {
                if (g.wt != WT_LEN) return -1;
                if (g.num == 3 && !utf8_ok(g.d, g.n)) return -1;
            }
        }
        if (s < 0) return -1;
        out->scope_name = out->scope_version = NULL;
        out->scope_name_n = out->scope_version_n = 0;
        if (scope) {
            const uint8_t *t = scope, *te = scope + scope_n;
            Field h;
            while ((s = next_field(&t, te, &h)) > 0) {
                if (h.num == 1 || h.num == 2) {
                    if (h.wt != WT_LEN || !utf8_ok(h.d, h.n)) return -1;
                    if (h.num == 1) out->scope_name = h.d, out->scope_name_n = h.n;
                    else out->scope_version = h.d, out->scope_version_n = h.n;
                } else if (h.num == 3) {
                    /* scope attributes are not stored, but upb would reject invalid ones */
                    if (h.wt != WT_LEN) return -1;
                    Buf *b = &w->scratch;
                    b->len = 0;
                    size_t mark = w->kvs.n;
                    rc = kv_parse_push(&w->kvs, h.d, h.n);
                    if (!rc && w->kvs.items[mark].val)
                        rc = emit_any(w, b, w->kvs.items[mark].val, w->kvs.items[mark].val_n, 1);
                    w->kvs.n = mark;
                    if (rc) return rc;
                } else if (h.num == 4) {
                    if (h.wt != WT_VARINT) return -1;
                }
            }
            if (s < 0) return -1;
        }
        q = f.d;
        while ((s = next_field(&q, qe, &g)) > 0) {
            if (g.num != 2) continue;
            if ((rc = decode_span(self, out, g.d, g.n)) != 0) return rc;
        }
    }
    return r < 0 ? -1 : 0;
}

PyDoc_STRVAR(decode_traces_doc,
"decode_traces(payload, batch) -> (spans, slow_spans, hard) | None\n\n"
"Append the spans of one serialized ExportTraceServiceRequest to batch (a SpanBatch whose columns are\n"
"decode.FAST_SPAN_COLUMNS then the promoted columns in the order the Decoder was built with).\n"
"slow_spans lists the indexes of spans with events or links (for the caller to add those rows); hard\n"
"is True when a promoted attribute had a value of another type, so the promoted columns must be\n"
"recomputed by decode.promote_frame. None (and nothing appended): decode this payload in Python.");

static PyObject *Decoder_decode_traces(Decoder *self, PyObject *args) {
    Py_buffer view;
    SpanBatch *batch;
    if (!PyArg_ParseTuple(args, "y*O!", &view, &SpanBatchType, &batch)) return NULL;
    if (batch->n_columns != N_SPAN_COLUMNS + self->n_columns) {
        PyBuffer_Release(&view);
        PyErr_Format(PyExc_ValueError, "the batch must have %d columns", N_SPAN_COLUMNS + self->n_columns);
        return NULL;
    }
    for (int i = 0; i < N_SPAN_COLUMNS; i++) {
        if (batch->columns[i].type != SPAN_COLUMN_TYPES[i]) {
            PyBuffer_Release(&view);
            PyErr_Format(PyExc_ValueError, "batch column %d has the wrong type", i);
            return NULL;
        }
    }
    Out out;
    memset(&out, 0, sizeof out);
    out.cols = batch->columns;
    out.slow = PyList_New(0);
    if (!out.slow) {
        PyBuffer_Release(&view);
        return NULL;
    }
    int64_t mark = batch->rows;
    const uint8_t *p = view.buf, *end = p + view.len;
    Field f;
    int r, rc = 0;
    self->work.kvs.n = 0;
    while ((r = next_field(&p, end, &f)) > 0) {
        if (f.num != 1) continue;
        if (f.wt != WT_LEN) {
            rc = -1;
            break;
        }
        if ((rc = decode_resource(self, &out, f.d, f.n)) != 0) break;
    }
    if (r < 0 && rc == 0) rc = -1;
    buf_free(&out.service);
    buf_free(&out.resource_json);
    PyBuffer_Release(&view);
    if (rc == 0) {
        batch->rows += out.span_index;
        return Py_BuildValue("(nNO)", out.span_index, out.slow, out.hard ? Py_True : Py_False);
    }
    Py_DECREF(out.slow);
    batch_truncate(batch, mark);
    if (rc == -2) {
        if (!PyErr_Occurred()) PyErr_NoMemory();
        return NULL;
    }
    PyErr_Clear(); /* the Python path decodes (or rejects) this payload */
    Py_RETURN_NONE;
}

/* Decoder(sources, n_columns, error_column): sources = [(attribute, column index, how, priority), ...] */
static int Decoder_init(Decoder *self, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"sources", "n_columns", "error_column", NULL};
    PyObject *seq;
    int n_columns, error_column;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "Oii", kwlist, &seq, &n_columns, &error_column)) return -1;
    if (n_columns < 0 || n_columns > MAX_COLUMNS) {
        PyErr_Format(PyExc_ValueError, "n_columns must be within 0..%d", MAX_COLUMNS);
        return -1;
    }
    PyObject *fast = PySequence_Fast(seq, "sources must be a sequence");
    if (!fast) return -1;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(fast);
    if (n > TABLE / 2) {
        Py_DECREF(fast);
        PyErr_SetString(PyExc_ValueError, "too many promoted attribute sources");
        return -1;
    }
    PyMem_Free(self->sources);
    self->sources = PyMem_Calloc((size_t)n + 1, sizeof(Source));
    Py_XSETREF(self->source_keys, PyList_New(0));
    if (!self->sources || !self->source_keys) {
        Py_DECREF(fast);
        PyErr_NoMemory();
        return -1;
    }
    for (int i = 0; i < TABLE; i++) self->table[i] = -1;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *key;
        Source *s = &self->sources[i];
        if (!PyArg_ParseTuple(PySequence_Fast_GET_ITEM(fast, i), "Uiii", &key, &s->column, &s->how, &s->priority)) {
            Py_DECREF(fast);
            return -1;
        }
        if (s->column < 0 || s->column >= n_columns || s->how < P_STR || s->how > P_FIRST) {
            Py_DECREF(fast);
            PyErr_SetString(PyExc_ValueError, "bad promoted attribute source");
            return -1;
        }
        s->key = PyUnicode_AsUTF8AndSize(key, &s->key_n);
        if (!s->key || PyList_Append(self->source_keys, key) < 0) {
            Py_DECREF(fast);
            return -1;
        }
        s->h = key_hash((const uint8_t *)s->key, (size_t)s->key_n);
        uint64_t slot = s->h;
        while (self->table[slot & (TABLE - 1)] >= 0) slot++;
        self->table[slot & (TABLE - 1)] = (int16_t)i;
    }
    Py_DECREF(fast);
    self->n_sources = n;
    self->n_columns = n_columns;
    self->error_column = error_column;
    return 0;
}

static void Decoder_dealloc(Decoder *self) {
    PyMem_Free(self->sources);
    free(self->work.json.p);
    free(self->work.scratch.p);
    free(self->work.check.p);
    free(self->work.kvs.items);
    Py_XDECREF(self->source_keys);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMethodDef Decoder_methods[] = {
    {"decode_traces", (PyCFunction)Decoder_decode_traces, METH_VARARGS, decode_traces_doc},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject DecoderType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "loratrace.collector._fastdecode.Decoder",
    .tp_basicsize = sizeof(Decoder),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "OTLP trace request bytes -> span columns; see decode_traces.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Decoder_init,
    .tp_dealloc = (destructor)Decoder_dealloc,
    .tp_methods = Decoder_methods,
};

/* ---------------------------------------------------------------------------------------------------------
 * the duplicate window: trace id + span id of the last `capacity` spans written, FIFO
 */

#define KEY_BYTES 24

typedef struct {
    PyObject_HEAD
    uint8_t *ring;      /* capacity keys of KEY_BYTES (16-byte trace id, 8-byte span id) */
    uint32_t *table;    /* open addressing, linear probing: ring index + 1, 0 = empty */
    uint64_t mask;      /* table size - 1 */
    int64_t capacity;
    int64_t count;
    int64_t head;       /* ring index of the oldest key */
} KeyWindow;

static inline uint64_t window_hash(const uint8_t *k) {
    uint64_t a, b, c;
    memcpy(&a, k, 8);
    memcpy(&b, k + 8, 8);
    memcpy(&c, k + 16, 8);
    uint64_t h = (a ^ (b * 0x9e3779b97f4a7c15ull) ^ (c * 0xc2b2ae3d27d4eb4full));
    h ^= h >> 31;
    h *= 0xbf58476d1ce4e5b9ull;
    h ^= h >> 29;
    return h;
}

static int hex_value(int c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1; /* the decoders write lowercase only: anything else is an odd key */
}

/* trace id (32 hex chars) + span id (16 hex chars) -> 24 bytes; 0 for any other form */
static int window_key(PyObject *trace, PyObject *span, uint8_t *out) {
    if (!PyUnicode_Check(trace) || !PyUnicode_Check(span)) return 0;
    if (PyUnicode_GET_LENGTH(trace) != 32 || PyUnicode_GET_LENGTH(span) != 16) return 0;
    if (PyUnicode_KIND(trace) != PyUnicode_1BYTE_KIND || PyUnicode_KIND(span) != PyUnicode_1BYTE_KIND) return 0;
    const Py_UCS1 *t = PyUnicode_1BYTE_DATA(trace), *s = PyUnicode_1BYTE_DATA(span);
    for (int i = 0; i < 16; i++) {
        int hi = hex_value(t[2 * i]), lo = hex_value(t[2 * i + 1]);
        if (hi < 0 || lo < 0) return 0;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    for (int i = 0; i < 8; i++) {
        int hi = hex_value(s[2 * i]), lo = hex_value(s[2 * i + 1]);
        if (hi < 0 || lo < 0) return 0;
        out[16 + i] = (uint8_t)(hi << 4 | lo);
    }
    return 1;
}

static int64_t window_find(KeyWindow *w, const uint8_t *key, uint64_t h, uint64_t *slot_out) {
    uint64_t slot = h & w->mask;
    for (;;) {
        uint32_t e = w->table[slot];
        if (e == 0) {
            *slot_out = slot;
            return -1;
        }
        if (memcmp(w->ring + (size_t)(e - 1) * KEY_BYTES, key, KEY_BYTES) == 0) {
            *slot_out = slot;
            return (int64_t)e - 1;
        }
        slot = (slot + 1) & w->mask;
    }
}

/* remove the entry at `slot`, shifting back the run after it (linear-probing deletion, no tombstones) */
static void window_erase(KeyWindow *w, uint64_t slot) {
    uint64_t i = slot, j = slot;
    w->table[i] = 0;
    for (;;) {
        j = (j + 1) & w->mask;
        uint32_t e = w->table[j];
        if (e == 0) return;
        uint64_t home = window_hash(w->ring + (size_t)(e - 1) * KEY_BYTES) & w->mask;
        /* move e back to i unless its home lies cyclically in (i, j] */
        if ((j > i && (home <= i || home > j)) || (j < i && (home <= i && home > j))) {
            w->table[i] = e;
            w->table[j] = 0;
            i = j;
        }
    }
}

static void window_insert(KeyWindow *w, const uint8_t *key, uint64_t h, uint64_t free_slot) {
    int64_t index;
    if (w->count == w->capacity) {
        /* evict the oldest: its ring slot takes the new key */
        index = w->head;
        const uint8_t *old = w->ring + (size_t)index * KEY_BYTES;
        uint64_t old_slot;
        window_find(w, old, window_hash(old), &old_slot);
        window_erase(w, old_slot);
        w->head = (w->head + 1) % w->capacity;
        /* the erase may have moved entries: find the new key's free slot again */
        window_find(w, key, h, &free_slot);
    } else {
        index = (w->head + w->count) % w->capacity;
        w->count++;
    }
    memcpy(w->ring + (size_t)index * KEY_BYTES, key, KEY_BYTES);
    w->table[free_slot] = (uint32_t)(index + 1);
}

static int KeyWindow_init(KeyWindow *self, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"capacity", NULL};
    long long capacity;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "L", kwlist, &capacity)) return -1;
    if (capacity < 1 || capacity > 1000000000ll) {
        PyErr_SetString(PyExc_ValueError, "capacity must be within 1..1e9");
        return -1;
    }
    uint64_t size = 1024;
    while (size < (uint64_t)capacity * 2) size <<= 1;
    free(self->ring);
    free(self->table);
    /* calloc: pages are touched only as the window fills */
    self->ring = calloc((size_t)capacity, KEY_BYTES);
    self->table = calloc((size_t)size, sizeof(uint32_t));
    if (!self->ring || !self->table) {
        PyErr_NoMemory();
        return -1;
    }
    self->mask = size - 1;
    self->capacity = capacity;
    self->count = self->head = 0;
    return 0;
}

static void KeyWindow_dealloc(KeyWindow *self) {
    free(self->ring);
    free(self->table);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

PyDoc_STRVAR(fresh_doc,
"fresh(trace_ids, span_ids) -> bytes\n\n"
"One byte per row: 1 = new (not in the window, first of its key in this call; now remembered),\n"
"0 = a duplicate, 2 = not a 32 + 16 lowercase-hex id pair (the caller checks those rows itself).");

static PyObject *KeyWindow_fresh(KeyWindow *self, PyObject *args) {
    PyObject *traces, *spans;
    if (!PyArg_ParseTuple(args, "O!O!", &PyList_Type, &traces, &PyList_Type, &spans)) return NULL;
    Py_ssize_t n = PyList_GET_SIZE(traces);
    if (PyList_GET_SIZE(spans) != n) {
        PyErr_SetString(PyExc_ValueError, "trace_ids and span_ids differ in length");
        return NULL;
    }
    PyObject *out = PyBytes_FromStringAndSize(NULL, n);
    if (!out) return NULL;
    char *mask = PyBytes_AS_STRING(out);
    uint8_t key[KEY_BYTES];
    for (Py_ssize_t i = 0; i < n; i++) {
        if (!window_key(PyList_GET_ITEM(traces, i), PyList_GET_ITEM(spans, i), key)) {
            mask[i] = 2;
            continue;
        }
        uint64_t h = window_hash(key), slot;
        if (window_find(self, key, h, &slot) >= 0) {
            mask[i] = 0;
        } else {
            window_insert(self, key, h, slot);
            mask[i] = 1;
        }
    }
    return out;
}

static PyObject *KeyWindow_len(KeyWindow *self, PyObject *unused) { return PyLong_FromLongLong(self->count); }

static PyMethodDef KeyWindow_methods[] = {
    {"fresh", (PyCFunction)KeyWindow_fresh, METH_VARARGS, fresh_doc},
    {"size", (PyCFunction)KeyWindow_len, METH_NOARGS, "size() -> number of keys remembered"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject KeyWindowType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "loratrace.collector._fastdecode.KeyWindow",
    .tp_basicsize = sizeof(KeyWindow),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "The trace id + span id of the last `capacity` spans (24 bytes each), to drop re-sent spans.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)KeyWindow_init,
    .tp_dealloc = (destructor)KeyWindow_dealloc,
    .tp_methods = KeyWindow_methods,
};

/* ---------------------------------------------------------------------------------------------------------
 * request scans for the receivers: what a request will cost to parse, and whether any span is over the
 * attribute limits, read from the wire bytes before upb builds a single message
 */

#define SCAN_DEPTH 32

/* messages nested in p..n (n itself excluded), counting every length-delimited field whose bytes parse as a
 * message: an upper bound of what upb allocates (strings that happen to parse are counted too). Visits each
 * byte at most once per level of nesting. -1 when p..n is not a message. */
static int64_t count_messages(const uint8_t *p, size_t n, int depth) {
    const uint8_t *end = p + n;
    Field f;
    int r;
    int64_t total = 0;
    while ((r = next_field(&p, end, &f)) > 0) {
        if (f.wt != WT_LEN) continue;
        if (depth >= SCAN_DEPTH) {
            total += 1;
            continue;
        }
        int64_t inner = count_messages(f.d, f.n, depth + 1);
        if (inner >= 0) total += 1 + inner;
    }
    return r < 0 ? -1 : total;
}

PyDoc_STRVAR(count_messages_doc,
"count_messages(payload) -> int\n\n"
"An upper bound of the protobuf messages nested in payload (for the memory a parse takes); -1 when payload\n"
"is not a protobuf message.");

static PyObject *py_count_messages(PyObject *module, PyObject *arg) {
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0) return NULL;
    int64_t total;
    Py_BEGIN_ALLOW_THREADS
    total = count_messages(view.buf, (size_t)view.len, 0);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&view);
    return PyLong_FromLongLong(total);
}

/* One walk of an ExportTraceServiceRequest along its schema, stepping over strings without reading them: the
 * messages upb will build, and the spans over the attribute limits. */
typedef struct {
    int64_t messages;
    size_t max_count;
    size_t max_value;
    int over; /* the span being walked is over a limit */
} TraceScan;

/* an AnyValue (already counted): its nested array / kvlist messages; long strings and bytes set `over` */
static void scan_any(TraceScan *t, const uint8_t *p, size_t n, int depth, int in_array);

/* one KeyValue message (counted here, with its value) */
static inline void scan_kv(TraceScan *t, const uint8_t *q, size_t n, int depth, int limited) {
    const uint8_t *qe = q + n;
    t->messages++;
    /* the usual short key-value, read without next_field: a one-byte key length, then a scalar value
     * shorter than 128 bytes (the value limit applies only above that) */
    if (qe - q >= 2 && q[0] == 0x0a && q[1] < 0x80 && qe - q >= 2 + q[1]) {
        const uint8_t *v = q + 2 + q[1];
        if (qe - v >= 3 && v[0] == 0x12 && v[1] < 0x80 && v + 2 + v[1] == qe && v[2] != 0x2a && v[2] != 0x32 &&
            (v[1] <= t->max_value || v[2] == 0x10 || v[2] == 0x18 || v[2] == 0x21)) {
            t->messages++;
            return;
        }
    }
    Field g;
    while (next_field(&q, qe, &g) > 0)
        if (g.num == 2 && g.wt == WT_LEN) {
            t->messages++;
            scan_any(t, g.d, g.n, depth + 1, limited ? 0 : -1);
        }
}

static void scan_kvs(TraceScan *t, const uint8_t *p, size_t n, uint32_t num, int depth, int limited) {
    const uint8_t *end = p + n;
    Field f;
    size_t count = 0;
    while (next_field(&p, end, &f) > 0) {
        if (f.num != num || f.wt != WT_LEN) continue;
        if (limited && ++count > t->max_count) t->over = 1;
        scan_kv(t, f.d, f.n, depth, limited);
    }
}

static void scan_any(TraceScan *t, const uint8_t *p, size_t n, int depth, int in_array) {
    if (depth > SCAN_DEPTH) return; /* upb refuses deeper nesting */
    const uint8_t *end = p + n;
    Field f;
    while (next_field(&p, end, &f) > 0) {
        if (f.wt != WT_LEN) continue;
        /* in_array: 0 an attribute's value, 1 an element of its array, -1 not under the limits */
        if ((f.num == 1 || f.num == 7) && in_array >= 0 && f.n > t->max_value) t->over = 1;
        if (f.num == 5 || f.num == 6) {
            t->messages++;
            const uint8_t *q = f.d, *qe = f.d + f.n;
            Field g;
            if (f.num == 6) {
                scan_kvs(t, f.d, f.n, 1, depth + 1, 0);
                continue;
            }
            while (next_field(&q, qe, &g) > 0)
                if (g.num == 1 && g.wt == WT_LEN) {
                    t->messages++;
                    scan_any(t, g.d, g.n, depth + 1, in_array == 0 ? 1 : -1);
                }
        }
    }
}

static void scan_span(TraceScan *t, const uint8_t *p, size_t n) {
    const uint8_t *end = p + n;
    Field f;
    size_t count = 0;
    t->over = 0;
    while (next_field(&p, end, &f) > 0) {
        if (f.wt != WT_LEN) continue;
        if (f.num == 9) {
            if (++count > t->max_count) t->over = 1;
            scan_kv(t, f.d, f.n, 0, 1);
        } else if (f.num == 11) { /* event */
            t->messages++;
            scan_kvs(t, f.d, f.n, 3, 0, 1);
        } else if (f.num == 13) { /* link */
            t->messages++;
            scan_kvs(t, f.d, f.n, 4, 0, 1);
        } else if (f.num == 15) { /* status */
            t->messages++;
        }
    }
}

PyDoc_STRVAR(scan_traces_doc,
"scan_traces(payload, max_attributes, max_value_bytes) -> (messages, spans_over_limits)\n\n"
"Reads an ExportTraceServiceRequest's wire bytes along its schema, without building it: the number of\n"
"messages a parse allocates (resource / scope / span / event / link / key-value / value messages), and how\n"
"many spans have more than max_attributes attributes (on the span, one event or one link) or a string /\n"
"bytes attribute value (or array element) over max_value_bytes bytes. Malformed parts are left to upb.");

static PyObject *py_scan_traces(PyObject *module, PyObject *args) {
    Py_buffer view;
    Py_ssize_t max_count, max_value;
    if (!PyArg_ParseTuple(args, "y*nn", &view, &max_count, &max_value)) return NULL;
    if (max_count < 0 || max_value < 0) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_ValueError, "limits must not be negative");
        return NULL;
    }
    TraceScan t = {0, (size_t)max_count, (size_t)max_value, 0};
    int64_t over = 0;
    Py_BEGIN_ALLOW_THREADS
    const uint8_t *p = view.buf, *end = p + view.len;
    Field rs, ss, sp;
    while (next_field(&p, end, &rs) > 0) {
        if (rs.num != 1 || rs.wt != WT_LEN) continue;
        t.messages++;
        const uint8_t *q = rs.d, *qe = rs.d + rs.n;
        while (next_field(&q, qe, &ss) > 0) {
            if (ss.wt != WT_LEN) continue;
            if (ss.num == 1) { /* resource */
                t.messages++;
                scan_kvs(&t, ss.d, ss.n, 1, 0, 0);
                continue;
            }
            if (ss.num != 2) continue;
            t.messages++;
            const uint8_t *u = ss.d, *ue = ss.d + ss.n;
            while (next_field(&u, ue, &sp) > 0) {
                if (sp.wt != WT_LEN) continue;
                if (sp.num == 1) { /* scope */
                    t.messages++;
                    scan_kvs(&t, sp.d, sp.n, 3, 0, 0);
                } else if (sp.num == 2) {
                    t.messages++;
                    scan_span(&t, sp.d, sp.n);
                    over += t.over;
                }
            }
        }
    }
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&view);
    return Py_BuildValue("(LL)", (long long)t.messages, (long long)over);
}

static PyMethodDef module_methods[] = {
    {"count_messages", (PyCFunction)py_count_messages, METH_O, count_messages_doc},
    {"scan_traces", (PyCFunction)py_scan_traces, METH_VARARGS, scan_traces_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_fastdecode",
    "Compiled OTLP trace decoder for loratrace.collector.decode (optional accelerator).", -1, module_methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__fastdecode(void) {
    const uint16_t probe = 1;
    if (*(const uint8_t *)&probe != 1) {
        PyErr_SetString(PyExc_ImportError, "loratrace's compiled decoder supports little-endian hosts only");
        return NULL;
    }
    if (PyType_Ready(&DecoderType) < 0 || PyType_Ready(&SpanBatchType) < 0 || PyType_Ready(&KeyWindowType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (!m) return NULL;
    Py_INCREF(&DecoderType);
    if (PyModule_AddObject(m, "Decoder", (PyObject *)&DecoderType) < 0) {
        Py_DECREF(&DecoderType);
        Py_DECREF(m);
        return NULL;
    }
    Py_INCREF(&SpanBatchType);
    if (PyModule_AddObject(m, "SpanBatch", (PyObject *)&SpanBatchType) < 0) {
        Py_DECREF(&SpanBatchType);
        Py_DECREF(m);
        return NULL;
    }
    Py_INCREF(&KeyWindowType);
    if (PyModule_AddObject(m, "KeyWindow", (PyObject *)&KeyWindowType) < 0) {
        Py_DECREF(&KeyWindowType);
        Py_DECREF(m);
        return NULL;
    }
    static const struct { const char *name; int value; } constants[] = {
        {"P_STR", P_STR}, {"P_INT", P_INT}, {"P_FLOAT", P_FLOAT}, {"P_BOOL", P_BOOL}, {"P_LIST", P_LIST},
        {"P_TTFT", P_TTFT}, {"P_FIRST", P_FIRST}, {"T_STR", T_STR}, {"T_I64", T_I64}, {"T_F64", T_F64},
        {"T_BOOL", T_BOOL}, {"T_TS", T_TS}, {"T_LIST", T_LIST},
    };
    for (size_t i = 0; i < sizeof constants / sizeof constants[0]; i++)
        if (PyModule_AddIntConstant(m, constants[i].name, constants[i].value) < 0) {
            Py_DECREF(m);
            return NULL;
        }
    return m;
}
