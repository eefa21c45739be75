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
inline std::vector<Seed> CorpusSeeds() {
  using namespace seeds;  // NOLINT
  using namespace kmfuse::abi;  // NOLINT
  std::vector<Seed> s;

  fuse_getattr_in ga{};
  fuse_setattr_in sa{};
  sa.valid = FATTR_MODE | FATTR_SIZE | FATTR_MTIME;
  sa.mode = 0600;
  sa.size = 3;
  fuse_statx_in sx{};
  sx.sx_mask = 0xfff;
  fuse_mknod_in mk{};
  mk.mode = S_IFREG | 0644;
  fuse_mkdir_in md{};
  md.mode = 0755;
  fuse_fsync_in fs{};
  fuse_flush_in fl{};
  fl.fh = 1;
  fuse_lseek_in ls{};
  ls.fh = 1;
  ls.whence = SEEK_DATA;
  fuse_fallocate_in fa{};
  fa.fh = 1;
  fa.length = 8192;
  fuse_lk_in lk{};
  lk.fh = 1;
  lk.lk.type = F_WRLCK;
  lk.lk.end = 100;
  fuse_copy_file_range_in cfr{};
  cfr.fh_in = 1;
  cfr.nodeid_out = 2;
  cfr.fh_out = 1;
  cfr.len = 5;
  fuse_rename2_in rn2{};
  rn2.newdir = FUSE_ROOT_ID;
  fuse_access_in ac{};
  ac.mask = 4;
  fuse_setxattr_in sxa{};
  sxa.size = 5;
  fuse_notify_retrieve_in nr{};
  nr.size = 4;
  fuse_interrupt_in intr{};
  intr.unique = 1;
  fuse_forget_one f1{2, 1}, f2{3, 1};
  fuse_batch_forget_in bf{};
  bf.count = 2;
  fuse_init_in init{};
  init.major = 7;
  init.minor = 45;

  s.push_back({"lookup", {R(FUSE_LOOKUP, 1, {}, Names({"missing"})),
                          R(FUSE_LOOKUP, 1, {}, Names({".."})),
                          R(FUSE_GETATTR, 1, Bytes(ga)), R(FUSE_STATFS, 1),
                          R(FUSE_ACCESS, 1, Bytes(ac))}});
  s.push_back({"attrs", {R(FUSE_MKNOD, 1, Bytes(mk), Names({"f"})),
                         R(FUSE_SETATTR, 2, Bytes(sa)), R(FUSE_GETATTR, 2, Bytes(ga)),
                         R(FUSE_STATX, 2, Bytes(sx)), R(FUSE_LOOKUP, 1, {}, Names({"f"})),
                         R(FUSE_FORGET, 2, U64(2))}});
  s.push_back({"dirs", {R(FUSE_MKDIR, 1, Bytes(md), Names({"d"})),
                        R(FUSE_MKNOD, 2, Bytes(mk), Names({"inner"})),
                        R(FUSE_OPENDIR, 2, U32Pair(O_RDONLY, 0)),
                        R(FUSE_READDIR, 2, Read(1, 0, 4096)),
                        R(FUSE_READDIRPLUS, 2, Read(1, 0, 4096)),
                        R(FUSE_READDIR, 2, Read(1, 2, 48)),
                        R(FUSE_FSYNCDIR, 2, Bytes(fs)),
                        R(FUSE_RELEASEDIR, 2, Release(1)),
                        R(FUSE_UNLINK, 2, {}, Names({"inner"})),
                        R(FUSE_RMDIR, 1, {}, Names({"d"}))}});
  s.push_back({"io", {R(FUSE_CREATE, 1, CreateIn(O_RDWR | O_CREAT, 0644), Names({"data"})),
                      R(FUSE_WRITE, 2, Write(1, 0, 11), "hello world"),
                      R(FUSE_READ, 2, Read(1, 0, 4096)), R(FUSE_READ, 2, Read(1, 6, 3)),
                      R(FUSE_FLUSH, 2, Bytes(fl)), R(FUSE_FSYNC, 2, Bytes(fs)),
                      R(FUSE_LSEEK, 2, Bytes(ls)), R(FUSE_FALLOCATE, 2, Bytes(fa)),
                      R(FUSE_COPY_FILE_RANGE, 2, Bytes(cfr)),
                      R(FUSE_GETLK, 2, Bytes(lk)), R(FUSE_SETLK, 2, Bytes(lk)),
                      R(FUSE_SETLKW, 2, Bytes(lk)), R(FUSE_RELEASE, 2, Release(1)),
                      R(FUSE_OPEN, 2, U32Pair(O_RDWR | O_TRUNC, 0)),
                      R(FUSE_TMPFILE, 1, CreateIn(O_RDWR, 0600)),
                      R(FUSE_SYNCFS, 1, U64(0))}});
  s.push_back({"names", {R(FUSE_SYMLINK, 1, {}, Names({"ln", "target/path"})),
                         R(FUSE_READLINK, 2),
                         R(FUSE_MKNOD, 1, Bytes(mk), Names({"a"})),
                         R(FUSE_LINK, 1, U64(3), Names({"b"})),
                         R(FUSE_RENAME, 1, U64(1), Names({"b", "c"})),
                         R(FUSE_RENAME2, 1, Bytes(rn2), Names({"c", "ln"})),
                         R(FUSE_UNLINK, 1, {}, Names({"a"}))}});
  s.push_back({"xattr", {R(FUSE_SETXATTR, 1, Bytes(sxa).substr(0, FUSE_COMPAT_SETXATTR_IN_SIZE),
                           Names({"user.k"}) + "value"),
                         R(FUSE_GETXATTR, 1, U32Pair(0, 0), Names({"user.k"})),
                         R(FUSE_GETXATTR, 1, U32Pair(64, 0), Names({"user.k"})),
                         R(FUSE_GETXATTR, 1, U32Pair(2, 0), Names({"user.k"})),
                         R(FUSE_LISTXATTR, 1, U32Pair(0, 0)),
                         R(FUSE_LISTXATTR, 1, U32Pair(64, 0)),
                         R(FUSE_REMOVEXATTR, 1, {}, Names({"user.k"}))}});
  s.push_back({"noreply", {R(FUSE_MKNOD, 1, Bytes(mk), Names({"x"})),
                           R(FUSE_FORGET, 2, U64(1)), R(FUSE_FORGET, 999, U64(5)),
                           R(FUSE_BATCH_FORGET, 0, Bytes(bf), Bytes(f1) + Bytes(f2)),
                           R(FUSE_INTERRUPT, 0, Bytes(intr)),
                           R(FUSE_NOTIFY_REPLY, 1, Bytes(nr), "abcd")}});
  s.push_back({"session", {R(FUSE_INIT, 0, Bytes(init)), R(FUSE_BMAP, 1, std::string(16, '\0')),
                           R(FUSE_IOCTL, 1, std::string(32, '\0')),
                           R(FUSE_POLL, 1, std::string(24, '\0')), R(FUSE_SETUPMAPPING, 1),
                           R(FUSE_REMOVEMAPPING, 1),
                           R(FUSE_COPY_FILE_RANGE_64, 1, Bytes(cfr)), R(7, 1), R(19, 1),
                           R(FUSE_OPCODE_LIMIT, 1), R(4096, 1), R(FUSE_DESTROY, 0)}});

  // Malformed: each is rejected before the filesystem, or answered by it.
  Req short_len = R(FUSE_GETATTR, 1, Bytes(ga));
  short_len.len = 20;
  Req long_len = R(FUSE_GETATTR, 1, Bytes(ga));
  long_len.len = 4096;
  Req ext = R(FUSE_LOOKUP, 1, {}, Names({"x"}));
  ext.total_extlen = 0xffff;
  Req huge_payload = R(FUSE_WRITE, 2, Write(1, 0, 4), "abcd");
  huge_payload.payload_sz = 0xffffffff;
  Req batch_over = R(FUSE_BATCH_FORGET, 0, U32Pair(0xffffffff, 0), Bytes(f1));
  s.push_back({"bad-header", {short_len, long_len, ext, R(FUSE_GETATTR, 1, "xx")}});
  s.push_back({"bad-names", {R(FUSE_LOOKUP, 1, {}, "no-nul"),
                             R(FUSE_MKDIR, 1, Bytes(md), Names({"a/b"})),
                             R(FUSE_MKDIR, 1, Bytes(md), Names({".."})),
                             R(FUSE_MKDIR, 1, Bytes(md), Names({""})),
                             R(FUSE_LOOKUP, 1, {}, Names({std::string(300, 'n')})),
                             R(FUSE_RENAME, 1, U64(1), Names({"a"})),
                             R(FUSE_SYMLINK, 1, {}, Names({"s", ""}))}});
  s.push_back({"bad-sizes", {R(FUSE_CREATE, 1, CreateIn(O_RDWR | O_CREAT, 0644), Names({"f"})),
                             R(FUSE_WRITE, 2, Write(1, 0, 1000), "short"),
                             R(FUSE_WRITE, 2, Write(1, ~uint64_t{0} - 2, 5), "abcde"),
                             R(FUSE_READ, 2, Read(1, 0, 0xffffffff)),
                             R(FUSE_READ, 2, Read(1, ~uint64_t{0}, 10)), huge_payload,
                             batch_over,
                             R(FUSE_SETXATTR, 1, U32Pair(1000, 0), Names({"user.x"}) + "v"),
                             R(FUSE_READ, 2, "truncated")}});
  return s;
}

}  // namespace kmfuse::fuzz

#endif  // KMFUSE_TESTS_FUZZ_CORPUS_REQUESTS_H_
