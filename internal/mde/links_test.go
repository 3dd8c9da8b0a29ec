package mde

import (
	"net/url"
	"strings"
	"testing"
	"time"
)

func TestValidateRelativeLink(t *testing.T) {
	const prefix = "/machines/abc/events"
	ok := []string{
		"/machines/abc/events/?machineId=abc&fromDate=2026-01-01T00%3A00%3A00.0000000Z&toDate=x&ReportIdForScrolling=5&IsScrollingForward=false",
		"/machines/abc/events",
	}
	for _, l := range ok {
		u, err := ValidateRelativeLink(l, prefix)
		if err != nil {
			t.Errorf("ValidateRelativeLink(%q): %v", l, err)
			continue
		}
		if !strings.HasPrefix(u.Path, prefix) || u.Host != "" {
			t.Errorf("ValidateRelativeLink(%q) = %v", l, u)
		}
	}
	bad := map[string]string{
		"": "empty",
		"https://evil.example/machines/abc/events/": "not a path",
		"//evil.example/machines/abc/events/":       "not a path",
		"machines/abc/events/":                      "not a path",
		"/machines/other/events/?x=1":               "not under",
		"/machines/abc/events/../../x":              "dot segments",
		"/machines/abc/events/%2e%2e/x":             "dot",
		"/machines/abc/events/#frag":                "fragment",
		"/machines/abc/events/\\x":                  "backslash",
		"/machines/abc/events/?a=%zz":               "malformed",
		"/machines/abc/events\r\nHost: x":           "control",
	}
	for l, why := range bad {
		if _, err := ValidateRelativeLink(l, prefix); err == nil || !strings.Contains(err.Error(), why) {
			t.Errorf("ValidateRelativeLink(%q) err = %v, want %q", l, err, why)
		}
	}
}

func TestValidateNextLink(t *testing.T) {
	base, _ := url.Parse("https://api.security.microsoft.com")
	ok := []string{
		"https://api.security.microsoft.com/api/machineactions?$filter=creationDateTimeUtc+ge+2024-01-01T00%3a00%3a00Z&$skip=10000",
		"https://API.security.microsoft.com/api/libraryfiles?$skip=1",
	}
	for _, l := range ok {
		if _, err := validateNextLink(l, base); err != nil {
			t.Errorf("validateNextLink(%q): %v", l, err)
		}
	}
	bad := map[string]string{
		"http://api.security.microsoft.com/api/machineactions?$skip=1": "https",
		"/api/machineactions?$skip=1":                                  "https",
		"https://evil.example/api/machineactions?token=SECRET":         "not the API host",
		"https://user:pw@api.security.microsoft.com/api/x":             "user info",
		"https://api.security.microsoft.com/other/x?token=SECRET":      "not under /api/",
		"https://api.security.microsoft.com/api/x#f":                   "fragment",
		"https://api.security.microsoft.com/api/../admin?token=SECRET": "dot segments",
		"https://api.security.microsoft.com/api/%2e%2e/admin":          "dot",
		"https://api.security.microsoft.com:8443/api/x":                "not the API host",
	}
	for l, why := range bad {
		_, err := validateNextLink(l, base)
		if err == nil || !strings.Contains(err.Error(), why) {
			t.Errorf("validateNextLink(%q) err = %v, want %q", l, err, why)
			continue
		}
		if strings.Contains(err.Error(), "SECRET") {
			t.Errorf("error prints the query: %v", err)
		}
	}
}

