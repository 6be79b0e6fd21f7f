/* test_hooks.c: gradient hooks and end-of-backward callbacks (nn.h,
 * "hooks"): what each kind sees and when, replacements, removal (also from
 * a running hook), errors, and that a hook cannot start a backward. */
#include "check.h"

/* What a recording hook saw, in order, across hooks and callbacks. */
typedef struct {
  char kind;        /* 'g' grad, 'p' post-accumulate, 'c' callback */
  double first;     /* the gradient's first element (callback: failed) */
  int grad_was_set; /* the leaf's .grad existed when it ran */
} event;
static event events[64];
static int n_events;

typedef struct {
  char kind;
  nn_tensor *leaf;     /* whose .grad to look at, or NULL */
  double scale;        /* a grad hook returns grad * scale when not 1 */
  int fail;            /* returns -1 with an error */
  int64_t remove_id;   /* removes this hook (maybe itself) when it runs */
  int start_backward;  /* tries to start a backward from inside */
  int bad_shape;       /* returns a replacement of another shape */
  int *freed;          /* counts free_ctx calls */
} recorder;

static int record(void *ctx, nn_tensor *grad, nn_tensor **replace) {
  recorder *r = ctx;
  if (n_events < 64)
    events[n_events++] = (event){r->kind, nn_get_flat(grad, 0), r->leaf && r->leaf->grad != NULL};
  if (r->remove_id) CHECK(nn_remove_hook(r->leaf, r->remove_id) == 1);
  if (r->start_backward) {
    nn_tensor *x = nn_ones(NN_FLOAT32, 1, SZ(1));
    nn_set_requires_grad(x, 1);
    int status = nn_backward(x, NULL, 0);
    nn_release(x);
    return status;
  }
  if (r->fail) {
    nn_error_set("the hook failed on purpose");
    return -1;
  }
  if (r->bad_shape && replace) *replace = nn_zeros(NN_FLOAT32, 1, SZ(7));
  else if (r->scale != 1 && replace) *replace = nn_binary_scalar(NN_MUL, grad, r->scale, 0);
  return 0;
}

static void count_free(void *ctx) { (*((recorder *)ctx)->freed)++; }

static int queue_from_hook(void *ctx, nn_tensor *grad, nn_tensor **replace);
static int callback(void *ctx, int failed) {
  (void)ctx;
  if (n_events < 64) events[n_events++] = (event){'c', failed, 0};
  return 0;
}
static int queue_from_hook(void *ctx, nn_tensor *grad, nn_tensor **replace) {
  (void)grad, (void)replace;
  int *queued = ctx;
  if (!*queued) CHECK_STATUS_OK(nn_queue_backward_callback(callback, NULL));
  *queued = 1;
  return 0;
}

/* loss = sum(x * x + x * 3) at x = 2: d loss / dx = 2x + 3 = 7 per element. */
static nn_tensor *square_plus_3x(nn_tensor *x) {
  nn_tensor *xx = nn_binary(NN_MUL, x, x), *x3 = nn_binary_scalar(NN_MUL, x, 3, 0);
  nn_tensor *s = nn_binary(NN_ADD, xx, x3), *loss = nn_sum(s, NN_ALL_DIMS, 0);
  nn_release(xx), nn_release(x3), nn_release(s);
  return loss;
}

