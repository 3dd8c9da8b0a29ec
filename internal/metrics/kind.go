package metrics

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/defenderharvester/defenderharvester/internal/auth"
	"github.com/defenderharvester/defenderharvester/internal/delivery"
	"github.com/defenderharvester/defenderharvester/internal/httpx"
	"github.com/defenderharvester/defenderharvester/internal/mde"
	"github.com/defenderharvester/defenderharvester/internal/source/srcutil"
	"github.com/defenderharvester/defenderharvester/internal/state"
)

// The values of the kind label: a fixed set, so an error's text never
// becomes a label.
const (
	KindCanceled        = "canceled"          // the run was cancelled (shutdown)
	KindRefusedByOutput = "refused_by_output" // an output refused the request or records, or its spool is full
	KindState           = "state"             // the state file is damaged
	KindSessionExpired  = "session_expired"   // the portal session is no longer accepted
	KindAuth            = "auth"              // credentials, sign-in, permissions, wrong tenant
	KindThrottled       = "throttled"         // HTTP 429 after every retry
	KindTimeout         = "timeout"           // no answer in time
	KindNetwork         = "network"           // connection failed, TLS not trusted, host does not resolve
	KindServer          = "server"            // HTTP 5xx after every retry
	KindShape           = "shape"             // the answer is not what the source expects
	KindAPI             = "api"               // another refusal by the API (400, 404, redirect, host not allowed)
	KindOther           = "other"
)

// Kinds lists every kind ErrorKind returns.
var Kinds = []string{KindCanceled, KindRefusedByOutput, KindState, KindSessionExpired, KindAuth,
	KindThrottled, KindTimeout, KindNetwork, KindServer, KindShape, KindAPI, KindOther}

// ErrorKind sorts err into one of Kinds ("" for nil) by the project's
// typed errors. The first match wins: the order puts the cause an
// operator acts on before the transport symptom it produced.
func ErrorKind(err error) string {
	if err == nil {
		return ""
	}
	var (
		signIn  *auth.SignInError
		status  *httpx.StatusError
		api     *mde.APIError
		syntax  *json.SyntaxError
		typeErr *json.UnmarshalTypeError
	)
	hasStatus := errors.As(err, &status)
	hasAPI := errors.As(err, &api)
	switch {
	case errors.Is(err, context.Canceled):
		return KindCanceled
	case delivery.IsPermanent(err), delivery.IsRejected(err), errors.Is(err, state.ErrSpoolFull):
		return KindRefusedByOutput
	case errors.Is(err, state.ErrDamaged), errors.Is(err, state.ErrCorrupt):
		return KindState
	case errors.Is(err, mde.ErrSessionExpired), errors.Is(err, auth.ErrSessionExpired):
		return KindSessionExpired
	case errors.As(err, &signIn), errors.Is(err, mde.ErrUnauthorized), errors.Is(err, mde.ErrForbidden),
		errors.Is(err, mde.ErrWrongTenant), errors.Is(err, auth.ErrNoXSRF):
		return KindAuth
	case errors.Is(err, mde.ErrThrottled), hasStatus && status.Code == 429:
		return KindThrottled
	case errors.Is(err, httpx.ErrTimeout), errors.Is(err, context.DeadlineExceeded):
		return KindTimeout
	case errors.Is(err, httpx.ErrNetwork), errors.Is(err, httpx.ErrCertificate), errors.Is(err, httpx.ErrHostNotFound):
		return KindNetwork
	case errors.Is(err, mde.ErrServer), hasStatus && status.Code >= 500:
		return KindServer
	case errors.Is(err, mde.ErrNotJSON), errors.Is(err, mde.ErrTooLarge), errors.Is(err, srcutil.ErrRepeatedLink), errors.Is(err, srcutil.ErrShape),
		errors.As(err, &syntax), errors.As(err, &typeErr):
		return KindShape
	case hasAPI, errors.Is(err, mde.ErrBadRequest), errors.Is(err, mde.ErrNotFound), errors.Is(err, mde.ErrRedirect), errors.Is(err, mde.ErrHostNotAllowed), errors.Is(err, mde.ErrNoLegacyHost):
		return KindAPI
	case errors.Is(err, mde.ErrSessionUpkeep):
		// Upkeep failed for a reason none of the above names.
		return KindAuth
	}
	return KindOther
}
