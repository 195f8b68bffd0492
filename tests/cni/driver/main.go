// SPDX-License-Identifier: MIT
// cni-driver: a CNI runtime for the tests, over Debian's libcni 1.1.2 (ADD, CHECK, DEL of a
// conflist, as Podman and containerd drive one) plus STATUS and GC, which libcni 1.1.2 does not
// know, exec'd by hand as CNI 1.1.0 says. Prints the result (or the plugin's error JSON) on
// stdout; exits 0 on success, 1 when a plugin failed, 2 on bad usage.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/types"
)

func usage(msg string) {
	fmt.Fprintf(os.Stderr, "cni-driver: %s\n"+
		"usage: cni-driver add|check|del|status|gc --conflist FILE --cni-path DIRS\n"+
		"         [--netns PATH --id CONTAINERID --ifname IF --port-mappings JSON]\n"+
		"         [--cache-dir DIR] [--valid-attachments JSON (gc)]\n", msg)
	os.Exit(2)
}

// fail prints a plugin's error as the spec's JSON (libcni wraps it; the code is kept).
func fail(err error) {
	out := map[string]interface{}{"code": 999, "msg": err.Error()}
	var cniErr *types.Error
	if errors.As(err, &cniErr) {
		out["code"] = cniErr.Code
		out["msg"] = cniErr.Msg
		out["details"] = cniErr.Details
	}
	text, _ := json.Marshal(out)
	fmt.Println(string(text))
	os.Exit(1)
}

func main() {
	if len(os.Args) < 2 {
		usage("no command")
	}
	command := os.Args[1]
	flags := flag.NewFlagSet("cni-driver", flag.ExitOnError)
	conflist := flags.String("conflist", "", "the network's conflist file")
	netns := flags.String("netns", "", "the container's netns path")
	id := flags.String("id", "", "the container ID")
	ifname := flags.String("ifname", "eth0", "the container's interface")
	cniPath := flags.String("cni-path", "/usr/lib/cni", "plugin directories, ':'-separated")
	mappings := flags.String("port-mappings", "", "runtimeConfig.portMappings as JSON")
	cacheDir := flags.String("cache-dir", "", "libcni's result cache (default /var/lib/cni)")
	valid := flags.String("valid-attachments", "[]", "gc: [{\"containerID\":..,\"ifname\":..}]")
	if err := flags.Parse(os.Args[2:]); err != nil {
		usage(err.Error())
	}
	if *conflist == "" {
		usage("--conflist is required")
	}
	list, err := libcni.ConfListFromFile(*conflist)
	if err != nil {
		usage(fmt.Sprintf("conflist %s: %v", *conflist, err))
	}
	paths := filepath.SplitList(*cniPath)

	switch command {
	case "status":
		if err := byHand(list, paths, "STATUS", nil); err != nil {
			fail(err)
		}
		return
	case "gc":
		var attachments []map[string]string
		if err := json.Unmarshal([]byte(*valid), &attachments); err != nil {
			usage(fmt.Sprintf("--valid-attachments is not a JSON list of objects: %v", err))
		}
		if err := byHand(list, paths, "GC", attachments); err != nil {
			fail(err)
		}
		return
	case "add", "check", "del":
	default:
		usage("unknown command " + command)
	}

	if *netns == "" || *id == "" {
		usage("--netns and --id are required for " + command)
	}
	rt := &libcni.RuntimeConf{ContainerID: *id, NetNS: *netns, IfName: *ifname,
		CacheDir: *cacheDir, CapabilityArgs: map[string]interface{}{}}
	if *mappings != "" {
		var pm []map[string]interface{}
		if err := json.Unmarshal([]byte(*mappings), &pm); err != nil {
			usage(fmt.Sprintf("--port-mappings is not a JSON list of objects: %v", err))
		}
		rt.CapabilityArgs["portMappings"] = pm
	}
	cni := libcni.NewCNIConfigWithCacheDir(paths, *cacheDir, nil)
	ctx := context.Background()
	switch command {
	case "add":
		result, err := cni.AddNetworkList(ctx, list, rt)
		if err != nil {
			fail(err)
		}
		text, _ := json.Marshal(result)
		fmt.Println(string(text))
	case "check":
		if err := cni.CheckNetworkList(ctx, list, rt); err != nil {
			fail(err)
		}
	case "del":
		if err := cni.DelNetworkList(ctx, list, rt); err != nil {
			fail(err)
		}
	}
}

// supports1_1 asks a plugin's VERSION whether it speaks 1.1.0 (STATUS and GC exist there only).
func supports1_1(path string) bool {
	cmd := exec.Command(path)
	cmd.Env = append(cleanEnv(), "CNI_COMMAND=VERSION")
	cmd.Stdin = strings.NewReader(`{"cniVersion":"1.1.0"}`)
	out, err := cmd.Output()
	if err != nil {
		return false
	}
	var info struct {
		SupportedVersions []string `json:"supportedVersions"`
	}
	if json.Unmarshal(out, &info) != nil {
		return false
	}
	for _, v := range info.SupportedVersions {
		if v == "1.1.0" {
			return true
		}
	}
	return false
}

func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "CNI_") {
			env = append(env, kv)
		}
	}
	return env
}

// byHand runs STATUS or GC on every plugin of the list that speaks 1.1.0, as CNI 1.1.0 says:
// CNI_COMMAND and CNI_PATH only, the plugin's config with the list's name, cniVersion 1.1.0
// and (GC) cni.dev/valid-attachments. Plugins stopping at 1.0.0 are skipped, as a runtime
// would.
func byHand(list *libcni.NetworkConfigList, paths []string, command string,
	attachments []map[string]string) error {
	for _, plugin := range list.Plugins {
		path, err := invoke.FindInPath(plugin.Network.Type, paths)
		if err != nil {
			return err
		}
		if !supports1_1(path) {
			fmt.Fprintf(os.Stderr, "cni-driver: %s: %s skipped (no CNI 1.1.0)\n", command,
				plugin.Network.Type)
			continue
		}
		var conf map[string]interface{}
		if err := json.Unmarshal(plugin.Bytes, &conf); err != nil {
			return err
		}
		conf["name"] = list.Name
		conf["cniVersion"] = "1.1.0"
		if command == "GC" {
			if attachments == nil {
				attachments = []map[string]string{}
			}
			conf["cni.dev/valid-attachments"] = attachments
		}
		stdin, _ := json.Marshal(conf)
		cmd := exec.Command(path)
		cmd.Env = append(cleanEnv(), "CNI_COMMAND="+command,
			"CNI_PATH="+strings.Join(paths, string(filepath.ListSeparator)))
		cmd.Stdin = bytes.NewReader(stdin)
		var stdout, stderr bytes.Buffer
		cmd.Stdout = &stdout
		cmd.Stderr = &stderr
		if err := cmd.Run(); err != nil {
			var cniErr types.Error
			if json.Unmarshal(stdout.Bytes(), &cniErr) == nil && cniErr.Code != 0 {
				return &cniErr
			}
			return fmt.Errorf("%s %s: %v: %s%s", plugin.Network.Type, command, err,
				stdout.String(), stderr.String())
		}
	}
	return nil
}
