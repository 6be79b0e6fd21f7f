/* autograd.c: reverse-mode differentiation over the dynamic graph that ops
 * record as they run. Each op's backward lives beside its forward in the
 * op's own file; this file records nodes and runs them in reverse order. */
#include "hooks.h"

#include <stdio.h>

static int grad_mode = 1;

int nn_grad_enabled(void) { return grad_mode; }
void nn_set_grad_enabled(int enabled) { grad_mode = enabled != 0; }

nn_grad_guard nn_no_grad_begin(void) {
  nn_grad_guard g = {grad_mode};
  grad_mode = 0;
  return g;
}
void nn_no_grad_end(nn_grad_guard g) { grad_mode = g.previous; }

static inline int wants_grad(nn_tensor *t) {
  if (!t) return 0;
  if (t->base) nn_sync_view(t);
  return t->requires_grad;
}

/* inline: a hint to LTO to inline it on the hot path (CMakeLists.txt, inline-unit-growth) */
inline int nn_needs_grad(nn_tensor *a, nn_tensor *b, nn_tensor *c) {
  return grad_mode && (wants_grad(a) || wants_grad(b) || wants_grad(c));
}

/* ---- anomaly mode ---------------------------------------------------- */
static int anomaly_mode;
static char *(*anomaly_where)(void);

void nn_set_detect_anomaly(int enabled, char *(*where)(void)) {
  anomaly_mode = enabled != 0;
  anomaly_where = where;
}
int nn_detect_anomaly_enabled(void) { return anomaly_mode; }

/* ---- nodes ----------------------------------------------------------- */
static nn_node *free_nodes; /* recycled: recording a step allocates nothing */

static nn_node *node_new(const char *name, nn_backward_fn backward, int n_inputs) {
  nn_node *node = free_nodes;
  if (node) {
    free_nodes = (nn_node *)node->grad;
  } else if (!(node = malloc(sizeof *node))) {
    nn_error_set("%s: out of memory recording the graph", name);
    return NULL;
  }
  memset(node, 0, sizeof *node);
  node->refcount = 1;
  node->name = name;
  node->backward = backward;
  node->n_inputs = n_inputs;
  if (anomaly_mode && anomaly_where) node->where = anomaly_where();
  return node;
}

/* What a node holds of an input t that needs a gradient. A leaf is held
   itself: backward adds into its .grad, and it never gets a history. A
   computed tensor is held through an alias that carries t's grad_fn as it
   is now: an in-place op may give t a new history later, which must not
   change what this node differentiates; and the node never holds a tensor
   that could come to hold the node (a cycle no count would free). */
static nn_tensor *history_of(nn_tensor *t) {
  if (!t->grad_fn) return nn_retain(t);
  nn_tensor *h = nn_alias(t);
  if (!h) return NULL;
  h->requires_grad = 1;
  h->grad_fn = t->grad_fn;
  t->grad_fn->refcount++;
  return h;
}

static int node_set_inputs(nn_node *node, nn_tensor *a, nn_tensor *b, nn_tensor *c) {
  nn_tensor *in[NN_NODE_INPUTS] = {a, b, c};
  for (int i = 0; i < node->n_inputs; i++) {
    if (!in[i] || !in[i]->requires_grad) continue;
    if (!(node->inputs[i] = history_of(in[i]))) {
      nn_error_set("%s: out of memory recording the graph", node->name);
      return -1;
    }
  }
  return 0;
}

/* inline: a hint to LTO to inline it on the hot path (CMakeLists.txt, inline-unit-growth) */
inline nn_node *nn_node_attach(nn_tensor *out, const char *name, nn_backward_fn backward, int n_inputs,
                        nn_tensor *a, nn_tensor *b, nn_tensor *c) {
  nn_node *node = node_new(name, backward, n_inputs);
  if (!node) return NULL;
  if (node_set_inputs(node, a, b, c) < 0) {
    nn_node_release(node);
    return NULL;
  }
  out->grad_fn = node;
  out->requires_grad = 1;
  return node;
}

/* A saved value is held as inputs are, for the same reasons: a tensor with
   a history or a base through an alias (the node's input alias of it when
   there is one); a leaf, or a plain tensor, itself (a plain tensor that
   gains a history later is replaced by an alias then: plain_gains_history). */
void nn_node_save(nn_node *node, int i, nn_tensor *t) {
  nn_tensor *s = NULL;
  if (!t->grad_fn && !t->base) {
    s = nn_retain(t);
  } else {
    /* an input alias with t's grad_fn was made from t: a node has one output */
    for (int k = 0; k < node->n_inputs && !s; k++)
      if (t->grad_fn && node->inputs[k] && node->inputs[k]->grad_fn == t->grad_fn)
        s = nn_retain(node->inputs[k]);
    if (!s && !(s = nn_alias(t))) node->broken = 1;
  }
  node->saved[i] = s;
  node->saved_version[i] = t->storage->version;
}

void nn_node_save_output(nn_node *node, int i, const nn_tensor *out) {
  node->saved_output |= 1u << i;
  node->saved[i] = nn_alias(out);
  if (!node->saved[i]) node->broken = 1;
  node->saved_version[i] = out->storage->version;
}

static void node_free_graph(nn_node *node) {
  for (int i = 0; i < NN_NODE_INPUTS; i++) {
    nn_release(node->inputs[i]);
    node->inputs[i] = NULL;
  }
  for (int i = 0; i < NN_NODE_SAVED; i++) {
    nn_release(node->saved[i]);
    node->saved[i] = NULL;
  }
  nn_node_release(node->wrapped);
  node->wrapped = NULL;
  node->freed = 1;
}

/* Freeing a node releases its inputs, whose nodes may then be freed, and so
   on down a graph that can be millions of nodes deep (a loss summed over an
   epoch without item()). Recursion would overflow the C stack: a node
   whose count reaches zero joins a list, and the outermost release frees
   the list's nodes one after the other. */
static nn_node *release_list;
static int releasing;

static void node_dispose(nn_node *node) {
  node->release_next = release_list;
  release_list = node;
  if (releasing) return;
  releasing = 1;
  while (release_list) {
    nn_node *n = release_list;
    release_list = n->release_next;
    node_free_graph(n);
    if (n->hooks) nn_hooks_free(n->hooks);
    if (n->where || n->free_ctx) { /* anomaly mode's, a user's Function's: rare */
      free(n->where);
      if (n->free_ctx) n->free_ctx(n->ctx);
    }
    nn_release(n->grad);
    n->grad = (nn_tensor *)free_nodes;
    free_nodes = n;
  }
  releasing = 0;
}

void nn_node_release(nn_node *node) {
  if (node && --node->refcount == 0) node_dispose(node);
}

/* Backward's work lists, reused from one pass to the next. */
static nn_node **order, **ready;
static size_t order_cap;
static unsigned current_mark;

static int grow_lists(size_t need) {
  if (need <= order_cap) return 0;
  size_t cap = order_cap ? order_cap * 2 : 64;
  while (cap < need) cap *= 2;
  nn_node **o = realloc(order, cap * sizeof *o);
  if (!o) return -1;
  order = o;
  nn_node **r = realloc(ready, cap * sizeof *r);
  if (!r) return -1;
  ready = r;
  order_cap = cap;
  return 0;
}

const char *nn_grad_fn_name(const nn_tensor *t) { return t->grad_fn ? t->grad_fn->name : NULL; }

/* ---- views and in-place history ------------------------------------- */
/* The region of a gradient of base's shape (contiguous, in a storage of its
   own) that the view node's geometry covers. */
static nn_tensor *view_region(const nn_node *node, nn_tensor *grad) {
  return nn_tensor_wrap(grad->storage, grad->dtype, node->ndim, node->size, node->ints,
                        grad->offset + node->offset);
}

static void set_view_geometry(nn_node *node, const nn_tensor *view, const nn_tensor *base) {
  node->ndim = view->ndim;
  for (int i = 0; i < view->ndim; i++) {
    node->size[i] = view->size[i];
    node->ints[i] = view->stride[i];
  }
  node->offset = view->offset - base->offset;
}

/* A view's gradient lands on its region of a zero gradient of the base's
   shape; an expanded view's elements share a place, where they add up, so
   the loop runs in order. A base that is not contiguous is laid out as it
   is in its storage (strides are never negative: the span from its first
   element holds it and all its views), and made contiguous after. */
static int view_take_history(nn_tensor *v);

/* ---- views while a pass records itself (create_graph) -------------------
   The gradient is built by recorded writes: into a view of a fresh tensor
   that takes its history from it, so that the write is recorded
   (CopySlices) and the result stays differentiable. */
static nn_tensor *recorded_view(nn_tensor *base, int ndim, const int64_t *size, const int64_t *stride,
                                int64_t offset) {
  nn_tensor *v = nn_tensor_wrap(base->storage, base->dtype, ndim, size, stride, base->offset + offset);
  if (!v) return NULL;
  v->base = nn_retain(base);
  v->view_version = base->storage->version;
  if (view_take_history(v) < 0) {
    nn_release(v);
    return NULL;
  }
  return v;
}

/* A zero gradient laid out for base: its shape when contiguous, else the
   span of storage from its first element (see as_strided_backward). */
static nn_tensor *zeros_for_base(const nn_tensor *base, nn_tensor *g) {
  if (nn_is_contiguous(base)) return nn_full_like_shape(g, g->dtype, base->ndim, base->size, 0);
  int64_t span = nn_numel(base) > 0;
  for (int i = 0; i < base->ndim && span; i++) span += (base->size[i] - 1) * base->stride[i];
  return nn_full_like_shape(g, g->dtype, 1, &span, 0);
}

/* as_strided_backward, recorded: g copied into its region (the copy
   records), then the base laid out from the buffer (a recorded view). An
   expanded view's elements share places, where their gradients add up:
   g is summed over those dims first (views overlap in no other way). */
static int as_strided_backward_recorded(nn_node *node, nn_tensor *g, nn_tensor **gi) {
  nn_tensor *base = node->inputs[0];
  int64_t size[NN_MAX_DIMS];
  unsigned shared = 0;
  for (int i = 0; i < node->ndim; i++) {
    int spread = node->ints[i] == 0 && node->size[i] > 1;
    shared |= (unsigned)spread << i;
    size[i] = spread ? 1 : node->size[i];
  }
  nn_tensor *summed = shared ? nn_sum_dims(g, shared, 1, 0) : nn_retain(g);
  nn_tensor *buffer = summed ? zeros_for_base(base, g) : NULL;
  nn_tensor *region = buffer ? recorded_view(buffer, node->ndim, size, node->ints, node->offset) : NULL;
  int status = region ? nn_inplace_copy("backward", region, summed) : -1;
  nn_release(region), nn_release(summed);
  if (status == 0 && !nn_is_contiguous(base)) {
    nn_tensor *laid_out = recorded_view(buffer, base->ndim, base->size, base->stride, 0);
    nn_release(buffer);
    buffer = laid_out ? nn_clone(laid_out) : NULL;
    nn_release(laid_out);
  }
  if (status < 0 || !buffer) {
    nn_release(buffer);
    return -1;
  }
  gi[0] = buffer;
  return 0;
}

static int as_strided_backward(nn_node *node, nn_tensor *g, nn_tensor **gi) {
  nn_tensor *base = node->inputs[0], *buffer;
  if (nn_backward_records(g, NULL, NULL)) return as_strided_backward_recorded(node, g, gi);
  int contiguous = nn_is_contiguous(base);
  buffer = zeros_for_base(base, g);
  nn_tensor *region = buffer ? view_region(node, buffer) : NULL;
  nn_tensor *laid_out = region && !contiguous
                            ? nn_tensor_wrap(buffer->storage, g->dtype, base->ndim, base->size,
                                             base->stride, buffer->offset)
                            : NULL;
  if (!region || (!contiguous && !laid_out)) {
    nn_release(region), nn_release(buffer);
    return -1;
  }
  int added = nn_add_into("backward", region, g);
  nn_release(region);
  if (added < 0) {
    nn_release(buffer), nn_release(laid_out);
    return -1;
  }
  if (!contiguous) {
    nn_release(buffer);
    buffer = nn_clone(laid_out);
    nn_release(laid_out);
    if (!buffer) return -1;
  }
  gi[0] = buffer;
  return 0;
}

/* The view's history, from its base's. */
static int view_take_history(nn_tensor *v) {
  nn_tensor *base = v->base;
  v->view_version = v->storage->version;
  if (!base->requires_grad) return 0;
  nn_node *node = node_new("AsStridedBackward0", as_strided_backward, 1);
  if (!node) return -1;
  if (node_set_inputs(node, base, NULL, NULL) < 0) {
    nn_node_release(node);
    return -1;
  }
  set_view_geometry(node, v, base);
  nn_node_release(v->grad_fn);
  v->grad_fn = node;
  v->requires_grad = 1;
  return 0;
}

/* A view whose leaf status was given by the user (requires_grad_ on a
   view) keeps it: nothing is regenerated for a leaf. */
static int view_sync(nn_tensor *t) {
  if (!t->base || t->view_version == t->storage->version) return 0;
  if (t->requires_grad && !t->grad_fn) return 0;
  return view_take_history(t);
}

void nn_sync_view(nn_tensor *t) {
  if (view_sync(t) < 0) t->view_version--; /* out of memory: try again on next use */
}

/* ---- leaves ---------------------------------------------------------- */
int nn_set_requires_grad(nn_tensor *t, int requires_grad) {
  nn_sync_view(t);
  if (requires_grad && !nn_dtype_is_floating(t->dtype)) {
    nn_error_set("requires_grad: only floating-point tensors can require gradients, this one is %s",
                 nn_dtype_name(t->dtype));
    return -1;
  }
  if (!requires_grad && t->grad_fn) {
    nn_error_set("requires_grad: a tensor computed from others cannot stop requiring grad; "
                 "use detach() instead");
    return -1;
  }
  t->requires_grad = requires_grad != 0;
  if (requires_grad && t->base) { /* a view made a leaf is a tensor of its own to autograd */
    nn_release(t->base);
    t->base = NULL;
  }
  return 0;
}

