// SPDX-License-Identifier: MIT
// The CNI side of gateway-portmap: the environment and the stdin config, parsed once into
// types (or refused with the spec's error code and the field named), and the error answer.
#pragma once

#include <expected>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/Ip.h"
#include "cni/Gateway.h"
#include "control/ApiValues.h"

namespace gw::cni {

// Keeps the key order of what came in: prevResult goes back out as it came.
using Json = nlohmann::ordered_json;

inline constexpr std::string_view kLatestVersion = "1.1.0";
// 0.3.x: flannel's and older runtimes' configs (no CHECK before 0.4.0).
inline constexpr std::string_view kSupportedVersions[] = {"0.3.0", "0.3.1", "0.4.0", "1.0.0",
                                                          "1.1.0"};
// "0.3.0, 0.3.1, ...": for messages.
std::string supportedVersionsText();
inline constexpr const char* kDefaultSocket = "/run/gateway/gateway.sock";

// The spec's well-known codes, then ours (100+).
enum class Code : int {
  IncompatibleVersion = 1,
  UnsupportedField = 2,
  InvalidEnvironment = 4,
  DecodeFailure = 6,
  InvalidConfig = 7,
  TryAgainLater = 11,
  NotAvailable = 50,
  PortTaken = 100,       // another owner holds a host port
  GatewayRejected = 101, // gatewayd refused the exposes as invalid
  NoOwnerSupport = 102,  // this gatewayd does not know owners
  CheckMismatch = 103,   // CHECK: the owner's exposes differ from the config's
  GatewayFailed = 104,   // gatewayd failed otherwise
};

struct CniError {
  Code code = Code::InvalidConfig;
  std::string msg;
  std::string details;
};

template <class T>
using CniResult = std::expected<T, CniError>;

enum class Command { Add, Del, Check, Version, Status, Gc };

// CNI_* variables. Only those the command needs are required.
struct Environment {
  Command command = Command::Version;
  std::string containerId;
  std::string netns; // may be empty for DEL (the namespace can be gone)
  std::string ifName;
  std::vector<std::pair<std::string, std::string>> args; // CNI_ARGS "K=V;K2=V2"
  std::string path;
};

struct PortMapping {
  uint16_t hostPort = 0;
  uint16_t containerPort = 0;
  Proto proto = Proto::Tcp;
  std::optional<IpAddress> hostIp; // absent: any family; 0.0.0.0 / :: : any address of one

  bool operator==(const PortMapping&) const = default;
};

struct Config {
  std::string cniVersion;
  std::string name;
  std::string type;
  std::string socket = kDefaultSocket;
  std::vector<PortMapping> portMappings; // parsed for ADD and CHECK only
  std::optional<Json> prevResult;
  std::vector<Owner> validAttachments; // GC: cni.dev/valid-attachments (network = name)
};

using EnvLookup = std::function<std::optional<std::string>(const char* name)>;

CniResult<Command> parseCommand(const EnvLookup& env);
CniResult<Environment> parseEnvironment(Command command, const EnvLookup& env);
CniResult<Config> parseConfig(Command command, std::string_view stdinText);

// The container's addresses from prevResult: the first of each family whose interface has a
// sandbox and is `ifName`.
CniResult<std::vector<IpAddress>> containerAddresses(const Json& prevResult,
                                                     const std::string& ifName);
// One expose per mapping and container family (a hostIP limits it to its family).
CniResult<std::vector<OwnedExpose>> exposesFor(const std::vector<PortMapping>& mappings,
                                               const std::vector<IpAddress>& addresses);

// The error answer: {"cniVersion","code","msg","details"}.
std::string errorJson(const CniError& error, std::string_view cniVersion);
// cniVersion from stdin if it holds one, for error answers made before the config parsed.
std::string peekVersion(std::string_view stdinText);

} // namespace gw::cni
