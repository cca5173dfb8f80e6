/* slot.c -- one connection's replies, in request order (see slot.h). */
#include "slot.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "router.h"
#include "zos/resp.h"

void zos_slots_init(struct zos_slots *q, struct evbuffer *out, struct zos_client *owner,
                    const struct zos_slots_hooks *hooks)
{
    *q = (struct zos_slots){.out = out, .owner = owner, .hooks = hooks};
}

struct zos_slot *zos_slot_new(struct zos_slots *q)
{
    struct zos_slot *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return NULL;
    s->q = q;
    s->c = q->owner;
    if (q->tail != NULL)
        q->tail->next = s;
    else
        q->head = s;
    q->tail = s;
    q->n++;
    return s;
}

static void group_free(struct zos_slot_group *g)
{
    for (size_t i = 0; i < g->nparts; i++)
        if (g->parts[i].buf != NULL)
            evbuffer_free(g->parts[i].buf);
    if (g->deadline != NULL)
        event_free(g->deadline);
    free(g);
}

void zos_slot_free(struct zos_slot *s)
{
    if (s->group != NULL) {
        s->group->slot = NULL;
        if (s->group->refs == 0)
            group_free(s->group);
    }
    free(s->seal_which);
    if (s->buf != NULL)
        evbuffer_free(s->buf);
    free(s);
}

struct zos_slot *zos_slot_new_stream(struct zos_slots *q)
{
    struct zos_slot *s = zos_slot_new(q);
    if (s != NULL)
        s->kind = ZOS_SLOT_STREAM; /* freed with its queue, not by a reply */
    return s;
}

void zos_slot_stream_flush(struct zos_slot *s)
{
    struct zos_slots *q = s->q;
    if (q == NULL || (q->hooks != NULL && q->hooks->stream_full(q->owner)))
        return;
    if (q->head == s)
        zos_slots_flush(q);
}

struct evbuffer *zos_slot_buf(struct zos_slot *s)
{
    if (s->q != NULL && s->q->head == s && s->q->out != NULL)
        return s->q->out;
    if (s->buf == NULL)
        s->buf = evbuffer_new();
    return s->buf;
}

void zos_slot_on_orphan(struct zos_slot *s, void (*fn)(void *arg), void *arg)
{
    s->orphan_fn = fn;
    s->orphan_arg = arg;
}

bool zos_slot_orphaned(const struct zos_slot *s)
{
    return zos_slot_client(s) == NULL;
}

struct zos_client *zos_slot_client(const struct zos_slot *s)
{
    if (s->part != NULL)
        return s->part->g->slot != NULL ? s->part->g->slot->c : NULL;
    return s->c;
}

void zos_slot_done(struct zos_slot *s)
{
    if (s->part != NULL) {
        struct evbuffer *buf = s->buf != NULL ? s->buf : evbuffer_new();
        s->buf = NULL;
        zos_slot_part_done(s->part, buf);
        zos_slot_free(s);
        return;
    }
    if (s->q == NULL) {
        zos_slot_free(s);
        return;
    }
    s->done = true;
    if (s->q->head == s)
        zos_slots_flush(s->q);
}

void zos_slot_error(struct zos_slot *s, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (!zos_slot_orphaned(s))
        zos_resp_add_error(zos_slot_buf(s), "%s", msg);
    zos_slot_done(s);
}

void zos_slot_status(struct zos_slot *s, const char *status)
{
    if (!zos_slot_orphaned(s))
        zos_resp_add_status(zos_slot_buf(s), status);
    zos_slot_done(s);
}

void zos_slots_flush(struct zos_slots *q)
{
    while (q->head != NULL) {
        struct zos_slot *s = q->head;
        size_t n = s->buf != NULL ? evbuffer_get_length(s->buf) : 0;
        if (n > 0) {
            q->bytes -= n < q->bytes ? n : q->bytes;
            evbuffer_add_buffer(q->out, s->buf);
        }
        if (!s->done)
            break;
        q->head = s->next;
        if (q->head == NULL)
            q->tail = NULL;
        q->n--;
        zos_slot_free(s);
    }
}

