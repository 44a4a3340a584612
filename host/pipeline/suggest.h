// "did you mean ...?" for names typed by people: config keys, pass names, model types, subcommands.
#pragma once

#include <string>
#include <vector>

namespace tfh::pipeline {

// Levenshtein distance (insert, delete, substitute; each costs 1).
size_t edit_distance(const std::string& a, const std::string& b);

// The candidate closest to `typed`, or "" when none is close enough to be a plausible typo
// (distance at most max(2, |typed| / 3)). Ties go to the first candidate in order.
std::string closest_name(const std::string& typed, const std::vector<std::string>& candidates);

// "; did you mean 'x'?" or "" — appended to an error message.
std::string did_you_mean(const std::string& typed, const std::vector<std::string>& candidates);

// "a, b, c" (or "none" when empty).
std::string join_names(const std::vector<std::string>& names);

}  // namespace tfh::pipeline
