/* test_rng.c: the engine's generator draws what PyTorch 1.13's CPU generator
 * draws, bit for bit.
 *
 * The expected values were printed by PyTorch 1.13 (Debian's python3-torch,
 * AVX2 kernels) with %.9g for float32 and %.17g for float64, both of which
 * read back exactly; tests/fixtures/gen_torch_reference.py writes the same
 * numbers into tests/fixtures/torch_reference.lua for the Lua specs. The
 * PyTorch calls that made each table are named above it. */
#include "nn.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int passed, failed;

static void check(int ok, const char *what) {
  if (ok) {
    passed++;
  } else {
    failed++;
    printf("FAIL: %s\n", what);
  }
}

/* Every element of t equals expected[i] exactly (t in logical order). */
static int same_floats(const nn_tensor *t, const float *expected, int64_t n, const char *what) {
  if (!t || nn_numel(t) != n) {
    printf("  %s: wrong tensor\n", what);
    return 0;
  }
  for (int64_t i = 0; i < n; i++) {
    float got = (float)nn_get_flat(t, i);
    if (got != expected[i]) {
      printf("  %s[%lld]: got %.9g, PyTorch drew %.9g\n", what, (long long)i, got, expected[i]);
      return 0;
    }
  }
  return 1;
}

static int same_doubles(const nn_tensor *t, const double *expected, int64_t n, const char *what) {
  if (!t || nn_numel(t) != n) {
    printf("  %s: wrong tensor\n", what);
    return 0;
  }
  for (int64_t i = 0; i < n; i++) {
    double got = nn_get_flat(t, i);
    if (got != expected[i]) {
      printf("  %s[%lld]: got %.17g, PyTorch drew %.17g\n", what, (long long)i, got,
             expected[i]);
      return 0;
    }
  }
  return 1;
}

/* ---- expected values ---------------------------------------------------- */
/* torch.manual_seed(777); nn.Sequential(Linear(2,10), Sigmoid, Linear(10,10),
   Sigmoid, Linear(10,10), Sigmoid, Linear(10,1), Sigmoid): each Linear's
   weight (row-major, out x in) and bias, in order of construction. */
static const float xor_weight1[20] = {
    -0.591261029f, -0.0125335455f, -0.136763915f, -0.161333576f, 0.539271176f,
    0.538955092f, 0.317133695f, 0.00463117985f, 0.459431589f, -0.334553927f,
    -0.266942024f, 0.134046614f, -0.552703798f, 0.171554029f, 0.332386225f,
    0.692716718f, 0.589016199f, -0.248040855f, 0.525378823f, 0.547941387f,
};

static const float xor_bias1[10] = {
    0.570712388f, -0.395476252f, -0.142005712f, -0.377693415f, 0.623838484f,
    0.591076076f, 0.558863223f, -0.0932626277f, -0.49173072f, -0.261099458f,
};

static const float xor_weight2[100] = {
    -0.0777030811f, 0.0737619027f, 0.0224489607f, 0.314348251f, -0.0773219988f,
    0.287212789f, 0.207555979f, 0.0922898948f, 0.0344066918f, -0.0820557624f,
    -0.272213846f, -0.0714886859f, 0.145025641f, 0.257234782f, -0.312488496f,
    -0.300338209f, -0.0318909995f, -0.180394977f, -0.0675465241f, 0.0083622383f,
    0.315572143f, -0.221176207f, -0.114639074f, 0.255453229f, 0.188755587f,
    0.223512158f, -0.276916444f, 0.0965218693f, 0.315939695f, 0.0271585211f,
    0.123413607f, -0.254463464f, -0.116732851f, -0.207939863f, 0.148582652f,
    0.277267665f, 0.123950794f, -0.26487875f, -0.0943348631f, 0.0559833348f,
    -0.0585825257f, -0.149577633f, -0.209407374f, -0.289906234f, -0.0970909446f,
    0.296521574f, -0.256314397f, -0.157984465f, -0.0316016376f, -0.150234655f,
    0.153945461f, -0.266186684f, 0.112600587f, 0.237301677f, 0.24751617f,
    -0.283727348f, 0.098253794f, 0.313822031f, 0.248084068f, 0.243807584f,
    -0.279833972f, -0.258877337f, 0.198515266f, 0.297809422f, 0.315726578f,
    0.193676293f, 0.246483907f, 0.24578315f, 0.140753224f, 0.155646563f,
    0.00247769197f, -0.196152598f, -0.0545184948f, -0.034624733f, 0.162797958f,
    0.149204165f, -0.241929308f, -0.31216985f, -0.267654598f, 0.0732487291f,
    0.251222819f, -0.0675164461f, -0.124335453f, 0.179657236f, -0.258475035f,
    -0.12943688f, -0.0957376882f, 0.0928363204f, 0.108261704f, -0.28851065f,
    -0.206374511f, 0.191930383f, 0.306032121f, 0.151906461f, 0.267135918f,
    -0.166919962f, -0.201366276f, 0.299671233f, 0.21433121f, 0.230080947f,
};

