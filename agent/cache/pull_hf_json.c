/*
 * pull_hf_json.c — the Hub's description of one revision of a repository,
 * from GET /api/models/ORG/NAME/revision/REV:
 *
 *   {"id":"ORG/NAME", "sha":"<40 hex: the commit>",
 *    "siblings":[{"rfilename":"config.json"},
 *                {"rfilename":"model-q4_0.gguf"}, …], …}
 *
 * Outside data: the size, the number of files and every name are bounded;
 * a file name the store cannot hold (a space, "..") is set aside with the
 * others in `skipped` rather than failing the whole repository. Names are
 * sorted and duplicates dropped, so a pull's order does not depend on the
 * server's.
 */
#include <stdlib.h>
#include <string.h>

#include "agent/cache/pull.h"
#include "common/alloc.h"
#include "common/json.h"
#include "common/parse.h"

void pull_hf_revision_free(hf_revision *r)
{
    for (size_t i = 0; i < r->n_files; i++)
        mlx_free(r->files[i]);
    for (size_t i = 0; i < r->n_skipped; i++)
        mlx_free(r->skipped[i]);
    mlx_free(r->files);
    mlx_free(r->skipped);
    memset(r, 0, sizeof *r);
}

static bool is_commit(const char *s)
{
    size_t n = 0;
    for (; s[n] != '\0'; n++)
        if (!((s[n] >= '0' && s[n] <= '9') || (s[n] >= 'a' && s[n] <= 'f')))
            return false;
    return n == 40;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Keeps one name: a file of the model, or one set aside. */
static int add_name(hf_revision *r, const char *name, mlx_err *err)
{
    bool usable = store_check_name(name, NULL) == 0;
    char ***list = usable ? &r->files : &r->skipped;
    size_t *n = usable ? &r->n_files : &r->n_skipped;
    char *copy = usable ? mlx_strdup(name)
                 : mlx_text_is_clean(name, PULL_MAX_HEADER)
                     ? mlx_strdup(name)
                     : mlx_strdup("(a name that is not printable UTF-8)");
    if (copy == NULL)
        return mlx_err_set(err, MLX_ENOMEM, "out of memory");
    (*list)[(*n)++] = copy;
    return 0;
}

static int read_siblings(const json_t *siblings, hf_revision *out, mlx_err *err)
{
    size_t n = json_array_size(siblings);
    if (n > PULL_MAX_FILES)
        return mlx_err_set(err, MLX_ECORRUPT,
                           "the repository lists %zu files, more than the %d a model "
                           "may have",
                           n, PULL_MAX_FILES);
    out->files = mlx_calloc(n > 0 ? n : 1, sizeof *out->files);
    out->skipped = mlx_calloc(n > 0 ? n : 1, sizeof *out->skipped);
    if (out->files == NULL || out->skipped == NULL)
        return mlx_err_set(err, MLX_ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        const json_t *sib = json_array_get(siblings, i);
        const char *name = NULL;
        if (!json_is_object(sib))
            return mlx_err_set(err, MLX_ECORRUPT, "siblings[%zu] is %s, not an object", i,
                               mlx_json_type_name(sib));
        int rc = mlx_json_get_string(sib, "rfilename", MLX_JSON_REQUIRED, &name, err);
        if (rc != 0)
            return mlx_err_prefix(err, MLX_ECORRUPT, "siblings[%zu]", i);
        if ((rc = add_name(out, name, err)) != 0)
            return rc;
    }
    if (out->n_files > 1) {
        qsort(out->files, out->n_files, sizeof *out->files, cmp_names);
        size_t k = 1;
        for (size_t i = 1; i < out->n_files; i++) {
            if (strcmp(out->files[i], out->files[k - 1]) == 0)
                mlx_free(out->files[i]);
            else
                out->files[k++] = out->files[i];
        }
        out->n_files = k;
    }
    return 0;
}

int pull_parse_hf_revision(const char *text, size_t len, hf_revision *out, mlx_err *err)
{
    memset(out, 0, sizeof *out);
    if (len > PULL_MAX_REVISION_JSON)
        return mlx_err_set(err, MLX_ECORRUPT,
                           "the repository description of %zu bytes is over the %u limit",
                           len, PULL_MAX_REVISION_JSON);
    json_t *root = NULL;
    int rc = mlx_json_parse(text, len, &root, err);
    if (rc != 0)
        return rc == MLX_ENOMEM
                   ? rc
                   : mlx_err_prefix(err, MLX_ECORRUPT, "the repository description");
    const char *sha = NULL;
    const json_t *siblings = NULL;
    if (!json_is_object(root)) {
        rc = mlx_err_set(err, MLX_ECORRUPT,
                         "the repository description is %s, not an object",
                         mlx_json_type_name(root));
    } else if ((rc = mlx_json_get_string(root, "sha", MLX_JSON_REQUIRED, &sha, err)) !=
               0) {
        rc = mlx_err_prefix(err, MLX_ECORRUPT, "the repository description");
    } else if (!is_commit(sha)) {
        rc = mlx_err_set(err, MLX_ECORRUPT,
                         "the repository description's sha '%.80s' is not a 40-digit "
                         "commit",
                         mlx_text_is_clean(sha, 80) ? sha : "?");
    } else if (!json_is_array(siblings = json_object_get(root, "siblings"))) {
        rc = mlx_err_set(err, MLX_ECORRUPT,
                         "the repository description has no 'siblings' list of files");
    } else {
        memcpy(out->sha, sha, 41);
        rc = read_siblings(siblings, out, err);
    }
    json_decref(root);
    if (rc != 0)
        pull_hf_revision_free(out);
    return rc;
}
