/* test_tensor.c: the tensor core through the public API (nn.h): views and
 * the storage they share, broadcasting, creation, dtype conversion, element
 * access and reference counting.
 *
 * Expected strides, sizes and values are PyTorch's for the same calls
 * (e.g. torch.arange(24.).view(2,3,4).transpose(0,2).stride() == (1,4,12)).
 * Every tensor made here is released; main checks that the storage in use
 * comes back to where it started. */
#include "check.h"

#include <stdint.h>

/* t's strides and offset are exactly these. */
static int check_geometry_at(const nn_tensor *t, int ndim, const int64_t *stride, int64_t offset,
                             const char *file, int line, const char *what) {
  if (!t) return check_at(0, file, line, "%s: no tensor", what);
  int ok = t->ndim == ndim && t->offset == offset;
  for (int i = 0; ok && i < ndim; i++) ok = t->stride[i] == stride[i];
  char got[160];
  size_t used = (size_t)snprintf(got, sizeof got, "offset %lld strides", (long long)t->offset);
  for (int i = 0; i < t->ndim && used < sizeof got; i++)
    used += (size_t)snprintf(got + used, sizeof got - used, " %lld", (long long)t->stride[i]);
  return check_at(ok, file, line, "%s: %s, expected offset %lld", what, got, (long long)offset);
}
#define CHECK_GEOMETRY(t, offset, ndim, ...) \
  check_geometry_at((t), (ndim), SZ(__VA_ARGS__), (offset), __FILE__, __LINE__, #t)

/* 0, 1, 2, ... n-1 in the given dtype and shape, contiguous. */
static nn_tensor *ramp(nn_dtype dtype, int ndim, const int64_t *size) {
  int64_t n = 1;
  for (int i = 0; i < ndim; i++) n *= size[i];
  nn_tensor *flat = nn_arange(0, (double)n, 1, dtype);
  if (!flat) return NULL;
  nn_tensor *t = nn_view(flat, ndim, size);
  nn_release(flat);
  return t;
}

/* ---- views ------------------------------------------------------------ */
static void test_view_reshape(void) {
  nn_tensor *base = OK(nn_arange(0, 24, 1, NN_FLOAT64));
  if (!base) return;
  nn_tensor *v = OK(nn_view(base, 3, SZ(2, 3, 4)));
  if (v) {
    CHECK_SHAPE(v, 3, 2, 3, 4);
    CHECK_GEOMETRY(v, 0, 3, 12, 4, 1);
    CHECK(v->storage == base->storage);
    CHECK(nn_is_contiguous(v));
    nn_set_flat(v, 5, 100);
    CHECK(nn_get_flat(base, 5) == 100);
    CHECK(nn_get(v, SZ(1, 2, 3)) == 23);
  }
  nn_tensor *inferred = OK(nn_view(base, 2, SZ(-1, 4)));
  CHECK_SHAPE(inferred, 2, 6, 4);
  CHECK_GEOMETRY(inferred, 0, 2, 4, 1);
  nn_release(inferred);
  CHECK_FAILS(nn_view(base, 2, SZ(5, 5)), "view");
  CHECK_FAILS(nn_view(base, 2, SZ(-1, -1)), "-1");
  CHECK_FAILS(nn_view(base, 2, SZ(-1, 5)), "view");
  CHECK_FAILS(nn_view(base, 2, SZ(-2, -12)), "view");

  nn_tensor *r = OK(nn_reshape(base, 2, SZ(4, 6)));
  if (r) {
    CHECK(r->storage == base->storage);
    CHECK(nn_is_contiguous(r));
    CHECK_GEOMETRY(r, 0, 2, 6, 1);
    nn_set_flat(r, 7, -7);
    CHECK(nn_get_flat(base, 7) == -7);
    nn_fill_(r, 3);
    CHECK(nn_get_flat(base, 0) == 3 && nn_get_flat(base, 23) == 3);
  }
  /* a view of a view, offset kept */
  nn_tensor *row = OK(nn_select(v, 0, 1));
  nn_tensor *flat_row = row ? OK(nn_view(row, 1, SZ(12))) : NULL;
  if (flat_row) {
    CHECK_GEOMETRY(flat_row, 12, 1, 1);
    nn_set_flat(flat_row, 0, 42);
    CHECK(nn_get_flat(base, 12) == 42);
  }
  nn_release(flat_row);
  nn_release(row);
  nn_release(r);
  nn_release(v);
  nn_release(base);
}

static void test_transpose_permute(void) {
  nn_tensor *v = OK(ramp(NN_FLOAT64, 3, SZ(2, 3, 4)));
  if (!v) return;
  nn_tensor *t = OK(nn_transpose(v, 0, 2));
  if (t) {
    CHECK_SHAPE(t, 3, 4, 3, 2);
    CHECK_GEOMETRY(t, 0, 3, 1, 4, 12);
    CHECK(t->storage == v->storage);
    CHECK(!nn_is_contiguous(t));
    int ok = 1;
    for (int64_t i = 0; i < 4; i++)
      for (int64_t j = 0; j < 3; j++)
        for (int64_t k = 0; k < 2; k++)
          ok &= nn_get(t, SZ(i, j, k)) == nn_get(v, SZ(k, j, i));
    CHECKF(ok, "transpose: t[i,j,k] == v[k,j,i]");
    /* flat index of t[1,2,1] is 1*6 + 2*2 + 1 = 11; it lives at 1*12 + 2*4 + 1 */
    nn_set_flat(t, 11, -21);
    CHECK(nn_get_flat(v, 21) == -21);
    CHECK(nn_get_flat(t, 11) == -21);
  }
  nn_tensor *neg = OK(nn_transpose(v, -1, -3)); /* negative dims wrap */
  if (neg && t) CHECK(neg->stride[0] == 1 && neg->stride[2] == 12 && neg->size[0] == 4);
  nn_release(neg);
  nn_tensor *same_dim = OK(nn_transpose(v, 1, 1));
  if (same_dim) CHECK(nn_is_contiguous(same_dim));
  nn_release(same_dim);
  CHECK_FAILS(nn_transpose(v, 0, 3), "dimension");

  nn_tensor *p = OK(nn_permute(v, (const int[]){2, 0, 1}));
  if (p) {
    CHECK_SHAPE(p, 3, 4, 2, 3);
    CHECK_GEOMETRY(p, 0, 3, 1, 12, 4);
    CHECK(!nn_is_contiguous(p));
    /* write a fresh ramp through the permuted view with nn_copy_ */
    nn_tensor *src = OK(ramp(NN_FLOAT64, 3, SZ(4, 2, 3)));
    if (src) {
      CHECK_STATUS_OK(nn_copy_(p, src));
      int ok = 1;
      for (int64_t i = 0; i < 4; i++)
        for (int64_t j = 0; j < 2; j++)
          for (int64_t k = 0; k < 3; k++)
            ok &= nn_get(v, SZ(j, k, i)) == (double)(i * 6 + j * 3 + k);
      CHECKF(ok, "permute + copy_: v[j,k,i] == src[i,j,k]");
    }
    nn_release(src);
  }
  nn_release(p);
  nn_tensor *ident = OK(nn_permute(v, (const int[]){0, 1, 2}));
  if (ident) CHECK(nn_is_contiguous(ident) && ident->storage == v->storage);
  nn_release(ident);
  CHECK_FAILS(nn_permute(v, (const int[]){0, 0, 1}), "twice");
  CHECK_FAILS(nn_permute(v, (const int[]){0, 1, 3}), "dimension");

  /* transpose of a 1-D tensor and of a 0-dim one are the same tensor */
  nn_tensor *vec = OK(nn_arange(0, 3, 1, NN_FLOAT32));
  nn_tensor *vt = vec ? OK(nn_transpose(vec, 0, 0)) : NULL;
  if (vt) CHECK(vt->ndim == 1 && vt->size[0] == 3 && nn_is_contiguous(vt));
  nn_release(vt);
  nn_release(vec);
  nn_release(t);
  nn_release(v);
}

static void test_narrow_select(void) {
  nn_tensor *v = OK(ramp(NN_FLOAT64, 3, SZ(2, 3, 4)));
  if (!v) return;
  nn_tensor *n = OK(nn_narrow(v, 2, 1, 2));
  if (n) {
    CHECK_SHAPE(n, 3, 2, 3, 2);
    CHECK_GEOMETRY(n, 1, 3, 12, 4, 1);
    CHECK(!nn_is_contiguous(n));
    CHECK(n->storage == v->storage);
    CHECK_VALUES(n, 0, 1, 2, 5, 6, 9, 10, 13, 14, 17, 18, 21, 22);
    CHECK_STATUS_OK(nn_fill_(n, -1));
    int ok = 1;
    for (int64_t i = 0; i < 24; i++) {
      int64_t k = i % 4;
      ok &= nn_get_flat(v, i) == ((k == 1 || k == 2) ? -1 : (double)i);
    }
    CHECKF(ok, "narrow + fill_ changes exactly the narrowed columns");
  }
  nn_release(n);
  nn_tensor *n0 = OK(nn_narrow(v, 0, 1, 1));
  if (n0) {
    CHECK_SHAPE(n0, 3, 1, 3, 4);
    CHECK_GEOMETRY(n0, 12, 3, 12, 4, 1);
    CHECK(nn_is_contiguous(n0));
  }
  nn_release(n0);
  nn_tensor *empty = OK(nn_narrow(v, 1, 3, 0));
  if (empty) CHECK(nn_numel(empty) == 0);
  nn_release(empty);
  CHECK_FAILS(nn_narrow(v, 1, 2, 2), "narrow");
  CHECK_FAILS(nn_narrow(v, 1, -1, 1), "narrow");
  CHECK_FAILS(nn_narrow(v, 3, 0, 1), "dimension");

  nn_tensor *s = OK(nn_select(v, 1, 2));
  if (s) {
    CHECK_SHAPE(s, 2, 2, 4);
    CHECK_GEOMETRY(s, 8, 2, 12, 1);
    CHECK(!nn_is_contiguous(s));
    nn_set_flat(s, 5, 55); /* s[1,1] */
    CHECK(nn_get_flat(v, 8 + 12 + 1) == 55);
  }
  nn_release(s);
  nn_tensor *s_last = OK(nn_select(v, -1, 3));
  if (s_last) {
    CHECK_SHAPE(s_last, 2, 2, 3);
    CHECK_GEOMETRY(s_last, 3, 2, 12, 4);
  }
  /* select down to a 0-dim tensor */
  nn_tensor *s1 = s_last ? OK(nn_select(s_last, 0, 1)) : NULL;
  nn_tensor *s0 = s1 ? OK(nn_select(s1, 0, 2)) : NULL;
  if (s0) {
    CHECK_SCALAR_SHAPE(s0);
    CHECK(s0->offset == 12 + 8 + 3);
    CHECK(nn_is_contiguous(s0));
    double x = 0;
    CHECK_STATUS_OK(nn_item(s0, &x));
    CHECK(x == 23);
    CHECK_FAILS(nn_select(s0, 0, 0), "select");
    CHECK_FAILS(nn_narrow(s0, 0, 0, 1), "narrow");
  }
  nn_release(s0);
  nn_release(s1);
  nn_release(s_last);
  CHECK_FAILS(nn_select(v, 0, 2), "select");
  CHECK_FAILS(nn_select(v, 0, -1), "select");
  nn_release(v);
}

static void test_squeeze_unsqueeze_expand(void) {
  nn_tensor *v = OK(ramp(NN_FLOAT32, 3, SZ(2, 3, 4)));
  if (!v) return;
  nn_tensor *u = OK(nn_unsqueeze(v, 1));
  if (u) {
    CHECK_SHAPE(u, 4, 2, 1, 3, 4);
    CHECK_GEOMETRY(u, 0, 4, 12, 12, 4, 1);
    CHECK(nn_is_contiguous(u));
    CHECK(u->storage == v->storage);
    nn_set_flat(u, 13, -13);
    CHECK(nn_get_flat(v, 13) == -13);
  }
  nn_tensor *ulast = OK(nn_unsqueeze(v, -1));
  if (ulast) {
    CHECK_SHAPE(ulast, 4, 2, 3, 4, 1);
    CHECK_GEOMETRY(ulast, 0, 4, 12, 4, 1, 1);
  }
  nn_tensor *ufirst = OK(nn_unsqueeze(v, 0));
  if (ufirst) CHECK_GEOMETRY(ufirst, 0, 4, 24, 12, 4, 1);
  CHECK_FAILS(nn_unsqueeze(v, 4), "unsqueeze");
  CHECK_FAILS(nn_unsqueeze(v, -5), "unsqueeze");

  nn_tensor *sq = u ? OK(nn_squeeze(u, 1)) : NULL;
  if (sq) {
    CHECK_SHAPE(sq, 3, 2, 3, 4);
    CHECK_GEOMETRY(sq, 0, 3, 12, 4, 1);
  }
  nn_tensor *keep = OK(nn_squeeze(v, 0)); /* size 2: nothing dropped */
  CHECK_SHAPE(keep, 3, 2, 3, 4);
  nn_release(keep);

  /* squeeze every size-1 dim of a (1,3,1,4)-shaped narrow view */
  nn_tensor *n = OK(nn_narrow(v, 0, 1, 1));
  nn_tensor *n2 = n ? OK(nn_unsqueeze(n, 2)) : NULL;
  nn_tensor *all = n2 ? OK(nn_squeeze(n2, NN_ALL_DIMS)) : NULL;
  if (all) {
    CHECK_SHAPE(n2, 4, 1, 3, 1, 4);
    CHECK_SHAPE(all, 2, 3, 4);
    CHECK_GEOMETRY(all, 12, 2, 4, 1);
    CHECK(nn_is_contiguous(all));
    CHECK_STATUS_OK(nn_fill_(all, 7));
    CHECK(nn_get_flat(v, 11) == 11 && nn_get_flat(v, 12) == 7 && nn_get_flat(v, 23) == 7);
  }
  nn_release(all);
  nn_release(n2);
  nn_release(n);

  /* expand: (3,1) -> (3,4) and a new leading dim, with stride 0 */
  nn_tensor *col = OK(TENSOR(NN_FLOAT32, 2, SZ(3, 1), 1, 2, 3));
  nn_tensor *e = col ? OK(nn_expand(col, 2, SZ(3, 4))) : NULL;
  if (e) {
    CHECK_SHAPE(e, 2, 3, 4);
    CHECK_GEOMETRY(e, 0, 2, 1, 0);
    CHECK(!nn_is_contiguous(e));
    CHECK(e->storage == col->storage);
    CHECK_VALUES(e, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3);
    nn_set_flat(col, 1, 20);
    CHECK_VALUES(e, 0, 1, 1, 1, 1, 20, 20, 20, 20, 3, 3, 3, 3);
    nn_set_flat(e, 11, 30); /* writes the one element the last row shares */
    CHECK(nn_get_flat(col, 2) == 30);
  }
  nn_tensor *e3 = col ? OK(nn_expand(col, 3, SZ(2, -1, 5))) : NULL;
  if (e3) {
    CHECK_SHAPE(e3, 3, 2, 3, 5);
    CHECK_GEOMETRY(e3, 0, 3, 0, 1, 0);
  }
  if (e) {
    /* an expanded tensor views as long as the broadcast dim stays whole */
    nn_tensor *ev = OK(nn_view(e, 3, SZ(3, 2, 2)));
    if (ev) {
      CHECK_GEOMETRY(ev, 0, 3, 1, 0, 0);
      CHECK(ev->storage == col->storage);
    }
    nn_release(ev);
    CHECK_FAILS(nn_view(e, 1, SZ(12)), "view");
    nn_tensor *er = OK(nn_reshape(e, 1, SZ(12)));
    if (er) {
      CHECK(er->storage != col->storage);
      CHECK_VALUES(er, 0, 1, 1, 1, 1, 20, 20, 20, 20, 30, 30, 30, 30);
    }
    nn_release(er);
  }
  nn_tensor *same_shape = col ? OK(nn_expand(col, 2, SZ(3, 1))) : NULL;
  if (same_shape) CHECK(nn_is_contiguous(same_shape));
  nn_release(same_shape);
  if (col) {
    CHECK_FAILS(nn_expand(col, 2, SZ(4, 4)), "expand");
    CHECK_FAILS(nn_expand(col, 1, SZ(3)), "expand");
    CHECK_FAILS(nn_expand(col, 3, SZ(-1, 3, 4)), "expand");
  }
  /* a 0-dim tensor expands to anything */
  nn_tensor *s = OK(nn_full(NN_FLOAT64, 0, NULL, 2.5));
  nn_tensor *es = s ? OK(nn_expand(s, 2, SZ(2, 3))) : NULL;
  if (es) {
    CHECK_GEOMETRY(es, 0, 2, 0, 0);
    CHECK_VALUES(es, 0, 2.5, 2.5, 2.5, 2.5, 2.5, 2.5);
  }
  nn_tensor *us = s ? OK(nn_unsqueeze(s, 0)) : NULL;
  if (us) {
    CHECK_SHAPE(us, 1, 1);
    CHECK_GEOMETRY(us, 0, 1, 1);
  }
  nn_tensor *ss = us ? OK(nn_squeeze(us, NN_ALL_DIMS)) : NULL;
  if (ss) CHECK_SCALAR_SHAPE(ss);
  nn_tensor *ss0 = ss ? OK(nn_squeeze(ss, 0)) : NULL;
  if (ss0) CHECK_SCALAR_SHAPE(ss0);
  nn_release(ss0), nn_release(ss), nn_release(us);
  nn_release(es);
  nn_release(s);
  nn_release(e3);
  nn_release(e);
  nn_release(col);
  nn_release(sq);
  nn_release(ufirst);
  nn_release(ulast);
  nn_release(u);
  nn_release(v);
}

static void test_noncontiguous_reshape(void) {
  nn_tensor *m = OK(ramp(NN_FLOAT32, 2, SZ(3, 4)));
  nn_tensor *t = m ? OK(nn_transpose(m, 0, 1)) : NULL;
  if (!t) {
    nn_release(m);
    return;
  }
  /* view cannot: the message names view */
  CHECK_FAILS(nn_view(t, 1, SZ(12)), "view");
  CHECK_FAILS(nn_view(t, 2, SZ(3, 4)), "view");
  /* a view that only splits or adds size-1 dims works on the transpose */
  nn_tensor *split = OK(nn_view(t, 3, SZ(2, 2, 3)));
  if (split) {
    CHECK(split->storage == m->storage);
    CHECK_GEOMETRY(split, 0, 3, 2, 1, 4);
  }
  nn_release(split);

  nn_tensor *r = OK(nn_reshape(t, 1, SZ(12)));
  if (r) {
    CHECK(r->storage != m->storage);
    CHECK(nn_is_contiguous(r));
    CHECK_VALUES(r, 0, 0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11);
    nn_set_flat(m, 0, 99); /* a copy: later writes to the base do not show */
    CHECK(nn_get_flat(r, 0) == 0);
    nn_set_flat(r, 1, -4);
    CHECK(nn_get_flat(m, 4) == 4);
  }
  nn_release(r);
  nn_tensor *r2 = OK(nn_reshape(t, 2, SZ(-1, 6)));
  if (r2) {
    CHECK_SHAPE(r2, 2, 2, 6);
    CHECK_VALUES(r2, 0, 99, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11);
  }
  nn_release(r2);

  /* a column-narrowed matrix views when rows stay whole */
  nn_tensor *w = OK(ramp(NN_FLOAT64, 2, SZ(4, 6)));
  nn_tensor *nw = w ? OK(nn_narrow(w, 1, 1, 3)) : NULL; /* (4,3), strides (6,1), offset 1 */
  if (nw) {
    nn_tensor *a = OK(nn_view(nw, 3, SZ(2, 2, 3)));
    if (a) {
      CHECK_GEOMETRY(a, 1, 3, 12, 6, 1);
      CHECK_VALUES(a, 0, 1, 2, 3, 7, 8, 9, 13, 14, 15, 19, 20, 21);
    }
    nn_tensor *b1 = OK(nn_view(nw, 3, SZ(4, 3, 1)));
    if (b1) CHECK(b1->offset == 1 && b1->stride[0] == 6 && b1->stride[1] == 1);
    CHECK_FAILS(nn_view(nw, 1, SZ(12)), "view");
    CHECK_FAILS(nn_view(nw, 2, SZ(3, 4)), "view");
    nn_tensor *rr = OK(nn_reshape(nw, 2, SZ(3, 4)));
    if (rr) {
      CHECK(rr->storage != w->storage);
      CHECK_VALUES(rr, 0, 1, 2, 3, 7, 8, 9, 13, 14, 15, 19, 20, 21);
    }
    nn_release(rr), nn_release(b1), nn_release(a);
  }
  nn_release(nw), nn_release(w);

  nn_tensor *c = OK(nn_contiguous(t));
  if (c) {
    CHECK(c != t && c->storage != m->storage && nn_is_contiguous(c));
    CHECK_VALUES(c, 0, 99, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11);
  }
  nn_release(c);
  nn_tensor *cm = OK(nn_contiguous(m));
  CHECK(cm == m); /* already contiguous: the same tensor, retained */
  nn_release(cm);
  nn_tensor *cl = OK(nn_clone(m));
  if (cl) {
    CHECK(cl->storage != m->storage);
    nn_set_flat(cl, 1, -1);
    CHECK(nn_get_flat(m, 1) == 1);
  }
  nn_release(cl);
  nn_tensor *d = OK(nn_detach(t));
  if (d) {
    CHECK(d->storage == m->storage);
    CHECK_GEOMETRY(d, 0, 2, 1, 4);
  }
  nn_release(d);
  /* copy_ into a non-contiguous view, with broadcasting */
  nn_tensor *row = OK(TENSOR(NN_FLOAT64, 1, SZ(3), 10, 20, 30));
  if (row) {
    CHECK_STATUS_OK(nn_copy_(t, row)); /* t is (4,3): every row becomes 10,20,30 */
    CHECK_VALUES(m, 0, 10, 10, 10, 10, 20, 20, 20, 20, 30, 30, 30, 30);
    nn_tensor *bad = OK(nn_zeros(NN_FLOAT32, 1, SZ(4)));
    if (bad) CHECK_STATUS_FAILS(nn_copy_(t, bad), "broadcast");
    nn_tensor *big = OK(nn_zeros(NN_FLOAT32, 3, SZ(2, 4, 3)));
    if (big) CHECK_STATUS_FAILS(nn_copy_(t, big), "copy");
    nn_release(big);
    nn_release(bad);
  }
  nn_release(row);
  nn_release(t);
  nn_release(m);
}

/* ---- broadcasting ------------------------------------------------------ */
static void test_broadcasting(void) {
  nn_tensor *a = OK(TENSOR(NN_FLOAT32, 2, SZ(4, 1), 0, 1, 2, 3));
  nn_tensor *b = OK(TENSOR(NN_FLOAT32, 2, SZ(1, 3), 0, 10, 20));
  nn_tensor *ab = a && b ? OK(nn_binary(NN_ADD, a, b)) : NULL;
  if (ab) {
    CHECK_SHAPE(ab, 2, 4, 3);
    CHECK_VALUES(ab, 0, 0, 10, 20, 1, 11, 21, 2, 12, 22, 3, 13, 23);
  }
  nn_tensor *ba = a && b ? OK(nn_binary(NN_SUB, b, a)) : NULL;
  if (ba) {
    CHECK_SHAPE(ba, 2, 4, 3);
    CHECK_VALUES(ba, 0, 0, 10, 20, -1, 9, 19, -2, 8, 18, -3, 7, 17);
  }
  nn_release(ab), nn_release(ba), nn_release(a), nn_release(b);

  /* (3,) + (2,3) -> (2,3) */
  nn_tensor *v = OK(TENSOR(NN_FLOAT64, 1, SZ(3), 1, 2, 3));
  nn_tensor *m = OK(TENSOR(NN_FLOAT64, 2, SZ(2, 3), 10, 20, 30, 40, 50, 60));
  nn_tensor *vm = v && m ? OK(nn_binary(NN_ADD, v, m)) : NULL;
  if (vm) {
    CHECK_SHAPE(vm, 2, 2, 3);
    CHECK_VALUES(vm, 0, 11, 22, 33, 41, 52, 63);
  }
  nn_tensor *mv = v && m ? OK(nn_binary(NN_MUL, m, v)) : NULL;
  if (mv) {
    CHECK_SHAPE(mv, 2, 2, 3);
    CHECK_VALUES(mv, 0, 10, 40, 90, 40, 100, 180);
  }
  /* the same through a transposed (non-contiguous) (3,2) -> (2,3) operand */
  nn_tensor *m32 = OK(TENSOR(NN_FLOAT64, 2, SZ(3, 2), 10, 40, 20, 50, 30, 60));
  nn_tensor *mt = m32 ? OK(nn_transpose(m32, 0, 1)) : NULL;
  nn_tensor *vmt = mt && v ? OK(nn_binary(NN_ADD, v, mt)) : NULL;
  if (vmt) CHECK_VALUES(vmt, 0, 11, 22, 33, 41, 52, 63);
  nn_release(vmt), nn_release(mt), nn_release(m32);

  /* (2,1,3) + (4,1) -> (2,4,3) */
  nn_tensor *x = OK(ramp(NN_FLOAT64, 3, SZ(2, 1, 3)));     /* x[i,0,k] = 3i + k */
  nn_tensor *y = OK(TENSOR(NN_FLOAT64, 2, SZ(4, 1), 0, 100, 200, 300));
  nn_tensor *xy = x && y ? OK(nn_binary(NN_ADD, x, y)) : NULL;
  if (xy && CHECK_SHAPE(xy, 3, 2, 4, 3)) {
    int ok = 1;
    for (int64_t i = 0; i < 2; i++)
      for (int64_t j = 0; j < 4; j++)
        for (int64_t k = 0; k < 3; k++)
          ok &= nn_get(xy, SZ(i, j, k)) == (double)(3 * i + k + 100 * j);
    CHECKF(ok, "(2,1,3)+(4,1): xy[i,j,k] == x[i,0,k] + y[j,0]");
  }
  nn_tensor *yx = x && y ? OK(nn_binary(NN_SUB, y, x)) : NULL;
  if (yx && CHECK_SHAPE(yx, 3, 2, 4, 3)) {
    int ok = 1;
    for (int64_t i = 0; i < 2; i++)
      for (int64_t j = 0; j < 4; j++)
        for (int64_t k = 0; k < 3; k++)
          ok &= nn_get(yx, SZ(i, j, k)) == (double)(100 * j - 3 * i - k);
    CHECKF(ok, "(4,1)-(2,1,3): yx[i,j,k] == y[j,0] - x[i,0,k]");
  }
  nn_release(yx), nn_release(xy), nn_release(x), nn_release(y);

  /* 0-dim with anything, either side */
  nn_tensor *s = OK(nn_full(NN_FLOAT64, 0, NULL, 5));
  if (s && m) {
    nn_tensor *sm = OK(nn_binary(NN_SUB, s, m));
    if (sm) {
      CHECK_SHAPE(sm, 2, 2, 3);
      CHECK_VALUES(sm, 0, -5, -15, -25, -35, -45, -55);
    }
    nn_tensor *ms = OK(nn_binary(NN_DIV, m, s));
    if (ms) {
      CHECK_SHAPE(ms, 2, 2, 3);
      CHECK_VALUES(ms, 0, 2, 4, 6, 8, 10, 12);
    }
    nn_tensor *ss = OK(nn_binary(NN_MUL, s, s));
    if (ss) {
      CHECK_SCALAR_SHAPE(ss);
      CHECK_VALUES(ss, 0, 25);
    }
    nn_tensor *one = OK(nn_ones(NN_FLOAT64, 1, SZ(1)));
    nn_tensor *s1 = one ? OK(nn_binary(NN_ADD, s, one)) : NULL;
    if (s1) {
      CHECK_SHAPE(s1, 1, 1);
      CHECK_VALUES(s1, 0, 6);
    }
    nn_tensor *empty = OK(nn_zeros(NN_FLOAT64, 2, SZ(0, 3)));
    nn_tensor *se = empty ? OK(nn_binary(NN_ADD, s, empty)) : NULL;
    if (se) CHECK_SHAPE(se, 2, 0, 3);
    nn_release(se), nn_release(empty), nn_release(s1), nn_release(one);
    nn_release(ss), nn_release(ms), nn_release(sm);
  }
  nn_release(s);

  /* eight dims, alternating 1 and 2, against the opposite pattern */
  nn_tensor *p8 = OK(nn_full(NN_FLOAT32, 8, SZ(1, 2, 1, 2, 1, 2, 1, 2), 1));
  nn_tensor *q8 = OK(nn_full(NN_FLOAT32, 8, SZ(2, 1, 2, 1, 2, 1, 2, 1), 2));
  nn_tensor *pq = p8 && q8 ? OK(nn_binary(NN_ADD, p8, q8)) : NULL;
  if (pq && CHECK_SHAPE(pq, 8, 2, 2, 2, 2, 2, 2, 2, 2)) {
    int ok = 1;
    for (int64_t i = 0; i < 256; i++) ok &= nn_get_flat(pq, i) == 3;
    CHECKF(ok, "8-dim broadcast: every element is 3");
  }
  if (p8) CHECK_FAILS(nn_unsqueeze(p8, 0), "unsqueeze");
  nn_release(pq), nn_release(p8), nn_release(q8);

  /* a mismatch fails and names broadcasting */
  nn_tensor *four = OK(nn_ones(NN_FLOAT64, 1, SZ(4)));
  if (four && m) {
    CHECK_FAILS(nn_binary(NN_ADD, m, four), "broadcast");
    CHECK_FAILS(nn_binary(NN_MUL, four, m), "broadcast");
    CHECK_FAILS(nn_binary(NN_LT, m, four), "broadcast");
  }
  nn_release(four);
  nn_release(vm), nn_release(mv), nn_release(v), nn_release(m);
}

/* ---- creation ---------------------------------------------------------- */
static void test_creation(void) {
  for (int d = 0; d < NN_DTYPE_COUNT; d++) {
    nn_dtype dt = (nn_dtype)d;
    nn_tensor *z = OK(nn_zeros(dt, 2, SZ(2, 3)));
    nn_tensor *o = OK(nn_ones(dt, 3, SZ(1, 2, 2)));
    nn_tensor *f = OK(nn_full(dt, 1, SZ(3), 3));
    if (z) {
      CHECKF(z->dtype == dt, "zeros dtype %s", nn_dtype_name(dt));
      CHECK_SHAPE(z, 2, 2, 3);
      CHECK(nn_is_contiguous(z));
      CHECK_VALUES(z, 0, 0, 0, 0, 0, 0, 0);
    }
    if (o) {
      CHECKF(o->dtype == dt, "ones dtype %s", nn_dtype_name(dt));
      CHECK_VALUES(o, 0, 1, 1, 1, 1);
    }
    if (f) CHECK_VALUES(f, 0, dt == NN_BOOL ? 1 : 3, dt == NN_BOOL ? 1 : 3, dt == NN_BOOL ? 1 : 3);
    nn_release(z), nn_release(o), nn_release(f);
  }
  nn_tensor *f32 = OK(nn_full(NN_FLOAT32, 1, SZ(2), 0.1));
  if (f32) CHECK_VALUES(f32, 0, (float)0.1, (float)0.1);
  nn_release(f32);
  nn_tensor *scalar = OK(nn_full(NN_FLOAT64, 0, NULL, -1.5));
  if (scalar) {
    CHECK_SCALAR_SHAPE(scalar);
    CHECK(nn_numel(scalar) == 1);
    CHECK_VALUES(scalar, 0, -1.5);
  }
  nn_release(scalar);
  nn_tensor *empty = OK(nn_zeros(NN_FLOAT32, 2, SZ(0, 5)));
  if (empty) CHECK(nn_numel(empty) == 0 && nn_is_contiguous(empty));
  nn_release(empty);

  /* arange */
  nn_tensor *a = OK(nn_arange(0, 5, 1, NN_FLOAT32));
  if (a) {
    CHECK_SHAPE(a, 1, 5);
    CHECK(a->dtype == NN_FLOAT32);
    CHECK_VALUES(a, 0, 0, 1, 2, 3, 4);
  }
  nn_release(a);
  a = OK(nn_arange(5, 0, -1, NN_INT64));
  if (a) {
    CHECK(a->dtype == NN_INT64);
    CHECK_VALUES(a, 0, 5, 4, 3, 2, 1);
  }
  nn_release(a);
  a = OK(nn_arange(0, 1, 0.1, NN_FLOAT64)); /* torch.arange(0, 1, 0.1): 10 elements */
  if (a && CHECK_SHAPE(a, 1, 10)) {
    int ok = 1;
    for (int64_t i = 0; i < 10; i++) ok &= near(nn_get_flat(a, i), 0.1 * (double)i, 1e-15);
    CHECKF(ok, "arange(0, 1, 0.1) holds 0.0 .. 0.9");
    CHECK(nn_get_flat(a, 9) < 1);
  }
  nn_release(a);
  a = OK(nn_arange(1, 2, 0.3, NN_FLOAT64)); /* 1, 1.3, 1.6, 1.9 */
  if (a && CHECK_SHAPE(a, 1, 4)) CHECK_VALUES(a, 1e-15, 1, 1.3, 1.6, 1.9);
  nn_release(a);
  a = OK(nn_arange(0, -1, -0.25, NN_FLOAT32)); /* 0, -0.25, -0.5, -0.75 */
  if (a && CHECK_SHAPE(a, 1, 4)) CHECK_VALUES(a, 0, 0, -0.25, -0.5, -0.75);
  nn_release(a);
  a = OK(nn_arange(-3, 3, 2.5, NN_FLOAT32)); /* -3, -0.5, 2 */
  if (a && CHECK_SHAPE(a, 1, 3)) CHECK_VALUES(a, 0, -3, -0.5, 2);
  nn_release(a);
  a = OK(nn_arange(2, 2, 1, NN_FLOAT32));
  if (a) CHECK_SHAPE(a, 1, 0);
  nn_release(a);
  CHECK_FAILS(nn_arange(0, 5, 0, NN_FLOAT32), "arange");
  CHECK_FAILS(nn_arange(0, 5, -1, NN_FLOAT32), "arange");
  CHECK_FAILS(nn_arange(0, INFINITY, 1, NN_FLOAT32), "arange");
  CHECK_FAILS(nn_arange(0, 1e300, 1e-300, NN_FLOAT32), "arange");

  /* linspace: both ends exact */
  nn_tensor *l = OK(nn_linspace(0, 1, 11, NN_FLOAT64));
  if (l && CHECK_SHAPE(l, 1, 11)) {
    CHECK(nn_get_flat(l, 0) == 0 && nn_get_flat(l, 10) == 1);
    int ok = 1;
    for (int64_t i = 0; i < 11; i++) ok &= near(nn_get_flat(l, i), (double)i / 10, 1e-15);
    CHECKF(ok, "linspace(0, 1, 11) holds i/10");
  }
  nn_release(l);
  l = OK(nn_linspace(-1, 0.3, 7, NN_FLOAT64));
  if (l) CHECK(nn_get_flat(l, 0) == -1 && nn_get_flat(l, 6) == 0.3);
  nn_release(l);
  l = OK(nn_linspace(0.1, 0.7, 4, NN_FLOAT32));
  if (l) CHECK(nn_get_flat(l, 0) == (float)0.1 && nn_get_flat(l, 3) == (float)0.7);
  nn_release(l);
  l = OK(nn_linspace(3, -3, 3, NN_FLOAT32));
  if (l) CHECK_VALUES(l, 0, 3, 0, -3);
  nn_release(l);
  l = OK(nn_linspace(0, 10, 0, NN_FLOAT32));
  if (l) CHECK_SHAPE(l, 1, 0);
  nn_release(l);
  /* torch.linspace(-10, 10, steps=1) is tensor([-10.]): one step is the start */
  l = OK(nn_linspace(-10, 10, 1, NN_FLOAT32));
  if (l && CHECK_SHAPE(l, 1, 1)) CHECK_VALUES(l, 0, -10);
  nn_release(l);
  l = OK(nn_linspace(2, 5, 2, NN_FLOAT64));
  if (l) CHECK_VALUES(l, 0, 2, 5);
  nn_release(l);
  CHECK_FAILS(nn_linspace(0, 1, -1, NN_FLOAT32), "linspace");

  /* eye: square and rectangular */
  nn_tensor *e = OK(nn_eye(3, -1, NN_FLOAT32));
  if (e) {
    CHECK_SHAPE(e, 2, 3, 3);
    CHECK_VALUES(e, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1);
  }
  nn_release(e);
  e = OK(nn_eye(2, 3, NN_FLOAT64));
  if (e) {
    CHECK_SHAPE(e, 2, 2, 3);
    CHECK_VALUES(e, 0, 1, 0, 0, 0, 1, 0);
  }
  nn_release(e);
  e = OK(nn_eye(3, 2, NN_INT64));
  if (e) {
    CHECK_SHAPE(e, 2, 3, 2);
    CHECK(e->dtype == NN_INT64);
    CHECK_VALUES(e, 0, 1, 0, 0, 1, 0, 0);
  }
  nn_release(e);
  e = OK(nn_eye(0, 4, NN_FLOAT32));
  if (e) CHECK_SHAPE(e, 2, 0, 4);
  nn_release(e);

  /* absurd and negative sizes: NULL with a message, never an abort */
  size_t before = nn_memory_in_use();
  CHECK_FAILS(nn_zeros(NN_FLOAT32, 1, SZ((int64_t)1e15)), "large");
  CHECK_FAILS(nn_zeros(NN_FLOAT32, 2, SZ((int64_t)1e8, (int64_t)1e8)), "large");
  CHECK_FAILS(nn_ones(NN_FLOAT64, 2, SZ((int64_t)1 << 40, (int64_t)1 << 40)), "large");
  CHECK_FAILS(nn_empty(NN_BOOL, 3, SZ(INT64_MAX, 2, 2)), "large");
  CHECK_FAILS(nn_full(NN_INT64, 4, SZ(1 << 16, 1 << 16, 1 << 16, 1 << 16), 1), "large");
  CHECK_FAILS(nn_zeros(NN_FLOAT32, 2, SZ(3, -1)), "negative");
  CHECK_FAILS(nn_ones(NN_FLOAT32, 1, SZ(-5)), "negative");
  CHECK_FAILS(nn_zeros(NN_FLOAT32, NN_MAX_DIMS + 1, SZ(1, 1, 1, 1, 1, 1, 1, 1, 1)), "dimensions");
  CHECK_FAILS(nn_eye((int64_t)1e8, (int64_t)1e8, NN_FLOAT32), "large");
  CHECK_FAILS(nn_eye(-2, 3, NN_FLOAT32), "negative");
  CHECK_FAILS(nn_linspace(0, 1, (int64_t)1e15, NN_FLOAT32), "large");
  nn_tensor *one = OK(nn_ones(NN_FLOAT32, 1, SZ(1)));
  if (one) CHECK_FAILS(nn_expand(one, 2, SZ((int64_t)1e8, (int64_t)1e8)), "large");
  nn_release(one);
  CHECK(nn_memory_in_use() == before);

  /* rand / randn: shapes, dtype, range */
  nn_manual_seed(1);
  nn_tensor *r = OK(nn_rand(NN_FLOAT64, 2, SZ(10, 10)));
  if (r) {
    int ok = 1;
    for (int64_t i = 0; i < 100; i++) ok &= nn_get_flat(r, i) >= 0 && nn_get_flat(r, i) < 1;
    CHECKF(ok, "rand in [0, 1)");
  }
  nn_release(r);
  r = OK(nn_randn(NN_FLOAT32, 1, SZ(7)));
  if (r) CHECK(r->dtype == NN_FLOAT32 && nn_numel(r) == 7);
  nn_release(r);
}

/* ---- dtypes ------------------------------------------------------------- */
static void test_dtypes(void) {
  CHECK(nn_dtype_size(NN_FLOAT32) == 4 && nn_dtype_size(NN_FLOAT64) == 8 &&
        nn_dtype_size(NN_INT64) == 8 && nn_dtype_size(NN_BOOL) == 1);
  for (int d = 0; d < NN_DTYPE_COUNT; d++)
    CHECKF(nn_dtype_from_name(nn_dtype_name((nn_dtype)d)) == d, "dtype name round trip %d", d);
  CHECK(nn_dtype_from_name("double") == NN_FLOAT64 && nn_dtype_from_name("long") == NN_INT64);
  CHECK(nn_dtype_from_name("half") == NN_FLOAT16 && nn_dtype_from_name("int") == NN_INT32);
  CHECK(nn_dtype_from_name("complex64") == -1);
  CHECK(nn_dtype_is_floating(NN_FLOAT32) && nn_dtype_is_floating(NN_FLOAT64) &&
        !nn_dtype_is_floating(NN_INT64) && !nn_dtype_is_floating(NN_BOOL));
  CHECK(nn_dtype_size(NN_FLOAT16) == 2 && nn_dtype_size(NN_BFLOAT16) == 2 && nn_dtype_size(NN_INT32) == 4 &&
        nn_dtype_size(NN_INT16) == 2 && nn_dtype_size(NN_INT8) == 1 && nn_dtype_size(NN_UINT8) == 1);
  CHECK(nn_dtype_is_floating(NN_FLOAT16) && nn_dtype_is_floating(NN_BFLOAT16) &&
        !nn_dtype_is_floating(NN_UINT8));
  /* PyTorch's promote_types at its irregular corners */
  CHECK(nn_promote_types(NN_INT8, NN_UINT8) == NN_INT16 && nn_promote_types(NN_UINT8, NN_INT32) == NN_INT32);
  CHECK(nn_promote_types(NN_FLOAT16, NN_BFLOAT16) == NN_FLOAT32 &&
        nn_promote_types(NN_INT64, NN_FLOAT16) == NN_FLOAT16);
  CHECK(nn_promote_types(NN_BOOL, NN_UINT8) == NN_UINT8 && nn_promote_types(NN_INT16, NN_INT8) == NN_INT16);

  nn_tensor *x = OK(TENSOR(NN_FLOAT32, 1, SZ(7), -2.7, -0.5, 0, 0.5, 1.25, 3, 0.1));
  if (!x) return;
  nn_tensor *d = OK(nn_to_dtype(x, NN_FLOAT64));
  if (d) {
    CHECK(d->dtype == NN_FLOAT64 && d->storage != x->storage);
    CHECK_VALUES(d, 0, (float)-2.7, -0.5, 0, 0.5, 1.25, 3, (float)0.1);
    nn_tensor *back = OK(nn_to_dtype(d, NN_FLOAT32));
    if (back) {
      CHECK(back->dtype == NN_FLOAT32);
      CHECK_VALUES(back, 0, (float)-2.7, -0.5, 0, 0.5, 1.25, 3, (float)0.1);
    }
    nn_release(back);
  }
  nn_tensor *i = OK(nn_to_dtype(x, NN_INT64)); /* truncation toward zero */
  if (i) {
    CHECK(i->dtype == NN_INT64);
    CHECK_VALUES(i, 0, -2, 0, 0, 0, 1, 3, 0);
    nn_tensor *fi = OK(nn_to_dtype(i, NN_FLOAT32));
    if (fi) CHECK_VALUES(fi, 0, -2, 0, 0, 0, 1, 3, 0);
    nn_tensor *bi = OK(nn_to_dtype(i, NN_BOOL));
    if (bi) CHECK_VALUES(bi, 0, 1, 0, 0, 0, 1, 1, 0);
    nn_release(fi), nn_release(bi);
  }
  nn_tensor *b = OK(nn_to_dtype(x, NN_BOOL));
  if (b) {
    CHECK(b->dtype == NN_BOOL);
    CHECK_VALUES(b, 0, 1, 1, 0, 1, 1, 1, 1);
    nn_tensor *bf = OK(nn_to_dtype(b, NN_FLOAT64));
    if (bf) CHECK_VALUES(bf, 0, 1, 1, 0, 1, 1, 1, 1);
    nn_tensor *bl = OK(nn_to_dtype(b, NN_INT64));
    if (bl) CHECK_VALUES(bl, 0, 1, 1, 0, 1, 1, 1, 1);
    nn_release(bf), nn_release(bl);
  }
  nn_tensor *same_dt = OK(nn_to_dtype(x, NN_FLOAT32));
  CHECK(same_dt == x);
  nn_release(same_dt);
  nn_release(d), nn_release(i), nn_release(b);

  /* large integers survive float64 and int64 */
  nn_tensor *big = OK(TENSOR(NN_INT64, 1, SZ(3), 4503599627370496.0, -123456789012.0, 7));
  nn_tensor *bigd = big ? OK(nn_to_dtype(big, NN_FLOAT64)) : NULL;
  nn_tensor *bigi = bigd ? OK(nn_to_dtype(bigd, NN_INT64)) : NULL;
  if (bigi) CHECK_VALUES(bigi, 0, 4503599627370496.0, -123456789012.0, 7);
  nn_release(bigi), nn_release(bigd), nn_release(big);

  /* conversion of a non-contiguous view keeps the logical order */
  nn_tensor *m = OK(TENSOR(NN_FLOAT64, 2, SZ(2, 3), 1, 2, 3, 4, 5, 6));
  nn_tensor *mt = m ? OK(nn_transpose(m, 0, 1)) : NULL;
  nn_tensor *mti = mt ? OK(nn_to_dtype(mt, NN_INT64)) : NULL;
  if (mti) {
    CHECK_SHAPE(mti, 2, 3, 2);
    CHECK(nn_is_contiguous(mti));
    CHECK_VALUES(mti, 0, 1, 4, 2, 5, 3, 6);
  }
  nn_release(mti), nn_release(mt), nn_release(m);

  /* nn_item */
  double v = 0;
  nn_tensor *one = OK(TENSOR(NN_FLOAT32, 3, SZ(1, 1, 1), 2.5));
  if (one) {
    CHECK_STATUS_OK(nn_item(one, &v));
    CHECK(v == 2.5);
  }
  nn_tensor *s = OK(nn_full(NN_INT64, 0, NULL, -9));
  if (s) {
    CHECK_STATUS_OK(nn_item(s, &v));
    CHECK(v == -9);
  }
  nn_tensor *bs = OK(nn_full(NN_BOOL, 0, NULL, 1));
  if (bs) {
    CHECK_STATUS_OK(nn_item(bs, &v));
    CHECK(v == 1);
  }
  /* through an offset view */
  nn_tensor *r = OK(nn_arange(0, 6, 1, NN_FLOAT64));
  nn_tensor *r1 = r ? OK(nn_narrow(r, 0, 4, 1)) : NULL;
  if (r1) {
    CHECK_STATUS_OK(nn_item(r1, &v));
    CHECK(v == 4);
  }
  v = 12345;
  if (x) CHECK_STATUS_FAILS(nn_item(x, &v), "item");
  CHECK(v == 12345);
  nn_tensor *none = OK(nn_zeros(NN_FLOAT32, 1, SZ(0)));
  if (none) CHECK_STATUS_FAILS(nn_item(none, &v), "item");
  nn_release(none), nn_release(r1), nn_release(r), nn_release(bs), nn_release(s), nn_release(one);
  nn_release(x);
}

/* ---- reference counting ----------------------------------------------- */
static void test_refcount(void) {
  size_t start = nn_memory_in_use();
  nn_tensor *base = OK(nn_arange(0, 64, 1, NN_FLOAT64));
  if (!base) return;
  CHECK(base->refcount == 1);
  size_t with_base = nn_memory_in_use();
  CHECK(with_base > start);
  nn_tensor *view = OK(nn_narrow(base, 0, 10, 5));
  if (!view) {
    nn_release(base);
    return;
  }
  CHECK(nn_memory_in_use() == with_base); /* a view allocates no storage */
  CHECK(view->base == base && base->refcount == 2); /* a view holds its base */
  CHECK(nn_retain(base) == base && base->refcount == 3);
  nn_release(base);
  CHECK(base->refcount == 2);
  nn_release(base); /* the view still holds the base and its storage */
  CHECK(nn_memory_in_use() == with_base);
  /* storage of the same size made now must not be the view's */
  nn_tensor *other = OK(nn_full(NN_FLOAT64, 1, SZ(64), -1));
  CHECK_VALUES(view, 0, 10, 11, 12, 13, 14);
  nn_set_flat(view, 0, 1000);
  if (other) CHECK(nn_get_flat(other, 10) == -1);
  nn_release(other);
  /* a view of the view after the base is gone */
  nn_tensor *vv = OK(nn_view(view, 2, SZ(5, 1)));
  nn_release(view);
  if (vv) CHECK_VALUES(vv, 0, 1000, 11, 12, 13, 14);
  nn_release(vv);
  CHECK(nn_memory_in_use() == start);

  /* a tensor releases its gradient with itself */
  nn_tensor *p = OK(nn_zeros(NN_FLOAT32, 1, SZ(100)));
  nn_tensor *g = OK(nn_ones(NN_FLOAT32, 1, SZ(100)));
  if (p && g) {
    CHECK_STATUS_OK(nn_set_grad(p, g));
    CHECK(p->grad == g && g->refcount == 2);
    nn_release(g);
    g = NULL;
  }
  nn_release(g);
  nn_release(p);
  CHECK(nn_memory_in_use() == start);

  /* many tensors and views, released in a scrambled order */
  enum { N = 32 };
  nn_tensor *ts[N] = {0};
  for (int k = 0; k < N; k++) {
    if (k % 3 == 0 || !ts[k - 1])
      ts[k] = nn_zeros(k % 2 ? NN_FLOAT32 : NN_INT64, 2, SZ(k + 1, 7));
    else
      ts[k] = nn_transpose(ts[k - 1], 0, 1);
  }
  for (int k = 0; k < N; k += 2) nn_release(ts[k]);
  for (int k = 1; k < N; k += 2) nn_release(ts[k]);
  CHECK(nn_memory_in_use() == start);
  nn_release(NULL); /* releasing nothing is allowed */
}

int main(void) {
  size_t start = nn_memory_in_use();
  test_view_reshape();
  test_transpose_permute();
  test_narrow_select();
  test_squeeze_unsqueeze_expand();
  test_noncontiguous_reshape();
  test_broadcasting();
  test_creation();
  test_dtypes();
  test_refcount();
  CHECKF(nn_memory_in_use() == start, "storage in use at the end: %zu bytes, at the start %zu",
         nn_memory_in_use(), start);
  nn_memory_trim();
  return check_finish();
}