static const float xor_bias2[10] = {
    -0.124799579f, 0.124059774f, -0.315270901f, -0.146906629f, 0.0799616352f,
    0.234711304f, -0.135205686f, 0.11772158f, 0.302661836f, -0.223143846f,
};

static const float xor_weight3[100] = {
    0.0951751322f, 0.179146826f, -0.204966784f, 0.198826537f, -0.299764633f,
    -0.29064098f, 0.0454440415f, -0.15739356f, -0.264290959f, -0.0568538792f,
    -0.120694384f, -0.111173071f, 0.312017858f, -0.121688128f, -0.175846159f,
    0.124662928f, -0.0647667274f, -0.221721455f, -0.0454408005f, 0.0514442064f,
    -0.0784126595f, 0.306549728f, 0.126358524f, -0.139570028f, 0.0245621204f,
    0.164971098f, -0.099299781f, -0.299236417f, 0.0963882655f, -0.10281302f,
    0.247571349f, 0.0810079277f, -0.0717018247f, 0.263599813f, 0.154714569f,
    0.222336069f, 0.109035671f, 0.0930867791f, 0.0913593397f, -0.159786969f,
    0.0675053969f, -0.252620071f, -0.266107887f, -0.220306531f, 0.244913653f,
    0.270591944f, -0.0971584991f, 0.244045526f, 0.29659915f, 0.311274767f,
    -0.250273794f, -0.0776580721f, 0.0976438895f, 0.201495498f, 0.217755511f,
    0.128334835f, -0.289422691f, 0.0542454161f, -0.23506023f, 0.104606502f,
    0.0154793728f, 0.196108297f, -0.049912639f, 0.0652720258f, 0.277819932f,
    0.196576506f, -0.314817458f, -0.204046026f, 0.147448376f, -0.235975027f,
    -0.146972969f, 0.280581295f, -0.26468429f, 0.0157120414f, -0.205140114f,
    -0.0361128338f, 0.25416401f, -0.267816991f, -0.086422801f, 0.0861665756f,
    -0.204769358f, 0.218092531f, -0.179747224f, 0.179438666f, -0.264583588f,
    0.225649744f, 0.201515973f, 0.0331755355f, -0.0672712997f, 0.0264427997f,
    -0.304838777f, -0.140057176f, -0.257818937f, -0.169312507f, -0.292727441f,
    0.279568523f, 0.0776460841f, -0.105214596f, -0.228189707f, -0.0926928073f,
};

static const float xor_bias3[10] = {
    -0.00376200071f, -0.120648623f, 0.132641792f, -0.184131235f, -0.0424348563f,
    0.229960382f, -0.150188744f, 0.0165492222f, -0.111043051f, 0.298134685f,
};

static const float xor_weight4[10] = {
    -0.191436172f, -0.114519536f, 0.296959102f, 0.300172478f, 0.0522849299f,
    0.0495402291f, -0.076328069f, -0.193072796f, -0.094234623f, -0.20333159f,
};

static const float xor_bias4[1] = {
    -0.120777056f,
};

/* torch.manual_seed(42), then in one stream: torch.rand(5),
   torch.rand(3, dtype=float64), torch.randn(5), torch.randn(20),
   torch.randn(7, dtype=float64), torch.randn(33, dtype=float64). */
static const float seed42_rand5[5] = {
    0.882269263f, 0.915003955f, 0.38286376f, 0.959305644f, 0.390448213f,
};

