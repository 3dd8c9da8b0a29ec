package cli

import (
	"context"
	"strings"
	"testing"
)

// TestFlagErrorsAreOneLine: a bad flag, value or command gets one line
// naming it, the nearest known name when one is close, and where help is;
// never the whole usage.
func TestFlagErrorsAreOneLine(t *testing.T) {
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"run", "--sorces", "all"}, "defenderharvester run: unknown flag --sorces (did you mean --sources?); see 'defenderharvester run -h'"},
		{[]string{"run", "-sorces", "all"}, "defenderharvester run: unknown flag --sorces (did you mean --sources?); see 'defenderharvester run -h'"},
		{[]string{"run", "--look", "2h"}, "defenderharvester run: unknown flag --look (did you mean --lookback?); see 'defenderharvester run -h'"},
		{[]string{"run", "--progres", "off"}, "defenderharvester run: unknown flag --progres (did you mean --progress?); see 'defenderharvester run -h'"},
		{[]string{"run", "--zebra"}, "defenderharvester run: unknown flag --zebra; see 'defenderharvester run -h'"},
		{[]string{"doctor", "--timeout", "soon"}, `defenderharvester doctor: invalid value "soon" for flag --timeout: parse error; see 'defenderharvester doctor -h'`},
		{[]string{"doctor", "--config"}, "defenderharvester doctor: flag needs an argument: --config; see 'defenderharvester doctor -h'"},
		{[]string{"login", "portal", "--cookie-fil", "x"}, "defenderharvester login portal: unknown flag --cookie-fil (did you mean --cookie-file?); see 'defenderharvester login portal -h'"},
		{[]string{"login", "portl"}, `defenderharvester login: unknown subcommand "portl" (did you mean portal?); see 'defenderharvester login -h'`},
		{[]string{"simulate", "--throttle-concurrency", "-1"}, "simulate: --throttle-concurrency must be 0 (off) or the most timeline requests served at once, e.g. 3"},
		{[]string{"simulate", "--audit-throttle-status", "500"}, "simulate: --audit-throttle-status must be 403 or 429"},
		{[]string{"simulate", "--audit-records-per-hour", "-1"}, "simulate: --audit-records-per-hour must be between 1 and 5000 (0: the default 12)"},
		{[]string{"simulate", "--audit-page-cap", "10001"}, "simulate: --audit-page-cap must be between 1 and 10000 (0: the default 37)"},
		{[]string{"simulate", "--caout", "x"}, "defenderharvester simulate: unknown flag --caout (did you mean --ca-out?); see 'defenderharvester simulate -h'"},
		{[]string{"-machineaction", "-files"}, "defenderharvester: unknown flag -machineaction (did you mean -machineactions?); see 'defenderharvester -files -h' for the original tool's flags, 'defenderharvester -h' for the commands"},
		{[]string{"doctr"}, `defenderharvester: unknown command "doctr" (did you mean doctor?); see 'defenderharvester -h'`},
		{[]string{"simul"}, `defenderharvester: unknown command "simul" (did you mean simulate?); see 'defenderharvester -h'`},
		{[]string{"harvest"}, `defenderharvester: unknown command "harvest"; see 'defenderharvester -h'`},
		{[]string{"run", "extra"}, `defenderharvester run: unexpected argument "extra" (flags go before arguments); see 'defenderharvester run -h'`},
	}
	for _, tc := range cases {
		env, out, errb := testEnv(nil)
		code := Main(context.Background(), env, tc.args)
		if code != exitUsage {
			t.Errorf("%v: exit %d, want %d", tc.args, code, exitUsage)
		}
		if got := errb.String(); got != tc.want+"\n" || out.Len() != 0 {
			t.Errorf("%v:\n got %q\nwant %q\nstdout %q", tc.args, got, tc.want, out)
		}
	}
}

func TestHelpGoesToStdout(t *testing.T) {
	env, out, errb := testEnv(nil)
	if code := Main(context.Background(), env, []string{"run", "-h"}); code != exitOK {
		t.Fatalf("exit %d", code)
	}
	if !strings.Contains(out.String(), "Usage: defenderharvester run") || !strings.Contains(out.String(), "-sources") || errb.Len() != 0 {
		t.Fatalf("stdout %q\nstderr %q", out, errb)
	}
}

func TestSuggest(t *testing.T) {
	known := []string{"sources", "since", "out", "outputs", "output", "timeout", "config"}
	for in, want := range map[string]string{
		"sorces": "sources", "sinse": "since", "outptus": "outputs", "outp": "output", "confgi": "config",
		"o": "out", "xyz": "", "timeouts": "timeout", "": "",
	} {
		if got := suggest(in, known); got != want {
			t.Errorf("suggest(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestOutputsHelpListsEveryOutput: the help of --outputs and --output is
// built from the output registry.
func TestOutputsHelpListsEveryOutput(t *testing.T) {
	env, out, _ := testEnv(nil)
	Main(context.Background(), env, []string{"run", "-h"})
	help := out.String()
	names := outputNames()
	if len(names) < 4 {
		t.Fatalf("registry lists %v", names)
	}
	for _, flagName := range []string{"-outputs", "-output"} {
		i := strings.Index(help, "  "+flagName+" ")
		if i < 0 {
			t.Fatalf("no %s in the help:\n%s", flagName, help)
		}
		line := help[i:]
		line = line[:strings.Index(line[strings.Index(line, "\n")+1:], "\n")+strings.Index(line, "\n")+1]
		for _, n := range names {
			if !strings.Contains(line, n) {
				t.Errorf("%s help does not name output %s: %q", flagName, n, line)
			}
		}
	}
}
