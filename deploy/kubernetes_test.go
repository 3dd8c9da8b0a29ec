package deploy_test

import (
	"context"
	"encoding/base64"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

var kubeDir = filepath.Join(repoRoot, "deploy", "kubernetes")

// Secret-bearing config keys: their files must come from a Secret.
var secretFileKey = regexp.MustCompile(`(cookie|secret|token|ests|certificate|password|key)_file$`)

func TestKubernetesBase(t *testing.T) {
	checkKubernetes(t, "base", render(t, filepath.Join(kubeDir, "base")), false)
}

func TestKubernetesOverlays(t *testing.T) {
	dirs, err := filepath.Glob(filepath.Join(kubeDir, "overlays", "*"))
	if err != nil || len(dirs) == 0 {
		t.Fatalf("no overlays under %s (%v)", kubeDir, err)
	}
	for _, dir := range dirs {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			checkKubernetes(t, dir, render(t, dir), true)
		})
	}
}

// TestKubernetesExamplePlaceholders: the example overlay's credential files
// are placeholders; a real secret committed there fails here.
func TestKubernetesExamplePlaceholders(t *testing.T) {
	dir := filepath.Join(kubeDir, "overlays", "example")
	for _, o := range render(t, dir) {
		if getString(o, "kind") != "Secret" {
			continue
		}
		for k, v := range getMap(o, "data") {
			if s := strings.TrimSpace(v.(string)); s != "REPLACE_ME" {
				t.Errorf("%s: Secret %s key %s holds %d bytes that are not the placeholder REPLACE_ME: never commit real credentials", dir, getString(o, "metadata", "name"), k, len(s))
			}
		}
	}
}

// TestServiceMonitorComponent: the optional component selects the
// Service and names its metrics port.
func TestServiceMonitorComponent(t *testing.T) {
	objs := render(t, filepath.Join(kubeDir, "overlays", "example"))
	objs = renderKind(t, filepath.Join(kubeDir, "components", "servicemonitor"), "Component", objs)
	var sm, svc obj
	for _, o := range objs {
		switch getString(o, "kind") {
		case "ServiceMonitor":
			sm = o
		case "Service":
			svc = o
		}
	}
	if sm == nil || svc == nil {
		t.Fatalf("want a ServiceMonitor and a Service, got %s", kinds(objs))
	}
	if !subset(getMap(sm, "spec", "selector", "matchLabels"), getMap(svc, "metadata", "labels")) {
		t.Errorf("ServiceMonitor selector %v does not select Service labels %v", getMap(sm, "spec", "selector", "matchLabels"), getMap(svc, "metadata", "labels"))
	}
	for _, e := range getList(sm, "spec", "endpoints") {
		if byName(getList(svc, "spec", "ports"), getString(e, "port")) == nil {
			t.Errorf("ServiceMonitor endpoint port %q is not a port name of the Service", getString(e, "port"))
		}
		if p := getString(e, "path"); p != "" && p != "/metrics" {
			t.Errorf("ServiceMonitor path %q, want /metrics", p)
		}
	}
}

// TestKubernetesWithKubectl renders with the real kustomize (kubectl
// kustomize) when kubectl is on PATH, runs the same checks on its output
// and compares it with this package's rendering.
func TestKubernetesWithKubectl(t *testing.T) {
	if _, err := exec.LookPath("kubectl"); err != nil {
		t.Skip("kubectl not on PATH; the built-in renderer's checks stand alone")
	}
	dirs, _ := filepath.Glob(filepath.Join(kubeDir, "overlays", "*"))
	dirs = append([]string{filepath.Join(kubeDir, "base")}, dirs...)
	for _, dir := range dirs {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			out, err := exec.CommandContext(ctx, "kubectl", "kustomize", dir).Output()
			if err != nil {
				var stderr string
				if ee, ok := err.(*exec.ExitError); ok {
					stderr = string(ee.Stderr)
				}
				t.Fatalf("kubectl kustomize %s: %v\n%s", dir, err, stderr)
			}
			mine := render(t, dir)
			real := readYAMLDocs(t, "kubectl kustomize "+dir, unhash(out, mine))
			checkKubernetes(t, "kubectl kustomize "+dir, real, filepath.Base(filepath.Dir(dir)) == "overlays")
			compareRenderings(t, mine, real)
		})
	}
}

