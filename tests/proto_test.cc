// The protocol layer from byte arrays: request decoding (contiguous and
// split layouts), the dispatcher's gate, reply encoding onto a channel.
// No kernel, no ring: a recording FileSystem and CaptureSink / DevSlotSink
// over a pipe.
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "kmfuse/sync.h"
#include "daemon/dev_channel.h"
#include "daemon/proto/dispatch.h"
#include "daemon/proto/reply_header.h"
#include "daemon/proto/request.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kmfuse/filesystem.h"
#include "kmfuse/fuse_abi.h"
#include "kmfuse/reply.h"
#include "kmfuse/testing/fs_testing.h"

namespace kmfuse::proto {
namespace {

using ::kmfuse::testing::CaptureSink;
using ::testing::ElementsAre;
using ::testing::IsEmpty;
using namespace ::kmfuse::abi;  // NOLINT: wire structs by their kernel names

template <typename T>
std::string Bytes(const T& v) {
  return std::string(reinterpret_cast<const char*>(&v), sizeof(T));
}

std::string Name(const std::string& s) { return s + std::string(1, '\0'); }

fuse_in_header Header(uint32_t opcode, uint64_t nodeid, size_t args_len, uint64_t unique = 42) {
  fuse_in_header h{};
  h.len = static_cast<uint32_t>(sizeof(h) + args_len);
  h.opcode = opcode;
  h.unique = unique;
  h.nodeid = nodeid;
  h.uid = 1000;
  h.gid = 100;
  h.pid = 4321;
  return h;
}

// A contiguous request: header then arguments, as read() from /dev/fuse.
std::string Contiguous(uint32_t opcode, uint64_t nodeid, const std::string& args, uint64_t unique = 42) {
  return Bytes(Header(opcode, nodeid, args.size(), unique)) + args;
}

// Records every call it gets as a line of text and answers trivially.
class RecordingFs : public FileSystem {
 public:
  std::vector<std::string> calls() const {
    MutexLock l(&mu_);
    return calls_;
  }
  // Statfs leaves its Reply unanswered (a buggy filesystem).
  bool lose_statfs_reply = false;

  void Lookup(const RequestContext& ctx, uint64_t parent, std::string_view name, Reply r) override {
    Record(absl::StrCat("Lookup ", parent, " ", std::string(name), " uid=", ctx.uid, " gid=", ctx.gid, " pid=", ctx.pid,
                        " unique=", ctx.unique));
    fuse_entry_out e{};
    e.nodeid = 77;
    e.attr.ino = 77;
    r.Entry(e);
  }
  void Forget(uint64_t ino, uint64_t nlookup) override { Record(absl::StrCat("Forget ", ino, " ", nlookup)); }
  void Getattr(const RequestContext&, uint64_t ino, std::optional<uint64_t> fh, Reply r) override {
    Record(absl::StrCat("Getattr ", ino, fh ? absl::StrCat(" fh=", *fh) : ""));
    fuse_attr_out a{};
    a.attr.ino = ino;
    a.attr.size = 12345;
    r.Attr(a);
  }
  void Mkdir(const RequestContext&, uint64_t parent, std::string_view name, const fuse_mkdir_in& in,
             Reply r) override {
    Record(absl::StrCat("Mkdir ", parent, " ", std::string(name), " mode=", in.mode));
    r.Error(EEXIST);
  }
  void Mknod(const RequestContext&, uint64_t parent, std::string_view name, const fuse_mknod_in&,
             Reply r) override {
    Record(absl::StrCat("Mknod ", parent, " ", std::string(name)));
    r.Empty();
  }
  void Unlink(const RequestContext&, uint64_t parent, std::string_view name, Reply r) override {
    Record(absl::StrCat("Unlink ", parent, " ", std::string(name)));
    r.Empty();
  }
  void Rmdir(const RequestContext&, uint64_t parent, std::string_view name, Reply r) override {
    Record(absl::StrCat("Rmdir ", parent, " ", std::string(name)));
    r.Empty();
  }
  void Symlink(const RequestContext&, uint64_t parent, std::string_view name, std::string_view target,
               Reply r) override {
    Record(absl::StrCat("Symlink ", parent, " ", std::string(name), " -> ", std::string(target)));
    r.Empty();
  }
  void Rename(const RequestContext&, uint64_t parent, std::string_view name, uint64_t newparent,
              std::string_view newname, uint32_t flags, Reply r) override {
    Record(absl::StrCat("Rename ", parent, " ", std::string(name), " ", newparent, " ", std::string(newname), " flags=", flags));
    r.Empty();
  }
  void Link(const RequestContext&, uint64_t ino, uint64_t newparent, std::string_view newname,
            Reply r) override {
    Record(absl::StrCat("Link ", ino, " ", newparent, " ", std::string(newname)));
    r.Empty();
  }
  void Create(const RequestContext&, uint64_t parent, std::string_view name, const fuse_create_in& in,
              Reply r) override {
    Record(absl::StrCat("Create ", parent, " ", std::string(name), " mode=", in.mode));
    r.Empty();
  }
  void Write(const RequestContext&, uint64_t ino, const fuse_write_in& in, absl::Span<const char> data,
             Reply r) override {
    Record(absl::StrCat("Write ", ino, " off=", in.offset, " size=", in.size, " data=",
                        std::string(data.data(), data.size())));
    r.Write(static_cast<uint32_t>(data.size()));
  }
  void Setxattr(const RequestContext&, uint64_t ino, std::string_view name, absl::Span<const char> value,
                uint32_t flags, Reply r) override {
    Record(absl::StrCat("Setxattr ", ino, " ", std::string(name), "=", std::string(value.data(), value.size()),
                        " flags=", flags));
    r.Empty();
  }
  void Statfs(const RequestContext&, uint64_t ino, Reply r) override {
    Record(absl::StrCat("Statfs ", ino));
    if (lose_statfs_reply) return;  // r destroyed pending
    r.Empty();
  }

