# Every dependency comes from Debian's packages (scripts/bootstrap installs them).
find_package(PkgConfig REQUIRED)
pkg_check_modules(SODIUM REQUIRED IMPORTED_TARGET libsodium)
find_package(OpenSSL 3 REQUIRED)
find_package(SQLite3 REQUIRED)
find_package(Boost 1.74 REQUIRED)
find_package(tomlplusplus REQUIRED)
find_package(CLI11 REQUIRED)
find_package(spdlog REQUIRED)
find_package(nlohmann_json REQUIRED)
find_package(simdjson CONFIG REQUIRED)  # telemetry parsing on the ingest path
find_package(tl-expected REQUIRED)
find_package(Threads REQUIRED)
# People's credentials: password strength (zxcvbn), NFKC (ICU), TOTP (liboath), QR codes.
find_package(ICU REQUIRED COMPONENTS uc)
pkg_check_modules(OATH REQUIRED IMPORTED_TARGET liboath)
pkg_check_modules(QRENCODE REQUIRED IMPORTED_TARGET libqrencode)
find_path(ZXCVBN_INCLUDE_DIR zxcvbn.h REQUIRED)
find_library(ZXCVBN_LIBRARY zxcvbn REQUIRED)
add_library(zxcvbn::zxcvbn UNKNOWN IMPORTED)
set_target_properties(zxcvbn::zxcvbn PROPERTIES IMPORTED_LOCATION ${ZXCVBN_LIBRARY}
                                                INTERFACE_INCLUDE_DIRECTORIES ${ZXCVBN_INCLUDE_DIR})
# The console's web application firewall: ModSecurity v3 (its rules: the OWASP CRS package).
pkg_check_modules(MODSECURITY REQUIRED IMPORTED_TARGET modsecurity)
find_package(GTest REQUIRED)
include(GoogleTest)