static void test_leaf_used_twice(void) {
  nn_tensor *x = nn_full(NN_FLOAT32, 1, SZ(3), 2);
  nn_set_requires_grad(x, 1);
  recorder grad_hook = {'g', x, 1, 0, 0, 0, 0, NULL}, post = {'p', x, 1, 0, 0, 0, 0, NULL};
  CHECK(nn_add_hook(x, NN_HOOK_POST_ACCUMULATE, record, &post, NULL) > 0);
  CHECK(nn_add_hook(x, NN_HOOK_GRAD, record, &grad_hook, NULL) > 0);
  for (int pass = 1; pass <= 2; pass++) {
    n_events = 0;
    nn_tensor *loss = square_plus_3x(x);
    CHECK_STATUS_OK(nn_backward(loss, NULL, 0));
    nn_release(loss);
    /* the grad hook once, on the whole sum, before .grad changed; then post once */
    CHECKF(n_events == 2, "pass %d: %d events", pass, n_events);
    CHECK(events[0].kind == 'g' && events[0].first == 7);
    CHECK(events[0].grad_was_set == (pass == 2));
    CHECK(events[1].kind == 'p' && events[1].first == 7 * pass);
  }
  nn_release(x);
}

static void test_replacement(void) {
  nn_tensor *x = nn_full(NN_FLOAT32, 1, SZ(3), 2);
  nn_set_requires_grad(x, 1);
  recorder twice = {'g', x, 2, 0, 0, 0, 0, NULL}, tenfold = {'g', x, 10, 0, 0, 0, 0, NULL};
  nn_add_hook(x, NN_HOOK_GRAD, record, &twice, NULL);
  nn_add_hook(x, NN_HOOK_GRAD, record, &tenfold, NULL);
  n_events = 0;
  nn_tensor *loss = square_plus_3x(x);
  CHECK_STATUS_OK(nn_backward(loss, NULL, 0));
  /* in order: the second hook sees the first one's replacement */
  CHECK(n_events == 2 && events[0].first == 7 && events[1].first == 14);
  CHECK_VALUES(x->grad, 1e-6, 140, 140, 140);
  nn_release(loss);

  /* a replacement of another shape is an error that names both */
  recorder bad = {'g', x, 1, 0, 0, 0, 1, NULL};
  nn_add_hook(x, NN_HOOK_GRAD, record, &bad, NULL);
  loss = square_plus_3x(x);
  CHECK_STATUS_FAILS(nn_backward(loss, NULL, 0), "the gradient a hook returned is 7 float32, the tensor is 3");
  nn_release(loss);
  nn_release(x);
}

/* Linear adds dW straight into an existing w.grad (accumulate_into): a
   post hook still runs once, after the addition; a grad hook turns the
   shortcut off, so that it sees the gradient before .grad. */
static void test_linear_accumulating_in_place(void) {
  nn_tensor *x = nn_ones(NN_FLOAT32, 2, SZ(4, 3)), *w = nn_ones(NN_FLOAT32, 2, SZ(2, 3));
  nn_tensor *b = nn_zeros(NN_FLOAT32, 1, SZ(2));
  nn_set_requires_grad(w, 1), nn_set_requires_grad(b, 1);
  CHECK_STATUS_OK(nn_set_grad(w, nn_zeros(NN_FLOAT32, 2, SZ(2, 3))));
  nn_release(w->grad); /* nn_set_grad retained it */
  recorder post = {'p', w, 1, 0, 0, 0, 0, NULL};
  nn_add_hook(w, NN_HOOK_POST_ACCUMULATE, record, &post, NULL);
  for (int pass = 1; pass <= 2; pass++) {
    n_events = 0;
    nn_tensor *y = nn_linear(x, w, b), *loss = nn_sum(y, NN_ALL_DIMS, 0);
    CHECK_STATUS_OK(nn_backward(loss, NULL, 0));
    CHECK(n_events == 1 && events[0].kind == 'p' && events[0].first == 4 * pass);
    nn_release(y), nn_release(loss);
  }
  recorder halve = {'g', w, 0.5, 0, 0, 0, 0, NULL};
  nn_add_hook(w, NN_HOOK_GRAD, record, &halve, NULL);
  n_events = 0;
  nn_tensor *y = nn_linear(x, w, b), *loss = nn_sum(y, NN_ALL_DIMS, 0);
  CHECK_STATUS_OK(nn_backward(loss, NULL, 0));
  /* added last, the grad hook still runs first: the sum it halves (4) is
     then added to .grad (8), and the post hook sees 10 */
  CHECK(n_events == 2 && events[0].kind == 'g' && events[1].kind == 'p');
  CHECK(n_events == 2 && events[0].first == 4 && events[1].first == 10);
  nn_release(y), nn_release(loss);
  nn_release(x), nn_release(w), nn_release(b);
}

