// The launcher's decision: see startup.h.
#include "compacter/kernels/startup.h"

#include <filesystem>
#include <fstream>
#include <sstream>
#include <system_error>

#include "compacter/core/atomic_file.h"
#include "compacter/core/error.h"

namespace compacter::kernels {

namespace {

std::string env_or(const std::map<std::string, std::string>& env, const std::string& name) {
  auto it = env.find(name);
  return it == env.end() ? std::string() : it->second;
}

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

std::vector<LibraryFile> describe(const std::vector<std::string>& paths) {
  std::vector<LibraryFile> out;
  for (const std::string& p : paths)
    if (auto f = describe_library_file(p)) out.push_back(*f);
  return out;
}

}  // namespace

Request read_request(const std::vector<std::string>& args,
                     const std::map<std::string, std::string>& env) {
  Request r;
  std::string option;
  bool given = false;
  for (size_t i = 1; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "--" || a.empty() || a[0] != '-') break;  // the command: its own options follow
    if (a == kOption && i + 1 < args.size()) {
      option = args[++i];
      given = true;
    } else if (a.rfind(std::string(kOption) + "=", 0) == 0) {
      option = a.substr(std::string(kOption).size() + 1);
      given = true;
    }
  }
  if (given) {
    const auto m = parse_mode(option);
    if (m && *m != Mode::kProbe) {
      r.mode = *m;
      r.reason = cat(kOption, " ", option);
    } else {
      r.mode = Mode::kDefault;
      r.reason = cat(kOption, " ", option, " (not auto or default)");
    }
  } else if (env.count("COMPACTER_LAUNCHER_KEEP_ENV")) {
    r.mode = Mode::kDefault;
    r.reason = "COMPACTER_LAUNCHER_KEEP_ENV";
  } else if (env.count(kModeVariable)) {
    const std::string value = env_or(env, kModeVariable);
    const auto m = parse_mode(value);
    if (m) {
      r.mode = *m;
      r.reason = value.empty() ? "" : cat(kModeVariable, "=", value);
    } else {
      r.mode = Mode::kDefault;
      r.reason = cat(kModeVariable, "=", value);
      r.warning = cat("compacter: warning: ", kModeVariable, "=", value,
                      " is not auto, default or probe; leaving OpenBLAS's kernels alone");
    }
  }
  // A core type the user set is never overridden, whatever the mode; the mode still decides
  // whether the linear layers' kernel is compared with it.
  const std::string core = env_or(env, "OPENBLAS_CORETYPE");
  if (!core.empty()) {
    r.user_core = core;
    r.reason = cat("OPENBLAS_CORETYPE=", core, " was set by the user", r.reason.empty() ? "" : "; ",
                   r.reason);
  }
  return r;
}

