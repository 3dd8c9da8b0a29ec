package auth

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// SignInError is a refusal by Microsoft Entra ID (an AADSTS code) turned
// into one sentence that says what to do. It never carries a secret.
type SignInError struct {
	Code    int    // AADSTS number, 0 when Entra gave none
	Message string // Entra's own description, trimmed; may be empty
	Hint    string // what the user should do
}

// Error is one actionable sentence.
func (e *SignInError) Error() string {
	if e == nil {
		return "auth: sign-in failed"
	}
	hint := e.Hint
	if hint == "" {
		hint = "read the Entra ID sign-in logs for this attempt and fix what they report"
	}
	if e.Code == 0 {
		return "auth: Entra ID refused the sign-in: " + hint
	}
	return fmt.Sprintf("auth: Entra ID refused the sign-in (AADSTS%d): %s", e.Code, hint)
}

// signInHints maps the AADSTS codes users meet most to what fixes them.
var signInHints = map[int]string{
	50058:   "the ESTS cookie no longer carries a usable session; sign in again in a private browser window and copy a fresh ESTSAUTHPERSISTENT cookie",
	50076:   "multi-factor authentication is required for this sign-in; exclude the harvester's account or app from the MFA policy, or sign in interactively (device code) to satisfy it",
	50079:   "the account must register for multi-factor authentication; finish MFA registration in a browser, then sign in again",
	53003:   "a Conditional Access policy blocked the sign-in; ask an Entra administrator to exclude the harvester's account or app, or run it from a location or device the policy allows",
	53000:   "Conditional Access requires a compliant or managed device, which the harvester cannot satisfy; ask an Entra administrator for an exclusion",
	700016:  "the application (client id) was not found in this tenant; check client_id and tenant_id, and grant admin consent in the tenant",
	90002:   "the tenant was not found; check tenant_id (a GUID or a verified domain name)",
	900023:  "the tenant id is not a valid GUID or domain name; check tenant_id",
	7000215: "the client secret is wrong; copy the secret's Value (not its ID) from the app registration, or create a new one",
	7000222: "the client secret has expired; create a new secret in the app registration and update the secret file",
	700082:  "the refresh token expired after inactivity; sign in again (login command) to get a new one",
	70043:   "the refresh token expired or was revoked by a Conditional Access sign-in frequency policy; sign in again",
	70000:   "the grant (refresh token or code) is invalid or was revoked; sign in again",
	50126:   "the user name or password is wrong; check the account's credentials",
	50053:   "the account is locked after too many failed sign-ins; wait, or ask an administrator to unlock it",
	50057:   "the account is disabled; ask an Entra administrator to enable it",
	50173:   "the grant expired because the user changed the password or sessions were revoked; sign in again",
	65001:   "the application has no consent for the requested permission; grant admin consent in the app registration",
	700024:  "the client assertion is not within its valid time range; check the system clock",
	700027:  "the client assertion signature is invalid; check that the certificate uploaded to the app registration matches the key file",
	7000112: "the application is disabled in this tenant; ask an Entra administrator to enable it",
	90072:   "the account does not exist in this tenant; sign in with a member account or invite it as a guest",
	500011:  "the resource (portal or API app) is not present in the tenant; check the tenant id and that Defender is provisioned",
}

// HintFor returns the hint for an AADSTS code, or "" when none is known.
func HintFor(code int) string { return signInHints[code] }

var (
	aadstsRe    = regexp.MustCompile(`AADSTS(\d{4,8})`)
	sErrorRe    = regexp.MustCompile(`"sErrorCode"\s*:\s*"?(\d{1,9})"?`)
	errCodesRe  = regexp.MustCompile(`"error_codes"\s*:\s*\[\s*(\d{1,9})`)
	descCleanRe = regexp.MustCompile(`\s*(Trace ID|Correlation ID|Timestamp):.*$`)
)

// ParseSErrorCode finds the AADSTS number a sign-in page reports in its
// embedded config ("sErrorCode":"50058"). ok is false when none is there.
func ParseSErrorCode(page []byte) (code int, ok bool) {
	m := sErrorRe.FindSubmatch(page)
	if m == nil {
		return 0, false
	}
	n, err := strconv.Atoi(string(m[1]))
	if err != nil || n <= 0 {
		return 0, false
	}
	return n, true
}

// signInErrorFromText builds a SignInError from any error text Entra or
// MSAL produced (AADSTS codes, error_codes arrays). It returns nil when the
// text names no code. The message is shortened to Entra's description; it
// never holds request secrets because Entra does not echo them.
func signInErrorFromText(s string) *SignInError {
	code := 0
	if m := aadstsRe.FindStringSubmatch(s); m != nil {
		code, _ = strconv.Atoi(m[1])
	} else if m := errCodesRe.FindStringSubmatch(s); m != nil {
		code, _ = strconv.Atoi(m[1])
	}
	if code == 0 {
		return nil
	}
	msg := ""
	if i := strings.Index(s, fmt.Sprintf("AADSTS%d:", code)); i >= 0 {
		msg = s[i:]
		if j := strings.IndexAny(msg, "\r\n\""); j >= 0 {
			msg = msg[:j]
		}
		msg = descCleanRe.ReplaceAllString(msg, "")
		if len(msg) > 300 {
			msg = msg[:300]
		}
	}
	return &SignInError{Code: code, Message: strings.TrimSpace(msg), Hint: HintFor(code)}
}

// wrapEntraError turns an azidentity/MSAL error into a *SignInError when it
// names an AADSTS code, redacting any secret the text might contain.
func wrapEntraError(err error, secrets ...string) error {
	if err == nil {
		return nil
	}
	var se *SignInError
	if errors.As(err, &se) {
		return err
	}
	text := err.Error()
	if se := signInErrorFromText(text); se != nil {
		se.Message = Redact(se.Message, secrets...)
		return se
	}
	return &redactedError{msg: Redact(text, secrets...), err: err}
}

// redactedError keeps the cause for errors.As/Is while printing a text
// with the secrets removed.
type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }
