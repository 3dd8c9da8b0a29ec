package featuresettings

import (
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
		name     string
		adv, lr  string
		lrStatus int
		wantKeys []string
		wantErr  string
		wantIs   error
	}{
		{name: "both", adv: adv, lr: lr, wantKeys: []string{KeyAdvancedFeatures, KeyLiveResponse}},
		{name: "advanced features not an object", adv: `[true]`, lr: lr, wantErr: "featuresettings AdvancedFeatures: expected a JSON object"},
		{name: "live response scalar", adv: adv, lr: `true`, wantErr: "featuresettings LiveResponse: expected a JSON object"},
		{name: "live response forbidden", adv: adv, lr: `{}`, lrStatus: 403, wantIs: mde.ErrForbidden, wantErr: "LiveResponse"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				switch r.URL.Path {
				case AdvancedFeaturesPath:
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
			items, ok := srctest.CheckSnapshot(t, s, tt.wantErr, tt.wantIs)
			if !ok {
				return
			}
			if got := srctest.Keys(items); strings.Join(got, ",") != strings.Join(tt.wantKeys, ",") {
				t.Fatalf("keys = %v", got)
			}
			if string(items[0].Raw) != tt.adv || string(items[1].Raw) != tt.lr {
				t.Error("raw JSON changed")
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
	for _, s := range []string{adv, lr, `[]`, `null`, `{"a":`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		it, err := Decode(KeyLiveResponse, b)
		if err == nil && (it.Key != KeyLiveResponse || string(it.Raw) != string(b)) {
			t.Fatalf("item %+v", it)
		}
	})
}
