/* autograd.c: reverse-mode differentiation over the dynamic graph that ops
 * record as they run. Each op's backward lives beside its forward in the
 * op's own file; this file records nodes and runs them in reverse order. */
#include "internal.h"

static int grad_mode = 1;

int nn_grad_enabled(void) { return grad_mode; }
void nn_set_grad_enabled(int enabled) { grad_mode = enabled != 0; }

nn_grad_guard nn_no_grad_begin(void) {
  nn_grad_guard g = {grad_mode};
  grad_mode = 0;
  return g;
}
void nn_no_grad_end(nn_grad_guard g) { grad_mode = g.previous; }

int nn_needs_grad(nn_tensor *a, nn_tensor *b, nn_tensor *c) {
  return grad_mode && ((a && a->requires_grad) || (b && b->requires_grad) || (c && c->requires_grad));
}

/* ---- nodes ----------------------------------------------------------- */
static nn_node *free_nodes; /* recycled: recording a step allocates nothing */

nn_node *nn_node_attach(nn_tensor *out, const char *name, nn_backward_fn backward, int n_inputs,
                        nn_tensor *a, nn_tensor *b, nn_tensor *c) {
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
  nn_tensor *in[NN_NODE_INPUTS] = {a, b, c};
  for (int i = 0; i < n_inputs; i++)
    node->inputs[i] = (in[i] && in[i]->requires_grad) ? nn_retain(in[i]) : NULL;
  out->grad_fn = node;
  out->requires_grad = 1;
  return node;
}

void nn_node_save(nn_node *node, int i, nn_tensor *t) {
  node->saved[i] = nn_retain(t);
  node->saved_version[i] = t->storage->version;
}

void nn_node_save_output(nn_node *node, int i, const nn_tensor *out) {
  node->saved[i] = nn_alias(out);
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
  node->freed = 1;
}

void nn_node_release(nn_node *node) {
  if (!node || --node->refcount > 0) return;
  node_free_graph(node);
  nn_release(node->grad);
  node->grad = (nn_tensor *)free_nodes;
  free_nodes = node;
}

const char *nn_grad_fn_name(const nn_tensor *t) { return t->grad_fn ? t->grad_fn->name : NULL; }

/* ---- leaves ---------------------------------------------------------- */
int nn_set_requires_grad(nn_tensor *t, int requires_grad) {
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
  return 0;
}

int nn_set_grad(nn_tensor *t, nn_tensor *grad) {
  if (grad && (!nn_same_shape(t, grad) || grad->dtype != t->dtype || grad->device != t->device)) {
    char a[96], b[96];
    nn_error_set("grad: assigned gradient is %s %s, the tensor is %s %s",
                 nn_shape_string(grad, b, sizeof b), nn_dtype_name(grad->dtype),
                 nn_shape_string(t, a, sizeof a), nn_dtype_name(t->dtype));
    return -1;
  }
  nn_retain(grad);
  nn_release(t->grad);
  t->grad = grad;
  return 0;
}

void nn_zero_grad(nn_tensor *t) {
  if (t->grad) nn_fill_(t->grad, 0);
}

int nn_check_inplace(const char *op, nn_tensor *t) {
  for (int i = 0; i < t->ndim; i++) {
    if (t->stride[i] == 0 && t->size[i] > 1) {
      nn_error_set("%s: several elements of the tensor share one memory location (an expanded "
                   "view); write to a clone() instead", op);
      return -1;
    }
  }
  if (!grad_mode) return 0;
  if (t->requires_grad && !t->grad_fn) {
    nn_error_set("%s: a leaf tensor that requires grad cannot be changed in place "
                 "(do it inside nn.no_grad)", op);
    return -1;
  }
  if (t->grad_fn) {
    nn_error_set("%s: a tensor that is part of a graph cannot be changed in place; "
                 "use the out-of-place form", op);
    return -1;
  }
  return 0;
}

/* ---- backward -------------------------------------------------------- */
/* Work lists reused from one backward to the next. */
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
  nn_tensor *acc = leaf->grad;
  if (acc && acc->dtype == NN_FLOAT32 && nn_is_contiguous(acc) && nn_is_contiguous(g)) {
    float *pa = nn_data(acc);
    const float *pg = nn_data(g);
    for (int64_t i = 0, n = nn_numel(g); i < n; i++) pa[i] += pg[i];
    nn_bump_version(acc);
    return 0;
  }
  if (acc) return nn_binary_(NN_ADD, acc, g);
  /* The leaf keeps its own copy: g may be shared with other nodes. */
  nn_tensor *copy = nn_clone(g);
  if (!copy) return -1;
  leaf->grad = copy;
  return 0;
}

