#pragma once
// Exponential backoff with full jitter, for reconnect loops (control plane, Kubernetes watch).

#include <chrono>
#include <cstdint>
#include <random>

namespace wsgate {

class Backoff {
 public:
  Backoff(std::chrono::milliseconds initial, std::chrono::milliseconds max);

  // The next delay: uniform in [initial/2, current], then current doubles up to max.
  std::chrono::milliseconds next();
  void reset();

 private:
  std::chrono::milliseconds initial_;
  std::chrono::milliseconds max_;
  std::chrono::milliseconds current_;
  std::mt19937_64 rng_;
};

}  // namespace wsgate
