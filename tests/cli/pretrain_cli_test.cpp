// `compacter pretrain` (issue #6), run as the built program: a tiny pretraining with a trained
// vocabulary learns (its loss falls), writes a Hugging Face T5 folder whose config matches the
// vocabulary, and that folder loads in the other commands; finished runs are protected and bad
// input is a clear error. The corruption itself is checked in pretrain_span_corruption_test.cpp
// and, on packed text, below.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "compacter/data/sentencepiece.h"
#include "compacter/data/tokenizer.h"
#include "compacter/pretrain/corpus.h"
#include "support/test_support.h"

namespace compacter {
namespace {

using ::compacter::testing::read_file;
using ::compacter::testing::run_compacter;
using ::compacter::testing::TempDir;
using ::compacter::testing::write_file;
using nlohmann::json;

// A small corpus with structure a tiny model can pick up: 8 x 6 x 7 sentences.
std::string corpus_text() {
  const char* subjects[] = {"the cat",     "a dog",   "my neighbour", "the old farmer",
                            "the teacher", "a child", "the captain",  "her brother"};
  const char* verbs[] = {"sees", "carries", "paints", "likes", "finds", "sells"};
  const char* objects[] = {"a red boat", "the green door", "two small birds",  "an apple tree",
                           "the river",  "a wooden chair", "the morning bread"};
  std::string text;
  for (const char* s : subjects)
    for (const char* v : verbs)
      for (const char* o : objects) text += std::string(s) + " " + v + " " + o + " today.\n";
  return text;
}

std::vector<json> train_records(const std::string& metrics) {
  std::vector<json> out;
  std::istringstream in(metrics);
  for (std::string line; std::getline(in, line);) {
    if (line.empty()) continue;
    json j = json::parse(line);
    if (j["type"] == "train") out.push_back(j);
  }
  return out;
}

const char* kShape =
    " --d-model 32 --d-kv 8 --d-ff 64 --num-layers 2 --num-heads 4 --dropout-rate 0"
    " --vocab-size 150 --input-length 40 --batch-size 8 --max-steps 40 --learning-rate 1e-2"
    " --warmup-steps 4 --log-steps 5 --save-steps 20 --seed 1";

TEST(PretrainCli, TinyPretrainingLearnsAndLoadsEverywhere) {
  TempDir dir;
  const std::string text = dir.path() + "/corpus.txt", model = dir.path() + "/model";
  write_file(text, corpus_text());
  const std::string args = "pretrain --text " + text + " --out " + model + kShape;
  auto r = run_compacter(args);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("[train] step     40/40"), std::string::npos) << r.err;
  for (const char* f : {"config.json", "model.safetensors", "spiece.model", "pretrain_results.json",
                        "pretrain_config.json", "metrics.jsonl"})
    EXPECT_TRUE(std::filesystem::exists(model + "/" + f)) << f;
  for (const char* f : {"checkpoint", "best_adapter"})
    EXPECT_FALSE(std::filesystem::exists(model + "/" + f)) << f;

  // The config fits the trained vocabulary: pieces + 100 sentinels rows.
  const auto tok = T5Tokenizer::load(model + "/spiece.model");
  const json config = json::parse(read_file(model + "/config.json"));
  EXPECT_EQ(config["vocab_size"].get<int64_t>(), tok.vocab_size());
  EXPECT_EQ(config["vocab_size"].get<int64_t>(), tok.piece_count() + 100);
  EXPECT_EQ(config["d_model"], 32);
  EXPECT_EQ(config["num_layers"], 2);

  // It learned: the loss of the last 5 steps is well below that of the first 5.
  const auto records = train_records(read_file(model + "/metrics.jsonl"));
  ASSERT_EQ(records.size(), 8u);
  const double first = records.front()["loss"], last = records.back()["loss"];
  EXPECT_LT(last, 0.6 * first) << first << " -> " << last;
  const json results = json::parse(read_file(model + "/pretrain_results.json"));
  EXPECT_EQ(results["steps"], 40);
  EXPECT_GE(results["corpus"]["chunks"].get<int64_t>() *
                results["corpus"]["corruption_rounds"].get<int64_t>(),
            40 * 8);

