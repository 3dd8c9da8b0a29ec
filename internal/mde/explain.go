package mde

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/defenderharvester/defenderharvester/internal/auth"
)

// Explain turns an error from these clients (or from signing in) into one
// sentence saying what is wrong and one saying what to do, for `doctor`
// and end-of-run summaries. It never prints the error text itself, so it
// cannot echo anything a server put there. Unknown errors get a generic
// pair; nil gives two empty strings.
func Explain(err error) (problem, fix string) {
	if err == nil {
		return "", ""
	}
	var sie *auth.SignInError
	if errors.As(err, &sie) {
		problem = "Microsoft Entra ID refused the sign-in."
		if sie.Code != 0 {
			problem = fmt.Sprintf("Microsoft Entra ID refused the sign-in (AADSTS%d).", sie.Code)
		}
		fix = sie.Hint
		if fix == "" {
			fix = "Read the Entra ID sign-in logs for this attempt and fix what they report."
		}
		return problem, sentence(fix)
	}
	var ae *APIError
	hasAPI := errors.As(err, &ae)
	switch {
	case errors.Is(err, ErrTimeout):
		return "The service did not answer in time: every attempt ran into the per-attempt timeout (or the answer stopped arriving).",
			"Check the network path (proxy, firewall) to the host named in the error; for slow pages narrow the window or raise http.timeout."
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return "The check was cancelled or ran out of time before the service answered.",
			"Run it again; if it keeps timing out, check the network path (proxy, firewall) to the Defender hosts."
	case errors.Is(err, ErrWrongTenant):
		return "The portal session belongs to another tenant than tenant_id.",
			"Sign in with an account of the configured tenant (a guest account to that tenant), or correct tenant_id."
	case errors.Is(err, ErrNoLegacyHost):
		return "This data set has no equivalent on the legacy *.securitycenter.windows.com hosts.",
			"Harvest it through the portal proxy with a portal session (browser cookies or the ESTS cookie)."
	case errors.Is(err, ErrSessionUpkeep):
		return "The portal session could not be kept fresh (re-visiting the portal root failed).",
			"Sign in again: refresh the browser cookies or the ESTSAUTHPERSISTENT cookie, then run `login`."
	case errors.Is(err, ErrSessionExpired):
		return "The portal session (sccauth cookie) is invalid or expired: the portal answered with its sign-in page.",
			"Sign in to security.microsoft.com again and copy fresh cookies (or use the ESTS cookie, which renews itself), then run `login`."
	case errors.Is(err, ErrUnauthorized):
		if hasAPI && ae.Hint != "" {
			return "The service refused the access token (HTTP 401).", sentence(ae.Hint)
		}
		return "The service refused the access token (HTTP 401).",
			"Check tenant id, client id and secret, and that the token is for the Defender API."
	case errors.Is(err, ErrForbidden):
		fix := "Give the account the Defender role this data needs (Security Reader at least; settings need Security Administrator), and for an app grant the API permission with admin consent."
		if hasAPI && ae.Hint != "" {
			fix = "Fix the permission: " + ae.Hint
		}
		return "Access denied (HTTP 403): the account or app lacks the role or permission for this data.", sentence(fix)
	case errors.Is(err, ErrThrottled):
		return "The service is throttling requests (HTTP 429).",
			"Wait and run again, run less often, or lower the request rate in the config."
	case errors.Is(err, ErrNotFound):
		return "The endpoint answered 404: the path is wrong for this tenant or the feature is not enabled.",
			"Check that the feature is turned on in the portal (Settings > Endpoints > Advanced features) and that the tool is up to date; the API may have moved."
	case errors.Is(err, ErrCertificate):
		return "The TLS certificate of the service is not trusted.",
			"If a proxy inspects TLS, add its CA to the system trust store; for the emulator set emulator.ca_file."
	case errors.Is(err, ErrHostNotFound):
		return "The service's host name does not resolve.",
			"For the legacy hosts the location (region) is probably wrong: copy it from a *.securitycenter.windows.com request in the browser's developer tools; otherwise check DNS and proxy settings."
	case errors.Is(err, ErrHostNotAllowed):
		return "A request was aimed at a host outside the allow-list, so no credentials were sent.",
			"Use the real Microsoft host names (the emulator is reached through emulator.address, not by changing hosts)."
	case errors.Is(err, ErrRedirect):
		return "The service answered with a redirect, which the harvester never follows with credentials.",
			"Check the tenant and region settings; a redirect usually means a sign-in is needed or the host is wrong."
	case errors.Is(err, ErrServer):
		return "The service had a server error (HTTP 5xx).",
			"It is usually transient: run again later."
	case errors.Is(err, ErrBadRequest):
		return "The service rejected the request (HTTP 400).",
			"Check the window and page size settings of this data set."
	case errors.Is(err, ErrNotJSON):
		return "The service answered with something other than JSON.",
			"Run again; if it persists, a proxy may be rewriting answers or the API has changed."
	case errors.Is(err, ErrTooLarge):
		return "An answer was larger than the configured limit.",
			"Narrow the window or the page size of this data set."
	}
	return "The request failed for a reason the harvester does not recognise.",
		"Run with debug logging to see the full error, then check network access to the Defender hosts."
}

// sentence makes a hint read as a sentence: capitalised, ending with a
// full stop.
func sentence(s string) string {
	s = strings.TrimSpace(s)
	if s == "" {
		return s
	}
	if c := s[0]; c >= 'a' && c <= 'z' {
		s = string(c-'a'+'A') + s[1:]
	}
	if !strings.HasSuffix(s, ".") {
		s += "."
	}
	return s
}
