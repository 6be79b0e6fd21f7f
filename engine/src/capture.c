/* capture.c: captured steps (nn.h's nn_plan).
 *
 * Recording happens at the backend table. While a capture records, every
 * dispatch (backend.c, internal.h) hands the fronts the recording table: a
 * copy of the device's table whose kernel entries are the record_* functions
 * below. Each stores the entry's arguments by value (geometry and argument
 * blocks are plain data holding device pointers) in a plan record, then
 * makes the call through run(), the same switch a replay goes through, so
 * that what is recorded is exactly what runs. A replay walks the records
 * and calls the real entries again: no front, no autograd, no allocation.
 *
 * The buffers: a record holds raw pointers, so the plan keeps a reference
 * to every storage made while it records (the step's temporaries, its
 * outputs) and to the storages of the tensors dispatch sees (parameters,
 * gradients, running statistics): a replay writes into live memory and
 * nothing is freed, nor handed to another tensor, under it.
 *
 * What a replay cannot redo refuses the plan with a reason, and the step
 * goes on eagerly: a value read on the host (the Lua side may branch on
 * it), kernels on a second device, a seed set, an entry whose arguments
 * point at host memory that does not outlive the call (gather_rows).
 *
 * On a device with graphs (CUDA), the runs of records between host calls
 * and random fills become one graph each at their first replay, launched
 * as a whole after that; the random fills stay outside, since a graph
 * would repeat the generator position it was made with. A run that cannot
 * be a graph is halved at each replay until the record that spoils it
 * goes call by call (replay_segment). */
#include "internal.h"

#include <stdarg.h>
#include <stdio.h>

nn_plan *nn_capture_active;

/* What a record calls: one kind per signature of the table's entries; the
   entry itself is found by its offset in the device's table. */
typedef enum {
  CALL_ITER,              /* f(it): copy, add_into, index_gather, where */
  CALL_ITER_NUMBER,       /* f(it, x0): fill */
  CALL_ITER_FLAG,         /* f(it, flag): index_put */
  CALL_ITER_TWO_NUMBERS,  /* f(it, x0, x1): clamp */
  CALL_ITER_THREE_NUMBERS,/* f(it, x0, x1, x2): nan_to_num */
  CALL_OP_ITER,           /* f(op, it): unary, unary_backward */
  CALL_OP_ITER_NUMBERS,   /* f(op, it, x0, x1): pointwise_grad, activation(_backward) */
  CALL_BINARY,            /* f(op, dtype, it) */
  CALL_BINARY_NUMBER,     /* f(op, dtype, it, x0, flag) */
  CALL_INDEX_OFFSETS,     /* f(it, n, scale, base, negative, dim, name); index_checked: mode in flag */
  CALL_GEOM,              /* f(r): logsumexp, extreme(_all)_backward, prod_backward, cumprod_backward */
  CALL_FLAG_GEOM,         /* f(flag, r): extreme, sort */
  CALL_GEOM_FLAG,         /* f(r, flag): softmax, softmax_backward */
  CALL_REDUCE,            /* f(op, r, x0) */
  CALL_NUMBER_GEOM,       /* f(x0, r): norm_backward */
  CALL_SCAN,              /* f(op, flag, r) */
  CALL_TOPK,              /* f(flag, n, r) */
  CALL_KTHVALUE,          /* f(n, flag, r) */
  CALL_GEOM_COUNT,        /* f(r, n): scatter_line */
  CALL_RAMP,
  CALL_ADD_ROWS,
  CALL_WITHIN,
  CALL_GEMM,
  CALL_LOSS,
  CALL_CLASS_LOSS,
  CALL_PRELU,
  CALL_PATCH,             /* im2col(g, from, to), col2im(g, from, to) */
  CALL_POOL,
  CALL_UPSAMPLE,
  CALL_BATCH_NORM,
  CALL_RNN,
  CALL_EMBEDDING,
  CALL_RANDOM,            /* uniform(t, x0, x1), normal(t, x0, x1) */
  CALL_RANDOM_INT,
  CALL_RANDPERM,
  CALL_HOST,              /* a host call (nn_capture_host_call) */
  CALL_BAND,              /* band(dtype, batch, rows, cols, k, upper, in, out) */
  CALL_GEMM_DIRECT,       /* a product the backend prepared (gemm_prepare): its own call */
  CALL_ITER_DIRECT        /* an iterator's kernel the backend prepared (iter_prepare) */
} call_kind;

typedef struct {
  call_kind kind;
  size_t entry; /* offsetof(nn_backend, the entry) */
  union {
    struct {
      nn_iter it;
      int op, flag, base, negative, dim;
      nn_dtype dtype;
      double x[3];
      int64_t n, scale;
      const char *name;
    } iter;
    struct {
      nn_reduce_geom r;
      int op, flag;
      double x;
      int64_t n;
    } geom;
    struct { /* ramp, add_rows, within, randperm */
      nn_dtype dtype;
      void *to;
      const void *from;
      int64_t n, half, rows, cols;
      double start, step, end;
      size_t bytes;
    } span;
    struct {
      nn_strided t;
      double x[2];
      uint64_t range;
      int64_t base;
    } random;
    struct {
      nn_patch_geom g;
      const void *from;
      void *to;
    } patch;
    nn_gemm_args gemm;
    nn_gemm_direct gemm_direct;
    nn_iter_direct iter_direct;
    nn_loss_args loss;
    nn_class_loss_args class_loss;
    nn_prelu_args prelu;
    nn_pool2d_args pool;
    nn_upsample2d_args upsample;
    nn_batch_norm_args batch_norm;
    nn_rnn_step_args rnn;
    nn_embedding_args embedding;
    struct {
      int (*fn)(void *ctx, void *arg);
      void *ctx;
      void (*free_ctx)(void *);
    } host;
  } u;
} record;

/* A run of records replayed the same way: as one device graph (made at
   its first replay), or call by call. */
typedef struct {
  size_t first, end;
  int graphable; /* kernels only, no random fill, no host call */
  int direct;    /* the device makes no graph of it: call by call */
  void *graph;
} segment;

/* A storage the plan keeps, and whether the step made it. */
typedef struct {
  nn_storage *storage;
  int made;
} kept;

struct nn_plan {
  record *records;
  size_t count, capacity;
  record spare; /* where a call goes when the list cannot grow (the plan is refused) */
  kept *kept;   /* an open-addressing set by storage pointer */
  size_t kept_count, kept_capacity;
  int has_device;
  nn_device device;
  const nn_backend *real;
  nn_backend recording;
  segment *segments;
  size_t segment_count;
  int refused, ended;
  int suspended; /* inside a host call */
  char why[320];
};

/* The plan being recorded, suspended or not (nn_capture_active is NULL
   while suspended or refused). */
static nn_plan *recording_plan;

/* ---- refusals ------------------------------------------------------------ */
static void refuse(nn_plan *p, const char *fmt, va_list ap) {
  if (!p->refused) vsnprintf(p->why, sizeof p->why, fmt, ap);
  p->refused = 1;
  nn_capture_active = NULL; /* the rest of the step runs as it would anyway */
}

