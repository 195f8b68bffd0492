// SPDX-License-Identifier: MIT
// The two pseudo filesystems the data path needs: bpffs for pins, cgroup v2 for socket hooks.
#pragma once

#include <initializer_list>
#include <string>
#include <string_view>

#include "base/Error.h"

namespace gw {

inline constexpr const char* kSystemBpffs = "/sys/fs/bpf";

// Makes `dir` a directory on a bpffs: nothing to mount when it already is one or lies inside
// one; when it lies below `systemDir` (/sys/fs/bpf) and that is not a bpffs yet, mounts one
// there, as tc and bpftool do; otherwise creates `dir` and mounts a bpffs on it. Returns the
// mount point it mounted ("" when none), for releaseBpffs() to take down.
Result<std::string> ensureBpffs(const std::string& dir,
                                const std::string& systemDir = kSystemBpffs);

// After the pins in `dir` are gone: removes `dir`, and unmounts `mounted` (what ensureBpffs
// mounted, "" = nothing) once nothing but the kernel's preload entries is left in it. A bpffs
// that holds anything else (pins of others) stays.
Status releaseBpffs(const std::string& dir, const std::string& mounted);

// True when `path` is on a bpffs (statfs f_type == BPF_FS_MAGIC).
Result<bool> isBpffs(const std::string& path);

// Where a pin called `name` lives in `dir`.
std::string pinPath(const std::string& dir, std::string_view name);

// True when `path` exists (a pin of an earlier run, say).
bool pathExists(const std::string& path);

// Unpins every entry directly in `dir` whose name starts with one of `prefixes` (a missing dir
// has none). Keeps going past a failure and returns the first.
Status removePins(const std::string& dir, std::initializer_list<std::string_view> prefixes);

// The mount point of a cgroup v2 hierarchy from /proc/mounts; when there is none, mounts one
// at /run/gateway/cgroup2.
Result<std::string> findCgroup2();

} // namespace gw
