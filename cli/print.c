/* print.c -- output: pretty JSON (zos_json_pretty), results, tables. */
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "cli.h"
#include "zos/util.h"

void zos_cli_print_json(FILE *f, const cJSON *v)
{
    char *text = zos_json_pretty(v);
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
        size_t last = t->ncols < 16 ? t->ncols : 16; /* empty cells at the end: no blanks */
        while (last > 1 && t->cells[r * t->ncols + last - 1][0] == '\0')
            last--;
        for (size_t c = 0; c < last; c++) {
            const char *cell = t->cells[r * t->ncols + c];
            if (c + 1 == last)
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
