/* math/rnn.h: one step of the recurrent cells, element by element, forward
 * and backward, in PyTorch 1.13's gate order (its RNN/LSTM/GRU docs):
 *   Elman RNN:  h = tanh(x + h') or relu(x + h')
 *   LSTM (Hochreiter and Schmidhuber 1997, with Gers et al.'s forget gate):
 *               i, f, o = sigmoid(.), g = tanh(.), c = f c' + i g, h = o tanh(c)
 *   GRU (Cho et al. 2014, PyTorch's form: r gates the hidden product):
 *               r, z = sigmoid(.), n = tanh(x_n + r hn), h = (1 - z) n + z h'
 * where x is the input's product (b_ih included), hn (and every hidden
 * pre-activation) the hidden state's product with b_hh included, and '
 * marks the previous step. The cell arithmetic is in double; the sigmoid
 * and tanh come in a float32 form (branch-free, so that the CPU loop over
 * a row vectorises) and a double one, chosen by the caller's dtype. */
#ifndef NN_MATH_RNN_H
#define NN_MATH_RNN_H

#include "backend.h" /* nn_rnn_step_args: the element functions at the end read it */
#include "math/common.h"
#include "math/dtype.h"
#include "math/elementwise.h"
#include "math/exp.h"

/* tanh(x) = s (1 - e) / (1 + e), e = exp(-2|x|), s the sign; below
   |x| = 1/8 its Taylor series to x^7 (error under 1e-9 relative), where
   1 - e would cancel. */
NN_HD static inline float nn_tanh_select_f32(float x) {
  float a = x < 0 ? -x : x;
  float e = nn_exp_f32(-2.0f * a);
  float big = (1.0f - e) / (1.0f + e);
  float a2 = a * a;
  float small = a * (1.0f + a2 * (-1.0f / 3 + a2 * (2.0f / 15 + a2 * (-17.0f / 315))));
  float r = a < 0.125f ? small : big;
  r = x < 0 ? -r : r;
  return x == x ? r : x;
}

NN_HD static inline double nn_rnn_sigmoid(nn_dtype dtype, double x) {
  return dtype == NN_FLOAT32 ? (double)nn_sigmoid_select_f32((float)x) : nn_sigmoid(x);
}
NN_HD static inline double nn_rnn_tanh(nn_dtype dtype, double x) {
  return dtype == NN_FLOAT32 ? (double)nn_tanh_select_f32((float)x) : tanh(x);
}

/* ---- Elman ---------------------------------------------------------- */
NN_HD static inline double nn_rnn_cell(nn_dtype dtype, int relu, double pre) {
  return relu ? (pre > 0 ? pre : (pre != pre ? pre : 0)) : nn_rnn_tanh(dtype, pre);
}
/* d pre from dh and the step's output h */
NN_HD static inline double nn_rnn_cell_backward(int relu, double h, double dh) {
  return relu ? (h > 0 ? dh : 0) : dh * (1 - h * h);
}

/* ---- LSTM: the gates already activated ------------------------------ */
NN_HD static inline double nn_lstm_cell_state(double i, double f, double g, double c_prev) {
  return f * c_prev + i * g;
}
/* From dh and dc (the gradients of the new h and c) and tc = tanh(c):
   the gates' pre-activation gradients d[0..3] (i f g o) and, returned,
   the gradient of the previous c. */
NN_HD static inline double nn_lstm_cell_backward(double i, double f, double g, double o, double tc,
                                                 double c_prev, double dh, double dc, double *d) {
  double dct = dc + dh * o * (1 - tc * tc);
  d[0] = dct * g * i * (1 - i);
  d[1] = dct * c_prev * f * (1 - f);
  d[2] = dct * i * (1 - g * g);
  d[3] = dh * tc * o * (1 - o);
  return dct * f;
}

/* ---- GRU: r, z, n activated, hn the hidden product of the n gate ---- */
NN_HD static inline double nn_gru_hidden(double z, double n, double h_prev) {
  return (1 - z) * n + z * h_prev;
}
/* From dh: the gradients of the input's pre-activations dx[0..2] (r z n)
   and of the hidden ones dhid[0..2] (they differ in n: r hn); returned,
   the part of the previous h's gradient that does not pass through the
   hidden product (z dh). */
NN_HD static inline double nn_gru_cell_backward(double r, double z, double n, double hn,
                                                double h_prev, double dh, double *dx,
                                                double *dhid) {
  double dn = dh * (1 - z) * (1 - n * n);
  double dr = dn * hn * r * (1 - r);
  double dz = dh * (h_prev - n) * z * (1 - z);
  dx[0] = dhid[0] = dr;
  dx[1] = dhid[1] = dz;
  dx[2] = dn;
  dhid[2] = dn * r;
  return dh * z;
}

/* ---- one element (row r, unit k) of a step, as both backends run it --
   (the argument block is backend.h's; the CPU's float32 LSTM has a loop
   of its own in cpu/rnn.c that computes the same expressions) */
