/* hiredis_client.c -- hiredis (Debian's 0.14, RESP2, synchronous API) through zos-proxy:
 * AUTH <node> <password> names the node, then each check named on the command line.
 * Prints "ok CHECK" or "fail CHECK DETAIL" per check.
 * usage: hiredis_client HOST PORT NODE PASSWORD PREFIX MODE CHECK... */
#include <hiredis/hiredis.h>

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#define BIG (10 * 1024 * 1024)

static const char *host, *node, *password, *prefix;
static int port;
static char failure[1024];

static bool fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(failure, sizeof(failure), fmt, ap);
    va_end(ap);
    return false;
}

/* A connected, authenticated context (20 s read timeout: a no-hang guard), or NULL. */
static redisContext *connect_node(void)
{
    struct timeval tv = {20, 0};
    redisContext *c = redisConnectWithTimeout(host, port, tv);
    if (c == NULL || c->err) {
        fail("connect: %s", c ? c->errstr : "out of memory");
        redisFree(c);
        return NULL;
    }
    redisSetTimeout(c, tv);
    redisReply *r = redisCommand(c, "AUTH %s %s", node, password);
    bool ok = r != NULL && r->type == REDIS_REPLY_STATUS && strcmp(r->str, "OK") == 0;
    if (!ok)
        fail("AUTH: %s", r ? (r->str ? r->str : "?") : c->errstr);
    freeReplyObject(r);
    if (!ok) {
        redisFree(c);
        return NULL;
    }
    return c;
}

/* Whether reply R is a status or string equal to WANT; fails with WHAT otherwise. */
static bool want_str(redisContext *c, redisReply *r, const char *want, const char *what)
{
    bool ok = r != NULL &&
              (r->type == REDIS_REPLY_STATUS || r->type == REDIS_REPLY_STRING) &&
              r->len == strlen(want) && memcmp(r->str, want, r->len) == 0;
    if (!ok)
        fail("%s: want '%s', got type %d '%s'%s", what, want, r ? r->type : -1,
             r && r->str ? r->str : "", r ? "" : c->errstr);
    freeReplyObject(r);
    return ok;
}

static bool want_int(redisContext *c, redisReply *r, long long want, const char *what)
{
    bool ok = r != NULL && r->type == REDIS_REPLY_INTEGER && r->integer == want;
    if (!ok)
        fail("%s: want %lld, got type %d %lld %s%s", what, want, r ? r->type : -1,
             r ? r->integer : 0, r && r->str ? r->str : "", r ? "" : c->errstr);
    freeReplyObject(r);
    return ok;
}

static bool want_nil(redisContext *c, redisReply *r, const char *what)
{
    bool ok = r != NULL && r->type == REDIS_REPLY_NIL;
    if (!ok)
        fail("%s: want nil, got type %d%s", what, r ? r->type : -1, r ? "" : c->errstr);
    freeReplyObject(r);
    return ok;
}

/* An array reply whose elements are the strings WANT[0..n-1] (NULL: an integer, skipped). */
static bool want_array(redisContext *c, redisReply *r, size_t n, const char **want,
                       const char *what)
{
    bool ok = r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements == n;
    for (size_t i = 0; ok && i < n; i++) {
        redisReply *e = r->element[i];
        if (want[i] == NULL)
            ok = e->type == REDIS_REPLY_INTEGER;
        else
            ok = (e->type == REDIS_REPLY_STRING || e->type == REDIS_REPLY_STATUS) &&
                 e->len == strlen(want[i]) && memcmp(e->str, want[i], e->len) == 0;
    }
    if (!ok)
        fail("%s: unexpected reply type %d (%zu elements) %s%s", what, r ? r->type : -1,
             r ? r->elements : 0, r && r->str ? r->str : "", r ? "" : c->errstr);
    freeReplyObject(r);
    return ok;
}

static bool check_set_get(redisContext *c, const char *k)
{
    return want_str(c, redisCommand(c, "GET clients:whoami"), node, "GET clients:whoami") &&
           want_str(c, redisCommand(c, "SET %s v1", k), "OK", "SET") &&
           want_str(c, redisCommand(c, "GET %s", k), "v1", "GET") &&
           want_nil(c, redisCommand(c, "GET %smissing", k), "GET missing") &&
           want_int(c, redisCommand(c, "INCRBY %sn 41", k), 41, "INCRBY") &&
           want_int(c, redisCommand(c, "INCR %sn", k), 42, "INCR");
}

