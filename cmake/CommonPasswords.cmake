# Compiles a word list of common passwords into C++ (JPCERT I-3: refuse known passwords).
#
#   cmake -DINPUT=<word list> -DOUTPUT=<file.cpp> -P CommonPasswords.cmake
#
# INPUT has one password a line, as Debian's john-data ships /usr/share/john/password.lst;
# lines starting with "#!comment" and empty lines are skipped. OUTPUT defines
# torii::identity::common_passwords() (src/identity/common_passwords.h): the entries ASCII
# lower-cased, de-duplicated and sorted bytewise (std::string_view's order), for binary search.
#
# The list is handled as hex, one "hh " token per byte, from reading to writing: CMake lists
# split at ';' and group at '[' ']', and a quote or backslash would end a C++ literal, but
# hex has none of these, and sorting hex strings sorts the bytes they stand for.
cmake_minimum_required(VERSION 3.25)

if(NOT INPUT OR NOT OUTPUT)
  message(FATAL_ERROR "Use: cmake -DINPUT=<word list> -DOUTPUT=<file.cpp> -P ${CMAKE_CURRENT_LIST_FILE}")
endif()
if(NOT EXISTS "${INPUT}")
  message(FATAL_ERROR "The list of common passwords ${INPUT} is missing: install the Debian package john-data "
                      "(scripts/bootstrap installs it).")
endif()

file(READ "${INPUT}" hex HEX)
string(REGEX REPLACE "(..)" "\\1 " bytes "${hex}")
# ASCII lower case: 41..5a (A..Z) become 61..7a. Each pattern ends in the space after a byte,
# so it can only match whole bytes.
string(REGEX REPLACE "4([1-9a-f]) " "6\\1 " bytes "${bytes}")
string(REGEX REPLACE "5([0-9a]) " "7\\1 " bytes "${bytes}")
string(REPLACE "0d " "" bytes "${bytes}")  # CRLF line ends
string(REPLACE "0a " ";" lines "${bytes}")

string(HEX "#!comment" comment)
set(entries "")
foreach(line IN LISTS lines)
  string(REPLACE " " "" line "${line}")
  string(FIND "${line}" "${comment}" comment_at)
  if(line STREQUAL "" OR comment_at EQUAL 0)
    continue()
  endif()
  # Entries with control characters (C0, DEL, C1 as UTF-8) can never match: normalize_password
  # refuses such passwords. Dropping them also keeps NUL out of the literals.
  if(line MATCHES "^(..)*([01].|7f|c2[89].)")
    continue()
  endif()
  list(APPEND entries "${line}")
endforeach()
list(REMOVE_DUPLICATES entries)
list(SORT entries)
list(LENGTH entries count)
if(count EQUAL 0)
  message(FATAL_ERROR "The list of common passwords ${INPUT} holds no passwords.")
endif()

set(body "")
foreach(entry IN LISTS entries)
  string(REGEX REPLACE "(..)" "\\\\x\\1" literal "${entry}")
  string(APPEND body "    \"${literal}\"sv,\n")
endforeach()

file(WRITE "${OUTPUT}" "// Generated from ${INPUT} by cmake/CommonPasswords.cmake: do not edit.
// ${count} entries, ASCII lower-cased and sorted bytewise; written as hex escapes so that no
// entry can end its literal early.
#include \"identity/common_passwords.h\"

#include <algorithm>
#include <array>

namespace torii::identity {
namespace {

using namespace std::string_view_literals;

constexpr std::array<std::string_view, ${count}> kCommonPasswords = {
${body}};
static_assert(std::ranges::is_sorted(kCommonPasswords));

}  // namespace

std::span<const std::string_view> common_passwords() { return kCommonPasswords; }

}  // namespace torii::identity
")
