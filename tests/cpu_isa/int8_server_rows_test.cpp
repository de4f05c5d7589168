// An int8 server answers a request in a mixed batch as it answers it alone, bit for bit, on the
// library's int8 kernel (each row quantised over its own range; a CPU with AVX-512 VNNI, else
// skipped). The fixture: tests/support/mixed_batch_fixture.h.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "compacter/nn/int8_rows.h"
#include "support/mixed_batch_fixture.h"

namespace compacter {
namespace {

// With the library's int8 kernel (a CPU with AVX-512 VNNI) every row is quantised over its own
// range (nn/int8_linear.h), so an int8 server's answer to a request does not depend on the
// requests batched with it: mixed requests answered in one batch equal each answered alone by the
// same server (token ids identical, scores within 1e-5, as for fp32 above). With one range for the
// whole batch (the oneDNN path, or this kernel given one) the tokens differ.
TEST_F(MixedBatch, ServerInt8AnswersMixedRequestsAsAlone) {
  if (!nn::int8_rows_available()) GTEST_SKIP() << "per-row int8 needs a CPU with AVX-512 VNNI";
  const std::vector<std::string>& methods = int8_methods();
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

}  // namespace
}  // namespace compacter
