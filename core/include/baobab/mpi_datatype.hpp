// MPI derived datatypes <-> canonical layouts.
#pragma once
#include <mpi.h>

#include <memory>
#include <string>

#include "baobab/datatype.hpp"

namespace baobab {

struct MpiTypeInfo {
  std::shared_ptr<const Layout> layout;  // null when the type falls back to MPI's packing
  std::shared_ptr<const TypeNode> tree;  // the decoded tree before simplification (null on fallback)
  std::string fallback;                  // why MPI's own packing is used, when it is
  int64_t size = 0, lb = 0, extent = 0;  // MPI_Type_size, MPI_Type_get_extent
};

// Decodes a committed datatype through MPI_Type_get_envelope/get_contents:
// contiguous, vector, hvector, indexed, hindexed, indexed_block,
// hindexed_block, struct, subarray (C and Fortran order), resized, dup and
// nestings of them; other constructors (and named types with gaps) give a
// fallback with the reason. The result is cached on the datatype as an MPI
// attribute, freed with the type. Throws InvalidArgument for an uncommitted type.
MpiTypeInfo decode_mpi_type(MPI_Datatype t);

// MPI's own packing, for fallback types: count elements from src into dst
// (MPI_Pack_size bytes) and back.
void mpi_pack(MPI_Datatype t, const void* src, int64_t count, void* dst, int64_t dst_bytes);
void mpi_unpack(MPI_Datatype t, const void* src, int64_t src_bytes, void* dst, int64_t count);

// A committed MPI datatype of bytes with exactly this layout's data and order
// (hvector nests for a StridedBlock, hindexed for runs), resized to the layout's
// lb and extent. The caller frees it.
MPI_Datatype layout_to_mpi(const Layout& l);

}  // namespace baobab