void nn_capture_refuse(const char *fmt, ...) {
  if (!recording_plan) return;
  va_list ap;
  va_start(ap, fmt);
  refuse(recording_plan, fmt, ap);
  va_end(ap);
}

void nn_capture_host_read(const char *what) {
  nn_capture_refuse("capture: %s inside the step reads values on the host, which a replay cannot "
                    "do again (the step runs eagerly)",
                    what);
}

/* ---- kept storages --------------------------------------------------------- */
static size_t slot_of(const kept *set, size_t capacity, const nn_storage *s) {
  size_t h = ((uintptr_t)s >> 4) * 0x9E3779B97F4A7C15ull;
  size_t i = h & (capacity - 1);
  while (set[i].storage && set[i].storage != s) i = (i + 1) & (capacity - 1);
  return i;
}

static int grow_kept(nn_plan *p) {
  size_t capacity = p->kept_capacity ? p->kept_capacity * 2 : 64;
  kept *set = calloc(capacity, sizeof *set);
  if (!set) return -1;
  for (size_t i = 0; i < p->kept_capacity; i++)
    if (p->kept[i].storage) set[slot_of(set, capacity, p->kept[i].storage)] = p->kept[i];
  free(p->kept);
  p->kept = set;
  p->kept_capacity = capacity;
  return 0;
}

static void keep(nn_plan *p, nn_storage *s, int made) {
  if (!s) return;
  if (2 * (p->kept_count + 1) > p->kept_capacity && grow_kept(p) < 0) {
    nn_capture_refuse("capture: out of memory recording the step");
    return;
  }
  size_t i = slot_of(p->kept, p->kept_capacity, s);
  if (p->kept[i].storage) return;
  s->refcount++;
  p->kept[i].storage = s;
  p->kept[i].made = made;
  p->kept_count++;
}

void nn_capture_storage_made(nn_storage *s) {
  if (nn_capture_active) keep(nn_capture_active, s, 1);
}

void nn_capture_host_write(const nn_tensor *t, const char *what) {
  nn_plan *p = nn_capture_active;
  if (!p) return;
  size_t i = p->kept_capacity ? slot_of(p->kept, p->kept_capacity, t->storage) : 0;
  if (p->kept_capacity && p->kept[i].storage == t->storage && p->kept[i].made) return;
  nn_capture_refuse("capture: %s inside the step into a tensor made outside it, which a replay "
                    "cannot do again (the step runs eagerly)",
                    what);
}

/* ---- running a record ------------------------------------------------------ */
/* The entry at offset as a function of the record's signature. */
#define ENTRY_OF(be, offset, f) memcpy(&(f), (const char *)(be) + (offset), sizeof(f))

static int run(const nn_backend *be, record *r, void *arg) {
  switch (r->kind) {
  case CALL_ITER: {
    int (*f)(const nn_iter *);
    ENTRY_OF(be, r->entry, f);
    return f(&r->u.iter.it);
  }
  case CALL_ITER_NUMBER: {
    int (*f)(const nn_iter *, double);
    ENTRY_OF(be, r->entry, f);
    return f(&r->u.iter.it, r->u.iter.x[0]);
  }
  case CALL_ITER_FLAG: {
    int (*f)(const nn_iter *, int);
    ENTRY_OF(be, r->entry, f);
    return f(&r->u.iter.it, r->u.iter.flag);
  }
  case CALL_ITER_TWO_NUMBERS: {
    int (*f)(const nn_iter *, double, double);
    ENTRY_OF(be, r->entry, f);
    return f(&r->u.iter.it, r->u.iter.x[0], r->u.iter.x[1]);
  }
  case CALL_ITER_THREE_NUMBERS: {
    int (*f)(const nn_iter *, double, double, double);
    ENTRY_OF(be, r->entry, f);
    return f(&r->u.iter.it, r->u.iter.x[0], r->u.iter.x[1], r->u.iter.x[2]);
  }
  case CALL_OP_ITER: {
    int (*f)(int, const nn_iter *);
    ENTRY_OF(be, r->entry, f);
    return f(r->u.iter.op, &r->u.iter.it);
  }
  case CALL_OP_ITER_NUMBERS: {
    int (*f)(int, const nn_iter *, double, double);
    ENTRY_OF(be, r->entry, f);
    return f(r->u.iter.op, &r->u.iter.it, r->u.iter.x[0], r->u.iter.x[1]);
  }
  case CALL_BINARY:
    return be->binary((nn_binary_op)r->u.iter.op, r->u.iter.dtype, &r->u.iter.it);
  case CALL_BINARY_NUMBER:
    return be->binary_number((nn_binary_op)r->u.iter.op, r->u.iter.dtype, &r->u.iter.it,
                             r->u.iter.x[0], r->u.iter.flag);
  case CALL_INDEX_OFFSETS:
    if (r->entry == offsetof(nn_backend, index_checked))
      return be->index_checked(&r->u.iter.it, r->u.iter.flag, r->u.iter.n, r->u.iter.scale,
                               r->u.iter.base, r->u.iter.negative, r->u.iter.dim, r->u.iter.name);
    return be->index_offsets(&r->u.iter.it, r->u.iter.n, r->u.iter.scale, r->u.iter.base,
                             r->u.iter.negative, r->u.iter.dim, r->u.iter.name);
  case CALL_GEOM: {
    int (*f)(const nn_reduce_geom *);
    ENTRY_OF(be, r->entry, f);
    return f(&r->u.geom.r);
  }
  case CALL_FLAG_GEOM: {
    int (*f)(int, const nn_reduce_geom *);
    ENTRY_OF(be, r->entry, f);
    return f(r->u.geom.flag, &r->u.geom.r);
  }
  case CALL_GEOM_FLAG: {
    int (*f)(const nn_reduce_geom *, int);
    ENTRY_OF(be, r->entry, f);
    return f(&r->u.geom.r, r->u.geom.flag);
  }
  case CALL_REDUCE:
    return be->reduce((nn_reduce_op)r->u.geom.op, &r->u.geom.r, r->u.geom.x);
  case CALL_NUMBER_GEOM:
    return be->norm_backward(r->u.geom.x, &r->u.geom.r);
  case CALL_SCAN:
    return be->scan((nn_scan_op)r->u.geom.op, r->u.geom.flag, &r->u.geom.r);
  case CALL_TOPK:
    return be->topk(r->u.geom.flag, r->u.geom.n, &r->u.geom.r);
  case CALL_KTHVALUE:
    return be->kthvalue(r->u.geom.n, r->u.geom.flag, &r->u.geom.r);
  case CALL_GEOM_COUNT:
    return be->scatter_line(&r->u.geom.r, r->u.geom.n);
  case CALL_RAMP:
    return be->ramp(r->u.span.dtype, r->u.span.to, r->u.span.n, r->u.span.half, r->u.span.start,
                    r->u.span.step, r->u.span.end);
  case CALL_ADD_ROWS:
    return be->add_rows(r->u.span.dtype, r->u.span.rows, r->u.span.cols, r->u.span.from,
                        r->u.span.to);
  case CALL_WITHIN:
    return be->within(r->u.span.to, r->u.span.from, r->u.span.bytes);
  case CALL_GEMM:
    return be->gemm(&r->u.gemm);
  case CALL_GEMM_DIRECT:
    r->u.gemm_direct.run(&r->u.gemm_direct);
    return 0;
  case CALL_ITER_DIRECT:
    r->u.iter_direct.run(&r->u.iter_direct);
    return 0;
  case CALL_LOSS: {
    int (*f)(const nn_loss_args *);
    ENTRY_OF(be, r->entry, f);
    return f(&r->u.loss);
  }
  case CALL_CLASS_LOSS: {
    int (*f)(const nn_class_loss_args *);
    ENTRY_OF(be, r->entry, f);
    return f(&r->u.class_loss);
  }
  case CALL_PRELU: {
    int (*f)(const nn_prelu_args *);
    ENTRY_OF(be, r->entry, f);
    return f(&r->u.prelu);
  }
  case CALL_PATCH: {
    int (*f)(const nn_patch_geom *, const void *, void *);
    ENTRY_OF(be, r->entry, f);
    return f(&r->u.patch.g, r->u.patch.from, r->u.patch.to);
  }
  case CALL_POOL: {
    int (*f)(const nn_pool2d_args *);
    ENTRY_OF(be, r->entry, f);
    return f(&r->u.pool);
  }
  case CALL_UPSAMPLE: {
    int (*f)(const nn_upsample2d_args *);
    ENTRY_OF(be, r->entry, f);
    return f(&r->u.upsample);
  }
  case CALL_BATCH_NORM: {
    int (*f)(const nn_batch_norm_args *);
    ENTRY_OF(be, r->entry, f);
    return f(&r->u.batch_norm);
  }
  case CALL_RNN: {
    int (*f)(const nn_rnn_step_args *);
    ENTRY_OF(be, r->entry, f);
    return f(&r->u.rnn);
  }
  case CALL_EMBEDDING: {
    int (*f)(const nn_embedding_args *);
    ENTRY_OF(be, r->entry, f);
    return f(&r->u.embedding);
  }
  case CALL_RANDOM: {
    int (*f)(const nn_strided *, double, double);
    ENTRY_OF(be, r->entry, f);
    return f(&r->u.random.t, r->u.random.x[0], r->u.random.x[1]);
  }
  case CALL_RANDOM_INT:
    return be->random_int(&r->u.random.t, r->u.random.range, r->u.random.base);
  case CALL_RANDPERM:
    return be->randperm(r->u.span.n, r->u.span.half, r->u.span.to);
  case CALL_HOST:
    return r->u.host.fn(r->u.host.ctx, arg);
  case CALL_BAND:
    return be->band(r->u.span.dtype, r->u.span.n, r->u.span.rows, r->u.span.cols, r->u.span.half,
                    r->u.span.bytes != 0, r->u.span.from, r->u.span.to);
  }
  nn_error_set("capture: a plan holds a record of an unknown kind");
  return -1;
}

