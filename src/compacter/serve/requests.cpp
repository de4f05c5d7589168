// Request parameters, generate bodies and replies as JSON: see requests.h.
#include "compacter/serve/requests.h"

#include <limits>
#include <regex>
#include <set>

namespace compacter::serve {

namespace {

const std::vector<std::string>& known_parameters() {
  static const std::vector<std::string> names = {"adapter",
                                                 "max_new_tokens",
                                                 "num_beams",
                                                 "do_sample",
                                                 "temperature",
                                                 "top_k",
                                                 "top_p",
                                                 "typical_p",
                                                 "repetition_penalty",
                                                 "no_repeat_ngram_size",
                                                 "seed",
                                                 "num_return_sequences",
                                                 "details",
                                                 "labels"};
  return names;
}

// TGI's fields that change nothing here at these values.
bool neutral_tgi_field(const std::string& key, const nlohmann::json& v) {
  if (key == "best_of") return v.is_number_integer() && v.get<int64_t>() == 1;
  if (key == "return_full_text" || key == "watermark" || key == "decoder_input_details")
    return v.is_boolean() && !v.get<bool>();
  if (key == "stop") return v.is_array() && v.empty();
  if (key == "top_n_tokens") return v.is_number_integer() && v.get<int64_t>() == 0;
  return false;
}

bool is_tgi_field(const std::string& key) {
  static const std::set<std::string> names = {
      "best_of", "return_full_text", "watermark",    "decoder_input_details",
      "stop",    "truncate",         "top_n_tokens", "adapter_id"};
  return names.count(key) > 0;
}

// An integer field's value, saturated at the int64 range (a huge value still exceeds a limit).
int64_t saturated_integer(const nlohmann::json& v) {
  if (v.is_number_unsigned() && v.get<uint64_t>() > uint64_t(std::numeric_limits<int64_t>::max()))
    return std::numeric_limits<int64_t>::max();
  return v.get<int64_t>();
}

Request parse_generate_object(const nlohmann::json& j, const std::string& where,
                              const ServerLimits& limits,
                              const decoding::GenerationConfig& defaults,
                              const std::string& default_adapter) {
  const std::string at = where.empty() ? std::string() : where + ": ";
  if (!j.is_object())
    throw RequestError(ErrorKind::bad_request,
                       cat(at,
                           "expected a JSON object ({\"inputs\": \"...\", \"parameters\": "
                           "{...}}), got ",
                           j.type_name()));
  Request r;
  nlohmann::json fields = nlohmann::json::object();
  for (const auto& item : j.items()) {
    const std::string& key = item.key();
    if (key == "inputs") {
      if (!item.value().is_string())
        throw RequestError(ErrorKind::bad_request,
                           cat(at, "\"inputs\" must be a string, got ", item.value().type_name()));
      r.text = item.value().get<std::string>();
    } else if (key == "id") {
      r.id = item.value();
    } else if (key == "stream") {
      if (!item.value().is_null() && item.value() != false)
        throw RequestError(ErrorKind::bad_request,
                           cat(at, "\"stream\": true is POST /generate_stream's"));
    } else if (key == "adapter" || key == "adapter_id") {  // the JSON Lines form's place
      throw RequestError(ErrorKind::bad_request,
                         cat(at, "\"", key, "\" goes under \"parameters\" over HTTP ",
                             "({\"inputs\": \"...\", \"parameters\": {\"adapter\": NAME}})"));
    } else if (key != "parameters") {
      fields[key] = item.value();
    }
  }
  if (j.contains("inputs") && !fields.empty())
    throw RequestError(ErrorKind::bad_request,
                       cat(at, "give \"inputs\" or the task's fields (such as \"",
                           fields.items().begin().key(), "\"), not both"));
  if (!j.contains("inputs")) {
    if (fields.empty())
      throw RequestError(ErrorKind::bad_request,
                         cat(at,
                             "no input (expected \"inputs\", or the fields of the adapter's "
                             "task)"));
    r.fields = std::move(fields);
  }
  if (j.contains("parameters"))
    parse_parameters(j["parameters"], limits, defaults, at + "parameters", r);
  if (r.adapter.empty()) {
    if (default_adapter.empty())
      throw RequestError(ErrorKind::bad_request,
                         cat(at,
                             "parameters.adapter is required when several adapters are "
                             "served"));
    r.adapter = default_adapter;
  }
  return r;
}

}  // namespace

const char* error_type(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::none:
      return "none";
    case ErrorKind::bad_request:
      return "bad_request";
    case ErrorKind::not_found:
      return "not_found";
    case ErrorKind::too_large:
      return "payload_too_large";
    case ErrorKind::invalid:
      return "validation";
    case ErrorKind::internal:
      return "generation";
    case ErrorKind::forbidden:
      return "forbidden";
    case ErrorKind::conflict:
      return "conflict";
    case ErrorKind::unavailable:
      return "overloaded";
    case ErrorKind::timeout:
      return "timeout";
  }
  return "generation";
}

