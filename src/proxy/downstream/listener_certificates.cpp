#include "proxy/downstream/listener_certificates.hpp"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include <cctype>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>
#include <stdexcept>

#include "proxy/core/tls_stream.hpp"

namespace wsgate::proxy {
namespace {

constexpr std::size_t kMaxPemBytes = 1 << 20;

struct BioFree {
  void operator()(BIO* bio) const { BIO_free(bio); }
};
struct X509Free {
  void operator()(X509* cert) const { X509_free(cert); }
};
struct KeyFree {
  void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
};

std::string lower(std::string_view text) {
  std::string out(text);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

bool read_small_file(const std::string& path, std::string& out, std::string& error) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    error = "cannot read " + path + ": " + std::strerror(errno);
    return false;
  }
  out.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  if (out.size() > kMaxPemBytes) {
    error = path + " is larger than 1 MiB: not a PEM file";
    return false;
  }
  return true;
}

// Never prompt on a terminal for a passphrase: an encrypted key is refused.
int no_passphrase(char*, int, int, void*) {
  return 0;
}

std::string asn1_lower(const ASN1_STRING* text) {
  return lower(std::string_view(reinterpret_cast<const char*>(ASN1_STRING_get0_data(text)),
                                static_cast<std::size_t>(ASN1_STRING_length(text))));
}

std::vector<std::string> dns_names(X509* cert) {
  std::vector<std::string> names;
  auto* sans =
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
  if (sans != nullptr) {
    for (int i = 0; i < sk_GENERAL_NAME_num(sans); ++i) {
      const GENERAL_NAME* name = sk_GENERAL_NAME_value(sans, i);
      if (name->type == GEN_DNS) names.push_back(asn1_lower(name->d.dNSName));
    }
    GENERAL_NAMES_free(sans);
    return names;
  }
  // No subjectAltName at all: the common name is the only name there is (RFC 6125 §6.4.4).
  const X509_NAME* subject = X509_get_subject_name(cert);
  const int index = X509_NAME_get_index_by_NID(subject, NID_commonName, -1);
  if (index >= 0)
    names.push_back(asn1_lower(X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, index))));
  return names;
}

std::string time_text(const ASN1_TIME* time) {
  std::unique_ptr<BIO, BioFree> bio(BIO_new(BIO_s_mem()));
  if (!bio || ASN1_TIME_print(bio.get(), time) != 1) return "?";
  char* data = nullptr;
  const long size = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<std::size_t>(size));
}

int select_alpn(SSL*, const unsigned char** out, unsigned char* out_size, const unsigned char* in,
                unsigned int in_size, void*) {
  static const unsigned char kHttp11[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
  unsigned char* chosen = nullptr;
  if (SSL_select_next_proto(&chosen, out_size, kHttp11, sizeof kHttp11, in, in_size) !=
      OPENSSL_NPN_NEGOTIATED) {
    // RFC 7301 §3.2: a client offering only other protocols (h2 alone) gets a fatal alert.
    return SSL_TLSEXT_ERR_ALERT_FATAL;
  }
  *out = chosen;
  return SSL_TLSEXT_ERR_OK;
}

int set_index() {
  static const int index = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return index;
}

int on_server_name(SSL* ssl, int*, void*) {
  const auto* set = static_cast<const CertificateSet*>(SSL_get_ex_data(ssl, set_index()));
  const char* name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
  if (set == nullptr || name == nullptr) return SSL_TLSEXT_ERR_OK;
  SSL_CTX* chosen = set->select(name).context.get();
  if (chosen != SSL_get_SSL_CTX(ssl)) SSL_set_SSL_CTX(ssl, chosen);
  return SSL_TLSEXT_ERR_OK;
}

std::shared_ptr<SSL_CTX> new_server_context(const TicketKeys& keys, std::string& error) {
  auto context = new_tls_context(TLS_server_method(), error);
  if (!context) return nullptr;
  SSL_CTX* ctx = context.get();
  // A client ending without close_notify (browsers often do) is a clean end, not an error:
  // requests and WebSocket frames delimit themselves, so nothing can be truncated unseen.
  SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE |
                               SSL_OP_IGNORE_UNEXPECTED_EOF);
  // Resumption by tickets only: the server keeps no per-session state.
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  SSL_CTX_set_tlsext_ticket_keys(ctx, const_cast<unsigned char*>(keys.data()), keys.size());
  SSL_CTX_set_alpn_select_cb(ctx, select_alpn, nullptr);
  SSL_CTX_set_tlsext_servername_callback(ctx, on_server_name);
  SSL_CTX_set_default_passwd_cb(ctx, no_passphrase);
  return context;
}