/* ---- recording ------------------------------------------------------------- */
/* A new record of the plan that records now, to be filled and run; the
   plan's spare one (the plan refused) when the list cannot grow. */
static record *new_record(call_kind kind, size_t entry) {
  nn_plan *p = recording_plan;
  record *r = &p->spare;
  if (p->count == p->capacity) {
    size_t capacity = p->capacity ? p->capacity * 2 : 64;
    record *grown = realloc(p->records, capacity * sizeof *grown);
    if (grown) p->records = grown, p->capacity = capacity;
  }
  if (p->count < p->capacity) r = &p->records[p->count++];
  else nn_capture_refuse("capture: out of memory recording the step");
  memset(r, 0, sizeof *r);
  r->kind = kind;
  r->entry = entry;
  return r;
}

static int record_run(record *r) { return run(recording_plan->real, r, NULL); }

#define AT(entry) offsetof(nn_backend, entry)

/* Entries of one iterator; they differ only in the entry they call. */
static int record_iter(size_t entry, const nn_iter *it) {
  record *r = new_record(CALL_ITER, entry);
  r->u.iter.it = *it;
  return record_run(r);
}
static int record_copy(const nn_iter *it) { return record_iter(AT(copy), it); }
static int record_add_into(const nn_iter *it) { return record_iter(AT(add_into), it); }
static int record_index_gather(const nn_iter *it) { return record_iter(AT(index_gather), it); }
static int record_where(const nn_iter *it) { return record_iter(AT(where), it); }

/* A record of the backend's direct call for this entry of one iterator,
   or NULL when it prepares none: a replay then skips the checks that
   pick the loop, made once here from an iterator it keeps. */
static record *new_iter_direct(size_t entry, int op, const nn_iter *it, double x) {
  const nn_backend *be = recording_plan->real;
  nn_iter_direct direct;
  if (!be->iter_prepare || be->iter_prepare(entry, op, it, x, &direct) <= 0) return NULL;
  record *r = new_record(CALL_ITER_DIRECT, entry);
  r->u.iter_direct = direct;
  return r;
}

static int record_fill(const nn_iter *it, double value) {
  record *r = new_iter_direct(AT(fill), 0, it, value);
  if (!r) {
    r = new_record(CALL_ITER_NUMBER, AT(fill));
    r->u.iter.it = *it;
    r->u.iter.x[0] = value;
  }
  return record_run(r);
}

static int record_index_put(const nn_iter *it, int accumulate) {
  record *r = new_record(CALL_ITER_FLAG, AT(index_put));
  r->u.iter.it = *it;
  r->u.iter.flag = accumulate;
  return record_run(r);
}

static int record_lerp(const nn_iter *it, double w) {
  record *r = new_record(CALL_ITER_NUMBER, AT(lerp));
  r->u.iter.it = *it;
  r->u.iter.x[0] = w;
  return record_run(r);
}

static int record_clamp(const nn_iter *it, double lo, double hi) {
  record *r = new_record(CALL_ITER_TWO_NUMBERS, AT(clamp));
  r->u.iter.it = *it;
  r->u.iter.x[0] = lo, r->u.iter.x[1] = hi;
  return record_run(r);
}

static int record_nan_to_num(const nn_iter *it, double nan, double posinf, double neginf) {
  record *r = new_record(CALL_ITER_THREE_NUMBERS, AT(nan_to_num));
  r->u.iter.it = *it;
  r->u.iter.x[0] = nan, r->u.iter.x[1] = posinf, r->u.iter.x[2] = neginf;
  return record_run(r);
}

static int record_op_iter(size_t entry, int op, const nn_iter *it) {
  record *r = new_iter_direct(entry, op, it, 0);
  if (!r) {
    r = new_record(CALL_OP_ITER, entry);
    r->u.iter.it = *it;
    r->u.iter.op = op;
  }
  return record_run(r);
}
static int record_unary(nn_unary_op op, const nn_iter *it) {
  return record_op_iter(AT(unary), (int)op, it);
}
static int record_unary_backward(nn_unary_op op, const nn_iter *it) {
  return record_op_iter(AT(unary_backward), (int)op, it);
}

