// Chooses the kernel level once per process from the CPU's features and EDGEFL_KERNELS, and
// holds one immutable table per level. Compiled without instruction-set flags: it only asks
// the CPU (cpuid through __builtin_cpu_supports, which also checks that the OS saves the
// AVX/AVX-512 registers) and calls into a level's file only when the level is supported.
#include <array>
#include <cstdlib>
#include <string_view>

#include "edgefl/common/check.h"
#include "internal.h"

namespace edgefl::models::kernels {
namespace {

constexpr std::array<std::string_view, kNumIsas> kIsaNames = {"reference", "baseline", "avx2",
                                                              "avx512"};

bool Detect(Isa isa) {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  __builtin_cpu_init();
  switch (isa) {
    case Isa::kReference:
    case Isa::kBaseline:
      return true;
    case Isa::kAvx2:
      return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
             __builtin_cpu_supports("f16c");
    case Isa::kAvx512:
      return Detect(Isa::kAvx2) && __builtin_cpu_supports("avx512f") &&
             __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
             __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vnni");
  }
  return false;
#else
  return isa == Isa::kReference;
#endif
}

struct Tables {
  std::array<bool, kNumIsas> supported{};
  std::array<KernelTable, kNumIsas> tables{};
  Isa active = Isa::kReference;
};

Isa CapFromEnvironment() {
  const char* value = std::getenv("EDGEFL_KERNELS");
  if (value == nullptr || *value == '\0') return Isa::kAvx512;
  for (int i = 0; i < kNumIsas; ++i) {
    if (kIsaNames[i] == value) return static_cast<Isa>(i);
  }
  EDGEFL_CHECK(false) << "EDGEFL_KERNELS=" << value
                      << " is not one of reference, baseline, avx2, avx512";
  return Isa::kReference;
}

Tables MakeTables() {
  Tables t;
  for (int i = 0; i < kNumIsas; ++i) t.supported[i] = Detect(static_cast<Isa>(i));
  t.tables[0] = internal::ReferenceTable();
  t.tables[1] = t.supported[1] ? internal::BaselineTable() : t.tables[0];
#if defined(__x86_64__)
  if (t.supported[2]) t.tables[2] = internal::Avx2Table();
  if (t.supported[3]) t.tables[3] = internal::Avx512Table();
#endif
  const Isa cap = CapFromEnvironment();
  for (int i = 0; i < kNumIsas; ++i) {
    if (t.supported[i] && i <= static_cast<int>(cap)) t.active = static_cast<Isa>(i);
  }
  return t;
}

const Tables& GetTables() {
  static const Tables tables = MakeTables();  // thread-safe one-time initialisation
  return tables;
}

}  // namespace

std::string_view IsaName(Isa isa) {
  const int i = static_cast<int>(isa);
  EDGEFL_CHECK(i >= 0 && i < kNumIsas) << "Isa " << i;
  return kIsaNames[i];
}

bool IsaSupported(Isa isa) {
  const int i = static_cast<int>(isa);
  return i >= 0 && i < kNumIsas && GetTables().supported[i];
}

Isa ActiveIsa() { return GetTables().active; }

const KernelTable& Kernels() { return GetTables().tables[static_cast<int>(ActiveIsa())]; }

const KernelTable& KernelsFor(Isa isa) {
  EDGEFL_CHECK(IsaSupported(isa)) << "kernel level " << IsaName(isa)
                                  << " is not supported by this CPU";
  return GetTables().tables[static_cast<int>(isa)];
}

}  // namespace edgefl::models::kernels