int nn_set_grad(nn_tensor *t, nn_tensor *grad) {
  if (grad && grad->device != t->device) {
    nn_error_set("grad: assigned gradient is on %s, the tensor on %s", nn_device_name(grad->device),
                 nn_device_name(t->device));
    return -1;
  }
  if (grad && (!nn_same_shape(t, grad) || grad->dtype != t->dtype)) {
    char a[96], b[96];
    nn_error_set("grad: assigned gradient is %s %s, the tensor is %s %s",
                 nn_shape_string(grad, b, sizeof b), nn_dtype_name(grad->dtype),
                 nn_shape_string(t, a, sizeof a), nn_dtype_name(t->dtype));
    return -1;
  }
  nn_retain(grad);
  nn_release(t->grad);
  t->grad = grad;
  t->grad_zero_deferred = 0;
  return 0;
}

/* A small contiguous CPU gradient (every layer of a small model) is
   cleared here: the same zero bits as nn_fill_'s, without its dispatch and
   iterator (about 100 instructions a parameter). A large one, or one a
   capture must see, goes through nn_fill_ (its threads, its recording). */
void nn_zero_grad(nn_tensor *t) {
  nn_tensor *g = t->grad;
  if (!g) return;
  t->grad_zero_deferred = 0;
  size_t bytes = (size_t)nn_numel(g) * nn_dtype_size(g->dtype);
  if (!nn_capture_active && g->device == NN_CPU && g->contiguous && bytes <= 4096) {
    memset(nn_data(g), 0, bytes);
    nn_bump_version(g);
    return;
  }
  nn_fill_(g, 0);
}

/* The zeros can wait where nothing can read the gradient but through t:
   t alone holds it, and it alone its storage (no view of it, no bucket it
   lives in, no Lua value of it, no plan that writes it); and no capture
   records (a plan must see the fill). The version moves now, as the fill
   would move it. */
void nn_zero_grad_deferred(nn_tensor *t) {
  nn_tensor *g = t->grad;
  if (g && !nn_capture_active && g->device == NN_CPU && g->contiguous && g->refcount == 1 &&
      g->storage->refcount == 1) {
    t->grad_zero_deferred = 1;
    nn_bump_version(g);
    return;
  }
  nn_zero_grad(t);
}

/* Writes the zeros a deferred zero_grad left: on the pool's threads where
   large, by memset where small or while a capture records (the plan must
   not take them as a step of its own: they belong to the zero_grad before
   it). */
static void write_deferred_zeros(nn_tensor *t) {
  nn_tensor *g = t->grad;
  size_t bytes = (size_t)nn_numel(g) * nn_dtype_size(g->dtype);
  unsigned version = g->storage->version;
  t->grad_zero_deferred = 0;
  if (nn_capture_active || bytes <= 4096 || nn_fill_(g, 0) < 0) memset(nn_data(g), 0, bytes);
  g->storage->version = version; /* the zero_grad moved it already */
}

nn_tensor *nn_leaf_grad(nn_tensor *t) {
  if (t->grad_zero_deferred) write_deferred_zeros(t);
  return t->grad;
}

/* ---- in-place ops ---------------------------------------------------- */
int nn_inplace_begin(nn_inplace *ip, const char *op, nn_tensor *t, nn_tensor *other,
                     int overlap_ok) {
  memset(ip, 0, sizeof *ip);
  ip->op = op;
  ip->target = t;
  ip->other = other;
  if (!overlap_ok) {
    for (int i = 0; i < t->ndim; i++) {
      if (t->stride[i] == 0 && t->size[i] > 1) {
        nn_error_set("%s: unsupported operation: more than one element of the written-to tensor "
                     "refers to a single memory location (an expanded view); clone() it first",
                     op);
        return -1;
      }
    }
  }
  if (!grad_mode) return 0;
  if (view_sync(t) < 0 || (other && view_sync(other) < 0)) return -1;
  nn_tensor *base = t->base;
  if (t->requires_grad && !t->grad_fn) {
    nn_error_set("%s: a leaf tensor that requires grad cannot be changed in place "
                 "(do it inside nn.no_grad)", op);
    return -1;
  }
  if (base && base->requires_grad && !base->grad_fn) {
    nn_error_set("%s: a view of a leaf tensor that requires grad cannot be changed in place "
                 "(do it inside nn.no_grad)", op);
    return -1;
  }
  if (base && base->requires_grad && !t->requires_grad) {
    nn_error_set("%s: this view of a tensor that requires grad was taken inside nn.no_grad, so "
                 "autograd cannot follow a change through it; take the view outside nn.no_grad, "
                 "or change it inside nn.no_grad", op);
    return -1;
  }
  if (!nn_dtype_is_floating(t->dtype) || !(t->requires_grad || (other && other->requires_grad)))
    return 0;
  if (base && !nn_is_contiguous(base)) {
    nn_error_set("%s: autograd cannot follow an in-place change of a view of a tensor that is "
                 "not contiguous; use the out-of-place form", op);
    return -1;
  }
  ip->base = base;
  ip->self = history_of(t);
  if (!ip->self) {
    nn_error_set("%s: out of memory recording the graph", op);
    return -1;
  }
  return 1;
}

void nn_inplace_cancel(nn_inplace *ip) {
  nn_release(ip->self);
  ip->self = NULL;
}

int nn_check_inplace(const char *op, nn_tensor *t) {
  nn_inplace ip;
  int status = nn_inplace_begin(&ip, op, t, NULL, 0);
  nn_inplace_cancel(&ip);
  return status < 0 ? -1 : 0;
}

static int zero_backward(nn_node *node, nn_tensor *g, nn_tensor **gi) {
  (void)g;
  for (int k = 0; k < node->n_inputs; k++) {
    nn_tensor *in = node->inputs[k];
    if (in && !(gi[k] = nn_full_like_shape(in, in->dtype, in->ndim, in->size, 0))) return -1;
  }
  return 0;
}

/* While a recording pass runs CopySlices, the wrapped op's saved outputs
   (exp_'s, sigmoid_'s) carry their history as what they are: the view's
   region of the base after the write, whose history is this node (the
   base is contiguous, and needs a gradient: the op wrote into a view that
   needs one). kept[] takes the plain aliases. */
static int lend_view_outputs(nn_node *node, nn_tensor **kept) {
  nn_node *op = node->wrapped;
  nn_tensor *base = node->inputs[0];
  for (int k = 0; k < NN_NODE_SAVED; k++) {
    nn_tensor *s = op->saved[k];
    if (!(op->saved_output >> k & 1) || !s || s->grad_fn) continue;
    if (!base) return nn_first_order_only(node->name);
    int64_t stride[NN_MAX_DIMS];
    nn_contiguous_strides(base->ndim, base->size, stride);
    nn_tensor *after = nn_tensor_wrap(s->storage, s->dtype, base->ndim, base->size, stride,
                                      s->offset - node->offset);
    nn_tensor *h = NULL;
    if (after) {
      after->requires_grad = 1;
      after->grad_fn = node;
      node->refcount++;
      h = recorded_view(after, node->ndim, node->size, node->ints, node->offset);
      nn_release(after);
    }
    if (!h) {
      for (int j = 0; j < k; j++)
        if (kept[j]) nn_release(op->saved[j]), op->saved[j] = kept[j], kept[j] = NULL;
      return -1;
    }
    kept[k] = s;
    op->saved[k] = h;
  }
  return 0;
}

/* The base's gradient, with the view's region replaced by what the
   in-place op's backward gives for the view as it was: the op's other
   operands get theirs from that backward too (PyTorch's CopySlices). */
static int copy_slices_backward(nn_node *node, nn_tensor *g, nn_tensor **gi) {
  nn_node *op = node->wrapped;
  int records = nn_recording_backward(); /* the op's gradients may carry history even where g has none */
  nn_tensor *kept[NN_NODE_SAVED] = {NULL, NULL, NULL};
  if (records && op->saved_output && lend_view_outputs(node, kept) < 0) return -1;
  nn_tensor *grad = nn_clone(g); /* contiguous, and a storage of its own */
  nn_tensor *region = !grad ? NULL : records ? recorded_view(grad, node->ndim, node->size, node->ints, node->offset)
                                            : view_region(node, grad);
  nn_tensor *grad_view = region ? nn_clone(region) : NULL;
  nn_tensor *op_gi[NN_NODE_INPUTS] = {NULL, NULL, NULL};
  int status = grad_view ? op->backward(op, grad_view, op_gi) : -1;
  for (int k = 0; k < NN_NODE_SAVED; k++) { /* the plain saved outputs back */
    if (!kept[k]) continue;
    nn_release(op->saved[k]);
    op->saved[k] = kept[k];
  }
  if (status == 0 && node->inputs[0] && records)
    status = op_gi[0] ? nn_inplace_copy("backward", region, op_gi[0]) : nn_inplace_zero(region);
  else if (status == 0 && node->inputs[0])
    status = op_gi[0] ? nn_copy_(region, op_gi[0]) : nn_fill_(region, 0);
  nn_release(op_gi[0]);
  nn_release(grad_view);
  nn_release(region);
  if (status == 0 && node->inputs[0]) gi[0] = grad;
  else nn_release(grad);
  for (int k = 1; k < NN_NODE_INPUTS; k++) {
    if (status == 0) gi[k] = op_gi[k];
    else nn_release(op_gi[k]);
  }
  return status;
}

/* Nodes hold a tensor without a history itself when they save it (see
   nn_node_save). When such a tensor t gets one, a node that holds t and
   that t's new history reaches would make a cycle (t -> its node -> ...
   -> that node -> t) that reference counts never free: every such hold
   becomes an alias. The search follows what holds what (inputs, saved
   values and their histories, CopySlices' op) from t's new node; it runs
   once in a tensor's life, when its first history is recorded. */
static nn_node **search;
static size_t search_cap;

/* search's room for need nodes */
static int grow_search(size_t need) {
  if (need <= search_cap) return 0;
  size_t cap = search_cap ? search_cap * 2 : 64;
  while (cap < need) cap *= 2;
  nn_node **s = realloc(search, cap * sizeof *s);
  if (!s) return -1;
  search = s;
  search_cap = cap;
  return 0;
}

static int plain_gains_history(nn_tensor *t) {
  /* its own stack and mark: a recording backward pass (whose lists and
     marks are backward's) may run an in-place op */
  unsigned mark = ++current_mark;
  size_t n = 0;
  if (grow_search(1) < 0) goto oom;
  search[n++] = t->grad_fn;
  t->grad_fn->mark = mark;
  while (n > 0) {
    nn_node *node = search[--n];
    nn_node *next[NN_NODE_INPUTS + NN_NODE_SAVED + 1];
    int m = 0;
    for (int k = 0; k < NN_NODE_SAVED; k++) {
      if (node->saved[k] == t) {
        nn_tensor *alias = nn_alias(t);
        if (!alias) goto oom;
        nn_release(node->saved[k]);
        node->saved[k] = alias;
      } else if (node->saved[k]) {
        next[m++] = node->saved[k]->grad_fn;
      }
    }
    for (int k = 0; k < NN_NODE_INPUTS; k++)
      if (node->inputs[k]) next[m++] = node->inputs[k]->grad_fn;
    next[m++] = node->wrapped;
    for (int k = 0; k < m; k++) {
      if (!next[k] || next[k]->mark == mark) continue;
      if (grow_search(n + 1) < 0) goto oom;
      next[k]->mark = mark;
      search[n++] = next[k];
    }
  }
  return 0;
oom:
  nn_error_set("out of memory recording the graph");
  return -1;
}

/* Makes node (one reference, handed over) the history of the in-place
   op's target: of the target itself, or through CopySlices of its base. */
static int inplace_install(nn_inplace *ip, nn_node *node) {
  nn_tensor *t = ip->target, *base = ip->base;
  if (!base) {
    int plain = !t->grad_fn;
    nn_node_release(t->grad_fn);
    t->grad_fn = node;
    t->requires_grad = 1;
    return plain ? plain_gains_history(t) : 0;
  }
  nn_node *slices = node_new("CopySlices", copy_slices_backward, node->n_inputs);
  if (!slices) {
    nn_node_release(node);
    return -1;
  }
  slices->wrapped = node;
  set_view_geometry(slices, t, base);
  if (base->requires_grad && !(slices->inputs[0] = history_of(base))) {
    nn_node_release(slices);
    nn_error_set("%s: out of memory recording the graph", ip->op);
    return -1;
  }
  for (int k = 1; k < node->n_inputs; k++) slices->inputs[k] = nn_retain(node->inputs[k]);
  int plain = !base->grad_fn;
  nn_node_release(base->grad_fn);
  base->grad_fn = slices;
  base->requires_grad = 1;
  if (plain && plain_gains_history(base) < 0) return -1;
  return view_take_history(t);
}

int nn_inplace_commit(nn_inplace *ip, nn_tensor *result, const char *zero_grad_name) {
  nn_tensor *t = ip->target, *self_copy = NULL;
  nn_tensor *outputs[NN_NODE_SAVED] = {NULL, NULL, NULL};
  nn_node *node = NULL;
  if (!result) goto fail;
  node = result->grad_fn;
  if (!node) {
    node = nn_node_attach(result, zero_grad_name, zero_backward, 2, ip->self, ip->other, NULL);
    if (!node) goto fail;
  }
  /* Everything that can fail before the write, so that a failure leaves t
     as it was. */
  if (node->saved[0] && node->saved[0]->storage == t->storage) {
    nn_grad_guard guard = nn_no_grad_begin();
    self_copy = nn_clone(node->saved[0]);
    nn_no_grad_end(guard);
    if (!self_copy) goto fail;
    /* the old values keep their history: a backward pass that records
       itself differentiates through them (mul_'s gradient for its other
       operand, sin_'s cos(self)) */
    if (node->saved[0]->grad_fn) {
      self_copy->grad_fn = node->saved[0]->grad_fn;
      self_copy->grad_fn->refcount++;
      self_copy->requires_grad = 1;
    }
  }
  for (int k = 0; k < NN_NODE_SAVED; k++)
    if (node->saved[k] && node->saved[k]->storage == result->storage &&
        !(outputs[k] = nn_alias(t)))
      goto fail;
  if (nn_copy_(t, result) < 0) goto fail;
  if (self_copy) {
    nn_release(node->saved[0]);
    node->saved[0] = self_copy;
    node->saved_version[0] = self_copy->storage->version;
  }
  for (int k = 0; k < NN_NODE_SAVED; k++) {
    if (!outputs[k]) continue;
    nn_release(node->saved[k]);
    node->saved[k] = outputs[k];
    node->saved_version[k] = t->storage->version;
  }
  result->grad_fn = NULL; /* its reference now goes to t */
  result->requires_grad = 0;
  nn_release(result);
  nn_inplace_cancel(ip);
  return inplace_install(ip, node);
fail:
  nn_release(self_copy);
  for (int k = 0; k < NN_NODE_SAVED; k++) nn_release(outputs[k]);
  nn_release(result);
  nn_inplace_cancel(ip);
  return -1;
}

int nn_inplace_commit_written(nn_inplace *ip, const char *name) {
  nn_node *node = node_new(name, zero_backward, 1);
  int status = node ? node_set_inputs(node, ip->self, NULL, NULL) : -1;
  nn_inplace_cancel(ip);
  if (status < 0) {
    nn_node_release(node);
    return -1;
  }
  return inplace_install(ip, node);
}

static int fill_recorded(const char *op, const char *node_name, nn_tensor *t, double value) {
  nn_inplace ip;
  int record = nn_inplace_begin(&ip, op, t, NULL, 1);
  if (record < 0) return -1;
  if (nn_fill_(t, value) < 0) {
    nn_inplace_cancel(&ip);
    return -1;
  }
  return record ? nn_inplace_commit_written(&ip, node_name) : 0;
}

int nn_inplace_fill(const char *op, nn_tensor *t, double value) {
  return fill_recorded(op, "FillBackward2", t, value);
}

int nn_inplace_zero(nn_tensor *t) { return fill_recorded("zero_", "ZeroBackward0", t, 0); }

/* copy_: the destination's old values get no gradient; the source gets the
   gradient summed to its shape, in its dtype. */
static int copy_backward(nn_node *node, nn_tensor *g, nn_tensor **gi) {
  nn_tensor *dst = node->inputs[0], *src = node->inputs[1];
  if (dst && !(gi[0] = nn_full_like_shape(dst, dst->dtype, dst->ndim, dst->size, 0))) return -1;
  if (src) {
    nn_tensor *summed = nn_sum_to_shape(g, src->ndim, src->size);
    gi[1] = summed ? nn_to_dtype(summed, src->dtype) : NULL;
    nn_release(summed);
    if (!gi[1]) return -1;
  }
  return 0;
}

int nn_inplace_copy(const char *op, nn_tensor *dst, nn_tensor *src) {
  nn_inplace ip;
  int record = nn_inplace_begin(&ip, op, dst, src, 0);
  if (record <= 0) return record < 0 ? -1 : nn_copy_(dst, src);
  nn_tensor *result = nn_empty_like(dst);
  if (!result || nn_copy_(result, src) < 0 ||
      !nn_node_attach(result, "CopyBackwards", copy_backward, 2, ip.self, src, NULL)) {
    nn_release(result);
    nn_inplace_cancel(&ip);
    return -1;
  }
  return nn_inplace_commit(&ip, result, NULL);
}

/* ---- backward -------------------------------------------------------- */
/* Set while a pass records itself (create_graph). */
static int recording;

int nn_recording_backward(void) { return recording && grad_mode; }

int nn_first_order_only(const char *op) {
  nn_error_set("%s: second-order gradients are not implemented", op);
  return -1;
}

/* acc = acc + g, out of place: a gradient may be shared by several inputs. */
static int accumulate(nn_tensor **acc, nn_tensor *g) {
  if (!*acc) {
    *acc = nn_retain(g);
    return 0;
  }
  nn_tensor *sum = nn_binary(NN_ADD, *acc, g);
  if (!sum) return -1;
  nn_release(*acc);
  *acc = sum;
  return 0;
}

static int accumulate_leaf(nn_tensor *leaf, nn_tensor *g) {
  if (g->dtype != leaf->dtype || !nn_same_shape(g, leaf)) {
    char a[96], b[96];
    nn_error_set("backward: gradient of shape %s %s for a leaf of shape %s %s",
                 nn_shape_string(g, a, sizeof a), nn_dtype_name(g->dtype),
                 nn_shape_string(leaf, b, sizeof b), nn_dtype_name(leaf->dtype));
    return -1;
  }
  nn_tensor *acc = nn_leaf_grad(leaf);
  if (recording) {
    /* .grad keeps the gradient's history: a new tensor each time, never a
       write into one that a recorded node may have saved */
    nn_tensor *sum = acc ? nn_binary(NN_ADD, acc, g) : g->requires_grad ? nn_retain(g) : nn_clone(g);
    if (!sum) return -1;
    nn_release(leaf->grad);
    leaf->grad = sum;
    return 0;
  }
  if (acc && acc->dtype == NN_FLOAT32 && nn_is_contiguous(acc) && nn_is_contiguous(g))
    return nn_add_into("backward", acc, g);
  if (acc) return nn_binary_(NN_ADD, acc, g);
  /* The leaf keeps its own copy: g may be shared with other nodes. */
  nn_tensor *copy = nn_clone(g);
  if (!copy) return -1;
  leaf->grad = copy;
  return 0;
}

/* ---- hooked leaves --------------------------------------------------- */
/* The leaves with hooks that the current pass reaches. Each use of one (a
   node input) hands its gradient over once; after the last, the leaf's
   hooks run (nn.h: NN_HOOK_GRAD on the sum, then NN_HOOK_POST_ACCUMULATE). */
static nn_tensor **hooked;
static size_t hooked_count, hooked_cap;

static int expect_leaf_use(nn_tensor *leaf, unsigned mark) {
  nn_hooks *h = leaf->hooks;
  if (h->mark != mark) {
    if (hooked_count == hooked_cap) {
      size_t cap = hooked_cap ? hooked_cap * 2 : 16;
      nn_tensor **grown = realloc(hooked, cap * sizeof *grown);
      if (!grown) return -1;
      hooked = grown;
      hooked_cap = cap;
    }
    hooked[hooked_count++] = leaf; /* the graph holds it through the pass */
    h->mark = mark;
    h->pending = 0;
    h->received = 0;
  }
  h->pending++;
  return 0;
}

/* The gradient of a hooked leaf is complete: its hooks run. */
static int finish_leaf(nn_tensor *leaf) {
  nn_hooks *h = leaf->hooks;
  if (h->incoming) {
    nn_tensor *g = h->incoming;
    h->incoming = NULL;
    int status = nn_hooks_run_grad(h, &g, leaf);
    if (status == 0) status = accumulate_leaf(leaf, g);
    nn_release(g);
    if (status < 0) return -1;
  }
  return h->received && leaf->grad ? nn_hooks_run_post(h, nn_leaf_grad(leaf)) : 0;
}

/* One use of a hooked leaf hands over g (NULL when it gave nothing, or
   when added_in_place: it added its part into leaf->grad itself). */
