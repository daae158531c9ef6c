// main() for the <target>_replay executables: feeds every file of the directories (or the
// files) named on the command line to LLVMFuzzerTestOneInput, in name order so that a
// failure is repeatable. This keeps each fuzz corpus, crash reproducers included, an
// ordinary CTest regression test in builds without libFuzzer (gcc, ASan).
//
// A harness reports a violated property with __builtin_trap(), so a failing input ends the
// process abnormally; the name of the file is printed before each run for that case.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <system_error>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);

namespace torii::fuzz {
namespace {

bool run_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    std::fprintf(stderr, "replay: cannot read %s\n", path.c_str());
    return false;
  }
  const std::vector<char> contents{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  // An exactly sized heap copy, so that AddressSanitizer (when enabled) flags a harness or
  // parser reading even one byte past the input, as libFuzzer's own buffers would.
  const std::size_t size = contents.size();
  const auto buffer = std::make_unique<std::uint8_t[]>(std::max<std::size_t>(size, 1));
  std::copy(contents.begin(), contents.end(), buffer.get());
  std::fprintf(stderr, "replay: %s (%zu bytes)\n", path.c_str(), size);
  std::fflush(stderr);
  LLVMFuzzerTestOneInput(buffer.get(), size);
  return true;
}

}  // namespace
}  // namespace torii::fuzz

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s CORPUS_DIR_OR_FILE...\n", argv[0]);
    return 2;
  }
  std::size_t inputs = 0;
  for (int i = 1; i < argc; ++i) {
    const std::filesystem::path arg(argv[i]);
    std::error_code ec;
    if (!std::filesystem::is_directory(arg, ec)) {
      if (!torii::fuzz::run_file(arg)) return 1;
      ++inputs;
      continue;
    }
    std::vector<std::filesystem::path> files;
    for (const auto& entry : std::filesystem::directory_iterator(arg, ec)) {
      if (entry.is_regular_file()) files.push_back(entry.path());
    }
    if (ec) {
      std::fprintf(stderr, "replay: cannot list %s: %s\n", arg.c_str(), ec.message().c_str());
      return 1;
    }
    std::sort(files.begin(), files.end());
    for (const auto& file : files) {
      if (!torii::fuzz::run_file(file)) return 1;
      ++inputs;
    }
  }
  // An empty or misnamed corpus would otherwise pass without testing anything.
  if (inputs == 0) {
    std::fprintf(stderr, "replay: no inputs found\n");
    return 1;
  }
  std::printf("replay: %zu inputs, no failure\n", inputs);
  return 0;
}
