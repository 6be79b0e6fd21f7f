/* test_autograd.c: graphs far deeper than the C stack, and in-place ops
 * on tensors in a graph: what they record, and that their graphs are
 * freed (no cycles that reference counts would keep alive). */
#include "check.h"
#include "internal.h"

#include <pthread.h>

/* ---- deep graphs ------------------------------------------------------- */
/* Recursion through a graph costs at least a few dozen bytes of stack per
   node; the deep-graph work runs on a thread with a small stack, so that a
   graph of a million nodes would need some 100 times the stack it has if
   freeing or backward recursed. NN_TEST_GRAPH_NODES sets another depth
   (10000000 takes about 5 GiB and half a minute). */
#define SMALL_STACK ((size_t)256 * 1024)

static int64_t graph_nodes(void) {
  const char *env = getenv("NN_TEST_GRAPH_NODES");
  long long n = env ? atoll(env) : 0;
  return n > 0 ? (int64_t)n : 1000000;
}

/* y = x * 1 * 1 ... (n nodes), or views of views when as_views: no storage
   per node, so that a deep graph costs less memory. */
static nn_tensor *chain(nn_tensor *x, int64_t n, int as_views) {
  nn_tensor *y = nn_retain(x);
  for (int64_t i = 0; i < n && y; i++) {
    nn_tensor *next = as_views ? nn_view(y, 1, SZ(1)) : nn_binary_scalar(NN_MUL, y, 1, 0);
    nn_release(y);
    y = next;
  }
  return y;
}

struct deep_result {
  int built, released_ok, backward_ok;
  double grad;
};

static void *deep_graph_work(void *arg) {
  struct deep_result *r = arg;
  int64_t n = graph_nodes();
  nn_tensor *x = nn_ones(NN_FLOAT32, 1, SZ(1));
  if (!x || nn_set_requires_grad(x, 1) < 0) return NULL;
  /* freed without a backward: the release walks the whole graph */
  nn_tensor *y = chain(x, n, 1);
  r->built = y != NULL;
  nn_release(y);
  r->released_ok = 1;
  /* differentiated, keeping the graph, then freed */
  y = chain(x, n, 0);
  if (y) {
    r->backward_ok = nn_backward(y, NULL, 1) == 0;
    r->grad = x->grad ? nn_get_flat(x->grad, 0) : -1;
    nn_release(y);
  }
  nn_release(x);
  return NULL;
}

static void test_deep_graphs(void) {
  struct deep_result r = {0, 0, 0, 0};
  pthread_attr_t attr;
  pthread_t thread;
  CHECK(pthread_attr_init(&attr) == 0);
  CHECK(pthread_attr_setstacksize(&attr, SMALL_STACK) == 0);
  size_t before = nn_memory_in_use();
  if (CHECK(pthread_create(&thread, &attr, deep_graph_work, &r) == 0))
    CHECK(pthread_join(thread, NULL) == 0);
  pthread_attr_destroy(&attr);
  CHECKF(r.built && r.released_ok, "a graph of %lld nodes is built and freed",
         (long long)graph_nodes());
  CHECKF(r.backward_ok && r.grad == 1, "backward through %lld nodes gives 1, got %g: %s",
         (long long)graph_nodes(), r.grad, r.backward_ok ? "" : nn_error());
  CHECK(nn_memory_in_use() == before);
}

/* ---- in-place ops on tensors in a graph --------------------------------- */
static nn_tensor *leaf(const double *values, int64_t n) {
  nn_tensor *t = tensor_of(NN_FLOAT64, 1, SZ(n), values);
  if (t) nn_set_requires_grad(t, 1);
  return t;
}

static nn_tensor *times_one(nn_tensor *x) { return nn_binary_scalar(NN_MUL, x, 1, 0); }

static int backward_sum_retain(nn_tensor *y, int retain_graph) {
  nn_tensor *s = nn_sum(y, NN_ALL_DIMS, 0);
  int status = s ? nn_backward(s, NULL, retain_graph) : -1;
  nn_release(s);
  return status;
}

static int backward_sum(nn_tensor *y) { return backward_sum_retain(y, 0); }

/* The in-place op's node takes the tensor's history as its input: y's
   gradient goes through exp_ and then through y's earlier history. Nodes
   recorded before keep the history they saw. */