  // The folder loads in the other commands, the tokenizer found beside the weights.
  r = run_compacter("inspect " + model);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  r = run_compacter("generate --model " + model +
                    " --text 'the cat <extra_id_0> a red boat today.' --max-new-tokens 5");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  std::filesystem::create_directories(dir.path() + "/task");
  write_file(dir.path() + "/task/train.jsonl",
             "{\"id\":\"1\",\"source\":\"the cat sees a red boat\",\"target\":\"cat\"}\n"
             "{\"id\":\"2\",\"source\":\"a dog sees a red boat\",\"target\":\"dog\"}\n");
  for (const char* split : {"validation", "test"})
    write_file(dir.path() + "/task/" + split + ".jsonl",
               read_file(dir.path() + "/task/train.jsonl"));
  r = run_compacter(
      "train --model " + model + " --task user --data-dir " + dir.path() +
      "/task --source-field source --target-field target --labels cat,dog --metric accuracy"
      " --method compacter++"
      " --reduction-factor 4 --n 2 --max-steps 2 --batch-size 2 --warmup-steps 0"
      " --out " +
      dir.path() + "/run");
  EXPECT_EQ(r.exit_code, 0) << r.err;

  // A finished pretraining is not overwritten, nor resumed.
  const auto weights_before = read_file(model + "/model.safetensors");
  r = run_compacter(args);
  EXPECT_EQ(r.exit_code, 2);  // bad usage: --overwrite is needed
  EXPECT_NE(r.err.find("already holds a finished pretraining"), std::string::npos) << r.err;
  r = run_compacter(args + " --resume");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(read_file(model + "/model.safetensors"), weights_before);

  // The same seed gives the same model (data, init, order and dropout all seeded).
  r = run_compacter("pretrain --text " + text + " --out " + dir.path() + "/again" + kShape);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(read_file(dir.path() + "/again/model.safetensors"), weights_before);
}

// --init-embeddings ppmi: recorded in pretrain_config.json and a different starting model from
// the same seed's random one; an unknown kind is refused.
TEST(PretrainCli, PpmiEmbeddingsStartTheTable) {
  TempDir dir;
  const std::string text = dir.path() + "/corpus.txt";
  write_file(text, corpus_text());
  const std::string shape =
      " --d-model 32 --d-kv 8 --d-ff 64 --num-layers 2 --num-heads 4 --dropout-rate 0"
      " --vocab-size 150 --input-length 40 --batch-size 8 --max-steps 1 --seed 1";
  auto r = run_compacter("pretrain --text " + text + " --out " + dir.path() + "/random" + shape);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = run_compacter("pretrain --text " + text + " --out " + dir.path() + "/ppmi" + shape +
                    " --init-embeddings ppmi --ppmi-window 3");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("PPMI"), std::string::npos) << r.err;
  const json config = json::parse(read_file(dir.path() + "/ppmi/pretrain_config.json"));
  EXPECT_EQ(config["objective"]["init_embeddings"], "ppmi");
  EXPECT_EQ(config["objective"]["ppmi_window"], 3);
  EXPECT_NE(read_file(dir.path() + "/ppmi/model.safetensors"),
            read_file(dir.path() + "/random/model.safetensors"));
  r = run_compacter("pretrain --text " + text + " --out " + dir.path() + "/bad" + shape +
                    " --init-embeddings glove");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("init-embeddings"), std::string::npos) << r.err;
  EXPECT_FALSE(std::filesystem::exists(dir.path() + "/bad/model.safetensors"));
}