static int leaf_use_done(nn_tensor *leaf, nn_tensor *g, int added_in_place) {
  nn_hooks *h = leaf->hooks;
  if (g) {
    /* With NN_HOOK_GRAD hooks, the parts add up apart from .grad. */
    if (h->n_grad > 0 ? accumulate(&h->incoming, g) : accumulate_leaf(leaf, g)) return -1;
  }
  h->received |= g != NULL || added_in_place;
  return --h->pending == 0 ? finish_leaf(leaf) : 0;
}

/* A leaf that backward starts from: its gradient is g. */
static int leaf_backward(nn_tensor *leaf, nn_tensor *g) {
  nn_tensor *grad = nn_retain(g);
  int status = nn_hooks_run_grad(leaf->hooks, &grad, leaf);
  if (status == 0) status = accumulate_leaf(leaf, grad);
  nn_release(grad);
  return status == 0 ? nn_hooks_run_post(leaf->hooks, nn_leaf_grad(leaf)) : -1;
}

static void forget_hooked_leaves(void) {
  for (size_t i = 0; i < hooked_count; i++) {
    nn_hooks *h = hooked[i]->hooks;
    nn_release(h->incoming);
    h->incoming = NULL;
    h->mark = 0;
  }
  hooked_count = 0;
}

/* ---- one pass over a graph --------------------------------------------- */
/* What a pass is asked for: backward's (n_targets 0: every leaf's .grad
   takes its gradient), or nn_grad's (the gradients of the targets only,
   into captured; no .grad is touched and only the nodes that lead to a
   target run). */
typedef struct {
  int retain_graph;
  int n_targets;
  nn_tensor *const *targets;
  nn_tensor **captured;
} graph_pass;

/* node->needed's bits in an nn_grad pass */
#define NEEDED_VISIT 1u /* a target is at it or below it */
#define NEEDED_RUN 2u   /* below it: its backward must run */

static int is_target_leaf(const graph_pass *p, const nn_tensor *t) {
  for (int i = 0; i < p->n_targets; i++)
    if (p->targets[i] == t && !t->grad_fn) return 1;
  return 0;
}

/* Which nodes lead to a target: the graph in topological order (Kahn's, on
   a copy of the counts), then each node after every node below it. */
static void mark_needed(const graph_pass *p, size_t n) {
  size_t head = 0, tail = 0;
  for (size_t i = 0; i < n; i++) order[i]->topo_pending = order[i]->pending;
  for (size_t i = 0; i < n; i++)
    if (order[i]->topo_pending == 0) ready[tail++] = order[i];
  while (head < tail) {
    nn_node *node = ready[head++];
    for (int k = 0; k < node->n_inputs; k++) {
      nn_tensor *in = node->inputs[k];
      if (in && in->grad_fn && --in->grad_fn->topo_pending == 0) ready[tail++] = in->grad_fn;
    }
  }
  for (size_t i = tail; i-- > 0;) {
    nn_node *node = ready[i];
    unsigned needed = 0;
    for (int t = 0; t < p->n_targets; t++)
      if (p->targets[t]->grad_fn == node) needed |= NEEDED_VISIT;
    for (int k = 0; k < node->n_inputs; k++) {
      nn_tensor *in = node->inputs[k];
      if (in && (in->grad_fn ? in->grad_fn->needed != 0 : is_target_leaf(p, in)))
        needed |= NEEDED_VISIT | NEEDED_RUN;
    }
    node->needed = (int)needed;
  }
}

/* While a recording pass runs a node, the outputs it saved carry the node
   itself as their history (PyTorch's saved outputs do the same), so that
   what its backward computes from them is differentiated through the op
   again; kept[] takes the plain aliases back afterwards. */
static int lend_outputs(nn_node *node, nn_tensor **kept) {
  for (int k = 0; k < NN_NODE_SAVED; k++) {
    nn_tensor *s = node->saved[k];
    if (!(node->saved_output >> k & 1) || !s || s->grad_fn) continue;
    nn_tensor *h = nn_alias(s);
    if (!h) return -1;
    h->requires_grad = 1;
    h->grad_fn = node;
    node->refcount++;
    kept[k] = s;
    node->saved[k] = h;
  }
  return 0;
}

static void take_outputs_back(nn_node *node, nn_tensor **kept) {
  for (int k = 0; k < NN_NODE_SAVED; k++) {
    if (!kept[k]) continue;
    nn_release(node->saved[k]);
    node->saved[k] = kept[k];
    kept[k] = NULL;
  }
}

/* Anomaly mode: a gradient with a NaN stops the pass, naming the op and
   where it was called. */
static int check_anomaly(nn_node *node, nn_tensor *const *grad_in) {
  for (int k = 0; k < node->n_inputs; k++) {
    if (!grad_in[k] || !nn_dtype_is_floating(grad_in[k]->dtype)) continue;
    nn_grad_guard guard = nn_no_grad_begin();
    nn_tensor *nan = nn_unary(NN_ISNAN, grad_in[k]);
    nn_tensor *any = nan ? nn_any(nan, nn_dim_mask(nan->ndim, NN_ALL_DIMS), 0) : NULL;
    nn_no_grad_end(guard);
    double v = 0;
    int found = any && nn_item(any, &v) == 0 ? v != 0 : -1;
    nn_release(nan), nn_release(any);
    if (found < 0) return -1;
    if (found) {
      nn_error_set("backward: anomaly: %s returned nan values in its gradient for input %d; "
                   "the op was called at %s", node->name, k + 1,
                   node->where ? node->where : "(a place not recorded: the op was called before "
                                               "anomaly mode was turned on)");
      return -1;
    }
  }
  return 0;
}

/* One node of a plain pass (see run_graph): what run_graph's loop does
   for it when nothing captures, records or hooks, in that order: its
   backward (adding straight into the .grad of leaves that have one), its
   inputs' gradients accumulated, the inputs whose consumers are all done
   made ready, its graph freed unless retained. */
static int plain_node(nn_node *node, int retain_graph, size_t *tail) {
  nn_tensor *grad_in[NN_NODE_INPUTS] = {NULL, NULL, NULL};
  int status = 0, n_inputs = node->n_inputs;
  if (node->grad) {
    unsigned zeros = 0;
    for (int k = 0; k < n_inputs; k++) {
      nn_tensor *in = node->inputs[k], *acc;
      node->accumulate_into[k] = in && !in->grad_fn && (acc = in->grad) && acc->dtype == in->dtype &&
                                         acc->contiguous && nn_same_shape(acc, in)
                                     ? acc
                                     : NULL;
      if (in && in->grad_zero_deferred) { /* written over where the op can, else zeros first */
        /* (a plan takes what it records as what every replay does) */
        if (node->accumulate_into[k] && (node->overwrites_into >> k & 1) && !nn_capture_active)
          zeros |= 1u << k;
        else write_deferred_zeros(in);
      }
    }
    node->into_zeros = zeros;
    status = node->backward(node, node->grad, grad_in) < 0 ? -1 : 0;
    /* what the backward wrote over holds its gradient now; the rest still
       reads as zeros (a gradient handed back is added after they are written) */
    for (int k = 0; k < n_inputs; k++)
      if ((zeros & ~node->into_zeros) >> k & 1) node->inputs[k]->grad_zero_deferred = 0;
    node->into_zeros = 0;
    for (int k = 0; k < n_inputs; k++) node->accumulate_into[k] = NULL;
  }
  for (int k = 0; k < n_inputs; k++) {
    nn_tensor *in = node->inputs[k], *g = grad_in[k];
    if (in && g && status == 0) {
      if (in->grad_fn ? accumulate(&in->grad_fn->grad, g) : accumulate_leaf(in, g)) status = -1;
    }
    if (in && in->grad_fn && --in->grad_fn->pending == 0) ready[(*tail)++] = in->grad_fn;
    nn_release(g);
  }
  nn_release(node->grad);
  node->grad = NULL;
  if (!retain_graph) node_free_graph(node);
  return status;
}

