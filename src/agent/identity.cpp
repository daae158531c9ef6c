#include "agent/identity.h"

#include <fmt/format.h>

#include "base/file.h"
#include "crypto/sodium.h"
#include "crypto/x509.h"

namespace torii::agent {

namespace {

Result<std::string> read_text(const std::filesystem::path& path) {
  auto bytes = read_file(path, 1u << 20);
  if (!bytes) return tl::unexpected(bytes.error());
  return torii::to_string(*bytes);
}

Result<crypto::SecretBytes> read_key(const std::filesystem::path& path) {
  auto key = read_file(path, 64u << 10);
  if (!key) return tl::unexpected(key.error());
  crypto::SecretBytes key_pem(*key);
  std::fill(key->begin(), key->end(), std::uint8_t{0});
  return key_pem;
}

Status rename_into_place(const std::filesystem::path& from, const std::filesystem::path& to) {
  std::error_code ec;
  std::filesystem::rename(from, to, ec);
  if (ec)
    return fail(Errc::io_error, fmt::format("cannot rename {} to {}: {}", from.string(), to.string(), ec.message()));
  return ok();
}

// A renewal interrupted after both renewed-* files were written is finished (key first, so
// the certificate left may already match the key in place); anything else left is removed.
Status finish_renewal(const IdentityFiles& files) {
  std::error_code ec;
  if (!std::filesystem::exists(files.renewed_certificate, ec)) {
    std::filesystem::remove(files.renewed_key, ec);
    return ok();
  }
  auto certificate = read_text(files.renewed_certificate);
  if (!certificate) return tl::unexpected(certificate.error());
  const bool key_staged = std::filesystem::exists(files.renewed_key, ec);
  auto key = read_key(key_staged ? files.renewed_key : files.key);
  if (!key) return tl::unexpected(key.error());
  if (!crypto::check_key_matches_certificate(*key, *certificate)) {
    std::filesystem::remove(files.renewed_key, ec);
    std::filesystem::remove(files.renewed_certificate, ec);
    return ok();
  }
  if (key_staged) {
    if (auto moved = rename_into_place(files.renewed_key, files.key); !moved) return moved;
  }
  return rename_into_place(files.renewed_certificate, files.certificate);
}

}  // namespace

IdentityFiles identity_files(const std::filesystem::path& state_dir) {
  return {state_dir / "key.pem",         state_dir / "certificate.pem",
          state_dir / "renewed-key.pem", state_dir / "renewed-certificate.pem",
          state_dir / "ca.pem",          state_dir / "device",
          state_dir / "command-key.pub"};
}

std::optional<Bytes> parse_command_key(std::string_view text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.remove_suffix(1);
  auto key = base64url_decode(text);
  if (!key || key->size() != crypto::kEd25519PublicKeyBytes) return std::nullopt;
  return key;
}

Result<Identity> load_identity(const std::filesystem::path& state_dir, std::chrono::system_clock::time_point now) {
  Identity identity{identity_files(state_dir), {}, {}, {}, {}, {}};
  const auto& files = identity.files;
  std::error_code ec;
  if (!std::filesystem::exists(files.certificate, ec) || !std::filesystem::exists(files.key, ec)) {
    return fail(Errc::not_found,
                fmt::format("{} holds no enrolled identity: run `torii agent enroll` first", state_dir.string()));
  }
  if (auto owner_only = check_owner_only(state_dir); !owner_only) return tl::unexpected(owner_only.error());
  if (auto owner_only = check_owner_only(files.key); !owner_only) return tl::unexpected(owner_only.error());
  if (auto finished = finish_renewal(files); !finished) return tl::unexpected(finished.error());

  auto key = read_key(files.key);
  if (!key) return tl::unexpected(key.error());
  const crypto::SecretBytes& key_pem = *key;
  auto certificate = read_text(files.certificate);
  if (!certificate) return tl::unexpected(certificate.error());
  auto device = read_text(files.device);
  if (!device) return tl::unexpected(device.error());
  while (!device->empty() && (device->back() == '\n' || device->back() == '\r')) device->pop_back();

  if (auto matches = crypto::check_key_matches_certificate(key_pem, *certificate); !matches) {
    return fail(Errc::corrupt,
                fmt::format("{} does not belong to {}: enrol again", files.key.string(), files.certificate.string()));
  }
  auto info = crypto::inspect_certificate(*certificate);
  if (!info) return fail(Errc::corrupt, fmt::format("{}: {}", files.certificate.string(), info.error().message));
  if (info->subject_cn != *device) {
    return fail(Errc::corrupt, fmt::format("{} names device '{}', the certificate '{}'", files.device.string(), *device,
                                           info->subject_cn));
  }
  if (info->not_after <= now) {
    return fail(Errc::expired, fmt::format("the certificate of device '{}' has expired: enrol again with a new "
                                           "token (`torii agent enroll`)",
                                           *device));
  }
  if (std::filesystem::exists(files.command_key, ec)) {
    auto text = read_text(files.command_key);
    if (!text) return tl::unexpected(text.error());
    identity.command_key = parse_command_key(*text);
    if (!identity.command_key) {
      return fail(Errc::corrupt,
                  fmt::format("{} holds no Ed25519 public key: enrol again", files.command_key.string()));
    }
  }
  identity.device_id = std::move(*device);
  identity.certificate_serial = info->serial_hex;
  identity.not_before = info->not_before;
  identity.not_after = info->not_after;
  return identity;
}

Status store_identity(const std::filesystem::path& state_dir, const crypto::SecretBytes& key_pem,
                      std::string_view certificate_pem, std::string_view ca_bundle_pem, std::string_view device_id,
                      const std::optional<Bytes>& command_key) {
  if (auto dir = ensure_private_directory(state_dir); !dir) return dir;
  const auto files = identity_files(state_dir);
  if (auto written = write_file_atomic(files.key, key_pem.view(), 0600); !written) return written;
  if (auto written = write_file_atomic(files.certificate, as_bytes(certificate_pem), 0644); !written) return written;
  if (auto written = write_file_atomic(files.ca_bundle, as_bytes(ca_bundle_pem), 0644); !written) return written;
  const std::string device_line = std::string(device_id) + "\n";
  if (auto written = write_file_atomic(files.device, as_bytes(device_line), 0644); !written) return written;
  if (!command_key) {
    std::error_code ec;
    std::filesystem::remove(files.command_key, ec);
    if (ec) return fail(Errc::io_error, fmt::format("cannot remove {}: {}", files.command_key.string(), ec.message()));
    return ok();
  }
  const std::string key_line = base64url_encode(*command_key) + "\n";
  return write_file_atomic(files.command_key, as_bytes(key_line), 0600);
}

Status store_renewed_identity(const std::filesystem::path& state_dir, const crypto::SecretBytes& key_pem,
                              std::string_view certificate_pem, std::string_view ca_bundle_pem,
                              std::string_view device_id) {
  if (!crypto::check_key_matches_certificate(key_pem, certificate_pem)) {
    return fail(Errc::corrupt, "the renewed certificate is not for the key the device made");
  }
  auto info = crypto::inspect_certificate(certificate_pem);
  if (!info) return fail(Errc::corrupt, fmt::format("the renewed certificate: {}", info.error().message));
  if (info->subject_cn != device_id) {
    return fail(Errc::corrupt,
                fmt::format("the renewed certificate names device '{}', not '{}'", info->subject_cn, device_id));
  }
  const auto files = identity_files(state_dir);
  if (auto written = write_file_atomic(files.renewed_key, key_pem.view(), 0600); !written) return written;
  if (auto written = write_file_atomic(files.renewed_certificate, as_bytes(certificate_pem), 0644); !written) {
    return written;
  }
  if (auto moved = rename_into_place(files.renewed_key, files.key); !moved) return moved;
  if (auto moved = rename_into_place(files.renewed_certificate, files.certificate); !moved) return moved;
  return write_file_atomic(files.ca_bundle, as_bytes(ca_bundle_pem), 0644);
}

}  // namespace torii::agent
