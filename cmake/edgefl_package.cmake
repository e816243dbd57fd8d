# Installs the exported targets, a CMake config + version file and a pkg-config file, so that
# device software can `find_package(edgefl)` or `pkg-config --libs edgefl-client`.
include(CMakePackageConfigHelpers)
set(EDGEFL_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/edgefl)

install(EXPORT edgeflTargets NAMESPACE edgefl:: DESTINATION ${EDGEFL_CMAKE_DIR})
# Read by edgeflConfig.cmake.in to find cpp-httplib the way this build did.
if(TARGET PkgConfig::httplib)
  set(EDGEFL_HTTPLIB_FROM_PKGCONFIG TRUE)
else()
  set(EDGEFL_HTTPLIB_FROM_PKGCONFIG FALSE)
endif()
configure_package_config_file(cmake/edgeflConfig.cmake.in
  ${CMAKE_CURRENT_BINARY_DIR}/edgeflConfig.cmake INSTALL_DESTINATION ${EDGEFL_CMAKE_DIR})
write_basic_package_version_file(${CMAKE_CURRENT_BINARY_DIR}/edgeflConfigVersion.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/edgeflConfig.cmake
              ${CMAKE_CURRENT_BINARY_DIR}/edgeflConfigVersion.cmake
        DESTINATION ${EDGEFL_CMAKE_DIR})

configure_file(cmake/edgefl-client.pc.in ${CMAKE_CURRENT_BINARY_DIR}/edgefl-client.pc @ONLY)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/edgefl-client.pc
        DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
