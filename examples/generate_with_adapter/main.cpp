// Greedy generation with a base T5 and a saved adapter, through the installed compacter library:
//   generate_with_adapter MODEL_DIR ADAPTER_DIR [TEXT...]
// MODEL_DIR: a Hugging Face T5 folder (config.json, model.safetensors, spiece.model);
// ADAPTER_DIR: an adapter folder (`compacter train` keeps the best one in RUN/best_adapter).
// Texts come from the arguments, else one per line from stdin; one output line per text, the
// same as `compacter predict --model MODEL_DIR --adapter ADAPTER_DIR` prints with its defaults.
#include <cstdint>
#include <exception>
#include <iostream>
#include <string>
#include <vector>

#include "compacter/compacter.h"  // every public header; or e.g. "compacter/nn/checkpoint.h"

int main(int argc, char** argv) {
  if (argc < 3) {
    std::cerr << "usage: " << argv[0] << " MODEL_DIR ADAPTER_DIR [TEXT...]\n";
    return 2;
  }
  const std::string model_dir = argv[1];
  const std::string adapter_dir = argv[2];
  std::vector<std::string> texts(argv + 3, argv + argc);
  if (texts.empty())
    for (std::string line; std::getline(std::cin, line);) texts.push_back(line);

  try {
    using namespace compacter;
    // The base model and its tokenizer (MODEL_DIR/spiece.model), loaded as every compacter
    // command loads them: T5 checkpoints have 32,128 embedding rows, the tokenizer 32,100 ids,
    // and only the ones it uses are kept.
    train::ModelSpec spec;
    spec.dir = model_dir;
    train::BaseModel base = train::load_base_model(spec);
    peft::load_adapter(*base.model, adapter_dir);  // attaches the saved method, loads its tensors

    std::vector<std::vector<int64_t>> sources;
    for (const std::string& text : texts)
      sources.push_back(base.tokenizer.encode(text, /*max_length=*/512));
    // Greedy search with the folder's generation_config.json when it has one, else transformers'
    // defaults (20 new tokens), as predict decodes.
    const decoding::GenerationConfig generation =
        decoding::load_generation_config(model_dir, base.model->config());
    const std::vector<std::string> outputs = train::generate_texts(
        *base.model, base.tokenizer, sources, train::kDefaultGenerationBatch, generation);
    for (const std::string& output : outputs) std::cout << output << "\n";
  } catch (const std::exception& e) {  // compacter::Error names the file and what was wrong
    std::cerr << "generate_with_adapter: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
