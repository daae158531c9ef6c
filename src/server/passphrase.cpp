#include "server/passphrase.h"

#include <fcntl.h>
#include <termios.h>
#include <unistd.h>

#include <fmt/format.h>

#include "base/file.h"

namespace torii::server {

Result<std::string> read_passphrase(const std::filesystem::path& file) {
  if (!file.empty()) {
    if (auto st = check_owner_only(file); !st) return tl::unexpected(st.error());
    auto bytes = read_file(file, 4096);
    if (!bytes) return tl::unexpected(bytes.error());
    std::string text = to_string(*bytes);
    std::fill(bytes->begin(), bytes->end(), std::uint8_t{0});
    while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
    return text;
  }
  const int tty = ::open("/dev/tty", O_RDWR | O_CLOEXEC | O_NOCTTY);
  if (tty < 0) {
    return fail(Errc::unavailable,
                "keys.kek_source is \"passphrase\" but there is no terminal to ask on; "
                "set keys.passphrase_file");
  }
  const std::string prompt = "torii passphrase: ";
  [[maybe_unused]] auto w = ::write(tty, prompt.data(), prompt.size());
  termios saved{};
  const bool is_terminal = ::tcgetattr(tty, &saved) == 0;
  if (is_terminal) {
    termios quiet = saved;
    quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
    ::tcsetattr(tty, TCSAFLUSH, &quiet);
  }
  std::string text;
  char c = 0;
  ssize_t r = 0;
  while ((r = ::read(tty, &c, 1)) == 1 && c != '\n' && text.size() < 4096) text.push_back(c);
  if (is_terminal) ::tcsetattr(tty, TCSAFLUSH, &saved);
  w = ::write(tty, "\n", 1);
  ::close(tty);
  // Interrupted (Ctrl-C) or closed before Enter: never use a partly typed passphrase.
  if (r < 0 || (r == 0 && text.empty())) {
    std::fill(text.begin(), text.end(), '\0');
    return fail(Errc::unavailable, "no passphrase was entered");
  }
  return text;
}

}  // namespace torii::server
