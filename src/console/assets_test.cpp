// The web console's files as the console listener serves them: read once, looked up by URL
// path only, with the pages' own security policy and caching.
#include "console/assets.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "testing/temp_dir.h"

namespace torii::console {
namespace {

std::string header(const Response& r, std::string_view name) {
  for (const auto& [n, v] : r.headers) {
    if (n == name) return v;
  }
  return "";
}

class AssetsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    write("index.html", "<!doctype html><title>torii</title>");
    write("favicon.svg", "<svg/>");
    write("assets/index-Ab12Cd34.js", "console.log(1)");
    write("assets/style-Ef56.css", "body{}");
    // Beside the directory, never reachable through it.
    std::ofstream(dir_.path() / "secret.txt") << "outside";
  }

  void write(const std::string& name, const std::string& text) {
    const auto path = root() / name;
    std::filesystem::create_directories(path.parent_path());
    std::ofstream(path) << text;
  }

  [[nodiscard]] std::filesystem::path root() const { return dir_.path() / "console"; }

  testing::TempDir dir_;
};

TEST_F(AssetsTest, FilesAreFoundByTheirPathAndTheConsolesRoutesGetItsPage) {
  auto assets = Assets::load(root());
  ASSERT_TRUE(assets) << assets.error().message;
  EXPECT_EQ(assets->size(), 4u);

  const auto* index = assets->find("/");
  ASSERT_NE(index, nullptr);
  EXPECT_EQ(index->content_type, "text/html; charset=utf-8");
  EXPECT_FALSE(index->immutable);
  for (const char* route : {"/setup", "/sign-in", "/devices", "/devices/sensor-1", "/alerts"}) {
    EXPECT_EQ(assets->find(route), index) << route;
  }

  const auto* script = assets->find("/assets/index-Ab12Cd34.js");
  ASSERT_NE(script, nullptr);
  EXPECT_EQ(script->body, "console.log(1)");
  EXPECT_EQ(script->content_type, "text/javascript; charset=utf-8");
  EXPECT_TRUE(script->immutable);
  EXPECT_EQ(assets->find("/assets/style-Ef56.css")->content_type, "text/css; charset=utf-8");
  EXPECT_EQ(assets->find("/favicon.svg")->content_type, "image/svg+xml");
}

TEST_F(AssetsTest, NothingOutsideTheFilesReadAtLoadIsServed) {
  auto assets = Assets::load(root());
  ASSERT_TRUE(assets) << assets.error().message;
  const auto* index = assets->find("/");
  EXPECT_EQ(assets->find("/missing.js"), nullptr);
  EXPECT_EQ(assets->find("/assets/index-Zz99.js"), nullptr);
  EXPECT_EQ(assets->find("/assets/anything"), nullptr) << "under /assets/ only files";
  EXPECT_EQ(assets->find("/../secret.txt"), nullptr);
  EXPECT_EQ(assets->find("/assets/../../secret.txt"), nullptr);
  EXPECT_EQ(assets->find("/%2e%2e/secret.txt"), nullptr);
  // A path without a file name is one of the console's routes: its page, never a file.
  EXPECT_EQ(assets->find("/../console"), index);
  // A file added after the start is not served.
  write("late.js", "x");
  EXPECT_EQ(assets->find("/late.js"), nullptr);
}

TEST_F(AssetsTest, ADirectoryWithoutTheConsolesPageIsRefusedByName) {
  std::filesystem::remove(root() / "index.html");
  auto assets = Assets::load(root());
  ASSERT_FALSE(assets);
  EXPECT_NE(assets.error().message.find("no index.html"), std::string::npos) << assets.error().message;
  EXPECT_NE(assets.error().message.find(root().string()), std::string::npos) << assets.error().message;
  auto missing = Assets::load(dir_.path() / "nowhere");
  ASSERT_FALSE(missing);
  EXPECT_NE(missing.error().message.find("nowhere"), std::string::npos) << missing.error().message;
}

TEST_F(AssetsTest, PagesCarryAStrictPolicyAndHashedFilesAreCachedForAYear) {
  auto assets = Assets::load(root());
  ASSERT_TRUE(assets) << assets.error().message;
  const auto page = asset_response(*assets->find("/"), "GET", std::nullopt);
  EXPECT_EQ(page.status, 200);
  EXPECT_EQ(page.body, "<!doctype html><title>torii</title>");
  const std::string csp = header(page, "Content-Security-Policy");
  EXPECT_NE(csp.find("default-src 'none'"), std::string::npos) << csp;
  EXPECT_NE(csp.find("script-src 'self'"), std::string::npos) << csp;
  EXPECT_NE(csp.find("style-src 'self'"), std::string::npos) << csp;
  EXPECT_NE(csp.find("frame-ancestors 'none'"), std::string::npos) << csp;
  EXPECT_EQ(csp.find("unsafe"), std::string::npos) << "no inline script or style: " << csp;
  EXPECT_EQ(header(page, "Cache-Control"), "no-cache");
  const std::string etag = header(page, "ETag");
  ASSERT_FALSE(etag.empty());

  const auto again = asset_response(*assets->find("/"), "GET", etag);
  EXPECT_EQ(again.status, 304);
  EXPECT_TRUE(again.body.empty());
  EXPECT_EQ(asset_response(*assets->find("/"), "GET", "\"other\"").status, 200);

  const auto script = asset_response(*assets->find("/assets/index-Ab12Cd34.js"), "HEAD", std::nullopt);
  EXPECT_EQ(script.status, 200);
  EXPECT_TRUE(script.body.empty()) << "HEAD has no body";
  EXPECT_EQ(header(script, "Content-Type"), "text/javascript; charset=utf-8");
  EXPECT_EQ(header(script, "Cache-Control"), "public, max-age=31536000, immutable");
}

}  // namespace
}  // namespace torii::console
