// A look at a plugin library file before dlopen maps it: the dynamic loader trusts the file's
// headers, so a truncated copy (a plugin folder synced halfway) kills the process with SIGBUS when
// the loader touches a segment past the file's end.
#pragma once

#include <filesystem>

namespace msd::host {

/// Throws PluginError naming `file` and saying what to do unless it is a whole ELF shared library for
/// this machine: its ELF header, program headers, section headers and every segment lie within the file.
void check_library_file(const std::filesystem::path& file);

}  // namespace msd::host
