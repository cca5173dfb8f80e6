/* fetch.c -- one http(s) download to a file: its own loop, TLS verified, redirects.
 *
 *   zos_fetch(url, path) --> PATH.part opened
 *     one hop per URL (the first, then at most 5 redirects):
 *       evhttp_uri_parse --> bufferevent (openssl for https: SNI, host/IP check)
 *       --> evhttp_connection --> GET, Host, Connection: close
 *       header_cb:  status; 3xx --> Location, next hop; not 2xx --> error
 *       chunk_cb:   body --> PATH.part, progress
 *       done_cb / error_cb: complete, or why not (DNS, socket, TLS, timeout)
 *     --> fsync, rename(PATH.part, PATH); on any failure unlink(PATH.part)
 *
 * evhttp reports a failed connect without its cause, and its cleanup
 * overwrites errno before our callbacks run.  So while connecting (TCP and
 * TLS handshake) our own event callback sits in front of evhttp's
 * (bufferevent_getcb) and records the cause before handing the event on.
 */
#include "zos/fetch.h"
#include "zos/util.h"
#include "zos/zos.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/util.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

enum hop_state { HOP_RUNNING, HOP_DONE, HOP_REDIRECT, HOP_FAILED };

struct fetch {
    const struct zos_fetch_opts *opts; /* borrowed, never NULL */
    const char *path;                  /* borrowed */
    char *err;
    size_t errlen;
    struct event_base *base;
    SSL_CTX *ssl_ctx; /* made on the first https hop */
    char part[PATH_MAX];
    int fd; /* PATH.part; -1 when closed */
    struct zos_bar bar;
    int64_t done, total;

    /* the current hop */
    char *url;      /* owned */
    char *location; /* owned: where a redirect points, absolute */
    char host[256]; /* to connect to: no IPv6 brackets */
    int port;
    struct evhttp_uri *uri;
    struct evhttp_connection *conn;
    struct bufferevent *bev; /* owned by conn; SSL owned by bev */
    enum hop_state state;
    int status;
    int http_error;  /* enum evhttp_request_error, -1: none */
    bool https;      /* this hop */
    bool was_https;  /* an earlier hop: no downgrade to http after it */
    int sock_errno;  /* errno when evhttp reported the error */
    char cause[600]; /* why the connect failed, recorded by connect_event_cb */
    bufferevent_data_cb http_readcb, http_writecb;
    bufferevent_event_cb http_eventcb;
    void *http_cbarg;
};

/* "URL: why" into f->err. */
/* URL for messages: no "user:password@", no "?query" (tokens live there). */
static void url_for_humans(const char *url, char *buf, size_t len)
{
    const char *start = strstr(url, "://"), *at, *slash;
    start = start != NULL ? start + 3 : url;
    slash = start + strcspn(start, "/?#");
    at = memchr(start, '@', (size_t)(slash - start));
    snprintf(buf, len, "%.*s%.*s", (int)(start - url), url,
             (int)strcspn(at != NULL ? at + 1 : start, "?#"), at != NULL ? at + 1 : start);
}

static void vsay(struct fetch *f, const char *fmt, va_list ap)
{
    char shown[1024];
    url_for_humans(f->url != NULL ? f->url : "", shown, sizeof(shown));
    int n = snprintf(f->err, f->errlen, "%s: ", shown);

    if (n >= 0 && (size_t)n < f->errlen)
        vsnprintf(f->err + n, f->errlen - (size_t)n, fmt, ap);
}

