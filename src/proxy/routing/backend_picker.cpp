#include "proxy/routing/backend_picker.hpp"

#include <algorithm>
#include <numeric>

namespace wsgate::proxy {

BackendPicker::BackendPicker(const std::vector<config::Backend>& backends)
    : current_(backends.size(), 0), by_weight_(backends.size()) {
  weights_.reserve(backends.size());
  for (const config::Backend& backend : backends) {
    weights_.push_back(backend.weight);
    total_ += backend.weight;
  }
  std::iota(by_weight_.begin(), by_weight_.end(), std::size_t{0});
  std::stable_sort(by_weight_.begin(), by_weight_.end(),
                   [this](std::size_t a, std::size_t b) { return weights_[a] > weights_[b]; });
}

std::vector<std::size_t> BackendPicker::next_order() {
  if (weights_.empty()) return {};
  std::size_t chosen = 0;
  {
    // nginx ngx_http_upstream_get_peer(): every peer gains its weight, the highest current
    // wins (the first one on ties) and pays back the total. Spreads picks evenly in time.
    std::lock_guard<std::mutex> lock(mutex_);
    for (std::size_t i = 0; i < weights_.size(); ++i) {
      current_[i] += weights_[i];
      if (current_[i] > current_[chosen]) chosen = i;
    }
    current_[chosen] -= total_;
  }
  std::vector<std::size_t> order;
  order.reserve(weights_.size());
  order.push_back(chosen);
  for (std::size_t index : by_weight_) {
    if (index != chosen) order.push_back(index);
  }
  return order;
}

}  // namespace wsgate::proxy
