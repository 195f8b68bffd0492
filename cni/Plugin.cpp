// SPDX-License-Identifier: MIT
#include "cni/Plugin.h"

#include <algorithm>
#include "cni/Text.h"

namespace gw::cni {

namespace {

std::unexpected<CniError> error(Code code, std::string msg, std::string details = {}) {
  return std::unexpected(CniError{code, std::move(msg), std::move(details)});
}

// A gateway failure as the spec's codes; `down` is the code for an unreachable gatewayd.
CniError fromGateway(const GatewayError& e, std::string_view doing, Code down) {
  auto msg = strformat("{}: {}", doing, e.message);
  switch (e.fault) {
  case Fault::PortTaken: return {Code::PortTaken, msg, {}};
  case Fault::Rejected: return {Code::GatewayRejected, msg, {}};
  case Fault::Unreachable:
  case Fault::Unavailable: return {down, msg, {}};
  case Fault::Unsupported: return {Code::NoOwnerSupport, msg, {}};
  case Fault::Internal: break;
  }
  return {Code::GatewayFailed, msg, {}};
}

std::string describe(const OwnedExpose& e) {
  auto host = e.hostIp ? (e.hostIp->isV6() ? "[" + e.hostIp->str() + "]" : e.hostIp->str())
                       : std::string("*");
  auto target = e.target.isV6() ? "[" + e.target.str() + "]" : e.target.str();
  return strformat("{}:{}/{} -> {}:{}", host, e.hostPort, protoName(e.proto), target,
                     e.targetPort);
}

Owner ownerOf(const Config& config, const Environment& env) {
  return Owner{config.name, env.containerId, env.ifName};
}

CniResult<std::vector<OwnedExpose>> wanted(const Config& config, const Environment& env) {
  if (!config.prevResult) {
    return error(Code::InvalidConfig,
                 "no prevResult: gateway-portmap is chained after a plugin that gives the "
                 "container its addresses (bridge)");
  }
  if (config.portMappings.empty()) {
    return std::vector<OwnedExpose>{};
  }
  auto addresses = containerAddresses(*config.prevResult, env.ifName);
  if (!addresses) {
    return std::unexpected(addresses.error());
  }
  return exposesFor(config.portMappings, *addresses);
}

// The result: prevResult as it came (a chained plugin passes it on), with the cniVersion the
// spec asks every result to carry when it had none.
std::string result(const Config& config) {
  Json out = *config.prevResult;
  if (!out.contains("cniVersion")) {
    out["cniVersion"] = config.cniVersion;
  }
  return out.dump() + "\n";
}

CniResult<std::string> add(const Config& config, const Environment& env, const Connect& connect) {
  auto exposes = wanted(config, env);
  if (!exposes) {
    return std::unexpected(exposes.error());
  }
  if (exposes->empty()) {
    return result(config);
  }
  auto& gateway = connect(config.socket);
  auto owner = ownerOf(config, env);
  auto added = gateway.addOwnerExposes(owner, *exposes);
  if (!added) {
    // The request is all or nothing, but when its answer was lost it may have been applied:
    // take it back so nothing is left half-made (the runtime's DEL would too).
    if (added.error().fault == Fault::Unreachable || added.error().fault == Fault::Internal) {
      (void)gateway.deleteOwner(owner);
    }
    return std::unexpected(fromGateway(added.error(), "publishing the ports", Code::TryAgainLater));
  }
  return result(config);
}

CniResult<std::string> del(const Config& config, const Environment& env, const Connect& connect) {
  auto deleted = connect(config.socket).deleteOwner(ownerOf(config, env));
  // A gatewayd without owners holds none to remove (its ADD failed): DEL must not block the
  // container's removal on it.
  if (!deleted && deleted.error().fault != Fault::Unsupported) {
    return std::unexpected(
        fromGateway(deleted.error(), "removing the published ports", Code::TryAgainLater));
  }
  return std::string{};
}

CniResult<std::string> check(const Config& config, const Environment& env,
                             const Connect& connect) {
  auto exposes = wanted(config, env);
  if (!exposes) {
    return std::unexpected(exposes.error());
  }
  auto listed = connect(config.socket).listOwner(ownerOf(config, env));
  if (!listed) {
    return std::unexpected(
        fromGateway(listed.error(), "listing the published ports", Code::TryAgainLater));
  }
  auto want = *exposes;
  auto have = *listed;
  std::ranges::sort(want);
  std::ranges::sort(have);
  std::vector<OwnedExpose> missing;
  std::vector<OwnedExpose> extra;
  std::ranges::set_difference(want, have, std::back_inserter(missing));
  std::ranges::set_difference(have, want, std::back_inserter(extra));
  if (missing.empty() && extra.empty()) {
    return std::string{};
  }
  std::string details;
  for (const auto& e : missing) {
    details += (details.empty() ? "" : "; ") + std::string("missing ") + describe(e);
  }
  for (const auto& e : extra) {
    details += (details.empty() ? "" : "; ") + std::string("unexpected ") + describe(e);
  }
  return error(Code::CheckMismatch,
               strformat("the published ports of {}/{} differ from runtimeConfig.portMappings",
                           env.containerId, env.ifName),
               details);
}

CniResult<std::string> status(const Config& config, const Connect& connect) {
  auto up = connect(config.socket).status();
  if (!up) {
    // STATUS has one answer for "cannot add now", whatever the reason.
    auto e = fromGateway(up.error(), "gatewayd at " + config.socket, Code::NotAvailable);
    e.code = Code::NotAvailable;
    return std::unexpected(e);
  }
  return std::string{};
}

CniResult<std::string> gc(const Config& config, const Connect& connect) {
  auto& gateway = connect(config.socket);
  auto owners = gateway.ownersAll(config.name);
  if (!owners && owners.error().fault == Fault::Unsupported) {
    return std::string{}; // no owners there to collect
  }
  if (!owners) {
    return std::unexpected(fromGateway(owners.error(), "listing owners", Code::TryAgainLater));
  }
  std::string failed;
  std::optional<CniError> first;
  for (const auto& owner : *owners) {
    if (owner.network != config.name ||
        std::ranges::find(config.validAttachments, owner) != config.validAttachments.end()) {
      continue;
    }
    if (auto deleted = gateway.deleteOwner(owner); !deleted) {
      if (!first) {
        first = fromGateway(deleted.error(), "removing stale owners", Code::TryAgainLater);
      }
      failed += (failed.empty() ? "" : "; ") + owner.containerId + "/" + owner.ifName + ": " +
                deleted.error().message;
    }
  }
  if (first) {
    first->details = failed;
    return std::unexpected(*first);
  }
  return std::string{};
}

std::string versionAnswer() {
  Json j;
  j["cniVersion"] = kLatestVersion;
  j["supportedVersions"] = Json::array();
  for (auto v : kSupportedVersions) {
    j["supportedVersions"].push_back(v);
  }
  return j.dump() + "\n";
}

} // namespace

Outcome run(std::string_view stdinText, const EnvLookup& envLookup, const Connect& connect) {
  auto failed = [&](const CniError& e, std::string_view version) {
    return Outcome{1, errorJson(e, version)};
  };
  auto command = parseCommand(envLookup);
  if (!command) {
    return failed(command.error(), peekVersion(stdinText));
  }
  // VERSION answers whatever the environment and stdin hold (libcni probes with dummies).
  if (*command == Command::Version) {
    return Outcome{0, versionAnswer()};
  }
  auto env = parseEnvironment(*command, envLookup);
  if (!env) {
    return failed(env.error(), peekVersion(stdinText));
  }
  auto config = parseConfig(*command, stdinText);
  if (!config) {
    return failed(config.error(), peekVersion(stdinText));
  }
  CniResult<std::string> out;
  switch (*command) {
  case Command::Add: out = add(*config, *env, connect); break;
  case Command::Del: out = del(*config, *env, connect); break;
  case Command::Check: out = check(*config, *env, connect); break;
  case Command::Status: out = status(*config, connect); break;
  case Command::Gc: out = gc(*config, connect); break;
  case Command::Version: break;
  }
  if (!out) {
    return failed(out.error(), config->cniVersion);
  }
  return Outcome{0, *out};
}

} // namespace gw::cni
