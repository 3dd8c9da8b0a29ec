package featuresettings

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/defenderharvester/defenderharvester/internal/mde"
	"github.com/defenderharvester/defenderharvester/internal/source"
	"github.com/defenderharvester/defenderharvester/internal/source/srcutil/srctest"
)

const adv = `{"EnableWdavPassiveModeRemediation":false,"EnableWdavAuditMode":false,"MagellanOptOut":false,"BlockListEnabled":true,"EnableWdavAntiTampering":true,"AllowWdavNetworkBlock":true,"MobileDeactivationPeriodInDays":null}`
const lr = `{"AutomatedIrLiveResponse":true,"AutomatedIrUnsignedScripts":true,"LiveResponseForServers":true}`

func TestSnapshot(t *testing.T) {
	tests := []struct {
		name      string
		adv, lr   string
		advStatus int
		lrStatus  int
		wantKeys  []string // emitted
		wantErr   string   // "" : success
		wantIs    error
		partial   []string // parts a *source.PartialError must name
	}{
		{name: "both", adv: adv, lr: lr, wantKeys: []string{KeyAdvancedFeatures, KeyLiveResponse}},
		{name: "advanced features not an object", adv: `[true]`, lr: lr, wantKeys: []string{KeyLiveResponse},
			wantErr: "featuresettings AdvancedFeatures: cannot read the response: it is a JSON array of 1 (boolean); expected a JSON object of settings", partial: []string{KeyAdvancedFeatures}},
		{name: "live response scalar", adv: adv, lr: `true`, wantKeys: []string{KeyAdvancedFeatures},
			wantErr: "featuresettings LiveResponse: cannot read the response: it is a JSON boolean", partial: []string{KeyLiveResponse}},
		{name: "live response forbidden", adv: adv, lr: `{}`, lrStatus: 403, wantKeys: []string{KeyAdvancedFeatures},
			wantIs: mde.ErrForbidden, wantErr: "LiveResponse", partial: []string{KeyLiveResponse}},
		{name: "advanced features server error", adv: `{}`, advStatus: 400, lr: lr, wantKeys: []string{KeyLiveResponse},
			wantErr: "AdvancedFeatures", partial: []string{KeyAdvancedFeatures}},
		{name: "both fail", adv: `7`, lr: `{}`, lrStatus: 403, wantErr: "AdvancedFeatures", wantIs: mde.ErrForbidden},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				switch r.URL.Path {
				case AdvancedFeaturesPath:
					if tt.advStatus != 0 {
						w.WriteHeader(tt.advStatus)
					}
					w.Write([]byte(tt.adv))
				case LiveResponsePath:
					if q := r.URL.Query(); q.Get("useV2Api") != "true" || q.Get("useV3Api") != "true" {
						t.Errorf("live response query = %v", q)
					}
					if tt.lrStatus != 0 {
						w.WriteHeader(tt.lrStatus)
					}
					w.Write([]byte(tt.lr))
				default:
					t.Errorf("unexpected path %s", r.URL.Path)
					http.NotFound(w, r)
				}
			})
			s := srctest.Build(t, Name, source.Deps{Portal: srctest.Portal(t, h)}, nil).(source.SnapshotSource)
			var c srctest.Collector
			err := s.Snapshot(context.Background(), c.Emit)
			if got := strings.Join(c.Keys(), ","); got != strings.Join(tt.wantKeys, ",") {
				t.Errorf("emitted %q, want %q", got, tt.wantKeys)
			}
			for _, it := range c.Items {
				if want := map[string]string{KeyAdvancedFeatures: tt.adv, KeyLiveResponse: tt.lr}[it.Key]; string(it.Raw) != want {
					t.Errorf("%s: raw JSON changed", it.Key)
				}
			}
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want it to mention %q", err, tt.wantErr)
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("err = %v, want errors.Is %v", err, tt.wantIs)
			}
			var pe *source.PartialError
			isPartial := errors.As(err, &pe)
			if tt.partial == nil {
				if isPartial {
					t.Errorf("nothing was read, yet the error is partial: %v", err)
				}
				return
			}
			if !isPartial {
				t.Fatalf("err %T %v: want *source.PartialError so the other part's item is kept, not Removed", err, err)
			}
			if strings.Join(pe.Failed, ",") != strings.Join(tt.partial, ",") || pe.NotServed {
				t.Errorf("PartialError %+v, want Failed %v and NotServed false", pe, tt.partial)
			}
		})
	}
}

func TestNeedsPortal(t *testing.T) {
	f, _ := source.Lookup(Name)
	if _, err := f.New(source.Deps{}, nil); err == nil || !strings.Contains(err.Error(), "portal session") {
		t.Errorf("err = %v", err)
	}
}

func FuzzDecode(f *testing.F) {
	for _, s := range []string{adv, lr, `[]`, `null`, `{"a":`, `"x"`, `<html>`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		it, err := Decode(KeyLiveResponse, b)
		if err == nil && (it.Key != KeyLiveResponse || string(it.Raw) != string(b)) {
			t.Fatalf("item %+v", it)
		}
		if err != nil && !strings.HasPrefix(err.Error(), "featuresettings LiveResponse: cannot read the response: ") {
			t.Fatalf("err = %v", err)
		}
	})
}