static int record_op_iter_numbers(size_t entry, int op, const nn_iter *it, double a, double b) {
  record *r = new_record(CALL_OP_ITER_NUMBERS, entry);
  r->u.iter.it = *it;
  r->u.iter.op = op;
  r->u.iter.x[0] = a, r->u.iter.x[1] = b;
  return record_run(r);
}
static int record_pointwise_grad(nn_pointwise_grad_op op, const nn_iter *it, double lo, double hi) {
  return record_op_iter_numbers(AT(pointwise_grad), (int)op, it, lo, hi);
}
static int record_activation(nn_activation_op op, const nn_iter *it, double a, double b) {
  return record_op_iter_numbers(AT(activation), (int)op, it, a, b);
}
static int record_activation_backward(nn_activation_op op, const nn_iter *it, double a, double b) {
  return record_op_iter_numbers(AT(activation_backward), (int)op, it, a, b);
}

static int record_binary(nn_binary_op op, nn_dtype compute, const nn_iter *it) {
  record *r = new_record(CALL_BINARY, AT(binary));
  r->u.iter.it = *it;
  r->u.iter.op = (int)op;
  r->u.iter.dtype = compute;
  return record_run(r);
}

static int record_binary_number(nn_binary_op op, nn_dtype compute, const nn_iter *it, double s,
                                int scalar_first) {
  record *r = new_record(CALL_BINARY_NUMBER, AT(binary_number));
  r->u.iter.it = *it;
  r->u.iter.op = (int)op;
  r->u.iter.dtype = compute;
  r->u.iter.x[0] = s;
  r->u.iter.flag = scalar_first;
  return record_run(r);
}

static int record_index_offsets(const nn_iter *it, int64_t n, int64_t scale, int base,
                                int negative, int dim, const char *op) {
  record *r = new_record(CALL_INDEX_OFFSETS, AT(index_offsets));
  r->u.iter.it = *it;
  r->u.iter.n = n, r->u.iter.scale = scale;
  r->u.iter.base = base, r->u.iter.negative = negative, r->u.iter.dim = dim;
  r->u.iter.name = op; /* a literal */
  return record_run(r);
}

static int record_index_checked(const nn_iter *it, int mode, int64_t n, int64_t scale, int base,
                                int negative, int dim, const char *op) {
  record *r = new_record(CALL_INDEX_OFFSETS, AT(index_checked));
  r->u.iter.it = *it;
  r->u.iter.flag = mode;
  r->u.iter.n = n, r->u.iter.scale = scale;
  r->u.iter.base = base, r->u.iter.negative = negative, r->u.iter.dim = dim;
  r->u.iter.name = op; /* a literal */
  return record_run(r);
}

/* Entries of one reduction geometry. */
static int record_geom(size_t entry, const nn_reduce_geom *g) {
  record *r = new_record(CALL_GEOM, entry);
  r->u.geom.r = *g;
  return record_run(r);
}
static int record_logsumexp(const nn_reduce_geom *g) { return record_geom(AT(logsumexp), g); }
static int record_extreme_backward(const nn_reduce_geom *g) {
  return record_geom(AT(extreme_backward), g);
}
static int record_extreme_all_backward(const nn_reduce_geom *g) {
  return record_geom(AT(extreme_all_backward), g);
}
static int record_prod_backward(const nn_reduce_geom *g) { return record_geom(AT(prod_backward), g); }
static int record_cumprod_backward(const nn_reduce_geom *g) {
  return record_geom(AT(cumprod_backward), g);
}

static int record_flag_geom(size_t entry, call_kind kind, int flag, const nn_reduce_geom *g) {
  record *r = new_record(kind, entry);
  r->u.geom.r = *g;
  r->u.geom.flag = flag;
  return record_run(r);
}
static int record_extreme(int want_max, const nn_reduce_geom *g) {
  return record_flag_geom(AT(extreme), CALL_FLAG_GEOM, want_max, g);
}
static int record_sort(int descending, const nn_reduce_geom *g) {
  return record_flag_geom(AT(sort), CALL_FLAG_GEOM, descending, g);
}
static int record_softmax(const nn_reduce_geom *g, int log_form) {
  return record_flag_geom(AT(softmax), CALL_GEOM_FLAG, log_form, g);
}
static int record_softmax_backward(const nn_reduce_geom *g, int log_form) {
  return record_flag_geom(AT(softmax_backward), CALL_GEOM_FLAG, log_form, g);
}

static int record_reduce(nn_reduce_op op, const nn_reduce_geom *g, double p) {
  record *r = new_record(CALL_REDUCE, AT(reduce));
  r->u.geom.r = *g;
  r->u.geom.op = (int)op;
  r->u.geom.x = p;
  return record_run(r);
}

static int record_norm_backward(double p, const nn_reduce_geom *g) {
  record *r = new_record(CALL_NUMBER_GEOM, AT(norm_backward));
  r->u.geom.r = *g;
  r->u.geom.x = p;
  return record_run(r);
}

static int record_scan(nn_scan_op op, int reverse, const nn_reduce_geom *g) {
  record *r = new_record(CALL_SCAN, AT(scan));
  r->u.geom.r = *g;
  r->u.geom.op = (int)op;
  r->u.geom.flag = reverse;
  return record_run(r);
}

static int record_dot(const nn_reduce_geom *g) { return record_geom(AT(dot), g); }
static int record_band(nn_dtype dtype, int64_t batch, int64_t rows, int64_t cols, int64_t k,
                       int upper, const void *in, void *out) {
  record *r = new_record(CALL_BAND, AT(band));
  r->u.span.dtype = dtype, r->u.span.n = batch, r->u.span.rows = rows, r->u.span.cols = cols;
  r->u.span.half = k, r->u.span.bytes = (size_t)(upper != 0);
  r->u.span.from = in, r->u.span.to = out;
  return record_run(r);
}

static int record_topk(int largest, int64_t k, const nn_reduce_geom *g) {
  record *r = new_record(CALL_TOPK, AT(topk));
  r->u.geom.r = *g;
  r->u.geom.flag = largest;
  r->u.geom.n = k;
  return record_run(r);
}

static int record_kthvalue(int64_t k, int median, const nn_reduce_geom *g) {
  record *r = new_record(CALL_KTHVALUE, AT(kthvalue));
  r->u.geom.r = *g;
  r->u.geom.flag = median;
  r->u.geom.n = k;
  return record_run(r);
}

static int record_scatter_line(const nn_reduce_geom *g, int64_t stride) {
  record *r = new_record(CALL_GEOM_COUNT, AT(scatter_line));
  r->u.geom.r = *g;
  r->u.geom.n = stride;
  return record_run(r);
}

