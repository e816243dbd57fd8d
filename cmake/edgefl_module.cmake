# edgefl_add_module(<name> SOURCES ... [PUBLIC_DEPS ...] [PRIVATE_DEPS ...])
#
# Makes the library edgefl_<name> (alias edgefl::<name>) from <name>/include and <name>/src.
# PUBLIC_DEPS must equal DESIGN.md's arrows for the module; third-party libraries that only
# the module's .cc files use go in PRIVATE_DEPS so their types stay inside the module.
function(edgefl_add_module name)
  cmake_parse_arguments(M "" "" "SOURCES;PUBLIC_DEPS;PRIVATE_DEPS" ${ARGN})
  set(target edgefl_${name})
  add_library(${target} ${M_SOURCES})
  add_library(edgefl::${name} ALIAS ${target})
  target_include_directories(${target}
    PUBLIC $<BUILD_INTERFACE:${CMAKE_CURRENT_SOURCE_DIR}/include>
           $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>
    PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/src)
  target_link_libraries(${target} PUBLIC ${M_PUBLIC_DEPS} PRIVATE ${M_PRIVATE_DEPS})
  target_compile_features(${target} PUBLIC cxx_std_20)
  edgefl_set_warnings(${target})
  set_target_properties(${target} PROPERTIES EXPORT_NAME ${name} OUTPUT_NAME edgefl_${name})
  install(TARGETS ${target} EXPORT edgeflTargets
          ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
          LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
          RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
  install(DIRECTORY include/ DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
endfunction()

function(edgefl_set_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic -Wno-unused-parameter
                         -Wno-missing-field-initializers)
  if(EDGEFL_WERROR)
    target_compile_options(${target} PRIVATE -Werror)
  endif()
endfunction()
