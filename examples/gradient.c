/* gradient.c: the engine from C, without Lua. Makes a tensor x, computes
 * loss = sum(x * x), asks for d loss / d x (which is 2x), and shows how an
 * error is reported: as NULL and a message, never an abort.
 *
 *   cc gradient.c $(pkg-config --cflags --libs nnlua) -o gradient && ./gradient
 */
#include <nn.h>
#include <stdio.h>

int main(void) {
  int64_t shape[2] = {2, 3};
  nn_tensor *x = nn_full(NN_FLOAT32, 2, shape, 1.5);
  if (x == NULL || nn_set_requires_grad(x, 1) < 0) {
    fprintf(stderr, "gradient: %s\n", nn_error());
    return 1;
  }
  nn_tensor *squares = nn_binary(NN_MUL, x, x);
  nn_tensor *loss = squares ? nn_sum(squares, NN_ALL_DIMS, 0) : NULL;
  double value = 0;
  if (loss == NULL || nn_item(loss, &value) < 0 || nn_backward(loss, NULL, 0) < 0) {
    fprintf(stderr, "gradient: %s\n", nn_error());
    return 1;
  }
  printf("loss = %g\n", value); /* 6 elements of 1.5^2: 13.5 */
  printf("d loss / d x =");
  for (int64_t i = 0; i < nn_numel(x->grad); i++) printf(" %g", nn_get_flat(x->grad, i)); /* 3 each */
  printf("\n");

  /* a mistake: (2 x 3) times (4 x 5) */
  int64_t other_shape[2] = {4, 5};
  nn_tensor *other = nn_zeros(NN_FLOAT32, 2, other_shape);
  nn_tensor *product = other ? nn_matmul(x, other) : NULL;
  if (product == NULL) printf("as expected, an error: %s\n", nn_error());

  nn_release(product);
  nn_release(other);
  nn_release(loss);
  nn_release(squares);
  nn_release(x);
  return 0;
}
