// int8 inference for the frozen backbone's linear layers on the CPU: dynamic quantisation. Each
// weight row is quantised once to int8 with its own scale (per output channel, symmetric:
// scale = max |w_row| / 127, zero point 0), as PyTorch's torch.ao.quantization.quantize_dynamic
// does it; at every call each input row is quantised to uint8 over its own range, multiplied in
// int8 x uint8 -> int32, and rescaled to fp32. Bias, adapters and every other layer stay fp32.
// Inference only: a product that would need a gradient throws. Two engines:
//
// - Where the CPU has AVX-512 VNNI, the library's own kernel (nn/int8_rows.h), the weight packed
//   for it once (the only int8 copy). Each input row (a token) is quantised over its own range:
//   x' = (x - lo) c with lo = min of the row and c = 255.0001 / (max - lo), rounded to the
//   integers [0, 255], and the result mapped back, y = y' / c + lo sum_k w (the quantised
//   weights' row sums). The step, (max - min) / 255 of the row, is at most that of the whole
//   input's range, and a row's result does not depend on the rows batched beside it, bit for bit
//   (as LLM.int8()'s and ZeroQuant's per-token activation scales). A constant row is exact; a
//   row holding NaN or an infinity gives NaN. Through libtorch, oneDNN cost ~40 us a call however
//   few its rows (dispatch, libtorch's quantiser, the rescaling), as long as a 512 x 512 fp32
//   product of one row; the kernel takes 3-5 us there.
//
// - Elsewhere, libtorch's quantised oneDNN engine (Debian's libtorch 1.13 has no fbgemm), with
//   each row over its own range as above: the rows are mapped onto [0, L] (L = 255, or 127 below)
//   before the engine quantises them, so that it quantises with scale 1 and zero point 0 (where
//   no row reaches L, every input is 0 and any scale gives 0), and the result is mapped back per
//   row. A row's result does not depend on its batch here either. (PyTorch's
//   quantize_dynamic takes one range for the whole input; with its own parameters oneDNN also
//   made a primitive for nearly every call, a new range baked into each: 0.15-0.5 ms a call, 3-10x
//   the product itself on few rows.)
//   On a CPU without VNNI (AVX2 only, or AVX-512 before Cascade Lake) oneDNN multiplies u8 by
//   s8 with vpmaddubsw, whose pairs of products are summed into int16 with saturation: inputs on
//   [0, 255] against weights up to 127 overflow it (2 x 255 x 127 > 32,767), and on a 2-core AMD
//   EPYC (Zen 3) products came out 25-35% wrong. There the inputs get 7 bits, [0, 127], as
//   PyTorch's reduce_range does on x86 for this reason (2 x 127 x 127 fits), at twice the step.
//   Which applies is probed once (onednn_int8_saturates).
#pragma once
#include <torch/torch.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

namespace compacter::nn {

class T5ModelImpl;
class LinearImpl;

// Whether int8 linear layers run here: a CPU with AVX-512 VNNI, or libtorch's oneDNN engine.
bool int8_available();

// The engines above: kAuto takes the library's kernel where the CPU runs it, else oneDNN; the
// others insist (and throw where they cannot run), for tests and benchmarks.
enum class Int8Engine { kAuto, kKernel, kOneDnn };
// What kAuto takes in this process: kAuto (the default) as above, or kOneDnn, for tests, so that
// the path of CPUs without VNNI runs on every CPU (quantize_linears_int8 and share_int8 make their
// layers with kAuto).
void set_int8_auto_engine(Int8Engine engine);
bool onednn_int8_available();  // libtorch's quantised oneDNN engine
// Whether that engine sums u8 x s8 pairs into saturating int16 here: one product whose pair sums
// exceed int16 computed once, against its exact value.
bool onednn_int8_saturates();
// The top of the grid oneDNN's inputs are quantised onto: 255, or 127 where it saturates or 7 bits
// are forced.
int onednn_int8_levels();
// Forces oneDNN's inputs onto 7 bits where its sums would not saturate: for tests, so that the
// path of CPUs without VNNI runs on every CPU.
void set_onednn_int8_seven_bits(bool forced);

// A weight [out, in] quantised and packed for an engine.
class Int8Weight {
 public:
  explicit Int8Weight(const torch::Tensor& weight,  // fp32, CPU
                      Int8Engine engine = Int8Engine::kAuto);
  ~Int8Weight();
  // x [..., in] (fp32) times the quantised weight's transpose: [..., out], fp32.
  torch::Tensor forward(const torch::Tensor& x) const;
  // The per-row scales (for tests): w ~ scale[row] * int8.
  const torch::Tensor& scales() const { return scales_; }
  // The int8 values the engine holds, unpacked into a new tensor (for tests: no copy is kept).
  torch::Tensor int8_values() const;
  int64_t in_features() const { return in_; }
  int64_t out_features() const { return out_; }
  // Bytes held. With the library's kernel: its packed values (out rounded up to a multiple of
  // 64, in to 4), the scales (fp64 and fp32) and the row sums (fp32). With oneDNN: the engine's
  // quantised tensor (out x in int8 values, per-row scales and zero points), oneDNN's packed copy
  // of the values (counted as out x in) and the row sums.
  int64_t bytes() const { return bytes_; }

