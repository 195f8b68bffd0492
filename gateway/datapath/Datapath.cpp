// SPDX-License-Identifier: MIT
#include "gateway/datapath/Datapath.h"

#include <algorithm>

namespace gw {

Result<XdpMode> parseXdpMode(std::string_view text) {
  if (text == "auto") {
    return XdpMode::Auto;
  }
  if (text == "native" || text == "drv") {
    return XdpMode::Native;
  }
  if (text == "generic" || text == "skb") {
    return XdpMode::Generic;
  }
  if (text == "off" || text == "none") {
    return XdpMode::Off;
  }
  return fail("unknown XDP mode '" + std::string(text) + "' (auto, native, generic, off)");
}

std::string_view toString(XdpMode mode) {
  switch (mode) {
  case XdpMode::Auto:
    return "auto";
  case XdpMode::Native:
    return "native";
  case XdpMode::Generic:
    return "generic";
  case XdpMode::Off:
    return "off";
  }
  return "?";
}

Result<TcHook> parseTcHook(std::string_view text) {
  if (text == "auto") {
    return TcHook::Auto;
  }
  if (text == "tcx") {
    return TcHook::Tcx;
  }
  if (text == "clsact") {
    return TcHook::Clsact;
  }
  return fail("unknown tc hook '" + std::string(text) + "' (auto, tcx, clsact)");
}

std::string_view toString(TcHook hook) {
  switch (hook) {
  case TcHook::Auto:
    return "auto";
  case TcHook::Tcx:
    return "tcx";
  case TcHook::Clsact:
    return "clsact";
  }
  return "?";
}

Result<FlowPage> Datapath::listFlowPage(const FlowFilter& filter,
                                        const std::optional<FlowKey>& after, size_t limit) {
  auto flows = listFlows();
  if (!flows) {
    return std::unexpected(flows.error());
  }
  std::erase_if(*flows, [&](const Flow& f) {
    return !filter.matches(f) || (after && flowKey(f) <= *after);
  });
  auto byKey = [](const Flow& a, const Flow& b) { return flowKey(a) < flowKey(b); };
  FlowPage page;
  page.more = flows->size() > limit;
  if (page.more) {
    std::nth_element(flows->begin(), flows->begin() + static_cast<ptrdiff_t>(limit),
                     flows->end(), byKey);
    flows->resize(limit);
  }
  std::sort(flows->begin(), flows->end(), byKey);
  page.flows = std::move(*flows);
  return page;
}

} // namespace gw
