/* hooks.c: hooks on tensors' gradients, and callbacks at the end of a
 * backward pass (nn.h says what each kind sees). A leaf keeps its hooks in
 * t->hooks; a computed tensor's go to its node, which every alias of it
 * shares, so that they run however the graph reaches it. Backward
 * (autograd.c) decides when they run; this file keeps the lists. */
#include "hooks.h"

#include <stdio.h>

struct nn_hook {
  int64_t id;
  nn_hook_kind kind;
  nn_hook_fn fn;
  void *ctx;
  void (*free_ctx)(void *);
  int removed; /* removed while its list was running: unlinked after */
  nn_hook *next;
};

static int64_t last_id;

static void hook_free(nn_hook *h) {
  if (h->free_ctx) h->free_ctx(h->ctx);
  free(h);
}

void nn_hooks_free(nn_hooks *h) {
  if (!h) return;
  for (nn_hook *k = h->first, *next; k; k = next) {
    next = k->next;
    hook_free(k);
  }
  nn_release(h->incoming);
  free(h);
}

/* The list a hook on t belongs to, made when absent; NULL with an error. */
static nn_hooks **list_of(nn_tensor *t, nn_hook_kind kind) {
  nn_sync_view(t);
  if (!t->requires_grad) {
    nn_error_set("register_hook: cannot register a hook on a tensor that doesn't require gradient");
    return NULL;
  }
  if (!t->grad_fn) return &t->hooks;
  if (kind == NN_HOOK_POST_ACCUMULATE) {
    nn_error_set("register_post_accumulate_grad_hook: post accumulate grad hooks cannot be "
                 "registered on non-leaf tensors");
    return NULL;
  }
  return &t->grad_fn->hooks;
}

int64_t nn_add_hook(nn_tensor *t, nn_hook_kind kind, nn_hook_fn fn, void *ctx,
                    void (*free_ctx)(void *)) {
  nn_hooks **list = list_of(t, kind);
  nn_hook *h = list ? calloc(1, sizeof *h) : NULL;
  if (list && !h) nn_error_set("register_hook: out of memory");
  if (h && !*list && !(*list = calloc(1, sizeof **list))) {
    nn_error_set("register_hook: out of memory");
    free(h);
    h = NULL;
  }
  if (!h) {
    if (free_ctx) free_ctx(ctx);
    return -1;
  }
  h->id = ++last_id;
  h->kind = kind;
  h->fn = fn;
  h->ctx = ctx;
  h->free_ctx = free_ctx;
  nn_hook **end = &(*list)->first;
  while (*end) end = &(*end)->next;
  *end = h;
  if (kind == NN_HOOK_GRAD) (*list)->n_grad++;
  else (*list)->n_post++;
  return h->id;
}

/* Unlinks and frees the hooks marked removed (once none is running). */
static void sweep_removed(nn_hooks *list) {
  for (nn_hook **p = &list->first; *p;) {
    nn_hook *h = *p;
    if (!h->removed) {
      p = &h->next;
      continue;
    }
    *p = h->next;
    hook_free(h);
  }
}

static int remove_from(nn_hooks *list, int64_t id) {
  if (!list) return 0;
  for (nn_hook *h = list->first; h; h = h->next) {
    if (h->id != id || h->removed) continue;
    h->removed = 1;
    if (h->kind == NN_HOOK_GRAD) list->n_grad--;
    else list->n_post--;
    if (!list->running) sweep_removed(list);
    return 1;
  }
  return 0;
}

int nn_remove_hook(nn_tensor *t, int64_t id) {
  if (remove_from(t->hooks, id)) return 1;
  return t->grad_fn ? remove_from(t->grad_fn->hooks, id) : 0;
}

/* Runs the live hooks of one kind; a hook added while they run waits for
   the next pass (it is appended past the end seen at the start). */
static int run_kind(nn_hooks *list, nn_hook_kind kind, nn_tensor **grad, const nn_tensor *like) {
  nn_hook *last = list->first;
  while (last && last->next) last = last->next;
  int status = 0;
  list->running++;
  for (nn_hook *h = list->first; h && status == 0; h = h == last ? NULL : h->next) {
    if (h->removed || h->kind != kind) continue;
    nn_tensor *replace = NULL;
    status = h->fn(h->ctx, *grad, kind == NN_HOOK_GRAD ? &replace : NULL);
    if (status < 0 || !replace) continue;
    if (replace->dtype != like->dtype || replace->device != like->device ||
        !nn_same_shape(replace, like)) {
      char a[96], b[96];
      nn_error_set("hook: the gradient a hook returned is %s %s, the tensor is %s %s",
                   nn_shape_string(replace, a, sizeof a), nn_dtype_name(replace->dtype),
                   nn_shape_string(like, b, sizeof b), nn_dtype_name(like->dtype));
      nn_release(replace);
      status = -1;
      continue;
    }
    nn_release(*grad);
    *grad = replace;
  }
  if (--list->running == 0) sweep_removed(list);
  return status;
}

int nn_hooks_run_grad(nn_hooks *h, nn_tensor **grad, const nn_tensor *like) {
  return h && h->n_grad > 0 ? run_kind(h, NN_HOOK_GRAD, grad, like) : 0;
}

int nn_hooks_run_post(nn_hooks *h, nn_tensor *grad) {
  return h && h->n_post > 0 ? run_kind(h, NN_HOOK_POST_ACCUMULATE, &grad, grad) : 0;
}

/* ---- the pass: one at a time, and its callbacks ------------------------ */
typedef struct queued {
  nn_backward_callback fn;
  void *ctx;
  struct queued *next;
} queued;

static int in_backward;
static queued *callbacks, **callbacks_end = &callbacks;

int nn_queue_backward_callback(nn_backward_callback fn, void *ctx) {
  if (!in_backward) {
    nn_error_set("queue_callback: no backward pass is running");
    return -1;
  }
  queued *q = malloc(sizeof *q);
  if (!q) {
    nn_error_set("queue_callback: out of memory");
    return -1;
  }
  q->fn = fn;
  q->ctx = ctx;
  q->next = NULL;
  *callbacks_end = q;
  callbacks_end = &q->next;
  return 0;
}

int nn_backward_begin(void) {
  if (in_backward) {
    nn_error_set("backward: called while another backward pass runs (from a hook or callback); "
                 "a hook cannot start a backward pass");
    return -1;
  }
  in_backward = 1;
  return 0;
}

int nn_backward_end(int status) {
  /* A callback may queue another: it runs in this pass too. */
  while (callbacks) {
    queued *q = callbacks;
    callbacks = q->next;
    if (!callbacks) callbacks_end = &callbacks;
    if (status < 0) {
      char first[512];
      snprintf(first, sizeof first, "%s", nn_error());
      q->fn(q->ctx, 1);
      nn_error_set("%s", first);
    } else if (q->fn(q->ctx, 0) < 0) {
      status = -1;
    }
    free(q);
  }
  in_backward = 0;
  return status;
}
