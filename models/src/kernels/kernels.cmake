# CPU kernels of the models module (DESIGN.md, "Kernels"), included by models/CMakeLists.txt.
# Sets EDGEFL_KERNEL_SOURCES. Each instruction-set file gets its own flags and no other file
# gets any, so the library runs on any x86-64 and dispatch.cc picks the level at run time.
set(EDGEFL_KERNEL_SOURCES
  ${CMAKE_CURRENT_LIST_DIR}/dispatch.cc
  ${CMAKE_CURRENT_LIST_DIR}/reference.cc
  ${CMAKE_CURRENT_LIST_DIR}/baseline.cc
  ${CMAKE_CURRENT_LIST_DIR}/parallel.cc
  ${CMAKE_CURRENT_LIST_DIR}/quantization.cc)

if(CMAKE_SYSTEM_PROCESSOR MATCHES "^(x86_64|AMD64|amd64)$")
  list(APPEND EDGEFL_KERNEL_SOURCES
    ${CMAKE_CURRENT_LIST_DIR}/avx2.cc
    ${CMAKE_CURRENT_LIST_DIR}/eigen_avx2.cc
    ${CMAKE_CURRENT_LIST_DIR}/avx512.cc
    ${CMAKE_CURRENT_LIST_DIR}/eigen_avx512.cc)
  set_source_files_properties(
    ${CMAKE_CURRENT_LIST_DIR}/avx2.cc ${CMAKE_CURRENT_LIST_DIR}/eigen_avx2.cc
    PROPERTIES COMPILE_OPTIONS "-mavx2;-mfma;-mf16c")
  set_source_files_properties(
    ${CMAKE_CURRENT_LIST_DIR}/avx512.cc ${CMAKE_CURRENT_LIST_DIR}/eigen_avx512.cc
    PROPERTIES COMPILE_OPTIONS
    "-mavx2;-mfma;-mf16c;-mavx512f;-mavx512bw;-mavx512vl;-mavx512vnni;-mavx512dq")
endif()
