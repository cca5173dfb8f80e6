/* fuzz_util.h -- helpers the libFuzzer targets share: checks that abort,
 * a growing byte log, and evbuffer chains of exactly the size asked (so
 * ASan sees a read past any of them).  Header-only: each target is built
 * from its own .c file. */
#ifndef ZOS_FUZZ_UTIL_H
#define ZOS_FUZZ_UTIL_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #c);                  \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

struct log {
    char *s;
    size_t n, cap;
};

static inline void log_add(struct log *l, const void *p, size_t n)
{
    if (n == 0)
        return;
    if (l->n + n > l->cap) {
        l->cap = (l->n + n) * 2 + 64;
        l->s = realloc(l->s, l->cap);
        CHECK(l->s != NULL);
    }
    memcpy(l->s + l->n, p, n);
    l->n += n;
}

static inline void free_piece(const void *data, size_t len, void *arg)
{
    free((void *)data);
}

/* N bytes of P appended to B as one chain of exactly N bytes. */
static inline void add_piece(struct evbuffer *b, const char *p, size_t n)
{
    if (n == 0)
        return;
    char *m = malloc(n);
    CHECK(m != NULL);
    memcpy(m, p, n);
    CHECK(evbuffer_add_reference(b, m, n, free_piece, NULL) == 0);
}

#endif