static int run_graph(int n_roots, nn_node *const *roots, nn_tensor *const *seeds,
                     const graph_pass *p) {
  size_t n = 0, head = 0, tail = 0, n_first;
  unsigned mark = ++current_mark;
  int status = 0, capture = p->n_targets > 0;
  /* a plain backward adds leaves' gradients straight into their .grad */
  int into_leaves = !capture && !recording;
  /* plain: a backward that neither records itself nor captures, without
     anomaly mode, to no leaf with hooks (a training step's): each node
     without hooks runs through plain_node, which skips the checks those
     need */
  int plain = into_leaves && !anomaly_mode;
  /* First pass: find every node and count, for each, the consumers it
     waits for; refuse a freed graph before anything is touched. */
  if (grow_lists((size_t)n_roots) < 0) goto oom;
  for (int r = 0; r < n_roots; r++) {
    if (roots[r]->mark == mark) continue;
    roots[r]->mark = mark;
    roots[r]->pending = 0;
    order[n++] = roots[r];
  }
  n_first = n;
  for (size_t i = 0; i < n; i++) {
    nn_node *node = order[i];
    if (node->freed) {
      nn_error_set("backward: the graph through %s was already freed by an earlier backward; "
                   "call backward(true) the first time to keep it", node->name);
      return -1;
    }
    for (int k = 0; k < node->n_inputs; k++) {
      nn_tensor *in = node->inputs[k];
      if (in && !in->grad_fn && in->hooks && !capture) {
        plain = 0;
        if (expect_leaf_use(in, mark) < 0) goto oom;
      }
      if (!in || !in->grad_fn) continue;
      nn_node *child = in->grad_fn;
      if (child->mark != mark) {
        if (grow_lists(n + 1) < 0) goto oom;
        child->mark = mark;
        child->pending = 0;
        order[n++] = child;
      }
      child->pending++;
    }
  }
  for (size_t i = 0; i < n; i++) {
    for (nn_node *node = order[i]; node; node = node->wrapped) {
      if (node->broken) {
        nn_error_set("backward: %s ran out of memory when it was recorded", node->name);
        return -1;
      }
      for (int k = 0; k < NN_NODE_SAVED; k++) {
        if (node->saved[k] && node->saved[k]->storage->version != node->saved_version[k]) {
          nn_error_set("backward: a tensor that %s needs was changed by an in-place operation "
                       "after it was used", node->name);
          return -1;
        }
      }
    }
  }
  if (capture) mark_needed(p, n);
  for (size_t i = 0; i < n; i++) order[i]->refcount++; /* freeing inputs must not free nodes */

  for (int r = 0; r < n_roots && status == 0; r++)
    if (accumulate(&roots[r]->grad, seeds[r]) < 0) status = -1;
  for (size_t i = 0; i < n_first && status == 0; i++)
    if (order[i]->pending == 0) ready[tail++] = order[i];
  while (head < tail && status == 0) {
    nn_node *node = ready[head++];
    if (plain && !node->hooks) { /* (a user's Function may hook a node as the pass runs) */
      status = plain_node(node, p->retain_graph, &tail);
      continue;
    }
    nn_tensor *grad_in[NN_NODE_INPUTS] = {NULL, NULL, NULL};
    nn_tensor *kept[NN_NODE_SAVED] = {NULL, NULL, NULL};
    int runs = !capture || (node->needed & NEEDED_RUN);
    if (node->hooks && node->grad && (!capture || node->needed) &&
        nn_hooks_run_grad(node->hooks, &node->grad, node->grad) < 0) {
      status = -1;
      break;
    }
    if (capture)
      for (int t = 0; t < p->n_targets && node->grad; t++)
        if (p->targets[t]->grad_fn == node && accumulate(&p->captured[t], node->grad) < 0) status = -1;
    for (int k = 0; k < node->n_inputs; k++) {
      nn_tensor *in = node->inputs[k], *acc;
      node->accumulate_into[k] = NULL;
      if (!into_leaves || !in || in->grad_fn || !(acc = nn_leaf_grad(in))) continue;
      if (in->hooks && in->hooks->mark == mark && in->hooks->n_grad > 0) continue; /* hooks see it first */
      if (acc->dtype == in->dtype && nn_is_contiguous(acc) && nn_same_shape(acc, in))
        node->accumulate_into[k] = acc;
    }
    if (status == 0 && runs && node->grad) {
      if (recording && lend_outputs(node, kept) < 0) {
        nn_error_set("backward: out of memory");
        status = -1;
      }
      if (status == 0 && node->backward(node, node->grad, grad_in) < 0) {
        status = -1;
      } else if (status == 0 && anomaly_mode && check_anomaly(node, grad_in) < 0) {
        status = -1;
      }
      if (recording) take_outputs_back(node, kept);
    }
    for (int k = 0; k < node->n_inputs; k++) {
      nn_tensor *in = node->inputs[k], *g = grad_in[k];
      int added_in_place = node->grad && node->accumulate_into[k];
      node->accumulate_into[k] = NULL;
      if (in && status == 0) {
        if (capture) {
          if (g && in->grad_fn) {
            if (in->grad_fn->needed && accumulate(&in->grad_fn->grad, g) < 0) status = -1;
          } else if (g) {
            for (int t = 0; t < p->n_targets; t++)
              if (p->targets[t] == in && accumulate(&p->captured[t], g) < 0) status = -1;
          }
        } else if (!in->grad_fn && in->hooks && in->hooks->mark == mark) {
          if (leaf_use_done(in, g, added_in_place) < 0) status = -1;
        } else if (g) {
          if (in->grad_fn) {
            if (accumulate(&in->grad_fn->grad, g) < 0) status = -1;
          } else if (accumulate_leaf(in, g) < 0) {
            status = -1;
          }
        }
      }
      if (in && in->grad_fn && --in->grad_fn->pending == 0) ready[tail++] = in->grad_fn;
      nn_release(g);
    }
    nn_release(node->grad);
    node->grad = NULL;
    if (!p->retain_graph && runs) node_free_graph(node);
  }
  for (size_t i = 0; i < n; i++) { /* a failed pass leaves gradients behind */
    nn_release(order[i]->grad);
    order[i]->grad = NULL;
  }
  for (size_t i = 0; i < n; i++) nn_node_release(order[i]);
  return status;
oom:
  nn_error_set("backward: out of memory");
  return -1;
}

