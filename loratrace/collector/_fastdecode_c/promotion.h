/*
 * Attribute promotion: the rules decode.py configures at import (column, kind, attribute keys in priority
 * order), and the typed value each span's attributes give a promoted column when the compiled path can be
 * sure it equals what decode.promote_frame computes.
 */
#ifndef LORATRACE_PROMOTION_H
#define LORATRACE_PROMOTION_H

#include <stddef.h>
#include <stdint.h>

#include "attributes.h"
#include "columns.h"

#define MAX_COLUMNS 64
#define SOURCE_TABLE 256

/* how an attribute feeds its promoted column */
enum {
    P_STR = 1,   /* string column: string (or bytes, as hex) values */
    P_INT = 2,   /* int column: integers within +-2^53 */
    P_FLOAT = 3, /* float column: finite doubles, integers within +-2^53; times the rule's scale */
    P_BOOL = 4,  /* bool column: bools */
    P_LIST = 5,  /* list column: arrays of strings */
    P_FIRST = 6, /* string column fed by a list attribute: its first string (empty array: the next key) */
};

typedef struct {
    char *key;
    size_t key_n;
    uint64_t h;
    int column;
    int how;
    int priority;
} Source;

typedef struct {
    int n_columns;
    char *names[MAX_COLUMNS];
    int types[MAX_COLUMNS]; /* T_* */
    double scales[MAX_COLUMNS];
    int exception_column;   /* the promoted column that falls back to the exception event's type, or -1 */
    int n_event_columns;    /* promoted columns copied onto each event row */
    int event_columns[MAX_COLUMNS];
    Source *sources;
    int n_sources;
    int16_t table[SOURCE_TABLE]; /* open addressing over sources; -1 empty */
    /* the evaluation-result event and its attributes: name, score, label, passed, explanation */
    char *evaluation_event;
    char *evaluation_keys[5];
} Rules;

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

typedef struct {
    int hard;         /* a promoted attribute of another type: promote_frame must type the batch */
    int row_differs;  /* promote() (the event rows' rule) would give another value than promote_frame */
} PromoteFlags;

/* the best-priority usable value of each promoted column among the resolved attributes first..last */
void promote_attributes(const Rules *rules, const Work *w, size_t first, size_t last, Pick *picks,
                        PromoteFlags *flags);
/* append one promoted value (or null) */
int put_pick(Column *c, const Pick *pick, double scale);
void rules_free(Rules *rules);

#endif