static int record_ramp(nn_dtype dtype, void *data, int64_t n, int64_t half, double start,
                       double step, double end) {
  record *r = new_record(CALL_RAMP, AT(ramp));
  r->u.span.dtype = dtype;
  r->u.span.to = data;
  r->u.span.n = n, r->u.span.half = half;
  r->u.span.start = start, r->u.span.step = step, r->u.span.end = end;
  return record_run(r);
}

/* add_rows as the iterator backend.h describes it by: (dst, src) over
   {cols, rows}, dst the same row for every row of src */
static int record_add_rows(nn_dtype dtype, int64_t rows, int64_t cols, const void *src, void *dst) {
  nn_iter it = {.n = 2, .ndim = 2, .size = {cols, rows}, .stride = {{1, 1}, {0, cols}},
                .data = {dst, (char *)src}, .dtype = {dtype, dtype}};
  record *r = new_iter_direct(AT(add_rows), 0, &it, 0);
  if (r) return record_run(r);
  r = new_record(CALL_ADD_ROWS, AT(add_rows));
  r->u.span.dtype = dtype;
  r->u.span.rows = rows, r->u.span.cols = cols;
  r->u.span.from = src, r->u.span.to = dst;
  return record_run(r);
}

static int record_within(void *dst, const void *src, size_t nbytes) {
  record *r = new_record(CALL_WITHIN, AT(within));
  r->u.span.to = dst, r->u.span.from = src, r->u.span.bytes = nbytes;
  return record_run(r);
}

static int record_randperm(int64_t n, int64_t first, int64_t *out) {
  record *r = new_record(CALL_RANDPERM, AT(randperm));
  r->u.span.n = n, r->u.span.half = first, r->u.span.to = out;
  return record_run(r);
}

/* A product the backend can prepare is replayed as its direct call: the
   choice of kernel, made from shapes and strides that a replay keeps, is
   not made again at every step. */
static int record_gemm(const nn_gemm_args *a) {
  const nn_backend *be = recording_plan->real;
  nn_gemm_direct direct;
  if (be->gemm_prepare && be->gemm_prepare(a, &direct) > 0) {
    record *r = new_record(CALL_GEMM_DIRECT, AT(gemm));
    r->u.gemm_direct = direct;
    return record_run(r);
  }
  record *r = new_record(CALL_GEMM, AT(gemm));
  r->u.gemm = *a;
  return record_run(r);
}

static int record_loss_call(size_t entry, const nn_loss_args *a) {
  record *r = new_record(CALL_LOSS, entry);
  r->u.loss = *a;
  return record_run(r);
}
static int record_loss(const nn_loss_args *a) { return record_loss_call(AT(loss), a); }
static int record_loss_backward(const nn_loss_args *a) {
  return record_loss_call(AT(loss_backward), a);
}

static int record_class_loss_call(size_t entry, const nn_class_loss_args *a) {
  record *r = new_record(CALL_CLASS_LOSS, entry);
  r->u.class_loss = *a; /* op is a literal; weight, lse, total_weight lie in tensors */
  return record_run(r);
}
static int record_class_loss(const nn_class_loss_args *a) {
  return record_class_loss_call(AT(class_loss), a);
}
static int record_class_loss_backward(const nn_class_loss_args *a) {
  return record_class_loss_call(AT(class_loss_backward), a);
}

static int record_prelu_call(size_t entry, const nn_prelu_args *a) {
  record *r = new_record(CALL_PRELU, entry);
  r->u.prelu = *a;
  return record_run(r);
}
static int record_prelu(const nn_prelu_args *a) { return record_prelu_call(AT(prelu), a); }
static int record_prelu_backward(const nn_prelu_args *a) {
  return record_prelu_call(AT(prelu_backward), a);
}

static int record_patch(size_t entry, const nn_patch_geom *g, const void *from, void *to) {
  record *r = new_record(CALL_PATCH, entry);
  r->u.patch.g = *g;
  r->u.patch.from = from, r->u.patch.to = to;
  return record_run(r);
}
static int record_im2col(const nn_patch_geom *g, const void *image, void *cols) {
  return record_patch(AT(im2col), g, image, cols);
}
static int record_col2im(const nn_patch_geom *g, const void *cols, void *image) {
  return record_patch(AT(col2im), g, cols, image);
}

static int record_pool_call(size_t entry, const nn_pool2d_args *a) {
  record *r = new_record(CALL_POOL, entry);
  r->u.pool = *a;
  return record_run(r);
}
static int record_pool2d(const nn_pool2d_args *a) { return record_pool_call(AT(pool2d), a); }
static int record_pool2d_backward(const nn_pool2d_args *a) {
  return record_pool_call(AT(pool2d_backward), a);
}

static int record_upsample_call(size_t entry, const nn_upsample2d_args *a) {
  record *r = new_record(CALL_UPSAMPLE, entry);
  r->u.upsample = *a;
  return record_run(r);
}
static int record_upsample2d(const nn_upsample2d_args *a) {
  return record_upsample_call(AT(upsample2d), a);
}
static int record_upsample2d_backward(const nn_upsample2d_args *a) {
  return record_upsample_call(AT(upsample2d_backward), a);
}

static int record_batch_norm_call(size_t entry, const nn_batch_norm_args *a) {
  record *r = new_record(CALL_BATCH_NORM, entry);
  r->u.batch_norm = *a;
  return record_run(r);
}
static int record_batch_norm(const nn_batch_norm_args *a) {
  return record_batch_norm_call(AT(batch_norm), a);
}
static int record_batch_norm_backward(const nn_batch_norm_args *a) {
  return record_batch_norm_call(AT(batch_norm_backward), a);
}

static int record_rnn_call(size_t entry, const nn_rnn_step_args *a) {
  record *r = new_record(CALL_RNN, entry);
  r->u.rnn = *a;
  return record_run(r);
}
static int record_rnn_step(const nn_rnn_step_args *a) { return record_rnn_call(AT(rnn_step), a); }
static int record_rnn_step_backward(const nn_rnn_step_args *a) {
  return record_rnn_call(AT(rnn_step_backward), a);
}

static int record_embedding_call(size_t entry, const nn_embedding_args *a) {
  record *r = new_record(CALL_EMBEDDING, entry);
  r->u.embedding = *a;
  return record_run(r);
}
static int record_embedding(const nn_embedding_args *a) {
  return record_embedding_call(AT(embedding), a);
}
static int record_embedding_backward(const nn_embedding_args *a) {
  return record_embedding_call(AT(embedding_backward), a);
}
static int record_embedding_renorm(const nn_embedding_args *a) {
  return record_embedding_call(AT(embedding_renorm), a);
}

static int record_random(size_t entry, const nn_strided *t, double a, double b) {
  record *r = new_record(CALL_RANDOM, entry);
  r->u.random.t = *t;
  r->u.random.x[0] = a, r->u.random.x[1] = b;
  return record_run(r);
}
static int record_uniform(const nn_strided *t, double from, double to) {
  return record_random(AT(uniform), t, from, to);
}
static int record_normal(const nn_strided *t, double mean, double std) {
  return record_random(AT(normal), t, mean, std);
}

