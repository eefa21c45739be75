#include "daemon/privileges.h"

#include <errno.h>
#include <linux/capability.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdio>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace kmfuse {
namespace {

struct KeptCap {
  int cap;
  const char* name;
};

constexpr KeptCap kKeptCapabilities[] = {
    {CAP_CHOWN, "chown"},                     // new files owned by their creator
    {CAP_DAC_OVERRIDE, "dac_override"},       // serve files whatever their mode
    {CAP_DAC_READ_SEARCH, "dac_read_search"}, // open_by_handle_at (fd budget reopen)
    {CAP_FOWNER, "fowner"},                   // chmod/utimens/xattrs on others' files
    {CAP_FSETID, "fsetid"},                   // keep suid/sgid as the caller asked
    {CAP_SETGID, "setgid"},                   // run_as_caller: fsgid, groups
    {CAP_SETUID, "setuid"},                   // run_as_caller: fsuid
    {CAP_IPC_LOCK, "ipc_lock"},               // io_uring rings/buffers unaccounted
    {CAP_SYS_ADMIN, "sys_admin"},             // umount, FUSE passthrough backing ids
    {CAP_SYS_NICE, "sys_nice"},               // queue_sched=idle: threads back from SCHED_IDLE
    {CAP_SYS_RESOURCE, "sys_resource"},       // reserved blocks, fd limit
    {CAP_MKNOD, "mknod"},                     // MKNOD of device nodes
    {CAP_SETFCAP, "setfcap"},                 // security.capability xattrs
};

int LastCap() {
  FILE* f = fopen("/proc/sys/kernel/cap_last_cap", "re");
  int last = CAP_LAST_CAP;
  if (f != nullptr) {
    if (fscanf(f, "%d", &last) != 1) last = CAP_LAST_CAP;
    fclose(f);
  }
  return last;
}

}  // namespace

uint64_t KeptCapabilityMask() {
  uint64_t m = 0;
  for (const KeptCap& k : kKeptCapabilities) m |= uint64_t{1} << k.cap;
  return m;
}

std::string DescribeCapabilityMask(uint64_t mask) {
  std::vector<std::string> names;
  for (const KeptCap& k : kKeptCapabilities) {
    if ((mask & (uint64_t{1} << k.cap)) != 0) names.push_back(k.name);
  }
  return absl::StrJoin(names, ",");
}

absl::StatusOr<uint64_t> DropCapabilities() {
  __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[2] = {};
  if (syscall(SYS_capget, &hdr, data) != 0) return absl::ErrnoToStatus(errno, "capget");
  const uint64_t permitted = data[0].permitted | (uint64_t{data[1].permitted} << 32);
  if (permitted == 0) return uint64_t{0};  // an unprivileged daemon: nothing to drop
  const uint64_t keep = KeptCapabilityMask() & permitted;

  // The bounding set first: PR_CAPBSET_DROP needs CAP_SETPCAP, which goes
  // with the capset below.
  const int last = LastCap();
  for (int cap = 0; cap <= last && cap < 64; cap++) {
    if ((keep & (uint64_t{1} << cap)) != 0) continue;
    if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 && errno != EINVAL) {
      return absl::ErrnoToStatus(errno, absl::StrCat("prctl(PR_CAPBSET_DROP, ", cap, ")"));
    }
  }
  if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0 && errno != EINVAL) {
    return absl::ErrnoToStatus(errno, "prctl(PR_CAP_AMBIENT_CLEAR_ALL)");
  }
  for (int i = 0; i < 2; i++) {
    const uint32_t word = static_cast<uint32_t>(keep >> (32 * i));
    data[i].effective = word;
    data[i].permitted = word;
    data[i].inheritable = 0;
  }
  if (syscall(SYS_capset, &hdr, data) != 0) return absl::ErrnoToStatus(errno, "capset");
  // Root running a setuid binary gains nothing anyway; this also stops file
  // capabilities from giving back what was dropped.
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
    return absl::ErrnoToStatus(errno, "prctl(PR_SET_NO_NEW_PRIVS)");
  }
  return keep;
}

}  // namespace kmfuse
