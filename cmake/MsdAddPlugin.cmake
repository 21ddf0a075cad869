# msd_add_plugin(NAME SOURCES...): builds one plugin library, libmsd_NAME.so, into MSD_PLUGIN_DIR
# (default: <build>/plugins), where `msd --plugin-path` or MSD_PLUGIN_PATH finds it, and installs it
# into <prefix>/lib/msd/plugins, where an installed msd finds it by itself. The same function inside
# msd-lab's source tree and in a plugin's own repository (find_package(msd_lab)).
if(NOT DEFINED MSD_PLUGIN_DIR)
  set(MSD_PLUGIN_DIR "${CMAKE_BINARY_DIR}/plugins")
endif()
include(GNUInstallDirs)

function(msd_add_plugin name)
  add_library(${name} MODULE ${ARGN})
  target_link_libraries(${name} PRIVATE msd_lab::msd_plugin_api)
  target_compile_features(${name} PRIVATE cxx_std_17)
  set_target_properties(${name} PROPERTIES
    PREFIX "libmsd_"
    LIBRARY_OUTPUT_DIRECTORY "${MSD_PLUGIN_DIR}"
    CXX_VISIBILITY_PRESET hidden
    VISIBILITY_INLINES_HIDDEN ON
    # Installed beside msd's own libraries: <prefix>/lib/msd/plugins -> <prefix>/lib.
    INSTALL_RPATH "$ORIGIN/../..")
  install(TARGETS ${name} LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}/msd/plugins)
  # Collected so that building `msd` in its own tree builds every plugin.
  set_property(GLOBAL APPEND PROPERTY MSD_PLUGIN_TARGETS ${name})
endfunction()
