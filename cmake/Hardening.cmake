# Compile and link flags applied to every torii target (DI4: hardened build).
add_library(torii_flags INTERFACE)
target_compile_options(torii_flags INTERFACE
  -Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor -Wold-style-cast -Wcast-align
  -Woverloaded-virtual -Wnull-dereference -Wformat=2 -Wimplicit-fallthrough
  -fstack-protector-strong -fstack-clash-protection -fcf-protection
  $<$<BOOL:${TORII_WERROR}>:-Werror>)
# Optimisation and debug information are chosen here per kind of code, in place of CMake's
# per-configuration defaults (cleared in CMakeLists.txt; Release is -O2 -DNDEBUG there):
#   - the product's code (modules, the torii binary): -O2 -DNDEBUG in RelWithDebInfo (the dev
#     build), unoptimised in Debug (the sanitizer build);
#   - test code (targets with the TORII_TEST_CODE property, see torii_test_code()): -Og with
#     frame pointers in both. -Og compiles gtest/gmock-heavy files two to three times faster
#     than -O2 and still defines __OPTIMIZE__ for FORTIFY. Being the same command in the dev
#     and the sanitizer build, the second build takes the first one's test objects from
#     ccache (CMakeLists.txt sets base_dir and hash_dir for that), which are about a third of
#     its compile time.
# Debug information: line tables only by default (-g1). Stack traces, sanitizer reports and
# profiles need nothing more, and full DWARF (-g) costs about 30 % more compile time in the
# optimised build (12.7 s against 8.7 s for src/console/api_people.cpp). Configure with
# -DTORII_DEBUG_INFO=full for a debugger's view of variables and types.
set(TORII_DEBUG_INFO "lines" CACHE STRING "Debug information in Debug and RelWithDebInfo builds: lines or full")
set_property(CACHE TORII_DEBUG_INFO PROPERTY STRINGS lines full)
if(NOT TORII_DEBUG_INFO MATCHES "^(lines|full)$")
  message(FATAL_ERROR "TORII_DEBUG_INFO must be 'lines' or 'full', not '${TORII_DEBUG_INFO}'")
endif()
set(torii_test_code "$<BOOL:$<TARGET_PROPERTY:TORII_TEST_CODE>>")
set(torii_product_code "$<NOT:${torii_test_code}>")
set(torii_debug_configs "$<CONFIG:Debug,RelWithDebInfo>")
set(torii_optimised_product "$<AND:${torii_product_code},$<CONFIG:RelWithDebInfo>>")
set(torii_test_build "$<AND:${torii_test_code},${torii_debug_configs}>")
target_compile_options(torii_flags INTERFACE
  "$<${torii_optimised_product}:-O2>"
  "$<${torii_test_build}:-Og>"
  "$<${torii_test_build}:-fno-omit-frame-pointer>"
  "$<${torii_debug_configs}:$<IF:$<STREQUAL:${TORII_DEBUG_INFO},full>,-g,-g1>>")
target_compile_definitions(torii_flags INTERFACE
  "$<${torii_optimised_product}:NDEBUG>"
  # FORTIFY needs optimisation: everywhere but the product's code in Debug.
  "$<$<OR:$<NOT:$<CONFIG:Debug>>,${torii_test_code}>:_FORTIFY_SOURCE=2>"
  _GLIBCXX_ASSERTIONS)
target_link_options(torii_flags INTERFACE $<IF:$<BOOL:${TORII_SANITIZE}>,-no-pie,-pie> -Wl,-z,relro -Wl,-z,now
                    -Wl,-z,noexecstack)

if(TORII_SANITIZE)
  # The product's code (modules, the torii binary) is instrumented. The tests' own code
  # (targets with the TORII_TEST_CODE property, see torii_test_code()) only links the
  # runtimes: ASan/UBSan are here to find the product's errors, and instrumenting gtest-heavy
  # test files doubled their compile time. The product code they call is still checked.
  target_compile_options(torii_flags INTERFACE "$<${torii_product_code}:-fsanitize=address,undefined>"
    "$<${torii_product_code}:-fno-sanitize-recover=undefined>" "$<${torii_product_code}:-fno-omit-frame-pointer>")
  target_link_options(torii_flags INTERFACE -fsanitize=address,undefined)
  # Sanitized executables are linked as fixed-address executables, not PIE (above): the
  # instrumentation's data (ASan's global descriptors, UBSan's check sites) holds pointers,
  # which in a PIE are relocated at every start (2.3 million relocations in the torii binary)
  # by writing to tens of megabytes of pages. The suite starts torii and the test executables
  # hundreds of times, so this took a large part of the sanitized suite's CPU time. What the
  # sanitizers check does not depend on PIE; the hardening of what ships is checked on the dev
  # build (scripts/check-hardening).
endif()

# Marks targets as test code (test executables and their helpers, not the modules they
# test): see the flags above.
function(torii_test_code)
  set_target_properties(${ARGN} PROPERTIES TORII_TEST_CODE ON)
endfunction()

# What test code links for its flags (the same as torii_flags; the TORII_TEST_CODE property
# of the target makes the difference).
add_library(torii_test_flags INTERFACE)
target_link_libraries(torii_test_flags INTERFACE torii_flags)

# Use it as: torii_module(NAME SOURCES ... DEPS ...)
function(torii_module name)
  cmake_parse_arguments(M "" "" "SOURCES;DEPS" ${ARGN})
  add_library(torii_${name} STATIC ${M_SOURCES})
  target_include_directories(torii_${name} PUBLIC ${PROJECT_SOURCE_DIR}/src)
  target_link_libraries(torii_${name} PUBLIC ${M_DEPS} PRIVATE torii_flags)
endfunction()

# Use it as: torii_test(NAME SOURCES ... DEPS ...); registers with CTest.
function(torii_test name)
  cmake_parse_arguments(T "" "" "SOURCES;DEPS" ${ARGN})
  add_executable(${name} ${T_SOURCES})
  torii_test_code(${name})
  target_link_libraries(${name} PRIVATE ${T_DEPS} torii_test_flags torii_test_main torii_testing GTest::gmock GTest::gtest)
  gtest_discover_tests(${name} DISCOVERY_TIMEOUT 60 PROPERTIES ENVIRONMENT "TORII_SOURCE_DIR=${PROJECT_SOURCE_DIR}")
endfunction()
