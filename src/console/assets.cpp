#include "console/assets.h"

#include <unistd.h>

#include <array>
#include <system_error>
#include <utility>

#include <fmt/format.h>

#include "base/file.h"
#include "crypto/sodium.h"

namespace torii::console {

namespace {

constexpr std::size_t kMaxFiles = 2000;
constexpr std::size_t kMaxFileBytes = std::size_t{8} << 20;

// The console's pages: their own scripts, styles, images (QR codes come as data: URLs) and
// connections (the API, the live WebSocket), nothing inline, nothing from elsewhere.
constexpr std::string_view kConsolePolicy =
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; "
    "connect-src 'self'; manifest-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

constexpr std::array<std::pair<std::string_view, std::string_view>, 11> kContentTypes = {{
    {".html", "text/html; charset=utf-8"},
    {".js", "text/javascript; charset=utf-8"},
    {".mjs", "text/javascript; charset=utf-8"},
    {".css", "text/css; charset=utf-8"},
    {".svg", "image/svg+xml"},
    {".png", "image/png"},
    {".ico", "image/x-icon"},
    {".json", "application/json"},
    {".webmanifest", "application/manifest+json"},
    {".woff2", "font/woff2"},
    {".txt", "text/plain; charset=utf-8"},
}};

std::string_view content_type_of(std::string_view name) {
  for (const auto& [ext, type] : kContentTypes) {
    if (name.ends_with(ext)) return type;
  }
  return "application/octet-stream";
}

// The last path segment has a dot: a file, not one of the console's routes.
bool names_a_file(std::string_view path) {
  const auto slash = path.rfind('/');
  return path.find('.', slash == std::string_view::npos ? 0 : slash) != std::string_view::npos;
}

}  // namespace

Result<Assets> Assets::load(const std::filesystem::path& dir) {
  Assets out;
  std::error_code ec;
  std::filesystem::recursive_directory_iterator it(dir, ec);
  if (ec) return fail(Errc::not_found, fmt::format("console assets {}: {}", dir.string(), ec.message()));
  for (const auto& entry : it) {
    if (!entry.is_regular_file()) continue;
    if (out.files_.size() == kMaxFiles) {
      return fail(Errc::invalid_argument,
                  fmt::format("console assets {}: more than {} files", dir.string(), kMaxFiles));
    }
    auto data = read_file(entry.path(), kMaxFileBytes);
    if (!data) return tl::unexpected(data.error());
    const std::string url = "/" + entry.path().lexically_relative(dir).generic_string();
    File f;
    f.body.assign(data->begin(), data->end());
    f.content_type = std::string(content_type_of(url));
    f.etag = fmt::format("\"{}\"", hex_encode(crypto::sha256(f.body)).substr(0, 32));
    f.immutable = url.starts_with("/assets/");
    out.files_.emplace(url, std::move(f));
  }
  if (!out.files_.contains("/index.html")) {
    return fail(Errc::not_found, fmt::format("console assets {}: no index.html", dir.string()));
  }
  return out;
}

const Assets::File* Assets::find(std::string_view path) const {
  if (path.empty() || path == "/") path = "/index.html";
  if (auto it = files_.find(path); it != files_.end()) return &it->second;
  if (names_a_file(path) || path.starts_with("/assets/")) return nullptr;
  return &files_.find("/index.html")->second;
}

std::size_t Assets::bytes() const {
  std::size_t n = 0;
  for (const auto& [path, f] : files_) n += f.body.size();
  return n;
}

std::optional<std::filesystem::path> default_assets_dir() {
  std::error_code ec;
  const auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (ec) return std::nullopt;
  for (const auto& dir : {exe.parent_path() / "console", exe.parent_path().parent_path() / "share/torii/console"}) {
    if (std::filesystem::is_regular_file(dir / "index.html", ec)) return dir;
  }
  return std::nullopt;
}

Response asset_response(const Assets::File& file, std::string_view method,
                        std::optional<std::string_view> if_none_match) {
  Response r;
  r.set("Content-Security-Policy", std::string(kConsolePolicy));
  r.set("Cache-Control", file.immutable ? "public, max-age=31536000, immutable" : "no-cache");
  r.set("ETag", file.etag);
  if (if_none_match && if_none_match->find(file.etag) != std::string_view::npos) {
    r.status = 304;
    return r;
  }
  r.set("Content-Type", file.content_type);
  if (method != "HEAD") r.body = file.body;
  return r;
}

}  // namespace torii::console
