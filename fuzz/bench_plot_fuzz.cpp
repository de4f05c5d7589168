// Fuzz target for `compacter bench --plot FILE` (plot/figures.h): the input is a saved
// `compacter bench --json` document (the training bench's or the inference bench's), handed over
// as an in-memory file, read by read_bench_json and drawn by bench_figure (Table 3's bars, or
// tokens/s against batch size). Beyond "accepted or compacter::Error": the figure is drawn with
// finite coordinates or skipped with a reason.
#include "compacter/plot/figures.h"
#include "figure_check.h"
#include "fuzz_target.h"
#include "memory_file.h"

bool compacter_fuzz_accepts(const uint8_t* data, size_t size) {
  MemoryFile file(data, size);
  return compacter_fuzz_accepted_unless_error([&] {
    check_figure(compacter::plot::bench_figure(compacter::plot::read_bench_json(file.path())));
  });
}

COMPACTER_FUZZ_ENTRY_POINT
