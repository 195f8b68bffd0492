// SPDX-License-Identifier: MIT
#include "cni/Setup.h"

#include <algorithm>
#include <cerrno>
#include <filesystem>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/Fd.h"
#include "cni/Cni.h"

namespace gw::cni::setup {
namespace {

namespace fs = std::filesystem;

bool isConfName(const std::string& name) {
  for (const char* ext : {".conf", ".conflist", ".json"}) {
    if (name.ends_with(ext) && name.size() > std::string_view(ext).size()) {
      return true;
    }
  }
  return false;
}

std::string joinPath(const std::string& dir, const std::string& name) {
  return (fs::path(dir) / name).string();
}

Result<std::optional<std::string>> readIfThere(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) {
    if (errno == ENOENT) {
      return std::optional<std::string>();
    }
    return sysError("open " + path);
  }
  std::string text;
  char buf[16384];
  for (;;) {
    ssize_t n = ::read(fd.get(), buf, sizeof(buf));
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0) {
      return sysError("read " + path);
    }
    if (n == 0) {
      break;
    }
    text.append(buf, static_cast<size_t>(n));
  }
  return std::optional<std::string>(std::move(text));
}

Result<std::string> readFile(const std::string& path) {
  auto text = readIfThere(path);
  if (!text) {
    return std::unexpected(text.error());
  }
  if (!*text) {
    return fail(ErrorKind::NotFound, path + ": no such file", ENOENT);
  }
  return std::move(**text);
}

// A temp file beside `path`, renamed over it: a reader sees the old text or the new, never
// half. The temp name ends in none of the runtimes' extensions.
Status writeAtomically(const std::string& path, const std::string& text, mode_t mode) {
  fs::path target(path);
  std::string temp = (target.parent_path() / ("." + target.filename().string() + ".gateway-tmp"))
                         .string();
  UniqueFd fd(::open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode));
  if (!fd) {
    return sysError("create " + temp);
  }
  auto undo = [&](std::unexpected<Error> e) {
    ::unlink(temp.c_str());
    return e;
  };
  if (::fchmod(fd.get(), mode) != 0) {
    return undo(sysError("chmod " + temp));
  }
  for (size_t done = 0; done < text.size();) {
    ssize_t n = ::write(fd.get(), text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0) {
      return undo(sysError("write " + temp));
    }
    done += static_cast<size_t>(n);
  }
  if (::fsync(fd.get()) != 0) {
    return undo(sysError("fsync " + temp));
  }
  fd.reset();
  if (::rename(temp.c_str(), path.c_str()) != 0) {
    return undo(sysError("rename " + temp + " to " + path));
  }
  UniqueFd dir(::open(target.parent_path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (dir) {
    ::fsync(dir.get()); // the rename itself durable; best effort
  }
  return {};
}

mode_t modeOf(const std::string& path, mode_t fallback) {
  struct stat st{};
  return ::stat(path.c_str(), &st) == 0 ? (st.st_mode & 07777) : fallback;
}

std::unexpected<Error> refuse(const std::string& file, const std::string& what) {
  return invalid(file + ": " + what);
}

std::string where(size_t index) { return "plugins[" + std::to_string(index) + "]"; }

Json defaultPortmap() {
  return Json{{"type", kPortmapType}, {"capabilities", {{"portMappings", true}}}};
}

Result<std::optional<Record>> readRecord(const std::string& confDir) {
  std::string path = joinPath(confDir, kRecordName);
  auto text = readIfThere(path);
  if (!text) {
    return std::unexpected(text.error());
  }
  if (!*text) {
    return std::optional<Record>();
  }
  auto record = parseRecord(path, **text);
  if (!record) {
    return std::unexpected(record.error());
  }
  return std::optional<Record>(std::move(*record));
}

Status removeRecord(const std::string& confDir) {
  std::string path = joinPath(confDir, kRecordName);
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
    return sysError("remove " + path);
  }
  return {};
}

