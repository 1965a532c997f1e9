// The controller's stream protocol on a real gRPC server (127.0.0.1, port 0), driven by the
// generated client stub: versions and nonces, ACK/NACK bookkeeping, no re-push of a version a
// proxy has, stale nonces, disconnects, and mutual TLS with the controller's credentials.
#include "controlplane/discovery_service.hpp"

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "controlplane/controller.hpp"
#include "controlplane_test_util.hpp"

namespace wsgate::controlplane {
namespace {

using namespace std::chrono_literals;
using Stream =
    grpc::ClientReaderWriter<wsgate::v1::DiscoveryRequest, wsgate::v1::DiscoveryResponse>;

config::RouteTable table_with(const std::string& prefix) {
  return test::table_from(test::route(
      "r", "  pathPrefix: " + prefix + "\n  backends:\n    - address: 127.0.0.1:9001\n"));
}

// The value of the sample line starting with `series` (name plus labels), -1 when absent.
double sample(const metrics::Registry& registry, const std::string& series) {
  std::istringstream lines(registry.expose());
  std::string line;
  while (std::getline(lines, line)) {
    if (line.starts_with(series + " ")) return std::stod(line.substr(series.size() + 1));
  }
  return -1;
}

// Polls `done` every 5 ms for at most 10 s.
template <typename Predicate>
bool eventually(Predicate done) {
  for (int i = 0; i < 2000; ++i) {
    if (done()) return true;
    std::this_thread::sleep_for(5ms);
  }
  return done();
}

// One proxy's stream; every call is bounded by the context's deadline.
struct FakeProxy {
  FakeProxy(const std::shared_ptr<grpc::Channel>& channel, const std::string& node,
            const std::string& version) {
    context.set_deadline(std::chrono::system_clock::now() + 20s);
    stub = wsgate::v1::RouteDiscovery::NewStub(channel);
    stream = stub->StreamRoutes(&context);
    wsgate::v1::DiscoveryRequest request;
    request.mutable_node()->set_id(node);
    request.mutable_node()->set_address("127.0.0.1:8080");
    request.set_version_info(version);
    ok = stream->Write(request);
  }
  wsgate::v1::DiscoveryResponse read() {
    wsgate::v1::DiscoveryResponse response;
    EXPECT_TRUE(stream->Read(&response)) << "stream ended";
    return response;
  }
  void answer(const wsgate::v1::DiscoveryResponse& response, const std::string& version,
              const std::string& error = "") {
    wsgate::v1::DiscoveryRequest request;
    request.set_version_info(version);
    request.set_response_nonce(response.nonce());
    if (!error.empty()) request.mutable_error_detail()->set_message(error);
    EXPECT_TRUE(stream->Write(request));
  }
  void ack(const wsgate::v1::DiscoveryResponse& response) {
    answer(response, response.version_info());
  }

  grpc::ClientContext context;
  std::unique_ptr<wsgate::v1::RouteDiscovery::Stub> stub;
  std::unique_ptr<Stream> stream;
  bool ok = false;
};

class DiscoveryServiceTest : public ::testing::Test {
 protected:
  void start(const std::shared_ptr<grpc::ServerCredentials>& credentials) {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", credentials, &port_);
    builder.RegisterService(&service_);
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    ASSERT_NE(port_, 0);
  }
  void SetUp() override { start(grpc::InsecureServerCredentials()); }
  void TearDown() override {
    service_.shut_down();
    if (server_) server_->Shutdown(std::chrono::system_clock::now() + 2s);
  }
  std::shared_ptr<grpc::Channel> channel() {
    return grpc::CreateChannel("127.0.0.1:" + std::to_string(port_),
                               grpc::InsecureChannelCredentials());
  }
  double responses() const {
    return sample(registry_, "wsgate_controller_discovery_responses_total");
  }
  double requests(const std::string& type) const {
    return sample(registry_, "wsgate_controller_discovery_requests_total{type=\"" + type + "\"}");
  }
  ProxyStatus only_proxy() const {
    const auto proxies = service_.proxies();
    EXPECT_EQ(proxies.size(), 1u);
    return proxies.empty() ? ProxyStatus{} : proxies.front();
  }
  std::string info(const std::string& node, const std::string& version, const std::string& state) {
    return "wsgate_controller_proxy_config_info{node=\"" + node + "\",version=\"" + version +
           "\",state=\"" + state + "\"}";
  }