static const double seed42_rand3_f64[3] = {
    0.80716304715084375, 0.34913070488864828, 0.065487459180127994,
};

static const float seed42_randn5[5] = {
    -0.0106964214f, -1.24917865f, -1.22839665f, 0.529411077f, 1.2211014f,
};

static const float seed42_randn20[20] = {
    1.68062055f, 0.355859905f, -0.686622977f, -0.493356347f, -0.845467448f,
    1.3123076f, 0.687159598f, -1.08917534f, -0.355286628f, -0.913823009f,
    -0.658137262f, 0.0780238733f, 2.26671791f, 1.17895091f, -0.434454411f,
    -1.38636553f, -1.28621554f, -1.40324783f, 0.0360036679f, -0.0634772703f,
};

static const double seed42_randn7_f64[7] = {
    0.15109142854549876, 0.4335620109703795, 0.66408239954286929,
    -0.43367649445211742, -0.42010795975993576, -0.94996587233134344,
    -1.0013845723468957,
};

static const double seed42_randn33_f64[33] = {
    0.70104648991517526, 0.29504727635229011, 2.0064070214724858,
    -0.26727222735357198, 0.58291691412598678, -0.46842456722924641,
    0.67463569610451868, 0.32290020028418681, -0.5643386730549419,
    1.5210324588215125, -0.2513531742290816, -1.3654962647161664,
    -0.66516003868098827, -0.64703721444485351, 0.71500310313517723,
    -0.0015926155548757559, -0.355321478932905, 0.21726003245375133,
    0.47779293657955763, -1.3190321046710789, 0.1895398521773638,
    1.3767491772418301, -0.71273961053551005, -1.5181737351378346,
    -0.74468352500861301, 0.0082486022778276071, 0.203907812575544,
    0.88725408989253418, -0.30966928936146026, -1.3091974268452224,
    0.11297413847086157, 1.1042186741735636, 0.31789405108352353,
};

/* torch.manual_seed(0); torch.rand(2, 3) */
static const float seed0_rand2x3[6] = {
    0.49625659f, 0.768221796f, 0.0884774327f, 0.132030487f, 0.307422817f,
    0.634078681f,
};

/* torch.manual_seed(5), then: torch.empty(33, dtype=float64).normal_(0.3, 1.7),
   torch.empty(40).uniform_(-0.37, 2.9), and b = torch.empty(3, 4);
   b.t().uniform_(0, 1), listed in b.t()'s logical order. A mean and std
   other than 0 and 1, and bounds other than symmetric ones, are where
   PyTorch's fused multiply-adds show. */
static const double seed5_normal33_f64[33] = {
    1.7000713683485149, -0.96161692752780525, -0.71052676683232641,
    -0.37749588528972361, 0.72354781582616701, 0.95065560001552574,
    2.0142909290789932, -0.9930964825526003, -1.6943388141218181,
    0.68317045154025269, 1.5513410333055937, 1.6148775619242066,
    -0.96845302491662877, 3.5553520779418659, 1.73725541740738,
    2.6846589754753927, 1.2406794422990222, -1.5404520283104548,
    0.28245748261018166, 0.44437773179216378, -1.2767281969772644,
    -2.2866943349874238, 1.6724666622660049, 2.4098395047977417,
    -2.0758285523284394, 0.14205597201098769, -4.1397721284780848,
    -0.24518141002875579, -0.049457057273330975, 0.10150478517078233,
    0.72674177142908791, 0.82708467141796937, -0.062709090206915744,
};

static const float seed5_uniform40[40] = {
    2.54966235f, 2.33710694f, 0.737376869f, -0.234005272f, 0.0955050141f,
    0.0106543163f, 1.10986793f, 0.538915932f, 0.122382328f, 1.62751102f,
    1.37021482f, 1.01988566f, 0.672310233f, 2.6585362f, -0.310106188f,
    1.22604704f, 2.02399659f, 2.41939449f, -0.157415703f, 1.00897419f,
    2.6285634f, 1.53414345f, 1.75938439f, 0.542553902f, 2.39973283f,
    0.651883543f, 0.384555489f, 2.74804831f, 1.69811761f, 1.25371313f,
    0.125545472f, 0.903098047f, 0.00899117347f, 0.164922774f, 1.03085041f,
    1.58108366f, -0.0746774152f, 2.85406327f, 2.46750498f, -0.256593645f,
};