// unhash replaces kustomize's generated names (name-<10 char hash>) with
// the plain names this package's renderer uses.
func unhash(out []byte, mine []obj) []byte {
	s := string(out)
	for _, o := range mine {
		kind, name := getString(o, "kind"), getString(o, "metadata", "name")
		if kind != "ConfigMap" && kind != "Secret" {
			continue
		}
		re := regexp.MustCompile(`\b` + regexp.QuoteMeta(name) + `-[a-z0-9]{10}\b`)
		s = re.ReplaceAllString(s, name)
	}
	return []byte(s)
}

func compareRenderings(t *testing.T, mine, real []obj) {
	t.Helper()
	key := func(o obj) string { return getString(o, "kind") + "/" + getString(o, "metadata", "name") }
	if kinds(mine) != kinds(real) {
		t.Fatalf("objects differ:\n  deploy test: %s\n  kubectl:     %s", kinds(mine), kinds(real))
	}
	byKey := map[string]obj{}
	for _, o := range real {
		if getString(o, "kind") == "Secret" {
			for k, v := range getMap(o, "data") {
				b, err := base64.StdEncoding.DecodeString(v.(string))
				if err != nil {
					t.Fatalf("%s: %s: %v", key(o), k, err)
				}
				getMap(o, "data")[k] = string(b)
			}
		}
		byKey[key(o)] = o
	}
	for _, o := range mine {
		if r := byKey[key(o)]; !reflect.DeepEqual(o, r) {
			a, _ := yaml.Marshal(o)
			b, _ := yaml.Marshal(r)
			t.Errorf("%s renders differently:\n--- deploy test\n%s\n--- kubectl kustomize\n%s", key(o), a, b)
		}
	}
}