static int run_graph(nn_node *root, nn_tensor *grad, int retain_graph) {
  size_t n = 0, head = 0, tail = 0;
  unsigned mark = ++current_mark;
  int status = 0;
  /* First pass: find every node and count, for each, the consumers it
     waits for; refuse a freed graph before anything is touched. */
  if (grow_lists(1) < 0) goto oom;
  order[n++] = root;
  root->mark = mark;
  root->pending = 0;
  for (size_t i = 0; i < n; i++) {
    nn_node *node = order[i];
    if (node->freed) {
      nn_error_set("backward: the graph through %s was already freed by an earlier backward; "
                   "call backward(true) the first time to keep it", node->name);
      return -1;
    }
    for (int k = 0; k < node->n_inputs; k++) {
      nn_tensor *in = node->inputs[k];
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
    nn_node *node = order[i];
    for (int k = 0; k < NN_NODE_SAVED; k++) {
      if (node->saved[k] && node->saved[k]->storage->version != node->saved_version[k]) {
        nn_error_set("backward: a tensor that %s needs was changed by an in-place operation "
                     "after it was used", node->name);
        return -1;
      }
    }
  }
  for (size_t i = 0; i < n; i++) order[i]->refcount++; /* freeing inputs must not free nodes */

  root->grad = nn_retain(grad);
  ready[tail++] = root;
  while (head < tail) {
    nn_node *node = ready[head++];
    nn_tensor *grad_in[NN_NODE_INPUTS] = {NULL, NULL, NULL};
    for (int k = 0; k < node->n_inputs; k++) {
      nn_tensor *in = node->inputs[k], *acc = in ? in->grad : NULL;
      node->accumulate_into[k] = in && !in->grad_fn && acc && acc->dtype == in->dtype &&
                                         nn_is_contiguous(acc) && nn_same_shape(acc, in)
                                     ? acc
                                     : NULL;
    }
    if (node->grad && node->backward(node, node->grad, grad_in) < 0) {
      status = -1;
      break;
    }
    for (int k = 0; k < node->n_inputs; k++) {
      nn_tensor *in = node->inputs[k], *g = grad_in[k];
      node->accumulate_into[k] = NULL;
      if (in && g && status == 0) {
        if (in->grad_fn) {
          if (accumulate(&in->grad_fn->grad, g) < 0) status = -1;
        } else if (accumulate_leaf(in, g) < 0) {
          status = -1;
        }
      }
      if (in && in->grad_fn && --in->grad_fn->pending == 0) ready[tail++] = in->grad_fn;
      nn_release(g);
    }
    nn_release(node->grad);
    node->grad = NULL;
    if (!retain_graph) node_free_graph(node);
    if (status < 0) break;
  }
  for (size_t i = 0; i < n; i++) {
    nn_release(order[i]->grad);
    order[i]->grad = NULL;
  }
  for (size_t i = 0; i < n; i++) nn_node_release(order[i]);
  return status;
oom:
  nn_error_set("backward: out of memory");
  return -1;
}

int nn_backward(nn_tensor *t, nn_tensor *grad, int retain_graph) {
  if (!t->requires_grad) {
    nn_error_set("backward: the tensor does not require grad (nothing it was computed from "
                 "has requires_grad = true)");
    return -1;
  }
  nn_grad_guard guard = nn_no_grad_begin();
  nn_tensor *g = grad ? nn_retain(grad) : NULL;
  int status = -1;
  if (!g) {
    if (nn_numel(t) != 1) {
      char b[96];
      nn_error_set("backward: a gradient can be implied only for a one-element tensor "
                   "(a loss); this one is %s, so pass the gradient",
                   nn_shape_string(t, b, sizeof b));
      goto done;
    }
    g = nn_full(t->dtype, t->ndim, t->size, 1.0);
    if (!g) goto done;
  } else if (!nn_same_shape(g, t) || g->dtype != t->dtype) {
    char a[96], b[96];
    nn_error_set("backward: gradient is %s %s, the tensor is %s %s",
                 nn_shape_string(g, a, sizeof a), nn_dtype_name(g->dtype),
                 nn_shape_string(t, b, sizeof b), nn_dtype_name(t->dtype));
    goto done;
  }
  status = t->grad_fn ? run_graph(t->grad_fn, g, retain_graph) : accumulate_leaf(t, g);
done:
  nn_release(g);
  nn_no_grad_end(guard);
  return status;
}
