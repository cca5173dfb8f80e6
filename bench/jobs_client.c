/* jobs_client.c -- load generator of bench/jobs.sh (hiredis, one thread per connection).
 *
 *   jobs_client proxy  HOST PORT N C   N x "ZOS.CMD core.ping" through zos-proxy
 *   jobs_client direct HOST PORT N C   N x core.ping with the raw job protocol straight
 *                                      to the node (core0-protocol.md §3.3):
 *                                        RPUSH core:default <request>
 *                                        BRPOPLPUSH result:<id>:flag result:<id>:flag 10
 *                                        BRPOPLPUSH result:<id> result:<id> 10
 *   jobs_client ping   HOST PORT N C   N x PING (a round trip, no job)
 *
 * C connections share the N operations (an atomic counter); each operation's
 * latency is measured from its first send to its complete reply.  Every reply is
 * checked (a PONG text, or a SUCCESS core.ping result).  Prints one line:
 *   mode=.. n=.. c=.. secs=.. rate=.. p50_us=.. p99_us=.. max_us=.. errors=.. cpu_secs=..
 * (cpu_secs: this process's user+system CPU, to tell whether the client is the limit).
 */
#define _GNU_SOURCE
#include <hiredis/hiredis.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

enum mode { M_PROXY, M_DIRECT, M_PING };

static enum mode mode;
static const char *host;
static int port, n_ops, n_conns;
static atomic_int next_op;
static atomic_int errors;
static pthread_barrier_t start_line;
static double *lat_us;
static char first_error[256];
static pthread_mutex_t err_mu = PTHREAD_MUTEX_INITIALIZER;

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static void fail(const char *fmt, const char *detail)
{
    if (atomic_fetch_add(&errors, 1) == 0) {
        pthread_mutex_lock(&err_mu);
        snprintf(first_error, sizeof first_error, fmt, detail ? detail : "(null)");
        pthread_mutex_unlock(&err_mu);
    }
}

static unsigned long long xorshift(unsigned long long *s)
{
    unsigned long long x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

static void uuid4(unsigned long long *seed, char out[37])
{
    unsigned char b[16];
    unsigned long long a = xorshift(seed), c = xorshift(seed);
    memcpy(b, &a, 8);
    memcpy(b + 8, &c, 8);
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
             b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12],
             b[13], b[14], b[15]);
}

static int one_proxy(redisContext *c)
{
    redisReply *r = redisCommand(c, "ZOS.CMD core.ping");
    int ok = r != NULL && r->type == REDIS_REPLY_STRING &&
             strncmp(r->str, "\"PONG Version: ", 15) == 0;
    if (!ok)
        fail("ZOS.CMD core.ping: %s", r == NULL ? c->errstr : r->str);
    freeReplyObject(r);
    return ok ? 0 : -1;
}

static int one_direct(redisContext *c, unsigned long long *seed)
{
    char id[37], req[512], key[64], flag[64];
    uuid4(seed, id);
    snprintf(req, sizeof req,
             "{\"id\":\"%s\",\"command\":\"core.ping\",\"arguments\":{},\"queue\":null,"
             "\"max_time\":null,\"stream\":false,\"tags\":null}",
             id);
    snprintf(key, sizeof key, "result:%s", id);
    snprintf(flag, sizeof flag, "result:%s:flag", id);
    redisReply *r = redisCommand(c, "RPUSH core:default %s", req);
    if (r == NULL || r->type != REDIS_REPLY_INTEGER) {
        fail("RPUSH: %s", r == NULL ? c->errstr : r->str);
        freeReplyObject(r);
        return -1;
    }
    freeReplyObject(r);
    r = redisCommand(c, "BRPOPLPUSH %s %s 10", flag, flag);
    if (r == NULL || r->type != REDIS_REPLY_STRING) {
        fail("BRPOPLPUSH flag: %s", r == NULL ? c->errstr : "nil (job not accepted in 10 s)");
        freeReplyObject(r);
        return -1;
    }
    freeReplyObject(r);
    r = redisCommand(c, "BRPOPLPUSH %s %s 10", key, key);
    int ok = r != NULL && r->type == REDIS_REPLY_STRING &&
             strstr(r->str, "\"state\":\"SUCCESS\"") != NULL &&
             strstr(r->str, "\"data\":\"\\\"PONG Version: ") != NULL;
    if (!ok)
        fail("BRPOPLPUSH result: %s",
             r == NULL ? c->errstr : r->type == REDIS_REPLY_STRING ? r->str : "nil");
    freeReplyObject(r);
    return ok ? 0 : -1;
}