NN_HD static inline void nn_rnn_step_element(const nn_rnn_step_args *a, int64_t r, int64_t k) {
  nn_dtype dt = a->dtype;
  int64_t H = a->hidden, hi = r * H + k;
  if (a->mode == NN_RNN_LSTM) {
    int64_t gi = r * 4 * H + k;
    double pre[4];
    for (int q = 0; q < 4; q++) pre[q] = nn_load(dt, a->xg, gi + q * H) + nn_load(dt, a->hg, gi + q * H);
    double i = nn_rnn_sigmoid(dt, pre[0]), f = nn_rnn_sigmoid(dt, pre[1]);
    double g = nn_rnn_tanh(dt, pre[2]), o = nn_rnn_sigmoid(dt, pre[3]);
    double c_prev = nn_load(dt, a->c, hi);
    nn_store(dt, a->c_prev, hi, c_prev);
    nn_store(dt, a->h_prev, hi, nn_load(dt, a->h, hi));
    double c = nn_lstm_cell_state(i, f, g, c_prev);
    double h = o * nn_rnn_tanh(dt, c);
    nn_store(dt, a->act, gi, i), nn_store(dt, a->act, gi + H, f);
    nn_store(dt, a->act, gi + 2 * H, g), nn_store(dt, a->act, gi + 3 * H, o);
    nn_store(dt, a->c, hi, c), nn_store(dt, a->c_seq, hi, c);
    nn_store(dt, a->h, hi, h), nn_store(dt, a->h_seq, hi, h);
  } else if (a->mode == NN_RNN_GRU) {
    int64_t gi = r * 3 * H + k, ai = r * 4 * H + k;
    double h_prev = nn_load(dt, a->h, hi), hn = nn_load(dt, a->hg, gi + 2 * H);
    double rg = nn_rnn_sigmoid(dt, nn_load(dt, a->xg, gi) + nn_load(dt, a->hg, gi));
    double z = nn_rnn_sigmoid(dt, nn_load(dt, a->xg, gi + H) + nn_load(dt, a->hg, gi + H));
    double n = nn_rnn_tanh(dt, nn_load(dt, a->xg, gi + 2 * H) + rg * hn);
    double h = nn_gru_hidden(z, n, h_prev);
    nn_store(dt, a->h_prev, hi, h_prev);
    nn_store(dt, a->act, ai, rg), nn_store(dt, a->act, ai + H, z);
    nn_store(dt, a->act, ai + 2 * H, n), nn_store(dt, a->act, ai + 3 * H, hn);
    nn_store(dt, a->h, hi, h), nn_store(dt, a->h_seq, hi, h);
  } else {
    double h = nn_rnn_cell(dt, a->mode == NN_RNN_RELU, nn_load(dt, a->xg, hi) + nn_load(dt, a->hg, hi));
    nn_store(dt, a->h_prev, hi, nn_load(dt, a->h, hi));
    nn_store(dt, a->act, hi, h);
    nn_store(dt, a->h, hi, h), nn_store(dt, a->h_seq, hi, h);
  }
}

NN_HD static inline void nn_rnn_step_backward_element(const nn_rnn_step_args *a, int64_t r,
                                                      int64_t k) {
  nn_dtype dt = a->dtype;
  int64_t H = a->hidden, hi = r * H + k;
  double dh = nn_load(dt, a->dh, hi) + nn_load(dt, a->g_seq, hi);
  if (a->mode == NN_RNN_LSTM) {
    int64_t gi = r * 4 * H + k;
    double i = nn_load(dt, a->act, gi), f = nn_load(dt, a->act, gi + H);
    double g = nn_load(dt, a->act, gi + 2 * H), o = nn_load(dt, a->act, gi + 3 * H);
    double tc = nn_rnn_tanh(dt, nn_load(dt, a->c_seq, hi)), d[4];
    double dc = nn_lstm_cell_backward(i, f, g, o, tc, nn_load(dt, a->c_prev, hi), dh,
                                      nn_load(dt, a->dc, hi), d);
    for (int q = 0; q < 4; q++) nn_store(dt, a->dxg, gi + q * H, d[q]);
    nn_store(dt, a->dc, hi, dc);
  } else if (a->mode == NN_RNN_GRU) {
    int64_t gi = r * 3 * H + k, ai = r * 4 * H + k;
    double dx[3], dhid[3];
    double direct = nn_gru_cell_backward(nn_load(dt, a->act, ai), nn_load(dt, a->act, ai + H),
                                         nn_load(dt, a->act, ai + 2 * H), nn_load(dt, a->act, ai + 3 * H),
                                         nn_load(dt, a->h_prev, hi), dh, dx, dhid);
    for (int q = 0; q < 3; q++) {
      nn_store(dt, a->dxg, gi + q * H, dx[q]);
      nn_store(dt, a->dhg, gi + q * H, dhid[q]);
    }
    nn_store(dt, a->dh, hi, direct);
  } else {
    nn_store(dt, a->dxg, hi, nn_rnn_cell_backward(a->mode == NN_RNN_RELU, nn_load(dt, a->act, hi), dh));
  }
}

#endif
