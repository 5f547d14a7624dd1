// Perplexity and next-token sampling on top of the Mamba forward.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "mamba.h"

// the CPU forward of qtk_mamba_perplexity: every window from an empty state
typedef struct {
    const qtk_mamba *m;
    qtk_mamba_state s;
} cpu_lm;

static qtk_status cpu_windows(void *ud, const int32_t *tokens, int B, int L, float *logits) {
    cpu_lm *c = ud;
    if (c->s.B != B) {
        qtk_mamba_state_free(&c->s);
        QTK_TRY(qtk_mamba_state_init(&c->s, c->m, B));
    } else qtk_mamba_state_reset(&c->s);
    return qtk_mamba_prefill(c->m, &c->s, tokens, L, logits, QTK_SCAN_AUTO);
}

qtk_status qtk_mamba_perplexity(const qtk_mamba *m, const int32_t *tokens, size_t n, int ctx, int stride, int max_windows,
                                int batch, double *ppl, size_t *n_scored) {
    cpu_lm c = {m, {0}};
    qtk_status st = qtk_lm_perplexity(cpu_windows, &c, m->cfg.vocab, tokens, n, ctx, stride, max_windows, batch, ppl, n_scored);
    qtk_mamba_state_free(&c.s);
    return st;
}

qtk_status qtk_lm_perplexity(qtk_lm_windows_fn fwd, void *ud, int V, const int32_t *tokens, size_t n, int ctx, int stride,
                             int max_windows, int batch, double *ppl, size_t *n_scored) {
    *ppl = NAN;
    *n_scored = 0;
    if (ctx < 2 || stride < 1 || stride > ctx || batch < 1)
        return qtk_fail(QTK_ERR_ARG, "perplexity: context %d (at least 2), stride %d (1..context), batch %d", ctx, stride,
                        batch);
    if (n < 2) return qtk_fail(QTK_ERR_ARG, "perplexity needs at least 2 tokens, got %zu", n);
    // the windows: begin, length, and how many of their last positions are scored
    size_t cap = n / (size_t)stride + 2, nw = 0, prev_end = 0;
    size_t *beg = malloc(cap * sizeof *beg), *len = malloc(cap * sizeof *len), *trg = malloc(cap * sizeof *trg);
    int32_t *buf = malloc((size_t)batch * ctx * sizeof *buf);
    float *logits = malloc((size_t)batch * ctx * V * sizeof *logits);
    qtk_status st = beg && len && trg && buf && logits ? QTK_OK : qtk_fail(QTK_ERR_NOMEM, "perplexity: out of memory");
    for (size_t b = 0; st == QTK_OK && b < n && (max_windows <= 0 || nw < (size_t)max_windows); b += (size_t)stride) {
        size_t end = b + (size_t)ctx < n ? b + (size_t)ctx : n;
        if (end - b < 2) break;
        beg[nw] = b;
        len[nw] = end - b;
        trg[nw] = end - prev_end; // positions prev_end..end-1, each predicted from its predecessor in the window
        if (trg[nw] > len[nw] - 1) trg[nw] = len[nw] - 1;
        prev_end = end;
        nw++;
        if (end == n) break;
    }
    double nll = 0;
    size_t scored = 0;
    for (size_t w0 = 0; st == QTK_OK && w0 < nw;) {
        // windows of one length run together (all but possibly the last have length ctx)
        size_t w1 = w0;
        while (w1 < nw && w1 - w0 < (size_t)batch && len[w1] == len[w0]) w1++;
        const int B = (int)(w1 - w0), L = (int)len[w0];
        for (int i = 0; i < B; i++) memcpy(buf + (size_t)i * L, tokens + beg[w0 + i], (size_t)L * sizeof *buf);
        st = fwd(ud, buf, B, L, logits);
        for (int i = 0; st == QTK_OK && i < B; i++)
            for (int t = L - (int)trg[w0 + i]; t < L; t++) {
                // cross entropy of token t given the logits at t - 1, in double
                const float *lg = logits + ((size_t)i * L + t - 1) * V;
                double mx = lg[0], se = 0;
                for (int v = 1; v < V; v++) mx = lg[v] > mx ? lg[v] : mx;
                for (int v = 0; v < V; v++) se += exp((double)lg[v] - mx);
                nll += mx + log(se) - lg[buf[(size_t)i * L + t]];
                scored++;
            }
        w0 = w1;
    }
    free(beg);
    free(len);
    free(trg);
    free(buf);
    free(logits);
    if (st == QTK_OK) {
        *ppl = exp(nll / (double)scored);
        *n_scored = scored;
    }
    return st;
}

int32_t qtk_sample_token(const float *logits, int V, int top_k, float temperature, double u) {
    int best = 0;
    for (int v = 1; v < V; v++)
        if (logits[v] > logits[best]) best = v;
    if (top_k <= 1 || temperature <= 0) return best;
    if (top_k > V) top_k = V;
    // the top_k largest (ties: lower id first), then softmax at temperature T over them
    int *idx = malloc((size_t)top_k * sizeof *idx);
    if (!idx) return best;
    int k = 0;
    for (int v = 0; v < V; v++) {
        if (k == top_k && !(logits[v] > logits[idx[k - 1]])) continue;
        int pos = k < top_k ? k++ : top_k - 1; // a free slot, or the smallest kept one
        while (pos > 0 && logits[v] > logits[idx[pos - 1]]) {
            idx[pos] = idx[pos - 1];
            pos--;
        }
        idx[pos] = v;
    }
    double z = 0, acc = 0;
    for (int i = 0; i < top_k; i++) z += exp(((double)logits[idx[i]] - logits[idx[0]]) / temperature);
    int32_t pick = idx[top_k - 1];
    for (int i = 0; i < top_k; i++) {
        acc += exp(((double)logits[idx[i]] - logits[idx[0]]) / temperature) / z;
        if (u < acc) {
            pick = idx[i];
            break;
        }
    }
    free(idx);
    return pick;
}
