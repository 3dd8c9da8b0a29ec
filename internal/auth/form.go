package auth

import (
	"bytes"
	"net/url"
	"strings"

	"golang.org/x/net/html"
)

// htmlForm is one <form> of a sign-in page with its hidden inputs.
type htmlForm struct {
	Action string
	Method string // upper-case; "" means GET
	Fields url.Values
}

// Has reports whether the form carries a non-empty field name.
func (f htmlForm) Has(name string) bool { return f.Fields.Get(name) != "" }

// maxForms and maxFields bound what a hostile page can make us allocate.
const (
	maxForms  = 32
	maxFields = 256
)

// parseForms extracts the forms of an HTML page and their hidden (and
// other named) inputs, as Entra's auto-submit pages carry them. Inputs
// outside any form are ignored. It never fails: a broken page yields
// whatever forms could be read.
func parseForms(page []byte) []htmlForm {
	z := html.NewTokenizer(bytes.NewReader(page))
	var forms []htmlForm
	cur := -1
	fields := 0
	for {
		switch z.Next() {
		case html.ErrorToken:
			return forms
		case html.StartTagToken, html.SelfClosingTagToken:
			name, hasAttr := z.TagName()
			switch string(name) {
			case "form":
				if len(forms) >= maxForms {
					cur = -1
					continue
				}
				f := htmlForm{Fields: url.Values{}}
				for hasAttr {
					var k, v []byte
					k, v, hasAttr = z.TagAttr()
					switch string(k) {
					case "action":
						f.Action = strings.TrimSpace(string(v))
					case "method":
						f.Method = strings.ToUpper(strings.TrimSpace(string(v)))
					}
				}
				forms = append(forms, f)
				cur = len(forms) - 1
			case "input":
				if cur < 0 || fields >= maxFields {
					continue
				}
				var n, v string
				var hasName bool
				for hasAttr {
					var k, val []byte
					k, val, hasAttr = z.TagAttr()
					switch string(k) {
					case "name":
						n, hasName = string(val), true
					case "value":
						v = string(val)
					}
				}
				if hasName && n != "" {
					forms[cur].Fields.Add(n, v)
					fields++
				}
			}
		case html.EndTagToken:
			if name, _ := z.TagName(); string(name) == "form" {
				cur = -1
			}
		}
	}
}
