#include "base/file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cerrno>
#include <system_error>

#include <fmt/format.h>

namespace torii {
namespace {

// Thread-safe strerror: std::strerror may share one buffer between threads; this uses strerror_r.
class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  [[nodiscard]] int get() const { return fd_; }
  int release() { return std::exchange(fd_, -1); }

 private:
  int fd_;
};

Status write_all(int fd, ByteView data, const std::filesystem::path& path) {
  std::size_t done = 0;
  while (done < data.size()) {
    const ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return fail(Errc::io_error, fmt::format("cannot write {}: {}", path.string(), errno_text(errno)));
    }
    done += static_cast<std::size_t>(n);
  }
  return ok();
}

}  // namespace

std::string format_mode(mode_t mode) { return fmt::format("{:04o}", mode & 07777); }

Result<Bytes> read_file(const std::filesystem::path& path, std::size_t max_bytes) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
  if (fd.get() < 0) {
    const int err = errno;
    return fail(err == ENOENT ? Errc::not_found : Errc::io_error,
                fmt::format("cannot open {}: {}", path.string(), errno_text(err)));
  }
  Bytes out;
  std::uint8_t buffer[16384];
  for (;;) {
    const ssize_t n = ::read(fd.get(), buffer, sizeof buffer);
    if (n < 0) {
      if (errno == EINTR) continue;
      return fail(Errc::io_error, fmt::format("cannot read {}: {}", path.string(), errno_text(errno)));
    }
    if (n == 0) break;
    if (out.size() + static_cast<std::size_t>(n) > max_bytes) {
      return fail(Errc::limit_exceeded, fmt::format("{} is larger than {} bytes", path.string(), max_bytes));
    }
    out.insert(out.end(), buffer, buffer + n);
  }
  return out;
}

Status write_file_atomic(const std::filesystem::path& path, ByteView data, mode_t mode) {
  const std::filesystem::path dir = path.has_parent_path() ? path.parent_path() : std::filesystem::path(".");
  std::string name = ".";  // appended, not "." + string: GCC 12 -O3 misreports that (-Wrestrict)
  name += path.filename().string();
  name += ".XXXXXX";
  std::string tmpl = (dir / name).string();
  Fd fd(::mkstemp(tmpl.data()));
  if (fd.get() < 0) {
    return fail(Errc::io_error, fmt::format("cannot create a file in {}: {}", dir.string(), errno_text(errno)));
  }
  auto cleanup = [&] { ::unlink(tmpl.c_str()); };
  if (::fchmod(fd.get(), mode) != 0) {
    cleanup();
    return fail(Errc::io_error, fmt::format("cannot set the mode of {}: {}", tmpl, errno_text(errno)));
  }
  if (auto st = write_all(fd.get(), data, path); !st) {
    cleanup();
    return st;
  }
  if (::fsync(fd.get()) != 0 || ::close(fd.release()) != 0) {
    cleanup();
    return fail(Errc::io_error, fmt::format("cannot flush {}: {}", path.string(), errno_text(errno)));
  }
  if (::rename(tmpl.c_str(), path.c_str()) != 0) {
    cleanup();
    return fail(Errc::io_error, fmt::format("cannot rename into {}: {}", path.string(), errno_text(errno)));
  }
  Fd dfd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (dfd.get() >= 0) ::fsync(dfd.get());
  return ok();
}

Status check_owner_only(const std::filesystem::path& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) {
    const int err = errno;
    return fail(err == ENOENT ? Errc::not_found : Errc::io_error,
                fmt::format("cannot inspect {}: {}", path.string(), errno_text(err)));
  }
  if (S_ISLNK(st.st_mode)) {
    return fail(Errc::permission_denied, fmt::format("{} is a symbolic link; refusing to follow it", path.string()));
  }
  if ((st.st_mode & 077) != 0) {
    return fail(Errc::permission_denied,
                fmt::format("{} has mode {}: group and others must have no access (chmod {} {})", path.string(),
                            format_mode(st.st_mode), S_ISDIR(st.st_mode) ? "700" : "600", path.string()));
  }
  if (st.st_uid != ::geteuid()) {
    return fail(Errc::permission_denied, fmt::format("{} is owned by uid {}, not by the uid torii runs as ({})",
                                                     path.string(), st.st_uid, ::geteuid()));
  }
  return ok();
}

Status ensure_private_directory(const std::filesystem::path& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) {
    if (path.has_parent_path() && !path.parent_path().empty()) {
      std::filesystem::create_directories(path.parent_path(), ec);
      if (ec)
        return fail(Errc::io_error, fmt::format("cannot create {}: {}", path.parent_path().string(), ec.message()));
    }
    if (::mkdir(path.c_str(), 0700) != 0 && errno != EEXIST) {
      return fail(Errc::io_error, fmt::format("cannot create {}: {}", path.string(), errno_text(errno)));
    }
  }
  return check_owner_only(path);
}

}  // namespace torii
