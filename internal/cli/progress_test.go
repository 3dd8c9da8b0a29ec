package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/defenderharvester/defenderharvester/internal/config"
	"github.com/defenderharvester/defenderharvester/internal/progress"
	"github.com/defenderharvester/defenderharvester/internal/sim"
)

func TestProgressMode(t *testing.T) {
	devNull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer devNull.Close()
	stdoutInConfig := config.Default()
	if err := yamlNode(stdoutInConfig, "outputs:\n  stdout: {}\n"); err != nil {
		t.Fatal(err)
	}
	jsonLogs := config.Default()
	jsonLogs.LogFormat = "json"
	cases := []struct {
		name    string
		flag    string
		cfg     *config.Config
		outputs []string
		stderr  any
		want    progress.Mode
		err     string
	}{
		{name: "auto, not a terminal", flag: "auto", want: progress.Log},
		{name: "auto, /dev/null", flag: "auto", stderr: devNull, want: progress.Log},
		{name: "auto, stdout output", flag: "auto", outputs: []string{"files", "stdout"}, want: progress.Off},
		{name: "auto, stdout output in the config", flag: "auto", cfg: stdoutInConfig, want: progress.Off},
		{name: "--outputs replaces the config's", flag: "auto", cfg: stdoutInConfig, outputs: []string{"files"}, want: progress.Log},
		{name: "auto, JSON logs", flag: "auto", cfg: jsonLogs, want: progress.Off},
		{name: "tty forced", flag: "tty", want: progress.TTY},
		{name: "log forced", flag: "log", want: progress.Log},
		{name: "off", flag: "off", outputs: []string{"stdout"}, want: progress.Off},
		{name: "tty with stdout output", flag: "tty", outputs: []string{"stdout"}, err: "--outputs stdout"},
		{name: "log with JSON logs", flag: "log", cfg: jsonLogs, err: "log_format: json"},
		{name: "unknown", flag: "bar", err: "auto, tty, log, off"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.cfg
			if cfg == nil {
				cfg = config.Default()
			}
			var stderr any = &bytes.Buffer{}
			if tc.stderr != nil {
				stderr = tc.stderr
			}
			got, err := progressMode(tc.flag, cfg, tc.outputs, stderr.(interface{ Write([]byte) (int, error) }), func(string) string { return "" })
			switch {
			case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
				t.Fatalf("error %v, want one naming %q", err, tc.err)
			case tc.err == "" && err != nil:
				t.Fatal(err)
			case tc.err == "" && got != tc.want:
				t.Fatalf("mode %s, want %s", got, tc.want)
			}
		})
	}
}

// yamlNode loads text into cfg's plugin sections the way the loader does.
func yamlNode(cfg *config.Config, text string) error {
	f := filepath.Join(os.TempDir(), "dh-progress-test.yaml")
	defer os.Remove(f)
	if err := os.WriteFile(f, []byte(text), 0o600); err != nil {
		return err
	}
	c, err := config.Load(f, func(string) string { return "" })
	if err != nil {
		return err
	}
	*cfg = *c
	return nil
}

// TestRunProgress runs `run` against the emulator: a forced terminal
// display leaves its final block on stderr; with the stdout output, JSON
// logs or --progress off nothing of the kind is printed, even with a
// progress interval far shorter than the run.
func TestRunProgress(t *testing.T) {
	_, dir, cfgPath := emulatorConfig(t, sim.Options{Seed: 4, Machines: 3})
	text, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	jsonCfg := filepath.Join(dir, "json.yaml")
	if err := os.WriteFile(jsonCfg, append(text, "log_format: json\n"...), 0o600); err != nil {
		t.Fatal(err)
	}
	run := func(t *testing.T, args ...string) (int, string, string) {
		env, out, errb := testEnv(nil)
		args = append([]string{"run", "--sources", "actioncenter,machinegroups", "--out", filepath.Join(dir, "out"), "--lookback", "2h"}, args...)
		code := Main(context.Background(), env, args)
		return code, out.String(), errb.String()
	}
	noProgress := func(t *testing.T, stderr string) {
		t.Helper()
		for _, bad := range []string{"harvesting:", "msg=progress", `"msg":"progress"`, "\x1b["} {
			if strings.Contains(stderr, bad) {
				t.Fatalf("progress printed (%q):\n%s", bad, stderr)
			}
		}
	}

	t.Run("tty forced: the final block stays", func(t *testing.T) {
		code, out, stderr := run(t, "--config", cfgPath, "--progress", "tty")
		if code != exitOK {
			t.Fatalf("exit %d\n%s\n%s", code, out, stderr)
		}
		block := stderr[strings.LastIndex(stderr, "harvesting:"):]
		for _, want := range []string{"harvesting: 2/2 sources done", "actioncenter", "windows", "records", "done in", "machinegroups"} {
			if !strings.Contains(block, want) {
				t.Errorf("final block lacks %q:\n%q", want, block)
			}
		}
		if !strings.Contains(out, "SOURCE") {
			t.Errorf("no report on stdout:\n%s", out)
		}
	})
	t.Run("stdout output", func(t *testing.T) {
		code, out, stderr := run(t, "--config", cfgPath, "--outputs", "stdout", "--progress-interval", "1ms")
		if code != exitOK {
			t.Fatalf("exit %d\n%s", code, stderr)
		}
		noProgress(t, stderr)
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			if line != "" && !json.Valid([]byte(line)) {
				t.Fatalf("stdout holds a line that is not JSON: %q", line)
			}
		}
	})
	t.Run("JSON logs", func(t *testing.T) {
		code, _, stderr := run(t, "--config", jsonCfg, "--progress-interval", "1ms", "--debug")
		if code != exitOK {
			t.Fatalf("exit %d\n%s", code, stderr)
		}
		noProgress(t, stderr)
		for _, line := range strings.Split(strings.TrimSpace(stderr), "\n") {
			if !json.Valid([]byte(line)) {
				t.Fatalf("log_format json wrote a line that is not JSON: %q", line)
			}
		}
	})
	t.Run("off", func(t *testing.T) {
		code, _, stderr := run(t, "--config", cfgPath, "--progress", "off", "--progress-interval", "1ms", "--debug")
		if code != exitOK {
			t.Fatalf("exit %d\n%s", code, stderr)
		}
		noProgress(t, stderr)
	})
	t.Run("usage errors", func(t *testing.T) {
		for _, args := range [][]string{
			{"--config", cfgPath, "--outputs", "stdout", "--progress", "tty"},
			{"--config", jsonCfg, "--progress", "log"},
			{"--config", cfgPath, "--progress-interval", "0s"},
			{"--config", cfgPath, "--progress", "fancy"},
		} {
			if code, _, stderr := run(t, args...); code != exitUsage || !strings.Contains(stderr, "--progress") {
				t.Errorf("%v: exit %d, want %d naming --progress:\n%s", args, code, exitUsage, stderr)
			}
		}
	})
}
