// The web console's files (web/, built by Vite into a directory of static files), read once
// when the server starts and served from memory by the console listener: the REST API lives
// under /api/, every other path is the console.
//
//   /assets/<name>-<hash>.<ext>   named by their content: cached for a year, immutable
//   another file (index.html, …)  revalidated on every use (no-cache, with an ETag)
//   a path with no file extension the console's own page (index.html), which routes it
//                                 in the browser: /setup, /devices/sensor-1, …
//   anything else                 404
//
// A request path is only ever looked up among the files read at load, never joined to the
// directory, so no request reaches a file outside it, and a file added later is not served.
//
// The pages' policy (assets.cpp, kConsolePolicy) lets them load scripts, styles, images
// and connections from this origin only: no inline script or style, nothing third-party.
#pragma once

#include <cstddef>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "base/error.h"
#include "console/http.h"

namespace torii::console {

class Assets {
 public:
  struct File {
    std::string body;
    std::string content_type;
    std::string etag;  // a strong validator, quoted: a hash of the body
    bool immutable = false;
  };

  // Every regular file under dir (at most 2,000 files of 8 MiB each), with index.html
  // required. An error names the path and what is wrong.
  [[nodiscard]] static Result<Assets> load(const std::filesystem::path& dir);

  // The file a GET of this path (without its query) serves; nullptr: 404.
  [[nodiscard]] const File* find(std::string_view path) const;

  [[nodiscard]] std::size_t size() const { return files_.size(); }
  [[nodiscard]] std::size_t bytes() const;

 private:
  std::map<std::string, File, std::less<>> files_;  // by URL path: "/index.html", "/assets/…"
};

// Where the console's files are when console.assets is not set: "console" beside the
// executable (the build tree), then ../share/torii/console from it (an installation).
// nullopt: neither has an index.html.
[[nodiscard]] std::optional<std::filesystem::path> default_assets_dir();

// The answer to a GET or HEAD of file: its body (none for HEAD), or 304 when
// if_none_match names its ETag; with the pages' security policy and caching fields.
[[nodiscard]] Response asset_response(const Assets::File& file, std::string_view method,
                                      std::optional<std::string_view> if_none_match);

}  // namespace torii::console