std::string names_text(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& name : names) out += (out.empty() ? "" : ", ") + name;
  return out.empty() ? std::string("none") : out;
}

}  // namespace

FileIdentity file_identity(const std::string& path) {
  struct stat st {};
  FileIdentity id;
  if (::stat(path.c_str(), &st) != 0) return id;
  id.exists = true;
  id.device = st.st_dev;
  id.inode = st.st_ino;
  id.size = st.st_size;
  id.mtime_ns = static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
  id.ctime_ns = static_cast<std::int64_t>(st.st_ctim.tv_sec) * 1000000000 + st.st_ctim.tv_nsec;
  return id;
}

bool certificate_name_matches(std::string_view pattern, std::string_view host) {
  if (!host.empty() && host.back() == '.') host.remove_suffix(1);
  if (pattern.empty() || host.empty()) return false;
  const auto equal = [](std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i) {
      if (std::tolower(static_cast<unsigned char>(a[i])) !=
          std::tolower(static_cast<unsigned char>(b[i])))
        return false;
    }
    return true;
  };
  if (!pattern.starts_with("*.")) return equal(pattern, host);
  const std::string_view suffix = pattern.substr(1);  // ".example.com"
  if (host.size() <= suffix.size()) return false;
  const std::string_view label = host.substr(0, host.size() - suffix.size());
  return label.find('.') == std::string_view::npos &&
         equal(host.substr(host.size() - suffix.size()), suffix);
}

std::shared_ptr<const CertificateEntry> load_certificate_pair(const CertFiles& files,
                                                              const TicketKeys& keys,
                                                              std::string& error) {
  auto entry = std::make_shared<CertificateEntry>();
  entry->files = files;
  entry->cert_identity = file_identity(files.cert_file);
  entry->key_identity = file_identity(files.key_file);
  std::string cert_pem;
  std::string key_pem;
  if (!read_small_file(files.cert_file, cert_pem, error)) return nullptr;
  if (!read_small_file(files.key_file, key_pem, error)) return nullptr;

  entry->context = new_server_context(keys, error);
  if (!entry->context) return nullptr;
  SSL_CTX* ctx = entry->context.get();
  ERR_clear_error();

  std::unique_ptr<BIO, BioFree> cert_bio(
      BIO_new_mem_buf(cert_pem.data(), static_cast<int>(cert_pem.size())));
  std::unique_ptr<X509, X509Free> leaf(
      PEM_read_bio_X509(cert_bio.get(), nullptr, no_passphrase, nullptr));
  if (!leaf) {
    error = "no PEM certificate in " + files.cert_file + ": " + openssl_error_text();
    return nullptr;
  }
  if (SSL_CTX_use_certificate(ctx, leaf.get()) != 1) {
    error = "certificate " + files.cert_file + " refused: " + openssl_error_text();
    return nullptr;
  }
  // The rest of the file is the chain, sent after the leaf.
  while (X509* extra = PEM_read_bio_X509(cert_bio.get(), nullptr, no_passphrase, nullptr)) {
    if (SSL_CTX_add0_chain_cert(ctx, extra) != 1) {
      X509_free(extra);
      error = "chain certificate in " + files.cert_file + " refused: " + openssl_error_text();
      return nullptr;
    }
  }
  const unsigned long end = ERR_peek_last_error();
  if (ERR_GET_LIB(end) == ERR_LIB_PEM && ERR_GET_REASON(end) == PEM_R_NO_START_LINE) {
    ERR_clear_error();  // the normal end of the chain
  } else if (end != 0) {
    error = "broken chain certificate in " + files.cert_file + ": " + openssl_error_text();
    return nullptr;
  }

  std::unique_ptr<BIO, BioFree> key_bio(
      BIO_new_mem_buf(key_pem.data(), static_cast<int>(key_pem.size())));
  std::unique_ptr<EVP_PKEY, KeyFree> key(
      PEM_read_bio_PrivateKey(key_bio.get(), nullptr, no_passphrase, nullptr));
  if (!key) {
    error = "no usable PEM private key in " + files.key_file +
            " (encrypted keys are not supported): " + openssl_error_text();
    return nullptr;
  }
  if (SSL_CTX_use_PrivateKey(ctx, key.get()) != 1 || SSL_CTX_check_private_key(ctx) != 1) {
    error = "private key " + files.key_file + " does not match certificate " + files.cert_file +
            ": " + openssl_error_text();
    return nullptr;
  }
  entry->names = dns_names(leaf.get());
  entry->not_after = time_text(X509_get0_notAfter(leaf.get()));
  return entry;
}