static int record_random_int(const nn_strided *t, uint64_t range, int64_t base) {
  record *r = new_record(CALL_RANDOM_INT, AT(random_int));
  r->u.random.t = *t;
  r->u.random.range = range, r->u.random.base = base;
  return record_run(r);
}

/* ---- entries a replay cannot redo: they refuse the plan, then run ---------- */
static int refuse_to_host(void *host, const void *data, size_t nbytes) {
  nn_capture_host_read("a copy to the host");
  return recording_plan->real->to_host(host, data, nbytes);
}
static int refuse_from_host(void *data, const void *host, size_t nbytes) {
  nn_capture_refuse("capture: a copy from the host inside the step (the host's bytes do not "
                    "outlive it; the step runs eagerly)");
  return recording_plan->real->from_host(data, host, nbytes);
}
static int refuse_gather_rows(void *out, const void *src, const int64_t *rows, int64_t count,
                              size_t row_bytes) {
  nn_capture_refuse("capture: gather_rows (a data loader's batch) inside the step: its rows "
                    "are chosen on the host (the step runs eagerly)");
  return recording_plan->real->gather_rows(out, src, rows, count, row_bytes);
}
static int refuse_nonzero(const nn_strided *t, int64_t *out, int64_t count) {
  nn_capture_refuse("capture: nonzero inside the step sizes its result from the values (the "
                    "step runs eagerly)");
  return recording_plan->real->nonzero(t, out, count);
}
/* CTC's kernels fail on bad lengths or labels, which a replay could not
   report: the step runs eagerly. */
static int refuse_ctc_loss(const nn_ctc_args *a) {
  nn_capture_refuse("capture: ctc_loss inside the step checks its lengths and labels as it runs "
                    "(the step runs eagerly)");
  return recording_plan->real->ctc_loss(a);
}
static int refuse_ctc_loss_backward(const nn_ctc_args *a) {
  nn_capture_refuse("capture: ctc_loss's backward inside the step checks its lengths and labels "
                    "as it runs (the step runs eagerly)");
  return recording_plan->real->ctc_loss_backward(a);
}
static int refuse_equal(const nn_iter *it, int *result) {
  nn_capture_refuse("capture: equal inside the step answers on the host (the step runs eagerly)");
  return recording_plan->real->equal(it, result);
}
/* An optimizer's kernel outside a host call would keep its learning rate
   and step count as they were: nn.optim's steps are host calls. */
static const char *const optimizer_outside =
    "capture: an optimizer kernel ran outside nn.optim's step, and a replay would repeat its "
    "learning rate and step count (the step runs eagerly)";
static int refuse_sgd_step(nn_dtype dtype, int64_t n, void *param, const void *grad,
                           void *momentum_buffer, int first_step, const nn_sgd_options *o) {
  nn_capture_refuse("%s", optimizer_outside);
  return recording_plan->real->sgd_step(dtype, n, param, grad, momentum_buffer, first_step, o);
}
static int refuse_adam_step(nn_dtype dtype, int64_t n, void *param, const void *grad,
                            void *exp_avg, void *exp_avg_sq, void *max_exp_avg_sq, int64_t step,
                            const nn_adam_options *o) {
  nn_capture_refuse("%s", optimizer_outside);
  return recording_plan->real->adam_step(dtype, n, param, grad, exp_avg, exp_avg_sq,
                                         max_exp_avg_sq, step, o);
}
static int refuse_rmsprop_step(nn_dtype dtype, int64_t n, void *param, const void *grad,
                               void *square_avg, void *momentum_buffer, void *grad_avg,
                               const nn_rmsprop_options *o) {
  nn_capture_refuse("%s", optimizer_outside);
  return recording_plan->real->rmsprop_step(dtype, n, param, grad, square_avg, momentum_buffer,
                                            grad_avg, o);
}
static int refuse_adagrad_step(nn_dtype dtype, int64_t n, void *param, const void *grad, void *sum,
                               int64_t step, const nn_adagrad_options *o) {
  nn_capture_refuse("%s", optimizer_outside);
  return recording_plan->real->adagrad_step(dtype, n, param, grad, sum, step, o);
}
static int refuse_adadelta_step(nn_dtype dtype, int64_t n, void *param, const void *grad, void *square_avg,
                                void *acc_delta, const nn_adadelta_options *o) {
  nn_capture_refuse("%s", optimizer_outside);
  return recording_plan->real->adadelta_step(dtype, n, param, grad, square_avg, acc_delta, o);
}
static int refuse_adamax_step(nn_dtype dtype, int64_t n, void *param, const void *grad, void *exp_avg,
                              void *exp_inf, int64_t step, const nn_adamax_options *o) {
  nn_capture_refuse("%s", optimizer_outside);
  return recording_plan->real->adamax_step(dtype, n, param, grad, exp_avg, exp_inf, step, o);
}
static int refuse_nadam_step(nn_dtype dtype, int64_t n, void *param, const void *grad, void *exp_avg,
                             void *exp_avg_sq, int64_t step, double mu_product, const nn_nadam_options *o) {
  nn_capture_refuse("%s", optimizer_outside);
  return recording_plan->real->nadam_step(dtype, n, param, grad, exp_avg, exp_avg_sq, step, mu_product, o);
}
static int refuse_radam_step(nn_dtype dtype, int64_t n, void *param, const void *grad, void *exp_avg,
                             void *exp_avg_sq, int64_t step, const nn_radam_options *o) {
  nn_capture_refuse("%s", optimizer_outside);
  return recording_plan->real->radam_step(dtype, n, param, grad, exp_avg, exp_avg_sq, step, o);
}
static int refuse_asgd_step(nn_dtype dtype, int64_t n, void *param, const void *grad, void *ax, double eta,
                            double mu, const nn_asgd_options *o) {
  nn_capture_refuse("%s", optimizer_outside);
  return recording_plan->real->asgd_step(dtype, n, param, grad, ax, eta, mu, o);
}
static int refuse_rprop_step(nn_dtype dtype, int64_t n, void *param, const void *grad, void *prev,
                             void *step_size, const nn_rprop_options *o) {
  nn_capture_refuse("%s", optimizer_outside);
  return recording_plan->real->rprop_step(dtype, n, param, grad, prev, step_size, o);
}
static void refuse_manual_seed(uint64_t seed) {
  nn_capture_refuse("capture: manual_seed inside the step (a replay would not seed again)");
  recording_plan->real->manual_seed(seed);
}
static int refuse_rng_set_state(const void *buf, size_t len) {
  nn_capture_refuse("capture: set_rng_state inside the step (a replay would not set it again)");
  return recording_plan->real->rng_set_state(buf, len);
}

/* The recording table of real: its kernels replaced by the record_*
   functions, the entries a replay cannot redo by the refuse_* ones; memory,
   devices, threads and the generator's read-only entries pass through.
   An entry real lacks stays NULL, so that the fronts see the device as it
   is. tests/c/test_capture.c checks that every entry is one or the other. */
