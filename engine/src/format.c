/* format.c: a tensor rendered as text, character for character the way
 * PyTorch 1.13's str(tensor) renders it (torch/_tensor_str.py), so that a
 * script's printout can be compared with PyTorch's by eye or by diff.
 *
 * PyTorch's default print options are fixed here: 4 digits of precision,
 * lines of 80 characters, and tensors of more than 1000 elements
 * summarised to their first and last 3 entries along every dimension. */
#include "internal.h"

#include <stdio.h>

enum {
  PRECISION = 4,
  LINEWIDTH = 80,
  THRESHOLD = 1000,
  EDGEITEMS = 3,
  /* Longest single value: "%.0f" of DBL_MAX has 309 digits, plus sign,
     point and the 4 decimals of "%.4f". */
  VALUE_CHARS = 400
};

/* ---- a growing string ------------------------------------------------ */
/* An append that fails only marks the buffer, so the renderer need not
   check each call; nn_format checks once at the end. */
typedef struct {
  char *text;
  size_t len, cap;
  int failed;
} strbuf;

static void buf_append_n(strbuf *b, const char *s, size_t n) {
  if (b->failed) return;
  if (b->len + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 256;
    while (b->len + n + 1 > cap) cap *= 2;
    char *p = realloc(b->text, cap);
    if (!p) {
      b->failed = 1;
      return;
    }
    b->text = p;
    b->cap = cap;
  }
  memcpy(b->text + b->len, s, n);
  b->len += n;
  b->text[b->len] = 0;
}

static void buf_append(strbuf *b, const char *s) { buf_append_n(b, s, strlen(s)); }

static void buf_repeat(strbuf *b, char c, int count) {
  for (int i = 0; i < count; i++) buf_append_n(b, &c, 1);
}

/* ---- the formatter ---------------------------------------------------
 * PyTorch's _Formatter: one look over the values to be shown decides, for
 * the whole tensor, between integers ("3."), fixed ("0.5000") and
 * scientific ("1.0000e+10") notation, and the width every value is padded
 * to, so that columns line up. */
typedef struct {
  int floating;
  int int_mode; /* every finite value is a whole number */
  int sci_mode;
  int max_width;
} formatter;

/* Text of the element at storage offset off, without padding. Integers are
   read as int64 rather than through a double, which would round those
   beyond 2^53. Python writes every NaN as "nan" where C may write "-nan",
   and spells the infinities "inf"/"-inf", so those are written here. */
static int value_text(const formatter *f, const nn_tensor *t, int64_t off, char *out) {
  const void *data = t->storage->data;
  if (t->dtype == NN_BOOL)
    return snprintf(out, VALUE_CHARS, "%s", ((const unsigned char *)data)[off] ? "True" : "False");
  if (!nn_dtype_is_floating(t->dtype))
    return snprintf(out, VALUE_CHARS, "%lld", (long long)nn_load_integer(t->dtype, data, off));
  double v = nn_load(t->dtype, data, off);
  if (isnan(v)) return snprintf(out, VALUE_CHARS, "nan");
  if (isinf(v)) return snprintf(out, VALUE_CHARS, "%s", v < 0 ? "-inf" : "inf");
  if (f->sci_mode) return snprintf(out, VALUE_CHARS, "%.*e", PRECISION, v);
  /* The point after a whole number tells a float tensor from an int one. */
  if (f->int_mode) return snprintf(out, VALUE_CHARS, "%.0f.", v);
  return snprintf(out, VALUE_CHARS, "%.*f", PRECISION, v);
}

/* The next index shown along a dimension of size n: a summarised dimension
   longer than 2*EDGEITEMS jumps from its first EDGEITEMS entries to its
   last EDGEITEMS. */
static int64_t next_shown(int64_t i, int64_t n, int summarize) {
  if (summarize && n > 2 * EDGEITEMS && i == EDGEITEMS - 1) return n - EDGEITEMS;
  return i + 1;
}

typedef void (*visit_fn)(void *ctx, const nn_tensor *t, int64_t off);

/* Calls fn on the storage offset of every element that will be shown: all
   of them, or for a summarised tensor those PyTorch's get_summarized_data
   keeps, which is the elided view its formatter is built from. The tensor
   is not empty. */
static void visit_shown(const nn_tensor *t, int summarize, visit_fn fn, void *ctx) {
  int64_t index[NN_MAX_DIMS] = {0};
  for (;;) {
    int64_t off = t->offset;
    for (int d = 0; d < t->ndim; d++) off += index[d] * t->stride[d];
    fn(ctx, t, off);
    int d = t->ndim - 1;
    for (; d >= 0; d--) {
      index[d] = next_shown(index[d], t->size[d], summarize);
      if (index[d] < t->size[d]) break;
      index[d] = 0;
    }
    if (d < 0) return;
  }
}

