// Fuzz target for what a client sends `compacter serve` (serve/requests.h, adapter_server.h): the
// input's first byte picks the reader (low 2 bits), the rest is the request.
//   0: one JSON Lines line (parse_request_line; bit 2 set: a default adapter is served);
//   1: a POST /generate body, one object or a list (parse_generate_body);
//   2: a POST /generate_stream body (the same reader; the server refuses a list);
//   3: a POST /adapters body (parse_adapter_load_body).
// Every request is checked against small server limits (kLimits) so that the fuzzer reaches them.
// Beyond "accepted or compacter::Error": an accepted request names an adapter, has an input, and
// stays within every limit (max_new_tokens, beams, sequences, labels, inputs per request, body
// bytes): nothing a client sends makes the server allocate or decode beyond them.
#include <string>
#include <vector>

#include "compacter/core/error.h"
#include "compacter/serve/adapter_server.h"
#include "compacter/serve/requests.h"
#include "fuzz_target.h"

namespace {

using namespace compacter;
using namespace compacter::serve;

ServerLimits limits() {
  ServerLimits l;
  l.max_request_new_tokens = 64;
  l.max_request_beams = 4;
  l.max_request_sequences = 3;
  l.max_request_labels = 5;
  l.max_body_bytes = 4096;
  l.max_inputs_per_request = 4;
  return l;
}

void check_request_within_limits(const Request& r, const ServerLimits& l) {
  if (r.adapter.empty()) __builtin_trap();
  if (r.text.empty() && !r.fields.is_object()) {
    // An empty "inputs"/"text" is a valid (empty) input; fields must otherwise be an object.
    if (!r.fields.is_null()) __builtin_trap();
  }
  if (r.generation) {
    const decoding::GenerationConfig& g = *r.generation;
    if (g.num_beams < 1 || g.num_beams > l.max_request_beams) __builtin_trap();
    if (g.num_return_sequences < 1 || g.num_return_sequences > l.max_request_sequences)
      __builtin_trap();
    if (g.max_new_tokens > l.max_request_new_tokens) __builtin_trap();
    if (g.new_token_limit() < 1) __builtin_trap();
  }
  if (r.labels &&
      (r.labels->empty() || static_cast<int64_t>(r.labels->size()) > l.max_request_labels))
    __builtin_trap();
}

}  // namespace

bool compacter_fuzz_accepts(const uint8_t* data, size_t size) {
  if (size == 0) return false;
  const std::string body(reinterpret_cast<const char*>(data) + 1, size - 1);
  const ServerLimits l = limits();
  const decoding::GenerationConfig defaults;
  try {
    switch (data[0] & 3) {
      case 0: {
        ServerOptions options;
        options.limits = l;
        const std::string default_adapter = (data[0] & 4) ? "rte" : "";
        const Request r = parse_request_line(body, 7, default_adapter, options, defaults);
        if (!r.error.empty()) {
          if (r.error.rfind("line 7: ", 0) != 0 || r.error_kind == ErrorKind::none)
            __builtin_trap();
          return false;
        }
        check_request_within_limits(r, l);
        return true;
      }
      case 1:
      case 2: {
        bool is_list = false;
        const std::vector<Request> requests =
            parse_generate_body(body, l, defaults, (data[0] & 4) ? "rte" : "", is_list);
        if (requests.empty() || static_cast<int64_t>(requests.size()) > l.max_inputs_per_request ||
            static_cast<int64_t>(body.size()) > l.max_body_bytes ||
            (!is_list && requests.size() != 1))
          __builtin_trap();
        for (const Request& r : requests) check_request_within_limits(r, l);
        return (data[0] & 3) == 1 || !is_list;  // /generate_stream takes one input
      }
      default: {
        const AdapterLoadBody b = parse_adapter_load_body(body);
        if (b.name.empty() || b.name.size() > 64 || b.name == kBaseName) __builtin_trap();
        return true;
      }
    }
  } catch (const RequestError& e) {
    if (e.kind() == ErrorKind::none || e.kind() == ErrorKind::internal) __builtin_trap();
    return false;
  } catch (const Error&) {
    return false;
  }
}

COMPACTER_FUZZ_ENTRY_POINT
