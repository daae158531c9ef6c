// Which memory allocator serves this process's malloc and free: the torii executable is
// linked with tcmalloc unless built with TORII_ALLOCATOR=system (or under the sanitizers).
#pragma once

#include <string>

namespace torii {

// "tcmalloc MAJOR.MINOR" when gperftools' tcmalloc took malloc's place in this process
// (found at run time, not assumed from the build), else "system".
[[nodiscard]] std::string memory_allocator();

}  // namespace torii
