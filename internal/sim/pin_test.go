package sim

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"testing"
	"time"
)

// TestSingleTenantPinned pins what the default (one tenant) emulator
// serves for Seed 42, so that multi-tenant support cannot move a byte of
// it: the tenant id, the app's client id, the first device ids, the first
// record ids and digests of whole answers and ground truths.
func TestSingleTenantPinned(t *testing.T) {
	e := newEnv(t, nil)
	digest := func(b []byte) string {
		s := sha256.Sum256(b)
		return hex.EncodeToString(s[:8])
	}
	events := func(ds string, from, to time.Time) []json.RawMessage {
		out, err := e.ten.Events(ds, from, to)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	first := func(raw []json.RawMessage, key string) string {
		if len(raw) == 0 {
			t.Fatalf("no records for %s", key)
		}
		var m map[string]any
		if err := json.Unmarshal(raw[0], &m); err != nil {
			t.Fatal(err)
		}
		s, _ := m[key].(string)
		return s
	}
	joined := func(raw []json.RawMessage) []byte {
		b, _ := json.Marshal(raw)
		return b
	}
	from, to := testStart.Add(-48*time.Hour), testStart.Add(12*time.Hour)
	ac := events("actioncenter", from, to)
	ma := events("machineactions", from, to)
	eq := events("executedqueries", from, to)
	mids := e.ten.MachineIDs()
	tl := events("timeline:"+mids[0], testStart.Add(-2*time.Hour), testStart)
	got := map[string]string{
		"tenant":      e.ten.TenantID(),
		"client":      e.ten.Credentials().ClientID,
		"restricted":  e.ten.Credentials().RestrictedClientID,
		"user":        e.ten.Credentials().UserUPN,
		"machine0":    mids[0],
		"machine1":    mids[1],
		"ac0":         first(ac, "ActionId"),
		"ma0":         first(ma, "id"),
		"eq0":         first(eq, "QueryId"),
		"ac":          digest(joined(ac)),
		"ma":          digest(joined(ma)),
		"eq":          digest(joined(eq)),
		"tl":          digest(joined(tl)),
		"rules":       digest(e.portal("GET", "/apiproxy/mtp/huntingService/rules/unified?pageSize=10000", nil).body),
		"machines":    digest(e.portal("GET", "/apiproxy/mtp/ndr/machines?pageSize=100", nil).body),
		"suppression": digest(e.portal("GET", "/apiproxy/mtp/suppressionRulesService/suppressionRules", nil).body),
		"alerts":      digest(e.portal("POST", "/apiproxy/mtp/alertsApiService/alerts", []byte(`{"daysAgo":"2","pageSize":50}`)).body),
		"apps":        digest(e.portal("GET", "/apiproxy/mtp/responseApiPortal/apps/all", nil).body),
		"public":      digest(e.public("/api/machineactions", e.publicToken()).body),
		"dcr":         e.ten.Info(nil).Sentinel.DCRImmutableID,
	}
	want := map[string]string{
		"tenant":     "f6e8d142-e7af-43b8-8cfd-dc40cfc557df",
		"client":     "56ca43eb-8307-48da-a579-971bf9b72a7d",
		"restricted": "69d53540-9777-4b4e-8b47-8890cf8450eb",
		"user":       "adele.langer@tailspin.com",
		"machine0":   "6dc1641030264add0a64dc659a485dcf822e2749",
		"machine1":   "e70e805f36e3801b5ebd230f8548f5b516745308",
		"ac0":        "0c3f3b52-e190-48d2-bec9-38c294860571",
		"ma0":        "0c3f3b52-e190-48d2-bec9-38c294860571",
		"eq0":        "7b4a80a7-4451-4998-977c-09dc5c2f4e6e",
		"ac":         "ee3999d52ad43020",
		"ma":         "f11104f1389346d4",
		"eq":         "5ab832822a15e8f3",
		"tl":         "1e792c046993109e",
		"rules":      "89a43591d9d6fe93",
		// The device list carries RbacGroupId/RbacGroupName since the
		// timeline's machine_groups selector (was 02730b3ab82f68b6).
		"machines":    "99fadad3a45f0c13",
		"alerts":      "f95e8b0dc90a63fa",
		"suppression": "3017882716a717f7",
		"apps":        "9584ab3aa52c7ee7",
		"public":      "6bb3e28a3cadf6c3",
		"dcr":         "dcr-90c0fac971051356d73eb8cd9b81129b",
	}
	for k, v := range got {
		if want[k] != v {
			t.Errorf("%s = %q, want %q", k, v, want[k])
		}
	}
}
