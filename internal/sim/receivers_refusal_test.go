package sim

import (
	"encoding/json"
	"strings"
	"testing"
)

// Removing the app's role on the DCRs makes Logs Ingestion refuse every
// upload with the documented 403 OperationFailed, one record or many, and
// granting it back restores service; only accepted records are counted.
func TestIngestionRoleSwitch(t *testing.T) {
	e := newTLSEnv(t, nil)
	c := e.ten.Credentials()
	in := e.ten.Info(e.srv).Sentinel
	tok := e.token(c.ClientID, c.ClientSecret, in.Scope)
	u := in.Endpoint + "/dataCollectionRules/" + in.DCRImmutableID + "/streams/Custom-MdeMachineActions?api-version=2023-01-01"
	hdr := map[string]string{"Content-Type": "application/json", "Authorization": "Bearer " + tok}

	e.ten.SetIngestionRole(false)
	for _, body := range []string{"[" + rec("one") + "]", "[" + rec("m1") + "," + rec("m2") + "]"} {
		r := e.send("POST", u, []byte(body), hdr)
		if r.status != 403 || r.header.Get("x-ms-error-code") != "OperationFailed" {
			t.Fatalf("without the role: %d %s, want 403 OperationFailed", r.status, r.body)
		}
		var env struct {
			Error struct{ Code, Message string }
		}
		r.json(t, &env)
		for _, want := range []string{
			"The authentication token provided does not have access to ingest data for the data collection rule with immutable Id '" + in.DCRImmutableID + "'",
			"IsRbacPresent: False", "Required authorization action was not found for tenantId " + c.TenantID,
		} {
			if env.Error.Code != "OperationFailed" || !strings.Contains(env.Error.Message, want) {
				t.Errorf("403 body %+v lacks %q", env.Error, want)
			}
		}
	}
	// A token is still issued: the role is on the DCR, not in Entra.
	if tok2 := e.token(c.ClientID, c.ClientSecret, in.Scope); tok2 == "" {
		t.Fatal("no token while the role is removed")
	}
	if st := e.ten.Received(ReceiverSentinel); st.Records != 0 || st.Rejected[403] != 2 {
		t.Fatalf("while refused: %d records accepted, rejections %v", st.Records, st.Rejected)
	}

	e.ten.SetIngestionRole(true)
	if r := e.send("POST", u, []byte("["+rec("one")+","+rec("m1")+"]"), hdr); r.status != 204 {
		t.Fatalf("role granted again: %d %s", r.status, r.body)
	}
	st := e.ten.Received(ReceiverSentinel)
	if ids := st.IDs(); st.Records != 2 || ids["one"] != 1 || ids["m1"] != 1 || ids["m2"] != 0 {
		t.Fatalf("after the grant: %+v ids %v", st, ids)
	}
}

// HEC's runtime switches answer as Splunk does (docs/REFERENCE.md §6.2, §6.3): a
// disabled token 403 code 1; an index taken off the allowed list 400 code
// 7 for the first event naming it; chosen events 400 code 6 "Invalid data
// format" — both with invalid-event-number, the events before it indexed.
// Switching back restores service.
func TestHECRuntimeSwitches(t *testing.T) {
	e := newTLSEnv(t, nil)
	c := e.ten.Credentials()
	u := "https://" + hecHost + "/services/collector/event"
	auth := map[string]string{"Authorization": "Splunk " + c.HECToken}
	ev := func(id, index string) string {
		return `{"event":{"RecordId":"` + id + `"},"sourcetype":"T","index":"` + index + `"}`
	}
	type answer struct {
		Text string `json:"text"`
		Code int    `json:"code"`
		N    *int   `json:"invalid-event-number"`
	}
	post := func(body string) (int, answer) {
		t.Helper()
		r := e.send("POST", u, []byte(body), auth)
		var a answer
		if err := json.Unmarshal(r.body, &a); err != nil {
			t.Fatalf("answer %q is not HEC JSON", r.body)
		}
		return r.status, a
	}
	steps := []struct {
		name   string
		do     func() error
		body   string
		status int
		code   int
		n      int // invalid-event-number; -1 none
	}{
		{"token disabled", func() error { return e.ten.SetHECTokenDisabled(c.HECToken, true) }, ev("d1", "defender"), 403, 1, -1},
		{"token enabled again", func() error { return e.ten.SetHECTokenDisabled(c.HECToken, false) }, ev("d2", "defender"), 200, 0, -1},
		{"index no longer allowed", func() error { return e.ten.SetHECIndexAllowed("defender", false) },
			ev("i1", "main") + ev("i2", "defender") + ev("i3", "main"), 400, 7, 1},
		{"index allowed again", func() error { return e.ten.SetHECIndexAllowed("defender", true) }, ev("i4", "defender"), 200, 0, -1},
		{"chosen events invalid", func() error { e.ten.SetHECInvalidEvents("v2"); return nil },
			ev("v1", "main") + ev("v2", "main") + ev("v3", "main"), 400, 6, 1},
		{"the events after it are accepted when sent alone", nil, ev("v3", "main"), 200, 0, -1},
		{"list cleared", func() error { e.ten.SetHECInvalidEvents(); return nil }, ev("v2", "main"), 200, 0, -1},
	}
	for _, s := range steps {
		if s.do != nil {
			if err := s.do(); err != nil {
				t.Fatalf("%s: %v", s.name, err)
			}
		}
		status, a := post(s.body)
		if status != s.status || a.Code != s.code || a.Text == "" {
			t.Fatalf("%s: %d %+v, want %d code %d", s.name, status, a, s.status, s.code)
		}
		if (a.N != nil) != (s.n >= 0) || (a.N != nil && *a.N != s.n) {
			t.Fatalf("%s: invalid-event-number %v, want %d", s.name, a.N, s.n)
		}
	}
	st := e.ten.Received(ReceiverSplunk)
	ids := st.IDs()
	for id, want := range map[string]int{"d1": 0, "d2": 1, "i1": 1, "i2": 0, "i3": 0, "i4": 1, "v1": 1, "v2": 1, "v3": 1} {
		if ids[id] != want {
			t.Errorf("record %s accepted %d times, want %d (all: %v)", id, ids[id], want, ids)
		}
	}
	if err := e.ten.SetHECTokenDisabled("00000000-0000-0000-0000-000000000000", true); err == nil {
		t.Error("disabling an unknown token was accepted silently")
	}
	if err := e.ten.SetHECIndexAllowed("nosuch", false); err == nil {
		t.Error("refusing an unconfigured index was accepted silently")
	}
}
