// SPDX-License-Identifier: MIT
#include "gateway/services/MetricsService.h"

#include <cstdio>
#include <optional>
#include <string>
#include <vector>

namespace gw {
namespace {

class Exposition {
public:
  void help(const std::string& name, const char* type, const char* text) {
    out_ += "# HELP " + name + " " + text + "\n# TYPE " + name + " " + type + "\n";
  }
  void line(const std::string& name, const std::string& labels, uint64_t value) {
    out_ += name + (labels.empty() ? "" : "{" + labels + "}") + " " + std::to_string(value) +
            "\n";
  }
  void seconds(const std::string& name, uint64_t micros) {
    char text[32];
    std::snprintf(text, sizeof text, "%.6f", static_cast<double>(micros) / 1e6);
    out_ += name + " " + text + "\n";
  }
  std::string take() { return std::move(out_); }

private:
  std::string out_;
};

} // namespace

Result<api::StatsInfo> MetricsService::stats() {
  api::StatsInfo out;
  if (ctx_.datapath) {
    auto s = conntrack_.stats(ctx_.state.exposes);
    if (!s) {
      return std::unexpected(s.error());
    }
    out = std::move(*s);
  } else {
    out.datapathLoaded = false;
  }
  out.proxy = exposes_.proxyStats();
  return out;
}

std::string MetricsService::render() {
  Exposition m;
  m.help("gateway_up", "gauge", "1 while gatewayd serves");
  m.line("gateway_up", "", 1);
  m.help("gateway_namespaces", "gauge", "namespaces managed by gatewayd");
  m.line("gateway_namespaces", "", ctx_.state.namespaces.size());
  m.help("gateway_datapath_loaded", "gauge", "1 when the eBPF data path is loaded");
  m.line("gateway_datapath_loaded", "", ctx_.datapath ? 1 : 0);
  std::optional<DatapathStats> stats;
  if (ctx_.datapath) {
    if (auto s = ctx_.datapath.dp->stats(); s) {
      stats = std::move(*s);
    }
  }
  auto rows = exposes_.list(stats ? &*stats : nullptr);
  struct Counter {
    const char* name;
    uint64_t api::ExposeInfo::*value;
  };
  std::vector<std::string> labels; // a row's, shared by its four counters
  for (const auto& e : rows) {
    labels.push_back("rule=\"" + std::to_string(e.id) + "\",proto=\"" +
                     std::string(protoName(e.proto)) + "\",host_port=\"" + e.hostPort.str() +
                     "\",target=\"" + e.target + "\",path=\"" + std::string(toString(e.path)) +
                     "\"");
  }
  for (const auto& [what, value] :
       {Counter{"packets", &api::ExposeInfo::packets}, Counter{"bytes", &api::ExposeInfo::bytes},
        Counter{"connections", &api::ExposeInfo::connections},
        Counter{"drops", &api::ExposeInfo::drops}}) {
    std::string name = std::string("gateway_expose_") + what + "_total";
    m.help(name, "counter", "per expose rule");
    for (size_t i = 0; i < rows.size(); ++i) {
      m.line(name, labels[i], rows[i].*value);
    }
  }
  if (stats) {
    m.help("gateway_datapath_packets_total", "counter", "packets by named reason");
    for (const auto& r : stats->reasons) {
      m.line("gateway_datapath_packets_total", "reason=\"" + std::string(r.name) + "\"",
             r.packets);
    }
    m.help("gateway_conntrack_entries", "gauge", "conntrack map entries (two per flow)");
    m.line("gateway_conntrack_entries", "", stats->ctEntries);
    m.help("gateway_conntrack_capacity", "gauge", "conntrack map capacity");
    m.line("gateway_conntrack_capacity", "", stats->ctCapacity);
    m.help("gateway_conntrack_pressure_sweeps_total", "counter",
           "conntrack sweeps that found the map at least 75% full (LRU evicting)");
    m.line("gateway_conntrack_pressure_sweeps_total", "", conntrack_.pressureSweeps());
    m.help("gateway_conntrack_sweep_seconds", "gauge", "how long the last conntrack sweep took");
    m.seconds("gateway_conntrack_sweep_seconds", conntrack_.lastSweepMicros());
    m.help("gateway_conntrack_sweep_interval_seconds", "gauge",
           "the wait before the next sweep: --gc-interval, or 20 times the last sweep if longer");
    m.seconds("gateway_conntrack_sweep_interval_seconds", conntrack_.sweepWaitMicros());
  }
  if (ctx_.datapath) {
    m.help("gateway_snat_ports_in_use", "gauge",
           "flows holding a masquerade/hairpin port (at the last conntrack sweep)");
    m.line("gateway_snat_ports_in_use", "", conntrack_.snatPortsInUse());
  }
  auto proxied = exposes_.proxyStats();
  if (!proxied.empty()) {
    m.help("gateway_proxy_backend_failures_total", "counter",
           "proxied connections whose backend refused, timed out or reset, per expose rule");
    for (const auto& p : proxied) {
      m.line("gateway_proxy_backend_failures_total", "rule=\"" + std::to_string(p.id) + "\"",
             p.backendFailed);
    }
  }
  if (auto active = proxy_.activeConnections(); active) {
    m.help("gateway_proxy_connections_active", "gauge", "open proxied connections");
    m.line("gateway_proxy_connections_active", "", *active);
  }
  return m.take();
}

} // namespace gw
