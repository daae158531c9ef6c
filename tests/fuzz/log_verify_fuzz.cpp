// Fuzzes verify_log: the auditor runs it on log files that an attacker may have edited at
// will, so every byte sequence must yield a report (never a crash, hang or exception).
//
// The input becomes security.log in a private directory created once per process (writing
// one small file per run keeps the harness fast). Checkpoints are verified against the
// public half of an Ed25519 key derived from a fixed, published seed, so seeds with
// correctly signed checkpoints can be generated for the corpus (make_log_seeds.py) and
// the fuzzer can reach the code after a good signature.
//
// Properties beyond "does not crash":
//   - the report is produced (the directory exists and the key is 32 bytes);
//   - it counts exactly one file and as many lines as the input has;
//   - ok is set exactly when there are no problems, and every problem names security.log
//     and a line that exists, with a reason;
//   - an accepted log ends with a newline (a torn last line must always be reported).
#include <fcntl.h>
#include <sodium.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <string_view>
#include <system_error>

#include "base/bytes.h"
#include "crypto/sodium.h"
#include "events/log_verify.h"
#include "fuzz_check.h"

namespace torii::fuzz {
namespace {

[[noreturn]] void setup_failed(const std::string& what) {
  std::fprintf(stderr, "log_verify_fuzz: %s\n", what.c_str());
  std::abort();
}

struct Fixture {
  Fixture() {
    if (auto s = crypto::init(); !s) setup_failed(s.error().message);
    // Not a secret: anyone may sign fuzz seeds with it. Derived rather than written out so
    // that no key-shaped literal sits in the tree.
    const crypto::Sha256 seed = crypto::sha256(std::string_view("torii log_verify_fuzz checkpoint key"));
    std::array<std::uint8_t, crypto_sign_SECRETKEYBYTES> secret_key{};
    crypto_sign_seed_keypair(public_key.data(), secret_key.data(), seed.data());
    sodium_memzero(secret_key.data(), secret_key.size());

    std::error_code ec;
    std::string pattern = (std::filesystem::temp_directory_path(ec) / "torii-log-verify-fuzz-XXXXXX").string();
    if (ec) pattern = "/tmp/torii-log-verify-fuzz-XXXXXX";
    if (::mkdtemp(pattern.data()) == nullptr) setup_failed("mkdtemp: " + std::string(std::strerror(errno)));
    dir = pattern;
    log_file = dir / "security.log";
  }
  Fixture(const Fixture&) = delete;
  Fixture& operator=(const Fixture&) = delete;
  // Runs at exit(), which is how libFuzzer ends a bounded run; after a crash the directory
  // is left behind in the temporary directory.
  ~Fixture() {
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }

  void write_log(const std::uint8_t* data, std::size_t size) const {
    const int fd = ::open(log_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) setup_failed("open " + log_file.string() + ": " + std::strerror(errno));
    std::size_t done = 0;
    while (done < size) {
      const ssize_t n = ::write(fd, data + done, size - done);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) setup_failed("write " + log_file.string() + ": " + std::strerror(errno));
      done += static_cast<std::size_t>(n);
    }
    ::close(fd);
  }

  std::array<std::uint8_t, crypto_sign_PUBLICKEYBYTES> public_key{};
  std::filesystem::path dir;
  std::filesystem::path log_file;
};

Fixture& fixture() {
  static Fixture instance;
  return instance;
}

}  // namespace
}  // namespace torii::fuzz

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace torii;
  using fuzz::check;
  const fuzz::Fixture& f = fuzz::fixture();
  f.write_log(data, size);

  const auto report = events::verify_log(f.dir, f.public_key);
  check(report.has_value());

  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const auto newlines = static_cast<std::size_t>(std::count(text.begin(), text.end(), '\n'));
  const bool torn_tail = !text.empty() && text.back() != '\n';
  check(report->files == 1);
  check(report->lines == newlines + (torn_tail ? 1 : 0));
  check(report->ok == (report->problems.empty() && !report->more_problems));
  for (const auto& problem : report->problems) {
    check(problem.file == "security.log" && problem.line >= 1 && problem.line <= report->lines);
    check(!problem.what.empty());
  }
  check(report->checkpoints <= report->lines && report->unsigned_tail_lines <= report->lines);
  if (report->ok) check(!torn_tail);
  return 0;
}
