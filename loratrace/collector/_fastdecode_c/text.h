/*
 * A growable byte buffer and the JSON text the decoder writes into it, spelled exactly as Python's json module
 * (ensure_ascii=False, compact separators) and decode._finite spell it.
 */
#ifndef LORATRACE_TEXT_H
#define LORATRACE_TEXT_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef struct {
    char *p;
    size_t len;
    size_t cap;
} Buf;

/* 0, or -1 with a Python MemoryError set */
int buf_grow(Buf *b, size_t extra);
void buf_free(Buf *b);

static inline int buf_reserve(Buf *b, size_t extra) { return b->len + extra <= b->cap ? 0 : buf_grow(b, extra); }

static inline int buf_put(Buf *b, const void *s, size_t n) {
    if (n == 0) return 0;
    if (buf_reserve(b, n) < 0) return -1;
    memcpy(b->p + b->len, s, n);
    b->len += n;
    return 0;
}

static inline int buf_putc(Buf *b, char c) {
    if (b->len >= b->cap && buf_grow(b, 1) < 0) return -1;
    b->p[b->len++] = c;
    return 0;
}

extern const char HEX_DIGITS[];

/* lowercase hex of n bytes at out (2n characters) */
static inline void hex_into(char *out, const uint8_t *s, size_t n) {
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = HEX_DIGITS[s[i] >> 4];
        out[2 * i + 1] = HEX_DIGITS[s[i] & 15];
    }
}

static inline int buf_hex(Buf *b, const uint8_t *s, size_t n) {
    if (buf_reserve(b, 2 * n) < 0) return -1;
    hex_into(b->p + b->len, s, n);
    b->len += 2 * n;
    return 0;
}

/* a JSON string exactly as json.dumps(..., ensure_ascii=False) spells it */
int buf_json_string(Buf *b, const uint8_t *s, size_t n);
/* a finite double as repr(float) spells it; non-finite ones as the JSON strings "NaN", "Infinity", "-Infinity" */
int buf_json_double(Buf *b, double v);
/* repr(float) of any double ("nan", "inf", "-inf" for the non-finite ones): str() of a float value */
int buf_float_repr(Buf *b, double v);
int buf_int(Buf *b, int64_t v);

#endif