int http_status(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::none:
      return 200;
    case ErrorKind::bad_request:
      return 400;
    case ErrorKind::not_found:
      return 404;
    case ErrorKind::too_large:
      return 413;
    case ErrorKind::invalid:
      return 422;
    case ErrorKind::internal:
      return 500;
    case ErrorKind::forbidden:
      return 403;
    case ErrorKind::conflict:
      return 409;
    case ErrorKind::unavailable:
      return 503;
    case ErrorKind::timeout:
      return 504;
  }
  return 500;
}

nlohmann::json error_json(const std::string& message, ErrorKind kind) {
  return {{"error", message}, {"error_type", error_type(kind)}};
}

void parse_parameters(const nlohmann::json& parameters, const ServerLimits& limits,
                      const decoding::GenerationConfig& defaults, const std::string& where,
                      Request& r) {
  if (parameters.is_null()) return;
  if (!parameters.is_object())
    throw RequestError(ErrorKind::bad_request,
                       cat(where, " must be a JSON object, got ", parameters.type_name()));
  decoding::GenerationConfig g = r.generation.value_or(defaults);
  for (const auto& item : parameters.items()) {
    const std::string& key = item.key();
    const nlohmann::json& v = item.value();
    const std::string name = cat(where, ".", key);
    if (v.is_null()) continue;  // unset, as TGI's clients send it
    auto wrong = [&](const char* expected) {
      throw RequestError(ErrorKind::bad_request,
                         cat(name, " must be ", expected, ", got ", v.dump()));
    };
    auto invalid = [&](const std::string& why) {
      throw RequestError(ErrorKind::invalid, cat(name, " ", why));
    };
    auto integer = [&](int64_t minimum, const char* limit_name, int64_t limit) {
      if (!v.is_number_integer()) wrong("an integer");
      const int64_t value = saturated_integer(v);
      if (value < minimum) invalid(cat("must be at least ", minimum, ", got ", value));
      if (limit_name && value > limit)
        invalid(cat("is ", value, ", above the server's limit ", limit_name, " = ", limit));
      return value;
    };
    auto number = [&]() {
      if (!v.is_number()) wrong("a number");
      return v.get<double>();
    };
    auto boolean = [&]() {
      if (!v.is_boolean()) wrong("true or false");
      return v.get<bool>();
    };
    if (key == "adapter" || key == "adapter_id") {  // adapter_id: LoRAX's name
      if (!v.is_string()) wrong("a string (an adapter's name)");
      const std::string adapter = v.get<std::string>();
      if (!r.adapter.empty() && r.adapter != adapter)
        throw RequestError(
            ErrorKind::bad_request,
            cat(name, " is \"", adapter, "\", but the request names adapter \"", r.adapter, "\""));
      r.adapter = adapter;
    } else if (key == "max_new_tokens") {
      g.max_new_tokens = integer(1, "max_request_new_tokens", limits.max_request_new_tokens);
    } else if (key == "num_beams") {
      g.num_beams = integer(1, "max_request_beams", limits.max_request_beams);
    } else if (key == "num_return_sequences") {
      g.num_return_sequences = integer(1, "max_request_sequences", limits.max_request_sequences);
    } else if (key == "top_k") {
      g.top_k = integer(0, nullptr, 0);
    } else if (key == "no_repeat_ngram_size") {
      g.no_repeat_ngram_size = integer(0, nullptr, 0);
    } else if (key == "do_sample") {
      g.do_sample = boolean();
    } else if (key == "details") {
      r.details = boolean();
    } else if (key == "temperature") {
      g.temperature = number();
    } else if (key == "top_p" || key == "typical_p") {
      // TGI's ranges: 0 < p < 1 (transformers would take 1 or more as off).
      const double p = number();
      if (!(p > 0.0 && p < 1.0)) invalid(cat("must be above 0 and below 1, got ", v.dump()));
      (key == "top_p" ? g.top_p : g.typical_p) = p;
    } else if (key == "repetition_penalty") {
      g.repetition_penalty = number();
    } else if (key == "seed") {
      if (!v.is_number_integer() || (!v.is_number_unsigned() && v.get<int64_t>() < 0))
        wrong("an integer >= 0");
      g.seed = v.get<uint64_t>();
    } else if (key == "labels") {
      if (!v.is_array()) wrong("a list of label texts");
      if (v.empty()) invalid("must hold at least one label");
      if (static_cast<int64_t>(v.size()) > limits.max_request_labels)
        invalid(cat("holds ", v.size(), " labels, above the server's limit max_request_labels = ",
                    limits.max_request_labels));
      std::vector<std::string> labels;
      for (const auto& label : v) {
        if (!label.is_string()) wrong("a list of label texts (strings)");
        labels.push_back(label.get<std::string>());
      }
      r.labels = std::move(labels);
    } else if (is_tgi_field(key)) {
      if (!neutral_tgi_field(key, v))
        throw RequestError(ErrorKind::bad_request, cat(name, " = ", v.dump(),
                                                       " is not supported (TGI's field is accepted "
                                                       "only at its neutral value)"));
    } else {
      std::string known;
      for (const auto& k : known_parameters()) known += (known.empty() ? "" : ", ") + k;
      throw RequestError(ErrorKind::bad_request,
                         cat(where, ": unknown field \"", key, "\" (known: ", known, ")"));
    }
  }
  try {
    g.validate(where, true);
  } catch (const UsageError& e) {
    // "parameters: generation option \"num_beams\" ..." -> "parameters.num_beams ..."
    std::string message = e.what();
    const std::string head = where + ": generation option \"";
    if (message.rfind(head, 0) == 0) {
      const size_t close = message.find('"', head.size());
      if (close != std::string::npos)
        message = where + "." + message.substr(head.size(), close - head.size()) +
                  message.substr(close + 1);
    }
    throw RequestError(ErrorKind::invalid, message);
  }
  r.generation = g;
}

