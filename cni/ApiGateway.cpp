// SPDX-License-Identifier: MIT
#include "cni/ApiGateway.h"

#include "cni/Text.h"

#include "control/Api.h"
#include "control/ApiClient.h"
#include "control/ApiCodec.h"
#include "control/Http.h"

namespace gw::cni {

namespace {

using api::Json;

std::unexpected<GatewayError> fault(Fault f, std::string message) {
  return std::unexpected(GatewayError{f, std::move(message)});
}

// "cni/NETWORK/CONTAINERID/IFNAME", checked as gatewayd checks owners; a part with '/'
// would not read back.
GatewayResult<ExposeOwner> ownerOf(const Owner& o) {
  for (const std::string* part : {&o.network, &o.containerId, &o.ifName}) {
    if (part->empty() || part->find('/') != std::string::npos) {
      return fault(Fault::Rejected, "'" + *part + "': an empty attachment part or one with '/'");
    }
  }
  auto owner = parseExposeOwner(std::string(ExposeOwner::kCniPrefix) + o.network + "/" +
                                o.containerId + "/" + o.ifName);
  if (!owner) {
    return fault(Fault::Rejected, owner.error().str());
  }
  return *owner;
}

std::string ownerPath(const ExposeOwner& owner) {
  return std::string(api::kOwnersPath) + "/" + http::percentEncode(owner.text);
}

std::string bracketed(const IpAddress& a) { return a.isV6() ? "[" + a.str() + "]" : a.str(); }

// One call; a non-2xx answer becomes its Fault by status.
GatewayResult<Json> call(const std::string& socket, std::chrono::milliseconds timeout,
                         const std::string& method, const std::string& target,
                         const std::string& body = {}) {
  auto sent = sendApi(socket, method, target, body, timeout);
  if (!sent.response) {
    // Connected and sent but no answer: gatewayd may have acted on it.
    return fault(sent.sent ? Fault::Internal : Fault::Unreachable,
                 sent.response.error().str());
  }
  const auto& r = *sent.response;
  Json j = Json::parse(r.body, nullptr, false);
  if (r.status >= 200 && r.status < 300) {
    if (j.is_discarded()) {
      return fault(Fault::Internal, method + " " + target + ": the answer is not JSON");
    }
    return j;
  }
  std::string why = j.is_object() && j.contains("error") && j["error"].is_string()
                        ? j["error"].get<std::string>()
                        : r.body;
  switch (r.status) {
  case 400: return fault(Fault::Rejected, why);
  case 404:
    return fault(Fault::Unsupported, "gatewayd does not support owners yet (" + why + ")");
  case 409: return fault(Fault::PortTaken, why);
  case 503: return fault(Fault::Unavailable, why);
  default: return fault(Fault::Internal, strformat("HTTP {}: {}", r.status, why));
  }
}

GatewayResult<api::ExposeRequest> request(const OwnedExpose& e) {
  api::ExposeRequest r;
  auto hostPort = parsePortRange(std::to_string(e.hostPort), "hostPort");
  auto target = parseTarget(strformat("{}:{}", bracketed(e.target), e.targetPort));
  if (!hostPort || !target) {
    return fault(Fault::Internal, (!hostPort ? hostPort.error() : target.error()).str());
  }
  r.hostPort = *hostPort;
  r.target = *target;
  r.proto = e.proto;
  r.hostIp = e.hostIp;
  r.family = e.target.isV4() ? IpFamilies::V4 : IpFamilies::V6;
  return r;
}

} // namespace

ApiGateway::ApiGateway(std::string socket, std::chrono::milliseconds timeout)
    : socket_(std::move(socket)), timeout_(timeout) {}

GatewayResult<void> ApiGateway::addOwnerExposes(const Owner& owner,
                                                const std::vector<OwnedExpose>& exposes) {
  auto o = ownerOf(owner);
  if (!o) {
    return std::unexpected(o.error());
  }
  Json body = Json::array();
  for (const auto& e : exposes) {
    auto r = request(e);
    if (!r) {
      return std::unexpected(r.error());
    }
    body.push_back(api::toJson(*r));
  }
  auto answer = call(socket_, timeout_, "PUT", ownerPath(*o), body.dump());
  if (!answer) {
    return std::unexpected(answer.error());
  }
  return {};
}

GatewayResult<void> ApiGateway::deleteOwner(const Owner& owner) {
  auto o = ownerOf(owner);
  if (!o) {
    return std::unexpected(o.error());
  }
  auto answer = call(socket_, timeout_, "DELETE", ownerPath(*o));
  if (!answer) {
    return std::unexpected(answer.error());
  }
  return {};
}

GatewayResult<std::vector<OwnedExpose>> ApiGateway::listOwner(const Owner& owner) {
  auto o = ownerOf(owner);
  if (!o) {
    return std::unexpected(o.error());
  }
  // Owner support first (404 on a gatewayd without it), then the rules naming the owner.
  if (auto owners = call(socket_, timeout_, "GET", api::kOwnersPath); !owners) {
    return std::unexpected(owners.error());
  }
  auto answer = call(socket_, timeout_, "GET", api::kExposesPath);
  if (!answer) {
    return std::unexpected(answer.error());
  }
  if (!answer->is_array()) {
    return fault(Fault::Internal, std::string("GET ") + api::kExposesPath + ": not an array");
  }
  std::vector<OwnedExpose> out;
  for (const auto& item : *answer) {
    auto info = api::fromJson<api::ExposeInfo>(item, "expose");
    if (!info) {
      return fault(Fault::Internal, info.error().str());
    }
    if (info->owner != *o) {
      continue;
    }
    OwnedExpose e;
    if (!info->hostIp.empty() && info->hostIp != "*") { // "*": every host address
      auto addr = IpAddress::parse(info->hostIp);
      if (!addr) {
        return fault(Fault::Internal, addr.error().str());
      }
      e.hostIp = *addr;
    }
    e.hostPort = info->hostPort.first;
    e.proto = info->proto;
    e.target = info->targetAddr;
    e.targetPort = info->targetPort.first;
    out.push_back(e);
  }
  return out;
}

GatewayResult<std::vector<Owner>> ApiGateway::ownersAll(const std::string& network) {
  auto answer = call(socket_, timeout_, "GET", api::kOwnersPath);
  if (!answer) {
    return std::unexpected(answer.error());
  }
  auto owners = api::fromJson<std::vector<api::OwnerInfo>>(*answer, "owners");
  if (!owners) {
    return fault(Fault::Internal, owners.error().str());
  }
  // Ours are "cni/NETWORK/CONTAINERID/IFNAME"; other owners are not the plugin's to judge.
  std::string prefix = "cni/" + network + "/";
  std::vector<Owner> out;
  for (const auto& info : *owners) {
    const std::string& text = info.owner.text;
    if (!text.starts_with(prefix)) {
      continue;
    }
    std::string rest = text.substr(prefix.size());
    auto slash = rest.find('/');
    if (slash == std::string::npos || slash == 0 || slash + 1 == rest.size() ||
        rest.find('/', slash + 1) != std::string::npos) {
      continue;
    }
    out.push_back(Owner{network, rest.substr(0, slash), rest.substr(slash + 1)});
  }
  return out;
}

GatewayResult<void> ApiGateway::status() {
  auto answer = call(socket_, timeout_, "GET", api::kStatusPath);
  if (!answer) {
    return std::unexpected(answer.error());
  }
  auto info = api::fromJson<api::StatusInfo>(*answer, "status");
  if (!info) {
    return fault(Fault::Internal, info.error().str());
  }
  if (!info->datapath.loaded) {
    return fault(Fault::Unavailable,
                 "the eBPF data path is not loaded" +
                     (info->datapath.error ? ": " + *info->datapath.error : std::string{}));
  }
  return {};
}

} // namespace gw::cni
