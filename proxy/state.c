/* state.c -- the checks made on a client's state (see state.h). */
#include "state.h"

#include <stdio.h>

bool zos_client_authed(const struct zos_client *c)
{
    return c->auth_all || c->auth_node != NULL;
}

bool zos_client_may_use(const struct zos_client *c, const struct zos_node *n, char *err,
                        size_t errlen)
{
    const char *requirepass = c->srv->conf->proxy.requirepass;
    if (c->fixed != NULL && n != c->fixed) {
        snprintf(err, errlen, "ERR this port serves node '%s' only", c->fixed->conf->name);
        return false;
    }
    if (c->auth_all || c->auth_node == n || (n->conf->password == NULL && requirepass == NULL))
        return true;
    if (!zos_client_authed(c))
        snprintf(err, errlen, "NOAUTH Authentication required.");
    else
        snprintf(err, errlen, "NOPERM this connection is authenticated for node '%s' only",
                 c->auth_node->conf->name);
    return false;
}