 private:
  void Record(std::string s) {
    MutexLock l(&mu_);
    calls_.push_back(std::move(s));
  }
  mutable Mutex mu_;
  std::vector<std::string> calls_ ABSL_GUARDED_BY(mu_);
};

class ProtoTest : public ::testing::Test {
 protected:
  // Delivers bytes as a contiguous request; Deliver's (the decode's) result
  // is returned, the answer is in sink_.
  int DispatchContiguous(const std::string& bytes) {
    sink_.Reset();
    // Own the bytes in a separate allocation so ASan catches reads past them.
    buf_.reset(new char[bytes.size() + 1]);
    std::memcpy(buf_.get(), bytes.data(), bytes.size());
    return dispatcher_.Deliver(RequestBytes::Contiguous(buf_.get(), bytes.size()), &sink_);
  }
  // Same request in the FUSE-over-io_uring layout: header, op struct in
  // op_in, the remaining arguments in the payload.
  int DispatchSplit(const fuse_in_header& h, const std::string& op, const std::string& rest) {
    sink_.Reset();
    char in_out[FUSE_URING_IN_OUT_HEADER_SZ] = {};
    char op_in[FUSE_URING_OP_IN_OUT_SZ] = {};
    std::memcpy(in_out, &h, sizeof(h));
    std::memcpy(op_in, op.data(), op.size());
    payload_.reset(new char[rest.size() + 1]);
    std::memcpy(payload_.get(), rest.data(), rest.size());
    return dispatcher_.Deliver(
        RequestBytes::Split(in_out, op_in, payload_.get(), rest.size(), rest.size() + 1), &sink_);
  }

  int AnswerError() {
    EXPECT_TRUE(sink_.answered());
    EXPECT_EQ(sink_.answers(), 1);
    return sink_.error();
  }