static const float seed5_then_transposed4x3[12] = {
    0.81253767f, 0.298939109f, 0.538462698f, 0.199964583f, 0.334139049f,
    0.365631044f, 0.0925576687f, 0.562308252f, 0.542393208f, 0.968426645f,
    0.782609224f, 0.240945816f,
};

/* ---- tests ------------------------------------------------------------- */
static void test_default_seed(void) {
  /* PyTorch's default_rng_seed_val, before anyone seeds */
  check(nn_initial_seed() == UINT64_C(67280421310721), "default seed is 67280421310721");
  nn_manual_seed(777);
  check(nn_initial_seed() == 777, "initial_seed after manual_seed(777)");
}

/* The first Linear(2, 10) draws its weight from uniform(-b, b) with
   b = 1/sqrt(2): 20 float32 draws. */
static void test_first_layer_weight(void) {
  nn_manual_seed(777);
  int64_t n = 20;
  nn_tensor *w = nn_empty(NN_FLOAT32, 1, &n);
  double bound = 1.0 / sqrt(2.0);
  check(w && nn_uniform_(w, -bound, bound) == 0, "uniform_ on float32");
  check(same_floats(w, xor_weight1, 20, "weight1"), "manual_seed(777): first Linear's weight");
  nn_release(w);
}

/* Linear's reset_parameters in PyTorch: kaiming_uniform_(weight, a=sqrt(5)),
   that is uniform(-bound, bound) with bound = sqrt(3) * gain / sqrt(fan_in),
   gain = sqrt(2 / (1 + a^2)); then bias from uniform(-1/sqrt(fan_in),
   1/sqrt(fan_in)). The bounds are computed in double, as Python does. */
static int init_linear(int64_t in, int64_t out, nn_tensor **weight, nn_tensor **bias) {
  int64_t wsize[2] = {out, in};
  *weight = nn_empty(NN_FLOAT32, 2, wsize);
  *bias = nn_empty(NN_FLOAT32, 1, &out);
  if (!*weight || !*bias) return -1;
  double a = sqrt(5.0);
  double gain = sqrt(2.0 / (1 + a * a));
  double std = gain / sqrt((double)in);
  double bound = sqrt(3.0) * std;
  if (nn_uniform_(*weight, -bound, bound) < 0) return -1;
  double bias_bound = 1 / sqrt((double)in);
  return nn_uniform_(*bias, -bias_bound, bias_bound);
}

static void test_xor_init(void) {
  static const int64_t shape[4][2] = {{2, 10}, {10, 10}, {10, 10}, {10, 1}};
  const float *weights[4] = {xor_weight1, xor_weight2, xor_weight3, xor_weight4};
  const float *biases[4] = {xor_bias1, xor_bias2, xor_bias3, xor_bias4};
  nn_manual_seed(777);
  for (int l = 0; l < 4; l++) {
    nn_tensor *w = NULL, *b = NULL;
    char what[64];
    snprintf(what, sizeof what, "XOR layer %d: init", l + 1);
    check(init_linear(shape[l][0], shape[l][1], &w, &b) == 0, what);
    snprintf(what, sizeof what, "XOR layer %d: weight as PyTorch's", l + 1);
    check(same_floats(w, weights[l], shape[l][0] * shape[l][1], what), what);
    snprintf(what, sizeof what, "XOR layer %d: bias as PyTorch's", l + 1);
    check(same_floats(b, biases[l], shape[l][1], what), what);
    nn_release(w);
    nn_release(b);
  }
}