/* A computed tensor's hook lives on its node: it sees the gradient that
   reaches the tensor (through any alias) and replaces what flows on. */
static void test_computed_tensor(void) {
  nn_tensor *x = nn_full(NN_FLOAT32, 1, SZ(2), 3);
  nn_set_requires_grad(x, 1);
  nn_tensor *y = nn_binary_scalar(NN_MUL, x, 2, 0); /* y = 2x = 6 */
  recorder tenfold = {'g', NULL, 10, 0, 0, 0, 0, NULL};
  CHECK(nn_add_hook(y, NN_HOOK_GRAD, record, &tenfold, NULL) > 0);
  CHECK(nn_add_hook(y, NN_HOOK_POST_ACCUMULATE, record, &tenfold, NULL) < 0);
  CHECK(strstr(nn_error(), "non-leaf") != NULL);
  nn_tensor *z = nn_binary(NN_MUL, y, y), *loss = nn_sum(z, NN_ALL_DIMS, 0);
  n_events = 0;
  CHECK_STATUS_OK(nn_backward(loss, NULL, 0));
  CHECK(n_events == 1 && events[0].first == 12); /* d loss / dy = 2y */
  CHECK_VALUES(x->grad, 1e-6, 240, 240);         /* 10 * 2y * 2 */
  nn_release(z), nn_release(loss), nn_release(y), nn_release(x);
}

static void test_removal_and_lifetime(void) {
  int freed = 0;
  nn_tensor *x = nn_full(NN_FLOAT32, 1, SZ(3), 2);
  nn_set_requires_grad(x, 1);
  recorder a = {'p', x, 1, 0, 0, 0, 0, &freed}, b = {'p', x, 1, 0, 0, 0, 0, &freed};
  int64_t ida = nn_add_hook(x, NN_HOOK_POST_ACCUMULATE, record, &a, count_free);
  int64_t idb = nn_add_hook(x, NN_HOOK_POST_ACCUMULATE, record, &b, count_free);
  a.remove_id = ida; /* a removes itself as it runs; b still runs in this pass */
  n_events = 0;
  nn_tensor *loss = square_plus_3x(x);
  CHECK_STATUS_OK(nn_backward(loss, NULL, 0));
  nn_release(loss);
  CHECK(n_events == 2 && freed == 1);
  CHECK(nn_remove_hook(x, ida) == 0);
  n_events = 0;
  loss = square_plus_3x(x);
  CHECK_STATUS_OK(nn_backward(loss, NULL, 0));
  nn_release(loss);
  CHECK(n_events == 1);
  (void)idb;
  nn_release(x); /* frees b's context */
  CHECK(freed == 2);

  nn_tensor *plain = nn_ones(NN_FLOAT32, 1, SZ(1));
  recorder c = {'g', NULL, 1, 0, 0, 0, 0, &freed};
  CHECK(nn_add_hook(plain, NN_HOOK_GRAD, record, &c, count_free) < 0);
  CHECK(strstr(nn_error(), "doesn't require gradient") != NULL && freed == 3);
  nn_release(plain);
}

