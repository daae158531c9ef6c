#include "testing/smtp_sink.h"

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>
#include <thread>

namespace torii::testing {
namespace {

std::string read_text(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

bool succeeded(const RunResult& r, std::string_view what) {
  if (r.exit_code == 0) return true;
  ADD_FAILURE() << what << " failed: " << r.err;
  return false;
}

}  // namespace

SinkCertificates make_sink_certificates(const std::filesystem::path& dir, const std::string& names) {
  SinkCertificates out{dir / "ca.pem", dir / "cert.pem", dir / "key.pem"};
  const std::string ca_key = (dir / "ca.key").string();
  const std::string request = (dir / "request.csr").string();
  const std::string extensions = (dir / "extensions.cnf").string();
  std::ofstream(extensions) << "subjectAltName=" << names
                            << "\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n";
  if (!succeeded(run({"openssl",
                      "req",
                      "-x509",
                      "-newkey",
                      "ec",
                      "-pkeyopt",
                      "ec_paramgen_curve:P-256",
                      "-nodes",
                      "-keyout",
                      ca_key,
                      "-out",
                      out.ca.string(),
                      "-days",
                      "2",
                      "-subj",
                      "/CN=torii test mail CA",
                      "-addext",
                      "basicConstraints=critical,CA:TRUE",
                      "-addext",
                      "keyUsage=critical,keyCertSign"}),
                 "openssl req (CA)") ||
      !succeeded(run({"openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                      "-keyout", out.key.string(), "-out", request, "-subj", "/CN=localhost"}),
                 "openssl req (server)") ||
      !succeeded(run({"openssl", "x509", "-req", "-in", request, "-CA", out.ca.string(), "-CAkey", ca_key,
                      "-CAcreateserial", "-out", out.cert.string(), "-days", "2", "-extfile", extensions}),
                 "openssl x509")) {
    return {};
  }
  return out;
}

SmtpSink::SmtpSink(const SinkOptions& options) {
  std::vector<std::string> argv = {"/usr/bin/python3", TORII_SMTP_SINK, "--out", dir_.path().string()};
  if (options.tls) {
    argv.insert(argv.end(), {"--cert", options.tls->cert.string(), "--key", options.tls->key.string()});
  }
  if (!options.auth.empty()) argv.insert(argv.end(), {"--auth", options.auth});
  if (options.auth_in_clear) argv.emplace_back("--auth-in-clear");
  if (!options.eight_bit_mime) argv.emplace_back("--no-8bitmime");
  process_ = std::make_unique<Process>(argv);
  if (!process_->wait_for_output("ready ", std::chrono::seconds(20))) {
    ADD_FAILURE() << "the SMTP sink did not start: " << process_->err();
    return;
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (process_->out().find('\n', process_->out().find("ready ")) == std::string::npos &&
         std::chrono::steady_clock::now() < deadline) {
    (void)process_->wait_for_output("\n", std::chrono::seconds(1));
  }
  const std::string& out = process_->out();
  port_ = static_cast<std::uint16_t>(std::stoi(out.substr(out.find("ready ") + 6)));
}

SmtpSink::~SmtpSink() {
  if (process_) process_->stop(std::chrono::seconds(10));
}

std::optional<std::string> SmtpSink::message(int n, std::chrono::seconds timeout) const {
  const auto path = dir_.path() / (std::to_string(n) + ".json");
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    // The sink writes the file before it answers 250; a file still being written is
    // read again on the next turn.
    if (std::filesystem::exists(path)) {
      std::string text = read_text(path);
      if (!text.empty() && text.back() == '}') return text;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return std::nullopt;
}

std::string SmtpSink::commands() const { return read_text(dir_.path() / "commands.log"); }

}  // namespace torii::testing
