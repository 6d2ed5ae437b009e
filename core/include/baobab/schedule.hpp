// A collective is a schedule: rounds of send / recv / reduce / copy operations
// on symbolic buffers. Algorithms only build schedules; the executor runs them
// over MPI, the cost model and the simulator replay them on a modelled cluster.
//
// Execution semantics of one round (the executor and the simulator both follow
// them): every send and recv of the round is posted at once; when all of them
// have completed, the round's local operations (reduce, copy) run in order;
// then the next round starts. Sends read their buffer as it was when the round
// started; a recv and a send of the same round never touch the same elements.
#pragma once
#include <cstddef>
#include <cstdint>
#include <new>
#include <string>
#include <vector>

namespace baobab {

enum class Coll : uint8_t { allreduce = 0, reduce_scatter, allgather, bcast, reduce, alltoall, barrier, count_ };
const char* coll_name(Coll c);
Coll coll_from_name(const std::string& name);  // throws InvalidArgument

// Buffer ids: the caller's input and output, then scratch buffers owned by the
// execution (their element counts are Schedule::scratch[id - kScratch]).
enum : uint8_t { kIn = 0, kOut = 1, kScratch = 2 };

// Eight bytes: a buffer id and an offset of up to 2^56 elements.
struct Ref {
  uint64_t buf : 8 = kOut;
  uint64_t off : 56 = 0;  // elements
  Ref at(size_t delta) const { return Ref{buf, off + delta}; }
};

enum class OpKind : uint8_t { send, recv, reduce, copy };

struct Op {  // 40 bytes
  OpKind kind = OpKind::copy;
  int peer = -1;      // send / recv: rank in the communicator
  Ref a{}, b{}, dst{};  // send: a   recv: dst   copy: dst <- a   reduce: dst <- a OP b
  size_t count = 0;   // elements
};
static_assert(sizeof(Op) == 40);

// The allocator of a round's operations: lists of up to kPooled operations
// (nearly every round's) come from per-thread free lists, so that building
// and dropping schedules of thousands of rounds (the selector builds many)
// does not go through malloc for each. The lists keep what they are given
// back (up to 8 MiB per thread) for the thread's next schedules.
void* op_pool_take(size_t n);
void op_pool_give(void* p, size_t n);
constexpr size_t kPooled = 8;

template <class T>
struct OpAlloc {
  using value_type = T;
  OpAlloc() = default;
  template <class U>
  OpAlloc(const OpAlloc<U>&) {}
  static_assert(sizeof(T) == sizeof(Op), "the pool holds lists of operations");
  T* allocate(size_t n) {
    return static_cast<T*>(n <= kPooled ? op_pool_take(n) : ::operator new(n * sizeof(T)));
  }
  void deallocate(T* p, size_t n) {
    if (n <= kPooled) op_pool_give(p, n);
    else ::operator delete(p);
  }
  template <class U>
  bool operator==(const OpAlloc<U>&) const { return true; }
};

struct Round {
  std::vector<Op, OpAlloc<Op>> ops;
  bool has_comm() const;
};

struct Schedule {
  std::string algo;
  std::vector<Round> rounds;
  std::vector<size_t> scratch;  // element counts of scratch buffers
  size_t elem_size = 1;

  uint8_t add_scratch(size_t count);
  Round& new_round() { return rounds.emplace_back(); }
  // Appends other's rounds after this schedule's; other's scratch ids are renumbered.
  void append(const Schedule& other);
  size_t message_count() const;
  size_t bytes_sent() const;
  std::string describe() const;  // one line per round, for debugging and explain
};

// Receives whose data a reduction of the same round can read where it arrived
// in a peer's memory (the device IPC transport), instead of a copy first: for
// each round, for each op, -1, or for a recv into scratch that exactly one
// reduce of its round reads (as a whole operand, before anything else touches
// it) and nothing reads afterwards before it is overwritten, 2 j (operand a of
// local op j) or 2 j + 1 (operand b).
std::vector<std::vector<int32_t>> direct_reads(const Schedule& s);

// Convenience for builders: a round under construction.
class RoundBuilder {
 public:
  explicit RoundBuilder(Schedule& s) : s_(s) {}
  void send(int peer, Ref a, size_t n) { add(comm_, nc_, comm_more_, Op{OpKind::send, peer, a, {}, {}, n}); }
  void recv(int peer, Ref dst, size_t n) { add(comm_, nc_, comm_more_, Op{OpKind::recv, peer, {}, {}, dst, n}); }
  void reduce(Ref dst, Ref a, Ref b, size_t n) { add(local_, nl_, local_more_, Op{OpKind::reduce, -1, a, b, dst, n}); }
  void copy(Ref dst, Ref a, size_t n) { add(local_, nl_, local_more_, Op{OpKind::copy, -1, a, {}, dst, n}); }
  // Closes the round: appends it to the schedule if it holds anything.
  void done();
  ~RoundBuilder() { done(); }

 private:
  // A round's first few operations of each kind are kept in place (most
  // rounds have one or two), in storage left uninitialised until used:
  // building a schedule then allocates once per round, for the round's own
  // list (from the pool above).
  static constexpr size_t kInline = 4;
  struct Inline {
    alignas(Op) unsigned char raw[kInline * sizeof(Op)];
    Op* at(size_t i) { return reinterpret_cast<Op*>(raw) + i; }
  };
  static void add(Inline& in, size_t& n, std::vector<Op>& more, const Op& op) {
    if (n < kInline) new (in.at(n++)) Op(op);
    else more.push_back(op);
  }
  Schedule& s_;
  Inline comm_, local_;
  size_t nc_ = 0, nl_ = 0;
  std::vector<Op> comm_more_, local_more_;
};

}  // namespace baobab
