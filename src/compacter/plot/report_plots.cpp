// `compacter report --plot DIR`: every input read and every figure drawn before the first file
// is written; then each drawn figure written atomically (figures.h).
#include <filesystem>

#include "compacter/core/atomic_file.h"
#include "compacter/core/error.h"
#include "compacter/plot/figures.h"
#include "compacter/train/report.h"

namespace compacter::plot {

std::vector<Figure> report_figures(const std::vector<std::string>& runs,
                                   const std::string& metric) {
  const nlohmann::json rows = train::report_rows(runs, metric);
  std::vector<std::vector<nlohmann::json>> records;
  for (const std::string& run : runs) records.push_back(read_metrics_records(run));
  return {figure1(rows), figure4(rows), loss_curves(rows, records),
          validation_curves(rows, records, metric)};
}

void write_figures(const std::vector<Figure>& figures, const std::string& dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::create_directories(dir, ec);
  check(!ec && fs::is_directory(dir), "--plot ", dir, ": cannot create the folder",
        ec ? " (" + ec.message() + ")" : std::string(" (a file of that name exists)"));
  for (const Figure& f : figures)
    if (!f.svg.empty()) write_text_atomically((fs::path(dir) / f.file).string(), f.svg);
}

}  // namespace compacter::plot
