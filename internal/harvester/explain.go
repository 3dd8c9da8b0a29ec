package harvester

import (
	"errors"
	"fmt"
	"strings"

	"github.com/defenderharvester/defenderharvester/internal/auth"
	"github.com/defenderharvester/defenderharvester/internal/mde"
)

// Explain turns an error from a credential, a session, an API call or the
// harvester's own setup into a PROBLEM and a FIX a user can act on. It
// builds on mde.Explain and adds what only the harvester knows: which API
// family the check was for (api is "portal", "legacy", "public" or
// "output") and its own configuration errors.
func Explain(err error, api string) (problem, fix string) {
	problem, fix, _ = explain(err, api)
	return problem, fix
}

// genericFix is the fix of an error nothing more is known about.
const genericFix = "Run again with --debug to see the full error; check network access to the Defender hosts (HTTPS_PROXY/NO_PROXY, firewall)."

// explain is Explain; specific is false when the fix is only the generic
// one (callers that know more, such as doctor, then give their own).
func explain(err error, api string) (problem, fix string, specific bool) {
	if err == nil {
		return "", "", true
	}
	var sie *auth.SignInError
	if errors.As(err, &sie) {
		_, fix = mde.Explain(err)
		return signInProblem(sie.Code), fix, true
	}
	if fix, ok := fixOf(err); ok {
		return ownProblem(err), fix, true
	}
	problem, fix = mde.Explain(err)
	var ae *mde.APIError
	isAPI := errors.As(err, &ae)
	switch {
	case isAPI && strings.HasPrefix(ae.Code, "AF") && ae.Hint != "":
		// The Management Activity API's own codes carry a specific hint
		// (ActivityFeed.Read, audit logging off, tenant mismatch …).
		return problem, strings.ToUpper(ae.Hint[:1]) + ae.Hint[1:] + ".", true
	case api == "legacy" && (errors.Is(err, mde.ErrNotFound) || (isAPI && ae.Status == 421)):
		return "The legacy host does not serve this tenant's data: the location (region) is probably wrong.",
			"Set portal.location (-location) to the region in your *.securitycenter.windows.com requests (browser developer tools), e.g. weu, weu3, eus, eus3; better, move to portal.mode: proxy (the legacy hosts were closed in 2025).", true
	case api == "legacy" && isAPI && ae.Status == 401 && strings.Contains(strings.ToLower(ae.Message), "region"):
		return "The legacy host says the tenant is not provisioned in this region: the location is wrong.",
			"Set portal.location (-location) to the region in your *.securitycenter.windows.com requests (browser developer tools), e.g. weu, weu3, eus, eus3.", true
	case api == "legacy" && errors.Is(err, mde.ErrUnauthorized):
		return "The legacy host refused the token (HTTP 401).",
			"Microsoft closed the legacy hosts to user tokens in 2025: switch to portal.mode: proxy with a portal session.", true
	case api == "public" && errors.Is(err, mde.ErrForbidden):
		return problem, "Grant the app the WindowsDefenderATP application permissions Machine.Read.All (machine actions) and Library.Manage (library files), then grant admin consent.", true
	case api == "public" && errors.Is(err, mde.ErrUnauthorized) && !(isAPI && ae.Hint != ""):
		return problem, fixPublic401(""), true
	case api == "output" && errors.Is(err, mde.ErrForbidden):
		return problem, "Give the output's identity its role (Sentinel: Monitoring Metrics Publisher on the data collection rule; Splunk: a token allowed to write the index).", true
	case errors.Is(err, mde.ErrSessionExpired), errors.Is(err, auth.ErrSessionExpired), errors.Is(err, mde.ErrSessionUpkeep):
		return problem, fixSessionExpired, true
	case (api == "portal" || api == "legacy") && errors.Is(err, mde.ErrThrottled):
		return problem, "Wait and run again; lower portal.rate_per_second (default 5) or run less often.", true
	case api == "public" && errors.Is(err, mde.ErrThrottled):
		return problem, "Wait and run again, or run less often: the public API's call limits are per app and tenant.", true
	}
	if isAPI && ae.Status == 421 {
		return "The host does not exist for this tenant (HTTP 421 misdirected request).", "Check portal.base_url / public_api.base_url (leave them at their defaults for the real tenant) and, in legacy mode, portal.location.", true
	}
	if strings.HasPrefix(problem, "The request failed for a reason the harvester does not recognise") {
		if !isAPI {
			// The harvester's own errors (configuration, missing secrets)
			// say what is wrong themselves; secrets never appear in them.
			problem = ownProblem(err)
		}
		return problem, genericFix, false
	}
	return problem, fix, true
}

// ownProblem is the message of one of the harvester's own errors, on one
// line and bounded.
func ownProblem(err error) string {
	msg := strings.Join(strings.Fields(err.Error()), " ")
	if len(msg) > 400 {
		msg = msg[:400] + "…"
	}
	return msg
}

// signInProblem names the AADSTS codes doctor users meet most.
func signInProblem(code int) string {
	label := "Microsoft Entra ID refused the sign-in"
	switch code {
	case 53003, 53000:
		label = "Conditional Access blocked the sign-in"
	case 50076, 50079:
		label = "Multi-factor authentication is required for the sign-in"
	case 50058:
		label = "The ESTS cookie no longer carries a usable sign-in session"
	case 90002, 900023, 90072:
		label = "Wrong tenant: Entra ID does not know this tenant or account"
	case 700016:
		label = "Wrong tenant or client id: the app is not in this tenant"
	case 7000215, 7000222:
		label = "The client secret is wrong or expired"
	case 700082, 70043, 70000, 50173:
		label = "The sign-in (refresh token) expired or was revoked"
	case 65001:
		label = "The app has no admin consent"
	}
	if code == 0 {
		return label + "."
	}
	return fmt.Sprintf("%s (AADSTS%d).", label, code)
}
