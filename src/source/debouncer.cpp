#include "source/debouncer.hpp"

#include <algorithm>

namespace wsgate::source {

Debouncer::Debouncer(std::chrono::milliseconds holdoff, std::chrono::milliseconds max_delay,
                     std::chrono::milliseconds open_writer_grace)
    : holdoff_(std::max(holdoff, std::chrono::milliseconds(0))),
      // A max_delay below the holdoff would make the holdoff meaningless; take the larger.
      max_delay_(std::max(max_delay, holdoff_)),
      open_writer_grace_(std::max(open_writer_grace, std::chrono::milliseconds(0))) {}

void Debouncer::on_event(Clock::time_point now) {
  if (!pending_) {
    pending_ = true;
    first_ = now;
    last_ = now;
    return;
  }
  last_ = std::max(last_, now);
}

Debouncer::Clock::time_point Debouncer::deadline(bool writers_open) const {
  if (!pending_) return Clock::time_point::max();
  // While a writer is mid-file, its closing event ends the wait; the grace only bounds it.
  if (writers_open) return first_ + max_delay_ + open_writer_grace_;
  return std::min(last_ + holdoff_, first_ + max_delay_);
}

}  // namespace wsgate::source
