// The shipped list of common and breached passwords, inside identity only: callers use
// is_common_password() (password_policy.h).
//
// Defined in a source generated at build time by cmake/CommonPasswords.cmake from Debian
// john-data's /usr/share/john/password.lst (src/identity/CMakeLists.txt).
#pragma once

#include <span>
#include <string_view>

namespace torii::identity {

// ASCII lower-cased, de-duplicated and sorted in std::string_view's order, so that
// std::ranges::binary_search works; never empty. Static storage: the views never dangle.
[[nodiscard]] std::span<const std::string_view> common_passwords();

}  // namespace torii::identity