/* Ends the hop with "URL: why" in f->err; the first failure wins. */
static void fail(struct fetch *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void fail(struct fetch *f, const char *fmt, ...)
{
    va_list ap;

    if (f->state != HOP_RUNNING)
        return;
    f->state = HOP_FAILED;
    va_start(ap, fmt);
    vsay(f, fmt, ap);
    va_end(ap);
    event_base_loopbreak(f->base);
}

/* The same after the hops, when the download as a whole fails. */
static int fail_download(struct fetch *f, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int fail_download(struct fetch *f, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsay(f, fmt, ap);
    va_end(ap);
    return ZOS_ERR;
}

/* ---- TLS ---------------------------------------------------------------- */

static void append(char *buf, size_t len, const char *sep, const char *text)
{
    size_t used = strlen(buf);
    if (strstr(buf, text) != NULL || used + 1 >= len)
        return; /* OpenSSL repeats itself through its layers */
    snprintf(buf + used, len - used, "%s%s", used > 0 ? sep : "", text);
}

/* The OpenSSL errors of the connection (libevent keeps its own copy of the
 * queue), then the thread's queue, and the verify result: translated once,
 * here.  "" when there was none. */
static void tls_errors(struct fetch *f, char *buf, size_t len)
{
    SSL *ssl = f->bev != NULL ? bufferevent_openssl_get_ssl(f->bev) : NULL;
    long verify = ssl != NULL ? SSL_get_verify_result(ssl) : X509_V_OK;
    unsigned long e;
    char one[256];

    buf[0] = '\0';
    while ((f->bev != NULL && (e = bufferevent_get_openssl_error(f->bev)) != 0) ||
           (e = ERR_get_error()) != 0) {
        const char *reason = ERR_reason_error_string(e);
        if (ERR_GET_LIB(e) == 0)
            continue; /* libevent files SSL_get_error() codes here too: no news */
        if (reason == NULL) {
            ERR_error_string_n(e, one, sizeof(one));
            reason = one;
        }
        append(buf, len, "; ", reason);
    }
    if (ssl != NULL && verify != X509_V_OK) {
        snprintf(one, sizeof(one), "(%s)", X509_verify_cert_error_string(verify));
        append(buf, len, " ", one);
    }
}

static SSL_CTX *ssl_ctx_new(struct fetch *f)
{
    const struct zos_fetch_opts *o = f->opts;
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    char why[256];

    if (ctx == NULL) {
        tls_errors(f, why, sizeof(why));
        fail(f, "TLS: cannot create a context: %s", why);
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    /* Servers often close without close_notify (OpenSSL 3 calls that an
     * error; libevent's allow_dirty_shutdown covers older ones); a body of
     * known length is still checked against Content-Length (done_cb). */
#ifdef SSL_OP_IGNORE_UNEXPECTED_EOF
    SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
#endif
    if (o->insecure) {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
        return ctx;
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    if ((o->ca_file != NULL && SSL_CTX_load_verify_locations(ctx, o->ca_file, NULL) != 1) ||
        (o->ca_file == NULL && SSL_CTX_set_default_verify_paths(ctx) != 1)) {
        tls_errors(f, why, sizeof(why));
        fail(f, "TLS: cannot load the CA certificates from %s: %s",
             o->ca_file != NULL ? o->ca_file : "the system store", why);
        SSL_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

/* An SSL for f->host: SNI for a name (never for an address), and the
 * certificate must name the host (DNS) or the address (IP SAN). */
static SSL *ssl_new(struct fetch *f)
{
    SSL *ssl;
    X509_VERIFY_PARAM *param;
    bool is_ip;
    ASN1_OCTET_STRING *ip = a2i_IPADDRESS(f->host);

    is_ip = ip != NULL;
    ASN1_OCTET_STRING_free(ip);
    if (f->ssl_ctx == NULL && (f->ssl_ctx = ssl_ctx_new(f)) == NULL)
        return NULL;
    if ((ssl = SSL_new(f->ssl_ctx)) == NULL) {
        fail(f, "TLS: out of memory");
        return NULL;
    }
    param = SSL_get0_param(ssl);
    if ((!is_ip && SSL_set_tlsext_host_name(ssl, f->host) != 1) ||
        (!f->opts->insecure && (is_ip ? X509_VERIFY_PARAM_set1_ip_asc(param, f->host)
                                      : X509_VERIFY_PARAM_set1_host(param, f->host, 0)) != 1)) {
        fail(f, "TLS: cannot use '%s' as the server's name", f->host);
        SSL_free(ssl);
        return NULL;
    }
    X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    return ssl;
}

/* ---- progress ----------------------------------------------------------- */

static int report(struct fetch *f)
{
    if (f->opts->progress != NULL)
        return f->opts->progress(f->opts->progress_arg, f->done, f->total);
    zos_bar_draw(&f->bar, f->path, f->done, f->total);
    return 0;
}

/* ---- evhttp callbacks --------------------------------------------------- */

/* Why the connect or the TLS handshake failed, while errno, the DNS error
 * and the OpenSSL errors are still there. */
static void record_cause(struct fetch *f, short what)
{
    int sock_err = EVUTIL_SOCKET_ERROR();
    int dns_err = bufferevent_socket_get_dns_error(f->bev);
    bool tls = bufferevent_openssl_get_ssl(f->bev) != NULL;
    char why[200];

    if (dns_err != 0) {
        snprintf(f->cause, sizeof(f->cause), "cannot resolve '%s': %s", f->host,
                 evutil_gai_strerror(dns_err));
        return;
    }
    if (tls && (tls_errors(f, why, sizeof(why)), why[0] != '\0')) {
        snprintf(f->cause, sizeof(f->cause), "TLS: %s", why);
    } else if (what & BEV_EVENT_TIMEOUT) {
        snprintf(f->cause, sizeof(f->cause), "timed out after %d s connecting to %s port %d%s",
                 f->opts->timeout_s > 0 ? f->opts->timeout_s : ZOS_FETCH_TIMEOUT_S, f->host,
                 f->port, tls ? " (TCP and TLS handshake)" : "");
    } else if (sock_err != 0 && sock_err != EAGAIN && sock_err != EWOULDBLOCK &&
               sock_err != EINPROGRESS && sock_err != EINTR) {
        /* before EOF: a refused connect reaches an SSL bufferevent as EOF */
        snprintf(f->cause, sizeof(f->cause), "cannot connect to %s port %d: %s", f->host, f->port,
                 evutil_socket_error_to_string(sock_err));
    } else if (what & BEV_EVENT_EOF) {
        snprintf(f->cause, sizeof(f->cause), "connection closed by %s%s", f->host,
                 tls ? " during the TLS handshake" : "");
    }
}

static void connect_event_cb(struct bufferevent *bev, short what, void *arg)
{
    struct fetch *f = arg;

    if (!(what & BEV_EVENT_CONNECTED))
        record_cause(f, what);
    f->http_eventcb(bev, what, f->http_cbarg);
}

static bool is_redirect(int code)
{
    return code == 301 || code == 302 || code == 303 || code == 307 || code == 308;
}

/* LOC (a Location header) resolved against the hop's URL: a new string. */
static char *resolve(const struct evhttp_uri *base, const char *loc)
{
    static const char scheme_chars[] =
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+.-";
    const char *scheme = evhttp_uri_get_scheme(base), *host = evhttp_uri_get_host(base);
    const char *path = evhttp_uri_get_path(base);
    int port = evhttp_uri_get_port(base);
    size_t dir, scheme_len = strspn(loc, scheme_chars);
    char origin[400], *out = NULL;

    if (scheme_len > 0 && loc[scheme_len] == ':')
        return strdup(loc); /* absolute */
    if (loc[0] == '/' && loc[1] == '/')
        return asprintf(&out, "%s:%s", scheme, loc) < 0 ? NULL : out;
    if (port >= 0)
        snprintf(origin, sizeof(origin), "%s://%s:%d", scheme, host, port);
    else
        snprintf(origin, sizeof(origin), "%s://%s", scheme, host);
    if (path == NULL || path[0] == '\0')
        path = "/";
    if (loc[0] == '/')
        return asprintf(&out, "%s%s", origin, loc) < 0 ? NULL : out;
    if (loc[0] == '?')
        return asprintf(&out, "%s%s%s", origin, path, loc) < 0 ? NULL : out;
    dir = (size_t)(strrchr(path, '/') - path) + 1; /* "a/b/c" relative to "/x/y" is "/x/a/b/c" */
    return asprintf(&out, "%s%.*s%s", origin, (int)dir, path, loc) < 0 ? NULL : out;
}

static int header_cb(struct evhttp_request *req, void *arg)
{
    struct fetch *f = arg;
    struct evkeyvalq *headers = evhttp_request_get_input_headers(req);
    int code = evhttp_request_get_response_code(req);
    const char *line = evhttp_request_get_response_code_line(req), *value;
    char *end;

    if (f->state != HOP_RUNNING)
        return 0;
    f->status = code;
    if (is_redirect(code)) {
        value = evhttp_find_header(headers, "Location");
        if (value == NULL || value[0] == '\0') {
            fail(f, "HTTP %d %s without a Location", code, line ? line : "");
        } else if ((f->location = resolve(f->uri, value)) == NULL) {
            fail(f, "out of memory");
        } else {
            f->state = HOP_REDIRECT;
            event_base_loopbreak(f->base);
        }
        return 0;
    }
    if (code < 200 || code > 299) {
        fail(f, "HTTP %d %s", code, line ? line : "");
        return 0;
    }
    f->total = -1;
    value = evhttp_find_header(headers, "Content-Length");
    if (value != NULL && value[0] >= '0' && value[0] <= '9') {
        errno = 0;
        long long n = strtoll(value, &end, 10);
        if (errno == 0 && *end == '\0')
            f->total = n;
    }
    if (report(f) != 0)
        fail(f, "download cancelled");
    return 0;
}

/* A piece of the body: to PATH.part (evhttp drains what is left after us). */
static void chunk_cb(struct evhttp_request *req, void *arg)
{
    struct fetch *f = arg;
    struct evbuffer *in = evhttp_request_get_input_buffer(req);

    if (f->state != HOP_RUNNING)
        return;
    while (evbuffer_get_length(in) > 0) {
        int n = evbuffer_write(in, f->fd);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            fail(f, "writing %s: %s", f->part, n < 0 ? strerror(errno) : "nothing written");
            return;
        }
        f->done += n;
    }
    if (report(f) != 0)
        fail(f, "download cancelled");
}

static void error_cb(enum evhttp_request_error e, void *arg)
{
    struct fetch *f = arg;

    f->sock_errno = EVUTIL_SOCKET_ERROR(); /* evhttp restored it for us */
    f->http_error = (int)e;
}

/* The hop failed below HTTP: say why as precisely as we know. */
static void fail_transport(struct fetch *f)
{
    int timeout = f->opts->timeout_s > 0 ? f->opts->timeout_s : ZOS_FETCH_TIMEOUT_S;
    char why[200];

    if (f->cause[0] != '\0') {
        fail(f, "%s", f->cause);
        return;
    }
    if (f->bev != NULL && bufferevent_socket_get_dns_error(f->bev) != 0) {
        fail(f, "cannot resolve '%s': %s", f->host,
             evutil_gai_strerror(bufferevent_socket_get_dns_error(f->bev)));
        return;
    }
    tls_errors(f, why, sizeof(why));
    if (why[0] != '\0') {
        fail(f, "TLS: %s", why);
        return;
    }
    switch (f->http_error) {
    case EVREQ_HTTP_TIMEOUT:
        fail(f, "no data from %s for %d s (timed out)", f->host, timeout);
        break;
    case EVREQ_HTTP_INVALID_HEADER:
        fail(f, "invalid HTTP response from %s", f->host);
        break;
    case EVREQ_HTTP_DATA_TOO_LONG:
        fail(f, "response too large");
        break;
    case EVREQ_HTTP_EOF:
    case EVREQ_HTTP_BUFFER_ERROR:
        if (f->status != 0 && f->total >= 0)
            fail(f, "connection closed after %lld of %lld bytes", (long long)f->done,
                 (long long)f->total);
        else if (f->status != 0)
            fail(f, "connection closed after %lld bytes, before the end of the body",
                 (long long)f->done);
        else if (f->sock_errno != 0 && f->http_error == EVREQ_HTTP_BUFFER_ERROR)
            fail(f, "%s", evutil_socket_error_to_string(f->sock_errno));
        else
            fail(f, "connection closed by %s before a response", f->host);
        break;
    default:
        fail(f, "cannot connect to %s port %d", f->host, f->port);
        break;
    }
}

static void done_cb(struct evhttp_request *req, void *arg)
{
    struct fetch *f = arg;

    if (f->state != HOP_RUNNING)
        return;
    if (req == NULL || f->http_error >= 0 || evhttp_request_get_response_code(req) == 0) {
        fail_transport(f);
        return;
    }
    if (f->total >= 0 && f->done != f->total) {
        fail(f, "connection closed after %lld of %lld bytes", (long long)f->done,
             (long long)f->total);
        return;
    }
    f->state = HOP_DONE;
    event_base_loopbreak(f->base);
}

/* ---- one hop ------------------------------------------------------------ */

/* f->uri parsed and checked: scheme, host (brackets of an IPv6 address
 * removed) and port. */
static bool hop_parse(struct fetch *f, bool *https)
{
    const char *scheme, *host;
    size_t len;

    f->uri = evhttp_uri_parse_with_flags(f->url, EVHTTP_URI_NONCONFORMANT);
    if (f->uri == NULL) {
        fail(f, "not a valid URL");
        return false;
    }
    scheme = evhttp_uri_get_scheme(f->uri);
    host = evhttp_uri_get_host(f->uri);
    *https = scheme != NULL && strcasecmp(scheme, "https") == 0;
    if (!*https && (scheme == NULL || strcasecmp(scheme, "http") != 0)) {
        fail(f, "not an http:// or https:// URL");
        return false;
    }
    len = host != NULL ? strlen(host) : 0;
    if (len > 1 && host[0] == '[' && host[len - 1] == ']') {
        host++;
        len -= 2;
    }
    if (len == 0 || len >= sizeof(f->host) || evhttp_uri_get_port(f->uri) == 0) {
        fail(f, len == 0 ? "no host in the URL" : "bad host or port in the URL");
        return false;
    }
    snprintf(f->host, sizeof(f->host), "%.*s", (int)len, host);
    f->port = evhttp_uri_get_port(f->uri) > 0 ? evhttp_uri_get_port(f->uri) : *https ? 443 : 80;
    return true;
}

static bool hop_connection(struct fetch *f, bool https)
{
    struct bufferevent *bev;
    SSL *ssl = NULL;

    if (https && (ssl = ssl_new(f)) == NULL)
        return false;
    if (ssl != NULL) {
        bev = bufferevent_openssl_socket_new(f->base, -1, ssl, BUFFEREVENT_SSL_CONNECTING,
                                             BEV_OPT_CLOSE_ON_FREE);
        if (bev == NULL)
            SSL_free(ssl);
        else
            bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
    } else {
        bev = bufferevent_socket_new(f->base, -1, BEV_OPT_CLOSE_ON_FREE);
    }
    if (bev != NULL) {
        f->conn = evhttp_connection_base_bufferevent_new(f->base, NULL, bev, f->host,
                                                         (unsigned short)f->port);
        if (f->conn == NULL)
            bufferevent_free(bev);
    }
    if (f->conn == NULL) {
        fail(f, "out of memory");
        return false;
    }
    f->bev = bev;
    evhttp_connection_set_timeout(f->conn, f->opts->timeout_s > 0 ? f->opts->timeout_s
                                                                  : ZOS_FETCH_TIMEOUT_S);
    evhttp_connection_set_retries(f->conn, 0);
    return true;
}

/* The request: Host as in the URL, no compression, no keep-alive. */
static struct evhttp_request *hop_request(struct fetch *f)
{
    struct evhttp_request *req = evhttp_request_new(done_cb, f);
    struct evkeyvalq *h;
    char host[300];

    if (req == NULL)
        return NULL;
    evhttp_request_set_header_cb(req, header_cb);
    evhttp_request_set_chunked_cb(req, chunk_cb);
    evhttp_request_set_error_cb(req, error_cb);
    h = evhttp_request_get_output_headers(req);
    if (evhttp_uri_get_port(f->uri) > 0)
        snprintf(host, sizeof(host), "%s:%d", evhttp_uri_get_host(f->uri), f->port);
    else
        snprintf(host, sizeof(host), "%s", evhttp_uri_get_host(f->uri));
    if (evhttp_add_header(h, "Host", host) != 0 ||
        evhttp_add_header(h, "User-Agent", "zos/" ZOS_VERSION) != 0 ||
        evhttp_add_header(h, "Accept", "*/*") != 0 ||
        evhttp_add_header(h, "Connection", "close") != 0) {
        evhttp_request_free(req);
        return NULL;
    }
    return req;
}

/* The request-target: path and query, with the bytes a request line cannot
 * carry (blanks, controls, non-ASCII: a Location "/a b" is sent as "/a%20b",
 * as browsers do) percent-encoded.  A new string, NULL when out of memory. */
static char *hop_target(const struct evhttp_uri *uri)
{
    const char *path = evhttp_uri_get_path(uri), *query = evhttp_uri_get_query(uri);
    char *raw = NULL, *out;
    size_t j = 0;

    if (asprintf(&raw, "%s%s%s", path != NULL && path[0] != '\0' ? path : "/",
                 query != NULL ? "?" : "", query != NULL ? query : "") < 0)
        return NULL;
    if ((out = malloc(strlen(raw) * 3 + 1)) != NULL) {
        for (const unsigned char *p = (const unsigned char *)raw; *p != '\0'; p++) {
            if (*p <= ' ' || *p >= 0x7f)
                j += (size_t)sprintf(out + j, "%%%02X", *p);
            else
                out[j++] = (char)*p;
        }
        out[j] = '\0';
    }
    free(raw);
    return out;
}

/* GET f->url; ends with f->state DONE, REDIRECT (f->location set) or FAILED. */
static void hop_run(struct fetch *f)
{
    struct evhttp_request *req;
    char *target;
    bool https;

    f->state = HOP_RUNNING;
    f->status = 0;
    f->http_error = -1;
    f->sock_errno = 0;
    f->cause[0] = '\0';
    ERR_clear_error();
    if (!hop_parse(f, &https))
        return;
    if (f->was_https && !https && !f->opts->insecure) {
        fail(f, "refusing a redirect from https to plain http");
        return;
    }
    f->https = https;
    f->was_https = f->was_https || https;
    if (!hop_connection(f, https))
        return;
    if ((target = hop_target(f->uri)) == NULL || (req = hop_request(f)) == NULL) {
        free(target);
        fail(f, "out of memory");
        return;
    }
    /* On failure evhttp has freed the request, and our callbacks may have run. */
    if (evhttp_make_request(f->conn, req, EVHTTP_REQ_GET, target) != 0)
        fail_transport(f);
    free(target);
    if (f->state == HOP_RUNNING) {
        bufferevent_getcb(f->bev, &f->http_readcb, &f->http_writecb, &f->http_eventcb,
                          &f->http_cbarg);
        if (f->http_eventcb != NULL)
            bufferevent_setcb(f->bev, f->http_readcb, f->http_writecb, connect_event_cb, f);
        event_base_dispatch(f->base);
    }
    if (f->state == HOP_RUNNING)
        fail_transport(f); /* the loop ran out of events without an answer */
}

static void hop_free(struct fetch *f)
{
    if (f->conn != NULL)
        evhttp_connection_free(f->conn); /* frees the bufferevent, and its SSL */
    if (f->uri != NULL)
        evhttp_uri_free(f->uri);
    f->conn = NULL;
    f->bev = NULL;
    f->uri = NULL;
}

/* ---- the download ------------------------------------------------------- */

static int run(struct fetch *f, const char *url)
{
    if ((f->url = strdup(url)) == NULL) {
        snprintf(f->err, f->errlen, "out of memory");
        return ZOS_ERR;
    }
    for (int hops = 0;; hops++) {
        hop_run(f);
        hop_free(f);
        if (f->state != HOP_REDIRECT)
            break;
        if (hops == ZOS_FETCH_MAX_REDIRECTS)
            return fail_download(f, "more than %d redirects", ZOS_FETCH_MAX_REDIRECTS);
        free(f->url);
        f->url = f->location;
        f->location = NULL;
    }
    if (f->state != HOP_DONE)
        return ZOS_ERR;
    if (f->total < 0) {
        f->total = f->done;
        if (report(f) != 0)
            return fail_download(f, "download cancelled");
    }
    return ZOS_OK;
}

/* PATH.part complete: on disk, then renamed to PATH. */
static int finish(struct fetch *f)
{
    int rc = fsync(f->fd);
    int fd = f->fd;

    f->fd = -1;
    if (close(fd) != 0 || rc != 0) {
        snprintf(f->err, f->errlen, "writing %s: %s", f->part, strerror(errno));
        return ZOS_ERR;
    }
    if (rename(f->part, f->path) != 0) {
        snprintf(f->err, f->errlen, "renaming %s to %s: %s", f->part, f->path, strerror(errno));
        return ZOS_ERR;
    }
    return ZOS_OK;
}

int zos_fetch(const char *url, const char *path, const struct zos_fetch_opts *opts, char *err,
              size_t errlen)
{
    static const struct zos_fetch_opts defaults;
    struct fetch f = {.opts = opts != NULL ? opts : &defaults,
                      .path = path,
                      .err = err,
                      .errlen = errlen,
                      .fd = -1,
                      .bar = {.out = stderr},
                      .total = -1};
    bool created = false;
    int rc = ZOS_ERR;

    if (snprintf(f.part, sizeof(f.part), "%s.part", path) >= (int)sizeof(f.part)) {
        snprintf(err, errlen, "%s: path too long", path);
        return ZOS_ERR;
    }
    if ((f.base = event_base_new()) == NULL) {
        snprintf(err, errlen, "cannot create an event loop");
        return ZOS_ERR;
    }
    /* A stale .part (an interrupted download) is removed, not followed: a
     * symlink planted there must not get its target truncated. */
    if (unlink(f.part) != 0 && errno != ENOENT) {
        snprintf(err, errlen, "%s: %s", f.part, strerror(errno));
        goto done;
    }
    f.fd = open(f.part, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (f.fd < 0) {
        snprintf(err, errlen, "%s: %s", f.part, strerror(errno));
        goto done;
    }
    created = true;
    if (run(&f, url) == ZOS_OK)
        rc = finish(&f);
done:
    zos_bar_end(&f.bar);
    if (f.fd >= 0)
        close(f.fd);
    if (rc != ZOS_OK && created)
        unlink(f.part);
    free(f.url);
    free(f.location);
    SSL_CTX_free(f.ssl_ctx);
    event_base_free(f.base);
    return rc;
}
