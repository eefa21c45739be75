#include "daemon/mount.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <utility>

#include "absl/strings/str_cat.h"
#include "uring/base/unique_fd.h"

namespace kmfuse {
namespace {

absl::Status CheckMountpoint(const std::string& mnt, bool nonempty) {
  struct stat st;
  if (stat(mnt.c_str(), &st) != 0) {
    int err = errno;
    if (err == ENOTCONN) {
      return absl::FailedPreconditionError(absl::StrCat(
          "mountpoint ", mnt, " is a dead FUSE mount (its daemon is gone); run 'umount -l ", mnt,
          "' first"));
    }
    if (err == ENOENT) {
      return absl::NotFoundError(absl::StrCat("mountpoint ", mnt, " does not exist; create it with mkdir"));
    }
    return absl::ErrnoToStatus(err, absl::StrCat("mountpoint ", mnt));
  }
  if (!S_ISDIR(st.st_mode)) {
    return absl::FailedPreconditionError(absl::StrCat("mountpoint ", mnt, " is not a directory"));
  }
  if (!nonempty) {
    DIR* d = opendir(mnt.c_str());
    if (d == nullptr) return absl::ErrnoToStatus(errno, absl::StrCat("mountpoint ", mnt));
    bool empty = true;
    while (struct dirent* e = readdir(d)) {
      if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) {
        empty = false;
        break;
      }
    }
    closedir(d);
    if (!empty) {
      return absl::FailedPreconditionError(absl::StrCat(
          "mountpoint ", mnt, " is not empty (use -o nonempty to mount over it anyway)"));
    }
  }
  return absl::OkStatus();
}

std::string KernelMountOptions(int fd, const MountFlags& f) {
  std::string opts = absl::StrCat("fd=", fd, ",rootmode=40000,user_id=", getuid(),
                                  ",group_id=", getgid());
  if (f.allow_other) opts += ",allow_other";
  if (f.default_permissions) opts += ",default_permissions";
  return opts;
}

unsigned long MsFlags(const MountFlags& f) {
  unsigned long flags = 0;
  if (f.read_only) flags |= MS_RDONLY;
  if (f.nosuid) flags |= MS_NOSUID;
  if (f.nodev) flags |= MS_NODEV;
  if (f.noexec) flags |= MS_NOEXEC;
  if (f.noatime) flags |= MS_NOATIME;
  return flags;
}

// libfuse3's protocol: fusermount3 mounts and passes the /dev/fuse fd back
// over the socket named by _FUSE_COMMFD.
absl::StatusOr<UniqueFd> MountViaFusermount(const std::string& mnt, const MountFlags& f) {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) return absl::ErrnoToStatus(errno, "socketpair");
  // Not SOCK_CLOEXEC: fusermount3 inherits theirs across exec.
  UniqueFd ours(sv[0]);
  UniqueFd theirs(sv[1]);
  std::string opts = absl::StrCat("rootmode=40000", f.allow_other ? ",allow_other" : "",
                                  f.default_permissions ? ",default_permissions" : "",
                                  f.read_only ? ",ro" : "", f.nosuid ? ",nosuid" : "",
                                  f.nodev ? ",nodev" : "", f.noexec ? ",noexec" : "",
                                  ",fsname=", f.fsname, ",subtype=", f.subtype);
  pid_t pid = fork();
  if (pid < 0) return absl::ErrnoToStatus(errno, "fork");
  if (pid == 0) {
    ours.reset();
    char env[32];
    snprintf(env, sizeof(env), "%d", theirs.get());
    setenv("_FUSE_COMMFD", env, 1);
    execlp("fusermount3", "fusermount3", "-o", opts.c_str(), "--", mnt.c_str(), nullptr);
    fprintf(stderr, "kmfused: cannot run fusermount3: %s (install fuse3)\n", strerror(errno));
    _exit(127);
  }
  theirs.reset();
  char byte;
  struct iovec iov = {&byte, 1};
  char cbuf[CMSG_SPACE(sizeof(int))];
  struct msghdr msg = {};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = cbuf;
  msg.msg_controllen = sizeof(cbuf);
  ssize_t n;
  do {
    n = recvmsg(ours.get(), &msg, 0);
  } while (n < 0 && errno == EINTR);
  ours.reset();
  int status = 0;
  waitpid(pid, &status, 0);
  struct cmsghdr* c = CMSG_FIRSTHDR(&msg);
  if (n <= 0 || c == nullptr || c->cmsg_type != SCM_RIGHTS) {
    return absl::PermissionDeniedError(absl::StrCat(
        "fusermount3 could not mount ", mnt, " (exit status ", WEXITSTATUS(status),
        "); is /etc/fuse.conf's user_allow_other needed, or is the mountpoint yours?"));
  }
  int fd;
  memcpy(&fd, CMSG_DATA(c), sizeof(fd));
  return UniqueFd(fd);
}

}  // namespace

