// PNG plots through gnuplot, when it is installed (Debian: gnuplot-nox).
// Each plot also leaves its gnuplot script (data inline) beside the PNG, so
// it can be restyled and re-run by hand.
#ifndef QTK_PLOT_H
#define QTK_PLOT_H

// 1 when a gnuplot executable is on PATH (QTK_GNUPLOT overrides the name).
int qtk_plot_available(void);

// loss.png / loss.gp in a run folder, from its log.jsonl: the infoNCE loss
// after every block step (the last line of a step wins when a resumed run
// repeated it), and the test top-1 where the run validated. 0 ok, -1 with a
// message in qtk_last_error().
int qtk_plot_run_loss(const char *run_dir);

typedef struct {
    int w_bits, a_bits;
    double fp, base, searched;             // means over the setting's finished runs
    double fp_sd, base_sd, searched_sd;    // their standard deviations (0 for one run): error bars
} qtk_plot_bits_row;

// Top-1 against weight bits: FP32, baseline and Evol-Q; script at png with .gp.
int qtk_plot_bits(const char *png, const qtk_plot_bits_row *rows, int n);

#endif
