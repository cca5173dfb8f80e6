/* seal.c -- a node's secrets stay with the proxy: CONFIG and ACL through it. */
#include "seal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Parameters whose values are secrets (redis 7). */
static const char *const secret_params[] = {
    "masterauth",
    "requirepass",
    "tls-client-key-file-pass",
    "tls-key-file-pass",
};

/* ACL sub-commands that read or change users. */
static const char *const acl_guarded[] = {
    "deluser", "dryrun", "getuser", "list", "load", "log", "save", "setuser", "users",
};

static bool in_list(const char *const *list, size_t n, const char *s, size_t len)
{
    for (size_t i = 0; i < n; i++)
        if (strlen(list[i]) == len && strncasecmp(list[i], s, len) == 0)
            return true;
    return false;
}

static bool is_secret_param(const char *s, size_t len)
{
    return in_list(secret_params, ZOS_ARRAY_LEN(secret_params), s, len);
}

static bool word(const char *s, size_t len, const char *w)
{
    return len == strlen(w) && strncasecmp(s, w, len) == 0;
}

bool zos_seal_candidate(const char *name, size_t len)
{
    return word(name, len, "config") || word(name, len, "acl") || word(name, len, "replicaof") ||
           word(name, len, "slaveof");
}

enum zos_seal zos_seal_check(const struct zos_resp_argv *av, size_t first, bool admin, char *err,
                             size_t errlen)
{
    size_t argc = av->argc - first;
    char *const *a = av->argv + first;
    const size_t *l = av->argvlen + first;

    if (argc < 2)
        return ZOS_SEAL_PASS; /* the node answers the arity error */
    if (!admin && (word(a[0], l[0], "replicaof") || word(a[0], l[0], "slaveof"))) {
        /* The node would send its masterauth to whatever host it is given. */
        snprintf(err, errlen,
                 "NOPERM zos-proxy: '%s' would hand this node's masterauth to another host; "
                 "it needs admin = yes in the node's section",
                 a[0]);
        return ZOS_SEAL_REFUSE;
    }
    if (word(a[0], l[0], "config") && word(a[1], l[1], "get"))
        return ZOS_SEAL_FILTER; /* even for admins: the secret is the proxy's to send */
    if (admin)
        return ZOS_SEAL_PASS;
    if (word(a[0], l[0], "config") && word(a[1], l[1], "set")) {
        for (size_t i = 2; i < argc; i += 2) {
            if (is_secret_param(a[i], l[i])) {
                snprintf(err, errlen,
                         "NOPERM zos-proxy keeps '%s' of this node: set admin = yes in its "
                         "section to change it",
                         a[i]);
                return ZOS_SEAL_REFUSE;
            }
        }
    } else if (word(a[0], l[0], "acl") &&
               in_list(acl_guarded, ZOS_ARRAY_LEN(acl_guarded), a[1], l[1])) {
        snprintf(err, errlen,
                 "NOPERM zos-proxy keeps this node's users: 'ACL %s' needs admin = yes in its "
                 "section",
                 a[1]);
        return ZOS_SEAL_REFUSE;
    }
    return ZOS_SEAL_PASS;
}

/* ---- filtering replies ---- */

static void add_raw(struct evbuffer *out, const char *from, const char *to)
{
    evbuffer_add(out, from, (size_t)(to - from));
}

/* The value V (whose header the reader just read, starting at START) and its
 * children, as they are. */
static int copy_value(struct zos_resp_reader *r, const struct zos_resp_val *v, const char *start,
                      struct evbuffer *out)
{
    if (zos_resp_skip(r, v) != ZOS_OK)
        return ZOS_ERR;
    add_raw(out, start, zos_resp_reader_at(r));
    return ZOS_OK;
}

/* A CONFIG GET reply: [name, value, ...] (RESP2) or a map (RESP3). */
static int filter_config(struct zos_resp_reader *r, const struct zos_resp_val *v, const char *start,
                         struct evbuffer *out)
{
    struct zos_resp_val name, val;

    if (v->nil || (v->type != '*' && v->type != '%') || v->count % 2 != 0)
        return copy_value(r, v, start, out);
    add_raw(out, start, zos_resp_reader_at(r)); /* the header */
    for (size_t i = 0; i < v->count; i += 2) {
        const char *at = zos_resp_reader_at(r);
        if (zos_resp_next(r, &name) != ZOS_OK || zos_resp_skip(r, &name) != ZOS_OK)
            return ZOS_ERR;
        add_raw(out, at, zos_resp_reader_at(r));
        at = zos_resp_reader_at(r);
        if (zos_resp_next(r, &val) != ZOS_OK || zos_resp_skip(r, &val) != ZOS_OK)
            return ZOS_ERR;
        if (name.str != NULL && is_secret_param(name.str, name.len))
            evbuffer_add(out, "$0\r\n\r\n", 6);
        else
            add_raw(out, at, zos_resp_reader_at(r));
    }
    return ZOS_OK;
}

static int filter(const char *mem, size_t len, struct evbuffer *out, const bool *which,
                  size_t nwhich)
{
    struct zos_resp_reader r;
    struct zos_resp_val v, e;

    zos_resp_reader_init(&r, mem, len, NULL);
    if (zos_resp_next(&r, &v) != ZOS_OK)
        return ZOS_ERR;
    if (which == NULL)
        return filter_config(&r, &v, mem, out);
    if (v.nil || v.type != '*') /* EXECABORT, nil after a failed WATCH */
        return copy_value(&r, &v, mem, out);
    add_raw(out, mem, zos_resp_reader_at(&r));
    for (size_t i = 0; i < v.count; i++) {
        const char *at = zos_resp_reader_at(&r);
        if (zos_resp_next(&r, &e) != ZOS_OK)
            return ZOS_ERR;
        int rc =
            i < nwhich && which[i] ? filter_config(&r, &e, at, out) : copy_value(&r, &e, at, out);
        if (rc != ZOS_OK)
            return rc;
    }
    return ZOS_OK;
}

void zos_seal_filter(struct evbuffer *reply, size_t len, struct evbuffer *out, const bool *which,
                     size_t nwhich)
{
    struct zos_resp_reader r;
    struct zos_resp_val v;
    struct evbuffer *tmp = evbuffer_new();

    /* Into TMP first: nothing of a reply that cannot be filtered goes out. */
    if (tmp != NULL && zos_resp_reply_open(reply, len, &r, &v) == ZOS_OK &&
        filter(r.buf, len, tmp, which, nwhich) == ZOS_OK)
        evbuffer_add_buffer(out, tmp);
    else
        zos_resp_add_error(out, "ERR zos-proxy could not filter this reply (out of memory)");
    evbuffer_drain(reply, len);
    if (tmp != NULL)
        evbuffer_free(tmp);
}
