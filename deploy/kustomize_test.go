package deploy_test

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// A small kustomize: just the features deploy/kubernetes uses, each as
// kustomize documents it. A kustomization using anything else fails the
// test instead of being rendered wrongly — implement it here, or keep the
// overlay simple. Generated ConfigMaps and Secrets keep their plain names
// (kustomize adds a content hash and renames the references with it, which
// changes nothing the checks look at); their data stays plain text.
//
// Order, as kustomize: resources (bases rendered whole), components,
// generators, patches, then the namespace, images and replicas
// transformers.

// kustomizationFields are the fields render implements.
var kustomizationFields = map[string]bool{
	"apiVersion": true, "kind": true, "resources": true, "components": true,
	"namespace": true, "images": true, "patches": true, "replicas": true,
	"configMapGenerator": true, "secretGenerator": true,
}

// clusterScoped kinds get no namespace.
var clusterScoped = map[string]bool{
	"Namespace": true, "ClusterRole": true, "ClusterRoleBinding": true, "PersistentVolume": true,
	"StorageClass": true, "CustomResourceDefinition": true, "PriorityClass": true,
}

// render builds the kustomization in dir.
func render(t *testing.T, dir string) []obj {
	t.Helper()
	return renderKind(t, dir, "Kustomization", nil)
}

// renderKind renders dir's kustomization (want: Kustomization) or applies a
// Component's content to acc.
func renderKind(t *testing.T, dir, want string, acc []obj) []obj {
	t.Helper()
	k := loadKustomization(t, dir)
	if kind := getString(k, "kind"); kind != want && !(kind == "" && want == "Kustomization") {
		t.Fatalf("%s: kind %q, want %s", dir, kind, want)
	}
	for _, r := range toStrings(getList(k, "resources")) {
		p := filepath.Join(dir, r)
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatalf("%s: resource %s: %v", dir, r, err)
		}
		if fi.IsDir() {
			acc = append(acc, render(t, p)...)
			continue
		}
		acc = append(acc, readYAMLDocs(t, p, readFile(t, p))...)
	}
	for _, c := range toStrings(getList(k, "components")) {
		acc = renderKind(t, filepath.Join(dir, c), "Component", acc)
	}
	for _, g := range getList(k, "configMapGenerator") {
		acc = generate(t, dir, "ConfigMap", g.(obj), acc)
	}
	for _, g := range getList(k, "secretGenerator") {
		acc = generate(t, dir, "Secret", g.(obj), acc)
	}
	for i, p := range getList(k, "patches") {
		acc = applyPatch(t, dir, i, p.(obj), acc)
	}
	if ns := getString(k, "namespace"); ns != "" {
		for _, o := range acc {
			if !clusterScoped[getString(o, "kind")] {
				meta := getMap(o, "metadata")
				meta["namespace"] = ns
			}
		}
	}
	for _, im := range getList(k, "images") {
		setImages(t, dir, im.(obj), acc)
	}
	for _, r := range getList(k, "replicas") {
		name := getString(r, "name")
		count, ok := getInt(r, "count")
		if !ok {
			t.Fatalf("%s: replicas entry %q has no integer count", dir, name)
		}
		found := false
		for _, o := range acc {
			if kind := getString(o, "kind"); (kind == "StatefulSet" || kind == "Deployment" || kind == "ReplicaSet") && getString(o, "metadata", "name") == name {
				getMap(o, "spec")["replicas"] = count
				found = true
			}
		}
		if !found {
			t.Fatalf("%s: replicas: no workload named %q", dir, name)
		}
	}
	return acc
}

func loadKustomization(t *testing.T, dir string) obj {
	t.Helper()
	for _, name := range []string{"kustomization.yaml", "kustomization.yml", "Kustomization"} {
		p := filepath.Join(dir, name)
		if _, err := os.Stat(p); err != nil {
			continue
		}
		docs := readYAMLDocs(t, p, readFile(t, p))
		if len(docs) != 1 {
			t.Fatalf("%s: want one document", p)
		}
		for f := range docs[0] {
			if !kustomizationFields[f] {
				t.Fatalf("%s: field %q is not implemented by deploy/kustomize_test.go: implement it there or keep the kustomization simpler", p, f)
			}
		}
		return docs[0]
	}
	t.Fatalf("%s: no kustomization.yaml", dir)
	return nil
}

// inside refuses paths that leave the kustomization's folder, as kustomize's
// default load restrictor does for files.
func inside(t *testing.T, dir, rel string) string {
	t.Helper()
	p := filepath.Join(dir, rel)
	if !under(p, dir) {
		t.Fatalf("%s: %s is outside the kustomization's folder (kustomize refuses it)", dir, rel)
	}
	return p
}

