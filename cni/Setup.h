// SPDX-License-Identifier: MIT
// gateway-cni-setup: chains gateway-portmap into a node's CNI config in place of portmap, and
// puts portmap back. The conflist is parsed once into types (or refused, the file named and
// left untouched); every write is a temp file renamed over the old one.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/Error.h"

namespace gw::cni::setup {

using Json = nlohmann::ordered_json;

inline constexpr const char* kPluginType = "gateway-portmap";
inline constexpr const char* kPortmapType = "portmap";
// What install replaced, for uninstall. Its name ends in none of the runtimes' extensions
// (.conf, .conflist, .json): a runtime never reads it as a network config.
inline constexpr const char* kRecordName = ".gateway-cni-setup.record";

struct Options {
  std::string confDir = "/etc/cni/net.d";
  std::string binDir = "/opt/cni/bin";
  std::string socket = "/run/gateway/gateway.sock";
  std::string plugin = "/usr/lib/cni/gateway-portmap"; // the binary install copies
};

struct Plugin {
  std::string type;
  Json json; // the whole entry, type included, keys in their order
};

struct Conflist {
  std::string cniVersion;
  std::string name;
  std::vector<Plugin> plugins;
  Json json; // the whole document; "plugins" is rendered from `plugins`
};

// What install did to a file, so that uninstall can undo exactly that.
struct Record {
  std::string file;                    // the conflist's name in the conf dir
  std::optional<std::string> original; // its text before install (absent: ours was there)
  std::optional<Json> replaced;        // the portmap entry ours replaced (absent: appended)
  std::string installed;               // the text install wrote
};

// The network config a runtime uses: the lexically first *.conf, *.conflist or *.json in
// `confDir` (libcni's ConfFiles, sorted, as containerd and CRI-O read it). Its file name.
Result<std::string> pickConfFile(const std::string& confDir);

// `file` names the source in errors.
Result<Conflist> parseConflist(const std::string& file, const std::string& text);
std::string render(const Conflist& list);

struct Chained {
  Conflist list;
  std::optional<Json> replaced; // the portmap entry ours took the place of
};
// gateway-portmap in place of portmap (its capabilities kept, portMappings on, "socket"
// added), else appended; an entry of ours already there gets `socket`.
Result<Chained> chain(const std::string& file, Conflist list, const std::string& socket);
// Ours out: `replaced` back in its place, or the entry removed when there is none.
Conflist unchain(Conflist list, const std::optional<Json>& replaced);

Result<Record> parseRecord(const std::string& file, const std::string& text);
std::string render(const Record& record);

// What a command did, one line each, for the log.
using Report = std::vector<std::string>;
Result<Report> install(const Options& options);
Result<Report> uninstall(const Options& options);

} // namespace gw::cni::setup