  metrics::Registry registry_;
  SnapshotCache cache_;
  DiscoveryService service_{cache_, registry_};
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
};

TEST_F(DiscoveryServiceTest, NewProxyGetsTheSnapshotWithVersionAndNonceThenAcks) {
  const auto a = cache_.update(table_with("/a"));
  FakeProxy proxy(channel(), "p1", "");
  ASSERT_TRUE(proxy.ok);
  const auto response = proxy.read();
  EXPECT_EQ(response.version_info(), a->version());
  EXPECT_FALSE(response.nonce().empty());
  ASSERT_EQ(response.routes().routes_size(), 1);
  EXPECT_EQ(response.routes().routes(0).path_prefix(), "/a");
  proxy.ack(response);
  ASSERT_TRUE(eventually([&] { return requests("ack") == 1; }));
  const auto status = only_proxy();
  EXPECT_EQ(status.node, "p1");
  EXPECT_EQ(status.address, "127.0.0.1:8080");
  EXPECT_EQ(status.acked_version, a->version());
  EXPECT_EQ(sample(registry_, "wsgate_controller_connected_proxies"), 1);
  EXPECT_EQ(sample(registry_, info("p1", a->version(), "acked")), 1);
  EXPECT_EQ(responses(), 1);
}

TEST_F(DiscoveryServiceTest, VersionAProxyRunsOrWasSentIsNotSentAgain) {
  const auto a = cache_.update(table_with("/a"));
  // A proxy reconnecting (say, to a restarted controller) that already runs the current version.
  FakeProxy proxy(channel(), "p1", a->version());
  ASSERT_TRUE(eventually([&] { return requests("initial") == 1; }));
  EXPECT_EQ(responses(), 0);
  EXPECT_EQ(only_proxy().acked_version, a->version());
  service_.push(a);
  EXPECT_EQ(responses(), 0);

  const auto b = cache_.update(table_with("/b"));
  service_.push(b);
  const auto response = proxy.read();
  EXPECT_EQ(response.version_info(), b->version());
  service_.push(b);  // e.g. a forced reload with unchanged content
  EXPECT_EQ(responses(), 1);
}

TEST_F(DiscoveryServiceTest, NackKeepsTheGoodVersionAndIsReported) {
  const auto a = cache_.update(table_with("/a"));
  FakeProxy proxy(channel(), "p1", "");
  proxy.ack(proxy.read());
  // Otherwise the push below could overtake this ACK, which would then be stale.
  ASSERT_TRUE(eventually([&] { return requests("ack") == 1; }));
  const auto b = cache_.update(table_with("/b"));
  service_.push(b);
  const auto response = proxy.read();
  proxy.answer(response, a->version(), "cannot load CA /x.pem");
  ASSERT_TRUE(eventually([&] { return requests("nack") == 1; }));
  const auto status = only_proxy();
  EXPECT_EQ(status.acked_version, a->version());
  EXPECT_EQ(status.nacked_version, b->version());
  EXPECT_EQ(status.last_error, "cannot load CA /x.pem");
  EXPECT_EQ(sample(registry_, info("p1", a->version(), "acked")), 1);
  EXPECT_EQ(sample(registry_, info("p1", b->version(), "nacked")), 1);
  const auto json = proxies_json(service_.proxies());
  EXPECT_NE(json.find("\"last_error\":\"cannot load CA /x.pem\""), std::string::npos) << json;
  EXPECT_NE(json.find("\"acked_version\":\"" + a->version() + "\""), std::string::npos);

  // The next version, once ACKed, clears the NACK.
  const auto c = cache_.update(table_with("/c"));
  service_.push(c);
  proxy.ack(proxy.read());
  ASSERT_TRUE(eventually([&] { return requests("ack") == 2; }));
  EXPECT_EQ(only_proxy().nacked_version, "");
  EXPECT_EQ(only_proxy().last_error, "");
  EXPECT_EQ(sample(registry_, info("p1", b->version(), "nacked")), -1);
}

TEST_F(DiscoveryServiceTest, AnswerToAnOvertakenResponseIsIgnored) {
  cache_.update(table_with("/a"));
  FakeProxy proxy(channel(), "p1", "");
  const auto first = proxy.read();
  const auto b = cache_.update(table_with("/b"));
  service_.push(b);
  const auto second = proxy.read();
  EXPECT_NE(first.nonce(), second.nonce());
  proxy.ack(first);  // late ACK of the older response
  ASSERT_TRUE(eventually([&] { return requests("stale") == 1; }));
  EXPECT_EQ(only_proxy().acked_version, "");
  proxy.ack(second);
  ASSERT_TRUE(eventually([&] { return requests("ack") == 1; }));
  EXPECT_EQ(only_proxy().acked_version, b->version());
}

TEST_F(DiscoveryServiceTest, EveryProxyGetsEachNewVersionAndDisconnectDropsItsSeries) {
  const auto a = cache_.update(table_with("/a"));
  auto p1 = std::make_unique<FakeProxy>(channel(), "p1", "");
  FakeProxy p2(channel(), "p2", "");
  p1->ack(p1->read());
  p2.ack(p2.read());
  ASSERT_TRUE(eventually([&] { return requests("ack") == 2; }));
  EXPECT_EQ(sample(registry_, "wsgate_controller_connected_proxies"), 2);

  p1->context.TryCancel();
  p1.reset();
  ASSERT_TRUE(eventually([&] { return service_.proxies().size() == 1; }));
  EXPECT_EQ(sample(registry_, "wsgate_controller_connected_proxies"), 1);
  EXPECT_EQ(sample(registry_, info("p1", a->version(), "acked")), -1);
  EXPECT_EQ(sample(registry_, info("p2", a->version(), "acked")), 1);
}

TEST_F(DiscoveryServiceTest, NoSnapshotYetMeansNoResponseUntilOneExists) {
  FakeProxy proxy(channel(), "p1", "");
  ASSERT_TRUE(eventually([&] { return requests("initial") == 1; }));
  EXPECT_EQ(responses(), 0);
  const auto a = cache_.update(table_with("/a"));
  service_.push(a);
  EXPECT_EQ(proxy.read().version_info(), a->version());
}

TEST_F(DiscoveryServiceTest, ShutDownEndsStreamsWithUnavailable) {
  cache_.update(table_with("/a"));
  FakeProxy proxy(channel(), "p1", "");
  proxy.read();
  service_.shut_down();
  wsgate::v1::DiscoveryResponse response;
  EXPECT_FALSE(proxy.stream->Read(&response));
  EXPECT_EQ(proxy.stream->Finish().error_code(), grpc::StatusCode::UNAVAILABLE);
}

// Mutual TLS: certificates made by the openssl command in a temporary directory.
class DiscoveryServiceTlsTest : public DiscoveryServiceTest {
 protected:
  void SetUp() override {
    std::string pattern = (std::filesystem::temp_directory_path() / "wsgate-cp-XXXXXX").string();
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
    const std::string d = dir_.string();
    const std::string ec = " -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
    const std::string script =
        "set -e; cd '" + d + "'; exec >openssl.log 2>&1\n" + "openssl req -x509" + ec +
        " -keyout ca.key -out ca.pem -days 2 -subj /CN=test-ca\n" +
        "for who in server client; do\n"
        "  openssl req" +
        ec +
        " -keyout $who.key -out $who.csr -subj /CN=$who\n"
        "  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\\n' > $who.ext\n"
        "  openssl x509 -req -in $who.csr -CA ca.pem -CAkey ca.key -CAcreateserial "
        "-days 2 -extfile $who.ext -out $who.pem\n"
        "done\n";
    ASSERT_EQ(std::system(("/bin/sh -c \"$(cat <<'SCRIPT'\n" + script + "SCRIPT\n)\"").c_str()), 0)
        << "openssl failed, see " << d << "/openssl.log";
    ControllerOptions options;
    options.tls_cert = d + "/server.pem";
    options.tls_key = d + "/server.key";
    options.tls_ca = d + "/ca.pem";
    start(grpc_server_credentials(options));
  }
  void TearDown() override {
    DiscoveryServiceTest::TearDown();
    std::filesystem::remove_all(dir_);
  }
  std::string read(const std::string& name) {
    std::ifstream in(dir_ / name);
    std::ostringstream text;
    text << in.rdbuf();
    return text.str();
  }
  std::shared_ptr<grpc::Channel> tls_channel(bool with_client_cert) {
    grpc::SslCredentialsOptions ssl;
    ssl.pem_root_certs = read("ca.pem");
    if (with_client_cert) {
      ssl.pem_cert_chain = read("client.pem");
      ssl.pem_private_key = read("client.key");
    }
    return grpc::CreateChannel("127.0.0.1:" + std::to_string(port_), grpc::SslCredentials(ssl));
  }
  std::filesystem::path dir_;
};

TEST_F(DiscoveryServiceTlsTest, ProxyWithAClientCertificateGetsTheSnapshot) {
  const auto a = cache_.update(table_with("/a"));
  FakeProxy proxy(tls_channel(true), "p1", "");
  ASSERT_TRUE(proxy.ok);
  EXPECT_EQ(proxy.read().version_info(), a->version());
}

TEST_F(DiscoveryServiceTlsTest, ProxyWithoutAClientCertificateIsRefused) {
  cache_.update(table_with("/a"));
  FakeProxy proxy(tls_channel(false), "p1", "");
  wsgate::v1::DiscoveryResponse response;
  EXPECT_FALSE(proxy.stream->Read(&response));
  EXPECT_EQ(proxy.stream->Finish().error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(requests("initial"), 0);
}

TEST(GrpcServerCredentials, IncompleteTlsFlagsAreRefused) {
  ControllerOptions cert_only;
  cert_only.tls_cert = "/x.pem";
  EXPECT_THROW(grpc_server_credentials(cert_only), std::runtime_error);
  ControllerOptions ca_only;
  ca_only.tls_ca = "/x.pem";
  EXPECT_THROW(grpc_server_credentials(ca_only), std::runtime_error);
  ControllerOptions missing;
  missing.tls_cert = "/nonexistent/cert.pem";
  missing.tls_key = "/nonexistent/key.pem";
  EXPECT_THROW(grpc_server_credentials(missing), std::runtime_error);
}

}  // namespace
}  // namespace wsgate::controlplane