  RecordingFs fs_;
  Dispatcher dispatcher_{&fs_, nullptr, false};
  CaptureSink sink_{1 << 16};
  std::unique_ptr<char[]> buf_, payload_;
};

// --- decoding ---------------------------------------------------------------

TEST_F(ProtoTest, TruncatedHeaderIsEinval) {
  std::string req = Contiguous(FUSE_GETATTR, 1, Bytes(fuse_getattr_in{}));
  for (size_t n : {0, 1, 8, 39}) {
    RequestView v;
    EXPECT_EQ(Decode(RequestBytes::Contiguous(req.data(), n), &v), -EINVAL) << n;
    fuse_in_header h;
    EXPECT_EQ(PeekHeader(req.data(), n, &h), -EINVAL) << n;
  }
}

TEST_F(ProtoTest, LengthMismatchIsEinval) {
  std::string req = Contiguous(FUSE_GETATTR, 1, Bytes(fuse_getattr_in{}));
  RequestView v;
  EXPECT_EQ(Decode(RequestBytes::Contiguous(req.data(), req.size()), &v), 0);
  // Fewer bytes arrived than the header claims.
  EXPECT_EQ(Decode(RequestBytes::Contiguous(req.data(), req.size() - 1), &v), -EINVAL);
  // More bytes than the header claims.
  std::string longer = req + "trailing";
  EXPECT_EQ(Decode(RequestBytes::Contiguous(longer.data(), longer.size()), &v), -EINVAL);
}

TEST_F(ProtoTest, OversizedLengthsAreEinval) {
  std::string req = Contiguous(FUSE_GETATTR, 1, Bytes(fuse_getattr_in{}));
  fuse_in_header h = Header(FUSE_GETATTR, 1, sizeof(fuse_getattr_in));
  h.len = 0xffffffffu;
  std::memcpy(req.data(), &h, sizeof(h));
  RequestView v;
  EXPECT_EQ(Decode(RequestBytes::Contiguous(req.data(), req.size()), &v), -EINVAL);
  // Extension area larger than the body.
  h = Header(FUSE_GETATTR, 1, sizeof(fuse_getattr_in));
  h.total_extlen = 3;  // 24 bytes > 16 of body
  std::memcpy(req.data(), &h, sizeof(h));
  EXPECT_EQ(Decode(RequestBytes::Contiguous(req.data(), req.size()), &v), -EINVAL);
  // Split: payload larger than its buffer, extensions beyond the payload.
  char in_out[FUSE_URING_IN_OUT_HEADER_SZ] = {};
  char op_in[FUSE_URING_OP_IN_OUT_SZ] = {};
  char payload[64] = {};
  h = Header(FUSE_WRITE, 1, 0);
  std::memcpy(in_out, &h, sizeof(h));
  EXPECT_EQ(Decode(RequestBytes::Split(in_out, op_in, payload, 65, 64), &v), -EINVAL);
  h.total_extlen = 9;  // 72 > 64
  std::memcpy(in_out, &h, sizeof(h));
  EXPECT_EQ(Decode(RequestBytes::Split(in_out, op_in, payload, 64, 64), &v), -EINVAL);
}

TEST_F(ProtoTest, ExtensionsAreNotArguments) {
  // LOOKUP "a" followed by an 8-byte extension: the name must not see it.
  std::string args = Name("a") + std::string(6, '\0') + std::string(8, 'E');
  fuse_in_header h = Header(FUSE_LOOKUP, 1, args.size());
  h.total_extlen = 1;
  std::string req = Bytes(h) + args;
  RequestView v;
  ASSERT_EQ(Decode(RequestBytes::Contiguous(req.data(), req.size()), &v), 0);
  EXPECT_EQ(v.rest.size(), args.size() - 8);
  EXPECT_TRUE(v.op.empty());
}

// --- the gate -----------------------------------------------------------------

TEST_F(ProtoTest, ShortOpStructIsEinvalAndNeverReachesTheFs) {
  struct Case {
    uint32_t opcode;
    size_t need;
  };
  for (Case c : {Case{FUSE_GETATTR, sizeof(fuse_getattr_in)}, Case{FUSE_SETATTR, sizeof(fuse_setattr_in)},
                 Case{FUSE_WRITE, sizeof(fuse_write_in)}, Case{FUSE_MKDIR, sizeof(fuse_mkdir_in)},
                 Case{FUSE_CREATE, sizeof(fuse_create_in)}, Case{FUSE_RENAME2, sizeof(fuse_rename2_in)},
                 Case{FUSE_LINK, sizeof(fuse_link_in)}, Case{FUSE_SETXATTR, FUSE_COMPAT_SETXATTR_IN_SIZE},
                 Case{FUSE_COPY_FILE_RANGE, sizeof(fuse_copy_file_range_in)}}) {
    SCOPED_TRACE(OpcodeName(c.opcode));
    for (size_t n : {size_t{0}, c.need - 1}) {
      ASSERT_EQ(DispatchContiguous(Contiguous(c.opcode, 1, std::string(n, '\0'))), -EINVAL);
      EXPECT_EQ(AnswerError(), EINVAL);
      EXPECT_FALSE(sink_.dropped());
    }
  }
  EXPECT_THAT(fs_.calls(), IsEmpty());
  EXPECT_GE(dispatcher_.stats().malformed.load(), 18u);
}

TEST_F(ProtoTest, BadNamesAreEinval) {
  const std::string mkdir = Bytes(fuse_mkdir_in{0755, 022});
  const std::string create = Bytes(fuse_create_in{});
  const std::string rename = Bytes(fuse_rename_in{1});
  const std::string link = Bytes(fuse_link_in{5});
  struct Case {
    uint32_t opcode;
    std::string args;
  };
  std::vector<Case> cases = {
      {FUSE_LOOKUP, "noterminator"},
      {FUSE_LOOKUP, ""},
      {FUSE_LOOKUP, Name("a/b")},
      {FUSE_LOOKUP, Name("")},
      {FUSE_MKDIR, mkdir + "x"},
      {FUSE_MKDIR, mkdir + Name("a/b")},
      {FUSE_MKDIR, mkdir + Name(".")},
      {FUSE_MKDIR, mkdir + Name("..")},
      {FUSE_MKDIR, mkdir + Name(std::string(300, '/'))},
      {FUSE_RENAME, rename + Name(std::string(256, 'n')) + Name("b/c")},
      {FUSE_MKNOD, Bytes(fuse_mknod_in{}) + Name("..")},
      {FUSE_CREATE, create + Name(".")},
      {FUSE_CREATE, create + Name("/")},
      {FUSE_CREATE, create + "unterminated"},
      {FUSE_SYMLINK, Name("..") + Name("target")},
      {FUSE_SYMLINK, Name("ok") + "unterminated-target"},
      {FUSE_SYMLINK, Name("ok") + Name("")},
      {FUSE_UNLINK, Name("a/b")},
      {FUSE_RMDIR, Name(".")},
      {FUSE_RENAME, rename + Name("a") + Name("..")},
      {FUSE_RENAME, rename + Name(".") + Name("b")},
      {FUSE_RENAME, rename + Name("a") + "b"},
      {FUSE_RENAME, rename + Name("a/x") + Name("b")},
      {FUSE_LINK, link + Name(".")},
      {FUSE_LINK, link + Name("x/y")},
      {FUSE_SETXATTR, Bytes(fuse_getxattr_in{4, 0}) + Name("") + "vvvv"},
      {FUSE_SETXATTR, Bytes(fuse_getxattr_in{4, 0}) + "user.unterminated"},
      {FUSE_GETXATTR, Bytes(fuse_getxattr_in{}) + "user.unterminated"},
      {FUSE_REMOVEXATTR, Name("")},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(absl::StrCat(OpcodeName(c.opcode), " args of ", c.args.size(), " bytes"));
    ASSERT_EQ(DispatchContiguous(Contiguous(c.opcode, 1, c.args)), 0);
    EXPECT_EQ(AnswerError(), EINVAL);
  }
  EXPECT_THAT(fs_.calls(), IsEmpty());
}

// Names past NAME_MAX are well formed (the kernel sends longer ones)
// but no Linux filesystem takes them: each op that carries an entry name is
// answered ENAMETOOLONG, not EINVAL, without calling the filesystem, in both
// layouts; a name of exactly NAME_MAX bytes is passed on.
TEST_F(ProtoTest, NamesPastNameMaxAreEnametoolongPerOp) {
  const std::string ok(NAME_MAX, 'k');
  const std::string long256(NAME_MAX + 1, 'n');
  const std::string long4000(4000, 'm');
  const std::string mkdir = Bytes(fuse_mkdir_in{0755, 022});
  const std::string mknod = Bytes(fuse_mknod_in{S_IFIFO | 0644, 0, 022, 0});
  const std::string create = Bytes(fuse_create_in{O_WRONLY | O_CREAT, 0644, 022, 0});
  const std::string rename = Bytes(fuse_rename_in{1});
  const std::string rename2 = Bytes(fuse_rename2_in{1, 0, 0});
  const std::string link = Bytes(fuse_link_in{5});
  struct Case {
    uint32_t opcode;
    std::string op;  // fixed struct
    std::string names;
  };
  for (const std::string& name : {long256, long4000}) {
    SCOPED_TRACE(absl::StrCat("name of ", name.size(), " bytes"));
    std::vector<Case> cases = {
        {FUSE_LOOKUP, "", Name(name)},
        {FUSE_MKDIR, mkdir, Name(name)},
        {FUSE_MKNOD, mknod, Name(name)},
        {FUSE_CREATE, create, Name(name)},
        {FUSE_SYMLINK, "", Name(name) + Name("target")},
        {FUSE_UNLINK, "", Name(name)},
        {FUSE_RMDIR, "", Name(name)},
        {FUSE_RENAME, rename, Name(name) + Name("b")},
        {FUSE_RENAME, rename, Name("a") + Name(name)},
        {FUSE_RENAME2, rename2, Name(name) + Name("b")},
        {FUSE_RENAME2, rename2, Name("a") + Name(name)},
        {FUSE_LINK, link, Name(name)},
    };
    for (const Case& c : cases) {
      SCOPED_TRACE(OpcodeName(c.opcode));
      ASSERT_EQ(DispatchContiguous(Contiguous(c.opcode, 1, c.op + c.names)), 0);
      EXPECT_EQ(AnswerError(), ENAMETOOLONG);
      fuse_in_header h = Header(c.opcode, 1, c.op.size() + c.names.size());
      ASSERT_EQ(DispatchSplit(h, c.op, c.names), 0);
      EXPECT_EQ(AnswerError(), ENAMETOOLONG);
    }
  }
  EXPECT_THAT(fs_.calls(), IsEmpty());
  EXPECT_EQ(dispatcher_.stats().malformed.load(), 0u);

  // NAME_MAX itself is a valid name for every one of them.
  ASSERT_EQ(DispatchContiguous(Contiguous(FUSE_LOOKUP, 1, Name(ok))), 0);
  ASSERT_EQ(DispatchContiguous(Contiguous(FUSE_MKDIR, 1, mkdir + Name(ok))), 0);
  ASSERT_EQ(DispatchContiguous(Contiguous(FUSE_MKNOD, 1, mknod + Name(ok))), 0);
  ASSERT_EQ(DispatchContiguous(Contiguous(FUSE_CREATE, 1, create + Name(ok))), 0);
  ASSERT_EQ(DispatchContiguous(Contiguous(FUSE_SYMLINK, 1, Name(ok) + Name("t"))), 0);
  ASSERT_EQ(DispatchContiguous(Contiguous(FUSE_UNLINK, 1, Name(ok))), 0);
  ASSERT_EQ(DispatchContiguous(Contiguous(FUSE_RMDIR, 1, Name(ok))), 0);
  ASSERT_EQ(DispatchContiguous(Contiguous(FUSE_RENAME, 1, rename + Name(ok) + Name(ok))), 0);
  ASSERT_EQ(DispatchContiguous(Contiguous(FUSE_LINK, 1, link + Name(ok))), 0);
  std::vector<std::string> calls = fs_.calls();
  ASSERT_EQ(calls.size(), 9u);
  for (const std::string& call : calls) EXPECT_THAT(call, ::testing::HasSubstr(ok)) << call;
}

TEST_F(ProtoTest, LookupOfDotDotIsPassedOn) {
  // ".." names an existing entry (NFS export style lookups); only new
  // entries may not be called "." or "..".
  ASSERT_EQ(DispatchContiguous(Contiguous(FUSE_LOOKUP, 9, Name(".."))), 0);
  EXPECT_EQ(AnswerError(), 0);
  EXPECT_THAT(fs_.calls(), ElementsAre("Lookup 9 .. uid=1000 gid=100 pid=4321 unique=42"));
}

TEST_F(ProtoTest, UnknownOpcodeIsEnosys) {
  for (uint32_t op : {0u, 7u, static_cast<uint32_t>(FUSE_OPCODE_LIMIT), 4096u, 0xffffffffu}) {
    ASSERT_EQ(DispatchContiguous(Contiguous(op, 1, "")), 0);
    EXPECT_EQ(AnswerError(), ENOSYS) << op;
  }
  EXPECT_EQ(dispatcher_.stats().unknown.load(), 5u);
  EXPECT_THAT(fs_.calls(), IsEmpty());
}

TEST_F(ProtoTest, ForgetCallsTheFsAndSendsNoReply) {
  ASSERT_EQ(DispatchContiguous(Contiguous(FUSE_FORGET, 12, Bytes(fuse_forget_in{3}))), 0);
  EXPECT_TRUE(sink_.dropped());
  EXPECT_EQ(sink_.answers(), 1);
  EXPECT_THAT(fs_.calls(), ElementsAre("Forget 12 3"));
}

TEST_F(ProtoTest, ShortForgetIsDroppedWithoutCallingTheFs) {
  ASSERT_EQ(DispatchContiguous(Contiguous(FUSE_FORGET, 12, std::string(4, '\0'))), -EINVAL);
  EXPECT_TRUE(sink_.dropped());
  EXPECT_THAT(fs_.calls(), IsEmpty());
  EXPECT_EQ(dispatcher_.stats().malformed.load(), 1u);
}

TEST_F(ProtoTest, BatchForgetCallsTheFsPerEntryAndSendsNoReply) {
  std::string args = Bytes(fuse_batch_forget_in{3, 0}) + Bytes(fuse_forget_one{5, 1}) +
                     Bytes(fuse_forget_one{6, 2}) + Bytes(fuse_forget_one{7, 3});
  ASSERT_EQ(DispatchContiguous(Contiguous(FUSE_BATCH_FORGET, 0, args)), 0);
  EXPECT_TRUE(sink_.dropped());
  EXPECT_EQ(sink_.answers(), 1);
  EXPECT_THAT(fs_.calls(), ElementsAre("Forget 5 1", "Forget 6 2", "Forget 7 3"));
}

TEST_F(ProtoTest, BatchForgetCountBeyondTheBytesIsBounded) {
  // count says 1000, only two entries (and a partial one) arrived.
  std::string args = Bytes(fuse_batch_forget_in{1000, 0}) + Bytes(fuse_forget_one{5, 1}) +
                     Bytes(fuse_forget_one{6, 2}) + std::string(8, '\x7f');
  ASSERT_EQ(DispatchContiguous(Contiguous(FUSE_BATCH_FORGET, 0, args)), 0);
  EXPECT_TRUE(sink_.dropped());
  EXPECT_THAT(fs_.calls(), ElementsAre("Forget 5 1", "Forget 6 2"));
}

TEST_F(ProtoTest, InitAfterInitIsEio) {
  fuse_init_in init{};
  init.major = 7;
  init.minor = 45;
  ASSERT_EQ(DispatchContiguous(Contiguous(FUSE_INIT, 0, Bytes(init))), 0);
  EXPECT_EQ(AnswerError(), EIO);
  EXPECT_THAT(fs_.calls(), IsEmpty());
}

TEST_F(ProtoTest, WriteWithShortPayloadIsEinval) {
  fuse_write_in w{};
  w.size = 10;
  ASSERT_EQ(DispatchContiguous(Contiguous(FUSE_WRITE, 3, Bytes(w) + "123456789")), 0);
  EXPECT_EQ(AnswerError(), EINVAL);
  EXPECT_EQ(DispatchSplit(Header(FUSE_WRITE, 3, 0), Bytes(w), "123456789"), 0);
  EXPECT_EQ(AnswerError(), EINVAL);
  EXPECT_THAT(fs_.calls(), IsEmpty());
  // Exactly enough, and more than size (only size bytes are handed on).
  ASSERT_EQ(DispatchContiguous(Contiguous(FUSE_WRITE, 3, Bytes(w) + "0123456789")), 0);
  EXPECT_EQ(AnswerError(), 0);
  w.size = 4;
  ASSERT_EQ(DispatchContiguous(Contiguous(FUSE_WRITE, 3, Bytes(w) + "0123456789")), 0);
  EXPECT_EQ(AnswerError(), 0);
  EXPECT_THAT(fs_.calls(), ElementsAre("Write 3 off=0 size=10 data=0123456789", "Write 3 off=0 size=4 data=0123"));
}

// --- Deliver: malformed requests, one policy for both layouts -------------------

// A request that does not decode is counted, never reaches the filesystem,
// and is answered EINVAL, or dropped when its opcode takes no reply. Before
// Deliver, the split path answered a malformed FORGET with EINVAL and counted
// nothing.
TEST_F(ProtoTest, MalformedSplitRequestsAreCountedAndHonourNoReply) {
  char in_out[FUSE_URING_IN_OUT_HEADER_SZ] = {};
  char op_in[FUSE_URING_OP_IN_OUT_SZ] = {};
  char payload[64] = {};
  struct Case {
    uint32_t opcode;
    bool dropped;
  };
  uint64_t malformed = 0;
  for (Case c : {Case{FUSE_GETATTR, false}, Case{FUSE_LOOKUP, false}, Case{FUSE_FORGET, true},
                 Case{FUSE_BATCH_FORGET, true}, Case{FUSE_INTERRUPT, true},
                 Case{FUSE_NOTIFY_REPLY, true}}) {
    SCOPED_TRACE(OpcodeName(c.opcode));
    fuse_in_header h = Header(c.opcode, 1, 0, 900 + c.opcode);
    // payload_sz beyond the buffer; extensions beyond the payload.
    for (uint32_t extlen : {0u, 9u}) {
      h.total_extlen = extlen;
      std::memcpy(in_out, &h, sizeof(h));
      sink_.Reset();
      size_t payload_sz = extlen == 0 ? sizeof(payload) + 1 : sizeof(payload);
      EXPECT_EQ(dispatcher_.Deliver(
                    RequestBytes::Split(in_out, op_in, payload, payload_sz, sizeof(payload)), &sink_),
                -EINVAL);
      EXPECT_EQ(sink_.answers(), 1);
      EXPECT_EQ(sink_.dropped(), c.dropped);
      if (!c.dropped) { EXPECT_EQ(sink_.error(), EINVAL); }
      EXPECT_EQ(dispatcher_.stats().malformed.load(), ++malformed);
    }
  }
  EXPECT_THAT(fs_.calls(), IsEmpty());
}

TEST_F(ProtoTest, MalformedContiguousRequestsAreCountedAndHonourNoReply) {
  // in.len disagrees with what arrived: a FORGET is dropped, not answered.
  std::string forget = Contiguous(FUSE_FORGET, 12, Bytes(fuse_forget_in{3}));
  EXPECT_EQ(DispatchContiguous(forget + "x"), -EINVAL);
  EXPECT_TRUE(sink_.dropped());
  EXPECT_EQ(sink_.answers(), 1);
  std::string getattr = Contiguous(FUSE_GETATTR, 1, Bytes(fuse_getattr_in{}));
  EXPECT_EQ(DispatchContiguous(getattr.substr(0, getattr.size() - 1)), -EINVAL);
  EXPECT_EQ(AnswerError(), EINVAL);
  // Fewer bytes than a header: nothing to answer, the request is dropped.
  EXPECT_EQ(DispatchContiguous(getattr.substr(0, 39)), -EINVAL);
  EXPECT_TRUE(sink_.dropped());
  EXPECT_EQ(sink_.answers(), 1);
  EXPECT_EQ(dispatcher_.stats().malformed.load(), 3u);
  EXPECT_EQ(dispatcher_.stats().requests.load(), 3u);
  EXPECT_THAT(fs_.calls(), IsEmpty());
}

// The op struct is exactly the table's size in both layouts; NOTIFY_REPLY's
// opens the io-uring payload.
TEST_F(ProtoTest, ViewHoldsExactlyTheOpStruct) {
  fuse_read_in r{};
  r.size = 4096;
  std::string args = Bytes(r) + "tail";
  std::string req = Contiguous(FUSE_READ, 2, args);
  RequestView v;
  ASSERT_EQ(Decode(RequestBytes::Contiguous(req.data(), req.size()), &v), 0);
  EXPECT_EQ(v.op.size(), sizeof(fuse_read_in));
  EXPECT_EQ(std::string(v.rest.data(), v.rest.size()), "tail");

  char in_out[FUSE_URING_IN_OUT_HEADER_SZ] = {};
  char op_in[FUSE_URING_OP_IN_OUT_SZ] = {};
  fuse_in_header h = Header(FUSE_READ, 2, 0);
  std::memcpy(in_out, &h, sizeof(h));
  std::memcpy(op_in, &r, sizeof(r));
  ASSERT_EQ(Decode(RequestBytes::Split(in_out, op_in, nullptr, 0, 0), &v), 0);
  EXPECT_EQ(v.op.data(), op_in);
  EXPECT_EQ(v.op.size(), sizeof(fuse_read_in));
  EXPECT_TRUE(v.rest.empty());

  fuse_notify_retrieve_in nr{};
  nr.size = 3;
  std::string payload = Bytes(nr) + "abc";
  h = Header(FUSE_NOTIFY_REPLY, 2, 0);
  std::memcpy(in_out, &h, sizeof(h));
  ASSERT_EQ(Decode(RequestBytes::Split(in_out, op_in, payload.data(), payload.size(), payload.size()), &v), 0);
  EXPECT_EQ(v.op.data(), payload.data());
  EXPECT_EQ(v.op.size(), sizeof(fuse_notify_retrieve_in));
  EXPECT_EQ(std::string(v.rest.data(), v.rest.size()), "abc");
  // Shorter than its op struct: malformed, dropped (no reply).
  EXPECT_EQ(Decode(RequestBytes::Split(in_out, op_in, payload.data(), 8, payload.size()), &v), -EINVAL);
  EXPECT_TRUE(v.has_header);
  EXPECT_EQ(DispatchSplit(h, "", payload.substr(0, 8)), -EINVAL);
  EXPECT_TRUE(sink_.dropped());
}

// --- split layout == contiguous layout ------------------------------------------

TEST_F(ProtoTest, SplitLayoutDecodesLikeContiguous) {
  fuse_write_in w{};
  w.offset = 8192;
  w.size = 11;
  fuse_getattr_in g{};
  g.getattr_flags = FUSE_GETATTR_FH;
  g.fh = 99;
  struct Case {
    uint32_t opcode;
    std::string op;
    std::string rest;
  };
  std::vector<Case> cases = {
      {FUSE_LOOKUP, "", Name("file")},
      {FUSE_GETATTR, Bytes(g), ""},
      {FUSE_WRITE, Bytes(w), "hello world"},
      {FUSE_MKDIR, Bytes(fuse_mkdir_in{0750, 0}), Name("dir")},
      {FUSE_SYMLINK, "", Name("ln") + Name("../target")},
      {FUSE_RENAME, Bytes(fuse_rename_in{8}), Name("old") + Name("new")},
      {FUSE_RENAME2, Bytes(fuse_rename2_in{8, 1, 0}), Name("old") + Name("new")},
      {FUSE_LINK, Bytes(fuse_link_in{4}), Name("hard")},
      {FUSE_CREATE, Bytes(fuse_create_in{0, 0644, 0, 0}), Name("new-file")},
      {FUSE_SETXATTR, Bytes(fuse_getxattr_in{5, 1}), Name("user.k") + "value"},
      {FUSE_UNLINK, "", Name("gone")},
      {FUSE_FORGET, Bytes(fuse_forget_in{2}), ""},
      {FUSE_BATCH_FORGET, Bytes(fuse_batch_forget_in{2, 0}),
       Bytes(fuse_forget_one{5, 1}) + Bytes(fuse_forget_one{6, 2})},
      {FUSE_STATFS, "", ""},
      {FUSE_MKDIR, Bytes(fuse_mkdir_in{0750, 0}), Name("..")},
      {FUSE_WRITE, Bytes(w), "short"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(OpcodeName(c.opcode));
    RecordingFs contiguous_fs, split_fs;
    fuse_in_header h = Header(c.opcode, 3, c.op.size() + c.rest.size(), 77);

    Dispatcher d1(&contiguous_fs, nullptr, false);
    CaptureSink s1(1 << 16);
    std::string req = Bytes(h) + c.op + c.rest;
    ASSERT_EQ(d1.Deliver(RequestBytes::Contiguous(req.data(), req.size()), &s1), 0);

    Dispatcher d2(&split_fs, nullptr, false);
    CaptureSink s2(1 << 16);
    char in_out[FUSE_URING_IN_OUT_HEADER_SZ] = {};
    char op_in[FUSE_URING_OP_IN_OUT_SZ] = {};
    std::memcpy(in_out, &h, sizeof(h));
    std::memcpy(op_in, c.op.data(), c.op.size());
    std::vector<char> payload(c.rest.begin(), c.rest.end());
    payload.resize(4096);
    const RequestBytes split =
        RequestBytes::Split(in_out, op_in, payload.data(), c.rest.size(), payload.size());
    RequestView v2;
    ASSERT_EQ(Decode(split, &v2), 0);
    EXPECT_EQ(v2.in.unique, 77u);
    EXPECT_EQ(v2.in.nodeid, 3u);
    EXPECT_EQ(std::string(v2.op.data(), v2.op.size()), c.op.substr(0, FindOp(c.opcode)->arg_size));
    ASSERT_EQ(d2.Deliver(split, &s2), 0);

    EXPECT_EQ(split_fs.calls(), contiguous_fs.calls());
    EXPECT_EQ(s2.error(), s1.error());
    EXPECT_EQ(s2.dropped(), s1.dropped());
    EXPECT_EQ(s2.args(), s1.args());
    EXPECT_EQ(s1.answers(), 1);
    EXPECT_EQ(s2.answers(), 1);
  }
}

// Random requests in both layouts: never a crash, always exactly one answer
// (a reply or a drop), and a drop only for the no-reply opcodes.
TEST_F(ProtoTest, RandomRequestsAreAnsweredExactlyOnce) {
  uint64_t x = 0x9e3779b97f4a7c15ull;
  auto next = [&x] {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return x;
  };
  for (int i = 0; i < 20000; i++) {
    uint32_t opcode = static_cast<uint32_t>(next() % (FUSE_OPCODE_LIMIT + 2));
    size_t len = next() % 200;
    std::string args(len, '\0');
    for (char& c : args) {
      uint64_t r = next() % 8;
      c = r == 0 ? '\0' : r == 1 ? '/' : r == 2 ? '.' : static_cast<char>(next());
    }
    fuse_in_header h = Header(opcode, next() % 4, args.size(), static_cast<uint64_t>(i));
    bool dropped = opcode == FUSE_FORGET || opcode == FUSE_BATCH_FORGET || opcode == FUSE_INTERRUPT ||
                    opcode == FUSE_NOTIFY_REPLY;
    SCOPED_TRACE(absl::StrCat("request ", i, " ", OpcodeName(opcode), " with ", len, " argument bytes"));
    DispatchContiguous(Bytes(h) + args);
    ASSERT_EQ(sink_.answers(), 1);
    if (!dropped) { ASSERT_FALSE(sink_.dropped()); }
    size_t cut = len == 0 ? 0 : next() % (len + 1);
    DispatchSplit(h, args.substr(0, std::min<size_t>(cut, FUSE_URING_OP_IN_OUT_SZ)), args.substr(cut));
    ASSERT_EQ(sink_.answers(), 1);
    if (!dropped) { ASSERT_FALSE(sink_.dropped()); }
  }
}

// --- reply encoding -------------------------------------------------------------

// DevSlotSink writing to a pipe instead of /dev/fuse.
class PipeSlotSink : public DevSlotSink {
 public:
  int recycled = 0;

 protected:
  void Recycle() override { recycled++; }
};

class ReplyEncodingTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(pipe2(fds_, O_CLOEXEC | O_NONBLOCK), 0);
    ASSERT_EQ(posix_memalign(reinterpret_cast<void**>(&slot_), 4096, kSlot), 0);
    std::memset(slot_, 0xa5, kSlot);
  }
  void TearDown() override {
    close(fds_[0]);
    close(fds_[1]);
    free(slot_);
  }
  void Arm(uint64_t unique) {
    sink_.Arm(fds_[1], slot_, kSlot);
    fuse_in_header in{};
    in.unique = unique;
    sink_.Begin(in);
  }
  // One message from the pipe: header and arguments.
  std::string ReadMessage(fuse_out_header* out) {
    char buf[1 << 16];
    ssize_t n = read(fds_[0], buf, sizeof(buf));
    if (n < static_cast<ssize_t>(sizeof(*out))) {
      ADD_FAILURE() << "short message: " << n;
      return "";
    }
    std::memcpy(out, buf, sizeof(*out));
    EXPECT_EQ(out->len, static_cast<uint32_t>(n)) << "header len vs bytes written";
    return std::string(buf + sizeof(*out), static_cast<size_t>(n) - sizeof(*out));
  }

