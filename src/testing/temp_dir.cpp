#include "testing/temp_dir.h"

#include <cstdlib>
#include <string>

#include <gtest/gtest.h>

namespace torii::testing {

TempDir::TempDir() {
  std::string tmpl = (std::filesystem::temp_directory_path() / "torii-test-XXXXXX").string();
  if (::mkdtemp(tmpl.data()) == nullptr) {
    ADD_FAILURE() << "mkdtemp failed";
  }
  path_ = tmpl;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

}  // namespace torii::testing