static void make_recording_table(nn_backend *t, const nn_backend *real) {
  *t = *real;
#define REPLACE(entry, with) \
  if (real->entry) t->entry = with
  REPLACE(to_host, refuse_to_host);
  REPLACE(from_host, refuse_from_host);
  REPLACE(within, record_within);
  REPLACE(copy, record_copy);
  REPLACE(fill, record_fill);
  REPLACE(ramp, record_ramp);
  REPLACE(add_into, record_add_into);
  REPLACE(add_rows, record_add_rows);
  REPLACE(gather_rows, refuse_gather_rows);
  REPLACE(binary, record_binary);
  REPLACE(binary_number, record_binary_number);
  REPLACE(unary, record_unary);
  REPLACE(unary_backward, record_unary_backward);
  REPLACE(clamp, record_clamp);
  REPLACE(pointwise_grad, record_pointwise_grad);
  REPLACE(nan_to_num, record_nan_to_num);
  REPLACE(activation, record_activation);
  REPLACE(activation_backward, record_activation_backward);
  REPLACE(softmax, record_softmax);
  REPLACE(softmax_backward, record_softmax_backward);
  REPLACE(prelu, record_prelu);
  REPLACE(prelu_backward, record_prelu_backward);
  REPLACE(reduce, record_reduce);
  REPLACE(extreme, record_extreme);
  REPLACE(logsumexp, record_logsumexp);
  REPLACE(extreme_backward, record_extreme_backward);
  REPLACE(extreme_all_backward, record_extreme_all_backward);
  REPLACE(norm_backward, record_norm_backward);
  REPLACE(prod_backward, record_prod_backward);
  REPLACE(scan, record_scan);
  REPLACE(cumprod_backward, record_cumprod_backward);
  REPLACE(sort, record_sort);
  REPLACE(topk, record_topk);
  REPLACE(dot, record_dot);
  REPLACE(band, record_band);
  REPLACE(kthvalue, record_kthvalue);
  REPLACE(scatter_line, record_scatter_line);
  REPLACE(gemm, record_gemm);
  REPLACE(loss, record_loss);
  REPLACE(loss_backward, record_loss_backward);
  REPLACE(class_loss, record_class_loss);
  REPLACE(class_loss_backward, record_class_loss_backward);
  REPLACE(sgd_step, refuse_sgd_step);
  REPLACE(adam_step, refuse_adam_step);
  REPLACE(rmsprop_step, refuse_rmsprop_step);
  REPLACE(adagrad_step, refuse_adagrad_step);
  REPLACE(adadelta_step, refuse_adadelta_step);
  REPLACE(adamax_step, refuse_adamax_step);
  REPLACE(nadam_step, refuse_nadam_step);
  REPLACE(radam_step, refuse_radam_step);
  REPLACE(asgd_step, refuse_asgd_step);
  REPLACE(rprop_step, refuse_rprop_step);
  REPLACE(index_offsets, record_index_offsets);
  REPLACE(index_gather, record_index_gather);
  REPLACE(index_put, record_index_put);
  REPLACE(index_checked, record_index_checked);
  REPLACE(where, record_where);
  REPLACE(nonzero, refuse_nonzero);
  REPLACE(uniform, record_uniform);
  REPLACE(normal, record_normal);
  REPLACE(random_int, record_random_int);
  REPLACE(randperm, record_randperm);
  REPLACE(manual_seed, refuse_manual_seed);
  REPLACE(rng_set_state, refuse_rng_set_state);
  REPLACE(im2col, record_im2col);
  REPLACE(col2im, record_col2im);
  REPLACE(pool2d, record_pool2d);
  REPLACE(pool2d_backward, record_pool2d_backward);
  REPLACE(upsample2d, record_upsample2d);
  REPLACE(upsample2d_backward, record_upsample2d_backward);
  REPLACE(batch_norm, record_batch_norm);
  REPLACE(batch_norm_backward, record_batch_norm_backward);
  REPLACE(rnn_step, record_rnn_step);
  REPLACE(rnn_step_backward, record_rnn_step_backward);
  REPLACE(embedding, record_embedding);
  REPLACE(embedding_backward, record_embedding_backward);
  REPLACE(embedding_renorm, record_embedding_renorm);
  REPLACE(equal, refuse_equal);
  REPLACE(lerp, record_lerp);
  REPLACE(ctc_loss, refuse_ctc_loss);
  REPLACE(ctc_loss_backward, refuse_ctc_loss_backward);
#undef REPLACE
}

const nn_backend *nn_capture_dispatch(const nn_backend *real, nn_device device, size_t kernel,
                                      const nn_tensor *a, const nn_tensor *b, const nn_tensor *c) {
  nn_plan *p = nn_capture_active;
  if (!p) return real;
  if (kernel == AT(gather_rows)) {
    /* the data loader's prefetch keeps the entry for its own thread, which
       may call it after the capture: the real one, the plan refused */
    nn_capture_refuse("capture: gather_rows (a data loader's batch) inside the step: its rows "
                      "are chosen on the host (the step runs eagerly)");
    return real;
  }
  if (!p->has_device) {
    p->has_device = 1;
    p->device = device;
    p->real = real;
    make_recording_table(&p->recording, real);
  } else if (device != p->device || real != p->real) {
    nn_capture_refuse("capture: the step runs kernels on %s and on %s; a plan runs on one device "
                      "(the step runs eagerly)",
                      nn_device_name(p->device), nn_device_name(device));
    return real;
  }
  /* an operand's .grad too: a backward adds a parameter's gradient into
     it without dispatching on it (linear's and conv's weights) */
  const nn_tensor *operands[3] = {a, b, c};
  for (int i = 0; i < 3; i++) {
    if (!operands[i]) continue;
    keep(p, operands[i]->storage, 0);
    if (operands[i]->grad) keep(p, operands[i]->grad->storage, 0);
  }
  return nn_capture_active ? &p->recording : real;
}

/* ---- the plan's life ----------------------------------------------------------- */
nn_plan *nn_capture_begin(void) {
  if (recording_plan) {
    nn_error_set("capture: a step is being captured already (captures do not nest)");
    return NULL;
  }
  nn_plan *p = calloc(1, sizeof *p);
  if (!p) {
    nn_error_set("capture: out of memory");
    return NULL;
  }
  recording_plan = nn_capture_active = p;
  return p;
}

int nn_capture_recording(void) { return nn_capture_active != NULL; }

int nn_capture_host_call(int (*fn)(void *ctx, void *arg), void *ctx, void (*free_ctx)(void *)) {
  nn_plan *p = nn_capture_active;
  if (!p) return 0;
  record *r = new_record(CALL_HOST, 0);
  r->u.host.fn = fn;
  r->u.host.ctx = ctx;
  r->u.host.free_ctx = r == &p->spare ? NULL : free_ctx;
  if (r == &p->spare && free_ctx) free_ctx(ctx);
  p->suspended = 1;
  nn_capture_active = NULL;
  return 0;
}