void EnsureFusectl() {
  const char* dir = "/sys/fs/fuse/connections";
  struct stat st;
  if (stat(dir, &st) != 0) return;
  FILE* f = fopen("/proc/self/mounts", "r");
  if (f != nullptr) {
    char line[4096];
    while (fgets(line, sizeof(line), f)) {
      if (strstr(line, " /sys/fs/fuse/connections ") != nullptr) {
        fclose(f);
        return;
      }
    }
    fclose(f);
  }
  mount("fusectl", dir, "fusectl", 0, nullptr);
}

bool AbortConnection(unsigned conn_id) {
  if (conn_id == 0) return false;
  EnsureFusectl();
  std::string path = absl::StrCat("/sys/fs/fuse/connections/", conn_id, "/abort");
  UniqueFd fd(open(path.c_str(), O_WRONLY | O_CLOEXEC));
  return fd.valid() && write(fd.get(), "1", 1) == 1;
}

namespace {

// mountinfo writes space, tab, newline and backslash in paths as \ooo.
std::string UnescapeMountinfo(const char* s) {
  std::string out;
  for (; *s != '\0'; s++) {
    if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' && s[2] <= '7' &&
        s[3] >= '0' && s[3] <= '7') {
      out.push_back(static_cast<char>((s[1] - '0') * 64 + (s[2] - '0') * 8 + (s[3] - '0')));
      s += 3;
    } else {
      out.push_back(*s);
    }
  }
  return out;
}

}  // namespace

unsigned FuseConnIdOf(const std::string& path) {
  // Read the device number from mountinfo rather than stat(): stat on a FUSE
  // mount sends GETATTR, which blocks before INIT is answered and forever on
  // a dead connection. The last matching line is the topmost mount.
  FILE* f = fopen("/proc/self/mountinfo", "r");
  if (f == nullptr) return 0;
  unsigned found = 0;
  char line[8192];
  while (fgets(line, sizeof(line), f)) {
    unsigned maj = 0, min = 0;
    char mnt[4096];
    char fstype[256];
    if (sscanf(line, "%*u %*u %u:%u %*s %4095s", &maj, &min, mnt) != 3) continue;
    const char* sep = strstr(line, " - ");
    if (sep == nullptr || sscanf(sep + 3, "%255s", fstype) != 1) continue;
    if (path != UnescapeMountinfo(mnt)) continue;
    found = (maj == 0 && strncmp(fstype, "fuse", 4) == 0) ? min : 0;
  }
  fclose(f);
  return found;
}

