// FuseMount: RAII for one FUSE mount and its /dev/fuse fd.
//
// Create() does every fallible step before mounting (mountpoint exists, is a
// directory, is not a dead FUSE mount, is empty unless allowed; /dev/fuse
// opens) so a refused start leaves nothing behind. Root mounts with mount(2);
// other users go through libfuse3's fusermount3 (the _FUSE_COMMFD protocol).
// The destructor unmounts (lazily) and closes the fd.
#ifndef KMFUSE_DAEMON_MOUNT_H_
#define KMFUSE_DAEMON_MOUNT_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "uring/base/unique_fd.h"

namespace kmfuse {

// The mount(2) options of a FUSE mount (ServerOptions' mount flags).
struct MountFlags {
  bool allow_other = false;
  bool default_permissions = false;
  bool read_only = false;
  bool nosuid = true;
  bool nodev = true;
  bool noexec = false;
  bool noatime = false;
  bool nonempty = false;
  std::string fsname;
  std::string subtype = "kmfused";
};

class FuseMount {
 public:
  static absl::StatusOr<std::unique_ptr<FuseMount>> Create(const std::string& mountpoint,
                                                           const MountFlags& flags);
  // Wraps an already mounted connection's fd (the caller mounted it); takes
  // ownership of fd.
  static std::unique_ptr<FuseMount> Adopt(int fd, const std::string& mountpoint);

  FuseMount(const FuseMount&) = delete;
  FuseMount& operator=(const FuseMount&) = delete;
  ~FuseMount();

  // The /dev/fuse fd; owned by this FuseMount (closed after the unmount).
  int fd() const { return fd_.get(); }
  const std::string& mountpoint() const { return mountpoint_; }
  // The fusectl connection number (/sys/fs/fuse/connections/N), 0 if unknown.
  unsigned conn_id() const { return conn_id_; }

  // Detaches the mount (umount2 MNT_DETACH or fusermount3 -u -z) unless the
  // path now holds another mount. Idempotent.
  void Unmount();
  // The connection has ended (external umount, fusectl abort, daemon-side
  // error): detach the mount only if it is provably still this one, as after
  // a fusectl abort, which leaves the dead mount in place. Proof is the
  // never-reused unique mount id (Linux 6.8+); device numbers and fusectl
  // numbers are recycled, so without it the path is left alone.
  void DetachIfStillOurs();
  // Aborts the connection through fusectl: every pending and future request
  // fails, every channel reads ENODEV. Used when a clean unmount does not end
  // the connection (files still open) and on fatal errors.
  void Abort();
  // Requests sent or queued and not yet answered on this connection
  // (/sys/fs/fuse/connections/N/waiting); -1 if unknown.
  int Waiting() const;

 private:
  FuseMount(UniqueFd fd, std::string mountpoint, bool via_fusermount);

  enum class Owner { kUs, kOther, kUnknown };
  Owner WhoIsMounted() const;

  UniqueFd fd_;
  std::string mountpoint_;
  bool via_fusermount_;
  bool mounted_ = true;
  unsigned conn_id_ = 0;
  uint64_t unique_id_ = 0;  // STATX_MNT_ID_UNIQUE of the mount, 0 if unknown
};

// Mounts fusectl at /sys/fs/fuse/connections if it is not mounted yet.
void EnsureFusectl();
// Aborts connection N through fusectl; false if it could not.
bool AbortConnection(unsigned conn_id);
// The never-reused id of the mount at path (STATX_MNT_ID_UNIQUE, Linux 6.8+),
// 0 if the kernel does not report it. AT_STATX_DONT_SYNC: FUSE answers from
// its cache, so no request reaches any daemon (ours before INIT, a dead one,
// or someone else's).
uint64_t UniqueMountIdOf(const std::string& path);
// Connection number of the FUSE mount at path (from its st_dev), 0 if none.
unsigned FuseConnIdOf(const std::string& path);

}  // namespace kmfuse

#endif  // KMFUSE_DAEMON_MOUNT_H_
