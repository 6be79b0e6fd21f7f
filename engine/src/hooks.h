/* hooks.h: what backward (autograd.c) uses of hooks.c: the hook lists of
 * leaves and nodes, and the callbacks queued for the end of a pass. */
#ifndef NN_HOOKS_H
#define NN_HOOKS_H

#include "internal.h"

typedef struct nn_hook nn_hook;

/* The hooks of one leaf (t->hooks) or node (node->hooks). */
struct nn_hooks {
  nn_hook *first;
  int running;   /* hooks are running: removal only marks them */
  int n_grad;    /* live hooks of each kind */
  int n_post;
  /* Backward's bookkeeping for a leaf, valid while mark is the pass's:
     the uses of the leaf that have yet to hand their gradient over, and,
     when it has NN_HOOK_GRAD hooks, the sum of those handed over so far
     (its hooks see the whole sum before it reaches t->grad). */
  unsigned mark;
  int pending;
  int received; /* some use gave it a gradient in this pass */
  nn_tensor *incoming;
};

void nn_hooks_free(nn_hooks *h);

/* Runs h's NN_HOOK_GRAD hooks over *grad (one reference, which a hook's
   replacement takes the place of); -1 with the hook's error. */
int nn_hooks_run_grad(nn_hooks *h, nn_tensor **grad, const nn_tensor *like);
/* Runs h's NN_HOOK_POST_ACCUMULATE hooks on grad. */
int nn_hooks_run_post(nn_hooks *h, nn_tensor *grad);

/* A backward pass begins (-1, with an error, when one is already running:
   a hook cannot start another) and ends: end runs the queued callbacks
   and returns the pass's status, or the first callback's error. */
int nn_backward_begin(void);
int nn_backward_end(int status);

#endif
