/* cpu/rnn.c: one time step of a recurrent layer, forward and backward
 * (the fronts in rnn.c run the products and call these once per step).
 * Formulas: math/rnn.h. The float32 LSTM, the layer the benchmark and the
 * lesson time, has loops of its own over a row's units, written as the
 * element function computes them (same float32 activations, cell
 * arithmetic in double) so that the compiler vectorises them; every
 * other case goes element by element through math/rnn.h. */
#include "cpu/cpu.h"
#include "math/rnn.h"

/* The activations run as loops of their own over contiguous runs (gates
   i and f, then g, then o; tanh(c)), which the compiler vectorises (inside
   the no-trapping-math region of math/, or they would not inline); the
   cell's arithmetic, in double as the element function does it, is a
   plain loop beside them. Every value is the element function's: a float
   sum is the exact sum rounded once, as the element function's double
   sum converted to float. */
static inline __attribute__((always_inline)) void sigmoid_run(int64_t n, float *x) {
  for (int64_t k = 0; k < n; k++) x[k] = nn_sigmoid_select_f32(x[k]);
}
static inline __attribute__((always_inline)) void tanh_run(int64_t n, const float *x, float *out) {
  for (int64_t k = 0; k < n; k++) out[k] = nn_tanh_select_f32(x[k]);
}

/* Rows [first, last) of a step. Each row writes only its own values, so
   the pool cuts the rows among threads (nn_cpu_rnn_step) with the same
   bits; each is compiled for baseline x86-64, AVX2 and AVX-512
   (NN_CPU_CLONES: the same C without contraction, so the same bits, more
   floats an instruction; the run helpers above are inlined into each). */
NN_CPU_CLONES static void lstm_forward_f32(const void *ctx, int64_t first, int64_t last) {
  const nn_rnn_step_args *a = ctx;
  int64_t H = a->hidden;
  for (int64_t r = first; r < last; r++) {
    const float *xg = (const float *)a->xg + r * 4 * H, *hg = (const float *)a->hg + r * 4 * H;
    float *act = (float *)a->act + r * 4 * H;
    float *h = (float *)a->h + r * H, *c = (float *)a->c + r * H;
    float *h_seq = (float *)a->h_seq + r * H, *c_seq = (float *)a->c_seq + r * H;
    float *h_prev = (float *)a->h_prev + r * H, *c_prev = (float *)a->c_prev + r * H;
    for (int64_t j = 0; j < 4 * H; j++) act[j] = xg[j] + hg[j];
    sigmoid_run(2 * H, act);
    tanh_run(H, act + 2 * H, act + 2 * H);
    sigmoid_run(H, act + 3 * H);
    for (int64_t k = 0; k < H; k++) {
      float cp = c[k];
      c_prev[k] = cp;
      h_prev[k] = h[k];
      c[k] = c_seq[k] = (float)nn_lstm_cell_state(act[k], act[H + k], act[2 * H + k], cp);
    }
    tanh_run(H, c, h_seq);
    for (int64_t k = 0; k < H; k++) h[k] = h_seq[k] = (float)(act[3 * H + k] * (double)h_seq[k]);
  }
}

NN_CPU_CLONES static void lstm_backward_f32(const void *ctx, int64_t first, int64_t last) {
  const nn_rnn_step_args *a = ctx;
  int64_t H = a->hidden;
  for (int64_t r = first; r < last; r++) {
    const float *act = (const float *)a->act + r * 4 * H;
    const float *c_seq = (const float *)a->c_seq + r * H, *c_prev = (const float *)a->c_prev + r * H;
    const float *g_seq = (const float *)a->g_seq + r * H, *dh = (const float *)a->dh + r * H;
    float *dc = (float *)a->dc + r * H, *dxg = (float *)a->dxg + r * 4 * H;
    float *tc = dxg + 3 * H; /* tanh(c) waits where its unit's o gradient goes */
    tanh_run(H, c_seq, tc);
    for (int64_t k = 0; k < H; k++) {
      double d[4];
      double dcp = nn_lstm_cell_backward(act[k], act[H + k], act[2 * H + k], act[3 * H + k], tc[k],
                                         c_prev[k], (double)dh[k] + g_seq[k], dc[k], d);
      dxg[k] = (float)d[0], dxg[H + k] = (float)d[1], dxg[2 * H + k] = (float)d[2];
      dxg[3 * H + k] = (float)d[3];
      dc[k] = (float)dcp;
    }
  }
}

/* A row's work, in the pool's elements: the four activations (an exp and
   a division each) and the cell's arithmetic weigh about eight plain
   elementwise operations per gate value. */
static int64_t lstm_row_cost(const nn_rnn_step_args *a) { return 8 * 4 * a->hidden; }

int nn_cpu_rnn_step(const nn_rnn_step_args *a) {
  if (a->mode == NN_RNN_LSTM && a->dtype == NN_FLOAT32) {
    nn_parallel_for(a->rows, lstm_row_cost(a), 1, lstm_forward_f32, a);
    return 0;
  }
  for (int64_t r = 0; r < a->rows; r++)
    for (int64_t k = 0; k < a->hidden; k++) nn_rnn_step_element(a, r, k);
  return 0;
}

int nn_cpu_rnn_step_backward(const nn_rnn_step_args *a) {
  if (a->mode == NN_RNN_LSTM && a->dtype == NN_FLOAT32) {
    nn_parallel_for(a->rows, lstm_row_cost(a), 1, lstm_backward_f32, a);
    return 0;
  }
  for (int64_t r = 0; r < a->rows; r++)
    for (int64_t k = 0; k < a->hidden; k++) nn_rnn_step_backward_element(a, r, k);
  return 0;
}