// --tokenizer byte: a ByT5-style folder (tokenizer_config.json naming ByT5Tokenizer, no
// spiece.model, 384 vocabulary rows) that the other commands read with the byte-level tokenizer;
// too many spans for the 11 byte sentinels is refused before anything is written.
TEST(PretrainCli, ByteLevelPretraining) {
  TempDir dir;
  const std::string text = dir.path() + "/corpus.txt", model = dir.path() + "/model";
  write_file(text, corpus_text());
  const std::string shape =
      " --d-model 32 --d-kv 8 --d-ff 64 --num-layers 1 --num-heads 4 --dropout-rate 0"
      " --batch-size 4 --max-steps 3 --warmup-steps 0 --log-steps 1 --seed 1";
  auto r = run_compacter("pretrain --tokenizer byte --text " + text + " --out " + model + shape +
                         " --input-length 40");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_FALSE(std::filesystem::exists(model + "/spiece.model"));
  const json tok_config = json::parse(read_file(model + "/tokenizer_config.json"));
  EXPECT_EQ(tok_config["tokenizer_class"], "ByT5Tokenizer");
  EXPECT_EQ(json::parse(read_file(model + "/config.json"))["vocab_size"], 384);  // 3 + 256 + 125
  r = run_compacter("tokenize --tokenizer " + model + " --text 'the cat'");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "119 107 104 35 102 100 119 1\n");  // "the cat" bytes + 3, </s>
  r = run_compacter("generate --model " + model + " --text 'the cat' --max-new-tokens 3");
  EXPECT_EQ(r.exit_code, 0) << r.err;

  // 512 input ids at mean span 3 need 28 spans: more than the 11 byte sentinels.
  r = run_compacter("pretrain --tokenizer byte --text " + text + " --out " + dir.path() + "/long" +
                    shape + " --input-length 512");
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("needs 28 sentinels per example; the byte-level tokenizer has 11"),
            std::string::npos)
      << r.err;
  EXPECT_FALSE(std::filesystem::exists(dir.path() + "/long"));
  // A text byte of 0xF5..0xFF would look like a sentinel: refused naming file and line, nothing
  // written.
  write_file(dir.path() + "/latin1.txt", corpus_text() + "caf\xe9 \xff\n");
  r = run_compacter("pretrain --tokenizer byte --text " + dir.path() + "/latin1.txt --out " +
                    dir.path() + "/bad" + shape + " --input-length 40");
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find("latin1.txt: line 337: byte 0xff is not UTF-8"), std::string::npos) << r.err;
  EXPECT_FALSE(std::filesystem::exists(dir.path() + "/bad"));
}

TEST(PretrainCli, BadInputIsAClearError) {
  TempDir dir;
  auto r = run_compacter("pretrain --text " + dir.path() + "/missing.txt --out " + dir.path() +
                         "/m" + kShape);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("missing.txt"), std::string::npos) << r.err;
  EXPECT_FALSE(std::filesystem::exists(dir.path() + "/m/model.safetensors"));

  write_file(dir.path() + "/short.txt", "too little text\n");
  r = run_compacter("pretrain --text " + dir.path() + "/short.txt --out " + dir.path() + "/m" +
                    kShape + " --tokenizer " + dir.path() + "/nothing.model");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("nothing.model"), std::string::npos) << r.err;
  EXPECT_FALSE(std::filesystem::exists(dir.path() + "/m"));  // nothing written

  // One line of text: too few tokens for one chunk (or for a vocabulary).
  r = run_compacter("pretrain --text " + dir.path() + "/short.txt --out " + dir.path() + "/m" +
                    kShape);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("error"), std::string::npos) << r.err;
  EXPECT_FALSE(std::filesystem::exists(dir.path() + "/m/model.safetensors"));
}