void zos_slots_orphan_all(struct zos_slots *q)
{
    struct zos_slot *s = q->head;
    while (s != NULL) {
        struct zos_slot *next = s->next;
        bool owned_elsewhere = !s->done && s->kind != ZOS_SLOT_STREAM;
        s->q = NULL;
        s->c = NULL;
        s->pin = NULL;
        s->next = NULL;
        if (owned_elsewhere && s->orphan_fn != NULL)
            s->orphan_fn(s->orphan_arg); /* stops the work; frees S */
        else if (!owned_elsewhere)
            zos_slot_free(s);
        s = next;
    }
    q->head = q->tail = NULL;
    q->n = 0;
    q->bytes = 0;
}

/* ---- groups (ZOS.ALL) ---- */

/* The reply leaves: [node, reply, node, reply, ...], with an error for
 * each part that did not answer in time. */
static void group_deliver(struct zos_slot_group *g)
{
    struct zos_slot *s = g->slot;
    struct zos_slots *q = s->q;

    g->slot = NULL;
    s->group = NULL;
    if (g->deadline != NULL)
        evtimer_del(g->deadline);
    if (q == NULL) {
        zos_slot_free(s);
        return;
    }
    if (s->counted && q->hooks != NULL) /* parts still on their way no longer hold its order */
        q->hooks->parts_left(q->owner, g->waiting);
    s->counted = false;
    struct evbuffer *out = zos_slot_buf(s);
    zos_resp_add_map(out, (long long)g->nparts, g->resp3);
    for (size_t k = 0; k < g->nparts; k++) {
        struct zos_slot_part *p = &g->parts[k];
        zos_resp_add_cstr(out, p->node->conf->name);
        if (p->buf != NULL)
            evbuffer_add_buffer(out, p->buf);
        else
            zos_resp_add_error(out, "ERR node '%s' timed out after %d ms", p->node->conf->name,
                               g->timeout_ms);
    }
    struct zos_client *owner = q->owner;
    const struct zos_slots_hooks *hooks = q->hooks;
    zos_slot_done(s);
    if (hooks != NULL)
        hooks->group_done(owner);
}

void zos_slot_part_done(struct zos_slot_part *p, struct evbuffer *buf)
{
    struct zos_slot_group *g = p->g;

    g->refs--;
    if (g->slot != NULL && p->buf == NULL) {
        p->buf = buf;
        struct zos_slots *q = g->slot->q;
        if (g->slot->counted && q != NULL && q->hooks != NULL)
            q->hooks->parts_left(q->owner, 1);
        if (--g->waiting == 0)
            group_deliver(g);
    } else {
        evbuffer_free(buf); /* after the deadline: dropped */
    }
    if (g->refs == 0 && g->slot == NULL)
        group_free(g);
}

static void deadline_cb(evutil_socket_t fd, short what, void *arg)
{
    group_deliver(arg);
}

int zos_slot_group_deadline(struct zos_slot *group, struct event_base *base, int timeout_ms)
{
    struct zos_slot_group *g = group->group;
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    g->timeout_ms = timeout_ms;
    if ((g->deadline = evtimer_new(base, deadline_cb, g)) == NULL)
        return -1;
    evtimer_add(g->deadline, &tv);
    return 0;
}

struct zos_slot *zos_slot_group(struct zos_slots *q, struct zos_node *const *nodes, size_t n,
                                bool resp3)
{
    struct zos_slot *s = zos_slot_new(q);
    if (s == NULL)
        return NULL;
    s->kind = ZOS_SLOT_GROUP;
    if (n == 0) {
        zos_resp_add_map(zos_slot_buf(s), 0, resp3);
        zos_slot_done(s);
        return NULL;
    }
    struct zos_slot_group *g = calloc(1, sizeof(*g) + n * sizeof(g->parts[0]));
    if (g == NULL) {
        zos_slot_error(s, "ERR out of memory");
        return NULL;
    }
    g->slot = s;
    g->resp3 = resp3;
    g->nparts = g->waiting = g->refs = n;
    for (size_t i = 0; i < n; i++) {
        g->parts[i].g = g;
        g->parts[i].node = nodes[i];
    }
    s->group = g;
    return s;
}

struct zos_slot *zos_slot_part(struct zos_slot *group, size_t i)
{
    struct zos_slot_part *p = &group->group->parts[i];
    struct zos_slot *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        zos_slot_part_done(p, evbuffer_new());
        return NULL;
    }
    s->part = p;
    s->node = p->node;
    return s;
}
