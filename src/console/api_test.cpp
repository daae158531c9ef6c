#include "console/api.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <regex>
#include <sstream>

#include "console/work_pool.h"
#include "crypto/sodium.h"
#include "identity/roles.h"
#include "store/sqlite/sqlite_store.h"
#include "testing/fakes.h"
#include "testing/temp_dir.h"

namespace torii::console {
namespace {

std::string read_doc(const std::string& name) {
  const char* source_dir = std::getenv("TORII_SOURCE_DIR");
  EXPECT_NE(source_dir, nullptr);
  std::ifstream in(std::string(source_dir ? source_dir : ".") + "/docs/" + name);
  EXPECT_TRUE(in) << name;
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// The cells of every table row of the page whose first cell matches `first`.
std::vector<std::vector<std::string>> rows(const std::string& page, const std::regex& first) {
  std::vector<std::vector<std::string>> out;
  std::istringstream in(page);
  for (std::string line; std::getline(in, line);) {
    if (!line.starts_with("| ")) continue;
    std::vector<std::string> cells;
    std::size_t at = 1;
    while (at < line.size()) {
      const auto end = line.find('|', at);
      if (end == std::string::npos) break;
      std::string cell = line.substr(at, end - at);
      while (!cell.empty() && cell.front() == ' ') cell.erase(0, 1);
      while (!cell.empty() && cell.back() == ' ') cell.pop_back();
      cells.push_back(cell);
      at = end + 1;
    }
    if (!cells.empty() && std::regex_match(cells[0], first)) out.push_back(cells);
  }
  return out;
}

std::string unquote(std::string s) {
  if (s.size() >= 2 && s.front() == '`' && s.back() == '`') return s.substr(1, s.size() - 2);
  return s;
}

TEST(ApiDocs, ThePermissionMatrixInTheDocsIsTheOneInForce) {
  const auto table = rows(read_doc("permissions.md"), std::regex("`[a-z_]+\\.[a-z_]+`"));
  ASSERT_EQ(table.size(), identity::all_permissions().size());
  const std::vector<std::string_view> columns{identity::kRoleSystemAdmin, identity::kRoleOrgAdmin,
                                              identity::kRoleOperator, identity::kRoleViewer, identity::kRoleAuditor};
  for (const auto& row : table) {
    ASSERT_EQ(row.size(), 1 + columns.size()) << row[0];
    const auto permission = identity::parse_permission(unquote(row[0]));
    ASSERT_TRUE(permission) << row[0];
    for (std::size_t i = 0; i < columns.size(); ++i) {
      EXPECT_EQ(row[1 + i] == "yes", identity::role_grants(columns[i], *permission)) << row[0] << " / " << columns[i];
    }
  }
}

class ApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto s = store::sqlite::open_sqlite_store(dir_ / "torii.db");
    ASSERT_TRUE(s) << s.error().message;
    store_ = std::move(*s);
    auto kek = keys::unlock_kek(*store_, {config::KekSource::file, dir_ / "kek.key", nullptr, {1, 8u << 20}}, random_);
    ASSERT_TRUE(kek) << kek.error().message;
    keys_ = std::make_unique<keys::KeyRing>(*store_, std::move(kek->kek), random_, clock_);
    accounts_ =
        std::make_unique<identity::Accounts>(*store_, *keys_, clock_, random_, identity::AccountsOptions{}, nullptr);
    api_ = std::make_unique<Api>(ApiContext{config_, *store_, *accounts_, pool_, clock_, nullptr});
  }

  testing::TempDir dir_;
  crypto::SystemRandom random_;
  testing::FakeClock clock_;
  config::Config config_;
  WorkPool pool_{1, 1};
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<keys::KeyRing> keys_;
  std::unique_ptr<identity::Accounts> accounts_;
  std::unique_ptr<Api> api_;
};

TEST_F(ApiTest, TheEndpointTableInTheDocsIsTheOneInForce) {
  const auto table = rows(read_doc("permissions.md"), std::regex("GET|POST|PUT|PATCH|DELETE"));
  std::set<std::vector<std::string>> documented;
  for (const auto& row : table) {
    ASSERT_EQ(row.size(), 4u) << row[0];
    documented.insert({row[0], unquote(row[1]), row[2], unquote(row[3])});
  }
  std::set<std::vector<std::string>> served;
  for (const auto& r : api_->routes()) {
    served.insert({std::string(r.method), std::string(r.pattern), std::string(r.access), std::string(r.permission)});
    // Deny unless allowed: everything past sign-in names a permission.
    if (r.access == "signed in") {
      EXPECT_FALSE(r.permission.empty()) << r.method << " " << r.pattern;
    }
  }
  EXPECT_EQ(documented, served);
}

TEST(HttpServer, AResponseNeverCarriesAHeaderThatCouldSplitIt) {
  Response r;
  r.status = 200;
  r.set("X-Good", "fine");
  r.set("X-Bad", "a\r\nSet-Cookie: evil=1");
  r.set("X-Bad-Name\r\nX", "b");
  r.body = "{}";
  const std::string out = serialize_response(r, true);
  EXPECT_EQ(out, "HTTP/1.1 200 OK\r\nX-Good: fine\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\n{}");
}

}  // namespace
}  // namespace torii::console
