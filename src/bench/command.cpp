#include <ostream>

#include "bench/bench.h"

namespace torii::bench {

int run_command(BenchOptions options, std::ostream& out, std::ostream& err) {
  const auto problems = validate(options);
  if (!problems.empty()) {
    err << "torii bench: " << problems.size() << (problems.size() == 1 ? " problem" : " problems") << ":\n";
    for (const auto& p : problems) err << "  " << p << "\n";
    return 2;
  }
  const BenchResult result = run(options, err);
  out << to_json_line(result) << "\n" << std::flush;
  if (!result.error.empty()) {
    err << "torii bench: " << result.error << "\n";
    return 1;
  }
  if (result.connected == 0) {
    err << "torii bench: no connection could be opened" << (result.first_error.empty() ? "" : ": ")
        << result.first_error << "\n";
    return 1;
  }
  return 0;
}

}  // namespace torii::bench
