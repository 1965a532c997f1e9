#pragma once
// Process-wide logging: one line per event on stderr, plain text or JSON lines.

#include <spdlog/spdlog.h>

#include <string_view>

namespace wsgate {

enum class LogFormat { kText, kJson };

// Installs the stderr logger as spdlog's default. Call once, early in main().
void init_logging(LogFormat format, spdlog::level::level_enum level = spdlog::level::info);

// Escapes a string for embedding inside a JSON string literal (log messages in JSON mode).
std::string json_escape(std::string_view text);

}  // namespace wsgate