static void test_rebase(void) {
  size_t before = nn_memory_in_use();
  nn_tensor *x = OK(leaf((const double[]){0.5, -1, 2}, 3));
  nn_tensor *y = x ? OK(times_one(x)) : NULL;
  nn_tensor *z = y ? OK(nn_binary_scalar(NN_MUL, y, 3, 0)) : NULL; /* before the change */
  if (z) {
    CHECK_STATUS_OK(nn_unary_(NN_EXP, y));
    CHECK(strcmp(nn_grad_fn_name(y), "ExpBackward0") == 0);
    CHECK_STATUS_OK(backward_sum_retain(y, 1));
    CHECK_VALUES(x->grad, 1e-12, exp(0.5), exp(-1), exp(2));
    nn_set_grad(x, NULL);
    CHECK_STATUS_OK(backward_sum(z)); /* z = 3 (x * 1), whatever y became */
    CHECK_VALUES(x->grad, 0, 3, 3, 3);
  }
  nn_release(z), nn_release(y), nn_release(x);
  CHECK(nn_memory_in_use() == before);
}

/* A plain tensor (no history, no grad) gets one from an operand that
   requires grad; and a saved input changed afterwards fails backward. */
static void test_plain_gets_history(void) {
  size_t before = nn_memory_in_use();
  nn_tensor *w = OK(leaf((const double[]){1, 2, 3}, 3));
  nn_tensor *acc = OK(nn_zeros(NN_FLOAT64, 1, SZ(3)));
  if (w && acc) {
    CHECK_STATUS_OK(nn_binary_(NN_ADD, acc, w));
    CHECK(acc->requires_grad && strcmp(nn_grad_fn_name(acc), "AddBackward0") == 0);
    CHECK_STATUS_OK(nn_binary_(NN_MUL, acc, w));
    CHECK_STATUS_OK(backward_sum(acc)); /* acc = w * w */
    CHECK_VALUES(w->grad, 0, 2, 4, 6);
  }
  nn_release(acc), nn_release(w);
  CHECK(nn_memory_in_use() == before);
}

/* Patterns where the in-place op's new node reaches a node that holds the
   changed tensor: a node holding the tensor itself would make a cycle that
   reference counts never free. Every storage must come back. (Where the
   node saved the tensor, backward refuses, as PyTorch's does.) */
static void test_no_cycles(void) {
  size_t before = nn_memory_in_use();
  nn_tensor *x = OK(leaf((const double[]){0.5, -1, 2}, 3));
  if (!x) return;
  /* y += y * 2, y a result: d/dx = 3 */
  nn_tensor *y = OK(times_one(x));
  nn_tensor *y2 = y ? OK(nn_binary_scalar(NN_MUL, y, 2, 0)) : NULL;
  if (y2) {
    CHECK_STATUS_OK(nn_binary_(NN_ADD, y, y2));
    CHECK_STATUS_OK(backward_sum(y));
    CHECK_VALUES(x->grad, 0, 3, 3, 3);
  }
  nn_release(y2), nn_release(y);
  /* p += x * p, p plain: the product saved p before p had a history */
  nn_set_grad(x, NULL);
  nn_tensor *p = OK(nn_ones(NN_FLOAT64, 1, SZ(3)));
  nn_tensor *q = p ? OK(nn_binary(NN_MUL, x, p)) : NULL;
  if (q) {
    CHECK_STATUS_OK(nn_binary_(NN_ADD, p, q));
    CHECK_STATUS_FAILS(backward_sum(p), "MulBackward0");
  }
  nn_release(q), nn_release(p);
  /* through a view: b[1:3] += b[1:3] * x[1:3] */
  nn_set_grad(x, NULL);
  nn_tensor *b = OK(nn_zeros(NN_FLOAT64, 1, SZ(3)));
  nn_tensor *part = b ? OK(nn_narrow(b, 0, 1, 2)) : NULL;
  nn_tensor *xpart = part ? OK(nn_narrow(x, 0, 1, 2)) : NULL;
  if (xpart) {
    CHECK_STATUS_OK(nn_binary_(NN_ADD, part, xpart)); /* b = (0, x1, x2) */
    nn_tensor *twice = OK(nn_binary_scalar(NN_MUL, part, 2, 0));
    if (twice) CHECK_STATUS_OK(nn_binary_(NN_ADD, part, twice)); /* b = (0, 3 x1, 3 x2) */
    CHECK(strcmp(nn_grad_fn_name(b), "CopySlices") == 0);
    CHECK_STATUS_OK(backward_sum_retain(b, 1));
    CHECK_VALUES(x->grad, 0, 0, 3, 3);
    nn_release(twice);
    nn_tensor *prod = OK(nn_binary(NN_MUL, part, xpart)); /* saves part */
    if (prod) {
      CHECK_STATUS_OK(nn_binary_(NN_ADD, part, prod));
      CHECK_STATUS_FAILS(backward_sum(b), "MulBackward0");
    }
    nn_release(prod);
  }
  nn_release(xpart), nn_release(part), nn_release(b);
  nn_release(x);
  CHECK(nn_memory_in_use() == before);
}

