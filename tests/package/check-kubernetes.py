#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# check-kubernetes.py SOURCE_DIR GATEWAYD GATEWAY_CNI_SETUP GWCTL: Kubernetes is not installable
# here, so the manifests in deploy/kubernetes are checked for what would break them on a
# cluster: the shape of each object, the DaemonSets' mounts and volumes, that every command
# line uses only options the built binaries accept (their --help), that gatewayd's paths are
# mounted from the node's paths docs/CLUSTER.md names, and one image everywhere.
import os
import re
import subprocess
import sys
import tempfile

import yaml

src, gatewayd, setup, gwctl = sys.argv[1:5]
kube = os.path.join(src, "deploy", "kubernetes")
failures = []


def fail(what):
    failures.append(what)
    print("FAIL: " + what)


def options_of(binary):
    """The long options a binary's --help lists."""
    out = subprocess.run([binary, "--help"], capture_output=True, text=True, check=True).stdout
    return set(re.findall(r"(--[a-z0-9][a-z0-9-]*)", out))


known = {
    "gatewayd": options_of(gatewayd),
    "gateway-cni-setup": options_of(setup),
    "gwctl": options_of(gwctl),
}
# The node's paths gatewayd and the installer need (docs/CLUSTER.md names each).
node_paths = {"/sys/fs/bpf", "/run/netns", "/sys/fs/cgroup", "/var/lib/gateway", "/run/gateway",
              "/opt/cni/bin", "/etc/cni/net.d"}
with open(os.path.join(src, "docs", "CLUSTER.md")) as f:
    cluster_md = f.read()
for path in sorted(node_paths):
    if not re.search(r"(?<![\w/.])" + re.escape(path) + r"(?![\w-])", cluster_md):
        fail(f"docs/CLUSTER.md does not name the node path {path}")

with open(os.path.join(src, "CMakeLists.txt")) as f:
    version = re.search(r"project\(gateway VERSION ([0-9.]+)", f.read()).group(1)
image = f"gateway:{version}"
with open(os.path.join(kube, "Dockerfile")) as f:
    dockerfile = f.read()
if not re.search(r"^FROM debian:12$", dockerfile, re.M):
    fail("Dockerfile: not FROM debian:12")
if f"-t {image} " not in dockerfile:
    fail(f"Dockerfile: its build line does not tag {image}")

docs = []
for name in sorted(os.listdir(kube)):
    if name.endswith((".yaml", ".yml")):
        with open(os.path.join(kube, name)) as f:
            for i, doc in enumerate(yaml.safe_load_all(f)):
                if doc is not None:
                    docs.append((f"{name}#{i}", doc))
if not docs:
    fail("no manifests in deploy/kubernetes")

namespaces = {d["metadata"]["name"] for _, d in docs if d.get("kind") == "Namespace"}
configmaps = {(d["metadata"].get("namespace"), d["metadata"]["name"]): d
              for _, d in docs if d.get("kind") == "ConfigMap"}
daemonsets = []
for where, doc in docs:
    for key in ("apiVersion", "kind", "metadata"):
        if key not in doc:
            fail(f"{where}: no {key}")
    kind = doc.get("kind")
    meta = doc.get("metadata", {})
    if not meta.get("name"):
        fail(f"{where}: no metadata.name")
    if kind != "Namespace" and meta.get("namespace") not in namespaces:
        fail(f"{where}: namespace {meta.get('namespace')!r} is not one the manifests make")
    expected = {"Namespace": "v1", "ConfigMap": "v1", "ServiceAccount": "v1",
                "DaemonSet": "apps/v1"}
    if kind not in expected:
        fail(f"{where}: unexpected kind {kind}")
    elif doc.get("apiVersion") != expected[kind]:
        fail(f"{where}: {kind} has apiVersion {doc.get('apiVersion')}, expected {expected[kind]}")
    if kind == "DaemonSet":
        daemonsets.append((where, doc))

if not any(d["metadata"]["name"] == "gatewayd" for _, d in daemonsets):
    fail("no DaemonSet gatewayd")


def invocations(command, program):
    """Each run of `program` in a container's command (exec form or an sh -c script): its words."""
    if command and command[0].endswith("/" + program):
        return [command[1:]]
    if command[:2] == ["/bin/sh", "-c"]:
        script = command[2].replace("\\\n", " ")
        runs = []
        for m in re.finditer(r"/" + re.escape(program) + r"\b([^;|&\n]*)", script):
            runs.append(m.group(1).split())
        return runs
    return []


def value_of(words, flag):
    return words[words.index(flag) + 1] if flag in words else None


def mounted(path, mounts):
    return next((m for m in mounts if path == m["mountPath"] or
                 path.startswith(m["mountPath"].rstrip("/") + "/")), None)


