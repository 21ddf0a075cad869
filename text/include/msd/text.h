// Text helpers shared by libraries that must not depend on each other: the "did you mean" of the
// config validator, the plugin loader and the results commands, lists in messages, and the hash
// that names configs. The lowest layer: it uses nothing of msd and nothing of LibTorch.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <vector>

namespace msd::text {

/// Levenshtein distance: the insertions, deletions and substitutions that turn `a` into `b`.
std::size_t edit_distance(const std::string& a, const std::string& b);

/// The candidate closest to `word` by edit distance, if it is within `max_distance` edits (the
/// earlier candidate wins a tie); nullopt when none is that close. Callers choose how close is close
/// enough for what they suggest.
std::optional<std::string> closest_match(const std::string& word, const std::vector<std::string>& candidates,
                                         std::size_t max_distance);

/// "a, b, c": the items with `separator` between them, each written quote + item + quote.
std::string join(const std::vector<std::string>& items, const std::string& separator = ", ",
                 const std::string& quote = "");

/// `text` up to its first line break (a message without the stack trace that follows it).
std::string first_line(const std::string& text);

/// 16 lower-case hex digits of the 64-bit FNV-1a hash of `text`: the same on every build and machine,
/// which config hashes, cache keys and sweep ids rely on.
std::string hash_text(const std::string& text);

}  // namespace msd::text