static bool check_pipeline(redisContext *c, const char *k)
{
    enum { N = 500 };
    char want[32];
    for (int i = 0; i < N; i++)
        redisAppendCommand(c, "SET %s%d v%d", k, i, i);
    for (int i = 0; i < N; i++)
        redisAppendCommand(c, "GET %s%d", k, i);
    for (int i = 0; i < N; i++) {
        redisReply *r = NULL;
        if (redisGetReply(c, (void **)&r) != REDIS_OK || !want_str(c, r, "OK", "pipelined SET"))
            return failure[0] ? false : fail("pipelined SET %d: %s", i, c->errstr);
    }
    for (int i = 0; i < N; i++) {
        redisReply *r = NULL;
        snprintf(want, sizeof(want), "v%d", i);
        if (redisGetReply(c, (void **)&r) != REDIS_OK || !want_str(c, r, want, "pipelined GET"))
            return failure[0] ? false : fail("pipelined GET %d: %s", i, c->errstr);
    }
    return true;
}

static bool check_multi_watch(redisContext *c, const char *k)
{
    redisContext *other = connect_node();
    if (other == NULL)
        return false;
    const char *done[] = {"OK", "new"};
    bool ok = want_str(c, redisCommand(c, "SET %s old", k), "OK", "SET") &&
              want_str(c, redisCommand(c, "WATCH %s", k), "OK", "WATCH") &&
              want_str(c, redisCommand(c, "GET %s", k), "old", "GET") &&
              want_str(c, redisCommand(c, "MULTI"), "OK", "MULTI") &&
              want_str(c, redisCommand(c, "SET %s new", k), "QUEUED", "SET in MULTI") &&
              want_str(c, redisCommand(c, "GET %s", k), "QUEUED", "GET in MULTI") &&
              want_array(c, redisCommand(c, "EXEC"), 2, done, "EXEC") &&
              want_str(c, redisCommand(c, "WATCH %s", k), "OK", "WATCH") &&
              want_str(c, redisCommand(other, "SET %s other", k), "OK", "SET elsewhere") &&
              want_str(c, redisCommand(c, "MULTI"), "OK", "MULTI") &&
              want_str(c, redisCommand(c, "SET %s mine", k), "QUEUED", "SET in MULTI") &&
              want_nil(c, redisCommand(c, "EXEC"), "EXEC after the watched key changed") &&
              want_str(c, redisCommand(c, "GET %s", k), "other", "GET");
    redisFree(other);
    return ok;
}

static bool check_blpop(redisContext *c, const char *k)
{
    redisContext *pusher = connect_node();
    if (pusher == NULL)
        return false;
    int done = 0;
    redisAppendCommand(c, "BLPOP %s 0", k);
    while (!done && redisBufferWrite(c, &done) == REDIS_OK)
        ;
    usleep(200000); /* let BLPOP block first (the result is the same either way) */
    const char *want[] = {k, "pushed"};
    redisReply *r = NULL;
    bool ok = want_int(pusher, redisCommand(pusher, "LPUSH %s pushed", k), 1, "LPUSH") &&
              redisGetReply(c, (void **)&r) == REDIS_OK && want_array(c, r, 2, want, "BLPOP") &&
              want_str(c, redisCommand(c, "PING"), "PONG", "PING after BLPOP");
    if (!ok && !failure[0])
        fail("BLPOP: %s", c->errstr);
    redisFree(pusher);
    return ok;
}