/* The gradient a pass starts output t from: grad, checked, or 1 for a
   one-element t. which: "backward" or "grad: output 2" for the messages. */
static nn_tensor *seed_for(const char *which, nn_tensor *t, nn_tensor *grad) {
  if (!grad) {
    if (nn_numel(t) != 1) {
      char b[96];
      nn_error_set("%s: a gradient can be implied only for a one-element tensor (a loss); this "
                   "one is %s, so pass the gradient", which, nn_shape_string(t, b, sizeof b));
      return NULL;
    }
    return nn_full_like_shape(t, t->dtype, t->ndim, t->size, 1.0);
  }
  if (!nn_same_shape(grad, t) || grad->dtype != t->dtype) {
    char a[96], b[96];
    nn_error_set("%s: gradient is %s %s, the tensor is %s %s", which,
                 nn_shape_string(grad, a, sizeof a), nn_dtype_name(grad->dtype),
                 nn_shape_string(t, b, sizeof b), nn_dtype_name(t->dtype));
    return NULL;
  }
  return nn_retain(grad);
}

/* A pass runs alone, with recording on only when it records itself. */
static int pass_begin(int create_graph, nn_grad_guard *guard) {
  if (nn_backward_begin() < 0) return -1;
  *guard = nn_no_grad_begin();
  grad_mode = create_graph != 0;
  recording = create_graph != 0;
  return 0;
}

static int pass_end(int status, nn_grad_guard guard) {
  forget_hooked_leaves();
  status = nn_backward_end(status);
  recording = 0;
  nn_no_grad_end(guard);
  return status;
}

int nn_backward_graph(nn_tensor *t, nn_tensor *grad, int retain_graph, int create_graph) {
  nn_sync_view(t);
  if (!t->requires_grad) {
    nn_error_set("backward: the tensor does not require grad (nothing it was computed from "
                 "has requires_grad = true)");
    return -1;
  }
  nn_grad_guard guard;
  if (pass_begin(create_graph, &guard) < 0) return -1;
  int status = -1;
  nn_tensor *g = seed_for("backward", t, grad);
  if (g) {
    graph_pass p = {retain_graph, 0, NULL, NULL};
    nn_node *root = t->grad_fn;
    status = root ? run_graph(1, &root, &g, &p) : leaf_backward(t, g);
  }
  nn_release(g);
  return pass_end(status, guard);
}

int nn_backward(nn_tensor *t, nn_tensor *grad, int retain_graph) {
  return nn_backward_graph(t, grad, retain_graph, 0);
}

int nn_grad(int n_out, nn_tensor *const *outputs, nn_tensor *const *grad_outputs, int n_in,
            nn_tensor *const *inputs, const nn_grad_options *o, nn_tensor **results) {
  for (int i = 0; i < n_in; i++) results[i] = NULL;
  for (int i = 0; i < n_in; i++) {
    nn_sync_view(inputs[i]);
    if (!inputs[i]->requires_grad) {
      nn_error_set("grad: input %d does not require grad", i + 1);
      return -1;
    }
  }
  for (int i = 0; i < n_out; i++) {
    nn_sync_view(outputs[i]);
    if (!outputs[i]->requires_grad) {
      nn_error_set("grad: output %d does not require grad and does not have a grad_fn", i + 1);
      return -1;
    }
  }
  nn_node **roots = malloc(((size_t)n_out + 1) * sizeof *roots);
  nn_tensor **seeds = calloc((size_t)n_out + 1, sizeof *seeds);
  if (!roots || !seeds) {
    free(roots), free(seeds);
    nn_error_set("grad: out of memory");
    return -1;
  }
  nn_grad_guard guard;
  int status = pass_begin(o->create_graph, &guard) < 0 ? -2 : 0, n_roots = 0;
  for (int i = 0; i < n_out && status == 0; i++) {
    char which[48];
    snprintf(which, sizeof which, "grad: output %d", i + 1);
    nn_tensor *seed = seed_for(which, outputs[i], grad_outputs ? grad_outputs[i] : NULL);
    if (!seed) {
      status = -1;
    } else if (outputs[i]->grad_fn) {
      roots[n_roots] = outputs[i]->grad_fn;
      seeds[n_roots++] = seed;
      continue;
    } else {
      /* an output that is a leaf: its gradient is its seed, if it is asked for */
      for (int t = 0; t < n_in; t++)
        if (inputs[t] == outputs[i] && accumulate(&results[t], seed) < 0) status = -1;
    }
    nn_release(seed);
  }
  if (status == 0 && n_roots > 0) {
    graph_pass p = {o->retain_graph, n_in, inputs, results};
    status = run_graph(n_roots, roots, seeds, &p);
  }
  for (int i = 0; i < n_in && status == 0; i++) {
    if (!results[i] && !o->allow_unused) {
      nn_error_set("grad: input %d appears not to have been used in the graph; set "
                   "allow_unused = true if this is the desired behavior", i + 1);
      status = -1;
    }
  }
  for (int i = 0; i < n_roots; i++) nn_release(seeds[i]);
  free(roots), free(seeds);
  if (status == -2) return -1;
  status = pass_end(status, guard);
  if (status < 0)
    for (int i = 0; i < n_in; i++) {
      nn_release(results[i]);
      results[i] = NULL;
    }
  return status;
}

/* ---- a user's function ------------------------------------------------ */
typedef struct {
  nn_function_backward fn;
  void *ctx;
  void (*free_ctx)(void *);
  char name[64];
} user_function;

static void user_function_free(void *p) {
  user_function *f = p;
  if (f->free_ctx) f->free_ctx(f->ctx);
  free(f);
}

static int function_backward(nn_node *node, nn_tensor *g, nn_tensor **gi) {
  user_function *f = node->ctx;
  nn_tensor *in = node->inputs[0], *r = NULL;
  if (f->fn(f->ctx, g, node->saved[0], &r) < 0) return -1;
  if (!r) return 0;
  if (!nn_same_shape(r, in) || r->dtype != in->dtype || r->device != in->device) {
    char a[96], b[96];
    nn_error_set("%s: backward returned a gradient %s %s for an input %s %s", node->name,
                 nn_shape_string(r, a, sizeof a), nn_dtype_name(r->dtype),
                 nn_shape_string(in, b, sizeof b), nn_dtype_name(in->dtype));
    nn_release(r);
    return -1;
  }
  gi[0] = r;
  return 0;
}

int nn_function_attach(nn_tensor *out, const char *name, nn_tensor *input,
                       nn_function_backward fn, void *ctx, void (*free_ctx)(void *)) {
  user_function *f = malloc(sizeof *f);
  if (!f) {
    nn_error_set("%s: out of memory recording the graph", name);
    if (free_ctx) free_ctx(ctx);
    return -1;
  }
  f->fn = fn, f->ctx = ctx, f->free_ctx = free_ctx;
  snprintf(f->name, sizeof f->name, "%s", name);
  nn_node *node = nn_node_attach(out, f->name, function_backward, 1, input, NULL, NULL);
  if (!node) {
    user_function_free(f);
    return -1;
  }
  node->ctx = f;
  node->free_ctx = user_function_free;
  nn_node_save_output(node, 0, out);
  return 0;
}
