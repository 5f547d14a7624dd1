// The qtk command-line tool: one function per subcommand.
#ifndef QTK_CLI_H
#define QTK_CLI_H

#include <stddef.h>
#include <stdio.h>
#include <stdint.h>

#include "../core/error.h"

// Each returns the process exit status: 0 ok, 1 error, 2 usage error.
int qtk_cmd_info(int argc, char **argv);
int qtk_cmd_demo(int argc, char **argv);
// The core demo (qtk demo --core): a synthetic linear layer at 2..8 bits, into out_dir.
int qtk_demo_core(const char *out_dir, unsigned long long seed);
int qtk_cmd_quant_report(int argc, char **argv);
int qtk_cmd_preprocess(int argc, char **argv);
int qtk_cmd_dataset(int argc, char **argv);
int qtk_cmd_run(int argc, char **argv);
int qtk_cmd_table(int argc, char **argv);
// qtk table's output to o: the runs (summary.json) under the nd folders; csv or markdown; plot: a PNG or NULL.
// 0, or the exit status of the error.
int qtk_table_print(FILE *o, char *const *dirs, int nd, int csv, const char *plot);
int qtk_cmd_sweep(int argc, char **argv);
// Loads a sweep file and every run's config as `qtk sweep FILE --dry-run` would, writing nothing: 0, or the
// exit status of the (printed) error.
int qtk_sweep_validate(const char *file);
int qtk_cmd_eval(int argc, char **argv);
int qtk_cmd_calibrate(int argc, char **argv);
int qtk_cmd_perplexity(int argc, char **argv);
// The token ids of a token file (datasets/tokens.h), or of a text file: through the model folder's
// tokenizer.json, else its bytes for a byte-level model (a vocabulary of 256; any other is refused). model:
// the checkpoint the ids are for (named in errors).
qtk_status qtk_lm_load_ids(const char *model, int vocab, const char *tokens, const char *text, int32_t **ids, size_t *n);
// Perplexity of the Mamba / Mamba2 checkpoint folder `model` on a token file or a text file's bytes (one of
// them), as `qtk perplexity` computes it: on the CPU, or the GPU (cuda; fp16: fp16 projection weights); a Quamba
// checkpoint folder with its int8 forward.
qtk_status qtk_lm_eval(const char *model, const char *tokens, const char *text, int ctx, int stride, int max_windows,
                       int batch, int cuda, int fp16, double *ppl, size_t *scored);
int qtk_cmd_generate(int argc, char **argv);
int qtk_cmd_tokenize(int argc, char **argv);
// The model folder's tokenizer.json (*out NULL when it has none); ids beyond the model's vocabulary are an error.
struct qtk_bpe;
qtk_status qtk_lm_tokenizer(const char *model, int vocab, struct qtk_bpe **out);

// Prints "qtk: error: <msg>" to stderr and returns 1.
int qtk_cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
// Prints "qtk: usage error: <msg>" and the hint to run --help; returns 2.
int qtk_cli_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
// A --set value: key=value, else a usage error (returns 2, after the message).
int qtk_cli_set_arg(const char *kv);
// Reads a whole file as a NUL-terminated string (NULL if it cannot); len may be NULL.
char *qtk_read_text(const char *path, size_t *len);
// A whole number option value in [lo, hi] (no trailing text, no overflow); 0, or prints the usage error and
// returns 2.
int qtk_cli_int_arg(const char *opt, const char *v, long lo, long hi, int *out);
// Writes text to path atomically (path.new, fsync, rename); the error names the path.
qtk_status qtk_write_text_atomic(const char *path, const char *text);
// The one JSON writer: cJSON_Print, then qtk_write_text_atomic (a temporary beside path, fsync, rename).
struct cJSON;
qtk_status qtk_write_json_atomic(const char *path, const struct cJSON *j);
// Creates dir and its missing parents (like mkdir -p); 0 ok, -1 with errno set.
int qtk_cli_mkdir_p(const char *dir);

#endif
