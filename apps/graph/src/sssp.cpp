// Delta-stepping SSSP kernels and their bindings (to be written).
#include <nanobind/nanobind.h>

namespace nb = nanobind;

void bind_sssp(nb::module_& m) { (void)m; }