/* Freed graphs give their nodes back: a long run of in-place steps must
   not hold more memory than one step. */
static void test_steps_free_their_graphs(void) {
  nn_tensor *x = OK(leaf((const double[]){0.25, 0.5}, 2));
  if (!x) return;
  size_t before = 0;
  for (int step = 0; step < 1000; step++) {
    if (step == 1) before = nn_memory_in_use(); /* x.grad exists from here on */
    nn_tensor *y = times_one(x);
    int status = y ? nn_binary_(NN_MUL, y, x) : -1;
    status = status == 0 ? nn_unary_(NN_SIGMOID, y) : -1;
    status = status == 0 ? backward_sum(y) : -1;
    nn_release(y);
    if (!CHECKF(status == 0, "step %d: %s", step, nn_error())) break;
  }
  CHECK(nn_memory_in_use() == before);
  nn_release(x);
}

/* A saved value changed in place, through the tensor or a view of it,
   fails backward with the op's name. */
static void test_version_checks(void) {
  nn_tensor *x = OK(leaf((const double[]){0.5, -1, 2}, 3));
  nn_tensor *y = x ? OK(times_one(x)) : NULL;
  nn_tensor *s = y ? OK(nn_unary(NN_SIGMOID, y)) : NULL; /* saves its output */
  if (s) {
    CHECK_STATUS_OK(nn_binary_scalar_(NN_MUL, s, 2));
    CHECK_STATUS_FAILS(backward_sum(s), "SigmoidBackward0");
  }
  nn_release(s);
  nn_tensor *m = y ? OK(nn_binary(NN_MUL, y, y)) : NULL; /* saves y */
  nn_tensor *part = m ? OK(nn_narrow(y, 0, 0, 1)) : NULL;
  if (part) {
    nn_set_grad_enabled(0);
    CHECK_STATUS_OK(nn_binary_scalar_(NN_ADD, part, 1));
    nn_set_grad_enabled(1);
    CHECK_STATUS_FAILS(backward_sum(m), "MulBackward0");
  }
  nn_release(part), nn_release(m), nn_release(y), nn_release(x);
}

/* What is refused, and why. */
static void test_refusals(void) {
  nn_tensor *x = OK(leaf((const double[]){0.5, -1, 2}, 3));
  if (!x) return;
  CHECK_STATUS_FAILS(nn_unary_(NN_EXP, x), "leaf tensor that requires grad");
  nn_tensor *part = OK(nn_narrow(x, 0, 0, 2));
  if (part) CHECK_STATUS_FAILS(nn_inplace_fill("fill_", part, 1), "view of a leaf");
  nn_release(part);
  nn_tensor *y = OK(times_one(x));
  nn_set_grad_enabled(0);
  nn_tensor *quiet = y ? OK(nn_narrow(y, 0, 0, 2)) : NULL; /* a view taken in no_grad */
  nn_set_grad_enabled(1);
  if (quiet) CHECK_STATUS_FAILS(nn_unary_(NN_EXP, quiet), "inside nn.no_grad");
  nn_release(quiet);
  /* several elements at one place: only fill_ and zero_ may write there */
  nn_tensor *flat = OK(nn_zeros(NN_FLOAT64, 1, SZ(3)));
  nn_tensor *wide = flat ? OK(nn_expand(flat, 2, SZ(2, 3))) : NULL;
  if (wide) {
    CHECK_STATUS_FAILS(nn_binary_scalar_(NN_ADD, wide, 1), "more than one element");
    CHECK_STATUS_FAILS(nn_unary_(NN_EXP, wide), "more than one element");
    CHECK_STATUS_FAILS(nn_inplace_copy("copy_", wide, flat), "more than one element");
    CHECK_STATUS_FAILS(nn_uniform_(wide, 0, 1), "more than one element");
    CHECK_STATUS_OK(nn_inplace_fill("fill_", wide, 2));
    CHECK_VALUES(flat, 0, 2, 2, 2);
    CHECK_STATUS_OK(nn_inplace_zero(wide));
    CHECK_VALUES(flat, 0, 0, 0, 0);
  }
  nn_release(wide), nn_release(flat), nn_release(y), nn_release(x);
}