static int one_ping(redisContext *c)
{
    redisReply *r = redisCommand(c, "PING");
    int ok = r != NULL && r->type == REDIS_REPLY_STATUS && strcmp(r->str, "PONG") == 0;
    if (!ok)
        fail("PING: %s", r == NULL ? c->errstr : r->str);
    freeReplyObject(r);
    return ok ? 0 : -1;
}

static void *worker(void *arg)
{
    unsigned long long seed = (unsigned long long)(size_t)arg * 0x9E3779B97F4A7C15ULL ^
                              (unsigned long long)now_us();
    if (seed == 0)
        seed = 88172645463325252ULL;
    struct timeval tv = {30, 0};
    redisContext *c = redisConnectWithTimeout(host, port, tv);
    if (c == NULL || c->err) {
        fail("connect: %s", c ? c->errstr : "out of memory");
        pthread_barrier_wait(&start_line);
        if (c)
            redisFree(c);
        return NULL;
    }
    redisSetTimeout(c, tv);
    pthread_barrier_wait(&start_line); /* every connection made: start together */
    for (;;) {
        int i = atomic_fetch_add(&next_op, 1);
        if (i >= n_ops)
            break;
        double t0 = now_us();
        int rc = mode == M_PROXY ? one_proxy(c) : mode == M_DIRECT ? one_direct(c, &seed)
                                                                    : one_ping(c);
        lat_us[i] = now_us() - t0;
        if (rc != 0 && c->err)
            break; /* the connection is gone */
    }
    redisFree(c);
    return NULL;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    if (argc != 6) {
        fprintf(stderr, "usage: jobs_client proxy|direct|ping HOST PORT N C\n");
        return 2;
    }
    mode = !strcmp(argv[1], "proxy") ? M_PROXY : !strcmp(argv[1], "direct") ? M_DIRECT : M_PING;
    host = argv[2];
    port = atoi(argv[3]);
    n_ops = atoi(argv[4]);
    n_conns = atoi(argv[5]);
    if (n_ops <= 0 || n_conns <= 0 || port <= 0) {
        fprintf(stderr, "jobs_client: bad N, C or PORT\n");
        return 2;
    }
    lat_us = calloc((size_t)n_ops, sizeof *lat_us);
    pthread_t *t = calloc((size_t)n_conns, sizeof *t);
    pthread_barrier_init(&start_line, NULL, (unsigned)n_conns + 1);
    for (int i = 0; i < n_conns; i++)
        pthread_create(&t[i], NULL, worker, (void *)(size_t)(i + 1));
    pthread_barrier_wait(&start_line);
    double t0 = now_us();
    for (int i = 0; i < n_conns; i++)
        pthread_join(t[i], NULL);
    double secs = (now_us() - t0) / 1e6;
    int done = atomic_load(&next_op) < n_ops ? atomic_load(&next_op) : n_ops;
    qsort(lat_us, (size_t)done, sizeof *lat_us, cmp_double);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double cpu = ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec +
                 ru.ru_stime.tv_usec / 1e6;
    size_t p99 = (size_t)(done * 0.99);
    if (done > 0 && p99 >= (size_t)done)
        p99 = (size_t)done - 1;
    printf("mode=%s n=%d c=%d secs=%.3f rate=%.1f p50_us=%.0f p99_us=%.0f max_us=%.0f errors=%d "
           "cpu_secs=%.2f\n",
           argv[1], done, n_conns, secs, done / secs, done ? lat_us[done / 2] : 0,
           done ? lat_us[p99] : 0, done ? lat_us[done - 1] : 0, atomic_load(&errors), cpu);
    if (first_error[0])
        fprintf(stderr, "jobs_client: first error: %s\n", first_error);
    free(lat_us);
    free(t);
    return atomic_load(&errors) ? 1 : 0;
}