Verdict decide(const Request& request, const StartupSettings& s, const TrialRunner& trial,
               const LinearRunner& linear) {
  Verdict v;
  v.library = s.probe.library;
  v.reason = request.reason;
  const bool user = !request.user_core.empty();
  if (user || request.mode == Mode::kDefault) {
    v.mode = user ? "user" : "default";
    v.summary = user ? cat("OPENBLAS_CORETYPE=", request.user_core, " set by the user")
                     : cat("switched off (", request.reason, "): OpenBLAS chose its kernels");
    // Switched off: nothing is decided. A user's core type is kept, and unless switched off
    // the linear layers' kernel is still compared with it (cached per core type).
    if (!user || !linear || request.mode == Mode::kDefault) return v;
  } else {
    v.mode = "auto";
  }
  // The comparison depends on the threads it ran with, and in user mode on the user's core.
  const std::string key = cache_key(s.cpu, s.probe.library, s.ld_library_path) +
                          (linear ? cat(";threads=", s.linear_threads) : "") +
                          (user ? ";OPENBLAS_CORETYPE=" + request.user_core : "");
  const std::string cache_path =
      s.cache_folder.empty() ? "" : s.cache_folder + "/" + std::string(kCacheFile);
  std::string cached_text;
  if (!cache_path.empty()) {
    cached_text = read_text(cache_path);
    if (request.mode == Mode::kAuto) {
      if (auto c = read_cache(cached_text, key, &library_files_unchanged)) {
        c->mode = v.mode;
        c->reason = v.reason;
        c->source = "cached";
        return *c;
      }
    }
  }
  auto write_cache = [&](const std::vector<LibraryFile>& files) {
    if (cache_path.empty() || files.empty()) return;
    try {
      std::error_code ec;
      std::filesystem::create_directories(s.cache_folder, ec);
      write_text_atomically(cache_path, cache_with(cached_text, key, files, v));
    } catch (const std::exception&) {
      // A cache that cannot be written costs the next start a probe, nothing else.
    }
  };
  // The linear layers' comparison with a core ("" the default) into the verdict; its files.
  auto compare_linear = [&](const std::string& core) {
    const LinearReport r = linear(core);
    const LinearChoice c = choose_linear(r.trial);
    v.linear = r.trial;
    v.fp32_linear = c.kernel;
    v.linear_summary = c.summary;
    return describe(r.files);
  };
  v.source = "probed";
  if (user) {
    write_cache(compare_linear(request.user_core));
    return v;
  }

  v.probe_threads = 1;
  ProbeReport def = trial("");
  v.blas = def.config;
  v.default_core = def.trial.ran;
  std::vector<LibraryFile> files = describe(def.files);
  // Cached with the linear layers' kernel, compared with the core type the verdict sets.
  auto remember = [&] {
    if (linear)
      for (const LibraryFile& f : compare_linear(v.core)) files.push_back(f);
    write_cache(files);
  };
  if (!def.loaded) {
    v.summary = cat("nothing to choose: ", def.trial.failure);
    v.trials.push_back(def.trial);
    return v;  // not cached: there is no library file to key it on
  }
  if (!def.openblas) {
    v.summary = cat("nothing to choose: ", s.probe.library, " is not OpenBLAS");
    remember();
    return v;
  }
  const std::vector<std::string> names = candidate_cores(s.cpu, def.trial.ran);
  if (names.empty()) {
    v.trials.push_back(def.trial);
    const std::string why = core_tier(def.trial.ran) == kTierUnknown
                                ? "a core type this program does not rank"
                            : cpu_tier(s.cpu) < kTierAvx2 ? "this CPU has no AVX2"
                                                          : "the best kernels this CPU supports";
    v.summary = cat("kept OpenBLAS's default ", def.trial.ran, " (", why, ")");
    remember();
    return v;
  }
  Trial best_default = def.trial;
  std::vector<Trial> best(names.size());
  for (size_t i = 0; i < names.size(); ++i) best[i] = trial(names[i]).trial;
  for (int round = 1; round < s.rounds; ++round) {
    if (trial_failure(best_default).empty()) {
      const Trial again = trial("").trial;
      if (trial_failure(again).empty() && again.gflops > best_default.gflops)
        best_default = again;
      else if (!trial_failure(again).empty())
        best_default = again;  // a default that fails once is not trusted
    }
    for (size_t i = 0; i < names.size(); ++i) {
      if (!trial_failure(best[i]).empty()) continue;
      const Trial again = trial(names[i]).trial;
      if (!trial_failure(again).empty() || again.gflops > best[i].gflops) best[i] = again;
    }
  }
  for (Trial& t : best) judge(t);
  judge(best_default);
  const Choice c = choose(best_default, best, s.min_gain);
  v.core = c.core;
  v.summary = c.summary;
  v.warning = c.warning;
  v.trials.push_back(best_default);
  v.trials.insert(v.trials.end(), best.begin(), best.end());
  remember();
  return v;
}

std::map<std::string, std::string> environment_for(const Verdict& verdict) {
  std::map<std::string, std::string> out;
  if (verdict.mode == "auto" && !verdict.core.empty()) out["OPENBLAS_CORETYPE"] = verdict.core;
  out[kStartupVariable] = verdict_to_json(verdict).dump();
  return out;
}

}  // namespace compacter::kernels