std::vector<Request> parse_generate_body(const std::string& body, const ServerLimits& limits,
                                         const decoding::GenerationConfig& defaults,
                                         const std::string& default_adapter, bool& is_list) {
  if (static_cast<int64_t>(body.size()) > limits.max_body_bytes)
    throw RequestError(
        ErrorKind::too_large,
        cat("the request has ", body.size(),
            " bytes, above the server's limit max_body_bytes = ", limits.max_body_bytes));
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(body);
  } catch (const nlohmann::json::exception& e) {
    throw RequestError(ErrorKind::bad_request,
                       cat("the body is not JSON (expected {\"inputs\": \"...\", \"parameters\": "
                           "{...}} or a list of them): ",
                           e.what()));
  }
  is_list = j.is_array();
  std::vector<Request> out;
  if (!is_list) {
    out.push_back(parse_generate_object(j, "", limits, defaults, default_adapter));
    return out;
  }
  if (j.empty()) throw RequestError(ErrorKind::bad_request, "the list of inputs is empty");
  if (static_cast<int64_t>(j.size()) > limits.max_inputs_per_request)
    throw RequestError(ErrorKind::invalid,
                       cat("the list holds ", j.size(),
                           " inputs, above the server's limit max_inputs_per_request = ",
                           limits.max_inputs_per_request));
  for (size_t i = 0; i < j.size(); ++i) {
    out.push_back(
        parse_generate_object(j[i], cat("inputs[", i, "]"), limits, defaults, default_adapter));
    if (out.back().id.is_null()) out.back().id = i;
  }
  return out;
}

nlohmann::json sequence_details_json(const ReplySequence& s, const Reply& reply, bool tokens) {
  nlohmann::json d = {{"finish_reason", s.sequence.finished ? "eos_token" : "length"},
                      {"generated_tokens", s.sequence.tokens.size()},
                      {"seed", reply.sampled ? nlohmann::json(reply.seed) : nlohmann::json()},
                      {"score", s.sequence.score},
                      {"logprob_sum", s.sequence.logprob_sum}};
  if (tokens) {
    nlohmann::json list = nlohmann::json::array();
    for (size_t t = 0; t < s.sequence.tokens.size(); ++t) {
      list.push_back({{"id", s.sequence.tokens[t]},
                      {"text", t < s.token_texts.size() ? s.token_texts[t] : std::string()},
                      {"logprob", t < s.sequence.token_logprobs.size()
                                      ? nlohmann::json(s.sequence.token_logprobs[t])
                                      : nlohmann::json()},
                      {"special", t < s.token_special.size() && s.token_special[t]}});
    }
    d["tokens"] = std::move(list);
  }
  return d;
}

