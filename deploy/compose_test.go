package deploy_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var composeDir = filepath.Join(repoRoot, "deploy", "compose")

// mount is one entry of a compose service's volumes (short syntax).
type mount struct {
	source, target string
	bind, readOnly bool
}

func composeMounts(t *testing.T, svcName string, svc obj, declared obj) []mount {
	t.Helper()
	var out []mount
	for _, v := range getList(svc, "volumes") {
		s, ok := v.(string)
		if !ok {
			t.Fatalf("service %s: volume %v: use the short syntax (source:target[:ro]), which this test reads", svcName, v)
		}
		parts := strings.Split(s, ":")
		if len(parts) < 2 {
			t.Errorf("service %s: volume %q has no target (an anonymous volume loses its data)", svcName, s)
			continue
		}
		m := mount{source: parts[0], target: parts[1], readOnly: len(parts) > 2 && strings.Contains(parts[2], "ro")}
		m.bind = strings.HasPrefix(m.source, ".") || strings.HasPrefix(m.source, "/") || strings.HasPrefix(m.source, "~")
		if m.bind {
			if strings.HasPrefix(m.source, "/") || strings.HasPrefix(m.source, "~") {
				t.Errorf("service %s: bind mount %s: use paths relative to deploy/compose, so the project works from any checkout", svcName, m.source)
			} else if _, err := os.Stat(filepath.Join(composeDir, m.source)); err != nil {
				t.Errorf("service %s: bind mount source %s does not exist in deploy/compose", svcName, m.source)
			} else if !under(filepath.Join(composeDir, m.source), composeDir) {
				t.Errorf("service %s: bind mount source %s is outside deploy/compose", svcName, m.source)
			}
		} else if _, ok := declared[m.source]; !ok {
			t.Errorf("service %s: named volume %s is not declared under volumes:", svcName, m.source)
		}
		out = append(out, m)
	}
	return out
}

// mountFor finds the mount holding path (the longest target prefix).
func mountFor(ms []mount, path string) (mount, bool) {
	var best mount
	found := false
	for _, m := range ms {
		if under(path, m.target) && (!found || len(m.target) > len(best.target)) {
			best, found = m, true
		}
	}
	return best, found
}