/* First look: the range of the nonzero finite values and whether they are
   all whole; zeros, NaNs and infinities print the same in every mode and
   so take no part in choosing it. */
typedef struct {
  int64_t count;
  double min_abs, max_abs;
  int all_whole;
} float_stats;

static void visit_stats(void *ctx, const nn_tensor *t, int64_t off) {
  float_stats *s = ctx;
  double v = nn_load(t->dtype, t->storage->data, off);
  if (!isfinite(v) || v == 0) return;
  double a = fabs(v);
  if (s->count == 0 || a < s->min_abs) s->min_abs = a;
  if (s->count == 0 || a > s->max_abs) s->max_abs = a;
  if (v != ceil(v)) s->all_whole = 0;
  s->count++;
}

/* Second look: the widest value once the mode is known. */
static void visit_width(void *ctx, const nn_tensor *t, int64_t off) {
  formatter *f = ctx;
  if (f->floating) {
    double v = nn_load(t->dtype, t->storage->data, off);
    if (!isfinite(v) || v == 0) return;
  }
  char text[VALUE_CHARS];
  int n = value_text(f, t, off, text);
  if (n > f->max_width) f->max_width = n;
}

static void formatter_init(formatter *f, const nn_tensor *t, int summarize) {
  f->floating = nn_dtype_is_floating(t->dtype);
  f->int_mode = 1;
  f->sci_mode = 0;
  f->max_width = 1;
  if (f->floating) {
    float_stats s = {0, 0, 0, 1};
    visit_shown(t, summarize, visit_stats, &s);
    if (s.count == 0) return; /* nothing but zeros and non-finites */
    f->int_mode = s.all_whole;
    /* PyTorch's thresholds: a spread of more than three decades, or values
       beyond 1e8 (or, for fractions, below 1e-4), go scientific. */
    f->sci_mode = s.max_abs / s.min_abs > 1000.0 || s.max_abs > 1.0e8 ||
                  (!s.all_whole && s.min_abs < 1.0e-4);
  }
  visit_shown(t, summarize, visit_width, f);
}

/* ---- layout ---------------------------------------------------------- */
static void append_value(strbuf *b, const formatter *f, const nn_tensor *t, int64_t off) {
  char text[VALUE_CHARS];
  int n = value_text(f, t, off, text);
  buf_repeat(b, ' ', f->max_width - n);
  buf_append_n(b, text, (size_t)n);
}

/* A 1-D row at storage offset off: as many values per line as fit in the
   line width after the indent, continuation lines aligned under the first
   value. An elided row shows " ..." in place of its middle, counted as one
   more value when lines are filled. */
static void render_row(strbuf *b, const formatter *f, const nn_tensor *t, int64_t off,
                       int indent, int summarize) {
  int d = t->ndim - 1;
  int64_t n = t->size[d];
  int elide = summarize && n > 2 * EDGEITEMS;
  int64_t shown = elide ? 2 * EDGEITEMS + 1 : n;
  int64_t per_line = (LINEWIDTH - indent) / (f->max_width + 2);
  if (per_line < 1) per_line = 1;
  buf_append(b, "[");
  for (int64_t k = 0; k < shown; k++) {
    if (k > 0) {
      if (k % per_line == 0) {
        buf_append(b, ",\n");
        buf_repeat(b, ' ', indent + 1);
      } else {
        buf_append(b, ", ");
      }
    }
    if (elide && k == EDGEITEMS) {
      buf_append(b, " ...");
      continue;
    }
    int64_t i = elide && k > EDGEITEMS ? n - (2 * EDGEITEMS + 1) + k : k;
    append_value(b, f, t, off + i * t->stride[d]);
  }
  buf_append(b, "]");
}

/* The sub-tensor over dimensions d.. at storage offset off. Slices are
   separated by as many blank lines as they have dimensions beyond one, and
   each level of brackets indents its slices by one more column. */
static void render(strbuf *b, const formatter *f, const nn_tensor *t, int d, int64_t off,
                   int indent, int summarize) {
  if (t->ndim == 0) {
    append_value(b, f, t, off);
    return;
  }
  if (d == t->ndim - 1) {
    render_row(b, f, t, off, indent, summarize);
    return;
  }
  int64_t n = t->size[d];
  int elide = summarize && n > 2 * EDGEITEMS;
  int64_t shown = elide ? 2 * EDGEITEMS + 1 : n;
  int newlines = t->ndim - d - 1;
  buf_append(b, "[");
  for (int64_t k = 0; k < shown; k++) {
    if (k > 0) {
      buf_append(b, ",");
      buf_repeat(b, '\n', newlines);
      buf_repeat(b, ' ', indent + 1);
    }
    if (elide && k == EDGEITEMS) {
      buf_append(b, "...");
      continue;
    }
    int64_t i = elide && k > EDGEITEMS ? n - (2 * EDGEITEMS + 1) + k : k;
    render(b, f, t, d + 1, off + i * t->stride[d], indent + 1, summarize);
  }
  buf_append(b, "]");
}