// Packed text through the corruption: every example has exactly the input and target lengths of
// expanded_lengths, its sentinels appear in order <extra_id_0>, <extra_id_1>, ... in both
// sequences, and input + target together hold every token of the chunk once, in order.
TEST(PretrainCli, PackedCorpusCorruption) {
  TempDir dir;
  write_file(dir.path() + "/corpus.txt", corpus_text());
  SentencePieceTrainOptions so;
  so.vocab_size = 150;
  train_sentencepiece({dir.path() + "/corpus.txt"}, dir.path() + "/spiece.model", so);
  const auto tok = T5Tokenizer::load(dir.path() + "/spiece.model");
  pretrain::CorpusStats stats;
  const auto chunks =
      pretrain::pack_text_files({dir.path() + "/corpus.txt"}, tok, 64, 0.15, 3.0, stats);
  EXPECT_EQ(stats.documents, 8 * 6 * 7);
  EXPECT_EQ(stats.lengths.inputs_length, 64);  // chunks of 70 tokens: 10 noise tokens, 3 spans
  EXPECT_EQ(static_cast<int64_t>(chunks.size()), stats.tokens / stats.lengths.tokens_length);
  pretrain::SpanCorruption sc;
  sc.first_sentinel_id = tok.sentinel_id(0);
  const auto examples = pretrain::corrupt_chunks(chunks, sc, 2, 7);
  ASSERT_EQ(examples.size(), 2 * chunks.size());
  bool rounds_differ = false;
  for (size_t i = 0; i < examples.size(); ++i) {
    const auto& e = examples[i];
    const auto& chunk = chunks[i % chunks.size()];
    ASSERT_EQ(static_cast<int64_t>(e.source_ids.size()), stats.lengths.inputs_length);
    ASSERT_EQ(static_cast<int64_t>(e.target_ids.size()), stats.lengths.targets_length);
    // Rebuild the chunk: each input sentinel k is replaced by the target's span after sentinel k.
    std::vector<std::vector<int64_t>> spans;
    int64_t expected_sentinel = tok.sentinel_id(0);
    for (size_t j = 0; j + 1 < e.target_ids.size(); ++j) {
      const int64_t id = e.target_ids[j];
      if (id == expected_sentinel) {
        spans.emplace_back();
        --expected_sentinel;
      } else {
        ASSERT_FALSE(spans.empty());
        spans.back().push_back(id);
      }
    }
    std::vector<int64_t> rebuilt;
    int64_t next = 0;
    for (size_t j = 0; j + 1 < e.source_ids.size(); ++j) {
      const int64_t id = e.source_ids[j];
      if (id == tok.sentinel_id(next)) {
        rebuilt.insert(rebuilt.end(), spans[next].begin(), spans[next].end());
        ++next;
      } else {
        rebuilt.push_back(id);
      }
    }
    EXPECT_EQ(next, static_cast<int64_t>(spans.size()));
    EXPECT_EQ(rebuilt, chunk);
    const auto counts = pretrain::noise_counts(static_cast<int64_t>(chunk.size()), 0.15, 3.0);
    EXPECT_EQ(static_cast<int64_t>(spans.size()), counts.noise_spans);
    if (i < chunks.size() && e.source_ids != examples[i + chunks.size()].source_ids)
      rounds_differ = true;
  }
  EXPECT_TRUE(rounds_differ);  // each round is a fresh corruption

  // Prefix LM: input = a prefix of the chunk + </s>, target = the rest + </s>, the rest at most
  // as long as span corruption's target (10 noise tokens + 3 sentinels for 70 tokens).
  const auto prefix = pretrain::corrupt_chunks(chunks, sc, 1, 7, 1.0);
  std::set<size_t> target_lengths;
  for (size_t i = 0; i < prefix.size(); ++i) {
    std::vector<int64_t> joined(prefix[i].source_ids.begin(), prefix[i].source_ids.end() - 1);
    joined.insert(joined.end(), prefix[i].target_ids.begin(), prefix[i].target_ids.end() - 1);
    EXPECT_EQ(joined, chunks[i]);
    EXPECT_EQ(prefix[i].source_ids.back(), tok.eos_id());
    EXPECT_EQ(prefix[i].target_ids.back(), tok.eos_id());
    EXPECT_GE(prefix[i].target_ids.size(), 2u);
    EXPECT_LE(prefix[i].target_ids.size(), 14u);
    target_lengths.insert(prefix[i].target_ids.size());
  }
  EXPECT_GT(target_lengths.size(), 5u);  // the cut point varies
  // A mixture: both kinds appear (a span-corrupted input holds <extra_id_0>).
  int64_t span_examples = 0;
  const auto mixed = pretrain::corrupt_chunks(chunks, sc, 1, 7, 0.5);
  for (const auto& e : mixed)
    span_examples += std::count(e.source_ids.begin(), e.source_ids.end(), tok.sentinel_id(0));
  EXPECT_GT(span_examples, 0);
  EXPECT_LT(span_examples, static_cast<int64_t>(mixed.size()));
}

}  // namespace
}  // namespace compacter
