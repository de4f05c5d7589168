// Text-to-text formats of spec §4.2 / §4.4 with the quirks of §9 #1-#6: for every task, examples
// whose expected strings were written by hand from the raw rows of ../shared/data (or from small
// files written here), in the paper's form and, where it differs, the --fix-quirks form.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "compacter/core/error.h"
#include "compacter/tasks/tasks.h"
#include "support/test_support.h"

namespace compacter::tasks {
namespace {

using ::compacter::testing::shared_path;
using ::compacter::testing::TempDir;
using ::compacter::testing::write_file;

DataOptions official(const std::string& relative_dir, bool prefix = true) {
  DataOptions o;
  o.data_dir = shared_path(relative_dir);
  o.paper_splits = false;
  o.add_prefix = prefix;
  return o;
}

bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

TEST(TasksFormat, ColaHeaderlessTrainAndHeaderedTest) {
  REQUIRE_SHARED("data/glue/CoLA/train.tsv");
  // train.tsv line 1: gj04 \t 1 \t \t Our friends won't buy this analysis, ...
  const auto train = load_split("cola", "train", official("data/glue/CoLA"));
  ASSERT_EQ(train.size(), 8551u);
  EXPECT_EQ(train[0].id, "cola/train/0");
  EXPECT_EQ(train[0].source,
            "cola sentence: Our friends won't buy this analysis, let alone the next one we "
            "propose.");
  EXPECT_EQ(train[0].target, "1");
  EXPECT_EQ(train[0].answers, std::vector<std::string>{"1"});
  EXPECT_EQ(train[0].group, "");
  // test.tsv has a header (index, sentence) and no labels.
  const auto test = load_split("cola", "test", official("data/glue/CoLA"));
  ASSERT_EQ(test.size(), 1063u);
  EXPECT_EQ(test[0].source, "cola sentence: Bill whistled past the house.");
  EXPECT_EQ(test[0].target, "");
}

TEST(TasksFormat, Sst2KeepsTheTrailingSpace) {
  REQUIRE_SHARED("data/glue/SST-2/dev.tsv");
  const auto dev = load_split("sst2", "validation", official("data/glue/SST-2"));
  ASSERT_EQ(dev.size(), 872u);
  EXPECT_EQ(dev[0].source, "sst2 sentence: it 's a charming and often affecting journey . ");
  EXPECT_EQ(dev[0].target, "1");
  // With the fixed labels (§9 #6) the target is the label word.
  DataOptions o = official("data/glue/SST-2", false);
  o.fix_quirks = true;
  const auto fixed = load_split("sst2", "validation", o);
  EXPECT_EQ(fixed[0].source, "sentence: it 's a charming and often affecting journey . ");
  EXPECT_EQ(fixed[0].target, "positive");
}

TEST(TasksFormat, MrpcWithByteOrderMark) {
  REQUIRE_SHARED("data/glue/MRPC/train.tsv");
  const auto train = load_split("mrpc", "train", official("data/glue/MRPC"));
  ASSERT_EQ(train.size(), 3668u);
  EXPECT_EQ(train[0].source,
            "mrpc sentence1: Amrozi accused his brother , whom he called \" the witness \" , of "
            "deliberately distorting his evidence . sentence2: Referring to him as only \" the "
            "witness \" , Amrozi accused his brother of deliberately distorting his evidence .");
  EXPECT_EQ(train[0].target, "1");
  // Without the prefix (adapter methods, §4.2).
  const auto bare = load_split("mrpc", "train", official("data/glue/MRPC", false));
  EXPECT_EQ(bare[1].source,
            "sentence1: Yucaipa owned Dominick 's before selling the chain to Safeway in 1998 for "
            "$ 2.5 billion . sentence2: Yucaipa bought Dominick 's in 1995 for $ 693 million and "
            "sold it to Safeway for $ 1.8 billion in 1998 .");
  EXPECT_EQ(bare[1].target, "0");
}

TEST(TasksFormat, StsbRoundsToOneDecimalLikeTheReference) {
  REQUIRE_SHARED("data/glue/STS-B/train.tsv");
  const auto train = load_split("stsb", "train", official("data/glue/STS-B"));
  ASSERT_EQ(train.size(), 5749u);
  EXPECT_EQ(train[1].source,
            "stsb sentence1: A man is playing a large flute. sentence2: A man is playing a flute.");
  EXPECT_EQ(train[0].target, "5.0");   // 5.000
  EXPECT_EQ(train[1].target, "3.8");   // 3.800
  EXPECT_EQ(train[4].target, "4.2");   // 4.250: 42.5 rounds half to even
  EXPECT_EQ(train[6].target, "0.5");   // 0.500: kept at 0.1 resolution (§9 #1)
  EXPECT_EQ(train[14].target, "1.7");  // 1.667
  EXPECT_EQ(train[47].target, "2.4");  // 2.375: 23.75 -> 24
  DataOptions o = official("data/glue/STS-B");
  o.fix_quirks = true;  // the intended nearest 0.2
  const auto fixed = load_split("stsb", "train", o);
  EXPECT_EQ(fixed[1].target, "3.8");
  EXPECT_EQ(fixed[4].target, "4.2");   // 21.25 -> 21
  EXPECT_EQ(fixed[6].target, "0.4");   // 2.5 -> 2 (half to even)
  EXPECT_EQ(fixed[14].target, "1.6");  // 8.335 -> 8
}

TEST(TasksFormat, QnliRteWnli) {
  REQUIRE_SHARED("data/glue/QNLI/dev.tsv");
  REQUIRE_SHARED("data/glue/RTE/train.tsv");
  REQUIRE_SHARED("data/glue/WNLI/train.tsv");
  const auto qnli = load_split("qnli", "validation", official("data/glue/QNLI"));
  EXPECT_EQ(qnli[0].source,
            "qnli question: What came into force after the new constitution was herald? "
            "sentence: As of that day, the new constitution heralding the Second Republic came "
            "into force.");
  EXPECT_EQ(qnli[0].target, "0");  // entailment
  EXPECT_EQ(qnli[1].target, "1");  // not_entailment
  const auto rte = load_split("rte", "train", official("data/glue/RTE"));
  EXPECT_EQ(rte[0].source,
            "rte sentence1: No Weapons of Mass Destruction Found in Iraq Yet. sentence2: Weapons "
            "of Mass Destruction Found in Iraq.");
  EXPECT_EQ(rte[0].target, "1");
  const auto wnli = load_split("wnli", "train", official("data/glue/WNLI"));
  EXPECT_EQ(wnli[0].source,
            "wnli sentence1: I stuck a pin through a carrot. When I pulled the pin out, it had a "
            "hole. sentence2: The carrot had a hole.");
  EXPECT_EQ(wnli[0].target, "1");
}

TEST(TasksFormat, MnliAndQqpFromWrittenFiles) {
  TempDir dir;
  // The official MNLI layout (12 columns in train; the label is gold_label).
  const std::string header =
      "index\tpromptID\tpairID\tgenre\tsentence1_binary_parse\tsentence2_binary_parse\t"
      "sentence1_parse\tsentence2_parse\tsentence1\tsentence2\tlabel1\tgold_label\n";
  write_file(dir.file("train.tsv"),
             header +
                 "0\t1\t1n\tgov\t(a)\t(b)\t(A)\t(B)\tThe cat sat.\tA cat is sitting.\t"
                 "neutral\tneutral\n");
  DataOptions o;
  o.data_dir = dir.path();
  o.paper_splits = false;
  const auto mnli = load_split("mnli", "train", o);
  ASSERT_EQ(mnli.size(), 1u);
  EXPECT_EQ(mnli[0].source, "mnli premise: The cat sat. hypothesis A cat is sitting.");  // §9 #3
  EXPECT_EQ(mnli[0].target, "1");
  o.fix_quirks = true;
  EXPECT_EQ(load_split("mnli", "train", o)[0].source,
            "mnli premise: The cat sat. hypothesis: A cat is sitting.");
  EXPECT_EQ(load_split("mnli", "train", o)[0].target, "neutral");

  TempDir q;
  write_file(q.file("train.tsv"),
             "id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate\n"
             "7\t1\t2\tHow do I cook rice?\tWhat is the way to cook rice?\t1\n");
  o = DataOptions();
  o.data_dir = q.path();
  o.paper_splits = false;
  const auto qqp = load_split("qqp", "train", o);
  EXPECT_EQ(qqp[0].source,
            "qqp question1: How do I cook rice? question2: What is the way to cook rice?");
  EXPECT_EQ(qqp[0].target, "1");
}

TEST(TasksFormat, SuperGlueBoolqCbCopaWicRte) {
  REQUIRE_SHARED("data/superglue/CB/train.jsonl");
  REQUIRE_SHARED("data/superglue/BoolQ/val.jsonl");
  const auto boolq = load_split("boolq", "validation", official("data/superglue/BoolQ", false));
  ASSERT_EQ(boolq.size(), 3270u);
  EXPECT_EQ(boolq[0].source.rfind("question: does ethanol take more energy make that produces "
                                  "passage: Ethanol fuel -- All biomass goes through",
                                  0),
            0u);
  EXPECT_TRUE(ends_with(boolq[0].source, "uses much less petroleum than producing gasoline."));
  EXPECT_EQ(boolq[0].target, "0");  // false

  const auto cb = load_split("cb", "train", official("data/superglue/CB"));
  EXPECT_EQ(cb[0].source,
            "superglue-cb premise: It was a complex language. Not written down but handed down. "
            "One might say it was peeled down. hypothesis: the language was peeled down");
  EXPECT_EQ(cb[0].target, "0");  // entailment

  const auto copa = load_split("copa", "train", official("data/superglue/COPA"));
  EXPECT_EQ(copa[0].source,
            "superglue-copa premise: My body cast a shadow over the grass. choice1: The sun was "
            "rising. choice2: The grass was cut.");  // §9 #4: no question
  EXPECT_EQ(copa[0].target, "0");
  DataOptions fixed = official("data/superglue/COPA");
  fixed.fix_quirks = true;
  const auto copa_fixed = load_split("copa", "train", fixed);
  EXPECT_EQ(copa_fixed[0].source,
            "superglue-copa premise: My body cast a shadow over the grass. question: cause "
            "choice1: The sun was rising. choice2: The grass was cut.");
  EXPECT_EQ(copa_fixed[0].target, "choice1");

  const auto wic = load_split("wic", "validation", official("data/superglue/WiC"));
  EXPECT_EQ(wic[0].source,
            "superglue-wic sentence1: An emerging professional class. sentence2: Apologizing for "
            "losing your temper, even though you were badly provoked, showed real class. word: "
            "class");
  EXPECT_EQ(wic[0].target, "0");

  const auto rte = load_split("superglue-rte", "train", official("data/superglue/RTE"));
  EXPECT_EQ(rte[0].source,
            "superglue-rte premise: No Weapons of Mass Destruction Found in Iraq Yet. hypothesis: "
            "Weapons of Mass Destruction Found in Iraq.");
  EXPECT_EQ(rte[0].target, "1");
}

TEST(TasksFormat, MultircRowsPerAnswerWithQuestionGroups) {
  REQUIRE_SHARED("data/superglue/MultiRC/val.jsonl");
  const auto m = load_split("multirc", "validation", official("data/superglue/MultiRC"));
  ASSERT_EQ(m.size(), 4848u);  // answer options
  const std::string paragraph =
      "paragraph: What causes a change in motion? The application of a force.";
  EXPECT_EQ(m[0].source.rfind("superglue-multirc question: Would the mass of a baseball affect "
                              "how much force you have to use to pick it up? answer: No " +
                                  paragraph,
                              0),
            0u);
  EXPECT_TRUE(ends_with(m[0].source,
                        "You may pick up a baseball. This requires only a very "
                        "small force. "));
  EXPECT_EQ(m[0].target, "0");
  EXPECT_EQ(m[1].target, "1");  // "Yes"
  EXPECT_EQ(m[2].target, "1");
  EXPECT_EQ(m[0].group, "0");
  EXPECT_EQ(m[3].group, "0");
  EXPECT_EQ(m[4].group, "1");
}

TEST(TasksFormat, MultircMarkupIsRemoved) {
  TempDir dir;
  write_file(
      dir.file("val.jsonl"),
      R"({"idx": 3, "passage": {"text": "<b>Sent 1: </b>Tom ran.<br><b>Sent 2: </b>He won.<br>", )"
      R"("questions": [{"question": "Who <b>won</b>?", "idx": 12, "answers": [)"
      R"({"text": "Tom", "idx": 0, "label": 1}, {"text": "Ann", "idx": 1, "label": 0}]}]}})"
      "\n");
  DataOptions o;
  o.data_dir = dir.path();
  o.paper_splits = false;
  o.add_prefix = false;
  const auto m = load_split("multirc", "validation", o);
  ASSERT_EQ(m.size(), 2u);
  EXPECT_EQ(m[0].source,
            "question: Who won? answer: Tom paragraph: Sent 1: Tom ran. Sent 2: He won. ");
  EXPECT_EQ(m[0].target, "1");
  EXPECT_EQ(m[1].target, "0");
  EXPECT_EQ(m[0].group, "12");
  EXPECT_EQ(m[1].group, "12");
}

TEST(TasksFormat, WscMarksTheSpans) {
  REQUIRE_SHARED("data/superglue/WSC/val.jsonl");
  const auto w = load_split("wsc", "validation", official("data/superglue/WSC"));
  EXPECT_EQ(w[0].source,
            "superglue-wsc.fixed text: Bernard , who had not told the government official that "
            "he was less than 21 when he filed for a homestead claim, did not consider that he "
            "had done anything dishonest. Still, * anyone * who knew that he was 19 years old "
            "could take his claim away from # him # .");
  EXPECT_EQ(w[0].target, "0");
}

const char* kRecordLine =
    R"({"idx": 5, "passage": {"text": "Rain fell in Paris.\n@highlight\nThe Seine rose\n@highlight\nBoats stopped", )"
    R"("entities": [{"start": 13, "end": 17}, {"start": 57, "end": 61}, {"start": 35, "end": 39}]}, )"
    R"("qas": [{"query": "@placeholder closed the river.", "idx": 9, "answers": [)"
    R"({"start": 35, "end": 39, "text": "Seine"}, {"start": 35, "end": 39, "text": "Seine"}, )"
    R"({"start": 13, "end": 17, "text": "Paris"}]}, {"query": "No answer @placeholder", "idx": 10}]})";

TEST(TasksFormat, RecordHighlightCleanupAndAnswerExpansion) {
  TempDir dir;
  write_file(dir.file("val.jsonl"), std::string(kRecordLine) + "\n");
  DataOptions o;
  o.data_dir = dir.path();
  o.paper_splits = false;
  const auto r = load_split("record", "validation", o);
  // Query 9 has answers {Paris, Seine} (unique, sorted): two rows; query 10 none: one "<unk>" row.
  ASSERT_EQ(r.size(), 3u);
  const std::string source =
      "superglue-record record query: @placeholder closed the river. entities: Boats, Paris, "
      "Seine passage: Rain fell in Paris. The Seine rose. Boats stopped";
  EXPECT_EQ(r[0].source, source);
  EXPECT_EQ(r[0].target, "Paris");
  EXPECT_EQ(r[1].source, source);
  EXPECT_EQ(r[1].target, "Seine");
  EXPECT_EQ(r[0].answers, (std::vector<std::string>{"Paris", "Seine"}));
  EXPECT_EQ(r[0].id, "record/validation/0#0");
  EXPECT_EQ(r[1].id, "record/validation/0#1");
  EXPECT_EQ(r[0].group, "9");
  EXPECT_EQ(r[2].target, "<unk>");
  EXPECT_TRUE(r[2].answers.empty());
  EXPECT_EQ(r[2].group, "10");
}

TEST(TasksFormat, HuggingFaceJsonLinesLayout) {
  TempDir dir;
  // What Dataset.to_json() writes for glue/rte, super_glue/multirc and super_glue/record.
  write_file(dir.file("validation.jsonl"),
             R"({"sentence1":"A dog runs.","sentence2":"An animal moves.","label":0,"idx":0})"
             "\n"
             R"({"sentence1":"It rains.","sentence2":"It is dry.","label":1,"idx":1})"
             "\n");
  DataOptions o;
  o.data_dir = dir.path();
  o.paper_splits = false;
  o.layout = Layout::kHf;
  const auto rte = load_split("rte", "validation", o);
  ASSERT_EQ(rte.size(), 2u);
  EXPECT_EQ(rte[1].source, "rte sentence1: It rains. sentence2: It is dry.");
  EXPECT_EQ(rte[1].target, "1");

  TempDir m;
  write_file(
      m.file("validation.jsonl"),
      R"({"paragraph":"P <b>x</b>.","question":"Q?","answer":"A","idx":{"paragraph":0,"question":4,"answer":0},"label":1})"
      "\n");
  o.data_dir = m.path();
  const auto mrc = load_split("multirc", "validation", o);
  EXPECT_EQ(mrc[0].source, "superglue-multirc question: Q? answer: A paragraph: P x.");
  EXPECT_EQ(mrc[0].group, "4");

  TempDir rec;
  write_file(
      rec.file("validation.jsonl"),
      R"({"passage":"A.\n@highlight\nB","query":"@placeholder won","entities":["A","B"],"answers":["B"],"idx":{"passage":0,"query":3}})"
      "\n");
  o.data_dir = rec.path();
  const auto record = load_split("record", "validation", o);
  ASSERT_EQ(record.size(), 1u);
  EXPECT_EQ(record[0].source,
            "superglue-record record query: @placeholder won entities: A, B passage: A. B");
  EXPECT_EQ(record[0].target, "B");
}

TEST(TasksFormat, BenchmarkFolderFindsTheTaskFolder) {
  REQUIRE_SHARED("data/glue/RTE/dev.tsv");
  DataOptions o;
  o.data_dir = shared_path("data/glue");
  o.paper_splits = false;
  EXPECT_EQ(load_split("rte", "validation", o).size(), 277u);
}

TEST(TasksFormat, PrefixRuleByMethod) {
  // lora and ia3 are no adapters of the reference's kind: they keep T5's convention.
  for (const char* m : {"full", "bitfit", "prompt-r", "prompt-t", "said", "lora", "ia3"})
    EXPECT_TRUE(method_adds_prefix(m)) << m;
  for (const char* m :
       {"adapter", "pfeiffer", "adapterdrop", "lowrank", "phm", "compacter", "compacter++"}) {
    EXPECT_FALSE(method_adds_prefix(m)) << m;
    EXPECT_TRUE(method_adds_prefix(m, /*fix_quirks=*/true)) << m;
  }
  EXPECT_THROW(method_adds_prefix("dora"), Error);
  EXPECT_THROW(method_adds_prefix("dora", /*fix_quirks=*/true), Error);
}

TEST(TasksFormat, UserTaskFromJsonlTsvAndCsv) {
  TempDir dir;
  write_file(dir.file("train.jsonl"), R"({"text":"good film","score":3,"label":"pos"})"
                                      "\n"
                                      R"({"text":"bad film","score":1.5,"label":"neg"})"
                                      "\n");
  DataOptions o;
  o.data_dir = dir.path();
  o.user.name = "review";
  o.user.source_fields = {"text", "score"};
  o.user.target_field = "label";
  o.user.labels = {"neg", "pos"};
  const auto train = load_split("user", "train", o);
  ASSERT_EQ(train.size(), 2u);
  EXPECT_EQ(train[0].source, "review text: good film score: 3");
  EXPECT_EQ(train[1].source, "review text: bad film score: 1.5");
  EXPECT_EQ(train[1].target, "neg");
  EXPECT_EQ(train[0].id, "review/train/0");

  TempDir t;
  write_file(t.file("validation.tsv"), "text\tlabel\nfine\tpos\n");
  write_file(t.file("test.csv"), "text,label\n\"a, \"\"quoted\"\"\nline\",neg\n");
  o.data_dir = t.path();
  o.paper_splits = false;
  o.user.source_fields = {"text"};
  o.user.format = "tsv";
  EXPECT_EQ(load_split("user", "validation", o)[0].source, "review text: fine");
  o.user.format = "csv";
  const auto test = load_split("user", "test", o);
  EXPECT_EQ(test[0].source, "review text: a, \"quoted\"\nline");
  EXPECT_EQ(test[0].target, "neg");
}

}  // namespace
}  // namespace compacter::tasks
