package e2e

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/defenderharvester/defenderharvester/internal/sim"
)

// auditTables maps content types to the tables the auditlog source
// writes (docs/sources.md).
var auditTables = map[string]string{
	sim.AuditContentAAD:        "O365AuditAzureActiveDirectory",
	sim.AuditContentExchange:   "O365AuditExchange",
	sim.AuditContentSharePoint: "O365AuditSharePoint",
	sim.AuditContentGeneral:    "O365AuditGeneral",
	sim.AuditContentDLP:        "O365DLPAll",
}

// TestAuditLogDeliversEverySeededRecordOnce polls the emulated Management
// Activity API — built apart from the harvester's client, from the
// reference — for four days of every content type, into files, Sentinel
// and Splunk: every audit record the emulator published in that range
// arrives once in its content type's table (a blob published again days
// later adds nothing), the Defender for Endpoint response actions once
// more in MdeAuditResponseActions, and each receiver holds each record
// once.
func TestAuditLogDeliversEverySeededRecordOnce(t *testing.T) {
	frozen := time.Now().Add(-time.Hour).Truncate(time.Second)
	f := newFixture(t, sim.Options{Seed: 21, Now: func() time.Time { return frozen }, History: 9 * 24 * time.Hour,
		AuditRecordsPerHour: 20, AuditWebhookPoll: -1})
	// Four days: a blob is published again 49–72 hours after the first time.
	since := frozen.Add(-96 * time.Hour)
	cfg := f.writeConfig("audit", "")
	code, out, errs := f.child(cfg, 0, "--sources", "auditlog", "--since", since.UTC().Format(time.RFC3339),
		"--outputs", "files,sentinel,splunk")
	if code != 0 {
		t.Fatalf("run exit %d\n%s\n%s", code, out, errs)
	}

	// The emulator's ground truth: record ids per content type, and the
	// Defender response actions among them, published by the emulator's
	// frozen now (created at or before it).
	want, defender, redelivered := auditTruth(t, f, since, frozen.Add(time.Nanosecond))
	if redelivered == 0 || len(defender) == 0 {
		t.Fatalf("the emulated range holds %d re-published records and %d Defender records: the test needs both", redelivered, len(defender))
	}

	assertAuditOnce(t, f, filepath.Join(f.dir, "audit-out"), want, defender)
	if !strings.Contains(out, "5/5 parts ok") {
		t.Errorf("the summary does not report the five content types read:\n%s", out)
	}
}

// assertAuditOnce checks that the files output in dir, Sentinel and
// Splunk hold every record of want once in its content type's table and
// nothing else, and the Defender response actions among them once more in
// MdeAuditResponseActions.
func assertAuditOnce(t *testing.T, f *fixture, dir string, want map[string]map[string]bool, defender map[string]bool) {
	t.Helper()
	lines := readOutput(t, dir)
	got := map[string]map[string]int{}
	for _, l := range lines {
		id, _ := l.raw["Id"].(string)
		if got[l.Table] == nil {
			got[l.Table] = map[string]int{}
		}
		got[l.Table][id]++
	}
	for table, ids := range want {
		for id := range ids {
			if n := got[table][id]; n != 1 {
				t.Fatalf("%s: record %s delivered %d times, want once", table, id, n)
			}
		}
		if len(got[table]) != len(ids) {
			t.Errorf("%s holds %d records, the emulator published %d in the range", table, len(got[table]), len(ids))
		}
	}
	mde := got["MdeAuditResponseActions"]
	for id, n := range mde {
		if !defender[id] || n != 1 {
			t.Fatalf("MdeAuditResponseActions holds record %s %d times (a Defender for Endpoint record: %v), want once and only Defender records", id, n, defender[id])
		}
	}
	if len(mde) == 0 || len(mde) > len(defender) {
		t.Errorf("MdeAuditResponseActions holds %d records of %d Defender records", len(mde), len(defender))
	}
	total := len(mde)
	for _, ids := range want {
		total += len(ids)
	}
	if len(lines) != total {
		t.Errorf("files hold %d lines, want %d (each record once, the response actions twice)", len(lines), total)
	}
	for _, r := range []string{sim.ReceiverSentinel, sim.ReceiverSplunk} {
		st := f.tenant.Received(r)
		if st.Duplicates != 0 || st.Unique != total {
			t.Errorf("%s received %d unique records with %d duplicates; want %d once each", r, st.Unique, st.Duplicates, total)
		}
	}
}
