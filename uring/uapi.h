// io_uring ABI definitions that Debian's 6.1 uapi headers and liburing 2.3
// lack, as constexpr values in kmfuse::uring.
//
// Why constexpr and not macros: <liburing.h> (and newer uapi headers) may
// define some of the same names as macros or enumerators. Distinct k-prefixed
// names cannot clash with either, and where the system header does define the
// value we static_assert that both agree, so a header upgrade that changes a
// value breaks the build instead of the ABI.
//
// Status of each definition (see docs/kernel-interfaces.md):
//   - kOpReadMultishot, kOpUringCmd, kPbufRingMmap, kPbufRingInc, kOffPbuf*,
//     the CQE flag values and the setup flags are mainline ABI.
//   - kPbufRingKernelManaged and KmbufReg describe the kernel-managed buffer
//     ring ("kmbuf") series, which was proposed and never merged in mainline.
//     Registering with that flag returns -EINVAL on every released kernel.
//
// This header is pure data: no functions, no state, safe from any thread.
#ifndef KMFUSE_URING_UAPI_H_
#define KMFUSE_URING_UAPI_H_

#include <cstddef>
#include <cstdint>

#include <liburing.h>

namespace kmfuse::uring {

// ---- SQE opcodes -----------------------------------------------------------
// IORING_OP_URING_CMD: a driver-defined command (FUSE-over-io_uring uses it).
inline constexpr uint8_t kOpUringCmd = 46;
// IORING_OP_READ_MULTISHOT (6.7+): re-arming read into selected buffers;
// liburing 2.3 has neither the enumerator nor a prep helper.
inline constexpr uint8_t kOpReadMultishot = 49;
static_assert(IORING_OP_URING_CMD == kOpUringCmd, "liburing disagrees on URING_CMD");

// ---- io_uring_register(2) opcodes -----------------------------------------
inline constexpr unsigned kRegisterPbufRing = 22;    // IORING_REGISTER_PBUF_RING
inline constexpr unsigned kUnregisterPbufRing = 23;  // IORING_UNREGISTER_PBUF_RING
static_assert(IORING_REGISTER_PBUF_RING == kRegisterPbufRing, "");
static_assert(IORING_UNREGISTER_PBUF_RING == kUnregisterPbufRing, "");

// ---- io_uring_buf_reg.flags (enum io_uring_register_pbuf_ring_flags) ------
// The kernel allocates the ring; userspace mmaps it at kOffPbufRing.
inline constexpr uint16_t kPbufRingMmap = 1;
// Incremental consumption (6.12+); incompatible with kernel-managed rings.
inline constexpr uint16_t kPbufRingInc = 2;
// kmbuf series only (never merged; model only): the kernel owns ring AND buffers and
// recycles them itself. Requires kPbufRingMmap; rejected with kPbufRingInc.
inline constexpr uint16_t kPbufRingKernelManaged = 4;

// ---- mmap offsets on the ring fd ------------------------------------------
inline constexpr uint64_t kOffPbufRing = 0x80000000ULL;  // IORING_OFF_PBUF_RING
inline constexpr unsigned kOffPbufShift = 16;            // IORING_OFF_PBUF_SHIFT

// mmap offset of buffer group `bgid`'s kernel-allocated region.
constexpr uint64_t PbufRingOffset(uint16_t bgid) {
  return kOffPbufRing | (static_cast<uint64_t>(bgid) << kOffPbufShift);
}

// ---- uring_cmd flags (sqe->uring_cmd_flags) --------------------------------
// sqe->buf_index names a registered (fixed) buffer.
inline constexpr uint32_t kUringCmdFixed = 1u << 0;
static_assert(IORING_URING_CMD_FIXED == kUringCmdFixed, "");

// ---- CQE flags -------------------------------------------------------------
inline constexpr uint32_t kCqeFBuffer = 1u << 0;  // upper 16 bits hold the bid
inline constexpr uint32_t kCqeFMore = 1u << 1;    // the SQE stays armed
inline constexpr unsigned kCqeBufferShift = 16;
static_assert(IORING_CQE_F_BUFFER == kCqeFBuffer, "");
static_assert(IORING_CQE_F_MORE == kCqeFMore, "");
static_assert(IORING_CQE_BUFFER_SHIFT == kCqeBufferShift, "");

// ---- io_uring_setup(2) flags -----------------------------------------------
inline constexpr uint32_t kSetupCoopTaskrun = 1u << 8;
inline constexpr uint32_t kSetupTaskrunFlag = 1u << 9;
inline constexpr uint32_t kSetupSqe128 = 1u << 10;
inline constexpr uint32_t kSetupCqe32 = 1u << 11;
inline constexpr uint32_t kSetupSingleIssuer = 1u << 12;
inline constexpr uint32_t kSetupDeferTaskrun = 1u << 13;
static_assert(IORING_SETUP_COOP_TASKRUN == kSetupCoopTaskrun, "");
static_assert(IORING_SETUP_TASKRUN_FLAG == kSetupTaskrunFlag, "");
static_assert(IORING_SETUP_SQE128 == kSetupSqe128, "");
static_assert(IORING_SETUP_CQE32 == kSetupCqe32, "");
static_assert(IORING_SETUP_SINGLE_ISSUER == kSetupSingleIssuer, "");
static_assert(IORING_SETUP_DEFER_TASKRUN == kSetupDeferTaskrun, "");

// ---- SQE geometry ----------------------------------------------------------
inline constexpr size_t kSqeSize = 64;
inline constexpr size_t kSqe128Size = 128;
// Offset of the command area (sqe->cmd / addr3): 16 bytes in a 64-byte SQE,
// 80 bytes in a 128-byte SQE.
inline constexpr size_t kSqeCmdOffset = 48;
inline constexpr size_t kSqeCmdLen = kSqeSize - kSqeCmdOffset;       // 16
inline constexpr size_t kSqe128CmdLen = kSqe128Size - kSqeCmdOffset;  // 80
static_assert(sizeof(io_uring_sqe) == kSqeSize, "");
static_assert(offsetof(io_uring_sqe, addr3) == kSqeCmdOffset, "");

// ---- Kernel-managed buffer ring registration (kmbuf series) ---------------
// The kmbuf variant of struct io_uring_buf_reg: with kPbufRingKernelManaged
// set, the first word is the per-buffer size instead of a ring address.
// buf_size must be non-zero and page-aligned, ring_entries a power of two
// below 65536, resv all zero.
struct KmbufReg {
  union {
    uint64_t ring_addr;  // provided rings: user address of the ring
    uint32_t buf_size;   // kernel-managed rings: bytes per buffer
  };
  uint32_t ring_entries;
  uint16_t bgid;
  uint16_t flags;  // kPbufRing* bits
  uint64_t resv[3];
};
static_assert(sizeof(KmbufReg) == 40, "KmbufReg must match io_uring_buf_reg");
static_assert(offsetof(KmbufReg, ring_addr) == 0, "");
static_assert(offsetof(KmbufReg, buf_size) == 0, "");
static_assert(offsetof(KmbufReg, ring_entries) == 8, "");
static_assert(offsetof(KmbufReg, bgid) == 12, "");
static_assert(offsetof(KmbufReg, flags) == 14, "");
static_assert(offsetof(KmbufReg, resv) == 16, "");
static_assert(sizeof(KmbufReg) == sizeof(io_uring_buf_reg), "");

// One entry of a provided buffer ring (struct io_uring_buf).
static_assert(sizeof(io_uring_buf) == 16, "");

}  // namespace kmfuse::uring

#endif  // KMFUSE_URING_UAPI_H_
