// The one opcode dispatch table and the gate in front of it.
//
// Every transport hands the bytes it received and a ReplySink to
// Dispatcher::Deliver, whatever their layout. Deliver decodes (request.h:
// header, op struct complete, lengths) and the handlers check the rest once
// (opcode known, names NUL-terminated and free of '/', payload sizes matching
// their headers, INIT only once); then they trust their input and call the
// FileSystem. Malformed requests are counted, answered EINVAL (or dropped for
// no-reply opcodes) and never reach the filesystem. A
// well-formed entry name longer than NAME_MAX (255 bytes; the kernel sends
// longer ones) is answered ENAMETOOLONG, as every Linux filesystem answers it,
// so a FileSystem sees entry names of 1 to NAME_MAX bytes only.
//
// Thread-safety: Dispatch is called concurrently from every queue thread.
#ifndef KMFUSE_DAEMON_PROTO_DISPATCH_H_
#define KMFUSE_DAEMON_PROTO_DISPATCH_H_

#include <atomic>
#include <cstdint>

#include "daemon/proto/request.h"
#include "kmfuse/filesystem.h"
#include "kmfuse/reply.h"

namespace kmfuse::proto {

// Session-level events the dispatcher does not handle itself.
class SessionHooks {
 public:
  virtual ~SessionHooks() = default;
  // DESTROY arrived (the kernel is unmounting).
  virtual void OnDestroy() {}
};

// Name of an opcode for logs ("LOOKUP"); "UNKNOWN" for others.
const char* OpcodeName(uint32_t opcode);

struct DispatchStats {
  std::atomic<uint64_t> requests{0};
  std::atomic<uint64_t> malformed{0};
  std::atomic<uint64_t> unknown{0};
};

class Dispatcher {
 public:
  // fs and hooks must outlive the dispatcher. Created after INIT succeeded.
  Dispatcher(FileSystem* fs, SessionHooks* hooks, bool debug)
      : fs_(fs), hooks_(hooks), debug_(debug) {}

  // The one way in for every transport. Decodes bytes (Decode), tells the
  // sink the header (ReplySink::Begin) and dispatches. A request that does
  // not decode is counted in stats().malformed and answered -EINVAL, or
  // dropped (Drop) when its opcode takes no reply or no header arrived; it
  // never reaches the filesystem. Either way the sink is answered exactly
  // once (Commit or Drop), possibly later and from another thread if the
  // filesystem answers asynchronously. Returns Decode's result.
  int Deliver(const RequestBytes& bytes, ReplySink* sink);

  FileSystem* fs() const { return fs_; }
  SessionHooks* hooks() const { return hooks_; }
  const DispatchStats& stats() const { return stats_; }

 private:
  void Dispatch(const RequestView& req, ReplySink* sink);

  FileSystem* fs_;
  SessionHooks* hooks_;
  bool debug_;
  DispatchStats stats_;
  std::atomic<bool> said_malformed_{false};
};

}  // namespace kmfuse::proto

#endif  // KMFUSE_DAEMON_PROTO_DISPATCH_H_
