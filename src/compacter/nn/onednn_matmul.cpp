// bf16 products through oneDNN's matmul primitive (see onednn_matmul.h).
#include "compacter/nn/onednn_matmul.h"

#include <array>
#include <map>
#include <tuple>
#include <utility>

#include "compacter/core/error.h"
#include "compacter/nn/onednn_api.h"

namespace compacter::nn {

namespace {

// The parts of oneDNN 2.x's C API (dnnl.h, dnnl_types.h) used here. The descriptors are plain
// structs that the API fills in and only reads back through pointers, so they are held as bytes:
// dnnl_memory_desc_t is 696 bytes and dnnl_matmul_desc_t 2,800 in oneDNN 2.6 (both 8-byte
// aligned); the buffers leave room. oneDNN 3 has no dnnl_matmul_desc_init: there the path is off.
struct alignas(64) MemoryDesc {
  unsigned char bytes[2048];
};
struct alignas(64) MatmulDesc {
  unsigned char bytes[8192];
};
struct ExecArg {  // dnnl_exec_arg_t
  int arg;
  void* memory;
};
constexpr int kBf16 = 2, kF32 = 3;                                         // dnnl_data_type_t
constexpr int kCpuEngine = 1;                                              // dnnl_cpu
constexpr unsigned kInOrder = 1;                                           // dnnl_stream_in_order
constexpr int kArgSrc = 1, kArgDst = 17, kArgWeights = 33, kArgBias = 41;  // DNNL_ARG_*

struct Api {
  int (*engine_create)(void**, int, size_t);
  int (*stream_create)(void**, void*, unsigned);
  int (*stream_wait)(void*);
  int (*stream_destroy)(void*);
  int (*md_init_by_strides)(MemoryDesc*, int, const int64_t*, int, const int64_t*);
  int (*matmul_desc_init)(MatmulDesc*, const MemoryDesc*, const MemoryDesc*, const MemoryDesc*,
                          const MemoryDesc*);
  int (*pd_create)(void**, const MatmulDesc*, const void*, void*, const void*);
  int (*pd_destroy)(void*);
  int (*primitive_create)(void**, const void*);
  int (*primitive_destroy)(void*);
  int (*execute)(const void*, void*, int, const ExecArg*);
  int (*memory_create)(void**, const MemoryDesc*, void*, void*);
  int (*memory_set_handle)(void*, void*);
  int (*memory_destroy)(void*);
  void* engine = nullptr;  // one CPU engine for the process (thread-safe)
};

template <typename F>
bool find(F& f, const char* name) {
  f = reinterpret_cast<F>(onednn_symbol(name));
  return f != nullptr;
}

const Api* load_api() {
  static Api api;
  const bool found = find(api.engine_create, "dnnl_engine_create") &&
                     find(api.stream_create, "dnnl_stream_create") &&
                     find(api.stream_wait, "dnnl_stream_wait") &&
                     find(api.stream_destroy, "dnnl_stream_destroy") &&
                     find(api.md_init_by_strides, "dnnl_memory_desc_init_by_strides") &&
                     find(api.matmul_desc_init, "dnnl_matmul_desc_init") &&
                     find(api.pd_create, "dnnl_primitive_desc_create") &&
                     find(api.pd_destroy, "dnnl_primitive_desc_destroy") &&
                     find(api.primitive_create, "dnnl_primitive_create") &&
                     find(api.primitive_destroy, "dnnl_primitive_destroy") &&
                     find(api.execute, "dnnl_primitive_execute") &&
                     find(api.memory_create, "dnnl_memory_create") &&
                     find(api.memory_set_handle, "dnnl_memory_set_data_handle") &&
                     find(api.memory_destroy, "dnnl_memory_destroy");
  if (!found || api.engine_create(&api.engine, kCpuEngine, 0) != 0) return nullptr;
  return &api;
}

const Api* api() {
  static const Api* a = load_api();
  return a;
}

// One product's primitive with its memory objects (their data pointers set per call).
struct Kept {
  void* primitive = nullptr;
  std::array<void*, 4> memory{};  // src, weights, dst, bias (null without)
};
void release(const Api& a, Kept& e) {
  for (void*& m : e.memory)
    if (m) a.memory_destroy(std::exchange(m, nullptr));
  if (e.primitive) a.primitive_destroy(std::exchange(e.primitive, nullptr));
}
// make()'s failure when oneDNN has no primitive descriptor for a product: no kernel for this CPU
// (oneDNN 2.x has no bf16 matmul kernel without AVX-512: dnnl_unimplemented).
struct NoPrimitive : Error {
  using Error::Error;
};

// ops, m, n, k, leading dimensions, the result's type, whether a bias is added.
using Key = std::tuple<char, char, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int, bool>;

// A thread's stream and primitives, destroyed with the thread.
struct ThreadTable {
  void* stream = nullptr;
  std::map<Key, Kept> kept;
  void clear() {
    for (auto& [key, e] : kept) release(*api(), e);
    kept.clear();
  }
  ~ThreadTable() {
    if (!api()) return;
    clear();
    if (stream) api()->stream_destroy(stream);
  }
};

// A 2-D descriptor of op(X) [rows, cols] stored row-major with leading dimension ld.
MemoryDesc matrix(const Api& a, char op, int64_t rows, int64_t cols, int64_t ld, int type) {
  MemoryDesc md{};
  const int64_t dims[2] = {rows, cols};
  const int64_t strides[2] = {op == 'N' ? ld : 1, op == 'N' ? 1 : ld};
  check(a.md_init_by_strides(&md, 2, dims, type, strides) == 0, "oneDNN could not describe a ",
        rows, " x ", cols, " matrix (leading dimension ", ld, ")");
  return md;
}

Kept make(const Api& a, const Key& key) {
  const auto [ta, tb, m, n, k, lda, ldb, ldc, dst_type, with_bias] = key;
  const MemoryDesc src = matrix(a, ta, m, k, lda, kBf16);
  const MemoryDesc wei = matrix(a, tb, k, n, ldb, kBf16);
  const MemoryDesc dst = matrix(a, 'N', m, n, ldc, dst_type);
  const MemoryDesc bias = matrix(a, 'N', 1, n, n, kF32);  // one fp32 row, broadcast over rows
  MatmulDesc desc{};
  check(a.matmul_desc_init(&desc, &src, &wei, with_bias ? &bias : nullptr, &dst) == 0,
        "oneDNN could not describe a ", m, " x ", n, " x ", k, " bf16 product");
  void* pd = nullptr;
  if (a.pd_create(&pd, &desc, nullptr, a.engine, nullptr) != 0)
    throw NoPrimitive(cat("oneDNN has no matmul primitive for a ", m, " x ", n, " x ", k,
                          " bf16 product on this CPU"));
  Kept e;
  const int made = a.primitive_create(&e.primitive, pd);
  a.pd_destroy(pd);
  check(made == 0, "oneDNN could not make a ", m, " x ", n, " x ", k, " bf16 matmul primitive");
  const MemoryDesc* mds[4] = {&src, &wei, &dst, &bias};
  for (int i = 0; i < (with_bias ? 4 : 3); ++i)
    if (a.memory_create(&e.memory[i], mds[i], a.engine, nullptr) != 0) {
      release(a, e);  // nothing half-made is kept
      throw Error("oneDNN could not make a memory object for a bf16 matmul primitive");
    }
  return e;
}

void run(const Api& a, char transa, char transb, int64_t m, int64_t n, int64_t k, const void* pa,
         int64_t lda, const void* pb, int64_t ldb, void* c, int64_t ldc, int dst_type,
         const float* bias) {
  thread_local ThreadTable table;
  if (!table.stream)
    check(a.stream_create(&table.stream, a.engine, kInOrder) == 0,
          "oneDNN could not make a stream");
  const Key key{transa, transb, m, n, k, lda, ldb, ldc, dst_type, bias != nullptr};
  auto it = table.kept.find(key);
  if (it == table.kept.end()) {
    if (static_cast<int>(table.kept.size()) >= kKeptMatmulPrimitives) table.clear();
    it = table.kept.emplace(key, make(a, key)).first;
  }
  const Kept& e = it->second;
  a.memory_set_handle(e.memory[0], const_cast<void*>(pa));
  a.memory_set_handle(e.memory[1], const_cast<void*>(pb));
  a.memory_set_handle(e.memory[2], c);
  if (bias) a.memory_set_handle(e.memory[3], const_cast<float*>(bias));
  const ExecArg args[4] = {{kArgSrc, e.memory[0]},
                           {kArgWeights, e.memory[1]},
                           {kArgDst, e.memory[2]},
                           {kArgBias, e.memory[3]}};
  const int status = a.execute(e.primitive, table.stream, bias ? 4 : 3, args);
  check(status == 0 && a.stream_wait(table.stream) == 0, "oneDNN's bf16 matmul primitive failed (",
        status, ") on ", m, " x ", n, " x ", k);
}

// A 2 x 2 x 2 product with exact bf16 values, [[1, 2], [3, 4]] [[0.5, 1], [1.5, 2]], checked:
// kNoKernel when no primitive can be made for it, kWrong when making or running it fails
// otherwise or its sums are wrong.
MatmulSupport check_product(const Api& a) {
  const uint16_t x[4] = {0x3F80, 0x4000, 0x4040, 0x4080};
  const uint16_t y[4] = {0x3F00, 0x3F80, 0x3FC0, 0x4000};
  float c[4] = {0, 0, 0, 0};
  try {
    run(a, 'N', 'N', 2, 2, 2, x, 2, y, 2, c, 2, kF32, nullptr);
  } catch (const NoPrimitive&) {
    return MatmulSupport::kNoKernel;
  } catch (const std::exception&) {
    return MatmulSupport::kWrong;
  }
  const bool right = c[0] == 3.5f && c[1] == 5.0f && c[2] == 7.5f && c[3] == 11.0f;
  return right ? MatmulSupport::kComputes : MatmulSupport::kWrong;
}

}  // namespace

bool onednn_uses_amx() {
  static const bool amx = [] {
    // dnnl_cpu_isa_t: avx512_core_amx is 0x3e7 in oneDNN 2.x, its bits part of every later ISA's.
    constexpr unsigned kAmx = 0x3e7;
    const auto isa = reinterpret_cast<int (*)()>(onednn_symbol("dnnl_get_effective_cpu_isa"));
    return isa != nullptr && (static_cast<unsigned>(isa()) & kAmx) == kAmx;
  }();
  return amx;
}

MatmulSupport onednn_matmul_bf16_support() {
  static const MatmulSupport support = [] {
    return api() == nullptr ? MatmulSupport::kAbsent : check_product(*api());
  }();
  return support;
}

bool onednn_matmul_bf16_available() {
  return onednn_matmul_bf16_support() == MatmulSupport::kComputes;
}

namespace {
void checked_run(char transa, char transb, int64_t m, int64_t n, int64_t k, const void* a,
                 int64_t lda, const void* b, int64_t ldb, void* c, int64_t ldc, int dst_type,
                 const float* bias) {
  check(onednn_matmul_bf16_available(),
        "oneDNN's matmul primitive (oneDNN 2.x C API) is not in this process");
  check((transa == 'N' || transa == 'T') && (transb == 'N' || transb == 'T'),
        "onednn_matmul_bf16: op must be 'N' or 'T'");
  run(*api(), transa, transb, m, n, k, a, lda, b, ldb, c, ldc, dst_type, bias);
}
}  // namespace

void onednn_matmul_bf16(char transa, char transb, int64_t m, int64_t n, int64_t k,
                        const c10::BFloat16* a, int64_t lda, const c10::BFloat16* b, int64_t ldb,
                        float* c, int64_t ldc, const float* bias) {
  checked_run(transa, transb, m, n, k, a, lda, b, ldb, c, ldc, kF32, bias);
}

void onednn_matmul_bf16(char transa, char transb, int64_t m, int64_t n, int64_t k,
                        const c10::BFloat16* a, int64_t lda, const c10::BFloat16* b, int64_t ldb,
                        c10::BFloat16* c, int64_t ldc, const float* bias) {
  checked_run(transa, transb, m, n, k, a, lda, b, ldb, c, ldc, kBf16, bias);
}

}  // namespace compacter::nn