 private:
  struct Packed;
  std::unique_ptr<Packed> packed_;
  torch::Tensor scales_;
  torch::Tensor row_sums_;  // sum_k of each quantised row: scale[row] * sum_k int8[row, k]
  int64_t in_ = 0, out_ = 0, bytes_ = 0;
};

// The layers int8 leaves in fp32 (--int8-keep-fp32, a comma list of `wo` and `lm_head`, or
// `none`). By default T5's feed-forward output layers `wo`, as transformers keeps them for T5
// (`_keep_in_fp32_modules = ["wo"]`: their inputs hold the largest outliers). The output layer
// over the vocabulary (lm_head; with tied embeddings an int8 copy of the shared embedding, which
// the input lookup still reads in fp32) is quantised, as CTranslate2's int8 and PyTorch's
// quantize_dynamic quantise it: at batch 1 its fp32 matrix was most of a decoding step's bytes
// (66 MB of t5-small's). `lm_head` keeps it fp32 as bitsandbytes' llm_int8_skip_modules does.
struct Int8Keep {
  bool wo = true;
  bool lm_head = false;
  bool keeps(const std::string& linear_path) const;  // "...DenseReluDense.wo": wo
};
// The option's default list and help, for every command that takes it.
inline constexpr const char kInt8KeepFp32Default[] = "wo";
inline constexpr const char kInt8KeepFp32Help[] =
    "int8 only: the layers left fp32, a comma list of wo (the feed-forward output layers, as "
    "transformers keeps them for T5) and lm_head (the output layer over the vocabulary), or none";
Int8Keep parse_int8_keep(const std::string& list);  // UsageError naming the option otherwise
// The same for a command that runs int8 (`int8`) or not: without int8 a list other than the
// default is bad usage too, naming the command's dtype option and its value.
Int8Keep int8_keep_for(const std::string& list, bool int8, const std::string& dtype_option,
                       const std::string& dtype);
std::string int8_keep_list(const Int8Keep& keep);  // "wo", "wo,lm_head", "lm_head" or "none"

// The engine int8 layers run on here, for reports: "AVX-512 VNNI kernel, a range per row" or
// "oneDNN, a range per row" (with ", 7-bit inputs ..." where it saturates); "" when int8 is
// unavailable.
std::string int8_engine_description();

// Quantises T5's linear layers for inference: attention q, k, v, o, the feed-forward's layers
// (wi, or wi_0 and wi_1; wo unless kept) and the output layer (unless kept). Every method's own
// modules stay fp32. Returns how many layers were quantised. Throws when int8 is unavailable or
// the model is not an fp32 model on the CPU.
//
// The quantised layers' fp32 weights are kept or freed (`fp32`). Freed, the int8 model is smaller
// than the fp32 one, as with transformers' quantised models; eval, generate, bench and serve free
// them. Adapters still load onto a freed model's weights: a freed layer's `weight` is an empty
// tensor, LinearImpl::in_features and out_features and LMHeadImpl::shape still answer,
// freed_weight_shapes gives the shapes an adapter's tensors are checked against, and share_int8
// tells a freed shared weight from a retrained one. A tied output layer has no fp32 matrix of its
// own to free. kKeep is for tests that compare the two.
enum class Fp32Weights { kKeep, kFree };
int64_t quantize_linears_int8(T5ModelImpl& model, Fp32Weights fp32, const Int8Keep& keep = {});

// For a model made from `base` by share_weights (a served adapter, serve/adapter_server.h), after
// its method was attached: each of its linear layers (and its output layer) whose counterpart in
// `base` is int8 runs in int8 too, with the base's quantised weight when it still shares the base's
// fp32 weight, or with its own weight quantised when its method retrained it (`full`, a merged
// LoRA, a trained lm_head). Returns how many layers got their own quantised weight. Throws for a
// model that recomputes its weights at every forward pass (SAID), as quantize_linears_int8 does.
// Under kFree the fp32 weights of the layers quantised on their own are freed.
int64_t share_int8(T5ModelImpl& base, T5ModelImpl& model, Fp32Weights fp32 = Fp32Weights::kKeep);

// The weights of `model` whose fp32 storage was freed, by parameter name ("<layer>.weight",
// "lm_head.weight"), with the shape they had: the shape a tensor loaded over them must have.
std::map<std::string, std::vector<int64_t>> freed_weight_shapes(T5ModelImpl& model);

}  // namespace compacter::nn
