#include "proxy/downstream/listener_certificates.hpp"

#include <gtest/gtest.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <stdlib.h>
#include <boost/asio/ssl/error.hpp>

#include <filesystem>
#include <fstream>
#include <thread>

#include "proxy/downstream/tls_accept.hpp"

namespace wsgate::proxy {
namespace {

namespace fs = std::filesystem;

struct Pem {
  std::string cert;
  std::string key;
};

std::string bio_text(BIO* bio) {
  char* data = nullptr;
  const long size = BIO_get_mem_data(bio, &data);
  return std::string(data, static_cast<std::size_t>(size));
}

// A self-signed P-256 certificate with these subjectAltNames (none: only a CN).
Pem make_certificate(const std::vector<std::string>& names, const std::string& cn = "wsgate test") {
  EVP_PKEY* key = EVP_EC_gen("P-256");
  X509* cert = X509_new();
  X509_set_version(cert, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(cert), 1);
  X509_gmtime_adj(X509_getm_notBefore(cert), -60);
  X509_gmtime_adj(X509_getm_notAfter(cert), 3600);
  X509_set_pubkey(cert, key);
  X509_NAME* subject = X509_get_subject_name(cert);
  X509_NAME_add_entry_by_txt(subject, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
  X509_set_issuer_name(cert, subject);
  if (!names.empty()) {
    std::string san;
    for (const auto& name : names) {
      // "IP:..." as is, anything else a DNS name.
      const std::string entry = name.starts_with("IP:") ? name : "DNS:" + name;
      san += (san.empty() ? "" : ",") + entry;
    }
    X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, nullptr, NID_subject_alt_name, san.c_str());
    X509_add_ext(cert, ext, -1);
    X509_EXTENSION_free(ext);
  }
  X509_sign(cert, key, EVP_sha256());
  BIO* cert_bio = BIO_new(BIO_s_mem());
  BIO* key_bio = BIO_new(BIO_s_mem());
  PEM_write_bio_X509(cert_bio, cert);
  PEM_write_bio_PrivateKey(key_bio, key, nullptr, nullptr, 0, nullptr, nullptr);
  Pem pem{bio_text(cert_bio), bio_text(key_bio)};
  BIO_free(cert_bio);
  BIO_free(key_bio);
  X509_free(cert);
  EVP_PKEY_free(key);
  return pem;
}

class TempDir {
 public:
  TempDir() {
    std::string pattern = (fs::temp_directory_path() / "wsgate-tls-XXXXXX").string();
    path_ = ::mkdtemp(pattern.data());
  }
  ~TempDir() { fs::remove_all(path_); }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

// Written to a temporary name, then renamed into place (as kubelet and editors do).
void write_file(const fs::path& path, const std::string& text) {
  const fs::path temp = path.string() + ".tmp";
  std::ofstream(temp, std::ios::binary) << text;
  fs::rename(temp, path);
}

CertFiles write_pair(const fs::path& dir, const std::string& stem, const Pem& pem) {
  CertFiles files{(dir / (stem + ".crt")).string(), (dir / (stem + ".key")).string()};
  write_file(files.cert_file, pem.cert);
  write_file(files.key_file, pem.key);
  return files;
}

const TicketKeys kKeys{};

TEST(CertificateNameMatches, ExactAndSingleLabelWildcards) {
  EXPECT_TRUE(certificate_name_matches("chat.example.com", "chat.example.com"));
  EXPECT_TRUE(certificate_name_matches("chat.example.com", "Chat.Example.COM"));
  EXPECT_TRUE(certificate_name_matches("chat.example.com", "chat.example.com."));
  EXPECT_FALSE(certificate_name_matches("chat.example.com", "example.com"));
  EXPECT_TRUE(certificate_name_matches("*.example.com", "a.example.com"));
  EXPECT_FALSE(certificate_name_matches("*.example.com", "a.b.example.com"));
  EXPECT_FALSE(certificate_name_matches("*.example.com", "example.com"));
  EXPECT_FALSE(certificate_name_matches("*.example.com", ".example.com"));
  EXPECT_FALSE(certificate_name_matches("*.example.com", "aexample.com"));
  EXPECT_FALSE(certificate_name_matches("", "example.com"));
  EXPECT_FALSE(certificate_name_matches("example.com", ""));
}

TEST(LoadCertificatePair, ReadsNamesFromSubjectAltNameElseCommonName) {
  TempDir dir;
  std::string error;
  auto with_san = load_certificate_pair(
      write_pair(dir.path(), "san", make_certificate({"Chat.Example.com", "*.example.org"})), kKeys,
      error);
  ASSERT_TRUE(with_san) << error;
  EXPECT_EQ(with_san->names, (std::vector<std::string>{"chat.example.com", "*.example.org"}));
  EXPECT_FALSE(with_san->not_after.empty());
  EXPECT_TRUE(with_san->cert_identity.exists);

  auto cn_only = load_certificate_pair(
      write_pair(dir.path(), "cn", make_certificate({}, "legacy.example.com")), kKeys, error);
  ASSERT_TRUE(cn_only) << error;
  EXPECT_EQ(cn_only->names, (std::vector<std::string>{"legacy.example.com"}));

  // A subjectAltName without DNS names: the CN is not a name then.
  auto ip_only = load_certificate_pair(
      write_pair(dir.path(), "ip", make_certificate({"IP:127.0.0.1"}, "cn.example.com")), kKeys,
      error);
  ASSERT_TRUE(ip_only) << error;
  EXPECT_TRUE(ip_only->names.empty());
}

TEST(LoadCertificatePair, RefusesMissingBrokenAndMismatchedFilesNamingThem) {
  TempDir dir;
  const Pem a = make_certificate({"a.test"});
  const Pem b = make_certificate({"b.test"});
  std::string error;

  CertFiles missing{(dir.path() / "none.crt").string(), (dir.path() / "none.key").string()};
  EXPECT_FALSE(load_certificate_pair(missing, kKeys, error));
  EXPECT_NE(error.find("none.crt"), std::string::npos) << error;

  CertFiles garbage = write_pair(dir.path(), "garbage", Pem{"not a certificate\n", a.key});
  EXPECT_FALSE(load_certificate_pair(garbage, kKeys, error));
  EXPECT_NE(error.find("no PEM certificate in " + garbage.cert_file), std::string::npos) << error;

  CertFiles truncated =
      write_pair(dir.path(), "truncated", Pem{a.cert.substr(0, a.cert.size() / 2), a.key});
  EXPECT_FALSE(load_certificate_pair(truncated, kKeys, error));
  EXPECT_NE(error.find(truncated.cert_file), std::string::npos) << error;

  CertFiles mismatched = write_pair(dir.path(), "mismatched", Pem{a.cert, b.key});
  EXPECT_FALSE(load_certificate_pair(mismatched, kKeys, error));
  EXPECT_NE(error.find("does not match"), std::string::npos) << error;

  CertFiles no_key = write_pair(dir.path(), "nokey", Pem{a.cert, "-----BEGIN PRIVATE KEY-----\n"});
  EXPECT_FALSE(load_certificate_pair(no_key, kKeys, error));
  EXPECT_NE(error.find(no_key.key_file), std::string::npos) << error;
}

TEST(CertificateSet, ExactBeforeWildcardThenFirstPairAsDefault) {
  TempDir dir;
  std::string error;
  auto first = load_certificate_pair(
      write_pair(dir.path(), "first", make_certificate({"one.test"})), kKeys, error);
  auto wildcard = load_certificate_pair(
      write_pair(dir.path(), "wild", make_certificate({"*.example.com"})), kKeys, error);
  auto exact = load_certificate_pair(
      write_pair(dir.path(), "exact", make_certificate({"chat.example.com"})), kKeys, error);
  ASSERT_TRUE(first && wildcard && exact) << error;
  const CertificateSet set({first, wildcard, exact});

  EXPECT_EQ(&set.select("chat.example.com"), exact.get());  // exact wins over an earlier wildcard
  EXPECT_EQ(&set.select("CHAT.example.com."), exact.get());
  EXPECT_EQ(&set.select("other.example.com"), wildcard.get());
  EXPECT_EQ(&set.select("one.test"), first.get());
  EXPECT_EQ(&set.select("unknown.test"), first.get());
  EXPECT_EQ(&set.select(""), first.get());
  EXPECT_EQ(set.default_context(), first->context.get());
}

TEST(ServerTls, RefusesABadPairAtStart) {
  TempDir dir;
  const CertFiles broken = write_pair(dir.path(), "bad", Pem{"garbage\n", "garbage\n"});
  try {
    ServerTls tls({broken});
    FAIL() << "a broken pair was accepted";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find(broken.cert_file), std::string::npos) << e.what();
  }
}

TEST(ServerTls, ReloadsChangedPairsAndKeepsTheOldOneWhenTheNewIsBroken) {
  TempDir dir;
  const Pem old_pem = make_certificate({"old.test"});
  const CertFiles files = write_pair(dir.path(), "site", old_pem);
  const CertFiles other = write_pair(dir.path(), "other", make_certificate({"other.test"}));
  ServerTls tls({files, other});
  const auto before = tls.current();
  EXPECT_EQ(tls.reload_changed(), 0u);  // nothing changed
  EXPECT_EQ(tls.current(), before);

  write_pair(dir.path(), "site", make_certificate({"new.test"}));
  EXPECT_EQ(tls.reload_changed(), 1u);
  const auto after = tls.current();
  EXPECT_EQ(after->entries()[0]->names, std::vector<std::string>{"new.test"});
  EXPECT_EQ(after->entries()[1], before->entries()[1]);  // the unchanged pair is reused as is
  // The pinned old set still works for the handshakes that started with it.
  EXPECT_EQ(before->entries()[0]->names, std::vector<std::string>{"old.test"});
  EXPECT_NE(SSL_CTX_get0_certificate(before->default_context()), nullptr);

  // A new certificate with the old key: refused, the previous pair stays.
  write_file(files.cert_file, make_certificate({"mismatch.test"}).cert);
  EXPECT_EQ(tls.reload_changed(), 0u);
  EXPECT_EQ(tls.current(), after);
  EXPECT_EQ(tls.reload_changed(), 0u);  // the same refused files are not read again

  // The matching key arrives: accepted.
  const Pem fixed = make_certificate({"fixed.test"});
  write_pair(dir.path(), "site", fixed);
  EXPECT_EQ(tls.reload_changed(), 1u);
  EXPECT_EQ(tls.current()->entries()[0]->names, std::vector<std::string>{"fixed.test"});

  // The files disappear: nothing to load, the last good pair serves on.
  fs::remove(files.cert_file);
  EXPECT_EQ(tls.reload_changed(), 0u);
  EXPECT_EQ(tls.current()->entries()[0]->names, std::vector<std::string>{"fixed.test"});
}

// A Kubernetes Secret volume: tls.crt -> ..data/tls.crt, ..data -> ..<timestamp>; an update
// writes a new timestamped directory and renames a new ..data symlink over the old one.
TEST(ServerTls, FollowsAKubeletDataSymlinkSwap) {
  TempDir dir;
  const auto write_version = [&](const std::string& version, const Pem& pem) {
    fs::create_directory(dir.path() / version);
    std::ofstream(dir.path() / version / "tls.crt") << pem.cert;
    std::ofstream(dir.path() / version / "tls.key") << pem.key;
    fs::create_directory_symlink(version, dir.path() / "..data_tmp");
    fs::rename(dir.path() / "..data_tmp", dir.path() / "..data");
  };
  write_version("..2024_01", make_certificate({"v1.test"}));
  fs::create_symlink("..data/tls.crt", dir.path() / "tls.crt");
  fs::create_symlink("..data/tls.key", dir.path() / "tls.key");
  ServerTls tls({CertFiles{(dir.path() / "tls.crt").string(), (dir.path() / "tls.key").string()}});
  EXPECT_EQ(tls.current()->entries()[0]->names, std::vector<std::string>{"v1.test"});

  write_version("..2024_02", make_certificate({"v2.test"}));
  fs::remove_all(dir.path() / "..2024_01");
  EXPECT_EQ(tls.reload_changed(), 1u);
  EXPECT_EQ(tls.current()->entries()[0]->names, std::vector<std::string>{"v2.test"});
}

TEST(ServerTls, WatcherPicksUpAChangeByItself) {
  TempDir dir;
  const CertFiles files = write_pair(dir.path(), "site", make_certificate({"before.test"}));
  ServerTls tls({files});
  tls.start_watching(std::chrono::milliseconds(20));
  write_pair(dir.path(), "site", make_certificate({"after.test"}));
  bool seen = false;
  for (int i = 0; i < 500 && !seen; ++i) {  // up to 5 s
    seen = tls.current()->entries()[0]->names == std::vector<std::string>{"after.test"};
    if (!seen) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  tls.stop_watching();
  EXPECT_TRUE(seen);
}

boost::system::error_code ssl_error(int reason) {
  return {static_cast<int>(ERR_PACK(ERR_LIB_SSL, 0, reason)),
          boost::asio::error::get_ssl_category()};
}

TEST(TlsHandshakeErrorReason, MapsOpenSslReasonsToTheFixedLabels) {
  EXPECT_EQ(tls_handshake_error_reason(ssl_error(SSL_R_NO_SHARED_CIPHER), false),
            "no_shared_cipher");
  EXPECT_EQ(tls_handshake_error_reason(ssl_error(SSL_R_UNSUPPORTED_PROTOCOL), false),
            "protocol_version");
  EXPECT_EQ(tls_handshake_error_reason(ssl_error(SSL_R_VERSION_TOO_LOW), false),
            "protocol_version");
  EXPECT_EQ(tls_handshake_error_reason(ssl_error(SSL_R_TLSV1_ALERT_UNKNOWN_CA), false),
            "unknown_ca");
  EXPECT_EQ(tls_handshake_error_reason(ssl_error(SSL_R_SSLV3_ALERT_BAD_CERTIFICATE), false),
            "unknown_ca");
  EXPECT_EQ(tls_handshake_error_reason(ssl_error(SSL_R_HTTP_REQUEST), false), "other");
  EXPECT_EQ(tls_handshake_error_reason(boost::asio::ssl::error::stream_truncated, false), "other");
  EXPECT_EQ(tls_handshake_error_reason(boost::asio::error::operation_aborted, true), "timeout");
  for (const auto reason : kTlsHandshakeErrorReasons) EXPECT_FALSE(reason.empty());
}

}  // namespace
}  // namespace wsgate::proxy
