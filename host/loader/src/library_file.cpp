#include "library_file.h"

#include <elf.h>

#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "msd/host/plugin_registry.h"

namespace msd::host {

namespace {

namespace fs = std::filesystem;

// The ELF class of this process: plugins must match it.
#if UINTPTR_MAX == 0xffffffffffffffffu
using ElfHeader = Elf64_Ehdr;
using ProgramHeader = Elf64_Phdr;
using SectionHeader = Elf64_Shdr;
constexpr unsigned char kElfClass = ELFCLASS64;
#else
using ElfHeader = Elf32_Ehdr;
using ProgramHeader = Elf32_Phdr;
using SectionHeader = Elf32_Shdr;
constexpr unsigned char kElfClass = ELFCLASS32;
#endif

/// The machine (e_machine) this program was built for, read from its own executable.
unsigned machine_of_this_program() {
  std::ifstream self("/proc/self/exe", std::ios::binary);
  ElfHeader header{};
  self.read(reinterpret_cast<char*>(&header), sizeof header);
  return self ? header.e_machine : 0;
}

/// Reads `count` bytes at `offset`; false when the file is shorter.
bool read_at(std::ifstream& in, std::uint64_t offset, void* out, std::size_t count) {
  in.clear();
  in.seekg(static_cast<std::streamoff>(offset));
  in.read(static_cast<char*>(out), static_cast<std::streamsize>(count));
  return static_cast<std::size_t>(in.gcount()) == count;
}

}  // namespace

void check_library_file(const fs::path& file) {
  const std::string where = file.string();
  const auto damaged = [&](const std::string& why) {
    return PluginError(where + " is not a whole shared library (" + why +
                       "): a truncated or damaged copy; rebuild it or copy it again, or remove it from the "
                       "plugin folder");
  };
  std::error_code ec;
  const std::uint64_t size = fs::file_size(file, ec);
  if (ec) throw PluginError("cannot read plugin library " + where + ": " + ec.message() + "; check its permissions");
  std::ifstream in(file, std::ios::binary);
  if (!in) throw PluginError("cannot read plugin library " + where + "; check its permissions");

  ElfHeader header{};
  if (size < 4 || !read_at(in, 0, &header, std::min<std::uint64_t>(size, sizeof header)) ||
      std::memcmp(header.e_ident, ELFMAG, SELFMAG) != 0) {
    throw PluginError(where + " is not a shared library (it has no ELF header); remove it from the plugin folder");
  }
  if (size < sizeof header) throw damaged("the file ends inside its ELF header");
  if (header.e_ident[EI_CLASS] != kElfClass || header.e_machine != machine_of_this_program()) {
    throw PluginError(where + " is built for another kind of machine (ELF class " +
                      std::to_string(header.e_ident[EI_CLASS]) + ", machine " + std::to_string(header.e_machine) +
                      "); rebuild it on this one");
  }
  if (header.e_type != ET_DYN) throw PluginError(where + " is an ELF file but not a shared library; rebuild it as one");

  const std::uint64_t program_headers = std::uint64_t{header.e_phnum} * sizeof(ProgramHeader);
  if (header.e_phentsize != sizeof(ProgramHeader) || header.e_phoff + program_headers > size) {
    throw damaged("the file is " + std::to_string(size) + " bytes; its program headers end at byte " +
                  std::to_string(header.e_phoff + program_headers));
  }
  std::vector<ProgramHeader> segments(header.e_phnum);
  read_at(in, header.e_phoff, segments.data(), program_headers);
  for (const ProgramHeader& segment : segments) {
    if (segment.p_offset + segment.p_filesz > size) {
      throw damaged("the file is " + std::to_string(size) + " bytes; a segment ends at byte " +
                    std::to_string(segment.p_offset + segment.p_filesz));
    }
  }
  const std::uint64_t section_headers = std::uint64_t{header.e_shnum} * header.e_shentsize;
  if (header.e_shoff != 0 && header.e_shoff + section_headers > size) {
    throw damaged("the file is " + std::to_string(size) + " bytes; its section headers end at byte " +
                  std::to_string(header.e_shoff + section_headers));
  }
}

}  // namespace msd::host
