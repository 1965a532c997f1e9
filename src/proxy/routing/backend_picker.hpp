#pragma once
// Smooth weighted round-robin (as nginx's upstream module does) over a route's backends,
// returning a full try order so a failed connect falls through to the next backend.

#include <cstddef>
#include <cstdint>
#include <mutex>
#include <vector>

#include "config/route.hpp"

namespace wsgate::proxy {

class BackendPicker {
 public:
  explicit BackendPicker(const std::vector<config::Backend>& backends);

  // Index order to try: the smooth-WRR choice first, then the others in descending weight
  // (equal weights in backend order). Empty when the route has no backends.
  // Thread-safe (a short mutex: workers of one process share a route's picker).
  std::vector<std::size_t> next_order();

 private:
  std::mutex mutex_;
  std::vector<std::int64_t> weights_;
  std::vector<std::int64_t> current_;
  std::int64_t total_ = 0;
  std::vector<std::size_t> by_weight_;  // indices by descending weight, ties by index
};

}  // namespace wsgate::proxy
