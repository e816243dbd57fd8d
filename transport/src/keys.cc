#include "edgefl/transport/keys.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>

namespace edgefl::transport {
namespace {

// Key files are one line; an allow-list file holds at most a few hundred thousand keys.
constexpr std::uintmax_t kMaxKeyFileBytes = 4 * 1024;
constexpr std::uintmax_t kMaxAllowListFileBytes = 64 * 1024 * 1024;

constexpr std::string_view kZ85Alphabet =
    "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#";

std::string ErrnoText() { return std::strerror(errno); }

Status CheckZ85Key(std::string_view z85) {
  if (z85.size() != kCurveKeyZ85Chars) {
    return InvalidArgumentError("a CURVE key is " + std::to_string(kCurveKeyZ85Chars) +
                                " Z85 characters, got " + std::to_string(z85.size()));
  }
  for (size_t i = 0; i < z85.size(); ++i) {
    if (kZ85Alphabet.find(z85[i]) == std::string_view::npos) {
      return InvalidArgumentError("character " + std::to_string(i) +
                                  " of a CURVE key is not in the Z85 alphabet");
    }
  }
  // The alphabet admits 5-character groups above 2^32; libzmq's decoder refuses those.
  std::array<uint8_t, kCurveKeyBytes> bytes{};
  const std::string text(z85);
  const bool decoded = zmq_z85_decode(bytes.data(), text.c_str()) != nullptr;
  std::fill(bytes.begin(), bytes.end(), 0);
  if (!decoded) return InvalidArgumentError("a CURVE key is not valid Z85");
  return OkStatus();
}

std::string_view Trim(std::string_view text) {
  const auto is_space = [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; };
  while (!text.empty() && is_space(text.front())) text.remove_prefix(1);
  while (!text.empty() && is_space(text.back())) text.remove_suffix(1);
  return text;
}

Result<std::string> ReadSmallFile(const std::string& path, std::uintmax_t max_bytes) {
  std::error_code error;
  const auto status = std::filesystem::status(path, error);
  if (error || !std::filesystem::exists(status)) return NotFoundError("no file " + path);
  if (!std::filesystem::is_regular_file(status)) {
    return InvalidArgumentError(path + " is not a regular file");
  }
  const std::uintmax_t size = std::filesystem::file_size(path, error);
  if (error) return UnavailableError("cannot stat " + path + ": " + error.message());
  if (size > max_bytes) {
    return InvalidArgumentError(path + " has " + std::to_string(size) + " bytes, limit " +
                                std::to_string(max_bytes));
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) return UnavailableError("cannot open " + path + ": " + ErrnoText());
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) return UnavailableError("cannot read " + path + ": " + ErrnoText());
  return text;
}

Status WriteKeyFile(const std::string& path, std::string_view line, mode_t mode, bool overwrite) {
  const int flags = O_WRONLY | O_CREAT | O_CLOEXEC | (overwrite ? O_TRUNC : O_EXCL);
  const int fd = ::open(path.c_str(), flags, mode);
  if (fd < 0) {
    if (errno == EEXIST) return AlreadyExistsError(path + " exists; refusing to overwrite it");
    return UnavailableError("cannot create " + path + ": " + ErrnoText());
  }
  // An overwritten file keeps its old mode; set ours explicitly.
  Status status;
  if (::fchmod(fd, mode) != 0) {
    status = UnavailableError("cannot chmod " + path + ": " + ErrnoText());
  }
  size_t written = 0;
  while (status.ok() && written < line.size()) {
    const ssize_t n = ::write(fd, line.data() + written, line.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      status = UnavailableError("cannot write " + path + ": " + ErrnoText());
      break;
    }
    written += static_cast<size_t>(n);
  }
  if (::close(fd) != 0 && status.ok()) {
    status = UnavailableError("cannot close " + path + ": " + ErrnoText());
  }
  return status;
}

Result<std::vector<CurvePublicKey>> ReadAllowListFile(const std::string& path) {
  EDGEFL_ASSIGN_OR_RETURN(std::string text, ReadSmallFile(path, kMaxAllowListFileBytes));
  std::vector<CurvePublicKey> keys;
  std::istringstream lines(text);
  std::string line;
  for (int line_number = 1; std::getline(lines, line); ++line_number) {
    const std::string_view trimmed = Trim(line);
    // No key is mistaken for a comment: the first character of Z85 text encodes a value
    // below 2^32 / 85^4 < 83, so it is never '#' (index 84).
    if (trimmed.empty() || trimmed.front() == '#') continue;
    Result<CurvePublicKey> key = CurvePublicKey::FromZ85(trimmed);
    if (!key.ok()) {
      return key.status().WithContext(path + " line " + std::to_string(line_number));
    }
    keys.push_back(std::move(key).value());
  }
  return keys;
}

}  // namespace

Result<CurvePublicKey> CurvePublicKey::FromZ85(std::string_view z85) {
  EDGEFL_RETURN_IF_ERROR(CheckZ85Key(z85));
  return CurvePublicKey(std::string(z85));
}

Result<CurveSecretKey> CurveSecretKey::FromZ85(std::string_view z85) {
  EDGEFL_RETURN_IF_ERROR(CheckZ85Key(z85));
  return CurveSecretKey(std::string(z85));
}

