// SPDX-License-Identifier: MIT
#include "gateway/datapath/Datapath.h"

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

} // namespace gw
