# Secure aggregation sources of edgefl_privacy, included by privacy/CMakeLists.txt.
# OpenSSL (libcrypto) and OpenMP are private to privacy/src.
set(EDGEFL_SECAGG_SOURCES
  ${CMAKE_CURRENT_LIST_DIR}/client.cc
  ${CMAKE_CURRENT_LIST_DIR}/config.cc
  ${CMAKE_CURRENT_LIST_DIR}/crypto.cc
  ${CMAKE_CURRENT_LIST_DIR}/protocol_internal.cc
  ${CMAKE_CURRENT_LIST_DIR}/server.cc
  ${CMAKE_CURRENT_LIST_DIR}/shamir.cc)

