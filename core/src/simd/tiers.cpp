// Run-time SIMD tiers (baobab/simd.hpp): what the CPU runs, the caps.
#include <cstdlib>
#include <cstring>

#if defined(__x86_64__) && defined(__clang__)
#include <cpuid.h>
#endif
#include <initializer_list>
#include <string>
#include <vector>

#include "baobab/error.hpp"
#include "baobab/simd.hpp"

extern char** environ;

namespace baobab::simd {

namespace {

constexpr Tier kAll[] = {Tier::baseline, Tier::avx2, Tier::avx512};

#ifdef BAOBAB_SIMD_X86
// F16C (clang's __builtin_cpu_supports does not know it; the AVX2 check
// before it covers the OS's saving of the registers).
bool has_f16c() {
#if defined(__clang__)
  unsigned a = 0, b = 0, c = 0, d = 0;
  return __get_cpuid(1, &a, &b, &c, &d) && (c & bit_F16C);
#else
  return __builtin_cpu_supports("f16c");
#endif
}
#endif

}  // namespace

const char* name(Tier t) {
  static const char* const names[] = {"baseline", "avx2", "avx512"};
  return names[static_cast<int>(t)];
}

Tier cpu() {
  Tier t = Tier::baseline;
#ifdef BAOBAB_SIMD_X86
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && has_f16c()) t = Tier::avx2;
  if (t == Tier::avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
      __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl"))
    t = Tier::avx512;
#endif
  return t;
}

Tier capped(Tier t, const char* env_var) {
  const char* cap = std::getenv(env_var);
  if (!cap || !*cap) return t;
  for (Tier c : kAll)
    if (std::strcmp(cap, name(c)) == 0) return c < t ? c : t;
  throw InvalidArgument(std::string(env_var) + "='" + cap + "': expected baseline, avx2 or avx512");
}

Tier select(const char* env_var) { return capped(cpu(), env_var); }

std::vector<Tier> tiers() {
  std::vector<Tier> r;
  for (Tier t : kAll)
    if (t <= cpu()) r.push_back(t);
  return r;
}

Tier available(const std::string& tier_name, const char* what) {
  for (Tier t : tiers())
    if (tier_name == name(t)) return t;
  throw InvalidArgument(std::string(what) + ": tier '" + tier_name + "' is not available on this CPU / build");
}

void check_caps() {
  for (char** e = environ; e && *e; ++e) {
    const char* eq = std::strchr(*e, '=');
    if (!eq) continue;
    const std::string var(*e, size_t(eq - *e));
    const size_t n = var.size();
    if (n > 11 && var.compare(0, 7, "BAOBAB_") == 0 && var.compare(n - 4, 4, "_ISA") == 0)
      capped(Tier::avx512, var.c_str());
  }
}

}  // namespace baobab::simd