nlohmann::json generate_reply_json(const Reply& reply) {
  nlohmann::json j = {{"generated_text", reply.output}, {"adapter", reply.adapter}};
  if (!reply.label.is_null()) j["label"] = reply.label;
  if (!reply.label_probabilities.is_null()) j["label_probabilities"] = reply.label_probabilities;
  if (reply.sequences.empty() || (!reply.details && reply.sequences.size() < 2)) return j;
  nlohmann::json details = sequence_details_json(reply.sequences.front(), reply, reply.details);
  if (reply.sequences.size() > 1) {
    nlohmann::json others = nlohmann::json::array();
    for (size_t i = 1; i < reply.sequences.size(); ++i) {
      nlohmann::json o = sequence_details_json(reply.sequences[i], reply, reply.details);
      o["generated_text"] = reply.sequences[i].text;
      if (!reply.sequences[i].label.is_null()) o["label"] = reply.sequences[i].label;
      others.push_back(std::move(o));
    }
    details["best_of_sequences"] = std::move(others);
  }
  j["details"] = std::move(details);
  return j;
}

// The JSON Lines reader of `serve` (declared in adapter_server.h): pure parsing, here with the
// other request readers so that the fuzz target (fuzz/serve_requests_fuzz.cpp) reaches it.
Request parse_request_line(const std::string& text, int64_t line,
                           const std::string& default_adapter, const ServerOptions& options,
                           const decoding::GenerationConfig& defaults) {
  Request r;
  r.line = line;
  r.id = line;
  auto fail = [&](ErrorKind kind, const std::string& message) {
    r.error = cat("line ", line, ": ", message);
    r.error_kind = kind;
    return r;
  };
  if (static_cast<int64_t>(text.size()) > options.limits.max_body_bytes)
    return fail(ErrorKind::too_large, cat("the request has ", text.size(),
                                          " bytes, above the server's limit max_body_bytes = ",
                                          options.limits.max_body_bytes));
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception&) {
    return fail(ErrorKind::bad_request,
                "not JSON (expected {\"adapter\": NAME, \"text\": \"...\"})");
  }
  if (!j.is_object())
    return fail(ErrorKind::bad_request, cat("expected a JSON object, got ", j.type_name()));
  if (j.contains("id")) r.id = j["id"];
  nlohmann::json fields = nlohmann::json::object();
  for (const auto& item : j.items())
    if (item.key() != "id" && item.key() != "adapter" && item.key() != "text" &&
        item.key() != "parameters")
      fields[item.key()] = item.value();
  if (j.contains("text")) {
    if (!j["text"].is_string()) return fail(ErrorKind::bad_request, "\"text\" must be a string");
    if (!fields.empty())
      return fail(ErrorKind::bad_request, cat("give \"text\" or the task's fields (such as \"",
                                              fields.items().begin().key(), "\"), not both"));
    r.text = j["text"].get<std::string>();
  } else if (fields.empty()) {
    return fail(ErrorKind::bad_request,
                "no input (expected \"text\", or the fields of the adapter's task)");
  } else {
    r.fields = std::move(fields);
  }
  if (j.contains("adapter")) {
    if (!j["adapter"].is_string())
      return fail(ErrorKind::bad_request, "\"adapter\" must be a string");
    r.adapter = j["adapter"].get<std::string>();
  }
  if (j.contains("parameters")) {
    try {
      parse_parameters(j["parameters"], options.limits, defaults, "parameters", r);
    } catch (const RequestError& e) {
      return fail(e.kind(), e.what());
    }
  }
  if (r.adapter.empty()) {
    if (default_adapter.empty())
      return fail(ErrorKind::bad_request,
                  "\"adapter\" is required when several adapters are served");
    r.adapter = default_adapter;
  }
  return r;
}

AdapterLoadBody parse_adapter_load_body(const std::string& body) {
  const nlohmann::json j = nlohmann::json::parse(body, nullptr, false);
  check_request(j.is_object(), ErrorKind::bad_request,
                "expected a JSON object {\"name\": ..., \"path\": ...}");
  for (const auto& item : j.items())
    check_request(item.key() == "name" || item.key() == "path", ErrorKind::bad_request,
                  "unknown field \"", item.key(), "\" (expected \"name\" and \"path\")");
  for (const char* field : {"name", "path"})
    check_request(j.contains(field) && j[field].is_string(), ErrorKind::bad_request, "\"", field,
                  "\" must be a string");
  AdapterLoadBody out{j["name"].get<std::string>(), j["path"].get<std::string>()};
  static const std::regex good_name("[A-Za-z0-9][A-Za-z0-9._-]{0,63}");
  check_request(std::regex_match(out.name, good_name), ErrorKind::bad_request, "\"name\" \"",
                out.name, "\": expected 1 to 64 letters, digits, '.', '_' or '-'");
  check_request(out.name != kBaseName, ErrorKind::conflict, "the name \"", out.name,
                "\" is reserved for the base model");
  return out;
}

}  // namespace compacter::serve