CurveSecretKey::CurveSecretKey(CurveSecretKey&& other) noexcept : z85_(std::move(other.z85_)) {
  other.Wipe();
}

CurveSecretKey& CurveSecretKey::operator=(CurveSecretKey&& other) noexcept {
  if (this != &other) {
    Wipe();
    z85_ = std::move(other.z85_);
    other.Wipe();
  }
  return *this;
}

CurveSecretKey::~CurveSecretKey() { Wipe(); }

void CurveSecretKey::Wipe() {
  // explicit_bzero is not optimised away, unlike a memset before free.
  explicit_bzero(z85_.data(), z85_.size());
  z85_.clear();
}

Result<CurvePublicKey> CurveSecretKey::DerivePublicKey() const {
  std::array<char, kCurveKeyZ85Chars + 1> public_z85{};
  if (zmq_curve_public(public_z85.data(), z85_.c_str()) != 0) {
    return InternalError(std::string("cannot derive a CURVE public key: ") +
                         zmq_strerror(zmq_errno()));
  }
  return CurvePublicKey::FromZ85(std::string_view(public_z85.data(), kCurveKeyZ85Chars));
}

Result<CurveKeyPair> GenerateCurveKeyPair() {
  std::array<char, kCurveKeyZ85Chars + 1> public_z85{};
  std::array<char, kCurveKeyZ85Chars + 1> secret_z85{};
  if (zmq_curve_keypair(public_z85.data(), secret_z85.data()) != 0) {
    return UnimplementedError(std::string("libzmq cannot make CURVE keys: ") +
                              zmq_strerror(zmq_errno()));
  }
  Result<CurvePublicKey> public_key =
      CurvePublicKey::FromZ85(std::string_view(public_z85.data(), kCurveKeyZ85Chars));
  Result<CurveSecretKey> secret_key =
      CurveSecretKey::FromZ85(std::string_view(secret_z85.data(), kCurveKeyZ85Chars));
  explicit_bzero(secret_z85.data(), secret_z85.size());
  if (!public_key.ok()) return public_key.status();
  if (!secret_key.ok()) return secret_key.status();
  return CurveKeyPair{std::move(public_key).value(), std::move(secret_key).value()};
}

Status WriteCurveKeyPair(const CurveKeyPair& pair, const std::string& prefix, bool overwrite) {
  const std::string secret_path = prefix + ".key";
  const std::string public_path = prefix + ".pub";
  if (!overwrite) {
    for (const std::string& path : {secret_path, public_path}) {
      std::error_code error;
      if (std::filesystem::exists(path, error)) {
        return AlreadyExistsError(path + " exists; refusing to overwrite it");
      }
    }
  }
  std::string secret_line(pair.secret_key.RevealZ85());
  secret_line += '\n';
  Status status = WriteKeyFile(secret_path, secret_line, 0600, overwrite);
  explicit_bzero(secret_line.data(), secret_line.size());
  EDGEFL_RETURN_IF_ERROR(status);
  return WriteKeyFile(public_path, pair.public_key.z85() + "\n", 0644, overwrite);
}

Result<CurveSecretKey> ReadCurveSecretKey(const std::string& path) {
  EDGEFL_ASSIGN_OR_RETURN(std::string text, ReadSmallFile(path, kMaxKeyFileBytes));
  struct stat info {};
  if (::stat(path.c_str(), &info) == 0 && (info.st_mode & 077) != 0) {
    spdlog::warn(
        "transport: secret key file {} is readable by group or others (mode {:o}); "
        "chmod 600 it",
        path, info.st_mode & 0777);
  }
  Result<CurveSecretKey> key = CurveSecretKey::FromZ85(Trim(text));
  explicit_bzero(text.data(), text.size());
  if (!key.ok()) return key.status().WithContext(path);
  return key;
}

Result<CurvePublicKey> ReadCurvePublicKey(const std::string& path) {
  EDGEFL_ASSIGN_OR_RETURN(std::string text, ReadSmallFile(path, kMaxKeyFileBytes));
  Result<CurvePublicKey> key = CurvePublicKey::FromZ85(Trim(text));
  if (!key.ok()) return key.status().WithContext(path);
  return key;
}

Result<std::vector<CurvePublicKey>> ReadAllowedCurveKeys(const std::string& path) {
  std::error_code error;
  const auto status = std::filesystem::status(path, error);
  if (error || !std::filesystem::exists(status)) {
    return NotFoundError("no allow-list file or directory " + path);
  }
  std::vector<CurvePublicKey> keys;
  if (std::filesystem::is_directory(status)) {
    std::vector<std::filesystem::path> files;
    for (const auto& entry : std::filesystem::directory_iterator(path, error)) {
      if (entry.is_regular_file() && entry.path().extension() == ".pub") {
        files.push_back(entry.path());
      }
    }
    if (error) return UnavailableError("cannot list " + path + ": " + error.message());
    std::sort(files.begin(), files.end());
    for (const auto& file : files) {
      EDGEFL_ASSIGN_OR_RETURN(CurvePublicKey key, ReadCurvePublicKey(file.string()));
      keys.push_back(std::move(key));
    }
  } else {
    EDGEFL_ASSIGN_OR_RETURN(keys, ReadAllowListFile(path));
  }
  if (keys.empty()) return InvalidArgumentError("the allow-list " + path + " holds no key");
  return keys;
}

}  // namespace edgefl::transport
