/* test_slot.c -- unit tests of slot, the reply queue under every client:
 * replies leave in request order whichever completes first, the head writes
 * straight to the output, streams, orphans, and ZOS.ALL groups (parts in
 * node order, late parts dropped, the deadline, the owner's hooks). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "slot.h"

#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "router.h"
#include "zos/conf.h"
#include "zos/resp.h"

struct fixture {
    struct evbuffer *out;
    struct zos_slots q;
    struct zos_node_conf confs[3];
    struct zos_node nodes[3];
    struct zos_node *ptrs[3];
    /* what the hooks heard */
    size_t parts_left, groups_done;
    bool full;
};

static struct fixture *current;

static bool hook_full(struct zos_client *owner)
{
    return current->full;
}

static void hook_parts_left(struct zos_client *owner, size_t parts)
{
    current->parts_left += parts;
}

static void hook_group_done(struct zos_client *owner)
{
    current->groups_done++;
}

static const struct zos_slots_hooks hooks = {hook_full, hook_parts_left, hook_group_done};

static int setup(void **state)
{
    static const char *names[] = {"alpha", "beta", "gamma"};
    struct fixture *f = calloc(1, sizeof(*f));
    f->out = evbuffer_new();
    zos_slots_init(&f->q, f->out, (struct zos_client *)f, &hooks);
    for (int i = 0; i < 3; i++) {
        f->confs[i].name = (char *)names[i];
        f->nodes[i].conf = &f->confs[i];
        f->ptrs[i] = &f->nodes[i];
    }
    current = f;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    zos_slots_orphan_all(&f->q);
    evbuffer_free(f->out);
    free(f);
    return 0;
}

/* The output so far, as a C string (drained). */
static char *take(struct evbuffer *b)
{
    size_t n = evbuffer_get_length(b);
    char *s = malloc(n + 1);
    evbuffer_remove(b, s, n);
    s[n] = '\0';
    return s;
}

#define assert_out(f, want)                                                                        \
    do {                                                                                           \
        char *got_ = take((f)->out);                                                               \
        assert_string_equal(got_, want);                                                           \
        free(got_);                                                                                \
    } while (0)

static void reply(struct zos_slot *s, const char *text)
{
    evbuffer_add(zos_slot_buf(s), text, strlen(text));
    zos_slot_done(s);
}

/* Completed last-first, the replies still leave first-first, each as soon as
 * everything before it left. */
static void test_request_order(void **state)
{
    struct fixture *f = *state;
    struct zos_slot *s[4];
    for (int i = 0; i < 4; i++)
        s[i] = zos_slot_new(&f->q);
    assert_int_equal(f->q.n, 4);
    assert_ptr_equal(zos_slot_buf(s[0]), f->out); /* the head writes straight out */
    assert_ptr_not_equal(zos_slot_buf(s[3]), f->out);

    reply(s[3], "+d\r\n");
    reply(s[1], "+b\r\n");
    assert_out(f, "");
    reply(s[0], "+a\r\n");
    assert_out(f, "+a\r\n+b\r\n");
    assert_int_equal(f->q.n, 2);
    assert_ptr_equal(f->q.head, s[2]);
    zos_slot_error(s[2], "ERR %s", "c");
    assert_out(f, "-ERR c\r\n+d\r\n");
    assert_int_equal(f->q.n, 0);
    assert_null(f->q.head);
    assert_null(f->q.tail);
}

/* A head that gets its reply in pieces writes each piece out at once; the
 * slot behind it waits until it is done. */
static void test_head_streams_pieces(void **state)
{
    struct fixture *f = *state;
    struct zos_slot *a = zos_slot_new(&f->q), *b = zos_slot_new(&f->q);
    reply(b, ":2\r\n");
    evbuffer_add(zos_slot_buf(a), "*2\r\n", 4);
    assert_out(f, "*2\r\n");
    evbuffer_add(zos_slot_buf(a), ":1\r\n", 4);
    assert_out(f, ":1\r\n");
    reply(a, ":1\r\n");
    assert_out(f, ":1\r\n:2\r\n");
}

/* A stream (a follow channel) is written as messages come while it is the
 * head, holds what comes behind it until it ends, and writes nothing while
 * the owner is over its limit. */
static void test_stream(void **state)
{
    struct fixture *f = *state;
    struct zos_slot *first = zos_slot_new(&f->q);
    struct zos_slot *st = zos_slot_new_stream(&f->q);
    struct zos_slot *after = zos_slot_new(&f->q);

    evbuffer_add(zos_slot_buf(st), "m1", 2);
    zos_slot_stream_flush(st);
    assert_out(f, ""); /* behind FIRST */
    reply(after, "+after\r\n");
    reply(first, "+first\r\n");
    assert_out(f, "+first\r\nm1");
    evbuffer_add(zos_slot_buf(st), "m2", 2);
    zos_slot_stream_flush(st);
    assert_out(f, "m2");

    f->full = true;
    struct zos_slot *st2 = zos_slot_new_stream(&f->q);
    zos_slot_done(st); /* the first stream ends: AFTER goes, ST2 is the head */
    assert_out(f, "+after\r\n");
    assert_ptr_equal(f->q.head, st2);
    f->full = false;
}

static int orphan_calls;
static void on_orphan(void *arg)
{
    orphan_calls++;
    zos_slot_done(arg); /* as the work behind it must: frees it */
}

