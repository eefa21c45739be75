// Mount-table helpers for tests (testonly): what is mounted where, read from
// /proc/self/mountinfo only (stat() on a FUSE mount can block), and the
// forced way out of a mount whatever state its daemon is in.
//
// Used by TempDir (a directory with a mount below it is detached before it is
// removed) and by the tests that run kmfused (//tests/testing).
#ifndef KMFUSE_FS_TESTING_MOUNTS_H_
#define KMFUSE_FS_TESTING_MOUNTS_H_

#include <string>
#include <vector>

namespace kmfuse::testing {

// One line of /proc/self/mountinfo (mount point unescaped).
struct MountEntry {
  unsigned major = 0;
  unsigned minor = 0;
  std::string mountpoint;
  std::string fstype;
};

// Every mount this process sees, in mountinfo order (parents first).
std::vector<MountEntry> ReadMountinfo();

// The fusectl connection number of the topmost FUSE mount at path, 0 if none.
unsigned FuseConnectionAt(const std::string& path);
// Number of mounts (any type) whose mount point is path.
int MountCountAt(const std::string& path);
// The filesystem type of the topmost mount at path ("fuse.kmfused"), "" if none.
std::string MountTypeAt(const std::string& path);

// Writes 1 to /sys/fs/fuse/connections/<conn>/abort (mounting fusectl there
// first if needed): every pending and future request of that connection
// fails with ECONNABORTED. False if conn is 0 or the write failed (not root).
bool AbortFuseConnection(unsigned conn);

// Aborts every FUSE connection mounted at path and detaches every mount
// there (umount2 MNT_DETACH). Safe on a path with nothing mounted.
void ForceUnmount(const std::string& path);

}  // namespace kmfuse::testing

#endif  // KMFUSE_FS_TESTING_MOUNTS_H_
