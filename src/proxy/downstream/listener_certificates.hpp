#pragma once
// Certificates of the TLS listeners: one server context per cert/key pair, the pair chosen by
// SNI, files re-read when they change (a Kubernetes Secret's ..data swap included) while the
// last good pair keeps serving when a new one is broken.

#include <openssl/ssl.h>

#include <array>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

namespace wsgate::proxy {

struct CertFiles {
  std::string cert_file;  // PEM: the certificate, then its chain
  std::string key_file;   // PEM: the unencrypted private key
};

// A file's version without reading it (stat, following symlinks): any field changing — a new
// inode after a rename or a ..data symlink swap, a write — means "read it again".
struct FileIdentity {
  bool exists = false;
  std::uint64_t device = 0;
  std::uint64_t inode = 0;
  std::int64_t size = 0;
  std::int64_t mtime_ns = 0;
  std::int64_t ctime_ns = 0;
  bool operator==(const FileIdentity&) const = default;
};
FileIdentity file_identity(const std::string& path);

// Does `host` (an SNI name) match the certificate name `pattern`? Exact, or "*.suffix" standing
// for exactly one leftmost label. Case-insensitive; a trailing dot on `host` is ignored.
bool certificate_name_matches(std::string_view pattern, std::string_view host);

// Session ticket keys (name, HMAC and AES keys): the same on every context of the process, so a
// ticket stays valid across SNI choices and certificate rotations.
using TicketKeys = std::array<unsigned char, 80>;

// One loaded pair and its server context.
struct CertificateEntry {
  CertFiles files;
  FileIdentity cert_identity;  // as stat'ed right before reading
  FileIdentity key_identity;
  std::shared_ptr<SSL_CTX> context;
  std::vector<std::string> names;  // DNS names (subjectAltName, else the CN), lower case
  std::string not_after;
};

// Reads and checks a pair (parseable PEM, key matches certificate) into a new server context:
// TLS 1.2 minimum, OpenSSL's default ciphers, ALPN http/1.1, tickets, no renegotiation. Null
// with `error` naming the file and the cause.
std::shared_ptr<const CertificateEntry> load_certificate_pair(const CertFiles& files,
                                                              const TicketKeys& keys,
                                                              std::string& error);

// The pairs in force, immutable; a handshake pins the set it started with.
class CertificateSet {
 public:
  using Entries = std::vector<std::shared_ptr<const CertificateEntry>>;
  explicit CertificateSet(Entries entries) : entries_(std::move(entries)) {}

  // The first pair with an exact name, else the first with a matching wildcard, else (no SNI,
  // unknown name) the first pair.
  const CertificateEntry& select(std::string_view server_name) const;
  SSL_CTX* default_context() const { return entries_.front()->context.get(); }
  const Entries& entries() const { return entries_; }

  // Makes the SNI callback of `ssl` choose from this set; the set must stay alive until the
  // handshake is over, then detach().
  void attach(SSL* ssl) const;
  static void detach(SSL* ssl);

 private:
  Entries entries_;
};

class ServerTls {
 public:
  // Loads every pair; throws std::runtime_error naming the file and the cause if one is bad.
  explicit ServerTls(std::vector<CertFiles> pairs);
  ~ServerTls();
  ServerTls(const ServerTls&) = delete;
  ServerTls& operator=(const ServerTls&) = delete;

  std::shared_ptr<const CertificateSet> current() const;

  // Re-reads each pair whose files changed since it was loaded (or since a refused attempt);
  // a broken pair is logged and the old one kept. Returns how many pairs were replaced. Any
  // thread (the watcher, SIGHUP, tests).
  std::size_t reload_changed();

  // Checks the files every `interval` on a thread of its own (two stat calls per pair).
  void start_watching(std::chrono::milliseconds interval);
  void stop_watching();

 private:
  std::vector<CertFiles> pairs_;
  TicketKeys ticket_keys_{};
  mutable std::mutex current_mutex_;
  std::shared_ptr<const CertificateSet> current_;

  std::mutex reload_mutex_;
  // Per pair: the file versions last refused, not retried until one of them changes.
  std::vector<std::optional<std::pair<FileIdentity, FileIdentity>>> refused_;

  std::mutex watch_mutex_;
  std::condition_variable watch_wake_;
  bool watch_stop_ = false;
  std::thread watcher_;
};

}  // namespace wsgate::proxy