absl::StatusOr<std::unique_ptr<FuseMount>> FuseMount::Create(const std::string& mountpoint,
                                                             const MountFlags& flags) {
  if (auto s = CheckMountpoint(mountpoint, flags.nonempty); !s.ok()) return s;
  char real[PATH_MAX];
  if (realpath(mountpoint.c_str(), real) == nullptr) return absl::ErrnoToStatus(errno, mountpoint);
  std::string mnt = real;
  if (getuid() != 0) {
    absl::StatusOr<UniqueFd> fd = MountViaFusermount(mnt, flags);
    if (!fd.ok()) return fd.status();
    return std::unique_ptr<FuseMount>(new FuseMount(*std::move(fd), mnt, true));
  }
  UniqueFd fd(open("/dev/fuse", O_RDWR | O_CLOEXEC));
  if (!fd.valid()) {
    int err = errno;
    if (err == ENOENT) {
      return absl::FailedPreconditionError(
          "/dev/fuse does not exist: load the fuse module (modprobe fuse)");
    }
    return absl::ErrnoToStatus(err, "open /dev/fuse");
  }
  std::string type = absl::StrCat("fuse.", flags.subtype);
  std::string opts = KernelMountOptions(fd.get(), flags);
  if (mount(flags.fsname.c_str(), mnt.c_str(), type.c_str(), MsFlags(flags), opts.c_str()) != 0) {
    return absl::ErrnoToStatus(errno, absl::StrCat("mount ", mnt, " (", type, ", ", opts, ")"));
  }
  return std::unique_ptr<FuseMount>(new FuseMount(std::move(fd), mnt, false));
}

std::unique_ptr<FuseMount> FuseMount::Adopt(int fd, const std::string& mountpoint) {
  return std::unique_ptr<FuseMount>(new FuseMount(UniqueFd(fd), mountpoint, false));
}

uint64_t UniqueMountIdOf(const std::string& path) {
  constexpr unsigned kStatxMntIdUnique = 0x4000;  // STATX_MNT_ID_UNIQUE, Linux 6.8
  struct statx stx;
  if (statx(AT_FDCWD, path.c_str(), AT_STATX_DONT_SYNC | AT_NO_AUTOMOUNT | AT_SYMLINK_NOFOLLOW,
            kStatxMntIdUnique, &stx) != 0) {
    return 0;
  }
  return (stx.stx_mask & kStatxMntIdUnique) != 0 ? stx.stx_mnt_id : 0;
}

FuseMount::FuseMount(UniqueFd fd, std::string mountpoint, bool via_fusermount)
    : fd_(std::move(fd)), mountpoint_(std::move(mountpoint)), via_fusermount_(via_fusermount) {
  conn_id_ = FuseConnIdOf(mountpoint_);
  unique_id_ = UniqueMountIdOf(mountpoint_);
}

FuseMount::Owner FuseMount::WhoIsMounted() const {
  if (unique_id_ != 0) return UniqueMountIdOf(mountpoint_) == unique_id_ ? Owner::kUs : Owner::kOther;
  if (conn_id_ != 0) return FuseConnIdOf(mountpoint_) == conn_id_ ? Owner::kUs : Owner::kOther;
  return Owner::kUnknown;
}

void FuseMount::DetachIfStillOurs() {
  if (!mounted_) return;
  if (WhoIsMounted() != Owner::kUs) {
    mounted_ = false;  // gone (or cannot tell): never touch the path
    return;
  }
  Unmount();
}

void FuseMount::Unmount() {
  if (!mounted_) return;
  mounted_ = false;
  // Only detach if the mount there is still ours (an external umount may have
  // already removed it and something else could be mounted there now).
  if (WhoIsMounted() == Owner::kOther) return;
  if (via_fusermount_) {
    pid_t pid = fork();
    if (pid == 0) {
      execlp("fusermount3", "fusermount3", "-u", "-q", "-z", "--", mountpoint_.c_str(), nullptr);
      _exit(127);
    }
    if (pid > 0) waitpid(pid, nullptr, 0);
    return;
  }
  umount2(mountpoint_.c_str(), MNT_DETACH);
}

void FuseMount::Abort() { AbortConnection(conn_id_); }

int FuseMount::Waiting() const {
  if (conn_id_ == 0) return -1;
  std::string path = absl::StrCat("/sys/fs/fuse/connections/", conn_id_, "/waiting");
  FILE* f = fopen(path.c_str(), "re");
  if (f == nullptr) return -1;
  int n = -1;
  if (fscanf(f, "%d", &n) != 1) n = -1;
  fclose(f);
  return n;
}

FuseMount::~FuseMount() {
  Unmount();  // then fd_ closes
}

}  // namespace kmfuse
