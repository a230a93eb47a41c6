/* The kernel emulator's thread model (backends/cuda/emu): kernels from kernels.cu against host
 * references, and planted bugs that must fail their launch with a message. */
#include "backends/cuda/emu/cuda_emu.h"
#include "tests/cuda_emu/kernels.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

static int g_failures = 0, g_checks = 0;

#define CHECK(cond, ...)                                           \
  do {                                                             \
    g_checks++;                                                    \
    if (!(cond)) {                                                 \
      g_failures++;                                                \
      std::printf("FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);  \
      std::printf(__VA_ARGS__);                                    \
      std::printf("\n");                                           \
    }                                                              \
  } while (0)

/* xorshift: fresh non-zero inputs, reproducible from the seed */
static unsigned g_rng = 12345u;
static unsigned next_u32() {
  g_rng ^= g_rng << 13;
  g_rng ^= g_rng >> 17;
  g_rng ^= g_rng << 5;
  return g_rng;
}
static float next_float() { return 0.25f + (float)(next_u32() % 100000u) / 100000.0f; } /* [0.25, 1.25) */

/* A planted bug must fail with `status` and a message holding `fragment`. */
static void expect_failure(const char *what, int st, int status, const char *fragment) {
  const char *msg = amp_emu_last_error();
  CHECK(st == status, "%s: status %d, expected %d (message \"%s\")", what, st, status, msg);
  CHECK(std::strstr(msg, fragment) != nullptr, "%s: message \"%s\" lacks \"%s\"", what, msg, fragment);
  std::printf("planted bug %-26s -> status %d: %s\n", what, st, msg);
}

static void test_block_sum() {
  const int blocks[] = {32, 64, 96, 256, 1000, 1024};
  const int grids[] = {1, 3, 7};
  const int n = 5003;
  std::vector<float> in(n);
  double host = 0;
  for (int i = 0; i < n; i++) {
    in[i] = next_float() * ((i & 1) ? 1.0f : -0.5f);
    host += in[i];
  }
  for (int order = 0; order < 2; order++) {
    amp_emu_set_order(order ? AMP_EMU_REVERSE_THREADS | AMP_EMU_REVERSE_BLOCKS : 0);
    for (int b : blocks)
      for (int g : grids) {
        std::vector<float> out((size_t)g, NAN);
        int st = run_block_sum(in.data(), out.data(), n, g, b);
        CHECK(st == AMP_EMU_OK, "block_sum %d x %d: status %d: %s", g, b, st, amp_emu_last_error());
        double sum = 0;
        for (float v : out) sum += v;
        double rel = std::fabs(sum - host) / std::fabs(host);
        CHECK(rel < 1e-5, "block_sum %d x %d order %d: %.9g vs host %.9g (rel %.3g)", g, b, order, sum, host, rel);
      }
  }
  amp_emu_set_order(0);
}

static void test_scan() {
  const int grid = 3, block = 96, n = grid * block;
  std::vector<int> in(n), out(n, -7);
  for (int i = 0; i < n; i++) in[i] = (int)(next_u32() % 1000u) - 300;
  int st = run_warp_exclusive_scan(in.data(), out.data(), grid, block);
  CHECK(st == AMP_EMU_OK, "scan: status %d: %s", st, amp_emu_last_error());
  int bad = 0;
  for (int w = 0; w < n / 32; w++) {
    int acc = 0;
    for (int l = 0; l < 32; l++) {
      if (out[w * 32 + l] != acc) bad++;
      acc += in[w * 32 + l];
    }
  }
  CHECK(bad == 0, "scan: %d of %d values differ from the host's exclusive scan", bad, n);
}

static void test_votes() {
  const int grid = 2, block = 128, n = grid * block, nw = n / 32;
  std::vector<int> in(n);
  for (int i = 0; i < n; i++) in[i] = (int)(next_u32() % 2001u) - 1000;
  for (int i = 64; i < 96; i++) in[i] = 5 + i; /* warp 2: all positive */
  for (int i = 96; i < 128; i++) in[i] = -i;   /* warp 3: none positive */
  std::vector<unsigned> ballot(nw, 0);
  std::vector<int> any(nw, -1), all(nw, -1), maxv(nw, 0);
  int st = run_warp_votes(in.data(), ballot.data(), any.data(), all.data(), maxv.data(), grid, block);
  CHECK(st == AMP_EMU_OK, "votes: status %d: %s", st, amp_emu_last_error());
  for (int w = 0; w < nw; w++) {
    unsigned b = 0;
    int m = in[w * 32];
    for (int l = 0; l < 32; l++) {
      if (in[w * 32 + l] > 0) b |= 1u << l;
      if (in[w * 32 + l] > m) m = in[w * 32 + l];
    }
    CHECK(ballot[w] == b, "warp %d: ballot 0x%08x, host 0x%08x", w, ballot[w], b);
    CHECK(any[w] == (b != 0), "warp %d: any %d", w, any[w]);
    CHECK(all[w] == (b == 0xffffffffu), "warp %d: all %d", w, all[w]);
    CHECK(maxv[w] == m, "warp %d: max %d, host %d", w, maxv[w], m);
  }
  CHECK(all[2] == 1 && any[3] == 0, "all-positive warp: all %d; none-positive warp: any %d", all[2], any[3]);
}

static void test_atomics() {
  const int n = 1000, block = 128, grid = (n + block - 1) / block;
  std::vector<float> in(n);
  double host = 0;
  float hmax = 0;
  int imax = 0;
  for (int i = 0; i < n; i++) {
    in[i] = next_float();
    host += in[i];
    if (in[i] > hmax) hmax = in[i];
    if ((int)(in[i] * 1000.0f) > imax) imax = (int)(in[i] * 1000.0f);
  }
  float sum = 0, fmax = 0;
  int count = 0, dimax = -1;
  int st = run_atomics(in.data(), n, &sum, &count, &dimax, &fmax, grid, block);
  CHECK(st == AMP_EMU_OK, "atomics: status %d: %s", st, amp_emu_last_error());
  CHECK(std::fabs(sum - host) / host < 1e-5, "atomicAdd float: %.9g vs %.9g", sum, host);
  CHECK(count == n, "atomicAdd int: %d vs %d", count, n);
  CHECK(dimax == imax, "atomicMax int: %d vs %d", dimax, imax);
  CHECK(fmax == hmax, "atomicCAS float max: %.9g vs %.9g", fmax, hmax);
}

static void test_coords() {
  const dim3 grid(2, 3, 2), block(8, 4, 3);
  const unsigned nb = grid.x * grid.y * grid.z, nt = block.x * block.y * block.z;
  std::vector<unsigned> out((size_t)6 * nb * nt, 0xdeadu);
  amp_emu_set_order(AMP_EMU_REVERSE_THREADS | AMP_EMU_REVERSE_BLOCKS);
  int st = run_coords(out.data(), grid, block);
  amp_emu_set_order(0);
  CHECK(st == AMP_EMU_OK, "coords: status %d: %s", st, amp_emu_last_error());
  int bad = 0;
  for (unsigned bz = 0; bz < grid.z; bz++)
    for (unsigned by = 0; by < grid.y; by++)
      for (unsigned bx = 0; bx < grid.x; bx++)
        for (unsigned tz = 0; tz < block.z; tz++)
          for (unsigned ty = 0; ty < block.y; ty++)
            for (unsigned tx = 0; tx < block.x; tx++) {
              unsigned b = bx + grid.x * (by + grid.y * bz), t = tx + block.x * (ty + block.y * tz);
              const unsigned *o = &out[(size_t)6 * (b * nt + t)];
              bad += o[0] != tx || o[1] != ty || o[2] != tz || o[3] != bx || o[4] != by || o[5] != bz;
            }
  CHECK(bad == 0, "coords: %d of %u threads saw wrong indices", bad, nb * nt);
}

static void test_config() {
  std::vector<float> in(2048, 1.0f), out(8, 0);
  expect_failure("blockDim 1025", run_block_sum(in.data(), out.data(), 2048, 1, 1025), AMP_EMU_ERR_CONFIG,
                 "blockDim (1025,1,1) is invalid");
  expect_failure("blockDim 0", run_block_sum(in.data(), out.data(), 2048, 1, 0), AMP_EMU_ERR_CONFIG,
                 "blockDim (0,1,1) is invalid");
  expect_failure("gridDim 0", run_block_sum(in.data(), out.data(), 2048, 0, 64), AMP_EMU_ERR_CONFIG,
                 "gridDim (0,1,1) is invalid");
}

static void test_planted_bugs() {
  std::vector<float> in(256), out(256, 0);
  for (float &v : in) v = next_float();
  expect_failure("return before barrier", run_bug_return_before_barrier(in.data(), out.data(), 100, 128),
                 AMP_EMU_ERR_DEADLOCK, "__syncthreads reached by 100 of 128 threads");
  expect_failure("half-warp shuffle", run_bug_half_warp_shuffle(in.data(), out.data(), 64), AMP_EMU_ERR_DEADLOCK,
                 "mask 0xffffffff, but lane 16 (thread 16) is exited");
  expect_failure("barrier one warp reaches", run_bug_one_warp_barrier(out.data()), AMP_EMU_ERR_DEADLOCK,
                 "reached by 32 of 64 threads (first thread 0, warps 0..0)");

  /* half-warp shuffles: right with a 16-lane mask and width, wrong masks reported */
  std::vector<float> hw(2, NAN);
  int st_hw = run_half_warp_sum(in.data(), hw.data(), 64, 0);
  CHECK(st_hw == AMP_EMU_OK, "half-warp sum: status %d: %s", st_hw, amp_emu_last_error());
  for (int w = 0; w < 2; w++) {
    double h = 0;
    for (int l = 0; l < 16; l++) h += in[(size_t)(w * 32 + l)];
    CHECK(std::fabs(hw[(size_t)w] - h) / h < 1e-6, "half-warp sum, warp %d: %.9g vs %.9g", w, hw[(size_t)w], h);
  }
  expect_failure("mask without own lane", run_half_warp_sum(in.data(), hw.data(), 64, 1), AMP_EMU_ERR_WARP,
                 "thread 0 (warp 0 lane 0) calls __shfl_down_sync with mask 0x0000fffe, which does not name its own");
  expect_failure("read outside the mask", run_half_warp_sum(in.data(), hw.data(), 64, 2), AMP_EMU_ERR_WARP,
                 "reads lane 16 through __shfl_down_sync, but mask 0x0000ffff does not name that lane");
  /* a full mask in a warp the block fills only partly (40 threads: warp 1 has 8 lanes) */
  std::vector<int> vin(64, 1), vany(2, 0), vall(2, 0), vmax(2, 0);
  std::vector<unsigned> vballot(2, 0);
  expect_failure("full mask, partial warp",
                 run_warp_votes(vin.data(), vballot.data(), vany.data(), vall.data(), vmax.data(), 1, 40),
                 AMP_EMU_ERR_WARP, "thread 32 (warp 1 lane 0) calls __ballot_sync with mask 0xffffffff, which names "
                                   "lane 8; the block has 40 threads, so that lane does not exist");

  /* the missing barrier: forward order hides it, reverse order reads poisoned shared memory */
  const int block = 256;
  std::vector<float> fwd(block, 0), rev(block, 0);
  CHECK(run_bug_missing_barrier(in.data(), fwd.data(), block, 0) == AMP_EMU_OK, "%s", amp_emu_last_error());
  amp_emu_set_order(AMP_EMU_REVERSE_THREADS);
  CHECK(run_bug_missing_barrier(in.data(), rev.data(), block, 0) == AMP_EMU_OK, "%s", amp_emu_last_error());
  amp_emu_set_order(0);
  int fwd_bad = 0, rev_bad = 0;
  for (int i = 1; i < block; i++) {
    fwd_bad += fwd[i] != in[i - 1];
    rev_bad += !(rev[i] == in[i - 1]);
  }
  CHECK(fwd_bad == 0, "missing barrier, forward order: %d wrong values (forward order should hide it)", fwd_bad);
  CHECK(rev_bad == block - 1, "missing barrier, reverse order: %d of %d values wrong", rev_bad, block - 1);
  std::printf("planted bug %-26s -> forward order %d wrong, reverse order %d of %d wrong (rev[1] = %g)\n",
              "missing barrier", fwd_bad, rev_bad, block - 1, (double)rev[1]);
  /* the fixed kernel agrees in both orders */
  std::fill(rev.begin(), rev.end(), 0.0f);
  amp_emu_set_order(AMP_EMU_REVERSE_THREADS);
  CHECK(run_bug_missing_barrier(in.data(), rev.data(), block, 1) == AMP_EMU_OK, "%s", amp_emu_last_error());
  amp_emu_set_order(0);
  int fixed_bad = 0;
  for (int i = 1; i < block; i++) fixed_bad += rev[i] != in[i - 1];
  CHECK(fixed_bad == 0, "with the barrier, reverse order: %d wrong values", fixed_bad);

  /* a launch after a failed one starts clean */
  std::vector<float> sums(1, NAN);
  int st = run_block_sum(in.data(), sums.data(), block, 1, 64);
  CHECK(st == AMP_EMU_OK && amp_emu_last_error()[0] == 0, "launch after failures: status %d: %s", st,
        amp_emu_last_error());
}

/* Barrier-free kernels as plain loops: the same result as on fibers, faster; a kernel with
 * barriers launched that way fails. */
static void test_plain() {
  const int n = 100003, block = 256;
  std::vector<float> x(n), y0(n), yp, yf;
  for (int i = 0; i < n; i++) {
    x[i] = next_float();
    y0[i] = next_float() - 0.75f;
  }
  yp = y0;
  yf = y0;
  auto t0 = std::chrono::steady_clock::now();
  int sp = run_saxpy(n, 1.5f, x.data(), yp.data(), block, 1);
  auto t1 = std::chrono::steady_clock::now();
  int sf = run_saxpy(n, 1.5f, x.data(), yf.data(), block, 0);
  auto t2 = std::chrono::steady_clock::now();
  CHECK(sp == AMP_EMU_OK && sf == AMP_EMU_OK, "saxpy: status %d / %d: %s", sp, sf, amp_emu_last_error());
  int bad = 0;
  for (int i = 0; i < n; i++) bad += yp[i] != 1.5f * x[i] + y0[i] || yf[i] != yp[i];
  CHECK(bad == 0, "saxpy: %d of %d values wrong", bad, n);
  std::printf("saxpy of %d: plain loop %.0f ns a thread, fibers %.0f ns a thread\n", n,
              std::chrono::duration<double, std::nano>(t1 - t0).count() / n,
              std::chrono::duration<double, std::nano>(t2 - t1).count() / n);
  std::vector<float> in(512, 1.0f), out(1, 0);
  expect_failure("barrier in a plain launch", run_block_sum_plain(in.data(), out.data(), 512, 1, 64), AMP_EMU_ERR_PLAIN,
                 "calls __syncthreads, but the kernel was launched with AMP_EMU_LAUNCH_PLAIN");
}

/* __syncthreads_count/_and/_or over 3 blocks of 100 threads (block 1 all positive, block 2 none),
 * in both thread orders; a block whose threads wait at different barriers fails. */
static void test_block_votes() {
  const int grid = 3, block = 100, n = grid * block;
  std::vector<int> in(n);
  for (int i = 0; i < n; i++) in[i] = (int)(next_u32() % 2001u) - 1000;
  for (int i = 100; i < 200; i++) in[i] = 1 + i;
  for (int i = 200; i < 300; i++) in[i] = -i;
  for (int order = 0; order < 2; order++) {
    amp_emu_set_order(order ? AMP_EMU_REVERSE_THREADS : 0);
    std::vector<int> count(grid, -7), all(grid, -7), any(grid, -7);
    int st = run_block_votes(in.data(), count.data(), all.data(), any.data(), grid, block, 0);
    CHECK(st == AMP_EMU_OK, "block votes: status %d: %s", st, amp_emu_last_error());
    for (int b = 0; b < grid; b++) {
      int c = 0;
      for (int t = 0; t < block; t++) c += in[b * block + t] > 0;
      CHECK(count[b] == c && all[b] == (c == block) && any[b] == (c > 0),
            "block %d order %d: count %d all %d any %d, host count %d", b, order, count[b], all[b], any[b], c);
    }
  }
  amp_emu_set_order(0);
  std::vector<int> count(grid), all(grid), any(grid);
  expect_failure("mixed barriers", run_block_votes(in.data(), count.data(), all.data(), any.data(), grid, block, 1),
                 AMP_EMU_ERR_DEADLOCK, "waits at __syncthreads while thread 32 waits at __syncthreads_count");
}

/* The device functions kernels get from nvcc, against the host's formulas and bit tricks. */
static void test_intrinsics() {
  const int n = 300;
  std::vector<float> x(n), out(4 * n, NAN);
  std::vector<unsigned> u(n), bits(4 * n, 0xdeadu);
  for (int i = 0; i < n; i++) {
    x[i] = next_float();
    u[i] = i == 0 ? 0u : next_u32();
  }
  int st = run_intrinsics(x.data(), u.data(), out.data(), bits.data(), n);
  CHECK(st == AMP_EMU_OK, "intrinsics: status %d: %s", st, amp_emu_last_error());
  int bad = 0;
  for (int i = 0; i < n; i++) {
    float v = x[i];
    float sat = v - 0.5f < 0 ? 0.0f : v - 0.5f > 1 ? 1.0f : v - 0.5f;
    float want[4] = {std::fmin(v, 0.5f) + (float)(i > 2 ? i : 2) + 0.25f,
                     1.0f / std::sqrt(v) + std::exp(v) + std::log(v) + v / 3.0f, sat + std::fmin(v, 1.0f) + std::sqrt(v),
                     (float)(i < 7 ? i : 7) + (float)(i > 3 ? i : 3)};
    for (int k = 0; k < 4; k++) bad += std::fabs(out[4 * i + k] - want[k]) > 1e-6f * std::fabs(want[k]);
    unsigned w = u[i], rev = 0, clz = 32, ffs = 0;
    for (int b = 0; b < 32; b++) {
      if ((w >> b) & 1u) rev |= 1u << (31 - b);
      if (!ffs && ((w >> b) & 1u)) ffs = (unsigned)b + 1;
    }
    for (int b = 31; b >= 0; b--)
      if ((w >> b) & 1u) {
        clz = 31u - (unsigned)b;
        break;
      }
    unsigned pop = 0;
    for (int b = 0; b < 32; b++) pop += (w >> b) & 1u;
    bad += bits[4 * i] != pop || bits[4 * i + 1] != clz || bits[4 * i + 2] != ffs || bits[4 * i + 3] != rev;
  }
  CHECK(bad == 0, "intrinsics: %d of %d values differ from the host's", bad, 8 * n);
}

static void measure_switch() {
  const int rounds = 200, block = 256, grid = 4;
  std::vector<int> out(grid, 0);
  unsigned long long before = amp_emu_switch_count();
  auto t0 = std::chrono::steady_clock::now();
  int st = run_barriers(rounds, out.data(), grid, block);
  auto t1 = std::chrono::steady_clock::now();
  unsigned long long sw = amp_emu_switch_count() - before;
  CHECK(st == AMP_EMU_OK && out[grid - 1] == rounds, "barriers: status %d: %s", st, amp_emu_last_error());
  /* each thread switches in and out once per barrier, plus once to start and once to end */
  CHECK(sw == (unsigned long long)grid * block * (2 * rounds + 2), "switches %llu", sw);
  double ns = std::chrono::duration<double, std::nano>(t1 - t0).count() / (double)sw;
  std::printf("fiber switch: %.0f ns (%llu switches, %d barriers x %d threads x %d blocks)\n", ns, sw, rounds, block,
              grid);
}

int main() {
  test_block_sum();
  test_scan();
  test_votes();
  test_atomics();
  test_coords();
  test_config();
  test_planted_bugs();
  test_plain();
  test_block_votes();
  test_intrinsics();
  measure_switch();
  std::printf("%d checks, %d failed\n", g_checks, g_failures);
  return g_failures ? 1 : 0;
}
