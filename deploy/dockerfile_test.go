package deploy_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// instruction is one Dockerfile instruction, continuation lines joined.
type instruction struct {
	cmd  string // upper case: FROM, RUN, …
	args string
	line int
}

// stage is a FROM and what follows it.
type stage struct {
	from   instruction
	image  string
	name   string
	instrs []instruction
}

// parseDockerfile reads instructions the way the Dockerfile frontend
// does for the features used here: comments, parser directives, `\`
// continuations (comment lines inside them skipped). Heredocs are refused.
func parseDockerfile(t *testing.T, data []byte) []stage {
	t.Helper()
	var (
		stages  []stage
		pending strings.Builder
		start   int
	)
	sc := bufio.NewScanner(bytes.NewReader(data))
	n := 0
	for sc.Scan() {
		n++
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "#") || (trimmed == "" && pending.Len() == 0) {
			continue
		}
		if pending.Len() == 0 {
			start = n
		}
		cont := strings.HasSuffix(trimmed, `\`)
		pending.WriteString(strings.TrimSuffix(trimmed, `\`))
		pending.WriteString(" ")
		if cont {
			continue
		}
		text := strings.TrimSpace(pending.String())
		pending.Reset()
		cmd, args, _ := strings.Cut(text, " ")
		in := instruction{cmd: strings.ToUpper(cmd), args: strings.TrimSpace(args), line: start}
		if strings.Contains(in.args, "<<") && in.cmd == "RUN" {
			t.Fatalf("Dockerfile:%d: heredocs are not understood by this linter", in.line)
		}
		if in.cmd == "FROM" {
			s := stage{from: in}
			var fields []string
			for _, f := range strings.Fields(in.args) {
				if !strings.HasPrefix(f, "--") {
					fields = append(fields, f)
				}
			}
			if len(fields) == 0 {
				t.Fatalf("Dockerfile:%d: FROM without an image", in.line)
			}
			s.image = fields[0]
			if len(fields) == 3 && strings.EqualFold(fields[1], "AS") {
				s.name = fields[2]
			}
			stages = append(stages, s)
			continue
		}
		if len(stages) == 0 {
			if in.cmd != "ARG" {
				t.Fatalf("Dockerfile:%d: %s before the first FROM", in.line, in.cmd)
			}
			continue
		}
		stages[len(stages)-1].instrs = append(stages[len(stages)-1].instrs, in)
	}
	if pending.Len() > 0 {
		t.Fatal("Dockerfile ends inside a continued line")
	}
	return stages
}

func (s stage) all(cmd string) []instruction {
	var out []instruction
	for _, in := range s.instrs {
		if in.cmd == cmd {
			out = append(out, in)
		}
	}
	return out
}

// execForm decodes a JSON-array (exec form) argument list.
func execForm(in instruction) ([]string, bool) {
	var v []string
	if err := json.Unmarshal([]byte(in.args), &v); err != nil {
		return nil, false
	}
	return v, true
}

// secretName matches build arguments and environment variables whose
// names say they carry a secret: build args end up in the image history.
var secretName = regexp.MustCompile(`(?i)(secret|token|passw|cookie|credential|sccauth|xsrf|ests|api_?key|private_?key|auth)`)

// goBuildLine extracts the `go build …` command of a shell line, with the
// environment assignments in front of it.
var goBuildLine = regexp.MustCompile(`((?:[A-Z_]+=\S*\s+)*)go build (.*?)(?:\s*&&.*)?$`)

func TestDockerfile(t *testing.T) {
	data := readFile(t, filepath.Join(repoRoot, "Dockerfile"))
	stages := parseDockerfile(t, data)
	if len(stages) < 2 {
		t.Fatalf("Dockerfile: %d stage(s); want a build stage and a runtime stage", len(stages))
	}
	build, final := stages[0], stages[len(stages)-1]
	if !strings.HasPrefix(build.image, "golang:1.26") {
		t.Errorf("build stage FROM %s, want golang:1.26 (go.mod: go 1.26.x)", build.image)
	}
	if build.name == "" {
		t.Errorf("build stage has no name (FROM … AS build)")
	}
	if !(strings.HasPrefix(final.image, "gcr.io/distroless/static") || final.image == "scratch") {
		t.Errorf("final stage FROM %s, want gcr.io/distroless/static… or scratch (a static binary needs no more)", final.image)
	}

	// No secrets in build arguments or the image environment.
	for _, s := range stages {
		for _, in := range append(s.all("ARG"), s.all("ENV")...) {
			for _, f := range strings.Fields(in.args) {
				name, _, _ := strings.Cut(f, "=")
				if secretName.MatchString(name) {
					t.Errorf("Dockerfile:%d: %s %s: secrets never go into build arguments or the image (they stay in its history)", in.line, in.cmd, name)
				}
			}
		}
	}

	// The build line.
	var buildRun instruction
	for _, in := range build.all("RUN") {
		if strings.Contains(in.args, "go build") {
			buildRun = in
		}
	}
	m := goBuildLine.FindStringSubmatch(buildRun.args)
	if m == nil {
		t.Fatalf("Dockerfile: no `go build` RUN line in the build stage")
	}
	if !strings.Contains(m[1], "CGO_ENABLED=0") {
		t.Errorf("Dockerfile:%d: go build without CGO_ENABLED=0: the distroless static image has no libc", buildRun.line)
	}
	flags := strings.Fields(m[2])
	for _, want := range []string{"-trimpath", "./cmd/defenderharvester"} {
		if !contains(flags, want) {
			t.Errorf("Dockerfile:%d: go build lacks %s", buildRun.line, want)
		}
	}
	if !strings.Contains(m[2], `-ldflags "-s -w"`) {
		t.Errorf(`Dockerfile:%d: go build lacks -ldflags "-s -w"`, buildRun.line)
	}
	if strings.Contains(m[2], "-buildvcs=false") {
		t.Errorf("Dockerfile:%d: -buildvcs=false drops the revision `version` prints", buildRun.line)
	}
	out, _ := flagValue(flags, "o")

	// The CI script builds the same way.
	ci := string(readFile(t, filepath.Join(repoRoot, ".ci", "run")))
	cm := goBuildLine.FindStringSubmatch(firstLineWith(ci, "go build"))
	if cm == nil {
		t.Errorf(".ci/run does not build the binary")
	} else {
		if !strings.Contains(cm[1], "CGO_ENABLED=0") {
			t.Errorf(".ci/run builds without CGO_ENABLED=0, unlike the Dockerfile")
		}
		if a, b := withoutOutput(flags), withoutOutput(strings.Fields(cm[2])); strings.Join(a, " ") != strings.Join(b, " ") {
			t.Errorf("the go build flags differ:\n  Dockerfile: %s\n  .ci/run:    %s", strings.Join(a, " "), strings.Join(b, " "))
		}
	}

	// Runtime stage: the binary from the build stage, non-root, exec forms.
	copied := false
	for _, in := range final.all("COPY") {
		f := strings.Fields(in.args)
		if contains(f, "--from="+build.name) && len(f) >= 2 && f[len(f)-2] == out && f[len(f)-1] == imageBinary {
			copied = true
		}
	}
	if !copied {
		t.Errorf("final stage does not COPY --from=%s %s %s", build.name, out, imageBinary)
	}
	users := final.all("USER")
	if len(users) == 0 {
		t.Fatalf("final stage has no USER: the container would run as root")
	}
	user := users[len(users)-1].args
	if !regexp.MustCompile(`^[1-9][0-9]*(:[1-9][0-9]*)?$`).MatchString(user) {
		t.Errorf("USER %q: want a numeric non-root uid[:gid] (runAsNonRoot can verify only numbers)", user)
	}
	ep := final.all("ENTRYPOINT")
	if len(ep) != 1 {
		t.Fatalf("final stage: %d ENTRYPOINTs, want 1", len(ep))
	}
	if v, ok := execForm(ep[0]); !ok || len(v) != 1 || v[0] != imageBinary {
		t.Errorf("ENTRYPOINT %s: want exec form [%q] (shell form would not pass SIGTERM on, and there is no shell)", ep[0].args, imageBinary)
	}
	cmds := final.all("CMD")
	if len(cmds) != 1 {
		t.Fatalf("final stage: %d CMDs, want 1", len(cmds))
	}
	if v, ok := execForm(cmds[0]); !ok || strings.Join(v, " ") != "serve --config "+imageConfig {
		t.Errorf("CMD %s: want exec form [\"serve\",\"--config\",%q]", cmds[0].args, imageConfig)
	}
	if e := final.all("EXPOSE"); len(e) == 0 || !strings.Contains(e[0].args, defaultListenPort) {
		t.Errorf("final stage does not EXPOSE %s", defaultListenPort)
	}
	vol := final.all("VOLUME")
	if len(vol) == 0 || !strings.Contains(vol[0].args, stateDir) {
		t.Errorf("final stage has no VOLUME %s", stateDir)
	}
	// The state directory belongs to the runtime user, so a fresh volume
	// does too.
	owned := false
	uidgid := user
	if !strings.Contains(uidgid, ":") {
		uidgid += ":" + user
	}
	for _, in := range final.all("COPY") {
		f := strings.Fields(in.args)
		if contains(f, "--chown="+uidgid) && f[len(f)-1] == stateDir {
			owned = true
		}
	}
	if !owned {
		t.Errorf("%s in the image is not owned by %s (COPY --chown=%s … %s): a new volume there would be root's", stateDir, uidgid, uidgid, stateDir)
	}
	labels := strings.Join(func() []string {
		var l []string
		for _, in := range final.all("LABEL") {
			l = append(l, in.args)
		}
		return l
	}(), " ")
	for _, want := range []string{"org.opencontainers.image.source", "org.opencontainers.image.title", "org.opencontainers.image.revision", "org.opencontainers.image.version"} {
		if !strings.Contains(labels, want+"=") {
			t.Errorf("final stage has no LABEL %s", want)
		}
	}
	for _, in := range final.all("RUN") {
		t.Errorf("Dockerfile:%d: RUN in the final stage: distroless has no shell", in.line)
	}
}

func contains(l []string, s string) bool {
	for _, e := range l {
		if e == s {
			return true
		}
	}
	return false
}

func firstLineWith(text, s string) string {
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, s) && !strings.HasPrefix(strings.TrimSpace(l), "#") {
			return strings.TrimSpace(l)
		}
	}
	return ""
}

// withoutOutput drops -o and its value (the Dockerfile and CI write to
// different places).
func withoutOutput(flags []string) []string {
	var out []string
	for i := 0; i < len(flags); i++ {
		if flags[i] == "-o" {
			i++
			continue
		}
		out = append(out, flags[i])
	}
	return out
}

// dockerignore is a parsed .dockerignore: patterns in order, "!" for
// exceptions, the last match wins (as the builder does).
type dockerignore []struct {
	re     *regexp.Regexp
	negate bool
}

func parseDockerignore(data []byte) dockerignore {
	var d dockerignore
	for _, l := range strings.Split(string(data), "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		neg := strings.HasPrefix(l, "!")
		l = strings.TrimPrefix(strings.TrimPrefix(l, "!"), "/")
		l = filepath.Clean(l)
		var re strings.Builder
		re.WriteString("^")
		for i := 0; i < len(l); i++ {
			switch c := l[i]; {
			case strings.HasPrefix(l[i:], "**/"):
				re.WriteString("(?:.*/)?")
				i += 2
			case strings.HasPrefix(l[i:], "**"):
				re.WriteString(".*")
				i++
			case c == '*':
				re.WriteString("[^/]*")
			case c == '?':
				re.WriteString("[^/]")
			default:
				re.WriteString(regexp.QuoteMeta(string(c)))
			}
		}
		// A pattern matching a folder excludes what is inside it.
		re.WriteString("(?:/.*)?$")
		d = append(d, struct {
			re     *regexp.Regexp
			negate bool
		}{regexp.MustCompile(re.String()), neg})
	}
	return d
}

func (d dockerignore) excludes(path string) bool {
	ex := false
	for _, p := range d {
		if p.re.MatchString(path) {
			ex = !p.negate
		}
	}
	return ex
}

// TestDockerignore: .git and every tracked file reach the build context:
// the build stamps the revision from .git, and a tracked file left out
// would show as deleted — every image "with uncommitted changes".
func TestDockerignore(t *testing.T) {
	d := parseDockerignore(readFile(t, filepath.Join(repoRoot, ".dockerignore")))
	for _, p := range []string{".git", ".git/HEAD", "go.mod", "go.sum", "cmd/defenderharvester/main.go", "internal/cli/version.go", "Dockerfile"} {
		if d.excludes(p) {
			t.Errorf(".dockerignore excludes %s", p)
		}
	}
	for _, p := range []string{"defenderharvester", "out/x.jsonl", "demo-out/a", "state.db", "deploy/x/y.db", "internal/cli/cli.test"} {
		if !d.excludes(p) {
			t.Errorf(".dockerignore lets %s (build or run output) into the build context", p)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "git", "-C", repoRoot, "ls-files").Output()
	if err != nil {
		t.Skipf("git ls-files: %v; the fixed list above was checked", err)
	}
	for _, f := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if f != "" && d.excludes(f) {
			t.Errorf(".dockerignore excludes the tracked file %s: images would be stamped \"with uncommitted changes\"", f)
		}
	}
}

func TestDockerignoreMatching(t *testing.T) {
	d := parseDockerignore([]byte("# c\n/out\n**/*.db\nbench/results\ndocs\n!docs/keep.md\n"))
	for p, want := range map[string]bool{
		"out": true, "out/a/b": true, "x/out": false, "a.db": true, "a/b/c.db": true, "a.dbx": false,
		"bench/results/r.txt": true, "bench/run.sh": false, "docs/x.md": true, "docs/keep.md": false,
	} {
		if got := d.excludes(p); got != want {
			t.Errorf("excludes(%q) = %v, want %v", p, got, want)
		}
	}
}
