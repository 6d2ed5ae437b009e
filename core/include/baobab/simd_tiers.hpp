// Compiles a kernel's tier code (its "body") once per SIMD tier; see
// baobab/simd.hpp. Define, then include this file (it may be included several
// times, once per body):
//   BAOBAB_SIMD_BODY       the body's file as an include path, e.g. "attention/kernels.inc"
//                          (found through the include directories, not next to this file)
//   BAOBAB_SIMD_NAMESPACE  the namespace to compile it into, e.g. baobab::attention
// The body is included into BAOBAB_SIMD_NAMESPACE::tier_baseline and, with
// BAOBAB_SIMD_X86, into ::tier_avx2 and ::tier_avx512 under those tiers' target
// options. In each, `simd` names the tier's vector namespace (simd::F32,
// simd::F64, simd::tier), and the body sees every name declared before the
// include. Call what it defines with BAOBAB_SIMD_DISPATCH. Both macros are
// undefined afterwards.
#if !defined(BAOBAB_SIMD_BODY) || !defined(BAOBAB_SIMD_NAMESPACE)
#error "define BAOBAB_SIMD_BODY and BAOBAB_SIMD_NAMESPACE before including baobab/simd_tiers.hpp"
#endif

#include "baobab/simd.hpp"

namespace BAOBAB_SIMD_NAMESPACE::tier_baseline {
namespace simd = ::baobab::simd::baseline;
#include BAOBAB_SIMD_BODY
}  // namespace BAOBAB_SIMD_NAMESPACE::tier_baseline

#ifdef BAOBAB_SIMD_X86
BAOBAB_SIMD_BEGIN_AVX2
namespace BAOBAB_SIMD_NAMESPACE::tier_avx2 {
namespace simd = ::baobab::simd::avx2;
#include BAOBAB_SIMD_BODY
}  // namespace BAOBAB_SIMD_NAMESPACE::tier_avx2
BAOBAB_SIMD_END

BAOBAB_SIMD_BEGIN_AVX512
namespace BAOBAB_SIMD_NAMESPACE::tier_avx512 {
namespace simd = ::baobab::simd::avx512;
#include BAOBAB_SIMD_BODY
}  // namespace BAOBAB_SIMD_NAMESPACE::tier_avx512
BAOBAB_SIMD_END
#endif

#undef BAOBAB_SIMD_BODY
#undef BAOBAB_SIMD_NAMESPACE