// The plugin binary into the bin dir, renamed into place: a runtime running the old one at
// that moment keeps its inode.
Result<bool> copyPlugin(const Options& o) {
  auto source = readFile(o.plugin);
  if (!source) {
    return std::unexpected(source.error().within("the plugin to copy (--plugin)"));
  }
  std::string target = joinPath(o.binDir, kPluginType);
  auto present = readIfThere(target);
  if (present && *present && **present == *source && (modeOf(target, 0) & 0111) == 0111) {
    return false;
  }
  if (auto w = writeAtomically(target, *source, 0755); !w) {
    return std::unexpected(w.error());
  }
  return true;
}

// Takes ours out of the recorded file: the exact original when the file is still what install
// wrote, else the replaced entry back in ours' place (keeping whatever else changed since).
Result<Report> restore(const std::string& confDir, const std::optional<Record>& record,
                       const std::string& file) {
  Report report;
  std::string path = joinPath(confDir, file);
  auto text = readIfThere(path);
  if (!text) {
    return std::unexpected(text.error());
  }
  if (!*text) {
    report.push_back(path + " is gone: nothing to restore");
    return report;
  }
  mode_t mode = modeOf(path, 0644);
  if (record && record->original && **text == record->installed) {
    if (auto w = writeAtomically(path, *record->original, mode); !w) {
      return std::unexpected(w.error());
    }
    report.push_back(path + ": restored as it was before install");
    return report;
  }
  auto list = parseConflist(path, **text);
  if (!list) {
    return std::unexpected(list.error());
  }
  bool ours = std::ranges::any_of(list->plugins, [](const Plugin& p) {
    return p.type == kPluginType;
  });
  if (!ours) {
    report.push_back(path + ": no gateway-portmap in it: left as it is");
    return report;
  }
  std::optional<Json> back = record ? record->replaced : std::optional<Json>(defaultPortmap());
  std::string restored = render(unchain(std::move(*list), back));
  if (auto w = writeAtomically(path, restored, mode); !w) {
    return std::unexpected(w.error());
  }
  report.push_back(path + (back ? ": gateway-portmap replaced by " + back->dump()
                                : ": gateway-portmap removed (install had appended it)"));
  return report;
}

} // namespace

Result<std::string> pickConfFile(const std::string& confDir) {
  std::error_code ec;
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(confDir, ec)) {
    std::string name = entry.path().filename().string();
    if (isConfName(name) && entry.is_regular_file(ec)) {
      names.push_back(name);
    }
  }
  if (ec) {
    return fail(confDir + ": " + ec.message(), ec.value());
  }
  if (names.empty()) {
    return fail(ErrorKind::NotFound,
                confDir + ": no *.conflist, *.conf or *.json: the node's network plugin has not "
                          "written its config yet");
  }
  return *std::ranges::min_element(names);
}

Result<Conflist> parseConflist(const std::string& file, const std::string& text) {
  Json j;
  try {
    j = Json::parse(text);
  } catch (const Json::parse_error& e) {
    return refuse(file, std::string("not JSON: ") + e.what()); // says where
  }
  if (!j.is_object()) {
    return refuse(file, "not a JSON object");
  }
  Conflist list;
  for (auto [key, out] :
       {std::pair{"cniVersion", &list.cniVersion}, std::pair{"name", &list.name}}) {
    auto it = j.find(key);
    if (it == j.end() || !it->is_string() || it->get<std::string>().empty()) {
      return refuse(file, std::string("\"") + key + "\" is missing or not a non-empty string");
    }
    *out = it->get<std::string>();
  }
  if (std::ranges::find(kSupportedVersions, list.cniVersion) == std::end(kSupportedVersions)) {
    return refuse(file, "cniVersion '" + list.cniVersion +
                            "': gateway-portmap speaks " + supportedVersionsText() + " (raise the "
                            "conflist's cniVersion where its plugins allow)");
  }
  auto plugins = j.find("plugins");
  if (plugins == j.end() || !plugins->is_array() || plugins->empty()) {
    return refuse(file, "\"plugins\" is missing or not a non-empty array");
  }
  for (size_t i = 0; i < plugins->size(); ++i) {
    const Json& entry = (*plugins)[i];
    if (!entry.is_object()) {
      return refuse(file, where(i) + " is not an object");
    }
    auto type = entry.find("type");
    if (type == entry.end() || !type->is_string() || type->get<std::string>().empty()) {
      return refuse(file, where(i) + ": \"type\" is missing or not a non-empty string");
    }
    list.plugins.push_back(Plugin{type->get<std::string>(), entry});
  }
  list.json = std::move(j);
  return list;
}

