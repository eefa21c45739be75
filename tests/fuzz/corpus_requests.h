// The seed corpus as data: named request sequences covering every opcode
// family (valid) and the malformed shapes the decoder and the gate reject.
// gen_corpus writes them to tests/fuzz/corpus/; the replay test checks that
// the committed files are exactly these.
#ifndef KMFUSE_TESTS_FUZZ_CORPUS_REQUESTS_H_
#define KMFUSE_TESTS_FUZZ_CORPUS_REQUESTS_H_

#include <fcntl.h>
#include <sys/stat.h>

#include <string>
#include <utility>
#include <vector>

#include "tests/fuzz/request_builder.h"

namespace kmfuse::fuzz {

struct Seed {
  std::string name;      // file name without the layout suffix
  std::vector<Req> reqs;
};

namespace seeds {
using namespace kmfuse::abi;  // NOLINT

inline Req R(uint32_t opcode, uint64_t nodeid, std::string op = {}, std::string rest = {}) {
  Req r;
  r.opcode = opcode;
  r.nodeid = nodeid;
  r.op = std::move(op);
  r.rest = std::move(rest);
  return r;
}
inline std::string Read(uint64_t fh, uint64_t off, uint32_t size) {
  fuse_read_in in{};
  in.fh = fh;
  in.offset = off;
  in.size = size;
  return Bytes(in);
}
inline std::string Write(uint64_t fh, uint64_t off, uint32_t size) {
  fuse_write_in in{};
  in.fh = fh;
  in.offset = off;
  in.size = size;
  return Bytes(in);
}
inline std::string CreateIn(uint32_t flags, uint32_t mode) {
  fuse_create_in in{};
  in.flags = flags;
  in.mode = mode;
  return Bytes(in);
}
inline std::string Release(uint64_t fh) {
  fuse_release_in in{};
  in.fh = fh;
  return Bytes(in);
}
inline std::string U64(uint64_t v) { return Bytes(v); }
inline std::string U32Pair(uint32_t a, uint32_t b) { return Bytes(a) + Bytes(b); }

}  // namespace seeds

// In a fresh MemFs the first node made is id 2, then 3, ...; file handles
// count from 1.
std::vector<Seed> CorpusSeeds();

}  // namespace kmfuse::fuzz

#endif  // KMFUSE_TESTS_FUZZ_CORPUS_REQUESTS_H_