// generate implements configMapGenerator / secretGenerator with files and
// literals, and behavior create (default), replace and merge.
func generate(t *testing.T, dir, kind string, g obj, acc []obj) []obj {
	t.Helper()
	name := getString(g, "name")
	for f := range g {
		switch f {
		case "name", "files", "literals", "behavior", "type":
		default:
			t.Fatalf("%s: %s generator %q: field %q is not implemented by deploy/kustomize_test.go", dir, kind, name, f)
		}
	}
	data := obj{}
	for _, f := range toStrings(getList(g, "files")) {
		key, path := filepath.Base(f), f
		if k, p, ok := strings.Cut(f, "="); ok {
			key, path = k, p
		}
		if _, dup := data[key]; dup {
			t.Fatalf("%s: %s %q: key %q twice", dir, kind, name, key)
		}
		data[key] = string(readFile(t, inside(t, dir, path)))
	}
	for _, l := range toStrings(getList(g, "literals")) {
		k, v, ok := strings.Cut(l, "=")
		if !ok {
			t.Fatalf("%s: %s %q: literal %q is not key=value", dir, kind, name, l)
		}
		data[k] = v
	}
	var existing obj
	for _, o := range acc {
		if getString(o, "kind") == kind && getString(o, "metadata", "name") == name {
			existing = o
		}
	}
	switch b := getString(g, "behavior"); b {
	case "", "create":
		if existing != nil {
			t.Fatalf("%s: %s %q exists already (use behavior: replace or merge)", dir, kind, name)
		}
		o := obj{"apiVersion": "v1", "kind": kind, "metadata": obj{"name": name}, "data": data}
		if kind == "Secret" {
			o["type"] = "Opaque"
			if ty := getString(g, "type"); ty != "" {
				o["type"] = ty
			}
		}
		return append(acc, o)
	case "replace", "merge":
		if existing == nil {
			t.Fatalf("%s: %s %q: behavior %s, but there is none to %s", dir, kind, name, b, b)
		}
		if b == "replace" {
			existing["data"] = data
		} else {
			old := getMap(existing, "data")
			for k, v := range data {
				old[k] = v
			}
		}
		return acc
	default:
		t.Fatalf("%s: %s %q: unknown behavior %q", dir, kind, name, b)
		return nil
	}
}

// applyPatch applies a strategic-merge patch given by path or inline,
// without target (the patch names its object by apiVersion, kind, name).
func applyPatch(t *testing.T, dir string, i int, p obj, acc []obj) []obj {
	t.Helper()
	for f := range p {
		if f != "path" && f != "patch" {
			t.Fatalf("%s: patches[%d]: field %q is not implemented by deploy/kustomize_test.go (only strategic-merge patches by path or inline)", dir, i, f)
		}
	}
	var docs []obj
	switch {
	case getString(p, "path") != "":
		path := inside(t, dir, getString(p, "path"))
		docs = readYAMLDocs(t, path, readFile(t, path))
	case getString(p, "patch") != "":
		docs = readYAMLDocs(t, fmt.Sprintf("%s patches[%d]", dir, i), []byte(getString(p, "patch")))
	default:
		t.Fatalf("%s: patches[%d]: neither path nor patch", dir, i)
	}
	for _, d := range docs {
		kind, name := getString(d, "kind"), getString(d, "metadata", "name")
		if kind == "" || name == "" {
			t.Fatalf("%s: patches[%d]: a strategic-merge patch names its kind and metadata.name", dir, i)
		}
		found := false
		for j, o := range acc {
			if getString(o, "kind") == kind && getString(o, "metadata", "name") == name {
				acc[j] = smpMerge(t, []string{kind + "/" + name}, o, d).(obj)
				found = true
			}
		}
		if !found {
			t.Fatalf("%s: patches[%d]: no %s named %q to patch", dir, i, kind, name)
		}
	}
	return acc
}

// mergeKeys are the Kubernetes patchMergeKeys of the lists the manifests
// here use: lists of maps are merged element by element on this key; other
// lists are replaced, as the strategic merge patch does.
var mergeKeys = map[string]string{
	"containers": "name", "initContainers": "name", "env": "name", "volumes": "name",
	"volumeMounts": "mountPath", "ports": "containerPort", "volumeClaimTemplates": "",
	"imagePullSecrets": "name", "envFrom": "",
}

// smpMerge merges patch into base (both decoded YAML) as a strategic merge
// patch: maps recursively, null deletes a key, lists by their merge key.
func smpMerge(t *testing.T, path []string, base, patch any) any {
	t.Helper()
	pm, ok := patch.(obj)
	if !ok {
		return patch
	}
	bm, ok := base.(obj)
	if !ok {
		bm = obj{}
	}
	out := obj{}
	for k, v := range bm {
		out[k] = v
	}
	for k, v := range pm {
		if strings.HasPrefix(k, "$") {
			t.Fatalf("%s: patch directive %q is not implemented by deploy/kustomize_test.go", strings.Join(path, "."), k)
		}
		if v == nil {
			delete(out, k)
			continue
		}
		if pl, ok := v.([]any); ok {
			out[k] = mergeList(t, append(path, k), k, out[k], pl)
			continue
		}
		out[k] = smpMerge(t, append(path, k), out[k], v)
	}
	return out
}