static void test_errors_and_reentry(void) {
  nn_tensor *x = nn_full(NN_FLOAT32, 1, SZ(3), 2);
  nn_set_requires_grad(x, 1);
  recorder failing = {'p', x, 1, 1, 0, 0, 0, NULL};
  int64_t id = nn_add_hook(x, NN_HOOK_POST_ACCUMULATE, record, &failing, NULL);
  nn_tensor *loss = square_plus_3x(x);
  CHECK_STATUS_FAILS(nn_backward(loss, NULL, 0), "the hook failed on purpose");
  nn_release(loss);
  nn_remove_hook(x, id);

  recorder reentering = {'g', x, 1, 0, 0, 1, 0, NULL};
  id = nn_add_hook(x, NN_HOOK_GRAD, record, &reentering, NULL);
  loss = square_plus_3x(x);
  CHECK_STATUS_FAILS(nn_backward(loss, NULL, 0), "a hook cannot start a backward pass");
  nn_release(loss);
  nn_remove_hook(x, id);

  /* after those failures, a pass runs as usual */
  nn_zero_grad(x);
  loss = square_plus_3x(x);
  CHECK_STATUS_OK(nn_backward(loss, NULL, 0));
  CHECK_VALUES(x->grad, 0, 7, 7, 7);
  nn_release(loss);
  nn_release(x);
}

static void test_callbacks(void) {
  nn_tensor *x = nn_full(NN_FLOAT32, 1, SZ(3), 2), *w = nn_full(NN_FLOAT32, 1, SZ(3), 1);
  nn_set_requires_grad(x, 1), nn_set_requires_grad(w, 1);
  int queued = 0;
  recorder post = {'p', w, 1, 0, 0, 0, 0, NULL};
  nn_add_hook(x, NN_HOOK_POST_ACCUMULATE, queue_from_hook, &queued, NULL);
  nn_add_hook(w, NN_HOOK_POST_ACCUMULATE, record, &post, NULL);
  /* loss = sum(x * w): x's gradient is ready before w's hook runs, but the
     callback waits for the end of the pass */
  nn_tensor *xw = nn_binary(NN_MUL, x, w), *loss = nn_sum(xw, NN_ALL_DIMS, 0);
  n_events = 0;
  CHECK_STATUS_OK(nn_backward(loss, NULL, 0));
  CHECK(n_events == 2 && events[0].kind == 'p' && events[1].kind == 'c' && events[1].first == 0);
  nn_release(xw), nn_release(loss);
  CHECK_STATUS_FAILS(nn_queue_backward_callback(callback, NULL), "no backward pass is running");

  /* a pass that fails still runs its callbacks, told so; its error stands */
  queued = 0;
  post.fail = 1;
  xw = nn_binary(NN_MUL, x, w), loss = nn_sum(xw, NN_ALL_DIMS, 0);
  n_events = 0;
  CHECK_STATUS_FAILS(nn_backward(loss, NULL, 0), "the hook failed on purpose");
  CHECK(n_events == 2 && events[1].kind == 'c' && events[1].first == 1);
  nn_release(xw), nn_release(loss);
  nn_release(x), nn_release(w);
}

/* Backward from a leaf itself: its hooks run too. */
static void test_leaf_as_root(void) {
  nn_tensor *x = nn_full(NN_FLOAT32, 1, SZ(2), 1), *g = nn_full(NN_FLOAT32, 1, SZ(2), 3);
  nn_set_requires_grad(x, 1);
  recorder twice = {'g', x, 2, 0, 0, 0, 0, NULL}, post = {'p', x, 1, 0, 0, 0, 0, NULL};
  nn_add_hook(x, NN_HOOK_GRAD, record, &twice, NULL);
  nn_add_hook(x, NN_HOOK_POST_ACCUMULATE, record, &post, NULL);
  n_events = 0;
  CHECK_STATUS_OK(nn_backward(x, g, 0));
  CHECK(n_events == 2 && events[0].first == 3 && events[1].first == 6);
  CHECK_VALUES(x->grad, 0, 6, 6);
  nn_release(x), nn_release(g);
}

int main(void) {
  test_leaf_used_twice();
  test_replacement();
  test_linear_accumulating_in_place();
  test_computed_tensor();
  test_removal_and_lifetime();
  test_errors_and_reentry();
  test_callbacks();
  test_leaf_as_root();
  return check_finish();
}