void nn_capture_host_call_done(void) {
  nn_plan *p = recording_plan;
  if (!p || !p->suspended) return;
  p->suspended = 0;
  if (!p->refused) nn_capture_active = p;
}

/* Splits the records into runs a device may make one graph of: kernels
   only, the random fills and host calls each a run of their own. */
static int make_segments(nn_plan *p) {
  p->segments = calloc(p->count ? p->count : 1, sizeof *p->segments);
  if (!p->segments) return -1;
  for (size_t i = 0; i < p->count; i++) {
    call_kind k = p->records[i].kind;
    int graphable = k != CALL_HOST && k != CALL_RANDOM && k != CALL_RANDOM_INT && k != CALL_RANDPERM;
    segment *last = p->segment_count ? &p->segments[p->segment_count - 1] : NULL;
    if (last && graphable && last->graphable) {
      last->end = i + 1;
      continue;
    }
    segment *s = &p->segments[p->segment_count++];
    s->first = i, s->end = i + 1, s->graphable = graphable, s->direct = !graphable;
  }
  return 0;
}

int nn_capture_end(nn_plan *p) {
  if (p == recording_plan) recording_plan = nn_capture_active = NULL;
  if (!p) return -1;
  p->ended = 1;
  p->suspended = 0;
  if (!p->refused && make_segments(p) < 0) {
    p->refused = 1;
    snprintf(p->why, sizeof p->why, "capture: out of memory");
  }
  if (p->refused) nn_error_set("%s", p->why);
  return p->refused ? -1 : 0;
}

const char *nn_plan_why(const nn_plan *p) { return p && p->refused ? p->why : NULL; }

static int run_records(nn_plan *p, size_t first, size_t end, void *arg) {
  /* a pointer stepped over the records, not an index multiplied by the
     record's size and added to p->records reloaded after every call: a
     third of the loop's instructions for a small step's 40 records */
  const nn_backend *be = p->real;
  for (record *r = p->records + first, *last = p->records + end; r < last; r++) {
    /* the prepared calls, most of a small step's records, without run's switch */
    if (r->kind == CALL_GEMM_DIRECT) r->u.gemm_direct.run(&r->u.gemm_direct);
    else if (r->kind == CALL_ITER_DIRECT) r->u.iter_direct.run(&r->u.iter_direct);
    else if (run(be, r, arg) < 0) return -1;
  }
  return 0;
}

/* Splits segment i into halves, both to be tried as graphs at the next
   replay (the segments never outnumber the records they cover). */
static void split_segment(nn_plan *p, size_t i) {
  segment *s = &p->segments[i];
  size_t mid = s->first + (s->end - s->first) / 2;
  memmove(s + 2, s + 1, (p->segment_count - i - 1) * sizeof *s);
  p->segment_count++;
  s[1] = s[0];
  s[0].end = mid;
  s[1].first = mid;
}

/* Segment i at a replay; returns how many segments it ran (a split one is
   two), or -1. A run of kernels is made into a graph at its first replay:
   captured while its kernels are queued (they do not run then), launched
   after. A run that cannot be one (a kernel that allocates or reads back
   while it is captured: scratch memory, a label check) is split in halves
   that try again at the next replay, down to the one record that spoils
   it, which goes call by call; so does everything on a device without
   graphs. */
static int replay_segment(nn_plan *p, size_t i, void *arg) {
  const nn_backend *be = p->real;
  segment *s = &p->segments[i];
  if (s->graph) return be->graph_launch(s->graph) < 0 ? -1 : 1;
  if (s->direct || !be->graph_begin) return run_records(p, s->first, s->end, arg) < 0 ? -1 : 1;
  int begun = be->graph_begin();
  if (begun < 0) return -1;
  if (begun > 0) { /* this device runs plans call by call */
    s->direct = 1;
    return run_records(p, s->first, s->end, arg) < 0 ? -1 : 1;
  }
  int queued = run_records(p, s->first, s->end, arg);
  void *graph = NULL;
  int made = be->graph_end(&graph);
  if (queued < 0 || made < 0 || !graph) {
    if (graph) be->graph_free(graph);
    size_t first = s->first, end = s->end;
    int covered = 1;
    if (end - first > 1) {
      split_segment(p, i);
      covered = 2;
    } else {
      s->direct = 1;
    }
    /* nothing ran while capturing */
    return run_records(p, first, end, arg) < 0 ? -1 : covered;
  }
  s->graph = graph;
  return be->graph_launch(graph) < 0 ? -1 : 1;
}

int nn_plan_replay(nn_plan *p, void *arg) {
  if (!p || !p->ended || p->refused) {
    nn_error_set("capture: this plan cannot be replayed%s%s", p && p->refused ? ": " : "",
                 p && p->refused ? p->why : "");
    return -1;
  }
  if (recording_plan) {
    nn_error_set("capture: a plan cannot be replayed while a step is being captured");
    return -1;
  }
  for (size_t i = 0; i < p->segment_count;) {
    int ran = replay_segment(p, i, arg);
    if (ran < 0) return -1;
    i += (size_t)ran;
  }
  return 0;
}

void nn_plan_free(nn_plan *p) {
  if (!p) return;
  if (p == recording_plan) nn_capture_end(p);
  for (size_t i = 0; i < p->segment_count; i++)
    if (p->segments[i].graph) p->real->graph_free(p->segments[i].graph);
  free(p->segments);
  for (size_t i = 0; i < p->count; i++)
    if (p->records[i].kind == CALL_HOST && p->records[i].u.host.free_ctx)
      p->records[i].u.host.free_ctx(p->records[i].u.host.ctx);
  free(p->records);
  for (size_t i = 0; i < p->kept_capacity; i++)
    if (p->kept[i].storage) nn_storage_release(p->kept[i].storage);
  free(p->kept);
  free(p);
}

void nn_plan_describe(const nn_plan *p, nn_plan_info *info) {
  memset(info, 0, sizeof *info);
  if (!p) return;
  for (size_t i = 0; i < p->count; i++) {
    if (p->records[i].kind == CALL_HOST) info->host_calls++;
    else info->kernels++;
  }
  for (size_t i = 0; i < p->kept_capacity; i++) {
    if (!p->kept[i].storage) continue;
    info->storages++;
    info->bytes += p->kept[i].storage->nbytes;
  }
  for (size_t i = 0; i < p->segment_count; i++) info->graphs += p->segments[i].graph != NULL;
}

int nn_plan_copy_input(nn_tensor *dst, const nn_tensor *src) {
  if (dst->storage == src->storage || dst->dtype != src->dtype || dst->device != src->device ||
      !nn_same_shape(dst, src) || !nn_is_contiguous(dst) || !nn_is_contiguous(src))
    return nn_copy_(dst, src);
  const nn_backend *be = nn_dispatch("copy", offsetof(nn_backend, within), dst, src, NULL);
  if (!be) return -1;
  size_t bytes = (size_t)nn_numel(dst) * nn_element_size(dst->dtype);
  if (bytes && be->within(nn_data(dst), nn_data(src), bytes) < 0) return -1;
  nn_bump_version(dst);
  return 0;
}