/* ---- zero_grad deferred ------------------------------------------------ */
/* nn_zero_grad_deferred leaves the zeros unwritten where only the leaf
   holds its gradient: the next backward through linear writes its weight's
   gradient over the old values instead of adding onto them, the bias's is
   zeroed first and added onto, nn_leaf_grad reads zeros; a gradient held
   elsewhere is zeroed at once. */
static nn_tensor *linear_loss(nn_tensor *x, nn_tensor *w, nn_tensor *b) {
  nn_tensor *y = OK(nn_linear(x, w, b));
  nn_tensor *loss = y ? OK(nn_sum(y, NN_ALL_DIMS, 0)) : NULL;
  nn_release(y);
  return loss;
}

static void test_zero_grad_deferred(void) {
  nn_tensor *x = OK(TENSOR(NN_FLOAT32, 2, SZ(2, 3), 1, -2, 3, -4, 5, -6));
  nn_tensor *w = OK(TENSOR(NN_FLOAT32, 2, SZ(2, 3), 1, 2, 3, 4, 5, 6));
  nn_tensor *b = OK(TENSOR(NN_FLOAT32, 1, SZ(2), 1, 1));
  if (!x || !w || !b) return;
  nn_set_requires_grad(w, 1), nn_set_requires_grad(b, 1);
  for (int pass = 0; pass < 3; pass++) { /* the first makes the gradients, the others write over them */
    if (pass > 0) {
      nn_zero_grad_deferred(w), nn_zero_grad_deferred(b);
      CHECK(w->grad_zero_deferred && b->grad_zero_deferred);
      CHECK_VALUES(w->grad, 0, -3, 3, -3, -3, 3, -3); /* not written yet */
    }
    nn_tensor *loss = linear_loss(x, w, b);
    if (loss) CHECK_STATUS_OK(nn_backward(loss, NULL, 0));
    nn_release(loss);
    CHECK(!w->grad_zero_deferred && !b->grad_zero_deferred);
    CHECK_VALUES(w->grad, 0, -3, 3, -3, -3, 3, -3);
    CHECK_VALUES(b->grad, 0, 2, 2);
  }
  /* read before any backward: zeros, written then */
  nn_zero_grad_deferred(w);
  CHECK_VALUES(nn_leaf_grad(w), 0, 0, 0, 0, 0, 0, 0);
  CHECK(!w->grad_zero_deferred);
  /* a second backward adds onto the first */
  nn_zero_grad_deferred(w);
  for (int pass = 0; pass < 2; pass++) {
    nn_tensor *loss = linear_loss(x, w, b);
    if (loss) CHECK_STATUS_OK(nn_backward(loss, NULL, 0));
    nn_release(loss);
  }
  CHECK_VALUES(w->grad, 0, -6, 6, -6, -6, 6, -6);
  /* held elsewhere (a Lua value of .grad, a view): zeroed at once */
  nn_tensor *held = nn_retain(w->grad);
  nn_zero_grad_deferred(w);
  CHECK(!w->grad_zero_deferred);
  CHECK_VALUES(held, 0, 0, 0, 0, 0, 0, 0);
  nn_release(held);
  /* a new gradient set by hand is what it is */
  nn_zero_grad_deferred(b);
  nn_tensor *g = OK(TENSOR(NN_FLOAT32, 1, SZ(2), 7, 8));
  if (g) CHECK_STATUS_OK(nn_set_grad(b, g));
  CHECK(!b->grad_zero_deferred);
  CHECK_VALUES(nn_leaf_grad(b), 0, 7, 8);
  nn_release(g);
  nn_release(x), nn_release(w), nn_release(b);
}

int main(void) {
  test_deep_graphs();
  test_rebase();
  test_plain_gets_history();
  test_no_cycles();
  test_steps_free_their_graphs();
  test_version_checks();
  test_refusals();
  test_zero_grad_deferred();
  return check_finish();
}