// checkKubernetes checks one rendering. deployable: an overlay, which must
// provide the config, the credentials and the image.
func checkKubernetes(t *testing.T, name string, objs []obj, deployable bool) {
	t.Helper()
	find := func(kind, n string) obj {
		for _, o := range objs {
			if getString(o, "kind") == kind && getString(o, "metadata", "name") == n {
				return o
			}
		}
		return nil
	}
	var sts obj
	for _, o := range objs {
		if getString(o, "kind") == "StatefulSet" {
			if sts != nil {
				t.Fatalf("%s: more than one StatefulSet", name)
			}
			sts = o
		}
	}
	if sts == nil {
		t.Fatalf("%s: no StatefulSet among %s", name, kinds(objs))
	}
	spec := podSpec(sts)
	var main obj
	for _, c := range getList(spec, "containers") {
		if args := toStrings(getList(c, "args")); len(args) > 0 && args[0] == "serve" {
			main = c.(obj)
		}
	}
	if main == nil {
		t.Fatalf("%s: no container runs `serve` (args: [serve, …], the image's ENTRYPOINT is the binary)", name)
	}
	if cmd := toStrings(getList(main, "command")); len(cmd) > 0 && !(len(cmd) == 1 && cmd[0] == imageBinary) {
		t.Errorf("%s: container command %v overrides the image's ENTRYPOINT", name, cmd)
	}
	args := toStrings(getList(main, "args"))
	env := getList(main, "env")

	// Shards: DH_SHARD_COUNT == replicas, the index from the pod name.
	replicas, ok := getInt(sts, "spec", "replicas")
	if !ok {
		t.Errorf("%s: StatefulSet has no spec.replicas: set it with DH_SHARD_COUNT", name)
	}
	count, err := strconv.Atoi(getString(byName(env, "DH_SHARD_COUNT"), "value"))
	if err != nil {
		t.Errorf("%s: env DH_SHARD_COUNT %q is not a number (it must equal spec.replicas)", name, getString(byName(env, "DH_SHARD_COUNT"), "value"))
	} else if count != replicas {
		t.Errorf("%s: DH_SHARD_COUNT %d but spec.replicas %d: tenants hashed to a missing index are harvested by nobody (or replicas idle); change both together", name, count, replicas)
	}
	if v, ok := flagValue(args, "shard-count"); ok && v != strconv.Itoa(replicas) {
		t.Errorf("%s: --shard-count %s but spec.replicas %d", name, v, replicas)
	}
	if idx := getString(byName(env, "DH_SHARD_INDEX"), "value"); idx != "auto" {
		t.Errorf("%s: DH_SHARD_INDEX %q, want auto (the ordinal of the pod name)", name, idx)
	}
	if v, ok := flagValue(args, "shard-index"); ok && v != "auto" {
		t.Errorf("%s: --shard-index %s: every pod would take the same index", name, v)
	}
	if getString(byName(env, "HOSTNAME"), "value") != "" {
		t.Errorf("%s: HOSTNAME is set in env: --shard-index auto reads the pod name from it", name)
	}

	// Identity: headless governing Service, selectors.
	labels := getMap(sts, "spec", "template", "metadata", "labels")
	if !subset(getMap(sts, "spec", "selector", "matchLabels"), labels) || len(getMap(sts, "spec", "selector", "matchLabels")) == 0 {
		t.Errorf("%s: StatefulSet selector does not match its pod labels", name)
	}
	svc := find("Service", getString(sts, "spec", "serviceName"))
	switch {
	case svc == nil:
		t.Errorf("%s: serviceName %q: no such Service", name, getString(sts, "spec", "serviceName"))
	case getString(svc, "spec", "clusterIP") != "None":
		t.Errorf("%s: Service %s is not headless (clusterIP: None)", name, getString(svc, "metadata", "name"))
	case !subset(getMap(svc, "spec", "selector"), labels) || len(getMap(svc, "spec", "selector")) == 0:
		t.Errorf("%s: Service selector does not select the pods", name)
	}

	// Listen port, probes, scraping.
	listen, ok := flagValue(args, "listen")
	if !ok {
		listen = ":" + defaultListenPort
	}
	port := portOf(listen)
	var portName string
	for _, p := range getList(main, "ports") {
		if getString(p, "containerPort") == port {
			portName = getString(p, "name")
		}
	}
	if portName == "" && byPort(getList(main, "ports"), port) == nil {
		t.Errorf("%s: no containerPort %s (the --listen port)", name, port)
	}
	reaches := func(p any) bool {
		s := getString(p)
		return s == port || (portName != "" && s == portName)
	}
	for probe, path := range map[string]string{"livenessProbe": "/healthz", "readinessProbe": "/readyz", "startupProbe": "/healthz"} {
		pr := getMap(main, probe)
		if pr == nil {
			if probe != "startupProbe" {
				t.Errorf("%s: no %s", name, probe)
			}
			continue
		}
		if got := getString(pr, "httpGet", "path"); got != path {
			t.Errorf("%s: %s path %q, want %s", name, probe, got, path)
		}
		if !reaches(get(pr, "httpGet", "port")) {
			t.Errorf("%s: %s port %v is not the listen port %s", name, probe, get(pr, "httpGet", "port"), port)
		}
	}
	if ann := getString(sts, "spec", "template", "metadata", "annotations", "prometheus.io/port"); ann != "" && ann != port {
		t.Errorf("%s: prometheus.io/port %s, want the listen port %s", name, ann, port)
	}
	if svc != nil {
		for _, sp := range getList(svc, "spec", "ports") {
			if !reaches(get(sp, "targetPort")) {
				t.Errorf("%s: Service port %s targets %v, not the listen port", name, getString(sp, "name"), get(sp, "targetPort"))
			}
		}
	}

	// Security: non-root, read-only root, no capabilities, seccomp.
	podSC := getMap(spec, "securityContext")
	if v, _ := getBool(podSC, "runAsNonRoot"); !v {
		t.Errorf("%s: pod securityContext.runAsNonRoot is not true", name)
	}
	if getString(podSC, "seccompProfile", "type") != "RuntimeDefault" {
		t.Errorf("%s: pod seccompProfile is not RuntimeDefault", name)
	}
	if v, ok := getBool(spec, "automountServiceAccountToken"); !ok || v {
		t.Errorf("%s: automountServiceAccountToken should be false (serve needs no Kubernetes API)", name)
	}
	for _, c := range podContainers(sts) {
		cn := getString(c, "name")
		sc := getMap(c, "securityContext")
		uid, ok := getInt(sc, "runAsUser")
		if !ok {
			uid, ok = getInt(podSC, "runAsUser")
		}
		if !ok || uid == 0 {
			t.Errorf("%s: container %s: runAsUser %d (set: %v), want a non-root uid", name, cn, uid, ok)
		}
		if v, ok := getBool(sc, "runAsNonRoot"); ok && !v {
			t.Errorf("%s: container %s: runAsNonRoot false", name, cn)
		}
		if v, _ := getBool(sc, "allowPrivilegeEscalation"); v || get(sc, "allowPrivilegeEscalation") == nil {
			t.Errorf("%s: container %s: allowPrivilegeEscalation must be false", name, cn)
		}
		if v, _ := getBool(sc, "readOnlyRootFilesystem"); !v {
			t.Errorf("%s: container %s: readOnlyRootFilesystem is not true", name, cn)
		}
		if v, _ := getBool(sc, "privileged"); v {
			t.Errorf("%s: container %s: privileged", name, cn)
		}
		if drop := toStrings(getList(sc, "capabilities", "drop")); len(drop) != 1 || drop[0] != "ALL" {
			t.Errorf("%s: container %s: capabilities.drop %v, want [ALL]", name, cn, drop)
		}
		if len(getList(sc, "capabilities", "add")) > 0 {
			t.Errorf("%s: container %s adds capabilities", name, cn)
		}
		if getMap(c, "resources", "requests") == nil || getString(c, "resources", "limits", "memory") == "" {
			t.Errorf("%s: container %s: set resources.requests and a memory limit", name, cn)
		}
		img := getString(c, "image")
		if _, tag := splitImage(img); deployable && (tag == "" || tag == ":latest") {
			t.Errorf("%s: container %s: image %q has no fixed tag or digest", name, cn, img)
		}
	}
	if deployable && getString(main, "image") == "defenderharvester" {
		t.Errorf("%s: the image is still the base's placeholder: set it with images:", name)
	}

	// Volumes.
	volumes := getList(spec, "volumes")
	mountOf := func(c obj, path string) (mount, vol obj) {
		best := ""
		for _, m := range getList(c, "volumeMounts") {
			mp := getString(m, "mountPath")
			if under(path, mp) && len(mp) > len(best) {
				best, mount = mp, m.(obj)
			}
		}
		if mount != nil {
			vol = byName(volumes, getString(mount, "name"))
		}
		return mount, vol
	}
	vctNames := map[string]obj{}
	for _, v := range getList(sts, "spec", "volumeClaimTemplates") {
		vctNames[getString(v, "metadata", "name")] = v.(obj)
	}

	// Config: a ConfigMap key at the --config path.
	cfgPath, ok := flagValue(args, "config")
	if !ok {
		t.Fatalf("%s: serve has no --config", name)
	}
	hc := harvesterConfig{shutdownTimeout: defaultShutdownTimeout, stateDir: stateDir, files: map[string]string{}}
	if m, vol := mountOf(main, cfgPath); vol == nil || getString(vol, "configMap", "name") == "" {
		t.Errorf("%s: --config %s is not in a ConfigMap volume", name, cfgPath)
	} else if cm := find("ConfigMap", getString(vol, "configMap", "name")); cm != nil {
		key := strings.TrimPrefix(strings.TrimPrefix(cfgPath, getString(m, "mountPath")), "/")
		text, ok := getMap(cm, "data")[key].(string)
		if !ok {
			t.Errorf("%s: ConfigMap %s has no key %s (--config %s)", name, getString(cm, "metadata", "name"), key, cfgPath)
		} else {
			hc = parseHarvesterConfig(t, name+" config", []byte(text))
		}
	}

	// Grace period > shutdown timeout.
	grace, ok := getInt(spec, "terminationGracePeriodSeconds")
	if !ok {
		t.Errorf("%s: no terminationGracePeriodSeconds (the default 30s is shorter than serve.shutdown_timeout)", name)
	} else if g := time.Duration(grace) * time.Second; g <= hc.shutdownTimeout || g < minStopGrace {
		t.Errorf("%s: terminationGracePeriodSeconds %d must exceed serve.shutdown_timeout %s and be at least %s", name, grace, hc.shutdownTimeout, minStopGrace)
	}

	// State: the replica's own volume at the state dir.
	if _, vol := mountOf(main, hc.stateDir); vol != nil || vctNames[mountName(main, hc.stateDir)] == nil {
		t.Errorf("%s: the state dir %s is not mounted from a volumeClaimTemplate (each replica keeps its own state)", name, hc.stateDir)
	} else if modes := toStrings(getList(vctNames[mountName(main, hc.stateDir)], "spec", "accessModes")); len(modes) != 1 || modes[0] != "ReadWriteOnce" {
		t.Errorf("%s: state volume access modes %v, want [ReadWriteOnce] (bbolt files must not be shared)", name, modes)
	}

	// Leases: --lease-dir on an RWX claim shared by all replicas.
	leaseDir, ok := flagValue(args, "lease-dir")
	if !ok {
		if leaseDir = getString(byName(env, "DH_LEASE_DIR"), "value"); leaseDir == "" {
			leaseDir = hc.leaseDir
		}
	}
	if leaseDir == "" {
		t.Errorf("%s: no --lease-dir: replicas could harvest one tenant twice while the shard count changes", name)
	} else {
		if hc.leaseDir != "" && hc.leaseDir != leaseDir {
			t.Errorf("%s: serve.lease_dir %s but --lease-dir %s", name, hc.leaseDir, leaseDir)
		}
		m, vol := mountOf(main, leaseDir)
		claim := getString(vol, "persistentVolumeClaim", "claimName")
		switch {
		case m == nil || getString(m, "mountPath") != leaseDir:
			t.Errorf("%s: the lease dir %s is not a volume mount", name, leaseDir)
		case claim == "":
			t.Errorf("%s: the lease dir %s is not a PersistentVolumeClaim shared by the replicas", name, leaseDir)
		case find("PersistentVolumeClaim", claim) == nil:
			t.Errorf("%s: lease claim %s does not exist", name, claim)
		default:
			modes := toStrings(getList(find("PersistentVolumeClaim", claim), "spec", "accessModes"))
			if len(modes) != 1 || modes[0] != "ReadWriteMany" {
				t.Errorf("%s: lease claim %s access modes %v, want [ReadWriteMany]", name, claim, modes)
			}
		}
		if v, ok := getBool(m, "readOnly"); ok && v {
			t.Errorf("%s: the lease volume is read-only", name)
		}
	}

	// Every referenced ConfigMap, Secret and claim exists.
	for _, v := range volumes {
		for kind, ref := range map[string]string{
			"ConfigMap":             getString(v, "configMap", "name"),
			"Secret":                getString(v, "secret", "secretName"),
			"PersistentVolumeClaim": getString(v, "persistentVolumeClaim", "claimName"),
		} {
			if ref == "" {
				continue
			}
			if opt, _ := getBool(get(v, strings.ToLower(kind[:1])+kind[1:]), "optional"); opt {
				t.Errorf("%s: volume %s: optional %s %s — a missing one should stop the pod, not start it without", name, getString(v, "name"), kind, ref)
			}
			if (deployable || kind == "PersistentVolumeClaim") && find(kind, ref) == nil {
				t.Errorf("%s: volume %s refers to %s %s, which is not rendered (have %s)", name, getString(v, "name"), kind, ref, kinds(objs))
			}
		}
		if getList(v, "projected", "sources") != nil {
			t.Errorf("%s: projected volumes are not checked by this test: extend it", name)
		}
	}
	for _, c := range podContainers(sts) {
		for _, e := range getList(c, "env") {
			for kind, ref := range map[string]obj{"ConfigMap": getMap(e, "valueFrom", "configMapKeyRef"), "Secret": getMap(e, "valueFrom", "secretKeyRef")} {
				if ref == nil {
					continue
				}
				o := find(kind, getString(ref, "name"))
				if deployable && (o == nil || get(o, "data", getString(ref, "key")) == nil) {
					t.Errorf("%s: env %s refers to %s %s key %s, which is not rendered", name, getString(e, "name"), kind, getString(ref, "name"), getString(ref, "key"))
				}
			}
			if v := getString(e, "value"); v != "" && secretEnv.MatchString(getString(e, "name")) {
				t.Errorf("%s: env %s has a literal value: secrets come from a Secret", name, getString(e, "name"))
			}
		}
		for _, e := range getList(c, "envFrom") {
			for kind, n := range map[string]string{"ConfigMap": getString(e, "configMapRef", "name"), "Secret": getString(e, "secretRef", "name")} {
				if n != "" && deployable && find(kind, n) == nil {
					t.Errorf("%s: envFrom refers to %s %s, which is not rendered", name, kind, n)
				}
			}
		}
	}

	// Every file the config names: readable in the pod, secrets from a
	// Secret key, and not through a Secret volume the harvester would
	// refuse (fsGroup makes its files group-readable).
	fsGroup := get(podSC, "fsGroup") != nil
	for key, path := range hc.files {
		m, vol := mountOf(main, path)
		if vol == nil {
			t.Errorf("%s: config %s = %s is not on any volume of the container", name, key, path)
			continue
		}
		rel := strings.TrimPrefix(strings.TrimPrefix(path, getString(m, "mountPath")), "/")
		switch {
		case getString(vol, "secret", "secretName") != "":
			if fsGroup {
				t.Errorf("%s: config %s = %s comes straight from a Secret volume: with fsGroup its files are 0440 and the harvester refuses group-readable secret files", name, key, path)
			}
			checkKey(t, name, key, find("Secret", getString(vol, "secret", "secretName")), rel, deployable)
		case get(vol, "emptyDir") != nil:
			// Filled by an init container from a Secret volume.
			src := copiedFrom(sts, volumes, getString(vol, "name"))
			if src == nil {
				t.Errorf("%s: config %s = %s is on emptyDir %s that no init container fills from a Secret", name, key, path, getString(vol, "name"))
				continue
			}
			checkKey(t, name, key, find("Secret", getString(src, "secret", "secretName")), rel, deployable)
		case getString(vol, "configMap", "name") != "":
			if secretFileKey.MatchString(key) {
				t.Errorf("%s: config %s = %s is a secret in a ConfigMap", name, key, path)
			}
			checkKey(t, name, key, find("ConfigMap", getString(vol, "configMap", "name")), rel, deployable)
		default:
			t.Errorf("%s: config %s = %s: volume %s is neither a Secret, a ConfigMap nor a copy of one", name, key, path, getString(vol, "name"))
		}
	}
}

