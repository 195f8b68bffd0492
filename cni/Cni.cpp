// SPDX-License-Identifier: MIT
#include "cni/Cni.h"

#include <algorithm>
#include <cctype>
#include "cni/Text.h"

namespace gw::cni {

namespace {

std::unexpected<CniError> error(Code code, std::string msg, std::string details = {}) {
  return std::unexpected(CniError{code, std::move(msg), std::move(details)});
}

std::optional<std::string> nonEmpty(const EnvLookup& env, const char* name) {
  auto value = env(name);
  if (!value || value->empty()) {
    return std::nullopt;
  }
  return value;
}

bool validContainerId(std::string_view id) {
  auto alnum = [](char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0; };
  return !id.empty() && alnum(id.front()) &&
         std::ranges::all_of(
             id, [&](char c) { return alnum(c) || c == '_' || c == '.' || c == '-'; });
}

// The kernel's rules for a link name (the spec's for CNI_IFNAME).
bool validIfName(std::string_view name) {
  return !name.empty() && name.size() < 16 && name != "." && name != ".." &&
         std::ranges::none_of(name, [](char c) {
           return c == '/' || c == ':' || std::isspace(static_cast<unsigned char>(c)) != 0;
         });
}

CniResult<uint16_t> port(const Json& mapping, const char* key, size_t index) {
  auto field = strformat("runtimeConfig.portMappings[{}].{}", index, key);
  auto it = mapping.find(key);
  if (it == mapping.end()) {
    return error(Code::InvalidConfig, field + " is missing");
  }
  if (!it->is_number_integer()) {
    return error(Code::InvalidConfig, field + " is not an integer", it->dump());
  }
  auto value = it->get<int64_t>();
  if (value < 1 || value > 65535) {
    return error(Code::InvalidConfig, strformat("{} {} is out of range 1-65535", field, value));
  }
  return static_cast<uint16_t>(value);
}

CniResult<PortMapping> portMapping(const Json& j, size_t index) {
  auto field = strformat("runtimeConfig.portMappings[{}]", index);
  if (!j.is_object()) {
    return error(Code::InvalidConfig, field + " is not an object", j.dump());
  }
  PortMapping m;
  auto hostPort = port(j, "hostPort", index);
  if (!hostPort) {
    return std::unexpected(hostPort.error());
  }
  auto containerPort = port(j, "containerPort", index);
  if (!containerPort) {
    return std::unexpected(containerPort.error());
  }
  m.hostPort = *hostPort;
  m.containerPort = *containerPort;
  if (auto it = j.find("protocol"); it != j.end() && !it->is_null()) {
    if (!it->is_string()) {
      return error(Code::InvalidConfig, field + ".protocol is not a string", it->dump());
    }
    // containerd and CRI-O pass Kubernetes' "TCP"/"UDP" through as written.
    auto text = it->get<std::string>();
    std::ranges::transform(text, text.begin(),
                           [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    if (text == "tcp" || text.empty()) {
      m.proto = Proto::Tcp;
    } else if (text == "udp") {
      m.proto = Proto::Udp;
    } else {
      return error(Code::InvalidConfig,
                   strformat("{}.protocol '{}' is not supported (tcp or udp)", field,
                               it->get<std::string>()));
    }
  }
  if (auto it = j.find("hostIP"); it != j.end() && !it->is_null()) {
    if (!it->is_string()) {
      return error(Code::InvalidConfig, field + ".hostIP is not a string", it->dump());
    }
    auto text = it->get<std::string>();
    if (!text.empty()) { // Podman sends "" for none
      auto addr = IpAddress::parse(text);
      if (!addr) {
        return error(Code::InvalidConfig, field + ".hostIP: " + addr.error().str());
      }
      m.hostIp = *addr;
    }
  }
  return m;
}

CniResult<std::string> stringField(const Json& j, const char* key, bool required) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) {
    if (required) {
      return error(Code::InvalidConfig, strformat("config has no \"{}\"", key));
    }
    return std::string{};
  }
  if (!it->is_string()) {
    return error(Code::InvalidConfig, strformat("config \"{}\" is not a string", key),
                 it->dump());
  }
  return it->get<std::string>();
}

bool atLeast11(std::string_view version) { return version == "1.1.0"; }
bool before04(std::string_view version) { return version.starts_with("0.3."); }

} // namespace

std::string supportedVersionsText() {
  std::string out;
  for (auto v : kSupportedVersions) {
    out += (out.empty() ? "" : ", ") + std::string(v);
  }
  return out;
}

CniResult<Command> parseCommand(const EnvLookup& env) {
  auto text = nonEmpty(env, "CNI_COMMAND");
  if (!text) {
    return error(Code::InvalidEnvironment, "CNI_COMMAND is not set");
  }
  static constexpr std::pair<std::string_view, Command> kCommands[] = {
      {"ADD", Command::Add},         {"DEL", Command::Del},       {"CHECK", Command::Check},
      {"VERSION", Command::Version}, {"STATUS", Command::Status}, {"GC", Command::Gc}};
  for (auto [name, command] : kCommands) {
    if (*text == name) {
      return command;
    }
  }
  return error(Code::InvalidEnvironment, "unknown CNI_COMMAND '" + *text + "'");
}

CniResult<Environment> parseEnvironment(Command command, const EnvLookup& env) {
  Environment e;
  e.command = command;
  bool attachment = command == Command::Add || command == Command::Del || command == Command::Check;
  if (!attachment) {
    e.path = env("CNI_PATH").value_or("");
    return e;
  }
  auto need = [&](const char* name, std::string& out) -> CniResult<void> {
    auto value = nonEmpty(env, name);
    if (!value) {
      return error(Code::InvalidEnvironment, strformat("{} is not set", name));
    }
    out = *value;
    return {};
  };
  for (auto [name, out] : {std::pair{"CNI_CONTAINERID", &e.containerId},
                           std::pair{"CNI_IFNAME", &e.ifName}, std::pair{"CNI_PATH", &e.path}}) {
    if (auto ok = need(name, *out); !ok) {
      return std::unexpected(ok.error());
    }
  }
  if (command == Command::Del) {
    e.netns = env("CNI_NETNS").value_or("");
  } else if (auto ok = need("CNI_NETNS", e.netns); !ok) {
    return std::unexpected(ok.error());
  }
  if (!validContainerId(e.containerId)) {
    return error(Code::InvalidEnvironment,
                 "CNI_CONTAINERID '" + e.containerId +
                     "' is not a container id (alphanumerics, then also _ . -)");
  }
  if (!validIfName(e.ifName)) {
    return error(Code::InvalidEnvironment,
                 "CNI_IFNAME '" + e.ifName + "' is not an interface name");
  }
  auto args = env("CNI_ARGS").value_or("");
  for (size_t start = 0; start < args.size();) {
    auto end = std::min(args.find(';', start), args.size());
    auto pair = std::string_view(args).substr(start, end - start);
    auto eq = pair.find('=');
    if (eq == std::string_view::npos || eq == 0) {
      return error(Code::InvalidEnvironment,
                   "CNI_ARGS '" + args + "': '" + std::string(pair) + "' is not KEY=VALUE");
    }
    e.args.emplace_back(std::string(pair.substr(0, eq)), std::string(pair.substr(eq + 1)));
    start = end + 1;
  }
  return e;
}

CniResult<Config> parseConfig(Command command, std::string_view stdinText) {
  Json j = Json::parse(stdinText, nullptr, false);
  if (j.is_discarded()) {
    return error(Code::DecodeFailure, "the config on stdin is not JSON");
  }
  if (!j.is_object()) {
    return error(Code::DecodeFailure, "the config on stdin is not a JSON object");
  }
  Config c;
  auto version = stringField(j, "cniVersion", true);
  if (!version) {
    return std::unexpected(version.error());
  }
  c.cniVersion = *version;
  if (std::ranges::find(kSupportedVersions, c.cniVersion) == std::end(kSupportedVersions)) {
    return error(Code::IncompatibleVersion,
                 "cniVersion '" + c.cniVersion + "' is not supported (" +
                     supportedVersionsText() + ")");
  }
  if (command == Command::Check && before04(c.cniVersion)) {
    return error(Code::IncompatibleVersion,
                 strformat("cniVersion {} has no CHECK (0.4.0 does)", c.cniVersion));
  }
  if ((command == Command::Status || command == Command::Gc) && !atLeast11(c.cniVersion)) {
    return error(Code::IncompatibleVersion,
                 strformat("cniVersion {} has no {} (1.1.0 does)", c.cniVersion,
                             command == Command::Gc ? "GC" : "STATUS"));
  }
  for (auto [key, out] : {std::pair{"name", &c.name}, std::pair{"type", &c.type}}) {
    auto value = stringField(j, key, true);
    if (!value) {
      return std::unexpected(value.error());
    }
    *out = *value;
  }
  if (j.contains("socket")) {
    auto socket = stringField(j, "socket", false);
    if (!socket) {
      return std::unexpected(socket.error());
    }
    if (socket->empty() || socket->front() != '/') {
      return error(Code::InvalidConfig,
                   "config \"socket\" '" + *socket + "' is not an absolute path");
    }
    c.socket = *socket;
  }
  if (auto it = j.find("prevResult"); it != j.end() && !it->is_null()) {
    if (!it->is_object()) {
      return error(Code::InvalidConfig, "prevResult is not an object");
    }
    c.prevResult = *it;
  }
  if (command == Command::Add || command == Command::Check) {
    auto rc = j.find("runtimeConfig");
    if (rc != j.end() && !rc->is_null()) {
      if (!rc->is_object()) {
        return error(Code::InvalidConfig, "runtimeConfig is not an object");
      }
      auto pm = rc->find("portMappings");
      if (pm != rc->end() && !pm->is_null()) {
        if (!pm->is_array()) {
          return error(Code::InvalidConfig, "runtimeConfig.portMappings is not an array");
        }
        for (size_t i = 0; i < pm->size(); ++i) {
          auto m = portMapping((*pm)[i], i);
          if (!m) {
            return std::unexpected(m.error());
          }
          c.portMappings.push_back(*m);
        }
      }
    }
  }
  if (command == Command::Gc) {
    // Without the list GC would remove every owner of the network: refuse rather than guess.
    auto it = j.find("cni.dev/valid-attachments");
    if (it == j.end() || !it->is_array()) {
      return error(Code::InvalidConfig, "GC needs the array \"cni.dev/valid-attachments\"");
    }
    for (size_t i = 0; i < it->size(); ++i) {
      const auto& a = (*it)[i];
      auto field = strformat("cni.dev/valid-attachments[{}]", i);
      if (!a.is_object() || !a.contains("containerID") || !a["containerID"].is_string() ||
          !a.contains("ifname") || !a["ifname"].is_string()) {
        return error(Code::InvalidConfig,
                     field + " needs the strings \"containerID\" and \"ifname\"", a.dump());
      }
      c.validAttachments.push_back(
          Owner{c.name, a["containerID"].get<std::string>(), a["ifname"].get<std::string>()});
    }
  }
  return c;
}

CniResult<std::vector<IpAddress>> containerAddresses(const Json& prevResult,
                                                     const std::string& ifName) {
  auto interfaces = prevResult.find("interfaces");
  auto ips = prevResult.find("ips");
  if (ips == prevResult.end() || !ips->is_array()) {
    return error(Code::InvalidConfig, "prevResult has no \"ips\" array");
  }
  std::vector<IpAddress> out;
  for (size_t i = 0; i < ips->size(); ++i) {
    const auto& ip = (*ips)[i];
    auto field = strformat("prevResult.ips[{}]", i);
    if (!ip.is_object() || !ip.contains("address") || !ip["address"].is_string()) {
      return error(Code::InvalidConfig, field + " has no \"address\" string", ip.dump());
    }
    auto prefix = IpPrefix::parse(ip["address"].get<std::string>());
    if (!prefix) {
      return error(Code::InvalidConfig, field + ".address: " + prefix.error().str());
    }
    auto index = ip.find("interface");
    if (index == ip.end() || !index->is_number_integer() || interfaces == prevResult.end() ||
        !interfaces->is_array()) {
      continue;
    }
    auto n = index->get<int64_t>();
    if (n < 0 || static_cast<size_t>(n) >= interfaces->size()) {
      return error(Code::InvalidConfig,
                   strformat("{}.interface {} names no interface of prevResult", field, n));
    }
    const auto& link = (*interfaces)[static_cast<size_t>(n)];
    auto text = [&](const char* key) {
      auto it = link.find(key);
      return it != link.end() && it->is_string() ? it->get<std::string>() : std::string{};
    };
    if (text("sandbox").empty() || text("name") != ifName) {
      continue;
    }
    bool seen = std::ranges::any_of(
        out, [&](const IpAddress& a) { return a.family == prefix->addr.family; });
    if (!seen) {
      out.push_back(prefix->addr);
    }
  }
  return out;
}

CniResult<std::vector<OwnedExpose>> exposesFor(const std::vector<PortMapping>& mappings,
                                               const std::vector<IpAddress>& addresses) {
  std::vector<OwnedExpose> out;
  for (size_t i = 0; i < mappings.size(); ++i) {
    const auto& m = mappings[i];
    size_t before = out.size();
    for (const auto& addr : addresses) {
      if (m.hostIp && m.hostIp->family != addr.family) {
        continue;
      }
      OwnedExpose e;
      bool any = m.hostIp && *m.hostIp == IpAddress{m.hostIp->family, {}};
      if (m.hostIp && !any) {
        e.hostIp = m.hostIp;
      }
      e.hostPort = m.hostPort;
      e.proto = m.proto;
      e.target = addr;
      e.targetPort = m.containerPort;
      out.push_back(e);
    }
    if (out.size() == before) {
      return error(Code::InvalidConfig,
                   strformat("runtimeConfig.portMappings[{}]: the container has no {}address "
                               "on its interface",
                               i, !m.hostIp ? "" : m.hostIp->isV4() ? "IPv4 " : "IPv6 "));
    }
  }
  return out;
}

std::string errorJson(const CniError& error, std::string_view cniVersion) {
  Json j;
  j["cniVersion"] = cniVersion;
  j["code"] = static_cast<int>(error.code);
  j["msg"] = error.msg;
  if (!error.details.empty()) {
    j["details"] = error.details;
  }
  return j.dump() + "\n";
}

std::string peekVersion(std::string_view stdinText) {
  Json j = Json::parse(stdinText, nullptr, false);
  if (j.is_object()) {
    auto it = j.find("cniVersion");
    if (it != j.end() && it->is_string() &&
        std::ranges::find(kSupportedVersions, it->get<std::string>()) !=
            std::end(kSupportedVersions)) {
      return it->get<std::string>();
    }
  }
  return std::string(kLatestVersion);
}

} // namespace gw::cni