static void test_rand_randn_stream(void) {
  nn_manual_seed(42);
  int64_t n;
  nn_tensor *t;
  n = 5;
  t = nn_rand(NN_FLOAT32, 1, &n);
  check(same_floats(t, seed42_rand5, n, "rand(5)"), "seed 42: rand(5)");
  nn_release(t);
  n = 3;
  t = nn_rand(NN_FLOAT64, 1, &n);
  check(same_doubles(t, seed42_rand3_f64, n, "rand(3, float64)"), "seed 42: rand(3, float64)");
  nn_release(t);
  n = 5;
  t = nn_randn(NN_FLOAT32, 1, &n);
  check(same_floats(t, seed42_randn5, n, "randn(5)"), "seed 42: randn(5), one sample each");
  nn_release(t);
  n = 20;
  t = nn_randn(NN_FLOAT32, 1, &n);
  check(same_floats(t, seed42_randn20, n, "randn(20)"), "seed 42: randn(20), float32 normal_fill");
  nn_release(t);
  n = 7;
  t = nn_randn(NN_FLOAT64, 1, &n);
  check(same_doubles(t, seed42_randn7_f64, n, "randn(7, float64)"),
        "seed 42: randn(7, float64), uses the cached sample");
  nn_release(t);
  n = 33;
  t = nn_randn(NN_FLOAT64, 1, &n);
  check(same_doubles(t, seed42_randn33_f64, n, "randn(33, float64)"),
        "seed 42: randn(33, float64), normal_fill with a redrawn tail");
  nn_release(t);

  nn_manual_seed(0);
  int64_t size[2] = {2, 3};
  t = nn_rand(NN_FLOAT32, 2, size);
  check(same_floats(t, seed0_rand2x3, 6, "rand(2, 3)"), "seed 0: rand(2, 3)");
  nn_release(t);
}

static void test_mean_std_and_bounds(void) {
  nn_manual_seed(5);
  int64_t n = 33;
  nn_tensor *t = nn_empty(NN_FLOAT64, 1, &n);
  check(t && nn_normal_(t, 0.3, 1.7) == 0, "normal_(0.3, 1.7)");
  check(same_doubles(t, seed5_normal33_f64, n, "normal_(0.3, 1.7)"),
        "seed 5: normal_(0.3, 1.7) on 33 float64");
  nn_release(t);
  n = 40;
  t = nn_empty(NN_FLOAT32, 1, &n);
  check(t && nn_uniform_(t, -0.37, 2.9) == 0, "uniform_(-0.37, 2.9)");
  check(same_floats(t, seed5_uniform40, n, "uniform_(-0.37, 2.9)"),
        "seed 5: uniform_(-0.37, 2.9) on 40 float32");
  nn_release(t);
  /* a transposed tensor receives its draws in memory order, as PyTorch's
     TensorIterator visits it */
  int64_t size[2] = {3, 4};
  nn_tensor *b = nn_empty(NN_FLOAT32, 2, size);
  nn_tensor *bt = b ? nn_transpose(b, 0, 1) : NULL;
  check(bt && nn_uniform_(bt, 0, 1) == 0, "uniform_ on a transposed view");
  check(same_floats(bt, seed5_then_transposed4x3, 12, "transposed"),
        "seed 5: a transposed view filled in memory order");
  nn_release(bt);
  nn_release(b);
}

/* Draws of every kind after a saved state, including a cached normal
   sample (randn of one float64 element leaves one behind). */
static void draw_mixture(double *out, int n_out) {
  int64_t one = 1, seventeen = 17, three = 3;
  nn_tensor *parts[4] = {nn_randn(NN_FLOAT64, 1, &one), nn_rand(NN_FLOAT32, 1, &three),
                         nn_randn(NN_FLOAT32, 1, &seventeen), nn_randn(NN_FLOAT64, 1, &three)};
  int k = 0;
  for (int p = 0; p < 4; p++) {
    for (int64_t i = 0; parts[p] && i < nn_numel(parts[p]) && k < n_out; i++)
      out[k++] = nn_get_flat(parts[p], i);
    nn_release(parts[p]);
  }
  while (k < n_out) out[k++] = NAN;
}

