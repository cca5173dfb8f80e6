/* conf.h -- the INI config file shared by zos and zos-proxy.
 *
 * The original Nim zos wrote ~/.config/zos.toml with parsecfg: "[section]"
 * headers, "key=value" lines, values sometimes in double quotes.  Such a file
 * loads unchanged.  [app] holds CLI settings, [proxy] the proxy's, and every
 * other section is a node.  Every key is described once, in a table in
 * conf.c (name, type, default, validator); errors read "FILE:LINE: key: why".
 */
#ifndef ZOS_CONF_H
#define ZOS_CONF_H

#include <stdbool.h>
#include <stddef.h>

struct zos_index;

enum zos_tls_verify {
    ZOS_TLS_VERIFY_NONE,   /* Zero-OS makes a new self-signed cert each boot */
    ZOS_TLS_VERIFY_CA,     /* tls-verify = ca:/path/to/ca.pem */
    ZOS_TLS_VERIFY_SHA256, /* tls-verify = sha256:<64 hex digits, ':' allowed> */
};

struct zos_node_conf {
    char *name;    /* section name */
    char *address; /* default "127.0.0.1" */
    int port;      /* default 6379 */
    bool tls;      /* default true */
    enum zos_tls_verify verify;
    char *verify_ca;                 /* ZOS_TLS_VERIFY_CA: file */
    unsigned char verify_sha256[32]; /* ZOS_TLS_VERIFY_SHA256: cert DER digest */
    char *secret;   /* AUTH sent to the node (a JWT), NULL for none; never logged */
    int db;         /* SELECT after connect when > 0 */
    char *password; /* what clients give in "AUTH <node> <password>"; NULL: requirepass */
    char *listen;   /* optional "host:port" serving only this node, NULL for none */
    bool admin;     /* clients may read and change the node's secrets (CONFIG SET, ACL) */
    bool isvbox;    /* made by "zos init" */
    char *sshkey;   /* private key path for containers of this node, NULL for none */
    int line;       /* line of the section header, for messages */
};

struct zos_app_conf {
    char *defaultzos; /* active node of the CLI, NULL when unset */
    bool debug;
    char *proxy; /* "host:port" of a zos-proxy the CLI talks through, NULL: direct */
};

struct zos_proxy_conf {
    char *listen;         /* "host:port", default "127.0.0.1:6380" */
    char *unixsocket;     /* NULL for none */
    int unixsocketperm;   /* octal, default 0700 */
    char *requirepass;    /* NULL for none; required to listen beyond loopback */
    char *metrics_listen; /* "host:port" of the Prometheus endpoint (HTTP), NULL: none */
    char *default_node;   /* [proxy] default; NULL: only node, else [app] defaultzos */
    size_t max_bulk;      /* request limits, see resp.h */
    size_t max_args;
    size_t max_inline;
    size_t reply_max_bulk; /* node reply limits, see resp.h */
    size_t reply_max_elements;
    int reply_max_depth;
    bool core_dump;             /* debug: leave the process dumpable, secrets included */
    int max_clients;            /* default 10000 */
    int max_pinned;             /* pinned (blocking/stateful) links in use per node, default 256 */
    int max_lanes;              /* shared links per node, db and protocol, default 4 */
    int lane_busy_ms;           /* a shared link whose oldest request waits longer is busy, 50 */
    int pool_size;              /* idle pinned links kept per node, default 8 */
    int pool_idle_ms;           /* idle pooled links and extra lanes close after, default 30000 */
    int node_timeout_ms;        /* no answer to PING this long: the node is hung, default 10000 */
    size_t client_output_limit; /* replies waiting for one client (0: none), default 256m */
    size_t client_query_limit;  /* requests of one client not yet forwarded, default 256m */
    size_t pubsub_output_limit; /* the same for a subscriber or MONITOR, default 32m */
    int job_links;              /* waiting links per node for ZOS job verbs, default 16 */
    int max_connecting;         /* node connects in progress at once, default 64 */
    int all_timeout_ms;         /* ZOS.ALL deadline, default 5000 */
    int connect_timeout_ms;     /* default 5000 */
    int ping_interval_ms;       /* health PING on an idle link, default 15000 */
    int backoff_max_ms;         /* reconnect backoff ceiling, default 10000 */
    int shutdown_timeout_ms;    /* how long SIGTERM waits for in-flight replies, default 5000 */
    char *log_level;            /* error|warn|info|debug, default info */
    char *log_file;             /* NULL: stderr */
};

struct zos_conf {
    char *path; /* file it was loaded from (or will be saved to) */
    struct zos_app_conf app;
    struct zos_proxy_conf proxy;
    struct zos_node_conf *nodes; /* in file order */
    size_t nnodes;
    size_t capnodes;
    struct zos_index *index; /* node name -> position in nodes */
};

/* The path to use: OPT when non-NULL, else $ZOS_CONFIG, else
 * $XDG_CONFIG_HOME/zos.toml, else $HOME/.config/zos.toml.  Writes BUF. */
const char *zos_conf_path(const char *opt, char *buf, size_t buflen);

/* A config with every default and no node.  Caller frees. */
struct zos_conf *zos_conf_new(void);

/* Loads and validates PATH.  NULL on error with ERR set ("FILE:LINE: key: why",
 * or "FILE: why" when it cannot be read).  A missing file is an error here;
 * callers that accept one check access() first.  Caller frees. */
struct zos_conf *zos_conf_load(const char *path, char *err, size_t errlen);

void zos_conf_free(struct zos_conf *c);

/* Node by section name, or NULL. Borrowed from C. */
struct zos_node_conf *zos_conf_node(const struct zos_conf *c, const char *name);

/* The node commands go to by default: [proxy] default, else the only node,
 * else [app] defaultzos.  NULL when there is none.  Borrowed. */
struct zos_node_conf *zos_conf_default_node(const struct zos_conf *c);

/* Sets KEY of SECTION ("app", "proxy" or a node name, created when missing)
 * from its text form, validated by the same table as loading.  VALUE NULL
 * removes the key (back to its default).  0 or -1 with ERR. */
int zos_conf_set(struct zos_conf *c, const char *section, const char *key, const char *value,
                 char *err, size_t errlen);

/* Removes node NAME; 0, or -1 when there is no such node. */
int zos_conf_remove_node(struct zos_conf *c, const char *name);

/* Writes C to PATH (NULL: c->path) atomically (temp file + rename) with mode
 * 0600, creating the parent directory (0700) when missing.  Only keys that
 * differ from their defaults are written, plus address/port of each node and
 * [app] debug, as the original did.  0 or -1 with ERR. */
int zos_conf_save(const struct zos_conf *c, const char *path, char *err, size_t errlen);

/* Parses "host:port" (host may be "[v6]") into HOST and PORT. 0 or -1. */
int zos_conf_split_hostport(const char *s, char *host, size_t hostlen, int *port);

/* True when HOST is a loopback address or "localhost". */
bool zos_conf_is_loopback(const char *host);

#endif
