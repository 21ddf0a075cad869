// Which commit of the sources this msd was built from (generated at every build by
// cmake/git_commit.cmake), so that runs name the code that ran them, not where the checkout is now.
#pragma once

namespace msd::host::cli {

/// 40 hex digits, or empty when the sources were not a git checkout.
extern const char* const kBuildGitCommit;
/// Whether tracked files differed from that commit when msd was built.
extern const bool kBuildGitDirty;

}  // namespace msd::host::cli
