#include "common/backoff.hpp"

#include <algorithm>

namespace wsgate {

Backoff::Backoff(std::chrono::milliseconds initial, std::chrono::milliseconds max)
    : initial_(initial), max_(max), current_(initial), rng_(std::random_device{}()) {}

std::chrono::milliseconds Backoff::next() {
  const auto low = std::max<std::int64_t>(1, initial_.count() / 2);
  const auto high = std::max<std::int64_t>(low, current_.count());
  std::uniform_int_distribution<std::int64_t> dist(low, high);
  const auto delay = std::chrono::milliseconds(dist(rng_));
  current_ = std::min(max_, current_ * 2);
  return delay;
}

void Backoff::reset() {
  current_ = initial_;
}

}  // namespace wsgate