/* PyTorch's _add_suffixes: a suffix goes on the last line when it fits in
   the line width, else on a line of its own under the first bracket. Its
   measure of the last line (two more than the characters on it) is kept as
   it is, since that is what decides where PyTorch breaks. */
static void append_suffixes(strbuf *b, const char *const *suffixes, int count, int indent) {
  size_t last_newline = b->len; /* b->len: no newline yet */
  for (size_t i = b->len; i > 0; i--)
    if (b->text[i - 1] == '\n') {
      last_newline = i - 1;
      break;
    }
  long last_line_len = last_newline == b->len ? (long)b->len + 2
                                              : (long)(b->len - last_newline) + 1;
  for (int i = 0; i < count; i++) {
    long suffix_len = (long)strlen(suffixes[i]);
    if (last_line_len + suffix_len + 2 > LINEWIDTH) {
      buf_append(b, ",\n");
      buf_repeat(b, ' ', indent);
      last_line_len = indent + suffix_len;
    } else {
      buf_append(b, ", ");
      last_line_len += suffix_len + 2;
    }
    buf_append(b, suffixes[i]);
  }
  buf_append(b, ")");
}

/* The values of a tensor on another device, copied to the host (which
   waits for the kernels computing them); t itself on the CPU. */
static nn_tensor *host_values(const nn_tensor *t) {
  nn_tensor *a = nn_alias(t); /* no autograd: the copy records nothing */
  if (!a) return NULL;
  nn_tensor *h = nn_to_device(a, NN_CPU);
  nn_release(a);
  return h;
}

char *nn_format(const nn_tensor *t) {
  if (nn_capture_active) nn_capture_host_read("printing a tensor");
  if (!t) {
    nn_error_set("format: no tensor given");
    return NULL;
  }
  nn_tensor *host = NULL;
  const nn_tensor *values = t;
  if (t->device != NN_CPU && !(values = host = host_values(t))) return NULL;
  static const char prefix[] = "tensor(";
  const int indent = (int)(sizeof prefix - 1);
  strbuf b = {NULL, 0, 0, 0};
  buf_append(&b, prefix);

  /* At most device, size, dtype and an autograd mark. */
  const char *suffixes[4];
  int n_suffixes = 0;
  char size_text[NN_MAX_DIMS * 24 + 16];
  char dtype_text[32];
  char grad_text[128];
  /* PyTorch names the device when it is not the default one, first. */
  if (t->device == NN_CUDA) suffixes[n_suffixes++] = "device='cuda:0'";

  snprintf(dtype_text, sizeof dtype_text, "dtype=torch.%s", nn_dtype_name(t->dtype));
  if (nn_numel(t) == 0) {
    buf_append(&b, "[]");
    /* An empty tensor shows its shape unless it is the plain (0,), and its
       dtype unless float32: with no values there is nothing else to tell
       an int64 or bool tensor by. */
    if (t->ndim != 1) {
      size_t used = (size_t)snprintf(size_text, sizeof size_text, "size=(");
      for (int d = 0; d < t->ndim; d++)
        used += (size_t)snprintf(size_text + used, sizeof size_text - used, d ? ", %lld" : "%lld",
                                 (long long)t->size[d]);
      snprintf(size_text + used, sizeof size_text - used, ")");
      suffixes[n_suffixes++] = size_text;
    }
    if (t->dtype != NN_FLOAT32) suffixes[n_suffixes++] = dtype_text;
  } else {
    /* float32, int64 and bool are PyTorch's defaults and go unnamed. */
    if (t->dtype != NN_FLOAT32 && t->dtype != NN_INT64 && t->dtype != NN_BOOL)
      suffixes[n_suffixes++] = dtype_text;
    int summarize = nn_numel(t) > THRESHOLD;
    formatter f;
    formatter_init(&f, values, summarize);
    render(&b, &f, values, 0, values->offset, indent, summarize);
  }
  nn_release(host);

  const char *grad_fn = nn_grad_fn_name(t);
  if (grad_fn) {
    snprintf(grad_text, sizeof grad_text, "grad_fn=<%s>", grad_fn);
    suffixes[n_suffixes++] = grad_text;
  } else if (t->requires_grad) {
    suffixes[n_suffixes++] = "requires_grad=True";
  }
  append_suffixes(&b, suffixes, n_suffixes, indent);

  if (b.failed) {
    free(b.text);
    nn_error_set("format: out of memory");
    return NULL;
  }
  return b.text;
}
