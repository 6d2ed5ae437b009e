// Run-time instruction-set tiers (baobab/isa.hpp).
#include "baobab/isa.hpp"

#include <cstdlib>
#include <cstring>
#include <initializer_list>
#include <string>

#include "baobab/error.hpp"

namespace baobab::isa {

const char* name(Tier t) {
  static const char* const names[] = {"baseline", "avx2", "avx512"};
  return names[static_cast<int>(t)];
}

Tier cpu(Avx2With extra) {
  Tier t = Tier::baseline;
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  __builtin_cpu_init();
  const bool more = extra == Avx2With::fma ? __builtin_cpu_supports("fma") : __builtin_cpu_supports("f16c");
  if (__builtin_cpu_supports("avx2") && more) t = Tier::avx2;
  if (t == Tier::avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
      __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl"))
    t = Tier::avx512;
#else
  (void)extra;
#endif
  return t;
}

Tier capped(Tier t, const char* env_var) {
  const char* cap = std::getenv(env_var);
  if (!cap || !*cap) return t;
  for (Tier c : {Tier::baseline, Tier::avx2, Tier::avx512})
    if (std::strcmp(cap, name(c)) == 0) return c < t ? c : t;
  throw InvalidArgument(std::string(env_var) + "='" + cap + "': expected baseline, avx2 or avx512");
}

}  // namespace baobab::isa
