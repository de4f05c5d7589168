// Judging trials, choosing a core, the verdict and the cache: see choice.h.
#include "compacter/kernels/choice.h"

#include <sys/stat.h>

#include <climits>
#include <cmath>
#include <cstdlib>
#include <iomanip>
#include <sstream>

#include "compacter/core/error.h"
#include "compacter/kernels/gemm_check.h"

namespace compacter::kernels {

using nlohmann::json;

namespace {

// 2: the linear layers' kernel; 3: oneDNN timed on W^T kept; 4: OpenBLAS kept only when 15% faster
constexpr int kCacheFormat = 4;

std::string rate(double gflops) {
  std::ostringstream s;
  s << std::fixed << std::setprecision(1) << gflops << " GFLOP/s";
  return s.str();
}

json trial_json(const Trial& t) {
  return {{"requested", t.requested},
          {"ran", t.ran},
          {"failure", t.failure},
          {"error_ratio", std::isfinite(t.error_ratio) ? json(t.error_ratio) : json("inf")},
          {"gflops", t.gflops}};
}

Trial trial_from(const json& j) {
  Trial t;
  t.requested = j.at("requested").get<std::string>();
  t.ran = j.at("ran").get<std::string>();
  t.failure = j.at("failure").get<std::string>();
  const json& e = j.at("error_ratio");
  t.error_ratio = e.is_string() ? INFINITY : e.get<double>();
  t.gflops = j.at("gflops").get<double>();
  return t;
}

json file_json(const LibraryFile& f) {
  return {{"path", f.path}, {"real", f.real}, {"size", f.size}, {"mtime_ns", f.mtime_ns}};
}

}  // namespace

void judge(Trial& t) {
  if (!t.failure.empty()) return;
  if (!t.requested.empty() && !same_core(t.requested, t.ran))
    t.failure = cat("this OpenBLAS ran ", t.ran.empty() ? "an unknown core" : t.ran,
                    " instead (it does not know ", t.requested, ")");
  else if (t.error_ratio < 0)
    t.failure = "no check ran";
  else if (!(t.error_ratio <= kMaxErrorRatio))
    t.failure = std::isfinite(t.error_ratio)
                    ? cat("wrong results (error ", t.error_ratio, " times fp32's bound)")
                    : std::string("wrong results (NaN or infinity)");
  else if (!(t.gflops > 0))
    t.failure = "not timed";
}

std::string trial_failure(const Trial& trial) {
  Trial t = trial;
  judge(t);
  return t.failure;
}

Choice choose(const Trial& default_trial, const std::vector<Trial>& candidates, double min_gain) {
  Choice c;
  const std::string def = default_trial.ran.empty() ? "?" : default_trial.ran;
  const bool default_ok = trial_failure(default_trial).empty();
  const Trial* best = nullptr;
  std::string rejected;
  for (const Trial& t : candidates) {
    const std::string why = trial_failure(t);
    if (!why.empty()) {
      rejected += cat(rejected.empty() ? "" : "; ", t.requested, ": ", why);
      continue;
    }
    if (!best || t.gflops > best->gflops) best = &t;
  }
  if (!best) {
    c.summary = cat("kept OpenBLAS's default ", def, ": no other core type was correct (",
                    rejected.empty() ? "none to try" : rejected, ")");
    if (!candidates.empty())
      c.warning = cat("compacter: warning: OpenBLAS's default kernels (", def,
                      ") are below what this CPU supports, and no faster kernel type computed "
                      "correct results here (",
                      rejected, "); keeping the default");
    return c;
  }
  if (default_ok && !(best->gflops > min_gain * default_trial.gflops)) {
    c.summary = cat("kept OpenBLAS's default ", def, " (", rate(default_trial.gflops),
                    "): the fastest correct alternative, ", best->requested, " (",
                    rate(best->gflops), "), was not ", min_gain, "x faster");
    return c;
  }
  c.core = best->requested;
  c.summary = cat("chose ", best->requested, " (", rate(best->gflops), ") over OpenBLAS's default ",
                  def, " (", default_ok ? rate(default_trial.gflops) : trial_failure(default_trial),
                  ")", rejected.empty() ? "" : "; rejected ", rejected);
  return c;
}

namespace {

json linear_json(const LinearTrial& t) {
  return {{"threads", t.threads},
          {"failure", t.failure},
          {"onednn_error_ratio",
           std::isfinite(t.onednn_error_ratio) ? json(t.onednn_error_ratio) : json("inf")},
          {"blas_gflops", t.blas_gflops},
          {"onednn_gflops", t.onednn_gflops}};
}

LinearTrial linear_from(const json& j) {
  LinearTrial t;
  t.threads = j.at("threads").get<int>();
  t.failure = j.at("failure").get<std::string>();
  const json& e = j.at("onednn_error_ratio");
  t.onednn_error_ratio = e.is_string() ? INFINITY : e.get<double>();
  t.blas_gflops = j.at("blas_gflops").get<double>();
  t.onednn_gflops = j.at("onednn_gflops").get<double>();
  return t;
}

}  // namespace

LinearChoice choose_linear(const LinearTrial& t, double min_gain) {
  if (!t.failure.empty())
    return {"OpenBLAS", cat("OpenBLAS (oneDNN not compared: ", t.failure, ")")};
  if (!(t.onednn_error_ratio >= 0 && t.onednn_error_ratio <= kMaxErrorRatio))
    return {"OpenBLAS", cat("OpenBLAS (oneDNN's sgemm failed its check: error ",
                            std::isfinite(t.onednn_error_ratio) ? cat(t.onednn_error_ratio)
                                                                : std::string("inf"),
                            " x fp32's bound)")};
  const std::string rates =
      cat("oneDNN ", rate(t.onednn_gflops), ", OpenBLAS ", rate(t.blas_gflops), " on ", t.threads,
          t.threads == 1 ? " thread" : " threads");
  if (!(t.blas_gflops > min_gain * t.onednn_gflops)) return {"oneDNN", cat("oneDNN (", rates, ")")};
  return {"OpenBLAS",
          cat("OpenBLAS (", rates, "; OpenBLAS is kept when ", min_gain, "x faster than oneDNN)")};
}

std::optional<std::string> fp32_linear_kernel(const char* variable,
                                              const std::optional<Verdict>& verdict) {
  if (variable) {
    const std::string v = variable;
    if (v == "openblas") return "OpenBLAS";
    if (v == "onednn") return "oneDNN";
    return std::nullopt;
  }
  return verdict && verdict->fp32_linear == "oneDNN" ? "oneDNN" : "OpenBLAS";
}

std::optional<std::string> bf16_linear_kernel(const char* variable) {
  if (!variable) return "oneDNN";
  const std::string v = variable;
  if (v == "onednn") return "oneDNN";
  if (v == "libtorch") return "libtorch";
  return std::nullopt;
}

json verdict_to_json(const Verdict& v) {
  json trials = json::array();
  for (const Trial& t : v.trials) trials.push_back(trial_json(t));
  return {{"mode", v.mode},
          {"reason", v.reason},
          {"source", v.source},
          {"library", v.library},
          {"blas", v.blas},
          {"default_core", v.default_core},
          {"core", v.core},
          {"summary", v.summary},
          {"warning", v.warning},
          {"trials", trials},
          {"probe_threads", v.probe_threads},
          {"fp32_linear", v.fp32_linear},
          {"linear_summary", v.linear_summary},
          {"linear", v.linear ? linear_json(*v.linear) : json()}};
}

Verdict verdict_from_json(const json& j) {
  Verdict v;
  v.mode = j.at("mode").get<std::string>();
  v.reason = j.at("reason").get<std::string>();
  v.source = j.at("source").get<std::string>();
  v.library = j.at("library").get<std::string>();
  v.blas = j.at("blas").get<std::string>();
  v.default_core = j.at("default_core").get<std::string>();
  v.core = j.at("core").get<std::string>();
  v.summary = j.at("summary").get<std::string>();
  v.warning = j.at("warning").get<std::string>();
  for (const json& t : j.at("trials")) v.trials.push_back(trial_from(t));
  v.probe_threads = j.at("probe_threads").get<int>();
  v.fp32_linear = j.at("fp32_linear").get<std::string>();
  v.linear_summary = j.at("linear_summary").get<std::string>();
  if (!j.at("linear").is_null()) v.linear = linear_from(j.at("linear"));
  return v;
}

std::optional<Mode> parse_mode(const std::string& value) {
  if (value.empty() || value == "auto") return Mode::kAuto;
  if (value == "default") return Mode::kDefault;
  if (value == "probe") return Mode::kProbe;
  return std::nullopt;
}

std::string cache_key(const CpuInfo& cpu, const std::string& library,
                      const std::string& ld_library_path) {
  std::string flags;
  for (const std::string& f : cpu.flags) flags += (flags.empty() ? "" : " ") + f;
  return cat(cpu.vendor, ";", cpu.family, ";", cpu.model, ";", cpu.stepping, ";", cpu.model_name,
             ";", flags, ";library=", library, ";LD_LIBRARY_PATH=", ld_library_path);
}

std::string cache_folder(const char* xdg_cache_home, const char* home) {
  if (xdg_cache_home && xdg_cache_home[0] == '/') return std::string(xdg_cache_home) + "/compacter";
  if (home && home[0]) return std::string(home) + "/.cache/compacter";
  return "";
}

std::optional<Verdict> read_cache(const std::string& text, const std::string& key,
                                  bool (*files_ok)(const std::vector<LibraryFile>&)) {
  try {
    const json doc = json::parse(text);
    if (doc.at("format").get<int>() != kCacheFormat) return std::nullopt;
    const json& entries = doc.at("entries");
    if (!entries.contains(key)) return std::nullopt;
    const json& e = entries.at(key);
    std::vector<LibraryFile> files;
    for (const json& f : e.at("files"))
      files.push_back({f.at("path").get<std::string>(), f.at("real").get<std::string>(),
                       f.at("size").get<int64_t>(), f.at("mtime_ns").get<int64_t>()});
    if (files_ok && !files_ok(files)) return std::nullopt;
    return verdict_from_json(e.at("verdict"));
  } catch (const json::exception&) {
    return std::nullopt;
  }
}

std::string cache_with(const std::string& text, const std::string& key,
                       const std::vector<LibraryFile>& files, const Verdict& verdict) {
  json doc;
  try {
    doc = json::parse(text);
    if (!doc.is_object() || doc.value("format", 0) != kCacheFormat || !doc.contains("entries") ||
        !doc["entries"].is_object())
      doc = json();
  } catch (const json::exception&) {
    doc = json();
  }
  if (doc.is_null()) doc = {{"format", kCacheFormat}, {"entries", json::object()}};
  json list = json::array();
  for (const LibraryFile& f : files) list.push_back(file_json(f));
  doc["entries"][key] = {{"files", list}, {"verdict", verdict_to_json(verdict)}};
  return doc.dump(2) + "\n";
}

std::optional<LibraryFile> describe_library_file(const std::string& path) {
  char real[PATH_MAX];
  if (!realpath(path.c_str(), real)) return std::nullopt;
  struct stat st;
  if (stat(real, &st) != 0) return std::nullopt;
  LibraryFile f;
  f.path = path;
  f.real = real;
  f.size = static_cast<int64_t>(st.st_size);
  f.mtime_ns = static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
  return f;
}

bool library_files_unchanged(const std::vector<LibraryFile>& files) {
  if (files.empty()) return false;
  for (const LibraryFile& f : files) {
    const auto now = describe_library_file(f.path);
    if (!now || now->real != f.real || now->size != f.size || now->mtime_ns != f.mtime_ns)
      return false;
  }
  return true;
}

}  // namespace compacter::kernels
