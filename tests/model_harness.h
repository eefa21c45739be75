// ModelHarness: UringQueues (one thread each) + the real Dispatcher + a
// FileSystem, served by a KernelModel instead of the kernel; plus typed
// "client" helpers that inject the requests the kernel would build for a
// syscall (same in_out / op_in / payload split as the real 6.18 kernel, see
// tests/uring_crosscheck_test.cc) and decode the replies.
//
// Lifetime: Start() once; Stop() aborts the model connection and joins the
// queue threads (bounded: a queue that does not exit within the timeout is
// reported as an error and the process aborts, so a hang never goes
// unnoticed). The destructor calls Stop().
#ifndef KMFUSE_TESTS_MODEL_HARNESS_H_
#define KMFUSE_TESTS_MODEL_HARNESS_H_

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "kmfuse/sync.h"
#include "daemon/proto/dispatch.h"
#include "daemon/uring_queue.h"
#include "kmfuse/filesystem.h"
#include "kmfuse/memfs.h"
#include "tests/kernel_model/kernel_model.h"

namespace kmfuse::testing {

struct HarnessOptions {
  model::ModelOptions model;
  PolicyFactory policy;            // required
  unsigned entries = 4;            // per queue
  size_t payload_size = 0;         // 0: the model's max_payload
  FileSystem* fs = nullptr;        // nullptr: an internal MemFs
  std::vector<uint16_t> start_queues;  // empty: all
  // The transport's "every queue is a zero-copy queue" signal
  // (UringQueueConfig::zero_copy_ready), raised once Start() succeeded.
  bool zero_copy_ready = false;
};

// The result of one injected request.
struct Result {
  int error = 0;  // 0 or positive errno (like a syscall's errno); ETIMEDOUT: no reply
  std::string data;
};

class ModelHarness {
 public:
  explicit ModelHarness(HarnessOptions options);
  ~ModelHarness();

  // Starts the queues (start_queues or all). OK once every started queue has
  // submitted its REGISTERs; the first queue error otherwise.
  absl::Status Start();
  // Starts one more queue (for readiness tests).
  void StartQueue(uint16_t qid);
  // Aborts the model connection, joins every queue thread within `timeout`.
  // Returns the first queue error.
  absl::Status Stop(absl::Duration timeout = absl::Seconds(10));
  // Queue errors so far (first one).
  absl::Status QueueStatus();

  model::KernelModel& model() { return *model_; }
  FileSystem& fs() { return *fs_; }
  uint16_t nr_queues() const { return options_.model.nr_queues; }

  // Injects a request and waits for its reply (10 s).
  Result Call(uint16_t qid, uint32_t opcode, uint64_t nodeid, const std::string& op,
              const std::string& payload, uint32_t out_max);
  uint64_t Send(uint16_t qid, uint32_t opcode, uint64_t nodeid, const std::string& op,
                const std::string& payload, uint32_t out_max);
  Result Wait(uint64_t ticket, absl::Duration timeout = absl::Seconds(10));

  // Typed client ops. *_out may be null.
  int Lookup(uint16_t qid, uint64_t parent, const std::string& name, abi::fuse_entry_out* out);
  int Getattr(uint16_t qid, uint64_t ino, abi::fuse_attr_out* out);
  int Create(uint16_t qid, uint64_t parent, const std::string& name, uint32_t mode,
             abi::fuse_entry_out* entry, abi::fuse_open_out* open);
  int Write(uint16_t qid, uint64_t ino, uint64_t fh, uint64_t off, const std::string& data,
            uint32_t* written);
  int Read(uint16_t qid, uint64_t ino, uint64_t fh, uint64_t off, uint32_t size, std::string* out);
  int Release(uint16_t qid, uint64_t ino, uint64_t fh);
  int Open(uint16_t qid, uint64_t ino, uint32_t flags, abi::fuse_open_out* out);
  // READ/WRITE with the caller's pages (KernelModel::InjectPages): zero-copy
  // when the fh's OPEN carried FOPEN_IO_URING_ZERO_COPY on a zero-copy queue.
  int ReadPages(uint16_t qid, uint64_t ino, uint64_t fh, uint64_t off, uint32_t size,
                std::string* out);
  int WritePages(uint16_t qid, uint64_t ino, uint64_t fh, uint64_t off, const std::string& data,
                 uint32_t* written);
  // OPENDIR + READDIR until empty + RELEASEDIR: the names (without . and ..).
  int ListDir(uint16_t qid, uint64_t ino, std::vector<std::string>* names);

  static std::string WriteIn(uint64_t fh, uint64_t off, uint32_t size);
  static std::string ReadIn(uint64_t fh, uint64_t off, uint32_t size);

 private:
  void RunQueue(uint16_t qid);

  HarnessOptions options_;
  std::unique_ptr<model::KernelModel> model_;
  std::unique_ptr<MemFs> memfs_;
  FileSystem* fs_;
  proto::SessionHooks hooks_;
  std::unique_ptr<proto::Dispatcher> dispatcher_;
  std::vector<std::unique_ptr<UringQueue>> queues_;
  std::vector<std::thread> threads_;
  QueueCounter registered_;
  std::atomic<bool> zero_copy_ready_{false};
  std::atomic<unsigned> exited_{0};
  unsigned started_ = 0;
  bool stopped_ = false;
  Mutex mu_;
  absl::Status status_ ABSL_GUARDED_BY(mu_);
};

}  // namespace kmfuse::testing

#endif  // KMFUSE_TESTS_MODEL_HARNESS_H_