const CertificateEntry& CertificateSet::select(std::string_view server_name) const {
  for (const auto& entry : entries_) {
    for (const auto& name : entry->names) {
      if (!name.starts_with("*.") && certificate_name_matches(name, server_name)) return *entry;
    }
  }
  for (const auto& entry : entries_) {
    for (const auto& name : entry->names) {
      if (name.starts_with("*.") && certificate_name_matches(name, server_name)) return *entry;
    }
  }
  return *entries_.front();
}

void CertificateSet::attach(SSL* ssl) const {
  SSL_set_ex_data(ssl, set_index(), const_cast<CertificateSet*>(this));
}

void CertificateSet::detach(SSL* ssl) {
  SSL_set_ex_data(ssl, set_index(), nullptr);
}

ServerTls::ServerTls(std::vector<CertFiles> pairs)
    : pairs_(std::move(pairs)), refused_(pairs_.size()) {
  if (pairs_.empty()) throw std::runtime_error("TLS needs at least one --tls-cert/--tls-key pair");
  if (RAND_bytes(ticket_keys_.data(), static_cast<int>(ticket_keys_.size())) != 1) {
    throw std::runtime_error("cannot make TLS session ticket keys: " + openssl_error_text());
  }
  CertificateSet::Entries entries;
  for (const auto& files : pairs_) {
    std::string error;
    auto entry = load_certificate_pair(files, ticket_keys_, error);
    if (!entry) throw std::runtime_error("TLS certificate pair refused: " + error);
    spdlog::info("TLS certificate {} loaded: names [{}], valid until {}", files.cert_file,
                 names_text(entry->names), entry->not_after);
    entries.push_back(std::move(entry));
  }
  current_ = std::make_shared<const CertificateSet>(std::move(entries));
}

ServerTls::~ServerTls() {
  stop_watching();
}

std::shared_ptr<const CertificateSet> ServerTls::current() const {
  std::lock_guard lock(current_mutex_);
  return current_;
}

std::size_t ServerTls::reload_changed() {
  std::lock_guard reload_lock(reload_mutex_);
  const auto set = current();
  CertificateSet::Entries next = set->entries();
  std::vector<std::size_t> reloaded;
  for (std::size_t i = 0; i < pairs_.size(); ++i) {
    const CertFiles& files = pairs_[i];
    const auto versions =
        std::make_pair(file_identity(files.cert_file), file_identity(files.key_file));
    if (versions.first == next[i]->cert_identity && versions.second == next[i]->key_identity)
      continue;
    if (refused_[i] == versions) continue;
    std::string error;
    auto entry = load_certificate_pair(files, ticket_keys_, error);
    if (file_identity(files.cert_file) != versions.first ||
        file_identity(files.key_file) != versions.second) {
      continue;  // still being written: read it again on the next check
    }
    if (!entry) {
      refused_[i] = versions;
      spdlog::error("TLS certificate pair {} / {} refused, the previous one keeps serving: {}",
                    files.cert_file, files.key_file, error);
      continue;
    }
    refused_[i].reset();
    next[i] = std::move(entry);
    reloaded.push_back(i);
  }
  if (reloaded.empty()) return 0;
  auto updated = std::make_shared<const CertificateSet>(std::move(next));
  {
    std::lock_guard lock(current_mutex_);
    current_ = updated;
  }
  // Logged once in force: a handshake that starts after this line gets the new pair.
  for (const std::size_t i : reloaded) {
    const CertificateEntry& entry = *updated->entries()[i];
    spdlog::info("TLS certificate {} reloaded: names [{}], valid until {}", entry.files.cert_file,
                 names_text(entry.names), entry.not_after);
  }
  return reloaded.size();
}

void ServerTls::start_watching(std::chrono::milliseconds interval) {
  stop_watching();
  {
    std::lock_guard lock(watch_mutex_);
    watch_stop_ = false;
  }
  watcher_ = std::thread([this, interval] {
    std::unique_lock lock(watch_mutex_);
    while (!watch_wake_.wait_for(lock, interval, [this] { return watch_stop_; })) {
      lock.unlock();
      reload_changed();
      lock.lock();
    }
  });
}

void ServerTls::stop_watching() {
  {
    std::lock_guard lock(watch_mutex_);
    watch_stop_ = true;
  }
  watch_wake_.notify_all();
  if (watcher_.joinable()) watcher_.join();
}

}  // namespace wsgate::proxy
