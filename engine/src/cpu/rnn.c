/* cpu/rnn.c: one time step of a recurrent layer, forward and backward
 * (the fronts in rnn.c run the products and call these once per step).
 * Formulas: math/rnn.h. The float32 LSTM, the layer the benchmark and the
 * lesson time, has loops of its own over a row's units, written as the
 * element function computes them (same float32 activations, cell
 * arithmetic in double) so that the compiler vectorises them; every
 * other case goes element by element through math/rnn.h. */
#include "cpu/cpu.h"
#include "math/rnn.h"

static void lstm_forward_f32(const nn_rnn_step_args *a) {
  int64_t H = a->hidden;
  for (int64_t r = 0; r < a->rows; r++) {
    const float *xg = (const float *)a->xg + r * 4 * H, *hg = (const float *)a->hg + r * 4 * H;
    float *act = (float *)a->act + r * 4 * H;
    float *h = (float *)a->h + r * H, *c = (float *)a->c + r * H;
    float *h_seq = (float *)a->h_seq + r * H, *c_seq = (float *)a->c_seq + r * H;
    float *h_prev = (float *)a->h_prev + r * H, *c_prev = (float *)a->c_prev + r * H;
    for (int64_t k = 0; k < H; k++) {
      act[k] = nn_sigmoid_select_f32(xg[k] + hg[k]);
      act[H + k] = nn_sigmoid_select_f32(xg[H + k] + hg[H + k]);
      act[2 * H + k] = nn_tanh_select_f32(xg[2 * H + k] + hg[2 * H + k]);
      act[3 * H + k] = nn_sigmoid_select_f32(xg[3 * H + k] + hg[3 * H + k]);
    }
    for (int64_t k = 0; k < H; k++) {
      float cp = c[k];
      c_prev[k] = cp;
      h_prev[k] = h[k];
      float cn = (float)nn_lstm_cell_state(act[k], act[H + k], act[2 * H + k], cp);
      float hn = (float)(act[3 * H + k] * (double)nn_tanh_select_f32(cn));
      c[k] = c_seq[k] = cn;
      h[k] = h_seq[k] = hn;
    }
  }
}

static void lstm_backward_f32(const nn_rnn_step_args *a) {
  int64_t H = a->hidden;
  for (int64_t r = 0; r < a->rows; r++) {
    const float *act = (const float *)a->act + r * 4 * H;
    const float *c_seq = (const float *)a->c_seq + r * H, *c_prev = (const float *)a->c_prev + r * H;
    const float *g_seq = (const float *)a->g_seq + r * H, *dh = (const float *)a->dh + r * H;
    float *dc = (float *)a->dc + r * H, *dxg = (float *)a->dxg + r * 4 * H;
    for (int64_t k = 0; k < H; k++) {
      double d[4];
      double tc = nn_tanh_select_f32(c_seq[k]);
      double dcp = nn_lstm_cell_backward(act[k], act[H + k], act[2 * H + k], act[3 * H + k], tc,
                                         c_prev[k], (double)((double)dh[k] + g_seq[k]), dc[k], d);
      dxg[k] = (float)d[0], dxg[H + k] = (float)d[1], dxg[2 * H + k] = (float)d[2];
      dxg[3 * H + k] = (float)d[3];
      dc[k] = (float)dcp;
    }
  }
}

int nn_cpu_rnn_step(const nn_rnn_step_args *a) {
  if (a->mode == NN_RNN_LSTM && a->dtype == NN_FLOAT32) {
    lstm_forward_f32(a);
    return 0;
  }
  for (int64_t r = 0; r < a->rows; r++)
    for (int64_t k = 0; k < a->hidden; k++) nn_rnn_step_element(a, r, k);
  return 0;
}

int nn_cpu_rnn_step_backward(const nn_rnn_step_args *a) {
  if (a->mode == NN_RNN_LSTM && a->dtype == NN_FLOAT32) {
    lstm_backward_f32(a);
    return 0;
  }
  for (int64_t r = 0; r < a->rows; r++)
    for (int64_t k = 0; k < a->hidden; k++) nn_rnn_step_backward_element(a, r, k);
  return 0;
}