gatewayd_runs = 0
sockets = set()
for where, ds in daemonsets:
    name = ds["metadata"]["name"]
    spec = ds["spec"]
    pod = spec["template"]["spec"]
    labels = spec["template"]["metadata"].get("labels", {})
    for k, v in spec["selector"]["matchLabels"].items():
        if labels.get(k) != v:
            fail(f"{name}: selector {k}={v} does not match the pod template's labels")
    if pod.get("hostNetwork") is not True:
        fail(f"{name}: hostNetwork is not true")
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    if len(volumes) != len(pod.get("volumes", [])):
        fail(f"{name}: volume names repeat")
    used = set()
    for v in volumes.values():
        if "hostPath" in v:
            path = v["hostPath"]["path"]
            if path not in node_paths:
                fail(f"{name}: volume {v['name']} mounts the node's {path}, "
                     "which the docs do not name")
        elif "configMap" in v:
            if (ds["metadata"]["namespace"], v["configMap"]["name"]) not in configmaps:
                fail(f"{name}: volume {v['name']}: no ConfigMap {v['configMap']['name']}")
        else:
            fail(f"{name}: volume {v['name']} is neither hostPath nor configMap")
    containers = pod.get("initContainers", []) + pod["containers"]
    for c in containers:
        cname = f"{name}/{c['name']}"
        if c.get("image") != image:
            fail(f"{cname}: image {c.get('image')}, expected {image} (CMakeLists.txt's version)")
        mounts = c.get("volumeMounts", [])
        paths = [m["mountPath"] for m in mounts]
        if len(set(paths)) != len(paths):
            fail(f"{cname}: a mountPath repeats")
        privileged = c.get("securityContext", {}).get("privileged") is True
        for m in mounts:
            used.add(m["name"])
            if m["name"] not in volumes:
                fail(f"{cname}: volumeMount {m['name']} names no volume")
            if m.get("mountPropagation") == "Bidirectional" and not privileged:
                fail(f"{cname}: Bidirectional propagation of {m['name']} needs privileged")
        command = c.get("command", [])
        programs = [p for p in known if invocations(command, p)]
        if not programs:
            fail(f"{cname}: runs none of gatewayd, gateway-cni-setup, gwctl")
        for program in programs:
            for words in invocations(command, program):
                for word in words:
                    if word.startswith("--") and word not in known[program]:
                        fail(f"{cname}: {program} has no option {word} (its --help)")
        for words in invocations(command, "gatewayd"):
            gatewayd_runs += 1
            if not privileged:
                fail(f"{cname}: gatewayd runs unprivileged")
            for flag, node in (("--bpffs", "/sys/fs/bpf"), ("--state-dir", "/var/lib/gateway"),
                               ("--socket", "/run/gateway")):
                path = value_of(words, flag)
                if path is None:
                    fail(f"{cname}: gatewayd without {flag}: its path must be a mounted one")
                    continue
                m = mounted(path, mounts)
                host = m and volumes.get(m["name"], {}).get("hostPath", {}).get("path")
                if host != node or m["mountPath"] != node:
                    fail(f"{cname}: {flag} {path} is not on the node's {node} mounted at {node}")
            if value_of(words, "--socket"):
                sockets.add(value_of(words, "--socket"))
            for node in ("/run/netns", "/sys/fs/cgroup"):
                m = mounted(node, mounts)
                if not m or volumes.get(m["name"], {}).get("hostPath", {}).get("path") != node:
                    fail(f"{cname}: gatewayd without the node's {node} at {node}")
            m = mounted("/sys/fs/bpf", mounts)
            if m and m.get("mountPropagation") != "Bidirectional":
                fail(f"{cname}: a bpffs gatewayd mounts would die with the pod (not Bidirectional)")
            config = value_of(words, "--config")
            m = config and mounted(config, mounts)
            cm = m and volumes.get(m["name"], {}).get("configMap")
            ns = ds["metadata"]["namespace"]
            data = cm and configmaps.get((ns, cm["name"]), {}).get("data", {})
            key = config and os.path.relpath(config, m["mountPath"]) if m else None
            if not data or key not in data:
                fail(f"{cname}: --config {config} is no key of a mounted ConfigMap")
            else:
                with tempfile.NamedTemporaryFile("w", suffix=".conf") as tmp:
                    tmp.write(data[key])
                    tmp.flush()
                    r = subprocess.run([gatewayd, "--config", tmp.name, "--help"],
                                       capture_output=True, text=True)
                    if r.returncode != 0:
                        fail(f"{cname}: gatewayd refuses the ConfigMap's {key}: {r.stderr.strip()}")
                for line in data[key].splitlines():
                    k = line.split("=")[0].strip()
                    if k and not k.startswith("#") and "--" + k not in known["gatewayd"]:
                        fail(f"{cname}: {key} sets {k}, which gatewayd does not know")
        for words in invocations(command, "gateway-cni-setup"):
            for flag, node in (("--conf-dir", "/etc/cni/net.d"), ("--bin-dir", "/opt/cni/bin")):
                path = value_of(words, flag)
                m = path and mounted(path, mounts)
                if not m or volumes.get(m["name"], {}).get("hostPath", {}).get("path") != node:
                    fail(f"{cname}: gateway-cni-setup {flag} {path} is not the node's {node}")
            if value_of(words, "--socket"):
                sockets.add(value_of(words, "--socket"))
        for words in invocations(command, "gwctl"):
            if value_of(words, "--socket"):
                sockets.add(value_of(words, "--socket"))
    for v in volumes:
        if v not in used:
            fail(f"{name}: volume {v} is mounted by no container")

if gatewayd_runs == 0:
    fail("no container runs gatewayd")
if len(sockets) != 1:
    fail(f"the commands name different sockets: {sorted(sockets)}")

if failures:
    print(f"{len(failures)} check(s) failed")
    sys.exit(1)
print(f"kubernetes: {len(docs)} objects, {len(daemonsets)} DaemonSets, {gatewayd_runs} gatewayd "
      "command lines: all checks passed")