std::string render(const Conflist& list) {
  Json out = list.json;
  out["cniVersion"] = list.cniVersion;
  out["name"] = list.name;
  Json plugins = Json::array();
  for (const auto& p : list.plugins) {
    plugins.push_back(p.json);
  }
  out["plugins"] = std::move(plugins);
  return out.dump(2) + "\n";
}

Result<Chained> chain(const std::string& file, Conflist list, const std::string& socket) {
  std::vector<size_t> portmaps;
  std::vector<size_t> ours;
  for (size_t i = 0; i < list.plugins.size(); ++i) {
    if (list.plugins[i].type == kPortmapType) {
      portmaps.push_back(i);
    } else if (list.plugins[i].type == kPluginType) {
      ours.push_back(i);
    }
  }
  if (portmaps.size() + ours.size() > 1) {
    std::string at;
    for (size_t i = 0; i < list.plugins.size(); ++i) {
      if (list.plugins[i].type == kPortmapType || list.plugins[i].type == kPluginType) {
        at += (at.empty() ? "" : ", ") + where(i) + " (" + list.plugins[i].type + ")";
      }
    }
    return refuse(file, "more than one port mapping plugin: " + at +
                            ": host ports would be published twice");
  }
  Chained out;
  if (!ours.empty()) {
    Json& entry = list.plugins[ours[0]].json;
    if (!entry.contains("capabilities") || !entry["capabilities"].is_object()) {
      entry["capabilities"] = Json::object();
    }
    entry["capabilities"]["portMappings"] = true;
    entry["socket"] = socket;
    out.list = std::move(list);
    return out;
  }
  Json caps = Json::object();
  if (!portmaps.empty()) {
    out.replaced = list.plugins[portmaps[0]].json;
    if (auto it = out.replaced->find("capabilities"); it != out.replaced->end() &&
                                                      it->is_object()) {
      caps = *it;
    }
  }
  caps["portMappings"] = true;
  Json entry{{"type", kPluginType}, {"capabilities", caps}, {"socket", socket}};
  Plugin plugin{kPluginType, std::move(entry)};
  if (!portmaps.empty()) {
    list.plugins[portmaps[0]] = std::move(plugin);
  } else {
    list.plugins.push_back(std::move(plugin));
  }
  out.list = std::move(list);
  return out;
}

Conflist unchain(Conflist list, const std::optional<Json>& replaced) {
  auto it = std::ranges::find_if(list.plugins, [](const Plugin& p) {
    return p.type == kPluginType;
  });
  if (it == list.plugins.end()) {
    return list;
  }
  if (replaced) {
    *it = Plugin{replaced->value("type", std::string(kPortmapType)), *replaced};
  } else {
    list.plugins.erase(it);
  }
  return list;
}

Result<Record> parseRecord(const std::string& file, const std::string& text) {
  Json j = Json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    return refuse(file, "not a JSON object (remove it to start over)");
  }
  Record r;
  auto name = j.find("file");
  auto installed = j.find("installed");
  if (name == j.end() || !name->is_string() || name->get<std::string>().empty() ||
      name->get<std::string>().find('/') != std::string::npos) {
    return refuse(file, "\"file\" is missing or not a file name");
  }
  if (installed == j.end() || !installed->is_string()) {
    return refuse(file, "\"installed\" is missing or not a string");
  }
  r.file = name->get<std::string>();
  r.installed = installed->get<std::string>();
  if (auto it = j.find("original"); it != j.end() && !it->is_null()) {
    if (!it->is_string()) {
      return refuse(file, "\"original\" is not a string");
    }
    r.original = it->get<std::string>();
  }
  if (auto it = j.find("replaced"); it != j.end() && !it->is_null()) {
    if (!it->is_object() || !it->contains("type") || !(*it)["type"].is_string()) {
      return refuse(file, "\"replaced\" is not a plugin entry");
    }
    r.replaced = *it;
  }
  return r;
}

