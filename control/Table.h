// SPDX-License-Identifier: MIT
// Column-aligned text tables for gwctl's human output.
#pragma once

#include <algorithm>
#include <ostream>
#include <string>
#include <vector>

namespace gw {

class Table {
public:
  explicit Table(std::vector<std::string> header) : rows_{std::move(header)} {}
  void add(std::vector<std::string> row) { rows_.push_back(std::move(row)); }
  void print(std::ostream& os) const {
    std::vector<size_t> width;
    for (const auto& row : rows_) {
      width.resize(std::max(width.size(), row.size()));
      for (size_t i = 0; i < row.size(); ++i) {
        width[i] = std::max(width[i], row[i].size());
      }
    }
    for (const auto& row : rows_) {
      for (size_t i = 0; i < row.size(); ++i) {
        os << row[i];
        if (i + 1 < row.size()) {
          os << std::string(width[i] - row[i].size() + 2, ' ');
        }
      }
      os << "\n";
    }
  }

private:
  std::vector<std::vector<std::string>> rows_;
};

} // namespace gw
