#pragma once
// Burst debouncing for file-change events: wait for a quiet holdoff, capped by a maximum delay
// after the burst's first event, stretched (boundedly) while a route file is still being written.

#include <chrono>

namespace wsgate::source {

class Debouncer {
 public:
  using Clock = std::chrono::steady_clock;

  // open_writer_grace: how much longer than max_delay a burst may wait while a file it touched
  // is still open for writing, so that a slow "truncate, then write" is not read half-way.
  Debouncer(std::chrono::milliseconds holdoff, std::chrono::milliseconds max_delay,
            std::chrono::milliseconds open_writer_grace);

  void on_event(Clock::time_point now);
  bool pending() const { return pending_; }
  // When the pending burst should be evaluated; Clock::time_point::max() when none is pending.
  Clock::time_point deadline(bool writers_open) const;
  bool due(Clock::time_point now, bool writers_open) const {
    return pending_ && now >= deadline(writers_open);
  }
  // The burst is being evaluated: events from now on start the next burst.
  void clear() { pending_ = false; }

 private:
  std::chrono::milliseconds holdoff_;
  std::chrono::milliseconds max_delay_;
  std::chrono::milliseconds open_writer_grace_;
  bool pending_ = false;
  Clock::time_point first_{};
  Clock::time_point last_{};
};

}  // namespace wsgate::source
