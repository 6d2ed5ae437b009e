// Wire formats of the collective layer. Two kinds of message carry baobab's own
// bytes: the 32-byte signature (WireHeader) that travels with the first
// messages of every collective, alone or with a small payload, and the
// 512-byte control message (CtrlMsg) of the control channel (queries of where
// a rank is, their answers, and the notices of a failed communicator). Both
// are raw bytes: every rank runs the same build.
#pragma once
#include <cstdint>
#include <cstdio>
#include <string>

#include "baobab/device.hpp"

namespace baobab::runtime {

constexpr uint32_t kMagic = 0x42414f42;     // "BOAB"
// The same header, from a rank whose part of the collective only sends (a
// bcast root, a reduce leaf): each receiver answers with its own header, so
// that the sender, too, learns of a disagreement (a different root, another
// collective) from the messages themselves instead of returning normally.
constexpr uint32_t kMagicAck = 0x42414f41;  // "AOAB"
inline bool header_magic(uint32_t m) { return m == kMagic || m == kMagicAck; }
constexpr size_t kInline = 8192;          // payloads up to this size travel with their header

// The signature of one collective on one rank.
struct WireHeader {
  uint32_t magic = kMagic;
  uint32_t seq = 0;
  uint8_t coll = 0, dtype = 0, op = 0, algo = 0;
  int32_t root = 0;
  uint64_t count = 0;
  uint64_t counts_hash = 0;
};
static_assert(sizeof(WireHeader) == 32, "header must be 32 bytes");
// Set in WireHeader::coll by a rank whose device buffers travel by IPC to its
// node's peers: its messages to them are descriptors, not payloads, so a peer
// that disagrees (host buffers, or IPC off) must learn it from the signature.
constexpr uint8_t kCollIpcBit = 0x80;
// Set by a rank whose device buffers took the device model's plan
// (BAOBAB_DEVICE_PLAN=device): a rank with host buffers, or with the host
// plan, may have chosen another algorithm or segments for the same call.
constexpr uint8_t kCollDevicePlanBit = 0x40;
constexpr uint8_t kCollBits = kCollIpcBit | kCollDevicePlanBit;

// The IPC transport (baobab/device.hpp): what travels in place of a payload
// between ranks of one node, and the receiver's acknowledgement that it has
// copied the payload out (a WireHeader whose magic is kMagicIpcAck).
constexpr uint32_t kMagicIpc = 0x44435049;     // "IPCD"
constexpr uint32_t kMagicIpcAck = 0x4b435049;  // "IPCK"
struct IpcDesc {
  uint32_t magic = kMagicIpc;
  uint32_t pad = 0;
  uint64_t id = 0;      // the exporter's buffer id (peers map each buffer once)
  uint64_t cap = 0;     // its size
  uint64_t offset = 0;  // where the payload is in it
  uint64_t bytes = 0;   // the payload's size
  IpcHandle handle;
  char pad2[24] = {0};
};
static_assert(sizeof(IpcDesc) == 128, "IPC descriptor must be 128 bytes");

enum CtrlType : uint32_t { kQuery = 1, kAnswer = 2, kAbort = 3 };
// Why a communicator failed (travels in an abort notice).
enum FailKind : int32_t { kNone = 0, kMismatch = 1, kTimeout = 2, kMPIFail = 3, kOther = 4, kAborted = 5 };

struct CtrlMsg {
  uint32_t magic = kMagic;
  uint32_t type = 0;
  uint64_t seq = 0;       // query/abort: the operation; answer: operations started
  int32_t from = -1;
  int32_t kind = 0;       // abort: FailKind
  uint64_t extra = 0;     // answer: the queried operation
  uint64_t comm_id = 0;   // the communicator's identity: a message of another one is ignored
  WireHeader hdr;          // answer: the signature of the queried operation, if known
  uint32_t has_hdr = 0;
  uint32_t pad = 0;
  char text[432] = {0};   // answer: where the rank is; abort: message, missing ranks, operation
};
static_assert(sizeof(CtrlMsg) == 512, "control message must be 512 bytes");

inline void set_text(CtrlMsg& m, const std::string& s) { std::snprintf(m.text, sizeof m.text, "%s", s.c_str()); }

// "bcast #2 (count=8, dtype=float64, root=1, algo=binomial)"
std::string describe_header(const WireHeader& h);
// The fields in which a peer's header differs from ours ("count, dtype"); empty if none.
std::string header_diff(const WireHeader& mine, const WireHeader& theirs);

}  // namespace baobab::runtime