// copiedFrom finds the init container that mounts emptyDir volume name and
// a Secret volume, and returns that Secret volume.
func copiedFrom(sts obj, volumes []any, name string) obj {
	for _, c := range getList(podSpec(sts), "initContainers") {
		writes := false
		var secret obj
		for _, m := range getList(c, "volumeMounts") {
			v := byName(volumes, getString(m, "name"))
			if getString(m, "name") == name {
				writes = true
			}
			if getString(v, "secret", "secretName") != "" {
				secret = v
			}
		}
		if writes && secret != nil {
			return secret
		}
	}
	return nil
}

func checkKey(t *testing.T, name, key string, o obj, rel string, deployable bool) {
	t.Helper()
	if !deployable {
		return
	}
	if o == nil {
		t.Errorf("%s: config %s: its ConfigMap or Secret is not rendered", name, key)
		return
	}
	if _, ok := getMap(o, "data")[rel]; !ok {
		t.Errorf("%s: config %s: %s %s has no key %q", name, key, getString(o, "kind"), getString(o, "metadata", "name"), rel)
	}
}

// mountName is the name of the volume mounted exactly at path, or "".
func mountName(c obj, path string) string {
	for _, m := range getList(c, "volumeMounts") {
		if filepath.Clean(getString(m, "mountPath")) == filepath.Clean(path) {
			return getString(m, "name")
		}
	}
	return ""
}

func byPort(ports []any, port string) obj {
	for _, p := range ports {
		if getString(p, "containerPort") == port {
			return p.(obj)
		}
	}
	return nil
}

// subset: every key of a has the same value in b.
func subset(a, b obj) bool {
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// secretEnv matches the names of environment variables that carry
// secrets (DH_CLIENT_SECRET, DH_PORTAL_COOKIE, DH_ACCESS_TOKEN, …).
var secretEnv = regexp.MustCompile(`(?i)(secret|token|cookie|sccauth|xsrf|ests|passw|credential|api_?key|private_?key)`)
