package deploy_test

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// unit is a parsed systemd unit file: section → key → values in order.
type unit map[string]map[string][]string

func parseUnit(t *testing.T, name string, data []byte) unit {
	t.Helper()
	u := unit{}
	section := ""
	sc := bufio.NewScanner(bytes.NewReader(data))
	var pending string
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if pending == "" && (line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";")) {
			continue
		}
		if strings.HasSuffix(line, `\`) {
			pending += strings.TrimSuffix(line, `\`) + " "
			continue
		}
		line, pending = pending+line, ""
		if strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]") {
			section = line[1 : len(line)-1]
			if u[section] == nil {
				u[section] = map[string][]string{}
			}
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok || section == "" {
			t.Fatalf("%s:%d: not a key=value line in a section: %q", name, n, line)
		}
		k = strings.TrimSpace(k)
		u[section][k] = append(u[section][k], strings.TrimSpace(v))
	}
	return u
}

// last is the effective value of a key (the last assignment wins).
func (u unit) last(section, key string) string {
	v := u[section][key]
	if len(v) == 0 {
		return ""
	}
	return v[len(v)-1]
}

// systemdDuration parses systemd time spans such as "90s", "2min",
// "1h 30min" (systemd.time(7)); a bare number is seconds.
func systemdDuration(s string) (time.Duration, bool) {
	units := map[string]time.Duration{
		"us": time.Microsecond, "ms": time.Millisecond, "s": time.Second, "sec": time.Second, "second": time.Second, "seconds": time.Second,
		"m": time.Minute, "min": time.Minute, "minute": time.Minute, "minutes": time.Minute,
		"h": time.Hour, "hr": time.Hour, "hour": time.Hour, "hours": time.Hour, "d": 24 * time.Hour, "day": 24 * time.Hour, "days": 24 * time.Hour,
	}
	re := regexp.MustCompile(`^\s*([0-9]+)\s*([a-z]*)`)
	var total time.Duration
	s = strings.TrimSpace(s)
	if s == "" || s == "infinity" {
		return 0, false
	}
	for s != "" {
		m := re.FindStringSubmatch(s)
		if m == nil {
			return 0, false
		}
		n, _ := strconv.Atoi(m[1])
		u := time.Second
		if m[2] != "" {
			var ok bool
			if u, ok = units[m[2]]; !ok {
				return 0, false
			}
		}
		total += time.Duration(n) * u
		s = strings.TrimSpace(s[len(m[0]):])
	}
	return total, true
}

// hardening is the existing unit's set, which every service keeps.
var hardening = map[string]string{
	"NoNewPrivileges": "true",
	"ProtectSystem":   "strict",
	"ProtectHome":     "true",
	"PrivateTmp":      "true",
	"UMask":           "0077",
}

func TestSystemdUnits(t *testing.T) {
	dir := filepath.Join(repoRoot, "deploy")
	services, _ := filepath.Glob(filepath.Join(dir, "*.service"))
	timers, _ := filepath.Glob(filepath.Join(dir, "*.timer"))
	want := []string{"defenderharvester.service", "defenderharvester@.service", "defenderharvester-serve.service"}
	for _, w := range want {
		if _, err := os.Stat(filepath.Join(dir, w)); err != nil {
			t.Errorf("missing unit %s", w)
		}
	}
	for _, path := range services {
		base := filepath.Base(path)
		t.Run(base, func(t *testing.T) {
			u := parseUnit(t, base, readFile(t, path))
			checkService(t, base, u)
		})
	}
	for _, path := range timers {
		base := filepath.Base(path)
		t.Run(base, func(t *testing.T) {
			u := parseUnit(t, base, readFile(t, path))
			target := u.last("Timer", "Unit")
			if target == "" {
				target = strings.TrimSuffix(base, ".timer") + ".service"
			}
			if _, err := os.Stat(filepath.Join(dir, target)); err != nil {
				t.Errorf("%s starts %s, which is not in deploy/", base, target)
			}
			if u.last("Timer", "OnUnitActiveSec") == "" && u.last("Timer", "OnCalendar") == "" {
				t.Errorf("%s has neither OnUnitActiveSec nor OnCalendar: it fires once", base)
			}
			if u.last("Install", "WantedBy") != "timers.target" {
				t.Errorf("%s: WantedBy=%s, want timers.target", base, u.last("Install", "WantedBy"))
			}
		})
	}
	if _, err := os.Stat(filepath.Join(dir, "defenderharvester@.timer")); err != nil {
		t.Errorf("missing defenderharvester@.timer for defenderharvester@.service")
	}
}

func checkService(t *testing.T, name string, u unit) {
	t.Helper()
	s := u["Service"]
	if s == nil {
		t.Fatalf("%s: no [Service] section", name)
	}
	execs := s["ExecStart"]
	if len(execs) != 1 {
		t.Fatalf("%s: %d ExecStart lines, want 1", name, len(execs))
	}
	args := strings.Fields(strings.TrimLeft(execs[0], "-@+!:"))
	if len(args) < 2 || args[0] != binaryPath {
		t.Fatalf("%s: ExecStart %q does not run %s", name, execs[0], binaryPath)
	}
	cmd := args[1]
	template := strings.Contains(name, "@.")
	cfg, hasConfig := flagValue(args, "config")
	envCfg := ""
	for _, e := range s["Environment"] {
		for _, kv := range strings.Fields(e) {
			k, v, _ := strings.Cut(strings.Trim(kv, `"`), "=")
			if secretEnv.MatchString(k) {
				t.Errorf("%s: Environment=%s…: secrets go in an EnvironmentFile (0600) or a 0600 file named in the config, never in the unit", name, k)
			}
			if k == "DH_CONFIG" {
				envCfg = v
			}
		}
	}
	for _, a := range args {
		if secretEnv.MatchString(strings.TrimLeft(a, "-")) || strings.TrimLeft(a, "-") == "accesstoken" {
			t.Errorf("%s: ExecStart has %s: secrets never go on the command line (ps shows it to everyone)", name, a)
		}
	}
	for _, f := range s["EnvironmentFile"] {
		if !under(strings.TrimPrefix(f, "-"), "/etc/defenderharvester") {
			t.Errorf("%s: EnvironmentFile=%s outside /etc/defenderharvester", name, f)
		}
	}
	switch {
	case hasConfig:
		if !under(cfg, "/etc/defenderharvester") || !strings.HasSuffix(cfg, ".yaml") {
			t.Errorf("%s: --config %s, want a .yaml under /etc/defenderharvester", name, cfg)
		}
	case name == "defenderharvester.service" && envCfg != "":
		// The original unit names its config through DH_CONFIG.
	default:
		t.Errorf("%s: ExecStart has no --config", name)
	}
	user := u.last("Service", "User")
	if user == "" || user == "root" || user == "0" {
		t.Errorf("%s: User=%q: run as the unprivileged defenderharvester user", name, user)
	}
	for k, v := range hardening {
		if got := u.last("Service", k); got != v {
			t.Errorf("%s: %s=%q, want %s (the hardening of defenderharvester.service)", name, k, got, v)
		}
	}
	state := u.last("Service", "StateDirectory")
	if !strings.HasPrefix(state, "defenderharvester") {
		t.Errorf("%s: StateDirectory=%q, want defenderharvester[/…]", name, state)
	}
	for _, p := range s["ReadWritePaths"] {
		if !under(p, "/var/lib/"+state) {
			t.Errorf("%s: ReadWritePaths=%s reaches beyond its state directory /var/lib/%s", name, p, state)
		}
	}
	if template {
		if cfg != "/etc/defenderharvester/%i.yaml" {
			t.Errorf("%s: --config %s, want /etc/defenderharvester/%%i.yaml", name, cfg)
		}
		if state != "defenderharvester/%i" {
			t.Errorf("%s: StateDirectory=%s, want defenderharvester/%%i", name, state)
		}
	}
	switch cmd {
	case "run":
		if u.last("Service", "Type") != "oneshot" {
			t.Errorf("%s: Type=%s; a run is a oneshot", name, u.last("Service", "Type"))
		}
		if d, ok := systemdDuration(u.last("Service", "TimeoutStartSec")); !ok || d <= time.Hour {
			t.Errorf("%s: TimeoutStartSec=%s must exceed run_timeout (1h): it bounds a oneshot", name, u.last("Service", "TimeoutStartSec"))
		}
	case "serve":
		if ty := u.last("Service", "Type"); ty != "simple" && ty != "exec" {
			t.Errorf("%s: Type=%s; serve does not call sd_notify or fork: simple or exec", name, ty)
		}
		if u.last("Service", "Restart") != "on-failure" {
			t.Errorf("%s: Restart=%s, want on-failure", name, u.last("Service", "Restart"))
		}
		if ks := u.last("Service", "KillSignal"); ks != "SIGTERM" {
			t.Errorf("%s: KillSignal=%s, want SIGTERM (serve's graceful shutdown)", name, ks)
		}
		d, ok := systemdDuration(u.last("Service", "TimeoutStopSec"))
		if !ok || d <= defaultShutdownTimeout+15*time.Second || d < minStopGrace {
			t.Errorf("%s: TimeoutStopSec=%s must exceed serve.shutdown_timeout (%s) with a margin, and be at least %s", name, u.last("Service", "TimeoutStopSec"), defaultShutdownTimeout, minStopGrace)
		}
		if l, ok := flagValue(args, "listen"); ok && portOf(l) == "" {
			t.Errorf("%s: --listen %s has no port", name, l)
		}
	default:
		t.Errorf("%s: ExecStart runs %q; want run or serve", name, cmd)
	}
}

