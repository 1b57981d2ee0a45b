/*
 * The duplicate window: trace id + span id of the last `capacity` spans written, FIFO, as a compiled hash table
 * of 24-byte keys kept between flushes (the store writer drops re-sent spans with it).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "module.h"

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

PyTypeObject KeyWindowType =
    LORATRACE_TYPE(KeyWindow, "KeyWindow",
                   "The trace id + span id of the last `capacity` spans (24 bytes each), to drop re-sent spans.",
                   KeyWindow_init, KeyWindow_dealloc, KeyWindow_methods);
