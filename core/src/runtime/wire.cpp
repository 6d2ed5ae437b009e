// Reading signatures: a header described for an error message, and the fields
// in which two ranks' headers differ.
#include "wire.hpp"

#include <sstream>
#include <vector>

#include "baobab/algorithms.hpp"
#include "baobab/dtype.hpp"
#include "baobab/reduce.hpp"

namespace baobab::runtime {

std::string describe_header(const WireHeader& hw) {
  std::ostringstream o;
  WireHeader h = hw;
  h.coll &= static_cast<uint8_t>(~kCollBits);
  const bool per_rank = h.coll == static_cast<uint8_t>(Coll::allgather) ||
                        h.coll == static_cast<uint8_t>(Coll::reduce_scatter) ||
                        h.coll == static_cast<uint8_t>(Coll::alltoall);
  o << coll_name(static_cast<Coll>(h.coll)) << " #" << h.seq << (per_rank ? " (total=" : " (count=") << h.count;
  if (h.dtype != 255) o << ", dtype=" << dtype_name(static_cast<DType>(h.dtype));
  if (h.op == kLseMergeOp) o << ", op=lse_merge";
  else if (h.op != 255) o << ", op=" << redop_name(static_cast<RedOp>(h.op));
  if (h.coll == static_cast<uint8_t>(Coll::bcast) || h.coll == static_cast<uint8_t>(Coll::reduce))
    o << ", root=" << h.root;
  if (h.algo < algorithms().size()) o << ", algo=" << algorithms()[h.algo].name;
  if (hw.coll & kCollDevicePlanBit) o << ", device buffers, device plan";
  if (hw.coll & kCollIpcBit) o << ", device buffers by IPC";
  o << ")";
  return o.str();
}

std::string header_diff(const WireHeader& mine, const WireHeader& theirs) {
  std::vector<std::string> d;
  if (!header_magic(theirs.magic)) return "a message that is not a baobab collective header";
  if (mine.seq != theirs.seq)
    d.push_back("collective sequence number (a rank skipped or repeated a collective)");
  const uint8_t bits = mine.coll ^ theirs.coll;
  if (bits & ~kCollBits) d.push_back("collective");
  if (bits & kCollDevicePlanBit)
    d.push_back("plan (one rank's device buffers took the device model's plan, the other has host buffers or the "
                "host plan: set BAOBAB_DEVICE_PLAN=host on every rank to mix host and device buffers)");
  if (bits & kCollIpcBit)
    d.push_back("memory (one rank's device buffers travel by IPC to its node, the other has host buffers or IPC "
                "off: set BAOBAB_DEVICE_IPC=0 on every rank to mix host and device buffers on one node)");
  if (mine.count != theirs.count) d.push_back("count");
  if (mine.dtype != theirs.dtype) d.push_back("dtype");
  if (mine.op != theirs.op) d.push_back("op");
  if (mine.root != theirs.root) d.push_back("root");
  if (mine.counts_hash != theirs.counts_hash) d.push_back("per-rank counts");
  if (mine.algo != theirs.algo) d.push_back("algorithm");
  std::string out;
  for (const auto& s : d) out += (out.empty() ? "" : ", ") + s;
  return out;
}

}  // namespace baobab::runtime
