/*
 * The protobuf wire format: reading one field of a message, and the strict UTF-8 check upb applies to strings.
 * Header-only (static inline): every walker in the decoder calls these per field.
 */
#ifndef LORATRACE_WIRE_H
#define LORATRACE_WIRE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

enum { WT_VARINT = 0, WT_I64 = 1, WT_LEN = 2, WT_I32 = 5 };

/* the first byte of a field on the wire, for field numbers below 16 */
#define TAG(field, wire_type) (((field) << 3) | (wire_type))

typedef struct {
    uint32_t num;
    uint32_t wt;
    uint64_t v;       /* varint / fixed value */
    const uint8_t *d; /* length-delimited data */
    size_t n;
} Field;

static inline int read_varint(const uint8_t **pp, const uint8_t *end, uint64_t *out, int max_shift) {
    const uint8_t *p = *pp;
    uint64_t v = 0;
    int shift = 0;
    for (;;) {
        if (p >= end || shift > max_shift) return -1;
        uint8_t b = *p++;
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) break;
        shift += 7;
    }
    *out = v;
    *pp = p;
    return 0;
}

/* 1 = a field read, 0 = end of message, -1 = malformed or a form we leave to upb */
static inline int next_field(const uint8_t **pp, const uint8_t *end, Field *f) {
    const uint8_t *p = *pp;
    if (p >= end) return 0;
    uint64_t tag;
    if (read_varint(&p, end, &tag, 35) < 0 || tag > 0xffffffffu) return -1;
    f->num = (uint32_t)(tag >> 3);
    f->wt = (uint32_t)(tag & 7);
    if (f->num == 0 || f->num > 536870911u) return -1;
    switch (f->wt) {
    case WT_VARINT:
        if (read_varint(&p, end, &f->v, 63) < 0) return -1;
        break;
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
        uint64_t n;
        if (read_varint(&p, end, &n, 63) < 0 || n > (uint64_t)(end - p)) return -1;
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
static inline int utf8_ok(const uint8_t *s, size_t n) {
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

#endif
