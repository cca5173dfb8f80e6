/* store.c -- the simulator's side of the node Redis: a context pool and the
 * key writes of the protocol (flag, result, stream records). */
#include "sim.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define POOL_IDLE_MAX 32

static pthread_mutex_t pool_mu = PTHREAD_MUTEX_INITIALIZER;
static redisContext *pool[POOL_IDLE_MAX];
static size_t pool_n;

static redisContext *connect_new(void)
{
    redisContext *c;
    if (sim.unixsock)
        c = redisConnectUnix(sim.unixsock);
    else
        c = redisConnect(sim.attach_host, sim.attach_port);
    if (c == NULL)
        return NULL;
    if (c->err) {
        redisFree(c);
        return NULL;
    }
    if (sim.secret) {
        redisReply *r = redisCommand(c, "AUTH %s", sim.secret);
        bool ok = r && r->type == REDIS_REPLY_STATUS;
        freeReplyObject(r);
        if (!ok) {
            redisFree(c);
            return NULL;
        }
    }
    return c;
}

redisContext *sim_redis_get(void)
{
    redisContext *c = NULL;
    pthread_mutex_lock(&pool_mu);
    if (pool_n > 0)
        c = pool[--pool_n];
    pthread_mutex_unlock(&pool_mu);
    return c ? c : connect_new();
}

void sim_redis_put(redisContext *c)
{
    if (c == NULL)
        return;
    if (c->err == 0) {
        pthread_mutex_lock(&pool_mu);
        if (pool_n < POOL_IDLE_MAX) {
            pool[pool_n++] = c;
            c = NULL;
        }
        pthread_mutex_unlock(&pool_mu);
    }
    if (c)
        redisFree(c);
}

void sim_redis_pool_free(void)
{
    pthread_mutex_lock(&pool_mu);
    while (pool_n > 0)
        redisFree(pool[--pool_n]);
    pthread_mutex_unlock(&pool_mu);
}

redisReply *sim_redis_cmd(const char *fmt, ...)
{
    for (int attempt = 0; attempt < 2; attempt++) {
        redisContext *c = sim_redis_get();
        if (c == NULL)
            continue;
        va_list ap;
        va_start(ap, fmt);
        redisReply *r = redisvCommand(c, fmt, ap);
        va_end(ap);
        sim_redis_put(c);
        if (r)
            return r;
    }
    return NULL;
}

int sim_redis_run_argv(int argc, const char **argv, const size_t *lens)
{
    for (int attempt = 0; attempt < 2; attempt++) {
        redisContext *c = sim_redis_get();
        if (c == NULL)
            continue;
        redisReply *r = redisCommandArgv(c, argc, argv, lens);
        sim_redis_put(c);
        if (r) {
            bool ok = r->type != REDIS_REPLY_ERROR;
            freeReplyObject(r);
            return ok ? 0 : -1;
        }
    }
    return -1;
}

/* Sends N pipelined commands (each a format with one %s key and an optional
 * %b value) on one context and reads all replies.  0 or -1. */
static int pipeline(redisContext *c, int n, redisReply **replies)
{
    int rc = 0;
    for (int i = 0; i < n; i++) {
        void *r = NULL;
        if (redisGetReply(c, &r) != REDIS_OK) {
            rc = -1;
            break;
        }
        if (replies)
            replies[i] = r;
        else
            freeReplyObject(r);
    }
    return rc;
}

int sim_flag(const char *id)
{
    redisReply *r = sim_redis_cmd("RPUSH result:%s:flag %s", id, "");
    int rc = (r && r->type == REDIS_REPLY_INTEGER) ? 0 : -1;
    freeReplyObject(r);
    return rc;
}

int sim_flag_exists(const char *id)
{
    redisReply *r = sim_redis_cmd("EXISTS result:%s:flag", id);
    int rc = (r && r->type == REDIS_REPLY_INTEGER) ? (int)r->integer : -1;
    freeReplyObject(r);
    return rc;
}

int sim_publish(const char *id, const char *json)
{
    for (int attempt = 0; attempt < 2; attempt++) {
        redisContext *c = sim_redis_get();
        if (c == NULL)
            continue;
        /* The order of Sink.Forward: flag expiry first, then the result. */
        redisAppendCommand(c, "EXPIRE result:%s:flag %d", id, SIM_RESULT_TTL);
        redisAppendCommand(c, "RPUSH result:%s %s", id, json);
        redisAppendCommand(c, "EXPIRE result:%s %d", id, SIM_RESULT_TTL);
        int rc = pipeline(c, 3, NULL);
        sim_redis_put(c);
        if (rc == 0)
            return 0;
    }
    return -1;
}

int sim_stream_push(const char *id, unsigned core, const char *text, size_t len, uint32_t meta)
{
    cJSON *rec = cJSON_CreateObject();
    cJSON *msg = cJSON_CreateObject();
    char *s = malloc(len + 1);
    if (s == NULL)
        abort();
    memcpy(s, text, len);
    s[len] = '\0';
    cJSON_AddItemToObject(rec, "core", sim_json_int(core));
    cJSON_AddStringToObject(rec, "command", id);
    cJSON_AddStringToObject(msg, "message", s);
    sim_json_add_int(msg, "epoch", sim_now_ns());
    sim_json_add_int(msg, "meta", meta);
    cJSON_AddItemToObject(rec, "message", msg);
    char *out = sim_json_print(rec);
    cJSON_Delete(rec);
    free(s);

    int rc = -1;
    for (int attempt = 0; attempt < 2 && rc < 0; attempt++) {
        redisContext *c = sim_redis_get();
        if (c == NULL)
            continue;
        redisAppendCommand(c, "RPUSH stream:%s %s", id, out);
        redisAppendCommand(c, "LTRIM stream:%s %d -1", id, -SIM_STREAM_MAX);
        redisAppendCommand(c, "EXPIRE stream:%s %d", id, SIM_STREAM_TTL);
        rc = pipeline(c, 3, NULL);
        sim_redis_put(c);
    }
    free(out);
    return rc;
}
