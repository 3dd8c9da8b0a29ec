package srcutil

import (
	"context"
	"errors"
	"fmt"
	"net/url"

	"github.com/defenderharvester/defenderharvester/internal/mde"
	"github.com/defenderharvester/defenderharvester/internal/source"
)

// PortalSnapshot is a snapshot source read with one portal GET.
type PortalSnapshot struct {
	Meta
	Portal mde.Portal
	Path   string
	Query  url.Values
	// Decode turns the whole body into keyed items or fails.
	Decode func(body []byte) ([]source.Item, error)
}

// Snapshot reads and decodes the page, then emits every item. Nothing is
// emitted unless the whole page decoded.
func (s *PortalSnapshot) Snapshot(ctx context.Context, emit source.Emit) error {
	body, err := s.Portal.Get(ctx, s.Path, s.Query)
	if err != nil {
		return fmt.Errorf("%s: %w", s.Name(), err)
	}
	items, err := s.Decode(body)
	if err != nil {
		return err
	}
	return EmitAll(ctx, emit, items)
}

// NeedPortal is the error a portal source returns when built without the
// portal client.
func NeedPortal(src string, deps source.Deps) error {
	if deps.Portal == nil {
		return fmt.Errorf("%s: needs the portal service API: configure the portal session (sccauth and XSRF-TOKEN cookies) or disable this source", src)
	}
	return nil
}

// NeedPublic is the error a public-API source returns when built without
// the public API client.
func NeedPublic(src string, deps source.Deps) error {
	if deps.API == nil {
		return fmt.Errorf("%s: needs the public Defender API: configure an app registration (tenant id, client id, client secret) or disable this source", src)
	}
	return nil
}

// ErrRepeatedLink reports a continuation link that was already followed.
var ErrRepeatedLink = errors.New("the API returned a continuation link it had already returned (paging loop)")