static bool check_pubsub(redisContext *c, const char *k)
{
    redisContext *pub = connect_node();
    if (pub == NULL)
        return false;
    const char *confirm[] = {"subscribe", k, NULL};
    const char *message[] = {"message", k, "hello"};
    const char *unconfirm[] = {"unsubscribe", k, NULL};
    bool ok = want_array(c, redisCommand(c, "SUBSCRIBE %s", k), 3, confirm, "SUBSCRIBE");
    for (int i = 0; ok && i < 100; i++) {
        redisReply *r = redisCommand(pub, "PUBLISH %s hello", k);
        long long n = r && r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
        freeReplyObject(r);
        if (n >= 1)
            break;
        if (n < 0 || i == 99)
            ok = fail("PUBLISH did not reach the subscriber");
        usleep(100000);
    }
    redisReply *r = NULL;
    ok = ok && redisGetReply(c, (void **)&r) == REDIS_OK && want_array(c, r, 3, message, "message");
    ok = ok && want_array(c, redisCommand(c, "UNSUBSCRIBE %s", k), 3, unconfirm, "UNSUBSCRIBE") &&
         want_str(c, redisCommand(c, "GET clients:whoami"), node, "GET after UNSUBSCRIBE");
    redisFree(pub);
    return ok;
}

static bool check_eval(redisContext *c, const char *k)
{
    const char *want[] = {k, "5", NULL};
    return want_array(c,
                      redisCommand(c, "EVAL %s 1 %s 5",
                                   "return {KEYS[1], ARGV[1], redis.call('INCRBY', KEYS[1], ARGV[1])}",
                                   k),
                      3, want, "EVAL");
}

static bool roundtrip(redisContext *c, const char *k, const char *v, size_t len)
{
    if (!want_str(c, redisCommand(c, "SET %s %b", k, v, len), "OK", "SET binary") ||
        !want_int(c, redisCommand(c, "STRLEN %s", k), (long long)len, "STRLEN"))
        return false;
    redisReply *r = redisCommand(c, "GET %s", k);
    bool ok = r != NULL && r->type == REDIS_REPLY_STRING && (size_t)r->len == len &&
              memcmp(r->str, v, len) == 0;
    if (!ok)
        fail("GET of a %zu byte value: type %d, %zu bytes, %s", len, r ? r->type : -1,
             r ? (size_t)r->len : 0, r && (size_t)r->len == len ? "content differs" : "");
    freeReplyObject(r);
    return ok;
}

static bool check_binary(redisContext *c, const char *k)
{
    char v[256];
    for (int i = 0; i < 256; i++)
        v[i] = (char)i;
    return roundtrip(c, k, v, sizeof(v));
}

static bool check_big(redisContext *c, const char *k)
{
    char *v = malloc(BIG);
    if (v == NULL)
        return fail("out of memory");
    for (size_t i = 0; i < BIG; i++)
        v[i] = (char)((i * 131 + (i >> 13)) & 0xff);
    bool ok = roundtrip(c, k, v, BIG);
    free(v);
    freeReplyObject(redisCommand(c, "DEL %s", k));
    return ok;
}

static const struct {
    const char *name;
    bool (*fn)(redisContext *, const char *);
} checks[] = {
    {"set_get", check_set_get}, {"pipeline", check_pipeline}, {"multi_watch", check_multi_watch},
    {"blpop", check_blpop},     {"pubsub", check_pubsub},     {"eval", check_eval},
    {"binary", check_binary},   {"big", check_big},
};

int main(int argc, char **argv)
{
    if (argc < 7) {
        fprintf(stderr, "usage: %s HOST PORT NODE PASSWORD PREFIX MODE CHECK...\n", argv[0]);
        return 2;
    }
    host = argv[1];
    port = atoi(argv[2]);
    node = argv[3];
    password = argv[4];
    prefix = argv[5];
    setvbuf(stdout, NULL, _IOLBF, 0);
    for (int i = 7; i < argc; i++) {
        size_t j = 0, n = sizeof(checks) / sizeof(checks[0]);
        while (j < n && strcmp(checks[j].name, argv[i]) != 0)
            j++;
        if (j == n) {
            printf("fail %s no such check in this program\n", argv[i]);
            continue;
        }
        char key[512];
        snprintf(key, sizeof(key), "%s%s:", prefix, argv[i]);
        failure[0] = '\0';
        redisContext *c = connect_node();
        bool ok = c != NULL && checks[j].fn(c, key);
        if (ok)
            printf("ok %s\n", argv[i]);
        else
            printf("fail %s %s\n", argv[i], failure[0] ? failure : "(no detail)");
        redisFree(c);
    }
    return 0;
}
