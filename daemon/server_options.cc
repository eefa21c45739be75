#include "kmfuse/server_options.h"

namespace kmfuse {
namespace {

struct NamedTransport {
  TransportKind kind;
  const char* name;
};

// The one table of names; TransportChoices lists it in this order.
constexpr NamedTransport kTransportNames[] = {
    {TransportKind::kAuto, "auto"},         {TransportKind::kKmbuf, "kmbuf"},
    {TransportKind::kBufpool, "bufpool"},   {TransportKind::kUring, "uring"},
    {TransportKind::kRingRead, "ring-read"}, {TransportKind::kRead, "read"},
};

}  // namespace

const char* TransportName(TransportKind t) {
  for (const NamedTransport& n : kTransportNames) {
    if (n.kind == t) return n.name;
  }
  return "unknown";
}

std::optional<TransportKind> ParseTransport(std::string_view name) {
  for (const NamedTransport& n : kTransportNames) {
    if (name == n.name) return n.kind;
  }
  return std::nullopt;
}

std::string TransportChoices() {
  std::string out;
  const size_t count = sizeof(kTransportNames) / sizeof(kTransportNames[0]);
  for (size_t i = 0; i < count; i++) {
    if (i > 0) out += i + 1 == count ? " or " : ", ";
    out += kTransportNames[i].name;
  }
  return out;
}

}  // namespace kmfuse
