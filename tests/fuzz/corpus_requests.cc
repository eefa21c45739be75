#include "tests/fuzz/corpus_requests.h"

#include <fcntl.h>
#include <sys/stat.h>

namespace kmfuse::fuzz {
namespace {

using namespace kmfuse::abi;  // NOLINT
using namespace seeds;        // NOLINT

// One function per seed keeps each small: gcc's ASan instrumentation of one
// function holding every temporary takes minutes to compile.

std::string Getattr() { return Bytes(fuse_getattr_in{}); }
std::string Mknod() {
  fuse_mknod_in mk{};
  mk.mode = S_IFREG | 0644;
  return Bytes(mk);
}
std::string Mkdir() {
  fuse_mkdir_in md{};
  md.mode = 0755;
  return Bytes(md);
}
std::string Fsync() { return Bytes(fuse_fsync_in{}); }
fuse_copy_file_range_in CopyRange() {
  fuse_copy_file_range_in cfr{};
  cfr.fh_in = 1;
  cfr.nodeid_out = 2;
  cfr.fh_out = 1;
  cfr.len = 5;
  return cfr;
}

Seed Lookup() {
  fuse_access_in ac{};
  ac.mask = 4;
  return {"lookup", {R(FUSE_LOOKUP, 1, {}, Names({"missing"})), R(FUSE_LOOKUP, 1, {}, Names({".."})),
                     R(FUSE_GETATTR, 1, Getattr()), R(FUSE_STATFS, 1),
                     R(FUSE_ACCESS, 1, Bytes(ac))}};
}

Seed Attrs() {
  fuse_setattr_in sa{};
  sa.valid = FATTR_MODE | FATTR_SIZE | FATTR_MTIME;
  sa.mode = 0600;
  sa.size = 3;
  fuse_statx_in sx{};
  sx.sx_mask = 0xfff;
  return {"attrs", {R(FUSE_MKNOD, 1, Mknod(), Names({"f"})), R(FUSE_SETATTR, 2, Bytes(sa)),
                    R(FUSE_GETATTR, 2, Getattr()), R(FUSE_STATX, 2, Bytes(sx)),
                    R(FUSE_LOOKUP, 1, {}, Names({"f"})), R(FUSE_FORGET, 2, U64(2))}};
}

Seed Dirs() {
  return {"dirs",
          {R(FUSE_MKDIR, 1, Mkdir(), Names({"d"})), R(FUSE_MKNOD, 2, Mknod(), Names({"inner"})),
           R(FUSE_OPENDIR, 2, U32Pair(O_RDONLY, 0)), R(FUSE_READDIR, 2, Read(1, 0, 4096)),
           R(FUSE_READDIRPLUS, 2, Read(1, 0, 4096)), R(FUSE_READDIR, 2, Read(1, 2, 48)),
           R(FUSE_FSYNCDIR, 2, Fsync()), R(FUSE_RELEASEDIR, 2, Release(1)),
           R(FUSE_UNLINK, 2, {}, Names({"inner"})), R(FUSE_RMDIR, 1, {}, Names({"d"}))}};
}

Seed Io() {
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
  return {"io",
          {R(FUSE_CREATE, 1, CreateIn(O_RDWR | O_CREAT, 0644), Names({"data"})),
           R(FUSE_WRITE, 2, Write(1, 0, 11), "hello world"), R(FUSE_READ, 2, Read(1, 0, 4096)),
           R(FUSE_READ, 2, Read(1, 6, 3)), R(FUSE_FLUSH, 2, Bytes(fl)),
           R(FUSE_FSYNC, 2, Fsync()), R(FUSE_LSEEK, 2, Bytes(ls)),
           R(FUSE_FALLOCATE, 2, Bytes(fa)), R(FUSE_COPY_FILE_RANGE, 2, Bytes(CopyRange())),
           R(FUSE_GETLK, 2, Bytes(lk)), R(FUSE_SETLK, 2, Bytes(lk)),
           R(FUSE_SETLKW, 2, Bytes(lk)), R(FUSE_RELEASE, 2, Release(1)),
           R(FUSE_OPEN, 2, U32Pair(O_RDWR | O_TRUNC, 0)),
           R(FUSE_TMPFILE, 1, CreateIn(O_RDWR, 0600)), R(FUSE_SYNCFS, 1, U64(0))}};
}

Seed NameOps() {
  fuse_rename2_in rn2{};
  rn2.newdir = FUSE_ROOT_ID;
  return {"names",
          {R(FUSE_SYMLINK, 1, {}, Names({"ln", "target/path"})), R(FUSE_READLINK, 2),
           R(FUSE_MKNOD, 1, Mknod(), Names({"a"})), R(FUSE_LINK, 1, U64(3), Names({"b"})),
           R(FUSE_RENAME, 1, U64(1), Names({"b", "c"})),
           R(FUSE_RENAME2, 1, Bytes(rn2), Names({"c", "ln"})),
           R(FUSE_UNLINK, 1, {}, Names({"a"}))}};
}

Seed Xattr() {
  fuse_setxattr_in sxa{};
  sxa.size = 5;
  return {"xattr",
          {R(FUSE_SETXATTR, 1, Bytes(sxa).substr(0, FUSE_COMPAT_SETXATTR_IN_SIZE),
             Names({"user.k"}) + "value"),
           R(FUSE_GETXATTR, 1, U32Pair(0, 0), Names({"user.k"})),
           R(FUSE_GETXATTR, 1, U32Pair(64, 0), Names({"user.k"})),
           R(FUSE_GETXATTR, 1, U32Pair(2, 0), Names({"user.k"})),
           R(FUSE_LISTXATTR, 1, U32Pair(0, 0)), R(FUSE_LISTXATTR, 1, U32Pair(64, 0)),
           R(FUSE_REMOVEXATTR, 1, {}, Names({"user.k"}))}};
}

Seed NoReply() {
  fuse_notify_retrieve_in nr{};
  nr.size = 4;
  fuse_interrupt_in intr{};
  intr.unique = 1;
  fuse_forget_one f1{2, 1}, f2{3, 1};
  fuse_batch_forget_in bf{};
  bf.count = 2;
  return {"noreply",
          {R(FUSE_MKNOD, 1, Mknod(), Names({"x"})), R(FUSE_FORGET, 2, U64(1)),
           R(FUSE_FORGET, 999, U64(5)),
           R(FUSE_BATCH_FORGET, 0, Bytes(bf), Bytes(f1) + Bytes(f2)),
           R(FUSE_INTERRUPT, 0, Bytes(intr)), R(FUSE_NOTIFY_REPLY, 1, Bytes(nr), "abcd")}};
}

Seed Session() {
  fuse_init_in init{};
  init.major = 7;
  init.minor = 45;
  return {"session",
          {R(FUSE_INIT, 0, Bytes(init)), R(FUSE_BMAP, 1, std::string(16, '\0')),
           R(FUSE_IOCTL, 1, std::string(32, '\0')), R(FUSE_POLL, 1, std::string(24, '\0')),
           R(FUSE_SETUPMAPPING, 1), R(FUSE_REMOVEMAPPING, 1),
           R(FUSE_COPY_FILE_RANGE_64, 1, Bytes(CopyRange())), R(7, 1), R(19, 1),
           R(FUSE_OPCODE_LIMIT, 1), R(4096, 1), R(FUSE_DESTROY, 0)}};
}

// Malformed: each is rejected before the filesystem, or answered by it.
Seed BadHeader() {
  Req short_len = R(FUSE_GETATTR, 1, Getattr());
  short_len.len = 20;
  Req long_len = R(FUSE_GETATTR, 1, Getattr());
  long_len.len = 4096;
  Req ext = R(FUSE_LOOKUP, 1, {}, Names({"x"}));
  ext.total_extlen = 0xffff;
  return {"bad-header", {short_len, long_len, ext, R(FUSE_GETATTR, 1, "xx")}};
}

Seed BadNames() {
  return {"bad-names",
          {R(FUSE_LOOKUP, 1, {}, "no-nul"), R(FUSE_MKDIR, 1, Mkdir(), Names({"a/b"})),
           R(FUSE_MKDIR, 1, Mkdir(), Names({".."})), R(FUSE_MKDIR, 1, Mkdir(), Names({""})),
           R(FUSE_LOOKUP, 1, {}, Names({std::string(300, 'n')})),
           R(FUSE_RENAME, 1, U64(1), Names({"a"})), R(FUSE_SYMLINK, 1, {}, Names({"s", ""}))}};
}

Seed BadSizes() {
  Req huge_payload = R(FUSE_WRITE, 2, Write(1, 0, 4), "abcd");
  huge_payload.payload_sz = 0xffffffff;
  fuse_forget_one f1{2, 1};
  Req batch_over = R(FUSE_BATCH_FORGET, 0, U32Pair(0xffffffff, 0), Bytes(f1));
  return {"bad-sizes",
          {R(FUSE_CREATE, 1, CreateIn(O_RDWR | O_CREAT, 0644), Names({"f"})),
           R(FUSE_WRITE, 2, Write(1, 0, 1000), "short"),
           R(FUSE_WRITE, 2, Write(1, ~uint64_t{0} - 2, 5), "abcde"),
           R(FUSE_READ, 2, Read(1, 0, 0xffffffff)), R(FUSE_READ, 2, Read(1, ~uint64_t{0}, 10)),
           huge_payload, batch_over,
           R(FUSE_SETXATTR, 1, U32Pair(1000, 0), Names({"user.x"}) + "v"),
           R(FUSE_READ, 2, "truncated")}};
}

}  // namespace

std::vector<Seed> CorpusSeeds() {
  return {Lookup(), Attrs(),  Dirs(),    Io(),        NameOps(),  Xattr(),
          NoReply(), Session(), BadHeader(), BadNames(), BadSizes()};
}

}  // namespace kmfuse::fuzz
