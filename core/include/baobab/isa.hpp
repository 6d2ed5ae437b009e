// Instruction-set tiers of the vectorised kernels (reductions, attention,
// N-body), chosen at run time: the best the CPU supports, optionally capped by
// an environment variable (baseline|avx2|avx512; any other value raises
// InvalidArgument naming the variable; a cap never raises the tier above the CPU).
#pragma once

namespace baobab::isa {

enum class Tier { baseline = 0, avx2 = 1, avx512 = 2 };

// What the AVX2 tier needs besides AVX2 itself (the AVX-512 tier needs it too,
// plus AVX-512 F, DQ, BW and VL).
enum class Avx2With { fma, f16c };

const char* name(Tier t);   // "baseline", "avx2", "avx512"
Tier cpu(Avx2With extra);   // the best tier this CPU runs (baseline off x86-64)
Tier capped(Tier t, const char* env_var);

}  // namespace baobab::isa