func mergeList(t *testing.T, path []string, field string, base any, patch []any) []any {
	t.Helper()
	key := mergeKeys[field]
	bl, _ := base.([]any)
	if key == "" || len(patch) == 0 {
		return patch
	}
	if _, isMap := patch[0].(obj); !isMap {
		return patch
	}
	out := append([]any(nil), bl...)
	for _, pe := range patch {
		pm := pe.(obj)
		id, ok := pm[key]
		if !ok {
			t.Fatalf("%s: list element without its merge key %q", strings.Join(path, "."), key)
		}
		merged := false
		for i, be := range out {
			if bm, ok := be.(obj); ok && fmt.Sprint(bm[key]) == fmt.Sprint(id) {
				out[i] = smpMerge(t, append(path, fmt.Sprint(id)), bm, pm)
				merged = true
			}
		}
		if !merged {
			out = append(out, pm)
		}
	}
	return out
}

// setImages implements an images entry: name → newName, newTag, digest.
func setImages(t *testing.T, dir string, im obj, acc []obj) {
	t.Helper()
	for f := range im {
		switch f {
		case "name", "newName", "newTag", "digest":
		default:
			t.Fatalf("%s: images: field %q is not implemented by deploy/kustomize_test.go", dir, f)
		}
	}
	name := getString(im, "name")
	for _, o := range acc {
		for _, c := range podContainers(o) {
			img := getString(c, "image")
			repo, tag := splitImage(img)
			if repo != name {
				continue
			}
			if n := getString(im, "newName"); n != "" {
				repo = n
			}
			switch {
			case getString(im, "digest") != "":
				tag = "@" + getString(im, "digest")
			case getString(im, "newTag") != "":
				tag = ":" + getString(im, "newTag")
			}
			c["image"] = repo + tag
		}
	}
}

// splitImage splits "repo:tag" or "repo@digest" into repo and the rest
// (with its ':' or '@').
func splitImage(img string) (repo, rest string) {
	if i := strings.Index(img, "@"); i >= 0 {
		return img[:i], img[i:]
	}
	if i := strings.LastIndex(img, ":"); i > strings.LastIndex(img, "/") {
		return img[:i], img[i:]
	}
	return img, ""
}

// podSpec returns the pod template spec of a workload, or nil.
func podSpec(o obj) obj {
	switch getString(o, "kind") {
	case "StatefulSet", "Deployment", "DaemonSet", "ReplicaSet", "Job":
		return getMap(o, "spec", "template", "spec")
	case "Pod":
		return getMap(o, "spec")
	}
	return nil
}

// podContainers lists the init and app containers of a workload.
func podContainers(o obj) []obj {
	spec := podSpec(o)
	var out []obj
	for _, f := range []string{"initContainers", "containers"} {
		for _, c := range getList(spec, f) {
			if m, ok := c.(obj); ok {
				out = append(out, m)
			}
		}
	}
	return out
}

// kinds summarises rendered objects for error messages.
func kinds(objs []obj) string {
	var s []string
	for _, o := range objs {
		s = append(s, getString(o, "kind")+"/"+getString(o, "metadata", "name"))
	}
	sort.Strings(s)
	return strings.Join(s, ", ")
}

// TestStrategicMergePatch pins the renderer's merge rules to what
// kustomize does with them.
func TestStrategicMergePatch(t *testing.T) {
	var base, patch obj
	if err := yaml.Unmarshal([]byte(`
spec:
  replicas: 3
  template:
    spec:
      containers:
        - name: app
          image: x
          env: [{name: A, value: "1"}, {name: B, value: "2"}]
          args: [a, b]
          volumeMounts: [{name: v, mountPath: /v}]
`), &base); err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal([]byte(`
spec:
  replicas: 5
  template:
    spec:
      containers:
        - name: app
          env: [{name: B, value: "9"}, {name: C, value: "3"}]
          args: [c]
          volumeMounts: [{name: w, mountPath: /v}]
        - name: sidecar
          image: y
`), &patch); err != nil {
		t.Fatal(err)
	}
	got := smpMerge(t, nil, base, patch).(obj)
	if r, _ := getInt(got, "spec", "replicas"); r != 5 {
		t.Errorf("replicas %d, want 5", r)
	}
	cs := getList(got, "spec", "template", "spec", "containers")
	if len(cs) != 2 {
		t.Fatalf("containers %v, want app and sidecar", cs)
	}
	app := byName(cs, "app")
	if getString(app, "image") != "x" {
		t.Errorf("image %q, want the base's x kept", getString(app, "image"))
	}
	env := getList(app, "env")
	if len(env) != 3 || getString(byName(env, "A"), "value") != "1" || getString(byName(env, "B"), "value") != "9" || getString(byName(env, "C"), "value") != "3" {
		t.Errorf("env %v, want A=1 B=9 C=3", env)
	}
	if args := toStrings(getList(app, "args")); strings.Join(args, ",") != "c" {
		t.Errorf("args %v, want the patch's list (scalar lists are replaced)", args)
	}
	if vm := getList(app, "volumeMounts"); len(vm) != 1 || getString(vm[0], "name") != "w" {
		t.Errorf("volumeMounts %v, want one merged on mountPath /v", vm)
	}
}