static void test_state(void) {
  size_t size = nn_rng_state_size();
  check(size > 624 * 4, "state holds the whole mt19937 state");
  unsigned char *saved = malloc(size), *other = malloc(size);
  if (!saved || !other) {
    check(0, "allocating state buffers");
    free(saved);
    free(other);
    return;
  }
  enum { DRAWS = 24 };
  double first[DRAWS], again[DRAWS];

  nn_manual_seed(2024);
  int64_t one = 1;
  nn_tensor *t = nn_randn(NN_FLOAT64, 1, &one); /* leaves a cached sample */
  nn_release(t);
  nn_rng_get_state(saved);
  draw_mixture(first, DRAWS);
  check(nn_rng_set_state(saved, size) == 0, "set_state accepts a saved state");
  draw_mixture(again, DRAWS);
  check(memcmp(first, again, sizeof first) == 0, "restored state repeats the same draws");

  /* a restored state is independent of what was drawn since */
  nn_manual_seed(1);
  check(nn_rng_set_state(saved, size) == 0, "set_state after reseeding");
  check(nn_initial_seed() == 2024, "set_state restores the seed");
  draw_mixture(again, DRAWS);
  check(memcmp(first, again, sizeof first) == 0, "restored state survives a reseed");

  /* wrong length, and bytes that are not a state: refused, generator kept */
  nn_manual_seed(7);
  nn_rng_get_state(saved);
  draw_mixture(first, DRAWS);
  nn_rng_set_state(saved, size);
  check(nn_rng_set_state(saved, size - 1) < 0, "set_state refuses a short buffer");
  check(strstr(nn_error(), "bytes") != NULL, "the error names the expected size");
  memcpy(other, saved, size);
  memset(other, 0xff, 8); /* magic and part of the seed */
  check(nn_rng_set_state(other, size) < 0, "set_state refuses foreign bytes");
  memcpy(other, saved, size);
  /* bytes 12..15 hold mt19937's `left` (the layout is described in rng.c);
     no valid state has left = 0 */
  memset(other + 12, 0, 4);
  check(nn_rng_set_state(other, size) < 0, "set_state refuses a corrupt state");
  draw_mixture(again, DRAWS);
  check(memcmp(first, again, sizeof first) == 0, "a refused state leaves the generator as it was");

  /* manual_seed forgets the cached normal sample, as PyTorch's does: were
     the sample kept, the second randn would return it instead of a. */
  nn_manual_seed(11);
  t = nn_randn(NN_FLOAT64, 1, &one);
  double a = t ? nn_get_flat(t, 0) : NAN;
  nn_release(t);
  nn_manual_seed(11);
  t = nn_randn(NN_FLOAT64, 1, &one);
  double b = t ? nn_get_flat(t, 0) : NAN;
  nn_release(t);
  check(a == b, "manual_seed clears the cached normal sample");

  free(saved);
  free(other);
}

static void test_errors(void) {
  int64_t n = 4;
  nn_tensor *t = nn_zeros(NN_INT64, 1, &n);
  check(t && nn_uniform_(t, 0, 1) < 0, "uniform_ refuses int64");
  check(strncmp(nn_error(), "uniform_", 8) == 0, "the message names uniform_");
  check(t && nn_normal_(t, 0, 1) < 0, "normal_ refuses int64");
  check(strncmp(nn_error(), "normal_", 7) == 0, "the message names normal_");
  nn_release(t);
  t = nn_zeros(NN_FLOAT32, 1, &n);
  check(t && nn_uniform_(t, 1, 0) < 0, "uniform_ refuses from > to");
  check(t && nn_normal_(t, 0, -1) < 0, "normal_ refuses std < 0");
  check(t && nn_uniform_(t, -1e39, 1e39) < 0, "uniform_ refuses a range float32 cannot hold");
  nn_release(t);
  check(nn_rand(NN_INT64, 1, &n) == NULL, "rand refuses int64");
  check(strncmp(nn_error(), "rand", 4) == 0, "the message names rand");
  check(nn_randn(NN_BOOL, 1, &n) == NULL, "randn refuses bool");
  /* an empty tensor takes no draws */
  nn_manual_seed(3);
  int64_t zero = 0;
  t = nn_rand(NN_FLOAT32, 1, &zero);
  check(t != NULL, "rand of no elements");
  nn_release(t);
  nn_tensor *after = nn_rand(NN_FLOAT32, 1, &n);
  nn_manual_seed(3);
  nn_tensor *fresh = nn_rand(NN_FLOAT32, 1, &n);
  check(after && fresh && nn_get_flat(after, 0) == nn_get_flat(fresh, 0),
        "an empty tensor consumes no draws");
  nn_release(after);
  nn_release(fresh);
}

int main(void) {
  test_default_seed(); /* first: it checks the seed nobody has set */
  test_first_layer_weight();
  test_xor_init();
  test_rand_randn_stream();
  test_mean_std_and_bounds();
  test_state();
  test_errors();
  printf("%d passed, %d failed\n", passed, failed);
  return failed != 0;
}
