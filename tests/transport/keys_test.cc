#include "edgefl/transport/keys.h"

#include <doctest/doctest.h>
#include <sys/stat.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

namespace edgefl::transport {
namespace {

// A fresh directory under the system temp dir, removed with everything in it at scope exit.
class TempDir {
 public:
  TempDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "edgefl-keys-XXXXXX");
    REQUIRE(mkdtemp(pattern.data()) != nullptr);
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  std::string operator/(const std::string& name) const { return (path_ / name).string(); }
  std::string path() const { return path_.string(); }

 private:
  std::filesystem::path path_;
};

void WriteText(const std::string& path, const std::string& text) { std::ofstream(path) << text; }

CurveKeyPair MustGenerate() {
  Result<CurveKeyPair> pair = GenerateCurveKeyPair();
  REQUIRE(pair.ok());
  return std::move(pair).value();
}

TEST_CASE("A generated key pair is written, read back, and the secret file is private") {
  TempDir dir;
  const CurveKeyPair pair = MustGenerate();
  CHECK(pair.public_key.z85().size() == kCurveKeyZ85Chars);
  REQUIRE(WriteCurveKeyPair(pair, dir / "device", /*overwrite=*/false).ok());

  struct stat info {};
  REQUIRE(::stat((dir / "device.key").c_str(), &info) == 0);
  CHECK((info.st_mode & 0777) == 0600);

  Result<CurveSecretKey> secret = ReadCurveSecretKey(dir / "device.key");
  REQUIRE(secret.ok());
  CHECK(secret->RevealZ85() == pair.secret_key.RevealZ85());
  Result<CurvePublicKey> derived = secret->DerivePublicKey();
  REQUIRE(derived.ok());
  CHECK(*derived == pair.public_key);
  Result<CurvePublicKey> public_key = ReadCurvePublicKey(dir / "device.pub");
  REQUIRE(public_key.ok());
  CHECK(*public_key == pair.public_key);
}

TEST_CASE("Key files are not overwritten unless asked") {
  TempDir dir;
  const CurveKeyPair first = MustGenerate();
  const CurveKeyPair second = MustGenerate();
  REQUIRE(WriteCurveKeyPair(first, dir / "k", false).ok());
  CHECK(WriteCurveKeyPair(second, dir / "k", false).code() == StatusCode::kAlreadyExists);
  CHECK(ReadCurvePublicKey(dir / "k.pub")->z85() == first.public_key.z85());
  REQUIRE(WriteCurveKeyPair(second, dir / "k", true).ok());
  CHECK(ReadCurvePublicKey(dir / "k.pub")->z85() == second.public_key.z85());
}

TEST_CASE("Malformed keys are refused with the file and line named") {
  TempDir dir;
  CHECK(CurvePublicKey::FromZ85("short").status().code() == StatusCode::kInvalidArgument);
  CHECK(CurvePublicKey::FromZ85(std::string(40, '"')).status().code() ==
        StatusCode::kInvalidArgument);
  // Characters of the alphabet, but a group above 2^32 - 1.
  CHECK(CurvePublicKey::FromZ85(std::string(40, '#')).status().code() ==
        StatusCode::kInvalidArgument);
  CHECK(ReadCurvePublicKey(dir / "missing.pub").status().code() == StatusCode::kNotFound);

  const CurveKeyPair pair = MustGenerate();
  WriteText(dir / "allow.txt", "# devices\n" + pair.public_key.z85() + "\n\nnot-a-key\n");
  Result<std::vector<CurvePublicKey>> keys = ReadAllowedCurveKeys(dir / "allow.txt");
  CHECK(keys.status().code() == StatusCode::kInvalidArgument);
  CHECK(keys.status().message().find("allow.txt line 4") != std::string::npos);
}

TEST_CASE("The allow-list comes from a file of keys or a directory of .pub files") {
  TempDir dir;
  const CurveKeyPair a = MustGenerate();
  const CurveKeyPair b = MustGenerate();
  WriteText(dir / "allow.txt",
            "# fleet\n" + a.public_key.z85() + "\n  " + b.public_key.z85() + "  \n");
  Result<std::vector<CurvePublicKey>> from_file = ReadAllowedCurveKeys(dir / "allow.txt");
  REQUIRE(from_file.ok());
  CHECK(*from_file == std::vector<CurvePublicKey>{a.public_key, b.public_key});

  std::filesystem::create_directory(dir / "devices");
  REQUIRE(WriteCurveKeyPair(a, dir / "devices/a", false).ok());
  REQUIRE(WriteCurveKeyPair(b, dir / "devices/b", false).ok());
  WriteText(dir / "devices/README", "ignored");
  Result<std::vector<CurvePublicKey>> from_dir = ReadAllowedCurveKeys(dir / "devices");
  REQUIRE(from_dir.ok());
  CHECK(*from_dir == std::vector<CurvePublicKey>{a.public_key, b.public_key});

  std::filesystem::create_directory(dir / "empty");
  CHECK(ReadAllowedCurveKeys(dir / "empty").status().code() == StatusCode::kInvalidArgument);
  CHECK(ReadAllowedCurveKeys(dir / "nowhere").status().code() == StatusCode::kNotFound);
}

TEST_CASE("A secret key is copied only on purpose and emptied when moved from") {
  CurveKeyPair pair = MustGenerate();
  const std::string text(pair.secret_key.RevealZ85());
  CurveSecretKey copy = pair.secret_key.Clone();
  CHECK(copy.RevealZ85() == text);
  CurveSecretKey moved = std::move(copy);
  CHECK(moved.RevealZ85() == text);
  CHECK(copy.RevealZ85().empty());  // NOLINT(bugprone-use-after-move): checks the wipe
}

}  // namespace
}  // namespace edgefl::transport
