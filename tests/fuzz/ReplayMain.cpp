// SPDX-License-Identifier: MIT
// A stand-in for libFuzzer's main where its engine is not linked (the normal g++ build, and
// any build without libclang-rt): runs every file given (files or directories), then, with
// -runs=N or -max_total_time=S, deterministic mutations of them (seeded by -seed=S, default 1)
// with tokens from -dict=FILE. Takes libFuzzer's flag syntax and ignores the flags it lacks.
// On a crash the input is written to <-artifact_prefix>crash-<run> before the process dies.
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);
extern "C" void __sanitizer_set_death_callback(void (*callback)()) __attribute__((weak));

namespace {

std::string gArtifact; // path the current input is written to when we die
const std::string* gCurrent = nullptr;

void saveCurrent() {
  if (gCurrent == nullptr || gArtifact.empty()) {
    return;
  }
  // Only async-signal-safe calls: this also runs from a signal handler.
  int fd = ::open(gArtifact.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd >= 0) {
    ssize_t n = ::write(fd, gCurrent->data(), gCurrent->size());
    (void)n;
    ::close(fd);
    const char msg[] = "replay: crashing input written to the artifact path\n";
    n = ::write(2, msg, sizeof msg - 1);
  }
  gCurrent = nullptr;
}

void onSignal(int sig) {
  saveCurrent();
  ::signal(sig, SIG_DFL);
  ::raise(sig);
}

struct Rng { // xorshift64*: the same runs on every machine for a given seed
  uint64_t s;
  uint64_t next() {
    s ^= s >> 12;
    s ^= s << 25;
    s ^= s >> 27;
    return s * 0x2545F4914F6CDD1DULL;
  }
  size_t below(size_t n) { return n == 0 ? 0 : static_cast<size_t>(next() % n); }
};

std::string readFile(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// libFuzzer/AFL dictionary lines: name="value" or "value", with \xNN, \\ and \" escapes.
std::vector<std::string> readDict(const std::string& path) {
  std::vector<std::string> out;
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);) {
    size_t q = line.find('"');
    if (line.empty() || line[0] == '#' || q == std::string::npos) {
      continue;
    }
    std::string token;
    for (size_t i = q + 1; i < line.size() && line[i] != '"'; ++i) {
      if (line[i] == '\\' && i + 1 < line.size()) {
        if (line[i + 1] == 'x' && i + 3 < line.size()) {
          token.push_back(static_cast<char>(std::stoi(line.substr(i + 2, 2), nullptr, 16)));
          i += 3;
        } else {
          token.push_back(line[++i]);
        }
      } else {
        token.push_back(line[i]);
      }
    }
    out.push_back(token);
  }
  return out;
}

std::string mutate(std::string s, const std::vector<std::string>& corpus,
                   const std::vector<std::string>& dict, Rng& rng) {
  size_t rounds = 1 + rng.below(4);
  for (size_t r = 0; r < rounds; ++r) {
    size_t at = rng.below(s.size() + 1);
    switch (rng.below(7)) {
    case 0: // flip a bit
      if (!s.empty()) {
        s[rng.below(s.size())] ^= static_cast<char>(1u << rng.below(8));
      }
      break;
    case 1: // set a byte, biased to the bytes parsers care about
      if (!s.empty()) {
        static const char kInteresting[] = "\r\n :/?&=%-+0123456789\"{}[],\x00\xff";
        s[rng.below(s.size())] = rng.below(2) ? static_cast<char>(rng.next())
                                              : kInteresting[rng.below(sizeof kInteresting - 1)];
      }
      break;
    case 2: // insert a random byte
      s.insert(at, 1, static_cast<char>(rng.next()));
      break;
    case 3: // erase a run
      if (!s.empty()) {
        size_t from = rng.below(s.size());
        s.erase(from, 1 + rng.below(std::min<size_t>(16, s.size() - from)));
      }
      break;
    case 4: // duplicate a run
      if (!s.empty()) {
        size_t from = rng.below(s.size());
        std::string run = s.substr(from, 1 + rng.below(32));
        s.insert(at, run);
      }
      break;
    case 5: // splice in part of another input
      if (!corpus.empty()) {
        const std::string& o = corpus[rng.below(corpus.size())];
        size_t from = rng.below(o.size() + 1);
        s.insert(at, o.substr(from, rng.below(o.size() - from + 1)));
      }
      break;
    default: // insert a dictionary token
      if (!dict.empty()) {
        s.insert(at, dict[rng.below(dict.size())]);
      }
      break;
    }
  }
  if (s.size() > 64 * 1024) {
    s.resize(64 * 1024);
  }
  return s;
}

void runOne(const std::string& input) {
  gCurrent = &input;
  LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(input.data()), input.size());
  gCurrent = nullptr;
}

} // namespace

int main(int argc, char** argv) {
  long runs = 0;
  long seconds = 0;
  uint64_t seed = 1;
  std::string prefix = "./";
  std::vector<std::string> dict;
  std::vector<std::filesystem::path> inputs;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto flag = [&](const char* name) { return a.rfind(std::string("-") + name + "=", 0) == 0; };
    auto value = [&] { return a.substr(a.find('=') + 1); };
    if (flag("runs")) {
      runs = std::stol(value());
    } else if (flag("max_total_time")) {
      seconds = std::stol(value());
    } else if (flag("seed")) {
      seed = std::stoull(value());
    } else if (flag("dict")) {
      dict = readDict(value());
    } else if (flag("artifact_prefix")) {
      prefix = value();
    } else if (a.starts_with("-")) {
      continue; // a libFuzzer flag this driver does not have
    } else {
      inputs.emplace_back(a);
    }
  }
  for (int sig : {SIGABRT, SIGSEGV, SIGBUS, SIGFPE, SIGILL}) {
    ::signal(sig, onSignal);
  }
  std::set_terminate([] {
    saveCurrent();
    std::abort();
  });
  if (__sanitizer_set_death_callback != nullptr) {
    __sanitizer_set_death_callback(saveCurrent);
  }

  std::vector<std::string> corpus;
  for (const auto& p : inputs) {
    std::vector<std::filesystem::path> files;
    if (std::filesystem::is_directory(p)) {
      for (const auto& e : std::filesystem::directory_iterator(p)) {
        if (e.is_regular_file()) {
          files.push_back(e.path());
        }
      }
      std::sort(files.begin(), files.end());
    } else {
      files.push_back(p);
    }
    for (const auto& f : files) {
      corpus.push_back(readFile(f));
      gArtifact = prefix + "crash-" + f.filename().string();
      runOne(corpus.back());
    }
  }
  std::printf("replay: %zu inputs ran clean\n", corpus.size());
  if (corpus.empty()) {
    corpus.emplace_back();
  }

  Rng rng{seed == 0 ? 1 : seed};
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  long done = 0;
  for (; (runs > 0 && done < runs) ||
         (runs == 0 && seconds > 0 && std::chrono::steady_clock::now() < deadline);
       ++done) {
    std::string input = mutate(corpus[rng.below(corpus.size())], corpus, dict, rng);
    gArtifact = prefix + "crash-seed" + std::to_string(seed) + "-run" + std::to_string(done);
    runOne(input);
    if (rng.below(64) == 0 && corpus.size() < 4096) {
      corpus.push_back(std::move(input)); // let mutations build on mutations
    }
  }
  std::printf("replay: %ld mutated inputs ran clean (seed %llu)\n", done,
              static_cast<unsigned long long>(seed));
  return 0;
}