/* The owner leaves: written and streams slots go, the work behind a waiting
 * slot is stopped by its orphan function, and a reply that still comes to
 * an orphan is dropped (freed, never written: ASan sees a leak or a use). */
static void test_orphans(void **state)
{
    struct fixture *f = *state;
    struct zos_slot *done = zos_slot_new(&f->q);
    struct zos_slot *waiting = zos_slot_new(&f->q);
    struct zos_slot *stopped = zos_slot_new(&f->q);
    zos_slot_new_stream(&f->q);
    zos_slot_on_orphan(stopped, on_orphan, stopped);
    reply(done, "+x\r\n"); /* left already */
    assert_out(f, "+x\r\n");

    orphan_calls = 0;
    assert_false(zos_slot_orphaned(waiting));
    assert_ptr_equal(zos_slot_client(waiting), (struct zos_client *)f);
    zos_slots_orphan_all(&f->q);
    assert_int_equal(orphan_calls, 1);
    assert_int_equal(f->q.n, 0);
    assert_true(zos_slot_orphaned(waiting));
    assert_null(zos_slot_client(waiting));
    zos_slot_error(waiting, "ERR too late"); /* frees it */
    assert_out(f, "");
}

/* A group answers [node, reply, ...] in node order, whatever order the parts
 * came in; a counted one tells the owner of each part that arrived. */
static void test_group_node_order(void **state)
{
    struct fixture *f = *state;
    struct zos_slot *g = zos_slot_group(&f->q, f->ptrs, 3, false);
    struct zos_slot *behind = zos_slot_new(&f->q);
    assert_non_null(g);
    g->counted = true;
    struct zos_slot *p[3];
    for (int i = 0; i < 3; i++)
        p[i] = zos_slot_part(g, (size_t)i);
    reply(behind, "+behind\r\n");
    reply(p[2], ":3\r\n");
    reply(p[0], ":1\r\n");
    assert_out(f, "");
    assert_int_equal(f->parts_left, 2);
    assert_int_equal(f->groups_done, 0);
    reply(p[1], ":2\r\n");
    assert_out(f, "*6\r\n$5\r\nalpha\r\n:1\r\n$4\r\nbeta\r\n:2\r\n$5\r\ngamma\r\n:3\r\n"
                  "+behind\r\n");
    assert_int_equal(f->parts_left, 3);
    assert_int_equal(f->groups_done, 1);
}

/* RESP3: a map.  No nodes: the empty answer at once. */
static void test_group_resp3_and_empty(void **state)
{
    struct fixture *f = *state;
    assert_null(zos_slot_group(&f->q, f->ptrs, 0, true));
    assert_out(f, "%0\r\n");
    struct zos_slot *g = zos_slot_group(&f->q, f->ptrs, 1, true);
    reply(zos_slot_part(g, 0), "_\r\n");
    assert_out(f, "%1\r\n$5\r\nalpha\r\n_\r\n");
    assert_int_equal(f->parts_left, 0); /* not counted */
}

/* At the deadline the group answers with what came and an error for each
 * missing part; a part that comes later is dropped, and the parts still
 * missing leave the owner's order then. */
static void test_group_deadline(void **state)
{
    struct fixture *f = *state;
    struct event_base *base = event_base_new();
    struct zos_slot *g = zos_slot_group(&f->q, f->ptrs, 3, false);
    g->counted = true;
    struct zos_slot *p0 = zos_slot_part(g, 0), *p1 = zos_slot_part(g, 1);
    struct zos_slot *p2 = zos_slot_part(g, 2);
    assert_int_equal(zos_slot_group_deadline(g, base, 1), 0);
    reply(p1, ":2\r\n");
    assert_int_not_equal(event_base_dispatch(base), -1); /* the deadline fires; nothing is left */
    assert_out(f, "*6\r\n$5\r\nalpha\r\n-ERR node 'alpha' timed out after 1 ms\r\n$4\r\nbeta\r\n"
                  ":2\r\n$5\r\ngamma\r\n-ERR node 'gamma' timed out after 1 ms\r\n");
    assert_int_equal(f->parts_left, 3); /* one came, two were given up */
    reply(p0, ":1\r\n");                /* late: dropped */
    zos_slot_error(p2, "ERR late");
    assert_out(f, "");
    assert_int_equal(f->parts_left, 3);
    event_base_free(base);
}

/* The group's reply is still written when the owner left: no, dropped; the
 * parts that come later are freed with it. */
static void test_group_orphaned(void **state)
{
    struct fixture *f = *state;
    struct zos_slot *g = zos_slot_group(&f->q, f->ptrs, 2, false);
    struct zos_slot *p0 = zos_slot_part(g, 0), *p1 = zos_slot_part(g, 1);
    zos_slots_orphan_all(&f->q);
    assert_true(zos_slot_orphaned(p0));
    reply(p0, ":1\r\n");
    reply(p1, ":2\r\n");
    assert_out(f, "");
    assert_int_equal(f->groups_done, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_request_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_head_streams_pieces, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stream, setup, teardown),
        cmocka_unit_test_setup_teardown(test_orphans, setup, teardown),
        cmocka_unit_test_setup_teardown(test_group_node_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_group_resp3_and_empty, setup, teardown),
        cmocka_unit_test_setup_teardown(test_group_deadline, setup, teardown),
        cmocka_unit_test_setup_teardown(test_group_orphaned, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