func TestCompose(t *testing.T) {
	path := filepath.Join(composeDir, "compose.yaml")
	docs := readYAMLDocs(t, path, readFile(t, path))
	if len(docs) != 1 {
		t.Fatalf("%s: want one document", path)
	}
	c := docs[0]
	for k := range c {
		switch {
		case k == "name" || k == "services" || k == "volumes" || k == "networks" || k == "configs" || k == "secrets":
		case strings.HasPrefix(k, "x-"):
		default:
			t.Errorf("compose.yaml: unknown top-level key %q", k)
		}
	}
	if getString(c, "version") != "" {
		t.Errorf("compose.yaml: the version key is obsolete")
	}
	declared := getMap(c, "volumes")
	var (
		emulatorName      string
		emulator, harvest obj
	)
	for name, s := range getMap(c, "services") {
		svc := s.(obj)
		if get(svc, "image") == nil && get(svc, "build") == nil {
			t.Errorf("service %s has neither image nor build", name)
		}
		if b := getMap(svc, "build"); b != nil {
			ctx := filepath.Join(composeDir, getString(b, "context"))
			df := getString(b, "dockerfile")
			if df == "" {
				df = "Dockerfile"
			}
			if _, err := os.Stat(filepath.Join(ctx, df)); err != nil {
				t.Errorf("service %s: build context %s has no %s", name, getString(b, "context"), df)
			}
		}
		cmd := getList(svc, "command")
		if get(svc, "command") != nil && cmd == nil {
			t.Errorf("service %s: command in shell form; the image has no shell: use a list", name)
		}
		switch args := toStrings(cmd); {
		case len(args) > 0 && args[0] == "simulate":
			emulatorName, emulator = name, svc
		case len(args) > 0 && args[0] == "serve":
			harvest = svc
		}
		if v, _ := getBool(svc, "read_only"); !v {
			t.Errorf("service %s: read_only: true (only its volumes are written)", name)
		}
		if drop := toStrings(getList(svc, "cap_drop")); len(drop) != 1 || drop[0] != "ALL" {
			t.Errorf("service %s: cap_drop %v, want [ALL]", name, drop)
		}
		if u := getString(svc, "user"); u == "0" || strings.HasPrefix(u, "0:") || u == "root" {
			t.Errorf("service %s runs as root", name)
		}
		for _, e := range getList(svc, "environment") {
			if k, _, _ := strings.Cut(getString(e), "="); secretEnv.MatchString(k) {
				t.Errorf("service %s: environment %s: secrets go in files, not compose.yaml", name, k)
			}
		}
		for k := range getMap(svc, "environment") {
			if secretEnv.MatchString(k) {
				t.Errorf("service %s: environment %s: secrets go in files, not compose.yaml", name, k)
			}
		}
	}
	if emulator == nil || harvest == nil {
		t.Fatalf("compose.yaml: want a service running `simulate` and one running `serve`")
	}
	emuArgs, args := toStrings(getList(emulator, "command")), toStrings(getList(harvest, "command"))
	emuMounts := composeMounts(t, emulatorName, emulator, declared)
	mounts := composeMounts(t, "harvester", harvest, declared)

	// The config: a file of deploy/compose, bind-mounted at --config.
	cfgPath, ok := flagValue(args, "config")
	if !ok {
		t.Fatalf("serve has no --config")
	}
	var hc harvesterConfig
	if m, ok := mountFor(mounts, cfgPath); !ok || !m.bind || m.target != cfgPath {
		t.Fatalf("--config %s is not a file bind-mounted from deploy/compose", cfgPath)
	} else {
		hc = parseHarvesterConfig(t, m.source, readFile(t, filepath.Join(composeDir, m.source)))
		if !m.readOnly {
			t.Errorf("the config is mounted read-write; add :ro")
		}
	}

	// The harvester reaches the emulator by its service name, TLS verified
	// with the CA the emulator writes, with the credentials it writes.
	listen, _ := flagValue(emuArgs, "listen")
	if host := strings.TrimSuffix(listen, ":"+portOf(listen)); host == "127.0.0.1" || host == "localhost" || host == "" && listen == "" {
		t.Errorf("emulator --listen %q: other containers cannot reach loopback (and the default is 127.0.0.1:8443)", listen)
	}
	if got, want := getString(hc.raw, "emulator", "address"), emulatorName+":"+portOf(listen); got != want {
		t.Errorf("config emulator.address %q, want %q (the service name and its --listen port)", got, want)
	}
	written := func(emuPath string) string {
		em, ok := mountFor(emuMounts, emuPath)
		if !ok || em.bind {
			t.Errorf("emulator writes %s outside a named volume", emuPath)
			return ""
		}
		for _, m := range mounts {
			if m.source == em.source && !m.bind {
				return filepath.Join(m.target, strings.TrimPrefix(emuPath, em.target))
			}
		}
		t.Errorf("the harvester does not mount volume %s, where the emulator writes %s", em.source, emuPath)
		return ""
	}
	writeCfg, ok := flagValue(emuArgs, "write-config")
	if !ok {
		t.Fatalf("emulator has no --write-config: its credentials would stay unknown")
	}
	want := map[string]string{
		"portal.cookie_file":            written(writeCfg) + ".cookie",
		"public_api.client_secret_file": written(writeCfg) + ".secret",
	}
	if getString(hc.raw, "emulator", "plaintext") != "true" {
		ca, ok := flagValue(emuArgs, "ca-out")
		if !ok {
			t.Errorf("emulator serves HTTPS but has no --ca-out for the harvester to verify it with")
		}
		want["emulator.ca_file"] = written(ca)
	} else if !contains(emuArgs, "--plain") {
		t.Errorf("config emulator.plaintext but the emulator serves HTTPS")
	}
	for k, w := range want {
		if got := hc.files[k]; got != w {
			t.Errorf("config %s = %q, want %q (where the emulator's file appears in the harvester)", k, got, w)
		}
	}
	for k, p := range hc.files {
		if _, ok := want[k]; !ok {
			t.Errorf("config %s = %s: no check knows where it comes from", k, p)
		}
	}

	// State and output on a writable named volume.
	for what, p := range map[string]string{"state_file's folder": hc.stateDir, "outputs.files.dir": getString(hc.raw, "outputs", "files", "dir")} {
		if p == "" {
			continue
		}
		if m, ok := mountFor(mounts, p); !ok || m.bind || m.readOnly {
			t.Errorf("config %s %s is not on a writable named volume of the harvester", what, p)
		}
	}

	// Metrics published, and time to shut down.
	hl, ok := flagValue(args, "listen")
	if !ok {
		hl = ":" + defaultListenPort
	}
	published := false
	for _, p := range toStrings(getList(harvest, "ports")) {
		if portOf(p) == portOf(hl) {
			published = true
		}
	}
	if !published {
		t.Errorf("the harvester's listen port %s is not published (ports:)", portOf(hl))
	}
	grace, err := time.ParseDuration(getString(harvest, "stop_grace_period"))
	if err != nil || grace <= hc.shutdownTimeout || grace < minStopGrace {
		t.Errorf("stop_grace_period %q must exceed serve.shutdown_timeout %s and be at least %s (compose's default is 10s)", getString(harvest, "stop_grace_period"), hc.shutdownTimeout, minStopGrace)
	}
}
