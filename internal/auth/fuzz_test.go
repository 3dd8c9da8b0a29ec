package auth

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

func FuzzParseForms(f *testing.F) {
	f.Add([]byte(codeForm))
	f.Add([]byte(`<form action="https://x.access.mcas.ms/a"><input type=hidden name=id_token value=T></form><input name=orphan>`))
	f.Add([]byte(`<form><form><input name="a" value="1"/></form></form><input`))
	f.Fuzz(func(t *testing.T, page []byte) {
		forms := parseForms(page)
		if len(forms) > maxForms {
			t.Fatalf("%d forms, cap %d", len(forms), maxForms)
		}
		n := 0
		for _, fm := range forms {
			for k, v := range fm.Fields {
				if k == "" {
					t.Fatal("empty field name kept")
				}
				n += len(v)
			}
		}
		if n > maxFields {
			t.Fatalf("%d fields, cap %d", n, maxFields)
		}
	})
}

func FuzzParseSErrorCode(f *testing.F) {
	f.Add([]byte(`$Config={"sErrorCode":"50058","x":1}`))
	f.Add([]byte(`"sErrorCode" : 53003`))
	f.Add([]byte(`"sErrorCode":"99999999999999999999"`))
	f.Add([]byte(`"sErrorCode":""`))
	f.Fuzz(func(t *testing.T, page []byte) {
		code, ok := ParseSErrorCode(page)
		if ok != (code > 0) {
			t.Fatalf("ok=%v with code %d", ok, code)
		}
		if ok {
			se := &SignInError{Code: code, Hint: HintFor(code)}
			if !strings.Contains(se.Error(), "AADSTS") {
				t.Fatalf("error without code: %q", se.Error())
			}
		}
	})
}

func FuzzParseTokenResponse(f *testing.F) {
	f.Add(200, []byte(`{"access_token":"a","refresh_token":"r","expires_in":3599}`))
	f.Add(200, []byte(`{"access_token":"a","expires_in":"3599"}`))
	f.Add(400, []byte(`{"error":"invalid_grant","error_description":"AADSTS700082: expired","error_codes":[700082]}`))
	f.Add(500, []byte(`<html>`))
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		a, _, life, err := parseTokenResponse(status, body)
		if err == nil {
			if status != http.StatusOK || a == "" || life <= 0 || life > 48*time.Hour {
				t.Fatalf("accepted status %d token %q life %v", status, a, life)
			}
		}
	})
}
