/* print.c -- output: pretty JSON as the original printed it, results, tables.
 *
 * The original printed with Nim's json.pretty: two blanks per level, one
 * element per line in arrays too, "{}" and "[]" for empty ones.  cJSON_Print
 * (and so zos_json_pretty) keeps arrays on one line and prints an empty
 * object over two lines, so the CLI walks the tree itself.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "cli.h"

static void put_string(struct evbuffer *b, const char *s)
{
    evbuffer_add(b, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
        switch (*p) {
        case '"':
            evbuffer_add(b, "\\\"", 2);
            break;
        case '\\':
            evbuffer_add(b, "\\\\", 2);
            break;
        case '\b':
            evbuffer_add(b, "\\b", 2);
            break;
        case '\f':
            evbuffer_add(b, "\\f", 2);
            break;
        case '\n':
            evbuffer_add(b, "\\n", 2);
            break;
        case '\r':
            evbuffer_add(b, "\\r", 2);
            break;
        case '\t':
            evbuffer_add(b, "\\t", 2);
            break;
        default:
            if (*p < 0x20)
                evbuffer_add_printf(b, "\\u%04x", *p);
            else
                evbuffer_add(b, p, 1);
        }
    }
    evbuffer_add(b, "\"", 1);
}

/* Integers as integers (cJSON keeps only a double), others in the shortest
 * form that reads back the same. */
static void put_number(struct evbuffer *b, double d)
{
    char buf[64];
    if (!isfinite(d)) {
        evbuffer_add(b, "null", 4);
        return;
    }
    if (d == floor(d) && fabs(d) < 1e19) {
        evbuffer_add_printf(b, "%.0f", d);
        return;
    }
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(buf, sizeof(buf), "%.*g", prec, d);
        if (strtod(buf, NULL) == d)
            break;
    }
    evbuffer_add(b, buf, strlen(buf));
}

static void indent(struct evbuffer *b, int depth)
{
    evbuffer_add(b, "\n", 1);
    for (int i = 0; i < depth; i++)
        evbuffer_add(b, "  ", 2);
}

static void put_value(struct evbuffer *b, const cJSON *v, int depth)
{
    if (cJSON_IsObject(v) || cJSON_IsArray(v)) {
        bool obj = cJSON_IsObject(v);
        const cJSON *it;
        if (v->child == NULL) {
            evbuffer_add(b, obj ? "{}" : "[]", 2);
            return;
        }
        evbuffer_add(b, obj ? "{" : "[", 1);
        cJSON_ArrayForEach(it, v)
        {
            indent(b, depth + 1);
            if (obj) {
                put_string(b, it->string != NULL ? it->string : "");
                evbuffer_add(b, ": ", 2);
            }
            put_value(b, it, depth + 1);
            if (it->next != NULL)
                evbuffer_add(b, ",", 1);
        }
        indent(b, depth);
        evbuffer_add(b, obj ? "}" : "]", 1);
    } else if (cJSON_IsString(v)) {
        put_string(b, v->valuestring != NULL ? v->valuestring : "");
    } else if (cJSON_IsNumber(v)) {
        put_number(b, v->valuedouble);
    } else if (cJSON_IsBool(v)) {
        evbuffer_add_printf(b, "%s", cJSON_IsTrue(v) ? "true" : "false");
    } else if (cJSON_IsRaw(v) && v->valuestring != NULL) {
        evbuffer_add(b, v->valuestring, strlen(v->valuestring));
    } else {
        evbuffer_add(b, "null", 4);
    }
}

char *zos_cli_json_pretty(const cJSON *v)
{
    struct evbuffer *b = evbuffer_new();
    char *out = NULL;
    if (b == NULL)
        return NULL;
    put_value(b, v, 0);
    size_t len = evbuffer_get_length(b);
    out = malloc(len + 1);
    if (out != NULL) {
        evbuffer_remove(b, out, len);
        out[len] = '\0';
    }
    evbuffer_free(b);
    return out;
}

void zos_cli_print_json(FILE *f, const cJSON *v)
{
    char *text = zos_cli_json_pretty(v);
    if (text != NULL)
        fprintf(f, "%s\n", text);
    free(text);
}

void zos_cli_print_text(FILE *f, const char *text)
{
    size_t n = strlen(text);
    if (n == 0)
        return;
    fputs(text, f);
    if (text[n - 1] != '\n')
        fputc('\n', f);
}

void zos_cli_print_result(const struct zos_job_result *r)
{
    if (r->level == 20 && r->value != NULL) {
        zos_cli_print_json(stdout, r->value);
    } else if (r->level == 20) {
        zos_cli_print_text(stdout, r->data);
    } else {
        zos_cli_print_text(stdout, r->out);
        fflush(stdout);
        zos_cli_print_text(stderr, r->err);
    }
}

void zos_cli_print_failure(const char *what, const struct zos_job_result *r)
{
    char why[1024];
    if (r->level != 20) {
        /* A process: what it wrote is the most useful part. */
        zos_cli_print_text(stdout, r->out);
        fflush(stdout);
        zos_cli_print_text(stderr, r->err);
    }
    if (strcmp(r->state, "UNKNOWN_CMD") == 0) {
        fprintf(stderr, "zos: %s failed: the node does not know the command '%s'\n", what,
                r->command);
        return;
    }
    if (r->level != 20 && r->code >= 1000 && r->code < 1256) {
        fprintf(stderr, "zos: %s failed: exit status %lu\n", what, r->code - 1000);
        return;
    }
    zos_job_result_describe(r, why, sizeof(why));
    fprintf(stderr, "zos: %s failed: %s\n", what, why);
}

/* ---- tables ---- */

void zos_cli_table_init(struct zos_cli_table *t, size_t ncols, const char *const *header)
{
    memset(t, 0, sizeof(*t));
    t->ncols = ncols;
    zos_cli_table_add(t, header);
}

void zos_cli_table_add(struct zos_cli_table *t, const char *const *row)
{
    if (t->nrows == t->cap) {
        size_t ncap = t->cap ? t->cap * 2 : 8;
        const char **n = realloc(t->cells, ncap * t->ncols * sizeof(*n));
        if (n == NULL)
            return;
        t->cells = n;
        t->cap = ncap;
    }
    for (size_t c = 0; c < t->ncols; c++)
        t->cells[t->nrows * t->ncols + c] = row[c] != NULL ? row[c] : "";
    t->nrows++;
}

void zos_cli_table_print(FILE *f, const struct zos_cli_table *t)
{
    size_t width[16] = {0};
    for (size_t r = 0; r < t->nrows; r++)
        for (size_t c = 0; c < t->ncols && c < 16; c++) {
            size_t n = strlen(t->cells[r * t->ncols + c]);
            width[c] = n > width[c] ? n : width[c];
        }
    for (size_t r = 0; r < t->nrows; r++) {
        for (size_t c = 0; c < t->ncols && c < 16; c++) {
            const char *cell = t->cells[r * t->ncols + c];
            if (c + 1 == t->ncols)
                fprintf(f, "%s\n", cell);
            else
                fprintf(f, "%-*s  ", (int)width[c], cell);
        }
    }
}

void zos_cli_table_free(struct zos_cli_table *t)
{
    free(t->cells);
    memset(t, 0, sizeof(*t));
}