  const size_t kSlot = DevSlotSize(4096);
  int fds_[2] = {-1, -1};
  char* slot_ = nullptr;
  PipeSlotSink sink_;
};

TEST_F(ReplyEncodingTest, DataReplyHeaderAndArguments) {
  Arm(0x1122334455667788ull);
  Reply r(&sink_, 0x1122334455667788ull, FUSE_READLINK);
  r.Data("target");
  EXPECT_FALSE(r.pending());
  fuse_out_header out;
  std::string args = ReadMessage(&out);
  EXPECT_EQ(out.len, sizeof(fuse_out_header) + 6);
  EXPECT_EQ(out.error, 0);
  EXPECT_EQ(out.unique, 0x1122334455667788ull);
  EXPECT_EQ(args, "target");
  EXPECT_EQ(sink_.recycled, 1);
}

TEST_F(ReplyEncodingTest, ErrorMapping) {
  struct Case {
    int err;
    int32_t wire;
  };
  for (Case c : {Case{ENOENT, -ENOENT}, Case{0, 0}, Case{EACCES, -EACCES}, Case{4095, -4095},
                 Case{4096, -EIO}, Case{-3, -EIO}, Case{1 << 30, -EIO}}) {
    SCOPED_TRACE(c.err);
    Arm(9);
    Reply r(&sink_, 9, FUSE_GETATTR);
    r.Error(c.err);
    fuse_out_header out;
    std::string args = ReadMessage(&out);
    EXPECT_EQ(out.error, c.wire);
    EXPECT_EQ(out.len, sizeof(fuse_out_header));
    EXPECT_EQ(out.unique, 9u);
    EXPECT_EQ(args, "");
  }
}

TEST_F(ReplyEncodingTest, OversizedOkBecomesEio) {
  Arm(5);
  Reply r(&sink_, 5, FUSE_READ);
  r.Ok(kSlot);  // more than the argument area holds
  fuse_out_header out;
  ReadMessage(&out);
  EXPECT_EQ(out.error, -EIO);
  EXPECT_EQ(out.len, sizeof(fuse_out_header));
}

TEST_F(ReplyEncodingTest, MissingReplyIsEioAndCounted) {
  uint64_t before = Reply::MissingReplies();
  Arm(31);
  { Reply r(&sink_, 31, FUSE_STATFS); }
  fuse_out_header out;
  ReadMessage(&out);
  EXPECT_EQ(out.error, -EIO);
  EXPECT_EQ(out.unique, 31u);
  EXPECT_EQ(Reply::MissingReplies(), before + 1);
  EXPECT_EQ(sink_.recycled, 1);
}

TEST_F(ReplyEncodingTest, DropWritesNothing) {
  Arm(1);
  Reply r(&sink_, 1, FUSE_FORGET);
  r.None();
  char c;
  EXPECT_EQ(read(fds_[0], &c, 1), -1);
  EXPECT_EQ(errno, EAGAIN);
  EXPECT_EQ(sink_.recycled, 1);
}

// A malformed request read into a slot is answered EINVAL on the wire with
// its own unique (Deliver tells the slot the header).
TEST_F(ReplyEncodingTest, MalformedRequestAnsweredWithItsUnique) {
  RecordingFs fs;
  Dispatcher d(&fs, nullptr, false);
  std::string req = Contiguous(FUSE_GETATTR, 17, std::string(3, '\0'), 4321);
  std::memcpy(slot_ + kRequestOffset, req.data(), req.size());
  sink_.Arm(fds_[1], slot_, kSlot);
  EXPECT_EQ(d.Deliver(sink_.Request(req.size()), &sink_), -EINVAL);
  fuse_out_header out;
  EXPECT_EQ(ReadMessage(&out), "");
  EXPECT_EQ(out.unique, 4321u);
  EXPECT_EQ(out.error, -EINVAL);
  EXPECT_EQ(sink_.recycled, 1);
  EXPECT_THAT(fs.calls(), IsEmpty());
}

TEST(OutHeader, RepliesAndNotifications) {
  fuse_out_header h = ReplyHeader(0x1122334455667788ull, -ENOENT, 0);
  EXPECT_EQ(h.len, sizeof(fuse_out_header));
  EXPECT_EQ(h.error, -ENOENT);
  EXPECT_EQ(h.unique, 0x1122334455667788ull);
  char buf[sizeof(fuse_out_header) + 1];
  buf[sizeof(fuse_out_header)] = 'x';
  WriteReplyHeader(buf, 7, 0, 4096);
  std::memcpy(&h, buf, sizeof(h));
  EXPECT_EQ(h.len, sizeof(fuse_out_header) + 4096);
  EXPECT_EQ(h.unique, 7u);
  EXPECT_EQ(h.error, 0);
  EXPECT_EQ(buf[sizeof(fuse_out_header)], 'x');
  char a[3], b[5];
  struct iovec iov[] = {{a, sizeof(a)}, {b, sizeof(b)}};
  h = NotifyHeader(FUSE_NOTIFY_INVAL_ENTRY, iov, 2);
  EXPECT_EQ(h.len, sizeof(fuse_out_header) + 8);
  EXPECT_EQ(h.error, FUSE_NOTIFY_INVAL_ENTRY);
  EXPECT_EQ(h.unique, 0u);
}

// A whole round trip through the slot layout: request read at
// kRequestOffset, dispatched, answered in place.
TEST_F(ReplyEncodingTest, RequestToReplyInOneSlot) {
  RecordingFs fs;
  Dispatcher d(&fs, nullptr, false);
  fuse_getattr_in g{};
  std::string req = Contiguous(FUSE_GETATTR, 17, Bytes(g), 1234);
  std::memcpy(slot_ + kRequestOffset, req.data(), req.size());
  sink_.Arm(fds_[1], slot_, kSlot);
  ASSERT_EQ(d.Deliver(sink_.Request(req.size()), &sink_), 0);
  fuse_out_header out;
  std::string args = ReadMessage(&out);
  EXPECT_EQ(out.unique, 1234u);
  EXPECT_EQ(out.error, 0);
  ASSERT_EQ(args.size(), sizeof(fuse_attr_out));
  fuse_attr_out a;
  std::memcpy(&a, args.data(), sizeof(a));
  EXPECT_EQ(a.attr.ino, 17u);
  EXPECT_EQ(a.attr.size, 12345u);
  EXPECT_THAT(fs.calls(), ElementsAre("Getattr 17"));

  // The filesystem forgot to answer: EIO on the wire, counted.
  fs.lose_statfs_reply = true;
  uint64_t before = Reply::MissingReplies();
  req = Contiguous(FUSE_STATFS, 1, "", 1235);
  std::memcpy(slot_ + kRequestOffset, req.data(), req.size());
  sink_.Arm(fds_[1], slot_, kSlot);
  ASSERT_EQ(d.Deliver(sink_.Request(req.size()), &sink_), 0);
  ReadMessage(&out);
  EXPECT_EQ(out.unique, 1235u);
  EXPECT_EQ(out.error, -EIO);
  EXPECT_EQ(Reply::MissingReplies(), before + 1);
}

}  // namespace
}  // namespace kmfuse::proto
