// An int8 server answers a request in a mixed batch as it answers it alone, with 8-bit inputs
// (each row quantised over its own range): on the library's int8 kernel (a CPU with AVX-512 VNNI)
// and on oneDNN where its sums do not saturate (a CPU with VNNI); skipped elsewhere. The fixture:
// tests/support/mixed_batch_fixture.h.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "compacter/nn/int8_linear.h"
#include "compacter/nn/int8_rows.h"
#include "support/mixed_batch_fixture.h"

namespace compacter {
namespace {

// Each row is quantised over its own range (nn/int8_linear.h, either engine), so an int8 server's
// answer to a request does not depend on the requests batched with it: mixed requests answered in
// one batch equal each answered alone by the same server (token ids identical, scores within
// 1e-5, as for fp32 in tests/serve). With one range for the whole batch (PyTorch's
// quantize_dynamic) the tokens differ.
//
// With 8-bit inputs only. The fp32 parts of a step (wo, attention, the adapters) are not the same
// bit for bit in a batch and alone (25 of 60 log-probabilities were, the others within 3e-6), and
// a last-bit difference can move an input across a rounding boundary of its grid: with 7-bit
// inputs (the path of CPUs without VNNI, forced on an AMD EPYC with VNNI, 2026-12-08) one such
// move changed a log-probability by 0.018. The layer's own independence of its batch, 7 bits
// included, is tested by Int8Linear.ARowsResultDoesNotDependOnItsBatch.
TEST_F(MixedBatch, ServerInt8AnswersMixedRequestsAsAlone) {
  if (!nn::int8_available()) GTEST_SKIP() << "no int8 engine on this machine";
  // 8-bit inputs: the library's kernel, or oneDNN where its sums do not saturate.
  std::vector<nn::Int8Engine> engines;
  if (nn::int8_rows_available()) engines.push_back(nn::Int8Engine::kAuto);
  if (nn::onednn_int8_available() && !nn::onednn_int8_saturates())
    engines.push_back(nn::Int8Engine::kOneDnn);
  if (engines.empty()) GTEST_SKIP() << "this CPU's int8 inputs get 7 bits (no VNNI)";
  const std::vector<std::string>& methods = int8_methods();
  struct AutoEngine {  // restored however the loop ends
    explicit AutoEngine(nn::Int8Engine e) { nn::set_int8_auto_engine(e); }
    ~AutoEngine() { nn::set_int8_auto_engine(nn::Int8Engine::kAuto); }
  };
  for (nn::Int8Engine engine : engines) {
    SCOPED_TRACE(engine == nn::Int8Engine::kAuto ? "kernel" : "oneDNN");
    const AutoEngine auto_engine(engine);
    const auto owner = server_of("int8", methods);
    serve::AdapterServer& server = *owner;
    std::vector<serve::Request> requests = mixed_requests(methods);
    const auto together = server.answer(requests);
    ASSERT_EQ(together.size(), requests.size());
    for (size_t i = 0; i < requests.size(); ++i) {
      const auto one = server.answer({requests[i]});
      ASSERT_EQ(one.size(), 1u);
      ASSERT_EQ(together[i].error, "") << requests[i].adapter;
      ASSERT_EQ(one[0].error, "") << requests[i].adapter;
      expect_same(sequences(together[i]), sequences(one[0]),
                  requests[i].adapter + " / " + requests[i].text);
    }
  }
}

}  // namespace
}  // namespace compacter
