// SPDX-License-Identifier: MIT
// The two pseudo filesystems the data path needs: bpffs for pins, cgroup v2 for socket hooks.
#pragma once

#include <string>

#include "base/Error.h"

namespace gw {

// Makes `dir` a directory on a bpffs: nothing to do when it already is one (or lies inside
// one: then it is created there); otherwise creates it and mounts a fresh bpffs on it.
Status ensureBpffs(const std::string& dir);

// True when `path` is on a bpffs (statfs f_type == BPF_FS_MAGIC).
Result<bool> isBpffs(const std::string& path);

// The mount point of a cgroup v2 hierarchy from /proc/mounts; when there is none, mounts one
// at /run/gateway/cgroup2.
Result<std::string> findCgroup2();

} // namespace gw
