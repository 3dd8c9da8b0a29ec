package mde

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"testing"

	"github.com/defenderharvester/defenderharvester/internal/auth"
)

// doers builds one client per API family against h, so the allow-list and
// redirect rules can be checked on all three alike.
func doers(t *testing.T, h http.Handler) map[string]*doer {
	t.Helper()
	p, _ := newTestPortal(t, h, nil)
	pub, _ := newTestPublic(t, h, nil)
	leg := newTestLegacy(t, "weu", h)
	return map[string]*doer{"portal": p.d, "public": pub.d, "legacy": leg.d}
}

func TestForeignHostsNeverGetCredentials(t *testing.T) {
	rc := &recorder{}
	ds := doers(t, rc)
	foreign := map[string][]string{
		"portal": {
			"https://evil.example/apiproxy/x",
			"https://security.microsoft.com.evil.example/apiproxy/x",
			"https://security.microsoft.com:8443/apiproxy/x",
			"http://security.microsoft.com/apiproxy/x",
			"https://u:p@security.microsoft.com/apiproxy/x",
			"https://login.microsoftonline.com/x",
			"https://wdatpprd-weu.securitycenter.windows.com/api/x",
			"https://api.security.microsoft.com/api/x",
		},
		"public": {
			"https://evil.example/api/x",
			"https://security.microsoft.com/api/x",
			"https://wdatpprd-weu.securitycenter.windows.com/api/x",
			"https://api-eu.securitycenter.windows.com:444/api/x",
		},
		"legacy": {
			"https://evil.example/api/x",
			"https://security.microsoft.com/apiproxy/x",
			"https://api.security.microsoft.com/api/x",
			// another region's host: not produced by the weu mapping
			"https://wdatpprd-eus.securitycenter.windows.com/api/x",
			"https://m365duseprd-eus.securitycenter.windows.com/api/x",
			"https://api-us.securitycenter.windows.com/api/x",
			"https://evil.securitycenter.windows.com/api/x",
			"http://wdatpprd-weu.securitycenter.windows.com/api/x",
			"https://wdatpprd-weu.securitycenter.windows.com:8443/api/x",
		},
	}
	for fam, links := range foreign {
		for _, link := range links {
			t.Run(fam+" "+link, func(t *testing.T) {
				u, _ := url.Parse(link)
				if _, err := ds[fam].do(context.Background(), http.MethodGet, u, nil); !errors.Is(err, ErrHostNotAllowed) {
					t.Errorf("err = %v, want ErrHostNotAllowed", err)
				}
			})
		}
	}
	if n := len(rc.all()); n != 0 {
		t.Errorf("%d refused requests reached a server: %+v", n, rc.all())
	}
}

func TestRedirectsAreNeverFollowed(t *testing.T) {
	// Each family's own host redirects to another path on an allowed host
	// of the same family; following it would resend the credentials.
	targets := map[string][2]string{ // family → request URL, redirect target
		"portal": {"https://security.microsoft.com/apiproxy/mtp/a", "https://security.microsoft.com/apiproxy/mtp/elsewhere"},
		"public": {"https://api.security.microsoft.com/api/a", "https://api.security.microsoft.com/api/elsewhere"},
		"legacy": {"https://wdatpprd-weu.securitycenter.windows.com/api/a", "https://wdatpprd-weu.securitycenter.windows.com/api/elsewhere"},
	}
	for _, code := range []int{301, 302, 303, 307, 308} {
		for fam, tg := range targets {
			t.Run(fam+" "+strconv.Itoa(code), func(t *testing.T) {
				rc := &recorder{h: func(w http.ResponseWriter, r *http.Request) bool {
					if r.URL.Path == "/apiproxy/mtp/a" || r.URL.Path == "/api/a" {
						w.Header().Set("Location", tg[1])
						w.WriteHeader(code)
						return true
					}
					return false
				}}
				d := doers(t, rc)[fam]
				u, _ := url.Parse(tg[0])
				_, err := d.do(context.Background(), http.MethodGet, u, nil)
				want := ErrRedirect
				if fam == "portal" {
					want = ErrSessionExpired // the portal's redirect means "signed out"
				}
				if !errors.Is(err, want) {
					t.Errorf("err = %v, want %v", err, want)
				}
				if got := rc.all(); len(got) != 1 {
					t.Errorf("%d requests (%+v); the redirect must not be followed", len(got), got)
				}
			})
		}
	}
}

func TestLegacyPublicHostsAccepted(t *testing.T) {
	for _, base := range []string{"https://api-eu.securitycenter.windows.com", "https://api-us.securitycenter.windows.com"} {
		rc := &recorder{}
		c, _ := newTestPublic(t, rc, func(o *PublicOptions) { o.BaseURL = base })
		if _, err := c.Get(context.Background(), "/api/machineactions", nil); err != nil {
			t.Fatalf("%s: %v", base, err)
		}
		if got := rc.all(); len(got) != 1 || "https://"+got[0].Host != base || got[0].Auth != "Bearer TOKENSECRET" {
			t.Errorf("%s: requests %+v", base, got)
		}
	}
	if _, err := NewPublicAPIClient(PublicOptions{BaseURL: "https://api-xx.securitycenter.windows.com", Tokens: auth.NewStaticToken("t")}); err == nil {
		t.Error("an unknown legacy public host was accepted")
	}
}
