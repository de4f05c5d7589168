// The JSON of the server's requests and replies, shared by `serve`'s JSON Lines and its HTTP
// server (no I/O here). Request settings use text-generation-inference's (TGI's) names:
//
//   "parameters": {"adapter", "max_new_tokens", "num_beams", "do_sample", "temperature",
//                  "top_k", "top_p", "typical_p", "repetition_penalty", "no_repeat_ngram_size",
//                  "seed", "num_return_sequences", "details", "labels": ["...", ...]}
//
// each overriding the server's GenerationConfig (train/decoding/generation_config.h) for that
// request; null leaves a field unset. TGI fields without an effect here are accepted only at
// their neutral values (best_of null/1, return_full_text, watermark, decoder_input_details
// false/null, stop []/null, truncate null, top_n_tokens null/0). Any other field is an error
// (400) naming it, and so is a value of the wrong JSON type; a value out of range, or above the
// server's limits (ServerLimits, named), is 422.
//
// A generate reply, TGI's shape with n-best and scores added:
//   {"generated_text": "...", "adapter": NAME, "label": ... (when the adapter's task reads one),
//    "label_probabilities": {...} (constrained decoding to labels),
//    "details": {"finish_reason": "length" | "eos_token", "generated_tokens": n,
//                "seed": n | null, "score": s, "logprob_sum": s,
//                "tokens": [{"id", "text", "logprob", "special"}, ...],   (with details)
//                "best_of_sequences": [the other sequences, each {"generated_text",
//                  "finish_reason", "generated_tokens", "seed", "score", "logprob_sum",
//                  "tokens"(with details)}]}}        (when num_return_sequences > 1)
// "details" is there when the request asked for details or for more than one sequence.
#pragma once
#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "compacter/core/error.h"
#include "compacter/serve/adapter_server.h"

namespace compacter::serve {

// A request that cannot be answered, with the kind of error (its HTTP status).
class RequestError : public Error {
 public:
  RequestError(ErrorKind kind, const std::string& message) : Error(message), kind_(kind) {}
  ErrorKind kind() const { return kind_; }

 private:
  ErrorKind kind_;
};

// Throws RequestError(kind, the parts joined) unless `condition`.
template <class... Parts>
void check_request(bool condition, ErrorKind kind, const Parts&... parts) {
  if (!condition) throw RequestError(kind, cat(parts...));
}

// Applies a "parameters" object to `r`: its adapter ("adapter", which must agree with one given
// already), its settings (`defaults` with the fields given, validated), labels and details.
// Throws RequestError naming `where` ("parameters" or "line 3: parameters") and the field.
void parse_parameters(const nlohmann::json& parameters, const ServerLimits& limits,
                      const decoding::GenerationConfig& defaults, const std::string& where,
                      Request& r);

// The requests of a `POST /generate` body: an object {"inputs": "...", "parameters": {...}}
// (or the adapter's task's fields instead of "inputs", as the JSON Lines take them), or a list
// of such objects (`is_list` says which). Throws RequestError (400 malformed, 413 too large, 422
// too many inputs) naming the input ("inputs[2]").
std::vector<Request> parse_generate_body(const std::string& body, const ServerLimits& limits,
                                         const decoding::GenerationConfig& defaults,
                                         const std::string& default_adapter, bool& is_list);

// The body of `POST /adapters`: {"name": NAME, "path": FOLDER}, nothing else. Throws
// RequestError: 400 for another shape or a name other than 1 to 64 letters, digits, '.', '_', '-'
// (not starting with one of the last three), 409 for the base model's name. The path is checked
// against --adapter-root by the server.
struct AdapterLoadBody {
  std::string name;
  std::string path;
};
AdapterLoadBody parse_adapter_load_body(const std::string& body);

// The TGI-shaped reply of one answered request (see the top comment).
nlohmann::json generate_reply_json(const Reply& reply);

// The "details" of one sequence (TGI's shape; tokens only with `tokens`).
nlohmann::json sequence_details_json(const ReplySequence& s, const Reply& reply, bool tokens);

// {"error": message, "error_type": error_type(kind)}.
nlohmann::json error_json(const std::string& message, ErrorKind kind);

// The HTTP status of an error kind (200 for none).
int http_status(ErrorKind kind);

}  // namespace compacter::serve
