// Without libFuzzer (a GCC build), each fuzz target becomes a replay tool: it runs its
// LLVMFuzzerTestOneInput over every file named on the command line or found in a named
// directory, so the seed corpora and saved crash inputs are regression tests in every build.

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <vector>

#include <sys/resource.h>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);

namespace {

bool run_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    std::fprintf(stderr, "cannot read %s\n", path.c_str());
    return false;
  }
  const std::vector<char> bytes((std::istreambuf_iterator<char>(in)),
                                std::istreambuf_iterator<char>());
  LLVMFuzzerTestOneInput(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size());
  return true;
}

}  // namespace

int main(int argc, char** argv) {
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
  // An input that makes a parser allocate without bound must fail this test quickly, not take
  // the machine's memory (the sanitizers reserve huge address ranges, so not with them).
  const rlimit cap{4ULL << 30, 4ULL << 30};
  ::setrlimit(RLIMIT_AS, &cap);
#endif
  std::size_t runs = 0;
  bool ok = true;
  for (int i = 1; i < argc; ++i) {
    const std::filesystem::path arg(argv[i]);
    if (arg.string().starts_with("-")) continue;  // libFuzzer flags such as -runs=0
    if (std::filesystem::is_directory(arg)) {
      for (const auto& entry : std::filesystem::directory_iterator(arg)) {
        if (!entry.is_regular_file() || entry.path().filename().string().starts_with(".")) continue;
        ok = run_file(entry.path()) && ok;
        ++runs;
      }
    } else {
      ok = run_file(arg) && ok;
      ++runs;
    }
  }
  std::printf("replayed %zu inputs\n", runs);
  return ok ? 0 : 1;
}
