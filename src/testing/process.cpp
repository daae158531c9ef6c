#include "testing/process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <stdexcept>

namespace torii::testing {
namespace {

using Clock = std::chrono::steady_clock;

pid_t spawn(const std::vector<std::string>& argv, int* in_fd, int* out_fd, int* err_fd) {
  int in[2], out[2], err[2];
  if (::pipe2(in, O_CLOEXEC) != 0 || ::pipe2(out, O_CLOEXEC) != 0 || ::pipe2(err, O_CLOEXEC) != 0) {
    throw std::runtime_error("pipe2 failed");
  }
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  const pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {
    ::dup2(in[0], 0);
    ::dup2(out[1], 1);
    ::dup2(err[1], 2);
    ::setpgid(0, 0);
    ::execvp(args[0], args.data());
    _exit(127);
  }
  ::close(in[0]);
  ::close(out[1]);
  ::close(err[1]);
  if (in_fd != nullptr) {
    *in_fd = in[1];
  } else {
    ::close(in[1]);
  }
  *out_fd = out[0];
  *err_fd = err[0];
  return pid;
}

bool read_some(int& fd, std::string& into) {
  char buffer[8192];
  const ssize_t n = ::read(fd, buffer, sizeof buffer);
  if (n > 0) {
    into.append(buffer, static_cast<std::size_t>(n));
    return true;
  }
  if (n < 0 && (errno == EINTR || errno == EAGAIN)) return true;
  ::close(fd);
  fd = -1;
  return false;
}

int decode_status(int status) { return WIFEXITED(status) ? WEXITSTATUS(status) : -1; }

}  // namespace

Process::Process(const std::vector<std::string>& argv) { pid_ = spawn(argv, nullptr, &out_fd_, &err_fd_); }

Process::~Process() {
  if (!exited_ && pid_ > 0) {
    ::kill(pid_, SIGKILL);
    int status = 0;
    ::waitpid(pid_, &status, 0);
  }
  close_pipes();
}

void Process::close_pipes() {
  if (out_fd_ >= 0) ::close(out_fd_);
  if (err_fd_ >= 0) ::close(err_fd_);
  out_fd_ = err_fd_ = -1;
}

void Process::pump(std::chrono::milliseconds timeout) {
  pollfd fds[2] = {{out_fd_, POLLIN, 0}, {err_fd_, POLLIN, 0}};
  const int n = ::poll(fds, 2, static_cast<int>(timeout.count()));
  if (n <= 0) return;
  if (out_fd_ >= 0 && (fds[0].revents & (POLLIN | POLLHUP))) read_some(out_fd_, out_);
  if (err_fd_ >= 0 && (fds[1].revents & (POLLIN | POLLHUP))) read_some(err_fd_, err_);
}

bool Process::wait_for_output(std::string_view needle, std::chrono::seconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (out_.find(needle) == std::string::npos) {
    if (Clock::now() >= deadline) return false;
    if (out_fd_ < 0 && err_fd_ < 0) return false;
    pump(std::chrono::milliseconds(100));
    if (out_fd_ < 0 && out_.find(needle) == std::string::npos) return false;
  }
  return true;
}

int Process::wait(std::chrono::seconds timeout) {
  if (exited_) return exit_code_;
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    int status = 0;
    const pid_t r = ::waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
      exited_ = true;
      exit_code_ = decode_status(status);
      break;
    }
    if (Clock::now() >= deadline) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, &status, 0);
      exited_ = true;
      exit_code_ = -1;
      break;
    }
    pump(std::chrono::milliseconds(50));
  }
  // Drain what is left in the pipes.
  while (out_fd_ >= 0 || err_fd_ >= 0) {
    pollfd fds[2] = {{out_fd_, POLLIN, 0}, {err_fd_, POLLIN, 0}};
    if (::poll(fds, 2, 1000) <= 0) break;
    if (out_fd_ >= 0 && fds[0].revents) read_some(out_fd_, out_);
    if (err_fd_ >= 0 && fds[1].revents) read_some(err_fd_, err_);
  }
  close_pipes();
  return exit_code_;
}

int Process::stop(std::chrono::seconds timeout) {
  if (!exited_) ::kill(pid_, SIGTERM);
  return wait(timeout);
}

bool Process::signal(int sig) {
  if (exited_) return false;
  return ::kill(pid_, sig) == 0;
}

int Process::kill() {
  signal(SIGKILL);
  return wait(std::chrono::seconds(30));
}

RunResult run(const std::vector<std::string>& argv, std::chrono::seconds timeout, std::string_view input) {
  int in_fd = -1;
  int out_fd = -1;
  int err_fd = -1;
  const pid_t pid = spawn(argv, &in_fd, &out_fd, &err_fd);
  std::size_t written = 0;
  if (input.empty()) {
    ::close(in_fd);
    in_fd = -1;
  }
  RunResult result;
  const auto deadline = Clock::now() + timeout;
  while (out_fd >= 0 || err_fd >= 0) {
    if (Clock::now() >= deadline) {
      ::kill(pid, SIGKILL);
      break;
    }
    pollfd fds[3] = {{out_fd, POLLIN, 0}, {err_fd, POLLIN, 0}, {in_fd, POLLOUT, 0}};
    if (::poll(fds, 3, 100) <= 0) continue;
    if (out_fd >= 0 && fds[0].revents) read_some(out_fd, result.out);
    if (err_fd >= 0 && fds[1].revents) read_some(err_fd, result.err);
    if (in_fd >= 0 && fds[2].revents) {
      const ssize_t n = ::write(in_fd, input.data() + written, input.size() - written);
      if (n > 0) written += static_cast<std::size_t>(n);
      if (n < 0 || written == input.size()) {
        ::close(in_fd);
        in_fd = -1;
      }
    }
  }
  if (in_fd >= 0) ::close(in_fd);
  if (out_fd >= 0) ::close(out_fd);
  if (err_fd >= 0) ::close(err_fd);
  int status = 0;
  ::waitpid(pid, &status, 0);
  result.exit_code = Clock::now() >= deadline ? -1 : decode_status(status);
  return result;
}

}  // namespace torii::testing
