/* JSON spelling of attribute values; see text.h */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>

#include "text.h"

const char HEX_DIGITS[] = "0123456789abcdef";

int buf_grow(Buf *b, size_t extra) {
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

void buf_free(Buf *b) {
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

int buf_json_string(Buf *b, const uint8_t *s, size_t n) {
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
        if (buf_put(b, s + run, i - run) < 0) return -1;
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
            esc[4] = HEX_DIGITS[c >> 4];
            esc[5] = HEX_DIGITS[c & 15];
            k = 6;
        }
        if (buf_put(b, esc, k) < 0) return -1;
    }
    if (buf_put(b, s + run, n - run) < 0) return -1;
    return buf_putc(b, '"');
}

int buf_float_repr(Buf *b, double v) {
    /* repeated values (temperatures, alphas) are common: a small cache of repr() by bit pattern */
    static struct {
        uint64_t bits;
        char text[32];
        uint8_t n;
    } cache[256];
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

int buf_json_double(Buf *b, double v) {
    if (isnan(v)) return buf_put(b, "\"NaN\"", 5);
    if (isinf(v)) return v > 0 ? buf_put(b, "\"Infinity\"", 10) : buf_put(b, "\"-Infinity\"", 11);
    return buf_float_repr(b, v);
}

int buf_int(Buf *b, int64_t v) {
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
