#include "proxy/runtime/worker.hpp"

#include <spdlog/spdlog.h>
#include <boost/asio/post.hpp>

namespace wsgate::proxy {

namespace {

// Every socket of a worker is used by the worker's thread only (others post to it), so the
// reactor's per-socket locks can go; scheduler and registration locking stay for those posts.
// About 3% of a handshake's user-space instructions (callgrind).
constexpr int kOneThreadPerSocket = BOOST_ASIO_CONCURRENCY_HINT_UNSAFE_IO;

}  // namespace

BufferPool::~BufferPool() {
  for (char* p : free_) delete[] p;
}

BufferPool::Buffer BufferPool::acquire() {
  char* p;
  if (free_.empty()) {
    p = new char[kBufferSize];
  } else {
    p = free_.back();
    free_.pop_back();
  }
  return Buffer(p, Deleter{this});
}

void BufferPool::release(char* p) {
  if (free_.size() < kMaxFree) {
    free_.push_back(p);
  } else {
    delete[] p;
  }
}

Worker::Worker(std::size_t index)
    : index_(index),
      io_(std::make_unique<asio::io_context>(kOneThreadPerSocket)),
      work_(io_->get_executor()) {}

Worker::~Worker() {
  stop();
  // Tunnels still open at exit: their sockets and timers must go before the io_context.
  while (owned_head_ != nullptr) destroy(owned_head_);
  io_.reset();
}

void Worker::adopt(SelfOwned* object) {
  object->prev_ = nullptr;
  object->next_ = owned_head_;
  if (owned_head_ != nullptr) owned_head_->prev_ = object;
  owned_head_ = object;
  ++owned_count_;
}

void Worker::destroy(SelfOwned* object) {
  if (object->prev_ != nullptr) {
    object->prev_->next_ = object->next_;
  } else {
    owned_head_ = object->next_;
  }
  if (object->next_ != nullptr) object->next_->prev_ = object->prev_;
  --owned_count_;
  delete object;
  if (draining_) report_if_drained();
}

void Worker::report_if_drained() {
  if (!on_drained_ || live_count() > 0) return;
  auto report = std::move(on_drained_);
  on_drained_ = nullptr;
  report();
}

void Worker::publish(SnapshotPtr snapshot) {
  // The lambda owns only the new snapshot: the worker swaps it in on its own thread.
  asio::post(*io_,
             [this, snapshot = std::move(snapshot)]() mutable { snapshot_ = std::move(snapshot); });
}

void Worker::start_drain(std::function<void()> on_drained) {
  asio::post(*io_, [this, on_drained = std::move(on_drained)]() mutable {
    draining_ = true;
    on_drained_ = std::move(on_drained);
    // on_drain may untrack (closing an idle connection): iterate over a copy.
    const std::vector<Drainable*> live(live_.begin(), live_.end());
    for (Drainable* d : live) {
      if (live_.count(d) != 0) d->on_drain();
    }
    // A self-owned object is never deleted from inside its on_drain.
    for (SelfOwned* o = owned_head_; o != nullptr; o = o->next_) o->on_drain();
    report_if_drained();
  });
}

void Worker::when_drained(std::function<void()> on_drained) {
  asio::post(*io_, [this, on_drained = std::move(on_drained)]() mutable {
    on_drained_ = std::move(on_drained);
    report_if_drained();
  });
}

void Worker::start() {
  thread_ = std::thread([this] {
    try {
      io_->run();
    } catch (const std::exception& e) {
      // Reaching here is a bug: handlers do not throw. Log loudly rather than vanish.
      spdlog::critical("worker {} stopped by exception: {}", index_, e.what());
      throw;
    }
  });
}

void Worker::stop() {
  work_.reset();
  if (io_) io_->stop();
  if (thread_.joinable()) thread_.join();
}

}  // namespace wsgate::proxy
