#pragma once
// One worker = one io_context on one thread. Every socket of a connection lives on a single
// worker, so per-connection state needs no locks; the worker keeps its own pointer to the
// current snapshot (published by posting, never by sharing a mutable pointer).

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>

#include <atomic>
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <thread>
#include <unordered_set>
#include <vector>

#include "proxy/routing/snapshot.hpp"

namespace wsgate::proxy {

namespace asio = boost::asio;

// Something the drain must tell to go: idle keep-alive connections and tunnels.
class Drainable {
 public:
  virtual ~Drainable() = default;
  virtual void on_drain() = 0;
};

// Something that owns itself once started (a tunnel after its HTTP session handed it the
// sockets): the worker lists it, so that a drain reaches it and a worker destroyed with some
// still open deletes them while the io_context their sockets use still exists. Listed
// intrusively: an idle tunnel pays two pointers, not a hash-set node.
class SelfOwned : public Drainable {
 private:
  friend class Worker;
  SelfOwned* prev_ = nullptr;
  SelfOwned* next_ = nullptr;
};

// Fixed-size I/O buffers recycled per worker: a tunnel takes one only while bytes are in
// flight, so an idle tunnel holds none.
class BufferPool {
 public:
  static constexpr std::size_t kBufferSize = 64 * 1024;
  static constexpr std::size_t kMaxFree = 64;

  struct Deleter {
    BufferPool* pool;
    void operator()(char* p) const { pool->release(p); }
  };
  using Buffer = std::unique_ptr<char[], Deleter>;

  BufferPool() = default;
  BufferPool(const BufferPool&) = delete;
  BufferPool& operator=(const BufferPool&) = delete;
  ~BufferPool();

  Buffer acquire();

 private:
  void release(char* p);
  std::vector<char*> free_;
};

class Worker {
 public:
  explicit Worker(std::size_t index);
  ~Worker();

  std::size_t index() const { return index_; }
  asio::io_context& io() { return *io_; }
  BufferPool& buffers() { return buffers_; }

  // Worker thread only.
  const SnapshotPtr& snapshot() const { return snapshot_; }
  bool draining() const { return draining_; }
  void track(Drainable* d) { live_.insert(d); }
  void untrack(Drainable* d) {
    live_.erase(d);
    if (draining_) report_if_drained();
  }
  std::size_t live_count() const { return live_.size() + owned_count_; }
  // Lists a started self-owned object; destroy() unlinks and deletes it (its last act).
  void adopt(SelfOwned* object);
  void destroy(SelfOwned* object);

  // Any thread.
  void publish(SnapshotPtr snapshot);
  // Tells every live connection to go; `on_drained` is called once, on the worker's thread,
  // when none is left (at once if none is open).
  void start_drain(std::function<void()> on_drained);
  // During a drain: `on_drained` is called once, on the worker's thread, when no connection is
  // left (at once if none is open). For the connections accepted after a first report, until
  // the listeners closed.
  void when_drained(std::function<void()> on_drained);
  void start();
  void stop();

 private:
  void report_if_drained();

  std::size_t index_;
  // Owned by pointer so the destructor can destroy it (and the coroutine frames it still
  // holds, whose destructors untrack and release buffers) before the members below go.
  std::unique_ptr<asio::io_context> io_;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work_;
  std::thread thread_;
  BufferPool buffers_;
  SnapshotPtr snapshot_;
  bool draining_ = false;
  std::function<void()> on_drained_;
  std::unordered_set<Drainable*> live_;
  SelfOwned* owned_head_ = nullptr;
  std::size_t owned_count_ = 0;
};

}  // namespace wsgate::proxy