// TestSystemdAnalyzeVerify runs systemd-analyze verify on the units (the
// templates as an instance) when it is on PATH: unknown keys and sections,
// bad values.
func TestSystemdAnalyzeVerify(t *testing.T) {
	if _, err := exec.LookPath("systemd-analyze"); err != nil {
		t.Skip("systemd-analyze not on PATH")
	}
	dir := filepath.Join(repoRoot, "deploy")
	tmp := t.TempDir()
	files, _ := filepath.Glob(filepath.Join(dir, "*.service"))
	timers, _ := filepath.Glob(filepath.Join(dir, "*.timer"))
	var args []string
	for _, f := range append(files, timers...) {
		name := strings.Replace(filepath.Base(f), "@.", "@example.", 1)
		dst := filepath.Join(tmp, name)
		if err := os.WriteFile(dst, readFile(t, f), 0o644); err != nil {
			t.Fatal(err)
		}
		args = append(args, dst)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "systemd-analyze", append([]string{"verify", "--man=no"}, args...)...)
	out, _ := cmd.CombinedOutput()
	bad := regexp.MustCompile(`(?i)unknown (key|section|lvalue)|failed to parse|invalid|unbalanced|ignoring unknown`)
	for _, l := range strings.Split(string(out), "\n") {
		if bad.MatchString(l) {
			t.Errorf("systemd-analyze verify: %s", l)
		}
	}
	t.Logf("systemd-analyze verify:\n%s", out)
}

func TestSystemdDuration(t *testing.T) {
	for s, want := range map[string]time.Duration{"90s": 90 * time.Second, "2min": 2 * time.Minute, "75min": 75 * time.Minute, "1h 30min": 90 * time.Minute, "45": 45 * time.Second} {
		if got, ok := systemdDuration(s); !ok || got != want {
			t.Errorf("systemdDuration(%q) = %v, %v; want %v", s, got, ok, want)
		}
	}
	if _, ok := systemdDuration("soon"); ok {
		t.Errorf("systemdDuration(soon) parsed")
	}
}