func TestParseTime(t *testing.T) {
	want := time.Date(2026, 4, 25, 21, 13, 34, 46724700, time.UTC)
	tests := []struct {
		in   string
		want time.Time
	}{
		{"2026-04-25T21:13:34.0467247", want},
		{"2026-04-25T21:13:34.0467247Z", want},
		{"2026-04-25T23:13:34.0467247+02:00", want},
		{"2026-04-25 21:13:34.0467247", want},
		{"2026-04-25T21:13:34Z", want.Truncate(time.Second)},
		{"2026-04-25T21:13:34", want.Truncate(time.Second)},
		{"2026-04-25T21:13:34.046z", want.Truncate(time.Millisecond)},
	}
	for _, tt := range tests {
		got, err := ParseTime(tt.in)
		if err != nil || !got.Equal(tt.want) || got.Location() != time.UTC {
			t.Errorf("ParseTime(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
	for _, in := range []string{"", "yesterday", "2026-13-01T00:00:00Z", "2026-04-25", "0001-01-01T00:00:00Z", "2026-04-25T21:13:34.0467247 PST"} {
		if _, err := ParseTime(in); err == nil {
			t.Errorf("ParseTime(%q) accepted", in)
		}
	}
}

func TestFormatTimes(t *testing.T) {
	tm := time.Date(2026, 1, 2, 3, 4, 5, 123456789, time.FixedZone("x", 3600))
	if got := FormatPortalTime(tm); got != "2026-01-02T02:04:05.123Z" {
		t.Errorf("FormatPortalTime = %s", got)
	}
	if got := FormatPortalTimeCeil(tm); got != "2026-01-02T02:04:05.124Z" {
		t.Errorf("FormatPortalTimeCeil = %s", got)
	}
	if got := FormatPortalTimeCeil(tm.Truncate(time.Second)); got != "2026-01-02T02:04:05.000Z" {
		t.Errorf("FormatPortalTimeCeil exact = %s", got)
	}
	if got := FormatTimelineTime(tm); got != "2026-01-02T02:04:05.1234567Z" {
		t.Errorf("FormatTimelineTime = %s", got)
	}
}

func FuzzValidateRelativeLink(f *testing.F) {
	for _, s := range []string{"/machines/a/events/?x=1", "//x", "/machines/a/events/%2e%2e", "https://x/machines/a/events", "/machines/a/events/../b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, link string) {
		u, err := ValidateRelativeLink(link, "/machines/a/events")
		if err != nil {
			return
		}
		if u.Host != "" || u.Scheme != "" || u.User != nil || !strings.HasPrefix(u.Path, "/machines/a/events") {
			t.Fatalf("accepted unsafe link %q → %#v", link, u)
		}
		for _, seg := range strings.Split(u.Path, "/") {
			if seg == ".." {
				t.Fatalf("accepted dot segment in %q", link)
			}
		}
	})
}

func FuzzValidateNextLink(f *testing.F) {
	for _, s := range []string{"https://api.security.microsoft.com/api/x?$skip=1", "https://evil/api/x", "https://a@api.security.microsoft.com/api/x", "https://api.security.microsoft.com/api/../x"} {
		f.Add(s)
	}
	base, _ := url.Parse("https://api.security.microsoft.com")
	f.Fuzz(func(t *testing.T, link string) {
		u, err := validateNextLink(link, base)
		if err != nil {
			return
		}
		if u.Scheme != "https" || !strings.EqualFold(u.Host, base.Host) || u.User != nil || !strings.HasPrefix(u.Path, "/api/") || !publicHost(u) {
			t.Fatalf("accepted unsafe link %q → %#v", link, u)
		}
	})
}

func FuzzParseErrorEnvelope(f *testing.F) {
	for _, s := range []string{`{"error":{"code":"ResourceNotFound","message":"Machine 1 was not found","target":"43f4"}}`, `{"error":null}`, `{"error":{"code":5}}`, `[]`, `{"error":{"message":"a\u0000b"}}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		code, msg, target, ok := ParseErrorEnvelope(b)
		if !ok {
			if code != "" || msg != "" || target != "" {
				t.Fatal("values without ok")
			}
			return
		}
		if code == "" && msg == "" {
			t.Fatal("ok with neither code nor message")
		}
		for _, s := range []string{code, msg, target} {
			if strings.ContainsAny(s, "\r\n\x00") || len(s) > 504 {
				t.Fatalf("unsafe text %q", s)
			}
		}
	})
}

func FuzzParseTime(f *testing.F) {
	for _, s := range []string{"2026-04-25T21:13:34.0467247", "2026-04-25T21:13:34Z", "2026-04-25T21:13:34+02:00", "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tm, err := ParseTime(s)
		if err == nil && (tm.IsZero() || tm.Location() != time.UTC) {
			t.Fatalf("ParseTime(%q) = %v", s, tm)
		}
	})
}
