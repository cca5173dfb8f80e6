/* sshkeys.c -- the public keys a new container trusts (authorized_keys).
 *
 *   --sshkey:  <file>.pub | <private key path> (+ ".pub") | <name> under ~/.ssh
 *   otherwise: the ssh agent ($SSH_AUTH_SOCK, spoken directly: no ssh-add
 *              needed) --> ~/.ssh/id_ed25519.pub --> ~/.ssh/id_rsa.pub
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "cli.h"

#define AGENTC_REQUEST_IDENTITIES 11
#define AGENT_IDENTITIES_ANSWER   12
#define AGENT_MAX_REPLY           (256 * 1024)

/* ---- files ---- */

static bool looks_like_key(const char *line)
{
    return strncmp(line, "ssh-", 4) == 0 || strncmp(line, "ecdsa-", 6) == 0 ||
           strncmp(line, "sk-", 3) == 0;
}

/* The key lines of PATH, each newline-terminated; NULL when unreadable or
 * when it holds no public key. */
static char *read_pub(const char *path)
{
    FILE *f = fopen(path, "r");
    char *line = NULL, *out = NULL;
    size_t cap = 0, len = 0;
    ssize_t n;
    if (f == NULL)
        return NULL;
    while ((n = getline(&line, &cap, f)) > 0) {
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
            line[--n] = '\0';
        if (!looks_like_key(line))
            continue;
        char *grown = realloc(out, len + (size_t)n + 2);
        if (grown == NULL)
            break;
        out = grown;
        memcpy(out + len, line, (size_t)n);
        len += (size_t)n;
        out[len++] = '\n';
        out[len] = '\0';
    }
    free(line);
    fclose(f);
    return out;
}

static char *home_path(const char *rest)
{
    const char *home = getenv("HOME");
    char *p = NULL;
    if (asprintf(&p, "%s/%s", home != NULL ? home : "", rest) < 0)
        return NULL;
    return p;
}

/* --sshkey VALUE: the .pub path to read and the private key path. */
static void resolve_opt(const char *opt, char **pub, char **priv)
{
    char *path;
    size_t n = strlen(opt);
    if (strncmp(opt, "~/", 2) == 0)
        path = home_path(opt + 2);
    else if (strchr(opt, '/') == NULL && access(opt, F_OK) != 0) {
        char rest[512];
        snprintf(rest, sizeof(rest), ".ssh/%s", opt);
        path = home_path(rest);
    } else
        path = strdup(opt);
    *pub = *priv = NULL;
    if (path == NULL)
        return;
    n = strlen(path);
    if (n > 4 && strcmp(path + n - 4, ".pub") == 0) {
        *pub = path;
        *priv = strndup(path, n - 4);
    } else if (asprintf(pub, "%s.pub", path) >= 0) {
        *priv = path;
    } else {
        *pub = NULL;
        free(path);
    }
}

/* ---- the ssh agent ---- */

