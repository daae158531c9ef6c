#include "base/allocator.h"

#include <dlfcn.h>

#include <fmt/format.h>

namespace torii {

std::string memory_allocator() {
  // gperftools' tcmalloc exports tc_version (and glibc nothing of that name).
  using TcVersion = const char* (*)(int* major, int* minor, const char** patch);
  void* symbol = ::dlsym(RTLD_DEFAULT, "tc_version");
  if (symbol == nullptr) return "system";
  int major = 0;
  int minor = 0;
  const char* patch = nullptr;
  (void)reinterpret_cast<TcVersion>(symbol)(&major, &minor, &patch);
  return fmt::format("tcmalloc {}.{}", major, minor);
}

}  // namespace torii