std::string render(const Record& r) {
  Json j{{"file", r.file},
         {"original", r.original ? Json(*r.original) : Json(nullptr)},
         {"replaced", r.replaced ? *r.replaced : Json(nullptr)},
         {"installed", r.installed}};
  return j.dump(2) + "\n";
}

Result<Report> install(const Options& o) {
  auto picked = pickConfFile(o.confDir);
  if (!picked) {
    return std::unexpected(picked.error());
  }
  std::string path = joinPath(o.confDir, *picked);
  if (!picked->ends_with(".conflist")) {
    return refuse(path, "runtimes read a .conf or .json as one plugin, which cannot chain "
                        "another: make it a .conflist");
  }
  auto text = readFile(path);
  if (!text) {
    return std::unexpected(text.error());
  }
  auto list = parseConflist(path, *text);
  if (!list) {
    return std::unexpected(list.error());
  }
  bool hadOurs = std::ranges::any_of(list->plugins, [](const Plugin& p) {
    return p.type == kPluginType;
  });
  auto chained = chain(path, std::move(*list), o.socket);
  if (!chained) {
    return std::unexpected(chained.error());
  }
  auto record = readRecord(o.confDir);
  if (!record) {
    return std::unexpected(record.error());
  }
  Report report;
  // The runtime's config moved to another file: the old one gets portmap back first.
  if (*record && (*record)->file != *picked) {
    auto restored = restore(o.confDir, *record, (*record)->file);
    if (!restored) {
      return std::unexpected(restored.error());
    }
    report.insert(report.end(), restored->begin(), restored->end());
    record->reset();
  }
  // The binary before the config that names it.
  auto copied = copyPlugin(o);
  if (!copied) {
    return std::unexpected(copied.error());
  }
  report.push_back(joinPath(o.binDir, kPluginType) + (*copied ? ": copied from " + o.plugin
                                                              : ": up to date"));
  std::string newText = render(chained->list);
  Record next;
  if (hadOurs && *record && (*record)->file == *picked) {
    next = **record; // installed before: what it replaced stays the record
  } else {
    next = Record{*picked, hadOurs ? std::nullopt : std::optional(*text),
                  hadOurs ? std::optional(defaultPortmap()) : chained->replaced, newText};
  }
  next.installed = newText;
  if (!*record || render(next) != render(**record)) {
    // The record first: a crash before the conflist's rename leaves a record whose
    // "installed" does not match, which uninstall handles structurally.
    if (auto w = writeAtomically(joinPath(o.confDir, kRecordName), render(next), 0600); !w) {
      return std::unexpected(w.error());
    }
  }
  if (newText == *text) {
    report.push_back(path + ": gateway-portmap already chained");
    return report;
  }
  if (auto w = writeAtomically(path, newText, modeOf(path, 0644)); !w) {
    return std::unexpected(w.error());
  }
  report.push_back(path + (hadOurs ? ": gateway-portmap's socket set to " + o.socket
                           : chained->replaced ? ": gateway-portmap chained in place of portmap"
                                               : ": gateway-portmap appended (there was no "
                                                 "portmap)"));
  return report;
}

Result<Report> uninstall(const Options& o) {
  auto record = readRecord(o.confDir);
  if (!record) {
    return std::unexpected(record.error());
  }
  std::string file;
  if (*record) {
    file = (*record)->file;
  } else {
    auto picked = pickConfFile(o.confDir);
    if (!picked) {
      return std::unexpected(picked.error());
    }
    file = *picked;
  }
  Report report;
  if (!*record && !file.ends_with(".conflist")) {
    report.push_back(joinPath(o.confDir, file) + ": not a conflist: nothing of ours in it");
    return report;
  }
  auto restored = restore(o.confDir, *record, file);
  if (!restored) {
    return std::unexpected(restored.error());
  }
  report = std::move(*restored);
  if (auto r = removeRecord(o.confDir); !r) {
    return std::unexpected(r.error());
  }
  // Kept: a runtime may still DEL a pod with the config it was added with (libcni's cache).
  report.push_back(joinPath(o.binDir, kPluginType) + ": left in place for pods still using it");
  return report;
}

} // namespace gw::cni::setup