static int read_full(int fd, void *buf, size_t len)
{
    char *p = buf;
    while (len > 0) {
        ssize_t n = read(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static uint32_t get32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* A length-prefixed string at *P (END the limit): its bytes and length. */
static const unsigned char *get_string(const unsigned char **p, const unsigned char *end,
                                       uint32_t *len)
{
    if (end - *p < 4)
        return NULL;
    *len = get32(*p);
    if ((size_t)(end - *p - 4) < *len)
        return NULL;
    const unsigned char *s = *p + 4;
    *p += 4 + *len;
    return s;
}

/* "type base64 comment\n" for one identity, appended to *OUT. */
static int add_identity(char **out, size_t *len, const unsigned char *blob, uint32_t blen,
                        const unsigned char *comment, uint32_t clen)
{
    const unsigned char *p = blob;
    uint32_t tlen;
    const unsigned char *type = get_string(&p, blob + blen, &tlen);
    if (type == NULL)
        return -1;
    size_t b64 = 4 * ((blen + 2) / 3) + 1;
    char *grown = realloc(*out, *len + tlen + b64 + clen + 4);
    if (grown == NULL)
        return -1;
    *out = grown;
    char *w = *out + *len;
    memcpy(w, type, tlen);
    w += tlen;
    *w++ = ' ';
    w += EVP_EncodeBlock((unsigned char *)w, blob, (int)blen);
    if (clen > 0) {
        *w++ = ' ';
        memcpy(w, comment, clen);
        w += clen;
    }
    *w++ = '\n';
    *w = '\0';
    *len = (size_t)(w - *out);
    return 0;
}

static char *parse_identities(const unsigned char *msg, uint32_t mlen)
{
    const unsigned char *p = msg + 5, *end = msg + mlen;
    char *out = NULL;
    size_t len = 0;
    if (mlen < 5 || msg[0] != AGENT_IDENTITIES_ANSWER)
        return NULL;
    for (uint32_t i = 0, n = get32(msg + 1); i < n; i++) {
        uint32_t blen, clen;
        const unsigned char *blob = get_string(&p, end, &blen);
        const unsigned char *comment = blob != NULL ? get_string(&p, end, &clen) : NULL;
        if (comment == NULL || add_identity(&out, &len, blob, blen, comment, clen) != 0)
            break;
    }
    return out;
}

/* The agent's public keys, or NULL (no agent, no keys, any trouble). */
static char *agent_keys(void)
{
    const char *sock = getenv("SSH_AUTH_SOCK");
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    static const unsigned char req[] = {0, 0, 0, 1, AGENTC_REQUEST_IDENTITIES};
    unsigned char hdr[4], *msg = NULL;
    char *keys = NULL;
    int fd;

    if (sock == NULL || sock[0] == '\0' || strlen(sock) >= sizeof(sa.sun_path))
        return NULL;
    strcpy(sa.sun_path, sock);
    if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
        return NULL;
    struct timeval tv = {2, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
        write(fd, req, sizeof(req)) != (ssize_t)sizeof(req) || read_full(fd, hdr, 4) != 0)
        goto done;
    uint32_t mlen = get32(hdr);
    if (mlen == 0 || mlen > AGENT_MAX_REPLY || (msg = malloc(mlen)) == NULL ||
        read_full(fd, msg, mlen) != 0)
        goto done;
    keys = parse_identities(msg, mlen);
done:
    free(msg);
    close(fd);
    return keys;
}

int zos_cli_sshkeys(const char *opt, char **keys, char **private_path)
{
    static const char *defaults[] = {".ssh/id_ed25519", ".ssh/id_rsa"};
    *keys = *private_path = NULL;
    if (opt != NULL) {
        char *pub, *priv;
        resolve_opt(opt, &pub, &priv);
        *keys = pub != NULL ? read_pub(pub) : NULL;
        if (*keys == NULL) {
            zos_cli_fail(ZOS_EXIT_SSHKEY_NOT_FOUND, "--sshkey: no public key in %s",
                         pub != NULL ? pub : opt);
            free(pub);
            free(priv);
            return ZOS_EXIT_SSHKEY_NOT_FOUND;
        }
        free(pub);
        *private_path = priv;
        return 0;
    }
    if ((*keys = agent_keys()) != NULL) {
        *private_path = strdup("false");
        return 0;
    }
    for (size_t i = 0; i < sizeof(defaults) / sizeof(defaults[0]); i++) {
        char *priv = home_path(defaults[i]), *pub = NULL;
        if (priv != NULL && asprintf(&pub, "%s.pub", priv) >= 0 &&
            (*keys = read_pub(pub)) != NULL) {
            free(pub);
            *private_path = priv;
            return 0;
        }
        free(pub);
        free(priv);
    }
    return zos_cli_fail(ZOS_EXIT_CANT_FIND_SSHKEYS,
                        "no ssh public key found: the ssh agent has none, and there is no "
                        "~/.ssh/id_ed25519.pub or ~/.ssh/id_rsa.pub (make one with "
                        "'ssh-keygen -t ed25519', or give --sshkey)");
}
