/*
 * OTLP attribute lists (KeyValue / AnyValue messages) -> the JSON object text stored in the attribute columns,
 * with Python's dict semantics for repeated keys.
 */
#ifndef LORATRACE_ATTRIBUTES_H
#define LORATRACE_ATTRIBUTES_H

#include <stddef.h>
#include <stdint.h>

#include "text.h"

#define MAX_DEPTH 32

enum { AV_NULL = 0, AV_STRING, AV_BOOL, AV_INT, AV_DOUBLE, AV_ARRAY, AV_KVLIST, AV_BYTES, AV_STRINDEX };

typedef struct {
    int kind;
    int64_t i; /* bool / int / strindex */
    double f;
    const uint8_t *d; /* string / bytes / array / kvlist body */
    size_t n;
} AnyValue;

typedef struct {
    const uint8_t *key;
    size_t key_n;
    const uint8_t *val; /* AnyValue body; NULL when the KeyValue has no value */
    size_t val_n;
    uint64_t h;
    int skip; /* a later duplicate of this key exists: the dict keeps the first position, last value */
} KV;

typedef struct {
    KV *items;
    size_t n;
    size_t cap;
} KVList;

/* the scratch state of one decoder: reused across requests, so a request allocates nothing in steady state */
typedef struct {
    Buf json;
    Buf scratch;
    Buf check;
    KVList kvs; /* a stack: nested kvlists push above their parent's entries */
} Work;

/* Return codes shared by every walker: 0 ok, -1 leave the payload to the Python path, -2 Python error set. */

uint64_t key_hash(const uint8_t *k, size_t n);
/* one AnyValue message body; -1 for anything but exactly one (or no) value field */
int parse_any(const uint8_t *p, size_t n, AnyValue *out);
/* parse a KeyValue body and push it onto l */
int kv_parse_push(KVList *l, const uint8_t *p, size_t n);
/* resolve repeated keys among kvs[first..]; the values a later duplicate overrides are still checked */
int kv_dedup_checked(Work *w, size_t first);
/* the value of `key` among the resolved entries first..last, or NULL */
const KV *kv_lookup(const Work *w, size_t first, size_t last, const char *key, size_t key_n);
/* JSON object of the resolved entries first..last */
int emit_kvlist_items(Work *w, Buf *b, size_t first, size_t last, int depth);
/* JSON value of one AnyValue body */
int emit_any(Work *w, Buf *b, const uint8_t *p, size_t n, int depth);
/* push every field numbered `num` of message p..n onto the stack (a repeated KeyValue field) */
int kv_push_fields(Work *w, const uint8_t *p, size_t n, uint32_t num);
void work_free(Work *w);

#endif
